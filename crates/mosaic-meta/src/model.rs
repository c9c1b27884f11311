//! The definition model, serialized as the metadata API's JSON (snake_case)
//! and as the stored document.

use chrono::{DateTime, Utc};
use mosaic_types::{DataType, FlexSlot};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SharingModel {
    Private,
    PublicRead,
    #[default]
    PublicReadWrite,
    ControlledByParent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PicklistValue {
    pub value: String,
    pub label: String,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub sort_order: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

fn yes() -> bool {
    true
}

/// The standard Name field of an object: text, or an auto number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameField {
    pub label: String,
    /// `text` or `auto_number`.
    pub data_type: DataType,
    pub length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_number_format: Option<String>,
    #[serde(default = "one")]
    pub auto_number_start: i64,
    /// Counter key for the auto number.
    pub counter_id: String,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    pub id: String,
    pub api_name: String,
    pub label: String,
    pub data_type: DataType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    #[serde(default)]
    pub is_required: bool,
    #[serde(default)]
    pub is_unique: bool,
    #[serde(default)]
    pub is_indexed: bool,
    #[serde(default)]
    pub is_external_id: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value_formula: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub picklist_values: Vec<PicklistValue>,
    #[serde(default)]
    pub is_restricted: bool,
    /// Target object id of a lookup / master-detail (rendered as api name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_object_id: Option<String>,
    /// Name of the relationship seen from the parent (child subqueries,
    /// describe's `childRelationships`), e.g. `Line_Items__r` — Salesforce's
    /// `relationshipName` of a CustomField. The child-side name is derived
    /// from the field's api name: see [`FieldDef::parent_relationship_name`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_name: Option<String>,
    #[serde(default)]
    pub cascade_delete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula_expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula_return_type: Option<DataType>,
    /// Salesforce's "treat blank fields as zeroes" for this formula.
    #[serde(default)]
    pub formula_blank_as_zero: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_number_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_number_start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The flex slot holding the values (`None` for computed fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<FlexSlot>,
    pub created_at: DateTime<Utc>,
    /// A roll-up summary's definition (`summary_foreign_key`, …).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub rollup: Option<crate::rollup::RollupDef>,
}

/// A bare field of type text named `name`, for coercing values against
/// system fields and formula results (set `data_type` on the result).
pub fn probe_field(name: &str) -> FieldDef {
    FieldDef {
        id: String::new(),
        api_name: name.to_string(),
        label: name.to_string(),
        data_type: DataType::Text,
        length: Some(131_072),
        precision: Some(18),
        scale: None,
        is_required: false,
        is_unique: false,
        is_indexed: false,
        is_external_id: false,
        default_value: None,
        default_value_formula: None,
        picklist_values: vec![],
        is_restricted: false,
        lookup_object_id: None,
        relationship_name: None,
        cascade_delete: false,
        formula_expression: None,
        formula_return_type: None,
        formula_blank_as_zero: false,
        auto_number_format: None,
        auto_number_start: None,
        help_text: None,
        description: None,
        slot: None,
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        rollup: None,
    }
}

/// The name by which a child reaches the parent through the reference field
/// `api_name`: `Acct__c` → `Acct__r`, `AccountId` → `Account`.
pub fn parent_relationship_of(api_name: &str) -> String {
    match api_name.strip_suffix("__c") {
        Some(base) => format!("{base}__r"),
        None => api_name
            .strip_suffix("Id")
            .filter(|b| !b.is_empty())
            .unwrap_or(api_name)
            .to_string(),
    }
}

impl FieldDef {
    /// The name by which a record reaches the parent of this lookup or
    /// master-detail field (`Acct__c` → `Acct__r`); `None` for other types.
    pub fn parent_relationship_name(&self) -> Option<String> {
        self.data_type
            .is_reference()
            .then(|| parent_relationship_of(&self.api_name))
    }

    /// Whether `name` (case-insensitive) is this field's parent relationship.
    pub fn is_parent_relationship(&self, name: &str) -> bool {
        self.parent_relationship_name()
            .is_some_and(|r| r.eq_ignore_ascii_case(name))
    }

    /// Whether writes to this field through the Data API are allowed.
    pub fn is_updateable(&self) -> bool {
        !matches!(
            self.data_type,
            DataType::AutoNumber | DataType::Formula | DataType::RollupSummary
        )
    }

    /// Whether the field is mirrored into the index pivot table (lookups are
    /// always indexed, as relationship traversal needs them).
    pub fn needs_index(&self) -> bool {
        self.is_indexed || self.is_external_id || self.data_type.is_reference()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectDef {
    /// Format of the stored document ([`DOC_FORMAT`]); older documents are
    /// upgraded when loaded (see [`upgrade_document`]).
    #[serde(default = "legacy_format")]
    pub format: u32,
    pub id: String,
    pub api_name: String,
    pub label: String,
    pub plural_label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub sharing_model: SharingModel,
    pub enable_history: bool,
    pub version: i64,
    pub name_field: NameField,
    pub fields: Vec<FieldDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_rules: Vec<ValidationRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflow_rules: Vec<crate::workflow::WorkflowRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sharing_rules: Vec<crate::sharing::SharingRule>,
    /// Page layouts (none: a layout is derived from the fields).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layouts: Vec<crate::layout::PageLayout>,
    /// List views besides the derived "All" view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list_views: Vec<crate::listview::ListView>,
    /// Slots of deleted fields whose data may not have been cleared yet;
    /// never allocated until cleared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_clear: Vec<FlexSlot>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A validation rule: when its formula is true, the save is refused with
/// `error_message` on `error_display_field`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRule {
    pub id: String,
    pub name: String,
    pub formula_expression: String,
    pub error_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_display_field: Option<String>,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ValidationRule {
    /// A new, empty, active rule with a fresh id (filled by `apply_rule`).
    pub fn blank() -> ValidationRule {
        ValidationRule {
            id: mosaic_types::new_id(),
            name: String::new(),
            formula_expression: String::new(),
            error_message: String::new(),
            error_display_field: None,
            active: true,
            description: None,
        }
    }
}

/// An object definition with lookup tables, shared read-only across requests.
#[derive(Debug)]
pub struct ObjectMeta {
    pub def: ObjectDef,
    by_name: HashMap<String, usize>,
}

impl ObjectMeta {
    pub fn new(def: ObjectDef) -> ObjectMeta {
        let by_name = def
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.api_name.to_lowercase(), i))
            .collect();
        ObjectMeta { def, by_name }
    }

    /// A custom field by api name, case-insensitively.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.by_name
            .get(&name.to_lowercase())
            .and_then(|i| self.def.fields.get(*i))
    }

    pub fn id(&self) -> &str {
        &self.def.id
    }

    pub fn api_name(&self) -> &str {
        &self.def.api_name
    }

    /// Every stored slot of the object (what a full read selects).
    pub fn slots(&self) -> Vec<FlexSlot> {
        self.def.fields.iter().filter_map(|f| f.slot).collect()
    }
}

/// System fields every object has, in Data API order.
pub const SYSTEM_FIELDS: [&str; 8] = [
    "Id",
    "Name",
    "OwnerId",
    "CreatedById",
    "CreatedDate",
    "LastModifiedById",
    "LastModifiedDate",
    "IsDeleted",
];

/// Names no custom field may take (case-insensitive).
pub fn is_reserved_field_name(name: &str) -> bool {
    const EXTRA: [&str; 4] = ["SystemModstamp", "attributes", "Owner", "RecordTypeId"];
    SYSTEM_FIELDS
        .iter()
        .chain(EXTRA.iter())
        .any(|s| s.eq_ignore_ascii_case(name))
}

/// The current format of stored object definitions. Format 1 documents held
/// the child-side relationship name in `child_relationship_name` and a
/// customizable parent-side name in `relationship_name`; from format 2,
/// `relationship_name` is the child side (as Salesforce's CustomField
/// metadata) and the parent side is always derived from the field name.
pub const DOC_FORMAT: u32 = 2;

fn legacy_format() -> u32 {
    1
}

/// Upgrades a stored object definition document to [`DOC_FORMAT`] in place.
pub fn upgrade_document(doc: &mut serde_json::Value) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    let format = obj.get("format").and_then(|f| f.as_u64()).unwrap_or(1);
    if format < 2 {
        let child_default =
            default_child_relationship(obj.get("api_name").and_then(|n| n.as_str()).unwrap_or(""));
        if let Some(fields) = obj.get_mut("fields").and_then(|f| f.as_array_mut()) {
            for f in fields.iter_mut().filter_map(|f| f.as_object_mut()) {
                let child = f.remove("child_relationship_name");
                let is_ref = matches!(
                    f.get("data_type").and_then(|t| t.as_str()),
                    Some("lookup" | "master_detail")
                );
                f.remove("relationship_name");
                if is_ref {
                    let child = child
                        .filter(|c| c.is_string())
                        .unwrap_or_else(|| serde_json::Value::String(child_default.clone()));
                    f.insert("relationship_name".into(), child);
                }
            }
        }
    }
    obj.insert("format".into(), serde_json::Value::from(DOC_FORMAT));
}

/// The child relationship name given to a reference field of `child_object`
/// when none is chosen: `Line_Item__c` → `Line_Items__r`.
pub fn default_child_relationship(child_object: &str) -> String {
    match child_object.strip_suffix("__c") {
        Some(base) => format!("{base}s__r"),
        None => format!("{child_object}s"),
    }
}
