//! Page layouts and list views over HTTP: their definitions in the
//! metadata API (`/services/metadata/v1/objects/{O}/layouts`,
//! `…/listviews`), and Salesforce's shapes in the Data API
//! (`sobjects/{O}/describe/layouts`, `sobjects/{O}/listviews[/{id}[/results
//! | /describe]]`, and the UI API's picklist values). Definitions answer
//! with an `ETag` (see [`crate::etag`]).

use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag;
use crate::extract::{JsonBody, PathParams, QueryMap};
use crate::render::{self, Names};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use mosaic_meta::layout::{LayoutInput, PageLayout, SortDirection};
use mosaic_meta::listview::{FilterScope, ListView, ListViewInput};
use mosaic_meta::model::ObjectMeta;
use mosaic_runtime::access::{self, ObjectOp};
use mosaic_runtime::list_views::{ListRequest, DEFAULT_PAGE_SIZE};
use mosaic_runtime::Caller;
use mosaic_types::{DataType, ErrorCode, MosaicError};
use serde_json::{json, Value};

/// Largest `limit` of list view results (Salesforce: 2,000).
pub const MAX_RESULTS_LIMIT: usize = 2_000;
/// Record type id of the master record type (the only one Mosaic has).
pub const MASTER_RECORD_TYPE_ID: &str = "012000000000000AAA";

/// The metadata API's layout and list view routes (administrators only;
/// changes land in the tenant's audit log).
pub fn metadata_routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let a = Access::Customize;
    let layouts = "/services/metadata/v1/objects/{object}/layouts";
    let layout = "/services/metadata/v1/objects/{object}/layouts/{layout}";
    let views = "/services/metadata/v1/objects/{object}/listviews";
    let view = "/services/metadata/v1/objects/{object}/listviews/{view}";
    vec![
        RouteSpec::new(
            Method::GET,
            layouts,
            a,
            "metadata.layouts.list",
            "List an object's page layouts (a derived one when it has none)",
            get(list_layouts),
        ),
        RouteSpec::new(
            Method::POST,
            layouts,
            a,
            "metadata.layouts.create",
            "Define a page layout",
            post(create_layout),
        ),
        RouteSpec::new(
            Method::GET,
            layout,
            a,
            "metadata.layouts.get",
            "Get a page layout",
            get(get_layout),
        ),
        RouteSpec::new(
            Method::PATCH,
            layout,
            a,
            "metadata.layouts.update",
            "Change a page layout",
            patch(update_layout),
        ),
        RouteSpec::new(
            Method::DELETE,
            layout,
            a,
            "metadata.layouts.delete",
            "Delete a page layout",
            delete(delete_layout),
        ),
        RouteSpec::new(
            Method::GET,
            views,
            a,
            "metadata.listviews.list",
            "List an object's list views",
            get(list_list_views),
        ),
        RouteSpec::new(
            Method::POST,
            views,
            a,
            "metadata.listviews.create",
            "Define a list view",
            post(create_list_view),
        ),
        RouteSpec::new(
            Method::GET,
            view,
            a,
            "metadata.listviews.get",
            "Get a list view",
            get(get_list_view),
        ),
        RouteSpec::new(
            Method::PATCH,
            view,
            a,
            "metadata.listviews.update",
            "Change a list view",
            patch(update_list_view),
        ),
        RouteSpec::new(
            Method::DELETE,
            view,
            a,
            "metadata.listviews.delete",
            "Delete a list view",
            delete(delete_list_view),
        ),
    ]
    .into_iter()
    .map(RouteSpec::audited)
    .collect()
}

/// The Data API's layout, list view and picklist routes.
pub fn data_routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let p = Access::Permission;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/describe/layouts",
            p,
            "data.describe_layouts",
            "The record page layout as the caller sees it",
            get(describe_layouts),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/listviews",
            p,
            "data.listviews.list",
            "The list views the caller sees",
            get(data_list_views),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/listviews/{view}",
            p,
            "data.listviews.get",
            "One list view",
            get(data_list_view),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/listviews/{view}/results",
            p,
            "data.listviews.results",
            "A list view's records",
            get(list_view_results),
        )
        .query(&["limit", "offset"]),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/listviews/{view}/describe",
            p,
            "data.listviews.describe",
            "A list view's columns, filter, order and query",
            get(list_view_describe),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/ui-api/object-info/{object}/picklist-values/{record_type}/{field}",
            p,
            "data.picklist_values",
            "A picklist field's active values",
            get(picklist_values),
        ),
    ]
}

