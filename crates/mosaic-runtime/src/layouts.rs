//! Page layouts as one caller may see them: the object's default layout
//! (or the derived one) with every field the caller cannot read removed,
//! every field they cannot edit read-only, required never looser than the
//! field's own definition, and related lists of objects they cannot read
//! dropped. Record pages and forms are rendered from this and nothing else,
//! so field-level security holds on them exactly as in the Data API.

use crate::access::{self, ObjectOp};
use crate::platform::Platform;
use crate::records::Caller;
use mosaic_meta::layout::{PageLayout, SortDirection};
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::FieldDef;
use mosaic_types::{DataType, MosaicResult};
use std::sync::Arc;

/// A field as a page shows it to one caller.
#[derive(Debug, Clone)]
pub struct FieldView {
    /// Canonical api name (`Name`, `OwnerId`, `Amount__c`, …).
    pub name: String,
    pub label: String,
    /// The type values are shown as (a formula's return type).
    pub shown_type: DataType,
    /// The custom field's definition (`None` for system fields).
    pub def: Option<FieldDef>,
    /// Required in forms (layout or definition; never for read-only fields).
    pub required: bool,
    /// Shown but never editable in forms.
    pub read_only: bool,
}

impl FieldView {
    /// The stored type (a formula stays `formula`).
    pub fn data_type(&self) -> DataType {
        self.def.as_ref().map_or(self.shown_type, |f| f.data_type)
    }

    /// Whether values are references to other records (custom lookups and
    /// the user fields).
    pub fn is_reference(&self) -> bool {
        self.shown_type.is_reference()
    }

    /// The SOQL path of the referenced record's name, for references.
    pub fn name_path(&self) -> Option<String> {
        match self.name.as_str() {
            "OwnerId" => Some("Owner.Name".into()),
            "CreatedById" => Some("CreatedBy.Name".into()),
            "LastModifiedById" => Some("LastModifiedBy.Name".into()),
            _ => self
                .def
                .as_ref()
                .and_then(|f| f.parent_relationship_name())
                .map(|r| format!("{r}.Name")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SectionView {
    pub label: String,
    pub columns: u8,
    pub items: Vec<FieldView>,
}

#[derive(Debug, Clone)]
pub struct RelatedView {
    pub child: Arc<ObjectMeta>,
    /// The child's relationship field pointing at the record.
    pub field: String,
    pub label: String,
    pub columns: Vec<FieldView>,
    pub sort_field: String,
    pub sort_direction: SortDirection,
    pub page_size: u32,
    /// The caller may create child records (the "New" button).
    pub can_create: bool,
}

/// The layout of one object for one caller.
#[derive(Debug, Clone)]
pub struct CallerLayout {
    pub object: Arc<ObjectMeta>,
    pub layout: PageLayout,
    pub sections: Vec<SectionView>,
    pub related: Vec<RelatedView>,
    pub highlights: Vec<FieldView>,
    pub can_create: bool,
    pub can_edit: bool,
    pub can_delete: bool,
}

impl CallerLayout {
    /// Every field of the sections, in order.
    pub fn fields(&self) -> impl Iterator<Item = &FieldView> {
        self.sections.iter().flat_map(|s| s.items.iter())
    }
}

/// A field of `obj` as `c` sees it, or `None` when it does not exist or
/// the caller may not read it. `layout_required` / `layout_read_only`
/// come from a layout item (false elsewhere).
pub fn field_view(
    c: &Caller,
    obj: &ObjectMeta,
    name: &str,
    layout_required: bool,
    layout_read_only: bool,
) -> Option<FieldView> {
    let system = |label: &str, t: DataType, editable: bool| FieldView {
        name: name.to_string(),
        label: label.to_string(),
        shown_type: t,
        def: None,
        required: false,
        read_only: !editable || layout_read_only,
    };
    let v = match name {
        "Id" => system("Record ID", DataType::Text, false),
        "Name" => {
            let nf = &obj.def.name_field;
            let auto = nf.data_type == DataType::AutoNumber;
            let mut v = system(
                &nf.label,
                if auto {
                    DataType::AutoNumber
                } else {
                    DataType::Text
                },
                !auto,
            );
            v.required = !v.read_only;
            v
        }
        "OwnerId" => system("Owner", DataType::Lookup, false),
        "CreatedById" => system("Created By", DataType::Lookup, false),
        "LastModifiedById" => system("Last Modified By", DataType::Lookup, false),
        "CreatedDate" => system("Created Date", DataType::Datetime, false),
        "LastModifiedDate" => system("Last Modified Date", DataType::Datetime, false),
        _ => {
            let f = obj.field(name)?;
            if !access::can_read_field(c, f) {
                return None;
            }
            let editable = f.is_updateable() && c.perms.field(&f.id).edit;
            let read_only = !editable || layout_read_only;
            FieldView {
                name: f.api_name.clone(),
                label: f.label.clone(),
                shown_type: f
                    .formula_return_type
                    .filter(|_| f.data_type.is_computed())
                    .unwrap_or(f.data_type),
                def: Some(f.clone()),
                required: !read_only && (layout_required || f.is_required),
                read_only,
            }
        }
    };
    Some(FieldView {
        required: v.required || (layout_required && !v.read_only),
        ..v
    })
}

/// The fields of `obj` named in `names` that `c` may read, in order.
pub fn columns(c: &Caller, obj: &ObjectMeta, names: &[String]) -> Vec<FieldView> {
    names
        .iter()
        .filter_map(|n| field_view(c, obj, n, false, true))
        .collect()
}

impl Platform {
    /// The record page layout of `object` for `c` (NOT_FOUND when the
    /// caller may not read the object).
    #[tracing::instrument(name = "layouts.for_caller", skip_all)]
    pub async fn caller_layout(&self, c: &Caller, object: &str) -> MosaicResult<CallerLayout> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        access::require(c, &obj, ObjectOp::Read)?;
        let layout = self.meta.page_layout(&c.tenant_id, &obj).await?;
        let sections = layout
            .sections
            .iter()
            .map(|s| SectionView {
                label: s.label.clone(),
                columns: s.columns,
                items: s
                    .items
                    .iter()
                    .filter_map(|i| field_view(c, &obj, &i.field, i.required, i.read_only))
                    .collect(),
            })
            .filter(|s| !s.items.is_empty())
            .collect();
        let mut related = Vec::new();
        for r in &layout.related_lists {
            let Ok(child) = self.meta.object_by_id(&c.tenant_id, &r.object_id).await else {
                continue;
            };
            if !c.perms.can_read_object(child.id()) {
                continue;
            }
            // The relationship field itself must be readable, else the
            // list would reveal values of a hidden field.
            if child
                .field(&r.field)
                .is_none_or(|f| !access::can_read_field(c, f))
            {
                continue;
            }
            let cols = columns(c, &child, &r.columns);
            let sort_field = r
                .sort_field
                .clone()
                .filter(|s| cols.iter().any(|c| &c.name == s) || s == "Name")
                .unwrap_or_else(|| "Name".into());
            related.push(RelatedView {
                can_create: c.perms.object(child.id()).create,
                child,
                field: r.field.clone(),
                label: r.label.clone(),
                columns: cols,
                sort_field,
                sort_direction: r.sort_direction,
                page_size: r.page_size,
            });
        }
        let highlights = columns(c, &obj, &layout.compact_fields);
        let flags = c.perms.object(obj.id());
        Ok(CallerLayout {
            can_create: flags.create,
            can_edit: flags.edit,
            can_delete: flags.delete,
            object: obj,
            layout,
            sections,
            related,
            highlights,
        })
    }
}
