//! Metadata API inputs and their validation into definitions.

use crate::coerce::{coerce, default_length};
use crate::model::*;
use chrono::Utc;
use mosaic_types::{new_id, DataType, ErrorCode, MosaicError, MosaicResult};
use regex::Regex;
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;
use std::sync::LazyLock;

/// Longest api name (without the `__c` suffix), as Salesforce.
pub const MAX_API_NAME_LEN: usize = 40;
pub const MAX_LABEL_LEN: usize = 80;
pub const MAX_DESCRIPTION_LEN: usize = 1000;
pub const MAX_PICKLIST_VALUES: usize = 1000;
pub const MAX_TEXT_LENGTH: u32 = 255;
pub const MAX_LONG_TEXT_LENGTH: u32 = 131_072;
pub const MAX_ENCRYPTED_LENGTH: u32 = 175;
pub const MAX_PRECISION: u32 = 18;
/// Most fields (stored and computed) one object may define.
pub const MAX_FIELDS_PER_OBJECT: usize = 500;
/// Most objects one tenant may define.
pub const MAX_OBJECTS_PER_TENANT: usize = 2000;

static API_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9_]*(__c)?$").expect("api name regex"));

fn some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

/// Body of object create (all of it) and update (any subset).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectInput {
    pub api_name: Option<String>,
    pub label: Option<String>,
    pub plural_label: Option<String>,
    pub description: Option<String>,
    pub sharing_model: Option<SharingModel>,
    pub enable_history: Option<bool>,
    pub version: Option<i64>,
    pub name_field: Option<NameFieldInput>,
    pub fields: Option<Vec<FieldInput>>,
    // Read-only keys tolerated so that a GET result can be sent back.
    #[serde(default, rename = "id")]
    pub _id: Option<Json>,
    #[serde(default, rename = "created_at")]
    pub _created_at: Option<Json>,
    #[serde(default, rename = "updated_at")]
    pub _updated_at: Option<Json>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameFieldInput {
    pub label: Option<String>,
    pub data_type: Option<String>,
    pub length: Option<u32>,
    pub auto_number_format: Option<String>,
    pub auto_number_start: Option<i64>,
    #[serde(default, rename = "counter_id")]
    pub _counter_id: Option<Json>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PicklistInput {
    pub value: String,
    pub label: Option<String>,
    pub is_default: Option<bool>,
    pub is_active: Option<bool>,
    pub sort_order: Option<i32>,
    pub color: Option<String>,
}

/// Body of field create (all of it) and update (any subset).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldInput {
    pub api_name: Option<String>,
    pub label: Option<String>,
    pub data_type: Option<String>,
    pub length: Option<u32>,
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    pub is_required: Option<bool>,
    pub is_unique: Option<bool>,
    pub is_indexed: Option<bool>,
    pub is_external_id: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    pub default_value: Option<Json>,
    pub default_value_formula: Option<String>,
    pub picklist_values: Option<Vec<PicklistInput>>,
    pub is_restricted: Option<bool>,
    pub lookup_object: Option<String>,
    pub relationship_name: Option<String>,
    pub child_relationship_name: Option<String>,
    pub cascade_delete: Option<bool>,
    pub formula_expression: Option<String>,
    pub formula_return_type: Option<String>,
    pub formula_blank_as_zero: Option<bool>,
    pub auto_number_format: Option<String>,
    pub auto_number_start: Option<i64>,
    pub help_text: Option<String>,
    pub description: Option<String>,
    pub version: Option<i64>,
    /// Roll-up summary: `Child__c.Master__c`.
    pub summary_foreign_key: Option<String>,
    /// Roll-up summary: count, sum, min or max.
    pub summary_operation: Option<String>,
    /// Roll-up summary: `Child__c.Field__c` or `Field__c`.
    pub summarized_field: Option<String>,
    /// Roll-up summary: criteria every counted detail record meets.
    pub summary_filter_items: Option<Vec<FilterItemInput>>,
    #[serde(default, rename = "summarized_object_id")]
    pub _summarized_object_id: Option<Json>,
    #[serde(default, rename = "id")]
    pub _id: Option<Json>,
    #[serde(default, rename = "slot")]
    pub _slot: Option<Json>,
    #[serde(default, rename = "created_at")]
    pub _created_at: Option<Json>,
    #[serde(default, rename = "lookup_object_id")]
    pub _lookup_object_id: Option<Json>,
}

