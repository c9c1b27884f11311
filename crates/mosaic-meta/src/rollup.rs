//! Roll-up summary fields: COUNT, SUM, MIN or MAX over the live detail
//! records of a master-detail relationship, optionally filtered — their
//! definition on the master, the checks against the detail object they
//! summarize, and the metadata that depends on them.
//!
//! Values are computed when read (decision 0039): nothing is stored, so a
//! roll-up never drifts and a definition change applies at once.

use crate::model::{FieldDef, ObjectDef, ObjectMeta};
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most roll-up summary fields one object may define (Salesforce: 40).
pub const MAX_ROLLUPS_PER_OBJECT: usize = 40;
/// Most filter criteria one roll-up may have.
pub const MAX_FILTER_ITEMS: usize = 10;
/// Longest filter criterion value.
pub const MAX_FILTER_VALUE_LEN: usize = 255;
/// Most comma-separated values one `equals` / `notEqual` criterion may list.
pub const MAX_FILTER_VALUES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryOperation {
    Count,
    Sum,
    Min,
    Max,
}

impl SummaryOperation {
    pub fn parse(s: &str) -> Option<SummaryOperation> {
        match s.to_ascii_lowercase().as_str() {
            "count" => Some(SummaryOperation::Count),
            "sum" => Some(SummaryOperation::Sum),
            "min" => Some(SummaryOperation::Min),
            "max" => Some(SummaryOperation::Max),
            _ => None,
        }
    }
}

/// A filter criterion's comparison (Salesforce's FilterItem operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FilterOperation {
    /// One of the comma-separated values.
    Equals,
    /// None of the comma-separated values.
    NotEqual,
    LessThan,
    GreaterThan,
    LessOrEqual,
    GreaterOrEqual,
    /// Text contains the value (case-insensitive).
    Contains,
    /// Text starts with the value (case-insensitive).
    StartsWith,
}

impl FilterOperation {
    pub const ALL: [(&'static str, FilterOperation); 8] = [
        ("equals", FilterOperation::Equals),
        ("notEqual", FilterOperation::NotEqual),
        ("lessThan", FilterOperation::LessThan),
        ("greaterThan", FilterOperation::GreaterThan),
        ("lessOrEqual", FilterOperation::LessOrEqual),
        ("greaterOrEqual", FilterOperation::GreaterOrEqual),
        ("contains", FilterOperation::Contains),
        ("startsWith", FilterOperation::StartsWith),
    ];
    pub fn parse(s: &str) -> Option<FilterOperation> {
        Self::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, o)| *o)
    }
}

/// One filter criterion on the detail records: `field operation value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterItem {
    pub field: String,
    pub operation: FilterOperation,
    #[serde(default)]
    pub value: String,
}

/// The definition of a roll-up summary field (Salesforce's CustomField
/// options, snake case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupDef {
    /// `Child__c.Master__c`: the detail object and its master-detail field.
    pub summary_foreign_key: String,
    pub summary_operation: SummaryOperation,
    /// `Child__c.Field__c` (not for count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarized_field: Option<String>,
    /// All must hold for a detail record to count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub summary_filter_items: Vec<FilterItem>,
    /// The detail object's id (resolved on save; survives renames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarized_object_id: Option<String>,
}