// ---------------------------------------------------------------- metadata API

fn layout_json(l: &PageLayout, names: &Names) -> Value {
    let mut j = serde_json::to_value(l).unwrap_or(Value::Null);
    if let Some(lists) = j.get_mut("related_lists").and_then(Value::as_array_mut) {
        for r in lists {
            if let Some(m) = r.as_object_mut() {
                if let Some(id) = m.remove("object_id") {
                    let name = id.as_str().and_then(|i| names.get(i)).cloned();
                    m.insert("object".into(), json!(name));
                }
            }
        }
    }
    j
}

fn with_version(mut j: Value, version: i64) -> Value {
    j["object_version"] = json!(version);
    j
}

async fn list_layouts(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    let layouts = s.platform.meta.layouts(&c.tenant_id, &object).await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok(etag::json_value(
        &headers,
        &json!({
            "object_version": o.def.version,
            "layouts": layouts.iter().map(|l| layout_json(l, &names)).collect::<Vec<_>>(),
        }),
    ))
}

async fn create_layout(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    JsonBody(input): JsonBody<LayoutInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (o, l) = s
        .platform
        .meta
        .add_layout(&c.tenant_id, &object, input)
        .await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(with_version(layout_json(&l, &names), o.def.version)),
    ))
}

async fn get_layout(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, layout)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let l = s
        .platform
        .meta
        .layout(&c.tenant_id, &object, &layout)
        .await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok(etag::json_value(&headers, &layout_json(&l, &names)))
}

async fn update_layout(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, layout)): PathParams<(String, String)>,
    JsonBody(input): JsonBody<LayoutInput>,
) -> Result<Json<Value>, ApiError> {
    let (o, l) = s
        .platform
        .meta
        .update_layout(&c.tenant_id, &object, &layout, input)
        .await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok(Json(with_version(layout_json(&l, &names), o.def.version)))
}

async fn delete_layout(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, layout)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.platform
        .meta
        .delete_layout(&c.tenant_id, &object, &layout)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_list_views(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    let views = s.platform.meta.list_views(&o, &c.user_id);
    Ok(etag::json_value(
        &headers,
        &json!({"object_version": o.def.version, "list_views": views}),
    ))
}

async fn create_list_view(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    JsonBody(input): JsonBody<ListViewInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (o, v) = s
        .platform
        .meta
        .add_list_view(&c.tenant_id, &object, &c.user_id, input)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(with_version(json!(v), o.def.version)),
    ))
}

async fn get_list_view(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, view)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    let v = s.platform.meta.list_view(&o, &view, &c.user_id)?;
    Ok(etag::json_value(&headers, &json!(v)))
}

async fn update_list_view(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, view)): PathParams<(String, String)>,
    JsonBody(input): JsonBody<ListViewInput>,
) -> Result<Json<Value>, ApiError> {
    let (o, v) = s
        .platform
        .meta
        .update_list_view(&c.tenant_id, &object, &view, &c.user_id, input)
        .await?;
    Ok(Json(with_version(json!(v), o.def.version)))
}

async fn delete_list_view(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, view)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.platform
        .meta
        .delete_list_view(&c.tenant_id, &object, &view, &c.user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- Data API

/// The object as `c` may see it, with the names and children a describe needs.
async fn readable_object(
    s: &AppState,
    c: &Caller,
    object: &str,
) -> Result<std::sync::Arc<ObjectMeta>, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, object).await?;
    access::require(c, &o, ObjectOp::Read)?;
    Ok(o)
}