/// One roll-up filter criterion as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterItemInput {
    pub field: Option<String>,
    pub operation: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub value: Option<Json>,
}

fn bad(field: &str, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

/// Checks an object or field api name.
pub fn check_api_name(what: &str, name: &str) -> MosaicResult<()> {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let ok = API_NAME.is_match(name)
        && !base.is_empty()
        && base.len() <= MAX_API_NAME_LEN
        && !base.contains("__")
        && !base.ends_with('_');
    if !ok {
        return Err(bad(
            "api_name",
            format!(
                "invalid {what} api_name '{}': it must start with a letter, contain only letters, digits and single underscores, not end with an underscore, be at most {MAX_API_NAME_LEN} characters, and may end in __c",
                name.chars().take(80).collect::<String>()
            ),
        ));
    }
    Ok(())
}

fn check_text(field: &str, v: &str, max: usize, required: bool) -> MosaicResult<()> {
    if required && v.trim().is_empty() {
        return Err(bad(field, format!("{field} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(bad(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// A readable label from an api name: `Annual_Revenue__c` → `Annual Revenue`.
pub fn label_from(api_name: &str) -> String {
    api_name
        .strip_suffix("__c")
        .unwrap_or(api_name)
        .replace('_', " ")
}

/// Resolves a lookup target by api name → (object id, canonical api name).
pub type TargetResolver<'a> = &'a dyn Fn(&str) -> Option<(String, String)>;

/// The roll-up summary options of a create or update request, checked for
/// their shape (the detail object is checked by
/// [`crate::rollup::check_object`]).
fn apply_rollup(f: &mut FieldDef, input: &mut FieldInput) -> MosaicResult<()> {
    use crate::rollup::{FilterItem, FilterOperation, RollupDef, SummaryOperation};
    let given = [
        ("summary_foreign_key", input.summary_foreign_key.is_some()),
        ("summary_operation", input.summary_operation.is_some()),
        ("summarized_field", input.summarized_field.is_some()),
        ("summary_filter_items", input.summary_filter_items.is_some()),
    ];
    if f.data_type != DataType::RollupSummary {
        if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
            return Err(bad(
                name,
                format!(
                    "{name} applies only to rollup_summary fields, not {}",
                    f.data_type
                ),
            ));
        }
        return Ok(());
    }
    // Derived from the summarized field: a field sent back as read is fine.
    input.formula_return_type = None;
    input.precision = None;
    input.scale = None;
    let op = match input.summary_operation.take() {
        Some(o) => Some(SummaryOperation::parse(&o).ok_or_else(|| {
            bad(
                "summary_operation",
                format!(
                    "summary_operation '{}' is not one of count, sum, min, max",
                    o.chars().take(40).collect::<String>()
                ),
            )
        })?),
        None => None,
    };
    let mut r = match (f.rollup.take(), input.summary_foreign_key.take(), op) {
        (Some(mut r), fk, op) => {
            if let Some(fk) = fk {
                r.summary_foreign_key = fk;
            }
            if let Some(op) = op {
                r.summary_operation = op;
                if op == SummaryOperation::Count && input.summarized_field.is_none() {
                    r.summarized_field = None;
                }
            }
            r
        }
        (None, Some(fk), Some(op)) => RollupDef {
            summary_foreign_key: fk,
            summary_operation: op,
            summarized_field: None,
            summary_filter_items: Vec::new(),
            summarized_object_id: None,
        },
        (None, None, _) => {
            return Err(bad(
                "summary_foreign_key",
                "summary_foreign_key is required for a rollup_summary field, e.g. Line_Item__c.Invoice__c",
            ))
        }
        (None, Some(_), None) => {
            return Err(bad(
                "summary_operation",
                "summary_operation is required for a rollup_summary field: count, sum, min or max",
            ))
        }
    };
    if let Some(sf) = input.summarized_field.take() {
        r.summarized_field = Some(sf).filter(|s| !s.trim().is_empty());
    }
    if let Some(items) = input.summary_filter_items.take() {
        if items.len() > crate::rollup::MAX_FILTER_ITEMS {
            return Err(bad(
                "summary_filter_items",
                format!(
                    "a roll-up may have at most {} filter criteria",
                    crate::rollup::MAX_FILTER_ITEMS
                ),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, it) in items.into_iter().enumerate() {
            let at = format!("summary_filter_items[{i}]");
            let field = it
                .field
                .filter(|x| !x.trim().is_empty())
                .ok_or_else(|| bad(&at, format!("{at}.field is required")))?;
            let op_name = it
                .operation
                .ok_or_else(|| bad(&at, format!("{at}.operation is required")))?;
            let operation = FilterOperation::parse(&op_name).ok_or_else(|| {
                bad(
                    &at,
                    format!(
                        "{at}.operation '{}' is not one of {}",
                        op_name.chars().take(40).collect::<String>(),
                        FilterOperation::ALL
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            let value = match it.value {
                None | Some(Json::Null) => String::new(),
                Some(Json::String(s)) => s,
                Some(v @ (Json::Number(_) | Json::Bool(_))) => v.to_string(),
                Some(_) => {
                    return Err(bad(
                        &at,
                        format!("{at}.value must be a string, number or boolean"),
                    ))
                }
            };
            out.push(FilterItem {
                field,
                operation,
                value,
            });
        }
        r.summary_filter_items = out;
    }
    f.rollup = Some(r);
    Ok(())
}

/// Builds a new field from a create request.
pub fn new_field(input: FieldInput, targets: TargetResolver) -> MosaicResult<FieldDef> {
    let api_name = input
        .api_name
        .clone()
        .ok_or_else(|| bad("api_name", "api_name is required"))?;
    check_api_name("field", &api_name)?;
    if is_reserved_field_name(&api_name) {
        return Err(bad(
            "api_name",
            format!("'{api_name}' is a standard field name and cannot be used"),
        ));
    }
    let dt_name = input
        .data_type
        .clone()
        .ok_or_else(|| bad("data_type", "data_type is required"))?;
    let data_type = parse_type(&dt_name)?;
    let mut f = FieldDef {
        id: new_id(),
        label: label_from(&api_name),
        api_name,
        data_type,
        length: None,
        precision: None,
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
        cascade_delete: data_type == DataType::MasterDetail,
        formula_expression: None,
        formula_return_type: None,
        formula_blank_as_zero: false,
        auto_number_format: None,
        auto_number_start: None,
        help_text: None,
        description: None,
        slot: None,
        created_at: Utc::now(),
        rollup: None,
    };
    if data_type.is_reference() {
        let target = input.lookup_object.as_deref().ok_or_else(|| {
            bad(
                "lookup_object",
                format!("lookup_object is required for a {data_type} field"),
            )
        })?;
        let (id, canonical) = targets(target).ok_or_else(|| {
            bad(
                "lookup_object",
                format!("lookup_object '{target}' is not an object of this tenant"),
            )
        })?;
        f.lookup_object_id = Some(id);
        let _ = canonical;
    } else if input.lookup_object.is_some() {
        return Err(bad(
            "lookup_object",
            "lookup_object applies only to lookup and master_detail fields",
        ));
    }
    if data_type == DataType::Formula
        && (input.formula_expression.is_none() || input.formula_return_type.is_none())
    {
        return Err(bad(
            "formula_expression",
            "a formula field needs formula_expression and formula_return_type (text, number, currency, percent, date, datetime, time, boolean)",
        ));
    }
    if data_type == DataType::AutoNumber && input.auto_number_format.is_none() {
        return Err(bad(
            "auto_number_format",
            "auto_number_format is required for an auto_number field, e.g. INV-{0000}",
        ));
    }
    apply_update(&mut f, input, targets)?;
    Ok(f)
}

fn parse_type(name: &str) -> MosaicResult<DataType> {
    let t = DataType::parse(name).ok_or_else(|| {
        bad(
            "data_type",
            format!(
                "unknown data_type '{}'; valid types: {}",
                name.chars().take(40).collect::<String>(),
                DataType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    Ok(t)
}

/// Applies an update request onto a field and validates the result. Used by
/// create (onto a fresh field) and update.
pub fn apply_update(
    f: &mut FieldDef,
    mut input: FieldInput,
    targets: TargetResolver,
) -> MosaicResult<()> {
    if let Some(t) = &input.data_type {
        if parse_type(t)? != f.data_type {
            return Err(MosaicError::field(
                ErrorCode::NOT_IMPLEMENTED,
                "data_type",
                "changing a field's data_type is not supported: create a new field and copy the data",
            ));
        }
    }
    apply_rollup(f, &mut input)?;
    if let Some(n) = input.api_name {
        check_api_name("field", &n)?;
        if is_reserved_field_name(&n) {
            return Err(bad(
                "api_name",
                format!("'{n}' is a standard field name and cannot be used"),
            ));
        }
        f.api_name = n;
    }
    if let Some(l) = input.label {
        check_text("label", &l, MAX_LABEL_LEN, true)?;
        f.label = l;
    }
    if let Some(d) = input.description {
        check_text("description", &d, MAX_DESCRIPTION_LEN, false)?;
        f.description = Some(d).filter(|d| !d.is_empty());
    }
    if let Some(h) = input.help_text {
        check_text("help_text", &h, MAX_DESCRIPTION_LEN, false)?;
        f.help_text = Some(h).filter(|d| !d.is_empty());
    }
    let t = f.data_type;
    if let Some(len) = input.length {
        let max = match t {
            DataType::Text | DataType::Textarea => MAX_TEXT_LENGTH,
            DataType::LongText | DataType::RichText => MAX_LONG_TEXT_LENGTH,
            DataType::EncryptedText => MAX_ENCRYPTED_LENGTH,
            DataType::Formula => MAX_TEXT_LENGTH,
            _ => {
                return Err(bad(
                    "length",
                    format!("length does not apply to {t} fields"),
                ))
            }
        };
        if len == 0 || len > max {
            return Err(bad(
                "length",
                format!("length must be between 1 and {max} for {t} fields"),
            ));
        }
        f.length = Some(len);
    } else if f.length.is_none() {
        f.length = default_length(t).filter(|_| t != DataType::Picklist);
    }
    if let Some(rt) = &input.formula_return_type {
        if t != DataType::Formula {
            return Err(bad(
                "formula_return_type",
                format!("formula_return_type applies only to formula fields, not {t}"),
            ));
        }
        let parsed = DataType::parse(rt).filter(|x| crate::formulas::return_kind(*x).is_some()).ok_or_else(|| {
            bad("formula_return_type", "formula_return_type must be one of text, number, currency, percent, date, datetime, time, boolean")
        })?;
        f.formula_return_type = Some(parsed);
    }
    if let Some(e) = input.formula_expression {
        if t != DataType::Formula {
            return Err(bad(
                "formula_expression",
                format!("formula_expression applies only to formula fields, not {t}"),
            ));
        }
        f.formula_expression = Some(e);
    }
    if let Some(b) = input.formula_blank_as_zero {
        if t != DataType::Formula {
            return Err(bad(
                "formula_blank_as_zero",
                "formula_blank_as_zero applies only to formula fields",
            ));
        }
        f.formula_blank_as_zero = b;
    }
    let numeric = matches!(t, DataType::Number | DataType::Currency | DataType::Percent)
        || (t == DataType::Formula
            && matches!(
                f.formula_return_type,
                Some(DataType::Number | DataType::Currency | DataType::Percent)
            ));
    if (input.precision.is_some() || input.scale.is_some()) && !numeric {
        return Err(bad(
            "precision",
            format!("precision and scale do not apply to {t} fields"),
        ));
    }
    if numeric {
        let p = input.precision.or(f.precision).unwrap_or(MAX_PRECISION);
        let s = input
            .scale
            .or(f.scale)
            .unwrap_or(if t == DataType::Currency { 2 } else { 0 });
        if p == 0 || p > MAX_PRECISION {
            return Err(bad(
                "precision",
                format!("precision must be between 1 and {MAX_PRECISION}"),
            ));
        }
        if s > p {
            return Err(bad("scale", "scale must not exceed precision"));
        }
        f.precision = Some(p);
        f.scale = Some(s);
    }
    if let Some(b) = input.is_required {
        f.is_required = b;
    }
    if t == DataType::MasterDetail {
        f.is_required = true;
        f.cascade_delete = true;
        if input.cascade_delete == Some(false) {
            return Err(bad(
                "cascade_delete",
                "master_detail children are always deleted with their parent",
            ));
        }
    } else if input.cascade_delete == Some(true) {
        return Err(bad(
            "cascade_delete",
            "cascade_delete applies only to master_detail fields",
        ));
    }
    if let Some(b) = input.is_unique {
        f.is_unique = b;
    }
    if let Some(b) = input.is_indexed {
        f.is_indexed = b;
    }
    if let Some(b) = input.is_external_id {
        f.is_external_id = b;
    }
    if (f.is_unique || f.is_indexed || f.is_external_id) && !t.indexable() {
        let which = if f.is_unique {
            "is_unique"
        } else if f.is_external_id {
            "is_external_id"
        } else {
            "is_indexed"
        };
        return Err(bad(
            which,
            format!("{t} fields cannot be unique, indexed or external ids"),
        ));
    }
    // `relationship_name` is the child relationship (Salesforce's
    // CustomField `relationshipName`); `child_relationship_name` is accepted
    // as its alias.
    let chosen = match (input.relationship_name, input.child_relationship_name) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(
                "child_relationship_name",
                format!(
                    "child_relationship_name '{b}' differs from relationship_name '{a}': \
                     child_relationship_name is an alias of relationship_name (the child relationship)"
                ),
            ))
        }
        (Some(a), _) => Some(("relationship_name", a)),
        (None, Some(b)) => Some(("child_relationship_name", b)),
        (None, None) => None,
    };
    if let Some((which, r)) = chosen {
        if !t.is_reference() {
            return Err(bad(
                which,
                format!("{which} applies only to lookup and master_detail fields"),
            ));
        }
        let base = r.strip_suffix("__r").unwrap_or(&r);
        check_api_name("relationship", base).map_err(|_| {
            bad(
                which,
                format!("{which} '{r}' is not a valid relationship name (letters, digits and single underscores, optionally ending in __r)"),
            )
        })?;
        f.relationship_name = Some(r);
    }
    if let Some(l) = input.lookup_object {
        if t.is_reference() {
            let (id, _) = targets(&l).ok_or_else(|| {
                bad(
                    "lookup_object",
                    format!("lookup_object '{l}' is not an object of this tenant"),
                )
            })?;
            if f.lookup_object_id.as_deref() != Some(id.as_str()) {
                return Err(bad(
                    "lookup_object",
                    "the target of an existing relationship cannot be changed",
                ));
            }
        }
    }
    if let Some(pv) = input.picklist_values {
        if !matches!(t, DataType::Picklist | DataType::MultiPicklist) {
            return Err(bad(
                "picklist_values",
                format!("picklist_values do not apply to {t} fields"),
            ));
        }
        f.picklist_values = picklist(pv, t == DataType::MultiPicklist)?;
    }
    if matches!(t, DataType::Picklist | DataType::MultiPicklist) && f.picklist_values.is_empty() {
        return Err(bad(
            "picklist_values",
            "a picklist needs at least one value",
        ));
    }
    if let Some(b) = input.is_restricted {
        if !matches!(t, DataType::Picklist | DataType::MultiPicklist) {
            return Err(bad(
                "is_restricted",
                "is_restricted applies only to picklists",
            ));
        }
        f.is_restricted = b;
    }
    if let Some(fmt) = input.auto_number_format {
        if t != DataType::AutoNumber {
            return Err(bad(
                "auto_number_format",
                "auto_number_format applies only to auto_number fields",
            ));
        }
        check_auto_number_format(&fmt)?;
        f.auto_number_format = Some(fmt);
    }
    if let Some(s) = input.auto_number_start {
        if t != DataType::AutoNumber {
            return Err(bad(
                "auto_number_start",
                "auto_number_start applies only to auto_number fields",
            ));
        }
        if s < 0 {
            return Err(bad(
                "auto_number_start",
                "auto_number_start must not be negative",
            ));
        }
        f.auto_number_start = Some(s);
    }
    if let Some(dvf) = input.default_value_formula {
        if dvf.trim().is_empty() {
            f.default_value_formula = None;
        } else {
            if !f.is_updateable() || t.is_reference() || crate::formulas::field_kind(f).is_none() {
                return Err(bad(
                    "default_value_formula",
                    format!("{t} fields cannot have a default_value_formula"),
                ));
            }
            f.default_value_formula = Some(dvf);
        }
    }
    if let Some(dv) = input.default_value {
        if dv.is_null() {
            f.default_value = None;
        } else {
            if !f.is_updateable() || t.is_reference() {
                return Err(bad(
                    "default_value",
                    format!("{t} fields cannot have a default_value"),
                ));
            }
            coerce(f, &dv).map_err(|e| {
                bad(
                    "default_value",
                    format!("invalid default_value: {}", e.message),
                )
            })?;
            f.default_value = Some(dv);
        }
    }
    Ok(())
}

/// Checks an auto-number display format: it needs one `{0…}` counter token.
pub fn check_auto_number_format(fmt: &str) -> MosaicResult<()> {
    static TOKEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\{0+\}").expect("token regex"));
    let n = TOKEN.find_iter(fmt).count();
    if n != 1 || fmt.chars().count() > 30 {
        return Err(bad(
            "auto_number_format",
            format!("invalid auto_number_format '{fmt}': it needs exactly one counter token such as {{0000}}, may use {{YYYY}} {{YY}} {{MM}} {{DD}}, and is at most 30 characters"),
        ));
    }
    Ok(())
}

fn picklist(values: Vec<PicklistInput>, multi: bool) -> MosaicResult<Vec<PicklistValue>> {
    if values.len() > MAX_PICKLIST_VALUES {
        return Err(bad(
            "picklist_values",
            format!("at most {MAX_PICKLIST_VALUES} picklist values"),
        ));
    }
    let mut out: Vec<PicklistValue> = Vec::with_capacity(values.len());
    for (i, p) in values.into_iter().enumerate() {
        let v = p.value.trim().to_string();
        if v.is_empty() || v.chars().count() > 255 {
            return Err(bad(
                "picklist_values",
                format!("picklist value {} must be 1 to 255 characters", i + 1),
            ));
        }
        if multi && v.contains(';') {
            return Err(bad(
                "picklist_values",
                format!("multi-picklist value '{v}' must not contain ';'"),
            ));
        }
        if out.iter().any(|o| o.value.eq_ignore_ascii_case(&v)) {
            return Err(MosaicError::field(
                ErrorCode::DUPLICATE_VALUE,
                "picklist_values",
                format!("duplicate picklist value '{v}'"),
            ));
        }
        out.push(PicklistValue {
            label: p.label.unwrap_or_else(|| v.clone()),
            value: v,
            is_default: p.is_default.unwrap_or(false),
            is_active: p.is_active.unwrap_or(true),
            sort_order: p.sort_order.unwrap_or(i as i32),
            color: p.color,
        });
    }
    if !multi && out.iter().filter(|p| p.is_default).count() > 1 {
        return Err(bad(
            "picklist_values",
            "a picklist can have only one default value",
        ));
    }
    out.sort_by_key(|p| p.sort_order);
    Ok(out)
}

/// Builds a new object definition from a create request (fields are added
/// by the caller, which allocates their slots).
pub fn new_object(input: &ObjectInput) -> MosaicResult<ObjectDef> {
    let api_name = input
        .api_name
        .clone()
        .ok_or_else(|| bad("api_name", "api_name is required"))?;
    check_api_name("object", &api_name)?;
    let label = input.label.clone().unwrap_or_else(|| label_from(&api_name));
    check_text("label", &label, MAX_LABEL_LEN, true)?;
    let plural = input
        .plural_label
        .clone()
        .unwrap_or_else(|| format!("{label}s"));
    check_text("plural_label", &plural, MAX_LABEL_LEN, true)?;
    if let Some(d) = &input.description {
        check_text("description", d, MAX_DESCRIPTION_LEN, false)?;
    }
    let name_field = name_field(input.name_field.as_ref(), None)?;
    let now = Utc::now();
    Ok(ObjectDef {
        format: crate::model::DOC_FORMAT,
        id: new_id(),
        api_name,
        label,
        plural_label: plural,
        description: input.description.clone().filter(|d| !d.is_empty()),
        sharing_model: input.sharing_model.unwrap_or_default(),
        enable_history: input.enable_history.unwrap_or(false),
        version: 1,
        name_field,
        fields: vec![],
        validation_rules: vec![],
        workflow_rules: vec![],
        sharing_rules: vec![],
        layouts: vec![],
        list_views: vec![],
        pending_clear: vec![],
        created_at: now,
        updated_at: now,
    })
}

fn name_field(
    input: Option<&NameFieldInput>,
    current: Option<&NameField>,
) -> MosaicResult<NameField> {
    let mut nf = current.cloned().unwrap_or(NameField {
        label: "Name".to_string(),
        data_type: DataType::Text,
        length: 80,
        auto_number_format: None,
        auto_number_start: 1,
        counter_id: new_id(),
    });
    let Some(i) = input else { return Ok(nf) };
    if let Some(l) = &i.label {
        check_text("name_field.label", l, MAX_LABEL_LEN, true)?;
        nf.label = l.clone();
    }
    if let Some(t) = &i.data_type {
        nf.data_type = match t.as_str() {
            "text" => DataType::Text,
            "auto_number" => DataType::AutoNumber,
            other => {
                return Err(bad(
                    "name_field.data_type",
                    format!(
                        "the name field is text or auto_number, not '{}'",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
        };
    }
    if let Some(len) = i.length {
        if len == 0 || len > MAX_TEXT_LENGTH {
            return Err(bad(
                "name_field.length",
                format!("length must be between 1 and {MAX_TEXT_LENGTH}"),
            ));
        }
        nf.length = len;
    }
    if let Some(f) = &i.auto_number_format {
        check_auto_number_format(f)?;
        nf.auto_number_format = Some(f.clone());
    }
    if let Some(s) = i.auto_number_start {
        if s < 0 {
            return Err(bad(
                "name_field.auto_number_start",
                "auto_number_start must not be negative",
            ));
        }
        nf.auto_number_start = s;
    }
    if nf.data_type == DataType::AutoNumber && nf.auto_number_format.is_none() {
        return Err(bad(
            "name_field.auto_number_format",
            "an auto_number name field needs auto_number_format, e.g. A-{0000}",
        ));
    }
    Ok(nf)
}

/// Applies an object update request (not its fields) onto a definition.
pub fn apply_object_update(o: &mut ObjectDef, input: &ObjectInput) -> MosaicResult<()> {
    if input.fields.is_some() {
        return Err(bad(
            "fields",
            "fields are changed through /objects/{object}/fields",
        ));
    }
    if let Some(n) = &input.api_name {
        check_api_name("object", n)?;
        o.api_name = n.clone();
    }
    if let Some(l) = &input.label {
        check_text("label", l, MAX_LABEL_LEN, true)?;
        o.label = l.clone();
    }
    if let Some(l) = &input.plural_label {
        check_text("plural_label", l, MAX_LABEL_LEN, true)?;
        o.plural_label = l.clone();
    }
    if let Some(d) = &input.description {
        check_text("description", d, MAX_DESCRIPTION_LEN, false)?;
        o.description = Some(d.clone()).filter(|d| !d.is_empty());
    }
    if let Some(s) = input.sharing_model {
        o.sharing_model = s;
    }
    if let Some(h) = input.enable_history {
        o.enable_history = h;
    }
    if input.name_field.is_some() {
        o.name_field = name_field(input.name_field.as_ref(), Some(&o.name_field))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names() {
        for ok in ["Invoice", "Invoice__c", "A1_b", "x"] {
            assert!(check_api_name("object", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a__b",
            "a_",
            "a b",
            "Robert'); DROP TABLE",
            "__c",
            "a__c__c",
            &"a".repeat(41),
        ] {
            assert!(check_api_name("object", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_number_formats() {
        assert!(check_auto_number_format("INV-{0000}").is_ok());
        assert!(check_auto_number_format("{YYYY}-{00}").is_ok());
        assert!(check_auto_number_format("INV").is_err());
        assert!(check_auto_number_format("{00}{00}").is_err());
    }
}

/// Body of validation rule create (all of it) and update (any subset).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: Option<String>,
    pub formula_expression: Option<String>,
    pub error_message: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub error_display_field: Option<Json>,
    pub active: Option<bool>,
    pub description: Option<String>,
    pub version: Option<i64>,
    #[serde(default, rename = "id")]
    pub _id: Option<Json>,
}

/// Most validation rules one object may have (Salesforce: 100 active).
pub const MAX_VALIDATION_RULES: usize = 100;
pub const MAX_ERROR_MESSAGE_LEN: usize = 255;

/// A rule's name: an api name, not `taken` by another rule of the object.
pub fn check_rule_name(object: &str, what: &str, name: &str, taken: bool) -> MosaicResult<()> {
    check_api_name(what, name).map_err(|mut e| {
        e.fields = vec!["name".into()];
        e
    })?;
    if taken {
        return Err(MosaicError::field(
            ErrorCode::DUPLICATE_VALUE,
            "name",
            format!("object '{object}' already has a {what} named '{name}'"),
        ));
    }
    Ok(())
}

/// Applies a rule request onto a rule of `def` (a fresh one on create).
pub fn apply_rule(
    def: &ObjectDef,
    rule: &mut ValidationRule,
    input: RuleInput,
) -> MosaicResult<()> {
    if let Some(n) = input.name {
        let taken = def
            .validation_rules
            .iter()
            .any(|r| r.id != rule.id && r.name.eq_ignore_ascii_case(&n));
        check_rule_name(&def.api_name, "validation rule", &n, taken)?;
        rule.name = n;
    }
    if let Some(e) = input.formula_expression {
        rule.formula_expression = e;
    }
    if let Some(m) = input.error_message {
        check_text("error_message", &m, MAX_ERROR_MESSAGE_LEN, true)?;
        rule.error_message = m;
    }
    if let Some(d) = input.error_display_field {
        rule.error_display_field = match d {
            Json::Null => None,
            Json::String(s) => {
                let f = def
                    .fields
                    .iter()
                    .find(|f| f.api_name.eq_ignore_ascii_case(&s))
                    .ok_or_else(|| {
                        bad(
                            "error_display_field",
                            format!("object '{}' has no field '{s}'", def.api_name),
                        )
                    })?;
                Some(f.api_name.clone())
            }
            _ => {
                return Err(bad(
                    "error_display_field",
                    "error_display_field is a field api name",
                ))
            }
        };
    }
    if let Some(a) = input.active {
        rule.active = a;
    }
    if let Some(d) = input.description {
        check_text("description", &d, MAX_DESCRIPTION_LEN, false)?;
        rule.description = Some(d).filter(|d| !d.is_empty());
    }
    if rule.name.is_empty() {
        return Err(bad("name", "name is required"));
    }
    if rule.formula_expression.trim().is_empty() {
        return Err(bad("formula_expression", "formula_expression is required"));
    }
    if rule.error_message.trim().is_empty() {
        return Err(bad("error_message", "error_message is required"));
    }
    Ok(())
}