fn bad(field: &str, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

/// Splits `Object.Field` (or a bare `Field`).
fn split(path: &str) -> (Option<&str>, &str) {
    match path.split_once('.') {
        Some((o, f)) => (Some(o.trim()), f.trim()),
        None => (None, path.trim()),
    }
}

/// The detail object of a roll-up, by id when resolved, else by name.
pub fn detail_object<'a>(defs: &'a [&'a ObjectDef], r: &RollupDef) -> Option<&'a ObjectDef> {
    if let Some(id) = &r.summarized_object_id {
        if let Some(d) = defs.iter().find(|d| &d.id == id) {
            return Some(d);
        }
    }
    let (obj, _) = split(&r.summary_foreign_key);
    let obj = obj?;
    defs.iter()
        .find(|d| d.api_name.eq_ignore_ascii_case(obj))
        .copied()
}

/// Types a filter criterion may test.
fn filterable(t: DataType) -> bool {
    t.pool().is_some()
        && !matches!(
            t,
            DataType::LongText
                | DataType::RichText
                | DataType::EncryptedText
                | DataType::Geolocation
                | DataType::MultiPicklist
        )
}

/// Checks and completes every roll-up summary field of `obj` against the
/// tenant's other objects (`defs`, which may hold an older copy of `obj`):
/// the detail object and master-detail field, the summarized field and its
/// type, the filter criteria; sets the result type, precision and scale.
pub fn check_object(defs: &[Arc<ObjectMeta>], obj: &mut ObjectDef) -> MosaicResult<()> {
    let count = obj
        .fields
        .iter()
        .filter(|f| f.data_type == DataType::RollupSummary)
        .count();
    if count == 0 {
        return Ok(());
    }
    if count > MAX_ROLLUPS_PER_OBJECT {
        return Err(MosaicError::field(
            ErrorCode::LIMIT_EXCEEDED,
            "data_type",
            format!("an object may have at most {MAX_ROLLUPS_PER_OBJECT} roll-up summary fields"),
        ));
    }
    let master_id = obj.id.clone();
    let others: Vec<ObjectDef> = defs
        .iter()
        .filter(|d| d.def.id != master_id)
        .map(|d| d.def.clone())
        .collect();
    let mut refs: Vec<&ObjectDef> = others.iter().collect();
    let me = obj.clone();
    refs.push(&me);
    let mut checked = Vec::new();
    for f in obj.fields.iter() {
        if f.data_type == DataType::RollupSummary {
            checked.push(check_field(&refs, &master_id, f)?);
        }
    }
    let mut it = checked.into_iter();
    for f in obj.fields.iter_mut() {
        if f.data_type == DataType::RollupSummary {
            if let Some(c) = it.next() {
                *f = c;
            }
        }
    }
    Ok(())
}

fn check_field(defs: &[&ObjectDef], master_id: &str, f: &FieldDef) -> MosaicResult<FieldDef> {
    let mut f = f.clone();
    let mut r = f.rollup.clone().ok_or_else(|| {
        bad(
            "summary_foreign_key",
            "a rollup_summary field needs summary_foreign_key and summary_operation",
        )
    })?;
    let (obj_name, fk_name) = split(&r.summary_foreign_key);
    if obj_name.is_none() || fk_name.is_empty() {
        return Err(bad(
            "summary_foreign_key",
            format!(
                "summary_foreign_key '{}' must name the detail object and its master-detail field, e.g. Line_Item__c.Invoice__c",
                r.summary_foreign_key.chars().take(80).collect::<String>()
            ),
        ));
    }
    // By name; after a rename of the detail object, by its kept id.
    let child = defs
        .iter()
        .find(|d| obj_name.is_some_and(|n| d.api_name.eq_ignore_ascii_case(n)))
        .or_else(|| {
            r.summarized_object_id
                .as_ref()
                .and_then(|id| defs.iter().find(|d| &d.id == id))
        })
        .copied()
        .ok_or_else(|| {
            bad(
                "summary_foreign_key",
                format!(
                    "summary_foreign_key: '{}' is not an object of this tenant",
                    obj_name
                        .unwrap_or_default()
                        .chars()
                        .take(80)
                        .collect::<String>()
                ),
            )
        })?;
    let fk = child
        .fields
        .iter()
        .find(|x| x.api_name.eq_ignore_ascii_case(fk_name))
        .ok_or_else(|| {
            bad(
                "summary_foreign_key",
                format!(
                    "summary_foreign_key: '{}' has no field '{}'",
                    child.api_name,
                    fk_name.chars().take(80).collect::<String>()
                ),
            )
        })?;
    if fk.data_type != DataType::MasterDetail {
        return Err(bad(
            "summary_foreign_key",
            format!(
                "summary_foreign_key: {}.{} is a {} field; roll-up summaries need a master_detail relationship",
                child.api_name, fk.api_name, fk.data_type
            ),
        ));
    }
    if fk.lookup_object_id.as_deref() != Some(master_id) {
        return Err(bad(
            "summary_foreign_key",
            format!(
                "summary_foreign_key: {}.{} is not a master-detail relationship to this object",
                child.api_name, fk.api_name
            ),
        ));
    }
    r.summary_foreign_key = format!("{}.{}", child.api_name, fk.api_name);
    r.summarized_object_id = Some(child.id.clone());
    let (result, precision, scale) = match (r.summary_operation, &r.summarized_field) {
        (SummaryOperation::Count, Some(_)) => {
            return Err(bad(
                "summarized_field",
                "summarized_field does not apply to count (it counts the detail records)",
            ))
        }
        (SummaryOperation::Count, None) => (DataType::Number, 18, 0),
        (_, None) => {
            return Err(bad(
                "summarized_field",
                "summarized_field is required for sum, min and max",
            ))
        }
        (op, Some(path)) => {
            let (o, name) = split(path);
            if o.is_some_and(|o| !o.eq_ignore_ascii_case(&child.api_name)) {
                return Err(bad(
                    "summarized_field",
                    format!(
                        "summarized_field '{}' must be a field of {}",
                        path.chars().take(80).collect::<String>(),
                        child.api_name
                    ),
                ));
            }
            let sf = child
                .fields
                .iter()
                .find(|x| x.api_name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    bad(
                        "summarized_field",
                        format!(
                            "summarized_field: '{}' has no field '{}'",
                            child.api_name,
                            name.chars().take(80).collect::<String>()
                        ),
                    )
                })?;
            let numeric = matches!(
                sf.data_type,
                DataType::Number | DataType::Currency | DataType::Percent
            );
            let dated = matches!(sf.data_type, DataType::Date | DataType::Datetime);
            let ok = match op {
                SummaryOperation::Sum => numeric,
                _ => numeric || dated,
            };
            if !ok {
                return Err(bad(
                    "summarized_field",
                    format!(
                        "summarized_field: {}.{} is a {} field; {} summarizes {}",
                        child.api_name,
                        sf.api_name,
                        sf.data_type,
                        match op {
                            SummaryOperation::Sum => "sum",
                            SummaryOperation::Min => "min",
                            _ => "max",
                        },
                        if op == SummaryOperation::Sum {
                            "number, currency and percent fields"
                        } else {
                            "number, currency, percent, date and datetime fields"
                        }
                    ),
                ));
            }
            r.summarized_field = Some(format!("{}.{}", child.api_name, sf.api_name));
            (
                sf.data_type,
                sf.precision.unwrap_or(18),
                sf.scale.unwrap_or(0),
            )
        }
    };
    if r.summary_filter_items.len() > MAX_FILTER_ITEMS {
        return Err(bad(
            "summary_filter_items",
            format!("a roll-up may have at most {MAX_FILTER_ITEMS} filter criteria"),
        ));
    }
    for (i, item) in r.summary_filter_items.iter_mut().enumerate() {
        let at = format!("summary_filter_items[{i}]");
        let (o, name) = split(&item.field);
        if o.is_some_and(|o| !o.eq_ignore_ascii_case(&child.api_name)) {
            return Err(bad(
                &at,
                format!("{at}.field must be a field of {}", child.api_name),
            ));
        }
        let ff = child
            .fields
            .iter()
            .find(|x| x.api_name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                bad(
                    &at,
                    format!(
                        "{at}.field: '{}' has no field '{}'",
                        child.api_name,
                        name.chars().take(80).collect::<String>()
                    ),
                )
            })?;
        if !filterable(ff.data_type) {
            return Err(bad(
                &at,
                format!(
                    "{at}.field: {} fields cannot be used in roll-up filter criteria",
                    ff.data_type
                ),
            ));
        }
        if item.value.chars().count() > MAX_FILTER_VALUE_LEN {
            return Err(bad(
                &at,
                format!("{at}.value is longer than {MAX_FILTER_VALUE_LEN} characters"),
            ));
        }
        let text = matches!(
            ff.data_type,
            DataType::Text
                | DataType::Textarea
                | DataType::Email
                | DataType::Phone
                | DataType::Url
                | DataType::Picklist
                | DataType::AutoNumber
        );
        match item.operation {
            FilterOperation::Contains | FilterOperation::StartsWith if !text => {
                return Err(bad(
                    &at,
                    format!(
                        "{at}.operation: contains and startsWith apply to text fields, not {}",
                        ff.data_type
                    ),
                ))
            }
            FilterOperation::LessThan
            | FilterOperation::GreaterThan
            | FilterOperation::LessOrEqual
            | FilterOperation::GreaterOrEqual
                if matches!(
                    ff.data_type,
                    DataType::Boolean | DataType::Lookup | DataType::MasterDetail
                ) =>
            {
                return Err(bad(
                    &at,
                    format!(
                        "{at}.operation: {} fields compare only with equals and notEqual",
                        ff.data_type
                    ),
                ))
            }
            _ => {}
        }
        let values = filter_values(item);
        if values.len() > MAX_FILTER_VALUES {
            return Err(bad(
                &at,
                format!("{at}.value lists more than {MAX_FILTER_VALUES} values"),
            ));
        }
        for v in &values {
            if v.is_empty() {
                continue;
            }
            crate::coerce::coerce(ff, &filter_json(ff.data_type, v)).map_err(|e| {
                bad(
                    &at,
                    format!(
                        "{at}.value '{}' is not a valid {} value: {}",
                        v.chars().take(80).collect::<String>(),
                        ff.data_type,
                        e.message
                    ),
                )
            })?;
        }
        item.field = ff.api_name.clone();
    }
    f.rollup = Some(r);
    f.formula_return_type = Some(result);
    f.precision = Some(precision);
    f.scale = Some(scale);
    Ok(f)
}

