//! Enforcement of object permissions and field-level security on the Data
//! API, from the caller's [`PermissionSnapshot`]; and the translation of
//! permission-set inputs (object and field api names) to the ids the access
//! store keeps.
//!
//! Order (SPEC "Access control"): admin → object permission → FLS. An object
//! the caller cannot read does not exist for them: NOT_FOUND exactly as for
//! an unknown object (and "not supported" in queries, as the planner says for
//! unknown objects). Readable but not creatable / editable / deletable →
//! INSUFFICIENT_ACCESS. Custom fields follow their field permissions: an
//! unreadable field is absent (omitted from records and describes,
//! INVALID_FIELD when named); a readable, non-editable one is refused on
//! write with INVALID_FIELD_FOR_INSERT_UPDATE. `Id`, `Name` and the system
//! fields follow the object.
//!
//! Record-level sharing (organization-wide defaults, role hierarchy, sharing
//! rules, manual shares) comes after these checks: see [`crate::sharing`].

use crate::platform::Platform;
use crate::records::Caller;
use mosaic_access::admin::{
    FieldPermissionInput, NewPermissionSetInput, ObjectPermissionInput, PermissionSetPatchInput,
};
use mosaic_access::permissions::normalize;
use mosaic_access::Actor;
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::FieldDef;
use mosaic_store::access_store::{
    FieldPermissionRow, ObjectFlags, ObjectPermissionRow, PermissionSetPatch, PermissionSetRow,
};
use mosaic_store::plan::Schema;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

/// A Data API operation on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectOp {
    Read,
    Create,
    Edit,
    Delete,
}

impl ObjectOp {
    fn verb(self) -> &'static str {
        match self {
            ObjectOp::Read => "read",
            ObjectOp::Create => "create",
            ObjectOp::Edit => "edit",
            ObjectOp::Delete => "delete",
        }
    }
}

/// The error for an object the caller may not read: the same as for an
/// object that does not exist.
pub fn object_not_found(name: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: no object named '{}'",
        name.chars().take(80).collect::<String>()
    ))
}

/// Checks the caller's object permission for `op` on `obj`.
pub fn require(c: &Caller, obj: &ObjectMeta, op: ObjectOp) -> MosaicResult<()> {
    let flags = c.perms.object(obj.id());
    if !flags.read {
        return Err(object_not_found(obj.api_name()));
    }
    let ok = match op {
        ObjectOp::Read => true,
        ObjectOp::Create => flags.create,
        ObjectOp::Edit => flags.edit,
        ObjectOp::Delete => flags.delete,
    };
    if ok {
        Ok(())
    } else {
        Err(MosaicError::new(
            ErrorCode::INSUFFICIENT_ACCESS,
            format!(
                "insufficient access rights on object {}: you may not {} its records",
                obj.api_name(),
                op.verb()
            ),
        ))
    }
}

/// Whether the caller may read a custom field.
pub fn can_read_field(c: &Caller, f: &FieldDef) -> bool {
    c.perms.field(&f.id).read
}

/// Checks that the caller may write `f` (the object permission is checked
/// separately): unreadable → INVALID_FIELD (as if absent), read-only →
/// INVALID_FIELD_FOR_INSERT_UPDATE.
pub fn check_field_write(c: &Caller, obj: &ObjectMeta, f: &FieldDef) -> MosaicResult<()> {
    let a = c.perms.field(&f.id);
    if !a.read {
        return Err(MosaicError::field(
            ErrorCode::INVALID_FIELD,
            f.api_name.clone(),
            format!(
                "No such column '{}' on sobject of type {}",
                f.api_name,
                obj.api_name()
            ),
        ));
    }
    if !a.edit {
        return Err(MosaicError::field(
            ErrorCode::INVALID_FIELD_FOR_INSERT_UPDATE,
            f.api_name.clone(),
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field.",
                f.api_name
            ),
        ));
    }
    Ok(())
}

/// The fields of a record read the caller may see: a named unreadable field
/// fails as INVALID_FIELD (`named`), a default list just omits them.
pub fn visible_fields(
    c: &Caller,
    obj: &ObjectMeta,
    wanted: Vec<String>,
    named: bool,
) -> MosaicResult<Vec<String>> {
    if c.perms.is_admin() {
        return Ok(wanted);
    }
    let mut out = Vec::with_capacity(wanted.len());
    for n in wanted {
        match obj.field(&n) {
            Some(f) if !can_read_field(c, f) => {
                if named {
                    return Err(MosaicError::field(
                        ErrorCode::INVALID_FIELD,
                        n.chars().take(80).collect::<String>(),
                        format!(
                            "No such column '{}' on sobject of type {}",
                            n.chars().take(80).collect::<String>(),
                            obj.api_name()
                        ),
                    ));
                }
            }
            _ => out.push(n),
        }
    }
    Ok(out)
}