/// `sobjects/{O}/describe/layouts`: the record page layout as the caller
/// sees it (hidden fields absent, read-only ones not editable).
async fn describe_layouts(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = crate::data::version(&v)?;
    let layout = s.platform.caller_layout(&c, &object).await?;
    let o = access::visible_object(&c, &layout.object);
    let names = render::object_names(&s, &c.tenant_id).await?;
    let describe = render::describe(v, &o, &names, &[]);
    let details = |name: &str| -> Value {
        describe["fields"]
            .as_array()
            .and_then(|fs| fs.iter().find(|f| f["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let section = |sec: &mosaic_runtime::layouts::SectionView, edit: bool| -> Value {
        let per_row = usize::from(sec.columns.max(1));
        let mut tab = 0;
        let rows: Vec<Value> = sec
            .items
            .chunks(per_row)
            .map(|chunk| {
                json!({
                    "numItems": chunk.len(),
                    "layoutItems": chunk.iter().map(|f| {
                        tab += 1;
                        json!({
                            "editableForNew": edit && !f.read_only,
                            "editableForUpdate": edit && !f.read_only,
                            "label": f.label,
                            "placeholder": false,
                            "required": f.required,
                            "layoutComponents": [{
                                "details": details(&f.name),
                                "displayLines": 1,
                                "tabOrder": tab,
                                "type": "Field",
                                "value": f.name,
                            }],
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "collapsed": false,
            "columns": sec.columns,
            "heading": sec.label,
            "layoutRows": rows,
            "rows": rows.len(),
            "tabOrder": "LeftToRight",
            "useCollapsibleSection": false,
            "useHeading": !sec.label.is_empty(),
        })
    };
    let related: Vec<Value> = layout
        .related
        .iter()
        .map(|r| {
            json!({
                "columns": r.columns.iter().map(|f| json!({
                    "field": format!("{}.{}", r.child.api_name(), f.name),
                    "fieldApiName": f.name,
                    "format": null,
                    "label": f.label,
                    "lookupId": if f.name == "Name" { Some("Id") } else { None },
                    "name": f.name,
                    "sortable": true,
                })).collect::<Vec<_>>(),
                "custom": true,
                "field": r.field,
                "label": r.label,
                "limitRows": r.page_size,
                "name": r.child.def.fields.iter().find(|f| f.api_name == r.field)
                    .and_then(|f| f.relationship_name.clone()),
                "sobject": r.child.api_name(),
                "sort": [{"ascending": r.sort_direction == SortDirection::Asc, "column": r.sort_field}],
            })
        })
        .collect();
    let highlights: Vec<Value> = layout
        .highlights
        .iter()
        .map(|f| json!({"label": f.label, "value": f.name, "details": details(&f.name)}))
        .collect();
    let body = json!({
        "layouts": [{
            "id": layout.layout.id,
            "name": layout.layout.name,
            "buttonLayoutSection": null,
            "detailLayoutSections": layout.sections.iter().map(|s| section(s, false)).collect::<Vec<_>>(),
            "editLayoutSections": if layout.can_edit || layout.can_create {
                layout.sections.iter().map(|s| section(s, true)).collect::<Vec<_>>()
            } else { Vec::new() },
            "highlightsPanelLayoutSection": {"fields": highlights},
            "multirowEditLayoutSections": [],
            "offlineLinks": [],
            "relatedContent": null,
            "relatedLists": related,
            "saveOptions": [],
        }],
        "recordTypeMappings": [],
        "recordTypeSelectorRequired": [false],
    });
    Ok(etag::json_value(&headers, &body))
}

fn view_urls(v: &str, object: &str, id: &str) -> (String, String, String) {
    let base = format!("/services/data/{v}/sobjects/{object}/listviews/{id}");
    (
        base.clone(),
        format!("{base}/describe"),
        format!("{base}/results"),
    )
}

fn view_entry(v: &str, object: &str, view: &ListView) -> Value {
    let (url, describe, results) = view_urls(v, object, &view.id);
    json!({
        "describeUrl": describe,
        "developerName": view.name,
        "id": view.id,
        "label": view.label,
        "resultsUrl": results,
        "soqlCompatible": true,
        "url": url,
    })
}

async fn data_list_views(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = crate::data::version(&v)?;
    let o = readable_object(&s, &c, &object).await?;
    let views = s.platform.meta.list_views(&o, &c.user_id);
    Ok(etag::json_value(
        &headers,
        &json!({
            "done": true,
            "listviews": views.iter().map(|x| view_entry(v, o.api_name(), x)).collect::<Vec<_>>(),
            "nextRecordsUrl": null,
            "size": views.len(),
            "sobjectType": o.api_name(),
        }),
    ))
}

async fn data_list_view(
    State(s): State<AppState>,
    PathParams((v, object, view)): PathParams<(String, String, String)>,
    Auth(c): Auth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = crate::data::version(&v)?;
    let o = readable_object(&s, &c, &object).await?;
    let view = s.platform.meta.list_view(&o, &view, &c.user_id)?;
    Ok(etag::json_value(
        &headers,
        &view_entry(v, o.api_name(), &view),
    ))
}

/// Salesforce's column description of a list view column.
fn column_json(
    f: &mosaic_runtime::layouts::FieldView,
    sort: Option<(usize, SortDirection)>,
) -> Value {
    let numeric = matches!(
        f.shown_type,
        DataType::Number | DataType::Currency | DataType::Percent
    );
    json!({
        "ascendingLabel": if numeric { "9-0" } else { "Z-A" },
        "descendingLabel": if numeric { "0-9" } else { "A-Z" },
        "fieldNameOrPath": f.name,
        "hidden": false,
        "label": f.label,
        "selectListItem": f.name,
        "sortDirection": sort.map(|(_, d)| if d == SortDirection::Asc { "ascending" } else { "descending" }),
        "sortIndex": sort.map(|(i, _)| i),
        "sortable": f.def.as_ref().is_none_or(|d| !matches!(d.data_type,
            DataType::LongText | DataType::RichText | DataType::EncryptedText | DataType::MultiPicklist | DataType::Formula)),
        "type": f.shown_type.soap_type(),
    })
}

/// A value as list view results carry it: text, or null.
fn result_text(v: &mosaic_types::Value) -> Value {
    match render::value(v) {
        Value::Null => Value::Null,
        Value::String(s) => Value::String(s),
        other => Value::String(other.to_string()),
    }
}

async fn list_view_results(
    State(s): State<AppState>,
    PathParams((v, object, view)): PathParams<(String, String, String)>,
    Auth(c): Auth,
    QueryMap(q): QueryMap,
) -> Result<Json<Value>, ApiError> {
    crate::data::version(&v)?;
    let o = readable_object(&s, &c, &object).await?;
    let view = s.platform.meta.list_view(&o, &view, &c.user_id)?;
    let number = |name: &str, default: usize, max: usize, min: usize| -> Result<usize, ApiError> {
        match q.get(name) {
            None => Ok(default),
            Some(x) => match x.parse::<usize>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    name,
                    format!("{name} is a whole number from {min} to {max}"),
                )
                .into()),
            },
        }
    };
    let limit = number("limit", DEFAULT_PAGE_SIZE, MAX_RESULTS_LIMIT, 1)?;
    let offset = number("offset", 0, mosaic_runtime::list_views::MAX_OFFSET, 0)?;
    let req = ListRequest {
        page_size: limit,
        offset,
        ..ListRequest::default()
    };
    let page = s.platform.list_view_page(&c, &o, &view, &req).await?;
    let sort = (page.sort_field.clone(), page.sort_direction);
    let columns: Vec<Value> = page
        .columns
        .iter()
        .map(|f| column_json(f, (f.name == sort.0).then_some((0, sort.1))))
        .collect();
    let records: Vec<Value> = page
        .rows
        .iter()
        .map(|r| {
            json!({"columns": page.columns.iter().map(|f| json!({
                "fieldNameOrPath": f.name,
                "value": result_text(r.value(&f.name)),
            })).collect::<Vec<_>>()})
        })
        .collect();
    Ok(Json(json!({
        "columns": columns,
        "developerName": view.name,
        "done": page.next.is_none(),
        "id": view.id,
        "label": view.label,
        "records": records,
        "size": records.len(),
    })))
}

/// A list view's filter in Salesforce's `whereCondition` shape.
fn where_condition(view: &ListView) -> Value {
    let Some(f) = &view.filter_criteria else {
        return Value::Null;
    };
    let conds: Vec<Value> = f
        .conditions
        .iter()
        .map(|c| {
            let values = match &c.value {
                Value::Array(a) => a.clone(),
                Value::Null => Vec::new(),
                other => vec![other.clone()],
            };
            json!({"field": c.field, "operator": c.operator, "values": values})
        })
        .collect();
    match f.logic.as_str() {
        "AND" | "OR" => json!({"conditions": conds, "conjunction": f.logic.to_lowercase()}),
        custom => json!({"conditions": conds, "conjunction": "custom", "filterLogic": custom}),
    }
}

async fn list_view_describe(
    State(s): State<AppState>,
    PathParams((v, object, view)): PathParams<(String, String, String)>,
    Auth(c): Auth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::data::version(&v)?;
    let o = readable_object(&s, &c, &object).await?;
    let view = s.platform.meta.list_view(&o, &view, &c.user_id)?;
    let cols = mosaic_runtime::layouts::columns(&c, &o, &view.columns);
    let sort: Vec<(String, SortDirection)> = view
        .sort
        .iter()
        .map(|k| (k.field.clone(), k.direction))
        .collect();
    let columns: Vec<Value> = cols
        .iter()
        .map(|f| {
            let at = sort.iter().position(|(n, _)| n == &f.name);
            column_json(f, at.map(|i| (i, sort[i].1)))
        })
        .collect();
    let mut soql = format!(
        "SELECT {} FROM {}",
        std::iter::once("Id".to_string())
            .chain(cols.iter().map(|f| f.name.clone()))
            .collect::<Vec<_>>()
            .join(", "),
        o.api_name()
    );
    let mut conds = Vec::new();
    if let Some(f) = &view.filter_criteria {
        conds.push(mosaic_runtime::list_views::filter_soql(&o, f)?);
    }
    if view.filter_scope == FilterScope::Mine {
        conds.push("OwnerId = :userId".to_string());
    }
    if !conds.is_empty() {
        soql.push_str(" WHERE ");
        soql.push_str(&conds.join(" AND "));
    }
    if let Some((f, d)) = sort.first() {
        soql.push_str(&format!(
            " ORDER BY {f} {} NULLS {}, Id {}",
            d.soql(),
            if *d == SortDirection::Asc {
                "FIRST"
            } else {
                "LAST"
            },
            d.soql()
        ));
    }
    Ok(etag::json_value(
        &headers,
        &json!({
            "columns": columns,
            "id": view.id,
            "orderBy": sort.iter().map(|(f, d)| json!({
                "fieldNameOrPath": f,
                "nullsPosition": if *d == SortDirection::Asc { "first" } else { "last" },
                "sortDirection": if *d == SortDirection::Asc { "ascending" } else { "descending" },
            })).collect::<Vec<_>>(),
            "query": soql,
            "relatedEntityId": null,
            "scope": if view.filter_scope == FilterScope::Mine { "mine" } else { "everything" },
            "scopeEntityId": null,
            "sobjectType": o.api_name(),
            "whereCondition": where_condition(&view),
        }),
    ))
}

/// The UI API's picklist values of one field (record type: the master).
async fn picklist_values(
    State(s): State<AppState>,
    PathParams((v, object, record_type, field)): PathParams<(String, String, String, String)>,
    Auth(c): Auth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = crate::data::version(&v)?;
    let o = readable_object(&s, &c, &object).await?;
    if record_type != MASTER_RECORD_TYPE_ID {
        return Err(MosaicError::not_found(format!(
            "The requested resource does not exist: no record type '{}' (Mosaic has only the master record type {MASTER_RECORD_TYPE_ID})",
            record_type.chars().take(40).collect::<String>()
        ))
        .into());
    }
    let f = o
        .field(&field)
        .filter(|f| access::can_read_field(&c, f))
        .filter(|f| matches!(f.data_type, DataType::Picklist | DataType::MultiPicklist))
        .ok_or_else(|| {
            MosaicError::not_found(format!(
                "The requested resource does not exist: {} has no picklist field '{}'",
                o.api_name(),
                field.chars().take(80).collect::<String>()
            ))
        })?;
    let entry = |p: &mosaic_meta::PicklistValue| json!({"attributes": null, "label": p.label, "validFor": [], "value": p.value});
    let values: Vec<Value> = f
        .picklist_values
        .iter()
        .filter(|p| p.is_active)
        .map(entry)
        .collect();
    let default = f
        .picklist_values
        .iter()
        .find(|p| p.is_active && p.is_default)
        .map(entry);
    Ok(etag::json_value(
        &headers,
        &json!({
            "controllerValues": {},
            "defaultValue": default,
            "url": format!("/services/data/{v}/ui-api/object-info/{}/picklist-values/{MASTER_RECORD_TYPE_ID}/{}", o.api_name(), f.api_name),
            "values": values,
        }),
    ))
}
