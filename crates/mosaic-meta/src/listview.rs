//! List views: a named selection of an object's records — filters (field,
//! operator, value, custom logic, as workflow criteria), the owner scope
//! (everything / mine), columns, sort, a row limit and who sees the view
//! (everyone / its creator). Stored in the object's definition document
//! like layouts; every object also has a derived "All <plural>" view
//! ([`all_view`]).

use crate::layout::{column_name, SortDirection};
use crate::model::ObjectDef;
use crate::workflow::{check_criteria, Criteria, Operator};
use chrono::{DateTime, Utc};
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Most list views one object may have.
pub const MAX_LIST_VIEWS: usize = 100;
/// Most columns of one list view.
pub const MAX_LIST_COLUMNS: usize = 30;
/// Most sort keys of one list view (lists page by keyset on the sort
/// field and the record id).
pub const MAX_SORT_KEYS: usize = 1;
/// Largest row limit a list view may set.
pub const MAX_ROW_LIMIT: u32 = 50_000;
pub const MAX_LIST_VIEW_LABEL_LEN: usize = 80;
/// Id (and name) of the derived view of every record.
pub const ALL_VIEW_ID: &str = "all";
/// Custom fields the "All" view shows besides Name.
const ALL_VIEW_COLUMNS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Everyone,
    /// Only the user who created the view sees it.
    Me,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FilterScope {
    #[default]
    Everything,
    /// Records the viewing user owns.
    Mine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortKey {
    pub field: String,
    #[serde(default)]
    pub direction: SortDirection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListView {
    pub id: String,
    /// Developer name (an api name, unique in the object).
    pub name: String,
    pub label: String,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<Criteria>,
    #[serde(default)]
    pub filter_scope: FilterScope,
    #[serde(default)]
    pub sort: Vec<SortKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_limit: Option<u32>,
    #[serde(default)]
    pub visibility: Visibility,
    /// Who created it (sees it when visibility is `me`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ListView {
    /// Whether `user_id` sees this view.
    pub fn visible_to(&self, user_id: &str) -> bool {
        self.visibility == Visibility::Everyone || self.owner_id.as_deref() == Some(user_id)
    }
}

/// Body of a list view create (all of it) or update (any subset).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListViewInput {
    pub name: Option<String>,
    pub label: Option<String>,
    pub columns: Option<Vec<String>>,
    #[serde(default, deserialize_with = "some")]
    pub filter_criteria: Option<Json>,
    pub filter_scope: Option<FilterScope>,
    pub sort: Option<Vec<SortKey>>,
    #[serde(default, deserialize_with = "some")]
    pub row_limit: Option<Json>,
    pub visibility: Option<Visibility>,
    pub version: Option<i64>,
    #[serde(default, rename = "id")]
    pub _id: Option<Json>,
    #[serde(default, rename = "owner_id")]
    pub _owner_id: Option<Json>,
    #[serde(default, rename = "created_at")]
    pub _created_at: Option<Json>,
    #[serde(default, rename = "updated_at")]
    pub _updated_at: Option<Json>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

fn bad(field: impl Into<String>, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Whether a field can order a list (long and encrypted text cannot).
pub fn sortable(def: &ObjectDef, name: &str) -> bool {
    match def
        .fields
        .iter()
        .find(|f| f.api_name.eq_ignore_ascii_case(name))
    {
        Some(f) => !matches!(
            f.data_type,
            DataType::LongText
                | DataType::RichText
                | DataType::EncryptedText
                | DataType::MultiPicklist
                | DataType::Geolocation
                | DataType::Formula
        ),
        None => true,
    }
}

/// Applies a create / update request onto `view` (a fresh one on create).
pub fn apply_list_view(
    def: &ObjectDef,
    view: &mut ListView,
    input: ListViewInput,
) -> MosaicResult<()> {
    if let Some(n) = input.name {
        crate::validate::check_rule_name(
            &def.api_name,
            "list view",
            &n,
            n.eq_ignore_ascii_case(ALL_VIEW_ID)
                || def
                    .list_views
                    .iter()
                    .any(|v| v.id != view.id && v.name.eq_ignore_ascii_case(&n)),
        )?;
        view.name = n;
    }
    if let Some(l) = input.label {
        if l.trim().is_empty() || l.chars().count() > MAX_LIST_VIEW_LABEL_LEN {
            return Err(bad(
                "label",
                format!("a list view label is 1 to {MAX_LIST_VIEW_LABEL_LEN} characters"),
            ));
        }
        view.label = l.trim().to_string();
    }
    if let Some(cols) = input.columns {
        if cols.is_empty() || cols.len() > MAX_LIST_COLUMNS {
            return Err(bad(
                "columns",
                format!("a list view has 1 to {MAX_LIST_COLUMNS} columns"),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(cols.len());
        for (i, c) in cols.iter().enumerate() {
            let n = column_name(def, c).ok_or_else(|| {
                bad(
                    format!("columns[{i}]"),
                    format!("object '{}' has no field '{}'", def.api_name, short(c)),
                )
            })?;
            if !out.contains(&n) {
                out.push(n);
            }
        }
        view.columns = out;
    }
    if let Some(f) = input.filter_criteria {
        view.filter_criteria = match f {
            Json::Null => None,
            v => {
                let c = check_criteria(def, "filter_criteria", &v)?;
                for (i, cond) in c.conditions.iter().enumerate() {
                    if matches!(
                        cond.operator,
                        Operator::Changed | Operator::ChangedTo | Operator::ChangedFrom
                    ) {
                        return Err(bad(
                            format!("filter_criteria.conditions[{i}].operator"),
                            "changed, changed_to and changed_from apply to saves, not to list views",
                        ));
                    }
                }
                Some(c)
            }
        };
    }
    if let Some(s) = input.filter_scope {
        view.filter_scope = s;
    }
    if let Some(keys) = input.sort {
        if keys.len() > MAX_SORT_KEYS {
            return Err(bad("sort", format!("at most {MAX_SORT_KEYS} sort keys")));
        }
        let mut out = Vec::with_capacity(keys.len());
        for (i, k) in keys.into_iter().enumerate() {
            let n = column_name(def, &k.field)
                .filter(|n| sortable(def, n))
                .ok_or_else(|| {
                    bad(
                        format!("sort[{i}].field"),
                        format!(
                            "object '{}' has no sortable field '{}'",
                            def.api_name,
                            short(&k.field)
                        ),
                    )
                })?;
            out.push(SortKey {
                field: n,
                direction: k.direction,
            });
        }
        view.sort = out;
    }
    if let Some(r) = input.row_limit {
        view.row_limit = match r {
            Json::Null => None,
            v => match v.as_u64() {
                Some(n) if n >= 1 && n <= u64::from(MAX_ROW_LIMIT) => Some(n as u32),
                _ => {
                    return Err(bad(
                        "row_limit",
                        format!("row_limit is an integer from 1 to {MAX_ROW_LIMIT}"),
                    ))
                }
            },
        };
    }
    if let Some(v) = input.visibility {
        view.visibility = v;
    }
    if view.name.is_empty() {
        return Err(bad("name", "name is required"));
    }
    if view.label.is_empty() {
        view.label = crate::validate::label_from(&view.name);
    }
    if view.columns.is_empty() {
        view.columns = all_view(def).columns;
    }
    view.updated_at = Utc::now();
    Ok(())
}

/// The derived "All <plural>" view: Name and the first few listable
/// custom fields, by Name.
pub fn all_view(def: &ObjectDef) -> ListView {
    let columns = std::iter::once("Name".to_string())
        .chain(
            def.fields
                .iter()
                .filter(|f| {
                    !matches!(
                        f.data_type,
                        DataType::LongText
                            | DataType::RichText
                            | DataType::Textarea
                            | DataType::EncryptedText
                            | DataType::Geolocation
                    )
                })
                .take(ALL_VIEW_COLUMNS)
                .map(|f| f.api_name.clone()),
        )
        .collect();
    ListView {
        id: ALL_VIEW_ID.into(),
        name: format!(
            "All{}",
            def.api_name.trim_end_matches("__c").replace('_', "")
        ),
        label: format!("All {}", def.plural_label),
        columns,
        filter_criteria: None,
        filter_scope: FilterScope::Everything,
        sort: vec![SortKey {
            field: "Name".into(),
            direction: SortDirection::Asc,
        }],
        row_limit: None,
        visibility: Visibility::Everyone,
        owner_id: None,
        created_at: def.created_at,
        updated_at: def.updated_at,
    }
}

/// Removes a deleted field from `def`'s list views: its columns and sort
/// keys go, and a view filtering on it loses its filter (a filter without
/// one of its conditions would select other records than it says).
pub fn remove_field(def: &mut ObjectDef, field: &str) {
    for v in &mut def.list_views {
        v.columns.retain(|c| !c.eq_ignore_ascii_case(field));
        if v.columns.is_empty() {
            v.columns.push("Name".into());
        }
        v.sort.retain(|k| !k.field.eq_ignore_ascii_case(field));
        if v.filter_criteria.as_ref().is_some_and(|c| {
            c.conditions
                .iter()
                .any(|x| x.field.eq_ignore_ascii_case(field))
        }) {
            v.filter_criteria = None;
        }
    }
}

/// Renames a field in `def`'s list views.
pub fn rename_field(def: &mut ObjectDef, from: &str, to: &str) {
    for v in &mut def.list_views {
        for c in &mut v.columns {
            if c.eq_ignore_ascii_case(from) {
                *c = to.to_string();
            }
        }
        for k in &mut v.sort {
            if k.field.eq_ignore_ascii_case(from) {
                k.field = to.to_string();
            }
        }
        if let Some(cr) = &mut v.filter_criteria {
            for c in &mut cr.conditions {
                if c.field.eq_ignore_ascii_case(from) {
                    c.field = to.to_string();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{new_object, ObjectInput};

    fn deal() -> ObjectDef {
        let input: ObjectInput = serde_json::from_value(
            serde_json::json!({"api_name": "Deal__c", "label": "Deal", "plural_label": "Deals"}),
        )
        .unwrap();
        let mut def = new_object(&input).unwrap();
        let mut f = crate::model::probe_field("Stage__c");
        f.id = "f1".into();
        def.fields.push(f);
        def
    }

    fn fresh() -> ListView {
        let mut v = all_view(&deal());
        v.id = "x".into();
        v.name = String::new();
        v
    }

    #[test]
    fn the_all_view_is_derived() {
        let v = all_view(&deal());
        assert_eq!(v.label, "All Deals");
        assert_eq!(v.columns, vec!["Name", "Stage__c"]);
    }

    #[test]
    fn bad_views_name_the_field() {
        let def = deal();
        for (body, field) in [
            (
                serde_json::json!({"name": "Open", "columns": ["Nope__c"]}),
                "columns[0]",
            ),
            (
                serde_json::json!({"name": "Open", "sort": [{"field": "Nope__c"}]}),
                "sort[0].field",
            ),
            (
                serde_json::json!({"name": "Open", "row_limit": 0}),
                "row_limit",
            ),
            (serde_json::json!({"name": "all"}), "name"),
            (
                serde_json::json!({"name": "Open", "filter_criteria": {"conditions": [{"field": "Stage__c", "operator": "changed"}]}}),
                "filter_criteria.conditions[0].operator",
            ),
            (
                serde_json::json!({"name": "Open", "filter_criteria": {"logic": "1 AND 2", "conditions": [{"field": "Stage__c", "operator": "equals", "value": "x"}]}}),
                "filter_criteria.logic",
            ),
        ] {
            let input: ListViewInput = serde_json::from_value(body).unwrap();
            let e = apply_list_view(&def, &mut fresh(), input).unwrap_err();
            assert_eq!(e.fields, vec![field.to_string()], "{}", e.message);
        }
    }

    #[test]
    fn a_deleted_field_leaves_columns_sort_and_filters() {
        let mut def = deal();
        let mut v = fresh();
        let input: ListViewInput = serde_json::from_value(serde_json::json!({
            "name": "Open", "columns": ["Name", "Stage__c"], "sort": [{"field": "Stage__c"}],
            "filter_criteria": {"conditions": [{"field": "Stage__c", "operator": "equals", "value": "Open"}]}
        }))
        .unwrap();
        apply_list_view(&def, &mut v, input).unwrap();
        def.list_views.push(v);
        remove_field(&mut def, "stage__c");
        let v = &def.list_views[0];
        assert_eq!(v.columns, vec!["Name"]);
        assert!(v.sort.is_empty());
        assert!(v.filter_criteria.is_none());
    }
}
