//! Page layouts: how a record page and its forms are arranged — sections of
//! one or two columns holding field items (required / read-only on the
//! layout), related lists (a child relationship with its columns and sort)
//! and the compact layout (the highlight fields). Layouts live in their
//! object's definition document, so they are versioned, cached and
//! invalidated on every instance with it; an object without one gets a
//! layout derived from its fields ([`derived_layout`]).

use crate::model::{FieldDef, ObjectDef, SYSTEM_FIELDS};
use chrono::{DateTime, Utc};
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Most layouts one object may have.
pub const MAX_LAYOUTS: usize = 20;
/// Most sections of one layout.
pub const MAX_SECTIONS: usize = 50;
/// Most field items of one layout (all sections together).
pub const MAX_LAYOUT_ITEMS: usize = 500;
/// Most related lists of one layout.
pub const MAX_RELATED_LISTS: usize = 20;
/// Most columns of one related list.
pub const MAX_RELATED_COLUMNS: usize = 10;
/// Most highlight fields of the compact layout.
pub const MAX_COMPACT_FIELDS: usize = 10;
/// Rows of a related list shown on the record page unless the layout says.
pub const DEFAULT_RELATED_PAGE_SIZE: u32 = 5;
/// Most rows of a related list on one page.
pub const MAX_RELATED_PAGE_SIZE: u32 = 50;
pub const MAX_LAYOUT_NAME_LEN: usize = 80;
/// Custom fields the derived layout shows in its compact layout.
const DERIVED_COMPACT_FIELDS: usize = 4;
/// Columns a derived related list shows besides Name.
const DERIVED_RELATED_COLUMNS: usize = 3;
/// Id of the layout derived for an object that has none.
pub const DERIVED_LAYOUT_ID: &str = "default";

