//! Rendering of domain values, records and definitions as wire JSON.

use mosaic_meta::model::ObjectMeta;
use mosaic_meta::{FieldDef, ObjectDef};
use mosaic_runtime::RecordView;
use mosaic_types::DataType;
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;

pub use mosaic_types::value::to_json as value;

pub fn sobject_url(version: &str, object: &str, id: &str) -> String {
    format!("/services/data/{version}/sobjects/{object}/{id}")
}

pub fn record(version: &str, r: &RecordView) -> Json {
    let mut m = Map::new();
    m.insert(
        "attributes".into(),
        json!({"type": r.object.api_name(), "url": sobject_url(version, r.object.api_name(), &r.id)}),
    );
    for (k, v) in &r.fields {
        m.insert(k.clone(), value(v));
    }
    Json::Object(m)
}

/// Object ids → api names, for rendering relationship targets.
pub type Names = HashMap<String, String>;

/// The tenant's object ids → api names.
pub async fn object_names(
    s: &crate::AppState,
    tenant: &str,
) -> Result<Names, crate::error::ApiError> {
    Ok(s.platform
        .meta
        .objects(tenant)
        .await?
        .iter()
        .map(|o| (o.def.id.clone(), o.def.api_name.clone()))
        .collect())
}

pub fn field_metadata(f: &FieldDef, names: &Names) -> Json {
    let mut j = serde_json::to_value(f).unwrap_or(Json::Null);
    if let Some(m) = j.as_object_mut() {
        if let Some(id) = m.remove("lookup_object_id") {
            let name = id.as_str().and_then(|i| names.get(i)).cloned();
            m.insert(
                "lookup_object".into(),
                name.map(Json::String).unwrap_or(Json::Null),
            );
        }
        if let Some(slot) = m.remove("slot") {
            m.insert(
                "storage_slot".into(),
                slot.get("pool")
                    .zip(slot.get("index"))
                    .map(|(p, i)| json!(format!("{}_{}", p.as_str().unwrap_or(""), i)))
                    .unwrap_or(Json::Null),
            );
        }
    }
    j
}

pub fn object_metadata(o: &ObjectDef, names: &Names) -> Json {
    json!({
        "id": o.id,
        "api_name": o.api_name,
        "label": o.label,
        "plural_label": o.plural_label,
        "description": o.description,
        "sharing_model": o.sharing_model,
        "enable_history": o.enable_history,
        "version": o.version,
        "name_field": {
            "label": o.name_field.label,
            "data_type": o.name_field.data_type,
            "length": o.name_field.length,
            "auto_number_format": o.name_field.auto_number_format,
            "auto_number_start": o.name_field.auto_number_start,
        },
        "fields": o.fields.iter().map(|f| field_metadata(f, names)).collect::<Vec<_>>(),
        "validation_rules": o.validation_rules,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
    })
}