/// The planner's schema as the caller sees it: objects they cannot read and
/// fields they cannot read removed, so that naming them fails exactly as
/// naming something that does not exist. `objects` is the list the schema
/// was built from (same order).
pub fn visible_schema(c: &Caller, objects: &[Arc<ObjectMeta>], mut schema: Schema) -> Schema {
    if c.perms.is_admin() {
        return schema;
    }
    let mut keep = Vec::with_capacity(schema.objects.len());
    for (mut so, obj) in schema.objects.drain(..).zip(objects.iter()) {
        if !c.perms.can_read_object(obj.id()) {
            continue;
        }
        let readable: Vec<bool> = obj
            .def
            .fields
            .iter()
            .map(|f| can_read_field(c, f))
            .collect();
        let mut i = 0;
        so.fields.retain(|_| {
            let r = readable.get(i).copied().unwrap_or(false);
            i += 1;
            r
        });
        keep.push(so);
    }
    schema.objects = keep;
    schema
}

/// The object as the caller may see it (describe): unreadable fields
/// removed. Administrators get the shared definition itself.
pub fn visible_object(c: &Caller, obj: &Arc<ObjectMeta>) -> Arc<ObjectMeta> {
    if c.perms.is_admin() || obj.def.fields.iter().all(|f| can_read_field(c, f)) {
        return obj.clone();
    }
    let mut def = obj.def.clone();
    def.fields.retain(|f| can_read_field(c, f));
    Arc::new(ObjectMeta::new(def))
}

fn owner_key(body: &Map<String, Json>) -> bool {
    body.keys().any(|k| k.eq_ignore_ascii_case("OwnerId"))
}

impl Platform {
    /// Record access for an update: edit on the record, and full access
    /// (owner, a manager of the owner, modify-all) for an ownership
    /// transfer (`OwnerId` in the body). A record the caller may not read
    /// is NOT_FOUND.
    pub async fn check_record_write(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
        body: &Map<String, Json>,
    ) -> MosaicResult<()> {
        use mosaic_access::sharing::RecordLevel;
        self.require_record(c, obj, id, RecordLevel::Edit, "edit")
            .await?;
        if owner_key(body) {
            self.require_record(c, obj, id, RecordLevel::Full, "transfer")
                .await
                .map_err(|e| {
                    if e.code == ErrorCode::INSUFFICIENT_ACCESS {
                        MosaicError::field(
                            ErrorCode::INSUFFICIENT_ACCESS,
                            "OwnerId",
                            "insufficient access rights: only the record's owner, a user above the owner in the role hierarchy or an administrator may transfer its ownership",
                        )
                    } else {
                        e
                    }
                })?;
        }
        Ok(())
    }

    /// The actor of an admin change.
    pub fn actor(c: &Caller) -> Actor {
        Actor {
            tenant_id: c.tenant_id.clone(),
            user_id: c.user_id.clone(),
        }
    }