/// The system fields a layout may place (the others are not user-facing).
pub const LAYOUT_SYSTEM_FIELDS: [&str; 6] = [
    "Name",
    "OwnerId",
    "CreatedById",
    "CreatedDate",
    "LastModifiedById",
    "LastModifiedDate",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SortDirection {
    #[default]
    Asc,
    Desc,
}

impl SortDirection {
    pub fn soql(self) -> &'static str {
        match self {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayoutItem {
    /// A field api name (custom or one of [`LAYOUT_SYSTEM_FIELDS`]).
    pub field: String,
    /// Required on this layout (never less than the field's own `is_required`).
    #[serde(default)]
    pub required: bool,
    /// Read-only on this layout (a field the user may not edit is read-only anyway).
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayoutSection {
    pub label: String,
    /// 1 or 2.
    pub columns: u8,
    pub items: Vec<LayoutItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelatedList {
    /// The child object's id (rendered as its api name).
    pub object_id: String,
    /// The child's lookup or master-detail field pointing at this object.
    pub field: String,
    pub label: String,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_field: Option<String>,
    #[serde(default)]
    pub sort_direction: SortDirection,
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageLayout {
    pub id: String,
    pub name: String,
    /// The layout record pages use (exactly one layout of an object is).
    pub is_default: bool,
    pub sections: Vec<LayoutSection>,
    #[serde(default)]
    pub related_lists: Vec<RelatedList>,
    /// The compact layout: the highlight fields shown in a record's header.
    #[serde(default)]
    pub compact_fields: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of a layout create (all of it) or update (any subset).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutInput {
    pub name: Option<String>,
    pub is_default: Option<bool>,
    pub sections: Option<Vec<SectionInput>>,
    pub related_lists: Option<Vec<RelatedListInput>>,
    pub compact_fields: Option<Vec<String>>,
    /// The object version the change is based on (stale → 409).
    pub version: Option<i64>,
    #[serde(default, rename = "id")]
    pub _id: Option<Json>,
    #[serde(default, rename = "created_at")]
    pub _created_at: Option<Json>,
    #[serde(default, rename = "updated_at")]
    pub _updated_at: Option<Json>,
    #[serde(default, rename = "object")]
    pub _object: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionInput {
    pub label: Option<String>,
    pub columns: Option<u8>,
    #[serde(default)]
    pub items: Vec<ItemInput>,
}

/// A field item: its api name alone, or `{field, required, read_only}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ItemInput {
    Name(String),
    Item {
        field: String,
        #[serde(default)]
        required: bool,
        #[serde(default)]
        read_only: bool,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelatedListInput {
    /// The child object's api name.
    pub object: String,
    /// The child's relationship field; optional when only one points here.
    pub field: Option<String>,
    pub label: Option<String>,
    pub columns: Option<Vec<String>>,
    pub sort_field: Option<String>,
    pub sort_direction: Option<SortDirection>,
    pub page_size: Option<u32>,
}

fn bad(field: impl Into<String>, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The canonical name of a field a layout may show on `def`, if any.
pub fn layout_field_name(def: &ObjectDef, name: &str) -> Option<String> {
    if let Some(s) = LAYOUT_SYSTEM_FIELDS
        .iter()
        .find(|s| s.eq_ignore_ascii_case(name))
    {
        return Some(s.to_string());
    }
    def.fields
        .iter()
        .find(|f| f.api_name.eq_ignore_ascii_case(name))
        .map(|f| f.api_name.clone())
}

/// The canonical name of a field a list or related list may show as a
/// column (every field a layout may place, plus `Id`).
pub fn column_name(def: &ObjectDef, name: &str) -> Option<String> {
    if name.eq_ignore_ascii_case("Id") {
        return Some("Id".into());
    }
    layout_field_name(def, name)
}

/// Whether a field is shown in lists by default (short values).
fn listable(f: &FieldDef) -> bool {
    !matches!(
        f.data_type,
        DataType::LongText
            | DataType::RichText
            | DataType::Textarea
            | DataType::EncryptedText
            | DataType::Geolocation
            | DataType::MultiPicklist
    )
}

/// The relationship fields of `child` pointing at `parent_id`.
pub fn relationship_fields<'a>(child: &'a ObjectDef, parent_id: &str) -> Vec<&'a FieldDef> {
    child
        .fields
        .iter()
        .filter(|f| f.data_type.is_reference() && f.lookup_object_id.as_deref() == Some(parent_id))
        .collect()
}

/// Applies a create / update request onto `layout` (a fresh one on create).
/// `objects` is every object of the tenant (related lists name children).
pub fn apply_layout(
    def: &ObjectDef,
    objects: &[&ObjectDef],
    layout: &mut PageLayout,
    input: LayoutInput,
) -> MosaicResult<()> {
    if let Some(n) = input.name {
        if n.trim().is_empty() || n.chars().count() > MAX_LAYOUT_NAME_LEN {
            return Err(bad(
                "name",
                format!("a layout name is 1 to {MAX_LAYOUT_NAME_LEN} characters"),
            ));
        }
        if def
            .layouts
            .iter()
            .any(|l| l.id != layout.id && l.name.eq_ignore_ascii_case(n.trim()))
        {
            return Err(MosaicError::field(
                ErrorCode::DUPLICATE_VALUE,
                "name",
                format!(
                    "object '{}' already has a layout named '{}'",
                    def.api_name,
                    short(&n)
                ),
            ));
        }
        layout.name = n.trim().to_string();
    }
    if let Some(d) = input.is_default {
        layout.is_default = d;
    }
    if let Some(sections) = input.sections {
        layout.sections = check_sections(def, sections)?;
    }
    if let Some(lists) = input.related_lists {
        layout.related_lists = check_related_lists(def, objects, lists)?;
    }
    if let Some(c) = input.compact_fields {
        if c.len() > MAX_COMPACT_FIELDS {
            return Err(bad(
                "compact_fields",
                format!("at most {MAX_COMPACT_FIELDS} highlight fields"),
            ));
        }
        let mut out: Vec<String> = Vec::new();
        for (i, n) in c.iter().enumerate() {
            let name = layout_field_name(def, n).ok_or_else(|| {
                bad(
                    format!("compact_fields[{i}]"),
                    format!("object '{}' has no field '{}'", def.api_name, short(n)),
                )
            })?;
            if !out.contains(&name) {
                out.push(name);
            }
        }
        layout.compact_fields = out;
    }
    if layout.name.is_empty() {
        return Err(bad("name", "name is required"));
    }
    layout.updated_at = Utc::now();
    Ok(())
}

fn check_sections(
    def: &ObjectDef,
    sections: Vec<SectionInput>,
) -> MosaicResult<Vec<LayoutSection>> {
    if sections.len() > MAX_SECTIONS {
        return Err(bad(
            "sections",
            format!("a layout has at most {MAX_SECTIONS} sections"),
        ));
    }
    let total: usize = sections.iter().map(|s| s.items.len()).sum();
    if total > MAX_LAYOUT_ITEMS {
        return Err(bad(
            "sections",
            format!("a layout has at most {MAX_LAYOUT_ITEMS} field items"),
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(sections.len());
    for (i, s) in sections.into_iter().enumerate() {
        let at = |f: &str| format!("sections[{i}].{f}");
        let label = s.label.unwrap_or_default();
        if label.chars().count() > MAX_LAYOUT_NAME_LEN {
            return Err(bad(
                at("label"),
                format!("a section label is at most {MAX_LAYOUT_NAME_LEN} characters"),
            ));
        }
        let columns = s.columns.unwrap_or(2);
        if !(1..=2).contains(&columns) {
            return Err(bad(at("columns"), "a section has 1 or 2 columns"));
        }
        let mut items = Vec::with_capacity(s.items.len());
        for (j, item) in s.items.into_iter().enumerate() {
            let (name, required, read_only) = match item {
                ItemInput::Name(n) => (n, false, false),
                ItemInput::Item {
                    field,
                    required,
                    read_only,
                } => (field, required, read_only),
            };
            let path = format!("sections[{i}].items[{j}].field");
            let canonical = layout_field_name(def, &name).ok_or_else(|| {
                bad(
                    path.clone(),
                    format!("object '{}' has no field '{}'", def.api_name, short(&name)),
                )
            })?;
            if seen.contains(&canonical) {
                return Err(bad(
                    path,
                    format!("field '{canonical}' is placed twice on the layout"),
                ));
            }
            seen.push(canonical.clone());
            items.push(LayoutItem {
                field: canonical,
                required,
                read_only,
            });
        }
        out.push(LayoutSection {
            label: label.trim().to_string(),
            columns,
            items,
        });
    }
    Ok(out)
}

fn check_related_lists(
    def: &ObjectDef,
    objects: &[&ObjectDef],
    lists: Vec<RelatedListInput>,
) -> MosaicResult<Vec<RelatedList>> {
    if lists.len() > MAX_RELATED_LISTS {
        return Err(bad(
            "related_lists",
            format!("a layout has at most {MAX_RELATED_LISTS} related lists"),
        ));
    }
    let mut out: Vec<RelatedList> = Vec::with_capacity(lists.len());
    for (i, r) in lists.into_iter().enumerate() {
        let at = |f: &str| format!("related_lists[{i}].{f}");
        let child = objects
            .iter()
            .find(|o| o.api_name.eq_ignore_ascii_case(&r.object))
            .ok_or_else(|| {
                bad(
                    at("object"),
                    format!("no object named '{}'", short(&r.object)),
                )
            })?;
        let rels = relationship_fields(child, &def.id);
        let field = match &r.field {
            Some(n) => rels
                .iter()
                .find(|f| f.api_name.eq_ignore_ascii_case(n))
                .copied()
                .ok_or_else(|| {
                    bad(
                        at("field"),
                        format!(
                            "'{}' is not a relationship of '{}' to '{}'",
                            short(n),
                            child.api_name,
                            def.api_name
                        ),
                    )
                })?,
            None => match rels.as_slice() {
                [one] => *one,
                [] => {
                    return Err(bad(
                        at("object"),
                        format!(
                            "'{}' has no relationship to '{}'",
                            child.api_name, def.api_name
                        ),
                    ))
                }
                _ => {
                    return Err(bad(
                        at("field"),
                        format!(
                            "'{}' has several relationships to '{}': name the field",
                            child.api_name, def.api_name
                        ),
                    ))
                }
            },
        };
        if out
            .iter()
            .any(|x| x.object_id == child.id && x.field == field.api_name)
        {
            return Err(bad(
                at("field"),
                format!(
                    "the related list {}.{} is there twice",
                    child.api_name, field.api_name
                ),
            ));
        }
        let columns = match r.columns {
            Some(cols) => {
                if cols.is_empty() || cols.len() > MAX_RELATED_COLUMNS {
                    return Err(bad(
                        at("columns"),
                        format!("a related list has 1 to {MAX_RELATED_COLUMNS} columns"),
                    ));
                }
                let mut names = Vec::with_capacity(cols.len());
                for (j, c) in cols.iter().enumerate() {
                    let n = column_name(child, c).ok_or_else(|| {
                        bad(
                            format!("related_lists[{i}].columns[{j}]"),
                            format!("object '{}' has no field '{}'", child.api_name, short(c)),
                        )
                    })?;
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                names
            }
            None => derived_columns(child, Some(&field.api_name)),
        };
        let sort_field = match r.sort_field {
            Some(s) => Some(column_name(child, &s).ok_or_else(|| {
                bad(
                    at("sort_field"),
                    format!("object '{}' has no field '{}'", child.api_name, short(&s)),
                )
            })?),
            None => None,
        };
        let page_size = r.page_size.unwrap_or(DEFAULT_RELATED_PAGE_SIZE);
        if !(1..=MAX_RELATED_PAGE_SIZE).contains(&page_size) {
            return Err(bad(
                at("page_size"),
                format!("page_size is 1 to {MAX_RELATED_PAGE_SIZE}"),
            ));
        }
        let label = r.label.unwrap_or_else(|| child.plural_label.clone());
        if label.trim().is_empty() || label.chars().count() > MAX_LAYOUT_NAME_LEN {
            return Err(bad(
                at("label"),
                format!("a related list label is 1 to {MAX_LAYOUT_NAME_LEN} characters"),
            ));
        }
        out.push(RelatedList {
            object_id: child.id.clone(),
            field: field.api_name.clone(),
            label: label.trim().to_string(),
            columns,
            sort_field,
            sort_direction: r.sort_direction.unwrap_or_default(),
            page_size,
        });
    }
    Ok(out)
}

/// Name and the first few listable custom fields of `def` (skipping `except`).
fn derived_columns(def: &ObjectDef, except: Option<&str>) -> Vec<String> {
    std::iter::once("Name".to_string())
        .chain(
            def.fields
                .iter()
                .filter(|f| listable(f) && Some(f.api_name.as_str()) != except)
                .take(DERIVED_RELATED_COLUMNS)
                .map(|f| f.api_name.clone()),
        )
        .collect()
}

/// The layout of an object that has none: one two-column section with Name
/// and every custom field in definition order, a "System Information"
/// section, a related list per child relationship, and the first few
/// listable fields as highlights.
pub fn derived_layout(def: &ObjectDef, children: &[(&ObjectDef, &FieldDef)]) -> PageLayout {
    let mut info = vec![LayoutItem {
        field: "Name".into(),
        required: def.name_field.data_type == DataType::Text,
        read_only: false,
    }];
    info.extend(def.fields.iter().map(|f| LayoutItem {
        field: f.api_name.clone(),
        required: f.is_required,
        read_only: false,
    }));
    info.push(LayoutItem {
        field: "OwnerId".into(),
        required: false,
        read_only: false,
    });
    let system = [
        "CreatedById",
        "CreatedDate",
        "LastModifiedById",
        "LastModifiedDate",
    ]
    .iter()
    .map(|n| LayoutItem {
        field: n.to_string(),
        required: false,
        read_only: true,
    })
    .collect();
    PageLayout {
        id: DERIVED_LAYOUT_ID.into(),
        name: format!("{} Layout", def.label),
        is_default: true,
        sections: vec![
            LayoutSection {
                label: "Information".into(),
                columns: 2,
                items: info,
            },
            LayoutSection {
                label: "System Information".into(),
                columns: 2,
                items: system,
            },
        ],
        related_lists: children
            .iter()
            .map(|(child, f)| RelatedList {
                object_id: child.id.clone(),
                field: f.api_name.clone(),
                label: child.plural_label.clone(),
                columns: derived_columns(child, Some(&f.api_name)),
                sort_field: None,
                sort_direction: SortDirection::Asc,
                page_size: DEFAULT_RELATED_PAGE_SIZE,
            })
            .take(MAX_RELATED_LISTS)
            .collect(),
        compact_fields: std::iter::once("Name".to_string())
            .chain(
                def.fields
                    .iter()
                    .filter(|f| listable(f))
                    .take(DERIVED_COMPACT_FIELDS)
                    .map(|f| f.api_name.clone()),
            )
            .collect(),
        created_at: def.created_at,
        updated_at: def.updated_at,
    }
}

/// Removes every reference to `field` of `def` from its own layouts (items,
/// highlights, related-list sort of nothing) — called when the field is
/// deleted.
pub fn remove_field(def: &mut ObjectDef, field: &str) {
    for l in &mut def.layouts {
        for s in &mut l.sections {
            s.items.retain(|i| !i.field.eq_ignore_ascii_case(field));
        }
        l.compact_fields.retain(|c| !c.eq_ignore_ascii_case(field));
    }
}

/// Removes, from `def`'s layouts, the related lists through `child_field`
/// of `child_id` and the columns naming `child_field` — called when a field
/// of the child is deleted. Returns whether anything changed.
pub fn remove_child_field(def: &mut ObjectDef, child_id: &str, child_field: &str) -> bool {
    let mut changed = false;
    for l in &mut def.layouts {
        let before = l.related_lists.clone();
        l.related_lists
            .retain(|r| !(r.object_id == child_id && r.field.eq_ignore_ascii_case(child_field)));
        for r in l
            .related_lists
            .iter_mut()
            .filter(|r| r.object_id == child_id)
        {
            r.columns.retain(|c| !c.eq_ignore_ascii_case(child_field));
            if r.columns.is_empty() {
                r.columns.push("Name".into());
            }
            if r.sort_field
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(child_field))
            {
                r.sort_field = None;
            }
        }
        changed |= before != l.related_lists;
    }
    changed
}

/// Removes the related lists of a deleted child object. Returns whether
/// anything changed.
pub fn remove_child_object(def: &mut ObjectDef, child_id: &str) -> bool {
    let mut changed = false;
    for l in &mut def.layouts {
        let n = l.related_lists.len();
        l.related_lists.retain(|r| r.object_id != child_id);
        changed |= n != l.related_lists.len();
    }
    changed
}

/// Renames a field in `def`'s own layouts.
pub fn rename_field(def: &mut ObjectDef, from: &str, to: &str) {
    for l in &mut def.layouts {
        for s in &mut l.sections {
            for i in &mut s.items {
                if i.field.eq_ignore_ascii_case(from) {
                    i.field = to.to_string();
                }
            }
        }
        for c in &mut l.compact_fields {
            if c.eq_ignore_ascii_case(from) {
                *c = to.to_string();
            }
        }
    }
}

/// Whether `name` is a system field a layout shows read-only always.
pub fn is_system_read_only(name: &str) -> bool {
    SYSTEM_FIELDS
        .iter()
        .filter(|s| !matches!(**s, "Name" | "OwnerId"))
        .any(|s| s.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{new_object, ObjectInput};

    fn object(fields: serde_json::Value) -> ObjectDef {
        let input: ObjectInput =
            serde_json::from_value(serde_json::json!({"api_name": "Deal__c", "label": "Deal"}))
                .unwrap();
        let mut def = new_object(&input).unwrap();
        for (i, name) in fields.as_array().unwrap().iter().enumerate() {
            let mut f = crate::model::probe_field(name.as_str().unwrap());
            f.id = format!("f{i}");
            def.fields.push(f);
        }
        def
    }

    #[test]
    fn items_are_checked_and_named_canonically() {
        let def = object(serde_json::json!(["Amount__c", "Notes__c"]));
        let mut l = derived_layout(&def, &[]);
        let input: LayoutInput = serde_json::from_value(serde_json::json!({
            "name": "Compact",
            "sections": [{"label": "Main", "columns": 1, "items": ["name", {"field": "amount__c", "required": true}]}]
        }))
        .unwrap();
        apply_layout(&def, &[], &mut l, input).unwrap();
        assert_eq!(l.sections[0].items[0].field, "Name");
        assert_eq!(l.sections[0].items[1].field, "Amount__c");
        assert!(l.sections[0].items[1].required);

        for (body, field) in [
            (
                serde_json::json!({"sections": [{"items": ["Nope__c"]}]}),
                "sections[0].items[0].field",
            ),
            (
                serde_json::json!({"sections": [{"items": ["Name", "Name"]}]}),
                "sections[0].items[1].field",
            ),
            (
                serde_json::json!({"sections": [{"columns": 3, "items": []}]}),
                "sections[0].columns",
            ),
            (
                serde_json::json!({"related_lists": [{"object": "Nope__c"}]}),
                "related_lists[0].object",
            ),
            (
                serde_json::json!({"compact_fields": ["Nope__c"]}),
                "compact_fields[0]",
            ),
            (serde_json::json!({"name": ""}), "name"),
        ] {
            let input: LayoutInput = serde_json::from_value(body).unwrap();
            let e = apply_layout(&def, &[], &mut l.clone(), input).unwrap_err();
            assert_eq!(e.fields, vec![field.to_string()], "{}", e.message);
        }
    }

    #[test]
    fn a_deleted_field_leaves_every_layout() {
        let mut def = object(serde_json::json!(["Amount__c", "Notes__c"]));
        let l = derived_layout(&def, &[]);
        def.layouts.push(l);
        remove_field(&mut def, "amount__c");
        let l = &def.layouts[0];
        assert!(l
            .sections
            .iter()
            .all(|s| s.items.iter().all(|i| i.field != "Amount__c")));
        assert!(!l.compact_fields.contains(&"Amount__c".to_string()));
    }
}