fn sys_field(name: &str, label: &str, ty: &str, extra: Json) -> Json {
    let mut base = json!({
        "name": name, "label": label, "type": ty, "custom": false,
        "nillable": false, "createable": false, "updateable": false,
        "unique": false, "externalId": false, "calculated": false, "autoNumber": false,
        "length": 0, "precision": 0, "scale": 0, "picklistValues": [], "referenceTo": [],
        "relationshipName": null, "defaultValue": null, "inlineHelpText": null,
    });
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

pub fn describe_field(f: &FieldDef, names: &Names) -> Json {
    let reference: Vec<String> = f
        .lookup_object_id
        .as_ref()
        .and_then(|id| names.get(id).cloned())
        .into_iter()
        .collect();
    // Formulas and roll-up summaries: computed, shown as their result type.
    let is_formula = f.data_type.is_computed();
    let shown_type = if is_formula {
        f.formula_return_type.unwrap_or(DataType::Text)
    } else {
        f.data_type
    };
    let numeric = matches!(
        shown_type,
        DataType::Number | DataType::Currency | DataType::Percent
    );
    json!({
        "name": f.api_name,
        "label": f.label,
        "type": shown_type.soap_type(),
        "mosaicType": f.data_type,
        "custom": true,
        "length": f.length.unwrap_or(if f.data_type.pool() == Some(mosaic_types::SlotPool::String) { 255 } else { 0 }),
        "precision": if numeric { f.precision.unwrap_or(18) } else { 0 },
        "scale": if numeric { f.scale.unwrap_or(0) } else { 0 },
        "nillable": is_formula || (!f.is_required && f.data_type != DataType::Boolean),
        "createable": f.is_updateable(),
        "updateable": f.is_updateable(),
        "unique": f.is_unique,
        "externalId": f.is_external_id,
        "calculated": is_formula,
        "calculatedFormula": f.formula_expression,
        "autoNumber": f.data_type == DataType::AutoNumber,
        "cascadeDelete": f.cascade_delete,
        "defaultValue": f.default_value,
        "defaultedOnCreate": f.default_value.is_some() || f.data_type == DataType::Boolean || f.data_type == DataType::AutoNumber,
        "restrictedPicklist": f.is_restricted,
        "picklistValues": f.picklist_values.iter().map(|p| json!({
            "value": p.value, "label": p.label, "active": p.is_active, "defaultValue": p.is_default,
        })).collect::<Vec<_>>(),
        "referenceTo": reference,
        "relationshipName": f.parent_relationship_name(),
        "inlineHelpText": f.help_text,
        "filterable": f.data_type.pool().is_some() && f.data_type != DataType::EncryptedText,
        "encrypted": f.data_type == DataType::EncryptedText,
    })
}

pub fn object_urls(version: &str, name: &str) -> Json {
    json!({
        "sobject": format!("/services/data/{version}/sobjects/{name}"),
        "describe": format!("/services/data/{version}/sobjects/{name}/describe"),
        "rowTemplate": format!("/services/data/{version}/sobjects/{name}/{{ID}}"),
    })
}

pub fn global_entry(version: &str, o: &ObjectDef) -> Json {
    json!({
        "name": o.api_name, "label": o.label, "labelPlural": o.plural_label,
        "custom": true, "keyPrefix": null,
        "createable": true, "updateable": true, "deletable": true, "queryable": true,
        "searchable": true, "retrieveable": true, "layoutable": true,
        "urls": object_urls(version, &o.api_name),
    })
}

/// `sobjects/{O}/describe`.
pub fn describe(
    version: &str,
    o: &ObjectMeta,
    names: &Names,
    children: &[(String, FieldDef)],
) -> Json {
    let d = &o.def;
    let name_auto = d.name_field.data_type == DataType::AutoNumber;
    let mut fields = vec![
        sys_field(
            "Id",
            "Record ID",
            "id",
            json!({"length": 36, "filterable": true}),
        ),
        sys_field(
            "Name",
            &d.name_field.label,
            "string",
            json!({
                "length": d.name_field.length, "nillable": name_auto, "createable": !name_auto, "updateable": !name_auto,
                "autoNumber": name_auto, "nameField": true, "filterable": true,
            }),
        ),
        sys_field(
            "OwnerId",
            "Owner ID",
            "reference",
            json!({"length": 36, "createable": true, "updateable": true, "referenceTo": ["User"], "relationshipName": "Owner"}),
        ),
        sys_field(
            "CreatedById",
            "Created By ID",
            "reference",
            json!({"length": 36, "referenceTo": ["User"], "relationshipName": "CreatedBy"}),
        ),
        sys_field("CreatedDate", "Created Date", "datetime", json!({})),
        sys_field(
            "LastModifiedById",
            "Last Modified By ID",
            "reference",
            json!({"length": 36, "referenceTo": ["User"], "relationshipName": "LastModifiedBy"}),
        ),
        sys_field(
            "LastModifiedDate",
            "Last Modified Date",
            "datetime",
            json!({}),
        ),
        sys_field("IsDeleted", "Deleted", "boolean", json!({})),
    ];
    fields.extend(d.fields.iter().map(|f| describe_field(f, names)));
    json!({
        "name": d.api_name,
        "label": d.label,
        "labelPlural": d.plural_label,
        "custom": true,
        "keyPrefix": null,
        "createable": true, "updateable": true, "deletable": true, "queryable": true,
        "searchable": true, "retrieveable": true, "layoutable": true,
        "sharingModel": d.sharing_model,
        "enableHistory": d.enable_history,
        "version": d.version,
        "fields": fields,
        "childRelationships": children.iter().map(|(child, f)| json!({
            "childSObject": child,
            "field": f.api_name,
            "relationshipName": f.relationship_name,
            "cascadeDelete": f.cascade_delete,
        })).collect::<Vec<_>>(),
        "urls": object_urls(version, &d.api_name),
    })
}