    async fn object_rows(
        &self,
        tenant: &str,
        input: &[ObjectPermissionInput],
    ) -> MosaicResult<Vec<ObjectPermissionRow>> {
        let mut out: Vec<ObjectPermissionRow> = Vec::with_capacity(input.len());
        for (i, p) in input.iter().enumerate() {
            let obj = self.meta.object(tenant, &p.object).await.map_err(|_| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    format!("object_permissions[{i}].object"),
                    format!(
                        "object_permissions[{i}].object: no object named '{}'",
                        p.object.chars().take(80).collect::<String>()
                    ),
                )
            })?;
            if out.iter().any(|o| o.object_id == obj.id()) {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    format!("object_permissions[{i}].object"),
                    format!(
                        "object_permissions[{i}].object: {} is listed twice",
                        obj.api_name()
                    ),
                ));
            }
            out.push(ObjectPermissionRow {
                object_id: obj.id().to_string(),
                flags: normalize(ObjectFlags {
                    create: p.create,
                    read: p.read,
                    edit: p.edit,
                    delete: p.delete,
                    view_all: p.view_all,
                    modify_all: p.modify_all,
                }),
            });
        }
        Ok(out)
    }

    async fn field_rows(
        &self,
        tenant: &str,
        input: &[FieldPermissionInput],
    ) -> MosaicResult<Vec<FieldPermissionRow>> {
        let mut out: Vec<FieldPermissionRow> = Vec::with_capacity(input.len());
        for (i, p) in input.iter().enumerate() {
            let obj = self.meta.object(tenant, &p.object).await.map_err(|_| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    format!("field_permissions[{i}].object"),
                    format!(
                        "field_permissions[{i}].object: no object named '{}'",
                        p.object.chars().take(80).collect::<String>()
                    ),
                )
            })?;
            let f = obj.field(&p.field).ok_or_else(|| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    format!("field_permissions[{i}].field"),
                    format!(
                        "field_permissions[{i}].field: {} has no custom field named '{}' (Name and system fields follow the object permission)",
                        obj.api_name(),
                        p.field.chars().take(80).collect::<String>()
                    ),
                )
            })?;
            if p.edit && !f.is_updateable() {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    format!("field_permissions[{i}].edit"),
                    format!(
                        "field_permissions[{i}].edit: {}.{} is computed and cannot be edited",
                        obj.api_name(),
                        f.api_name
                    ),
                ));
            }
            if out.iter().any(|o| o.field_id == f.id) {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    format!("field_permissions[{i}].field"),
                    format!(
                        "field_permissions[{i}].field: {}.{} is listed twice",
                        obj.api_name(),
                        f.api_name
                    ),
                ));
            }
            out.push(FieldPermissionRow {
                object_id: obj.id().to_string(),
                field_id: f.id.clone(),
                read: p.read || p.edit,
                edit: p.edit,
            });
        }
        Ok(out)
    }

    /// Creates a permission set from api names.
    pub async fn create_permission_set(
        &self,
        c: &Caller,
        input: NewPermissionSetInput,
    ) -> MosaicResult<PermissionSetRow> {
        let objects = self
            .object_rows(&c.tenant_id, &input.object_permissions)
            .await?;
        let fields = self
            .field_rows(&c.tenant_id, &input.field_permissions)
            .await?;
        let detail = json!({"name": input.name, "label": input.label,
                            "customize_application": input.customize_application});
        self.access
            .create_permission_set(
                &Self::actor(c),
                input.name,
                input.label,
                input.description,
                objects,
                fields,
                input.customize_application,
                detail,
            )
            .await
    }

    /// Applies a permission-set patch given with api names.
    pub async fn update_permission_set(
        &self,
        c: &Caller,
        id: &str,
        input: PermissionSetPatchInput,
    ) -> MosaicResult<PermissionSetRow> {
        let object_permissions = match &input.object_permissions {
            Some(o) => Some(self.object_rows(&c.tenant_id, o).await?),
            None => None,
        };
        let field_permissions = match &input.field_permissions {
            Some(f) => Some(self.field_rows(&c.tenant_id, f).await?),
            None => None,
        };
        let detail = json!({
            "label": input.label,
            "object_permissions_replaced": object_permissions.is_some(),
            "field_permissions_replaced": field_permissions.is_some(),
            "customize_application": input.customize_application,
        });
        self.access
            .update_permission_set(
                &Self::actor(c),
                id,
                PermissionSetPatch {
                    label: input.label,
                    description: input.description,
                    object_permissions,
                    field_permissions,
                    customize_application: input.customize_application,
                },
                detail,
            )
            .await
    }

    /// Api names of the tenant's objects and fields by id (rendering
    /// permission sets).
    pub async fn permission_names(&self, tenant: &str) -> MosaicResult<PermissionNames> {
        let mut names = PermissionNames::default();
        for o in self.meta.objects(tenant).await?.iter() {
            names
                .objects
                .insert(o.id().to_string(), o.api_name().to_string());
            for f in &o.def.fields {
                names.fields.insert(f.id.clone(), f.api_name.clone());
            }
        }
        Ok(names)
    }
}

/// Object and field api names by id.
#[derive(Debug, Default)]
pub struct PermissionNames {
    pub objects: HashMap<String, String>,
    pub fields: HashMap<String, String>,
}

/// A permission set as the admin API's JSON; rows of deleted objects or
/// fields are left out.
pub fn permission_set_json(s: &PermissionSetRow, names: &PermissionNames) -> Json {
    let objects: Vec<Json> = s
        .object_permissions
        .iter()
        .filter_map(|p| {
            names.objects.get(&p.object_id).map(|n| {
                let f = p.flags;
                json!({"object": n, "create": f.create, "read": f.read, "edit": f.edit,
                       "delete": f.delete, "view_all": f.view_all, "modify_all": f.modify_all})
            })
        })
        .collect();
    let fields: Vec<Json> = s
        .field_permissions
        .iter()
        .filter_map(|p| {
            let o = names.objects.get(&p.object_id)?;
            let f = names.fields.get(&p.field_id)?;
            Some(json!({"object": o, "field": f, "read": p.read, "edit": p.edit}))
        })
        .collect();
    json!({
        "id": s.id,
        "name": s.name,
        "label": s.label,
        "description": s.description,
        "object_permissions": objects,
        "field_permissions": fields,
        "customize_application": s.customize_application,
        "assignments": s.assignees.iter().map(|u| json!({"user_id": u})).collect::<Vec<_>>(),
        "created_at": mosaic_types::value::format_datetime(&s.created_at),
        "updated_at": mosaic_types::value::format_datetime(&s.updated_at),
    })
}