/// The values of a criterion: `equals` / `notEqual` take a comma-separated
/// list (as Salesforce); the others one value. An empty value is blank.
pub fn filter_values(item: &FilterItem) -> Vec<String> {
    match item.operation {
        FilterOperation::Equals | FilterOperation::NotEqual => item
            .value
            .split(',')
            .map(|v| v.trim().to_string())
            .collect(),
        _ => vec![item.value.clone()],
    }
}

/// A criterion value as the JSON a record write would carry.
pub fn filter_json(t: DataType, v: &str) -> serde_json::Value {
    match t {
        DataType::Number | DataType::Currency | DataType::Percent | DataType::Boolean => {
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()))
        }
        _ => serde_json::Value::String(v.to_string()),
    }
}

/// The roll-ups that use field `field` of object `object_id` (as the
/// master-detail link, the summarized field or in a filter), as
/// `Object.Field` labels; or that summarize the object at all when `field`
/// is `None`.
pub fn dependents(defs: &[Arc<ObjectMeta>], object_id: &str, field: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for o in defs {
        for f in &o.def.fields {
            let Some(r) = &f.rollup else { continue };
            if r.summarized_object_id.as_deref() != Some(object_id) {
                continue;
            }
            let hit = match field {
                None => o.def.id != object_id,
                Some(name) => {
                    let is = |p: &str| split(p).1.eq_ignore_ascii_case(name);
                    is(&r.summary_foreign_key)
                        || r.summarized_field.as_deref().is_some_and(is)
                        || r.summary_filter_items.iter().any(|i| is(&i.field))
                }
            };
            if hit {
                out.push(format!("roll-up summary {}.{}", o.def.api_name, f.api_name));
            }
        }
    }
    out.sort();
    out
}
