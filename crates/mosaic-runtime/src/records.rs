//! The record pipeline: create, read, update, delete, upsert and batches
//! for any object, driven by its metadata.

use crate::access::ObjectOp;
use crate::platform::Platform;
use chrono::Utc;
use mosaic_access::sharing::RecordLevel;
use mosaic_meta::coerce::{coerce, from_stored};
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::service::index_spec;
use mosaic_meta::FieldDef;
use mosaic_store::{
    AutoNumberSpec, CascadeSpec, DeleteOp, InsertOp, LookupRef, RecordRow, RefCheck, UpdateOp,
    WriteOp, WriteResult,
};
use mosaic_types::{new_id, DataType, ErrorCode, FlexSlot, MosaicError, MosaicResult, Value};
use serde_json::{Map, Value as Json};
use std::sync::Arc;

/// Most records in one composite batch (Salesforce: 200).
pub const MAX_BATCH_RECORDS: usize = 200;
/// Deepest master-detail cascade followed on delete.
pub const MAX_CASCADE_DEPTH: usize = 10;

/// Who is calling: the resolved session.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    pub user_id: String,
    pub username: String,
    /// What the caller may do: object permissions and field-level security.
    pub perms: Arc<mosaic_access::PermissionSnapshot>,
    /// The caller's time zone: the user's, else the tenant's, else UTC
    /// (`TODAY()`, date literals; see [`Platform::zone_of`]).
    pub zone: chrono_tz::Tz,
}

impl Caller {
    /// The platform acting on its own (time-based workflow actions) on
    /// behalf of `user_id` of the tenant. System context: no object or
    /// field permission limits it, as for Salesforce's workflow actions.
    pub fn system(tenant_id: &str, user_id: &str) -> Caller {
        Caller {
            tenant_id: tenant_id.to_string(),
            user_id: user_id.to_string(),
            username: "workflow".into(),
            perms: Arc::new(mosaic_access::PermissionSnapshot::system_administrator(
                tenant_id, user_id,
            )),
            zone: chrono_tz::Tz::UTC,
        }
    }
}

/// Every error of one record (a save reports all problems at once).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordErrors(pub Vec<MosaicError>);

impl From<MosaicError> for RecordErrors {
    fn from(e: MosaicError) -> Self {
        RecordErrors(vec![e])
    }
}

impl RecordErrors {
    pub fn first_code(&self) -> ErrorCode {
        self.0
            .first()
            .map(|e| e.code)
            .unwrap_or(ErrorCode::UNKNOWN_EXCEPTION)
    }
}

pub type RecordResult<T> = Result<T, RecordErrors>;

/// A record as the runtime returns it: object and ordered (field, value) pairs.
#[derive(Debug, Clone)]
pub struct RecordView {
    pub object: Arc<ObjectMeta>,
    pub id: String,
    pub fields: Vec<(String, Value)>,
}

/// Result of an upsert or a batch item.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    pub id: String,
    pub created: bool,
}

fn invalid_field(object: &ObjectMeta, name: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::INVALID_FIELD,
        name.chars().take(80).collect::<String>(),
        format!(
            "No such column '{}' on sobject of type {}",
            name.chars().take(80).collect::<String>(),
            object.api_name()
        ),
    )
}

fn not_writeable(name: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::INVALID_FIELD_FOR_INSERT_UPDATE,
        name,
        format!("Unable to create/update fields: {name}. The field is read-only."),
    )
}

/// The object has criteria-based sharing rules (saves rewrite their shares).
fn has_criteria_rules(obj: &ObjectMeta) -> bool {
    obj.def
        .sharing_rules
        .iter()
        .any(|r| r.rule_type == mosaic_meta::sharing::SharingRuleType::CriteriaBased)
}

fn record_not_found(id: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: no record with id '{}'",
        id.chars().take(80).collect::<String>()
    ))
}

/// Parses a record id from a URL or body, or fails as not found (a malformed
/// id can name no record).
pub fn parse_record_id(id: &str) -> MosaicResult<String> {
    mosaic_types::id::normalize_id(id).ok_or_else(|| record_not_found(id))
}

pub(crate) struct Prepared {
    pub(crate) name: Option<Option<String>>,
    pub(crate) owner: Option<String>,
    pub(crate) set: Vec<(FlexSlot, Value)>,
    pub(crate) refs: Vec<RefCheck>,
}

const SYSTEM_READONLY: [&str; 6] = [
    "Id",
    "CreatedById",
    "CreatedDate",
    "LastModifiedById",
    "LastModifiedDate",
    "IsDeleted",
];

impl Platform {
    async fn check_owner(&self, c: &Caller, raw: &Json) -> MosaicResult<String> {
        let id = raw
            .as_str()
            .and_then(mosaic_types::id::normalize_id)
            .ok_or_else(|| {
                MosaicError::field(
                    ErrorCode::MALFORMED_ID,
                    "OwnerId",
                    "OwnerId: id value of incorrect type",
                )
            })?;
        match self.meta_store.user(&c.tenant_id, &id).await? {
            Some(u) if u.is_active => Ok(id),
            _ => Err(MosaicError::field(
                ErrorCode::INVALID_CROSS_REFERENCE_KEY,
                "OwnerId",
                format!("OwnerId: no active user with id '{id}'"),
            )),
        }
    }

    pub(crate) fn stored_value(&self, f: &FieldDef, v: Value) -> MosaicResult<Value> {
        match (f.data_type, v) {
            (DataType::EncryptedText, Value::Text(s)) => Ok(Value::Text(self.cipher.encrypt(&s)?)),
            (_, v) => Ok(v),
        }
    }

    /// Coerces a body into slot values; collects every error.
    pub(crate) async fn prepare(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        body: &Map<String, Json>,
        creating: bool,
    ) -> RecordResult<Prepared> {
        let mut errs = Vec::new();
        let mut p = Prepared {
            name: None,
            owner: None,
            set: Vec::new(),
            refs: Vec::new(),
        };
        for (k, v) in body {
            if k == "attributes" {
                continue;
            }
            if k.eq_ignore_ascii_case("Name") {
                if obj.def.name_field.data_type == DataType::AutoNumber {
                    errs.push(not_writeable("Name"));
                    continue;
                }
                match v {
                    Json::Null => p.name = Some(None),
                    Json::String(s) => {
                        let n = s.chars().count();
                        if n > obj.def.name_field.length as usize {
                            errs.push(MosaicError::field(
                                ErrorCode::STRING_TOO_LONG,
                                "Name",
                                format!(
                                    "Name: data value too large: {n} characters (max length={})",
                                    obj.def.name_field.length
                                ),
                            ));
                        } else {
                            p.name = Some(Some(s.clone()).filter(|s| !s.trim().is_empty()));
                        }
                    }
                    other => errs.push(MosaicError::field(
                        ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD,
                        "Name",
                        format!("Name: value not of required type: {other} (expected text)"),
                    )),
                }
                continue;
            }
            if k.eq_ignore_ascii_case("OwnerId") {
                match self.check_owner(c, v).await {
                    Ok(o) => p.owner = Some(o),
                    Err(e) => errs.push(e),
                }
                continue;
            }
            if SYSTEM_READONLY.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                errs.push(not_writeable(k));
                continue;
            }
            let Some(f) = obj.field(k) else {
                errs.push(invalid_field(obj, k));
                continue;
            };
            if !f.is_updateable() {
                errs.push(not_writeable(&f.api_name));
                continue;
            }
            if let Err(e) = crate::access::check_field_write(c, obj, f) {
                errs.push(e);
                continue;
            }
            let Some(slot) = f.slot else { continue };
            match coerce(f, v).and_then(|val| self.stored_value(f, val)) {
                Ok(val) => {
                    if let (Some(target), Value::Text(id)) = (&f.lookup_object_id, &val) {
                        p.refs.push(RefCheck {
                            field: f.api_name.clone(),
                            object_id: target.clone(),
                            id: id.clone(),
                        });
                    }
                    p.set.retain(|(s, _)| *s != slot);
                    p.set.push((slot, val));
                }
                Err(e) => errs.push(e),
            }
        }
        if creating {
            for f in &obj.def.fields {
                let Some(slot) = f.slot else { continue };
                if p.set.iter().any(|(s, _)| *s == slot) || !f.is_updateable() {
                    continue;
                }
                let default = if f.default_value_formula.is_some() {
                    match self.default_from_formula(c, obj, f).await {
                        Ok(v) => v.and_then(|v| self.stored_value(f, v).ok()),
                        Err(e) => {
                            errs.push(e);
                            None
                        }
                    }
                } else if let Some(dv) = &f.default_value {
                    coerce(f, dv).and_then(|v| self.stored_value(f, v)).ok()
                } else if f
                    .picklist_values
                    .iter()
                    .any(|p| p.is_default && p.is_active)
                {
                    // A multi-picklist may have several defaults: all of them,
                    // in definition order, `;`-joined as any stored value.
                    let defaults: Vec<&str> = f
                        .picklist_values
                        .iter()
                        .filter(|p| p.is_default && p.is_active)
                        .map(|p| p.value.as_str())
                        .collect();
                    Some(Value::Text(defaults.join(";")))
                } else if f.data_type == DataType::Boolean {
                    Some(Value::Boolean(false))
                } else {
                    None
                };
                if let Some(d) = default {
                    p.set.push((slot, d));
                }
            }
        }
        let mut missing: Vec<String> = Vec::new();
        // A field whose value was refused above is not also "missing".
        let refused = |name: &str| {
            errs.iter()
                .any(|e: &MosaicError| e.fields.iter().any(|f| f.eq_ignore_ascii_case(name)))
        };
        let name_required = obj.def.name_field.data_type == DataType::Text;
        if name_required
            && !refused("Name")
            && ((creating && !matches!(p.name, Some(Some(_)))) || matches!(p.name, Some(None)))
        {
            missing.push("Name".into());
        }
        for f in obj
            .def
            .fields
            .iter()
            .filter(|f| f.is_required && f.is_updateable())
        {
            let Some(slot) = f.slot else { continue };
            if refused(&f.api_name) {
                continue;
            }
            let v = p.set.iter().find(|(s, _)| *s == slot).map(|(_, v)| v);
            // Blank text is missing, as for Name.
            let absent = match v {
                None => creating,
                Some(Value::Text(s)) => s.trim().is_empty(),
                Some(v) => v.is_null(),
            };
            if absent {
                missing.push(f.api_name.clone());
            }
        }
        if !missing.is_empty() {
            errs.push(MosaicError {
                code: ErrorCode::REQUIRED_FIELD_MISSING,
                message: format!("Required fields are missing: [{}]", missing.join(", ")),
                fields: missing,
            });
        }
        if errs.is_empty() {
            Ok(p)
        } else {
            Err(RecordErrors(errs))
        }
    }

    /// The live record's values (decrypted), or not found.
    pub(crate) async fn load_values(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
    ) -> RecordResult<crate::formula_eval::Values> {
        let row = self
            .records
            .get(&c.tenant_id, obj.id(), id, &obj.slots())
            .await?
            .filter(|r| !r.is_deleted)
            .ok_or_else(|| record_not_found(id))?;
        Ok(crate::formula_eval::row_values(self, obj, &row))
    }

    /// The record as it would be saved: `old` (or a new record's system
    /// fields) with the prepared changes applied.
    pub(crate) fn new_values(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        p: &Prepared,
        old: Option<&crate::formula_eval::Values>,
        id: &str,
    ) -> crate::formula_eval::Values {
        let mut new = old.cloned().unwrap_or_else(|| {
            let now = self.config.clock.now();
            let mut m = crate::formula_eval::Values::new();
            m.insert("Id".into(), Value::Text(id.to_string()));
            m.insert("Name".into(), Value::Null);
            m.insert("OwnerId".into(), Value::Text(c.user_id.clone()));
            m.insert("CreatedById".into(), Value::Text(c.user_id.clone()));
            m.insert("CreatedDate".into(), Value::Datetime(now));
            m.insert("LastModifiedById".into(), Value::Text(c.user_id.clone()));
            m.insert("LastModifiedDate".into(), Value::Datetime(now));
            m.insert("IsDeleted".into(), Value::Boolean(false));
            for f in &obj.def.fields {
                if f.slot.is_some() {
                    m.insert(f.api_name.clone(), Value::Null);
                }
            }
            m
        });
        if let Some(n) = &p.name {
            new.insert(
                "Name".into(),
                n.clone().map(Value::Text).unwrap_or(Value::Null),
            );
        }
        if let Some(o) = &p.owner {
            new.insert("OwnerId".into(), Value::Text(o.clone()));
        }
        for (slot, v) in &p.set {
            if let Some(f) = obj.def.fields.iter().find(|f| f.slot == Some(*slot)) {
                new.insert(f.api_name.clone(), self.readable(f, v.clone()));
            }
        }
        new
    }

    /// Whether a save of `obj` needs the record's values before and after
    /// (validation rules, workflow rules, field history, criteria-based
    /// sharing rules).
    fn needs_states(obj: &ObjectMeta, creating: bool) -> bool {
        has_criteria_rules(obj)
            || obj.def.validation_rules.iter().any(|r| r.active)
            || obj.def.enable_history
            || obj.def.workflow_rules.iter().any(|r| {
                r.is_active
                    && if creating {
                        r.trigger_type.on_create()
                    } else {
                        r.trigger_type.on_update() || r.timed().next().is_some()
                    }
            })
    }

    /// Validation rules, then workflow rules and history: the effects the
    /// write carries. `p` gains the workflows' field updates.
    async fn before_write(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
        p: &mut Prepared,
        old: Option<crate::formula_eval::Values>,
    ) -> RecordResult<Vec<mosaic_store::Effect>> {
        let creating = old.is_none();
        if !Self::needs_states(obj, creating) {
            return Ok(Vec::new());
        }
        let mut new = self.new_values(c, obj, p, old.as_ref(), id);
        if obj.def.validation_rules.iter().any(|r| r.active) {
            let errors = self
                .run_validation_rules(c, obj, new.clone(), old.clone())
                .await?;
            if !errors.is_empty() {
                return Err(RecordErrors(errors));
            }
        }
        let mut effects = self
            .run_workflows(c, obj, id, old.as_ref(), &mut new, p)
            .await?;
        if obj.def.enable_history {
            effects.extend(crate::workflow::history_effects(
                c,
                obj,
                id,
                old.as_ref(),
                Some(&new),
            ));
        }
        if has_criteria_rules(obj) {
            // Shares of criteria-based rules, rewritten when the set of
            // matching rules changes (always written on create).
            let rows = self.criteria_shares(obj, id, &new);
            let rules = |rows: &[mosaic_store::ShareRow]| -> Vec<String> {
                rows.iter()
                    .filter_map(|r| match &r.cause {
                        mosaic_store::ShareCause::Rule(x) => Some(x.clone()),
                        _ => None,
                    })
                    .collect()
            };
            let changed = match &old {
                None => !rows.is_empty(),
                Some(o) => rules(&self.criteria_shares(obj, id, o)) != rules(&rows),
            };
            if changed {
                effects.push(mosaic_store::Effect::RuleShares {
                    record_id: id.to_string(),
                    rows,
                });
            }
        }
        Ok(effects)
    }

    /// A create, prepared and checked: the insert to write.
    async fn prepared_insert(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        body: &Map<String, Json>,
    ) -> RecordResult<InsertOp> {
        self.prepared_insert_as(c, obj, body, new_id()).await
    }

    /// [`Self::prepared_insert`] of a record whose id the caller chose (a
    /// Bulk API row's, derived from its job and position, so a chunk run
    /// again after a takeover finds the rows it already wrote).
    async fn prepared_insert_as(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        body: &Map<String, Json>,
        id: String,
    ) -> RecordResult<InsertOp> {
        let mut p = self.prepare(c, obj, body, true).await?;
        let effects = self.before_write(c, obj, &id, &mut p, None).await?;
        let tenant_zone = self.zone_of(&c.tenant_id, "").await?;
        let mut op = self.insert_op(c, obj, p, tenant_zone);
        op.record.id = id;
        op.effects = effects;
        Ok(op)
    }

    /// An update, prepared and checked. The caller holds the record's lock
    /// (see [`crate::workflow::RecordLocks`]) until the write is done.
    async fn prepared_update(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
        body: &Map<String, Json>,
    ) -> RecordResult<UpdateOp> {
        let mut p = self.prepare(c, obj, body, false).await?;
        let old = if Self::needs_states(obj, false) {
            Some(self.load_values(c, obj, id).await?)
        } else {
            None
        };
        let effects = match old {
            Some(old) => self.before_write(c, obj, id, &mut p, Some(old)).await?,
            None => Vec::new(),
        };
        let mut op = self.update_op(c, obj, id, p);
        op.effects = effects;
        Ok(op)
    }

    /// `tenant_zone` dates auto numbers (`{YYYY}`, `{MM}`, `{DD}`).
    pub(crate) fn insert_op(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        p: Prepared,
        tenant_zone: chrono_tz::Tz,
    ) -> InsertOp {
        let now = self.config.clock.now();
        let date = now.with_timezone(&tenant_zone).date_naive();
        let mut auto_numbers = Vec::new();
        if obj.def.name_field.data_type == DataType::AutoNumber {
            auto_numbers.push(AutoNumberSpec {
                slot: None,
                counter: obj.def.name_field.counter_id.clone(),
                format: obj
                    .def
                    .name_field
                    .auto_number_format
                    .clone()
                    .unwrap_or_else(|| "{0}".into()),
                start: obj.def.name_field.auto_number_start,
                date,
            });
        }
        for f in obj
            .def
            .fields
            .iter()
            .filter(|f| f.data_type == DataType::AutoNumber)
        {
            auto_numbers.push(AutoNumberSpec {
                slot: f.slot,
                counter: f.id.clone(),
                format: f.auto_number_format.clone().unwrap_or_else(|| "{0}".into()),
                start: f.auto_number_start.unwrap_or(1),
                date,
            });
        }
        InsertOp {
            record: RecordRow {
                id: new_id(),
                object_id: obj.id().to_string(),
                name: p.name.flatten(),
                owner_id: p.owner.unwrap_or_else(|| c.user_id.clone()),
                created_by: c.user_id.clone(),
                created_at: now,
                modified_by: c.user_id.clone(),
                modified_at: now,
                is_deleted: false,
                values: p.set,
            },
            indexes: obj.def.fields.iter().filter_map(index_spec).collect(),
            auto_numbers,
            ref_checks: p.refs,
            require_absent: None,
            effects: Vec::new(),
        }
    }

    fn update_op(&self, c: &Caller, obj: &ObjectMeta, id: &str, p: Prepared) -> UpdateOp {
        let indexes = obj
            .def
            .fields
            .iter()
            .filter_map(index_spec)
            .filter(|s| p.set.iter().any(|(slot, _)| *slot == s.slot))
            .collect();
        UpdateOp {
            object_id: obj.id().to_string(),
            id: id.to_string(),
            name: p.name,
            owner_id: p.owner,
            modified_by: c.user_id.clone(),
            modified_at: self.config.clock.now(),
            set: p.set,
            indexes,
            ref_checks: p.refs,
            effects: Vec::new(),
            unmodified_since: None,
        }
    }

    fn cascade_specs<'a>(
        &'a self,
        tenant: &'a str,
        object_id: &'a str,
        depth: usize,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = MosaicResult<Vec<CascadeSpec>>> + Send + 'a>,
    > {
        Box::pin(async move {
            if depth >= MAX_CASCADE_DEPTH {
                return Ok(vec![]);
            }
            let mut out = Vec::new();
            for (child, f) in self.meta.children(tenant, object_id).await? {
                if f.data_type != DataType::MasterDetail {
                    continue;
                }
                let Some(slot) = f.slot else { continue };
                let children = self.cascade_specs(tenant, child.id(), depth + 1).await?;
                let clear = self.lookups_to(tenant, child.id()).await?;
                out.push(CascadeSpec {
                    object_id: child.id().to_string(),
                    slot,
                    children,
                    clear,
                });
            }
            Ok(out)
        })
    }

    /// The plain lookup fields (not master-detail) that point at `object_id`.
    async fn lookups_to(&self, tenant: &str, object_id: &str) -> MosaicResult<Vec<LookupRef>> {
        Ok(self
            .meta
            .children(tenant, object_id)
            .await?
            .into_iter()
            .filter(|(_, f)| f.data_type == DataType::Lookup)
            .filter_map(|(o, f)| {
                f.slot.map(|slot| LookupRef {
                    object_id: o.id().to_string(),
                    slot,
                })
            })
            .collect())
    }

    fn single(results: MosaicResult<Vec<MosaicResult<WriteResult>>>) -> MosaicResult<WriteResult> {
        results?
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(MosaicError::internal("empty write result")))
    }

    /// Creates a record; returns its id.
    #[tracing::instrument(name = "records.create", skip_all, fields(object = %object))]
    pub async fn create(
        &self,
        c: &Caller,
        object: &str,
        body: &Map<String, Json>,
    ) -> RecordResult<String> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Create)?;
        let op = self.prepared_insert(c, &obj, body).await?;
        let id = op.record.id.clone();
        let op_w = WriteOp::Insert(op);
        let queued = self
            .after_write(&c.tenant_id, std::slice::from_ref(&op_w))
            .await;
        Self::single(self.records.write(&c.tenant_id, vec![op_w], true).await)?;
        self.written(&c.tenant_id, queued);
        Ok(id)
    }

    /// Reads a record: all fields, or the named ones.
    #[tracing::instrument(name = "records.get", skip_all, fields(object = %object))]
    pub async fn get(
        &self,
        c: &Caller,
        object: &str,
        id: &str,
        fields: Option<&[String]>,
    ) -> MosaicResult<RecordView> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Read)?;
        let id = parse_record_id(id)?;
        let wanted: Vec<String> = match fields {
            Some(list) => {
                let mut out = Vec::new();
                for n in list {
                    let known = mosaic_meta::model::SYSTEM_FIELDS
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(n))
                        || obj.field(n).is_some();
                    if !known {
                        return Err(invalid_field(&obj, n));
                    }
                    out.push(n.clone());
                }
                out
            }
            None => mosaic_meta::model::SYSTEM_FIELDS
                .iter()
                .map(|s| s.to_string())
                .chain(obj.def.fields.iter().map(|f| f.api_name.clone()))
                .collect(),
        };
        let wanted = crate::access::visible_fields(c, &obj, wanted, fields.is_some())?;
        let has_formula = wanted
            .iter()
            .any(|n| obj.field(n).is_some_and(|f| f.data_type.is_computed()));
        let mut slots: Vec<FlexSlot> = if has_formula {
            obj.slots()
        } else {
            wanted
                .iter()
                .filter_map(|n| obj.field(n).and_then(|f| f.slot))
                .collect()
        };
        if let Some((_, s)) = crate::sharing::master_field(&obj) {
            if !slots.contains(&s) {
                slots.push(s);
            }
        }
        let generation = self.sharing_generation(&c.tenant_id);
        let row = self
            .records
            .get(&c.tenant_id, obj.id(), &id, &slots)
            .await?
            .filter(|r| !r.is_deleted)
            .ok_or_else(|| record_not_found(&id))?;
        if self.record_level(c, &obj, &row, generation).await? == RecordLevel::None {
            return Err(record_not_found(&id));
        }
        let mut view = self.view(obj.clone(), &row, &wanted);
        if has_formula {
            let mut rows = vec![crate::formula_eval::row_values(self, &obj, &row)];
            self.compute_formulas(c, &obj, &mut rows, &wanted, 0)
                .await?;
            for (name, v) in view.fields.iter_mut() {
                if obj.field(name).is_some_and(|f| f.data_type.is_computed()) {
                    *v = rows[0].remove(name.as_str()).unwrap_or(Value::Null);
                }
            }
        }
        Ok(view)
    }

    /// Renders a stored row as the fields asked for.
    pub fn view(&self, obj: Arc<ObjectMeta>, row: &RecordRow, wanted: &[String]) -> RecordView {
        let mut fields = Vec::with_capacity(wanted.len());
        for n in wanted {
            let v = match n.to_ascii_lowercase().as_str() {
                "id" => Value::Text(row.id.clone()),
                "name" => row.name.clone().map(Value::Text).unwrap_or(Value::Null),
                "ownerid" => Value::Text(row.owner_id.clone()),
                "createdbyid" => Value::Text(row.created_by.clone()),
                "createddate" => Value::Datetime(row.created_at),
                "lastmodifiedbyid" => Value::Text(row.modified_by.clone()),
                "lastmodifieddate" => Value::Datetime(row.modified_at),
                "isdeleted" => Value::Boolean(row.is_deleted),
                _ => match obj.field(n) {
                    Some(f) => {
                        let raw = f
                            .slot
                            .and_then(|s| row.value(s).cloned())
                            .unwrap_or(Value::Null);
                        self.readable(f, raw)
                    }
                    None => Value::Null,
                },
            };
            let canonical = match obj.field(n) {
                Some(f) => f.api_name.clone(),
                None => mosaic_meta::model::SYSTEM_FIELDS
                    .iter()
                    .find(|s| s.eq_ignore_ascii_case(n))
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| n.clone()),
            };
            fields.push((canonical, v));
        }
        RecordView {
            id: row.id.clone(),
            object: obj,
            fields,
        }
    }

    pub(crate) fn readable(&self, f: &FieldDef, raw: Value) -> Value {
        match (f.data_type, raw) {
            (DataType::EncryptedText, Value::Text(s)) => match self.cipher.decrypt(&s) {
                Some(p) => Value::Text(p),
                None => {
                    tracing::warn!(field = %f.api_name, "an encrypted value could not be decrypted with the configured key");
                    Value::Null
                }
            },
            (DataType::Number | DataType::Currency | DataType::Percent, Value::Number(mut d)) => {
                // Keys drop trailing zeros; show the field's scale again.
                if let Some(scale) = f.scale {
                    if d.scale() < scale {
                        d.rescale(scale);
                    }
                }
                Value::Number(d)
            }
            (_, v) => from_stored(f, v),
        }
    }

    /// Updates the given fields of a record.
    pub async fn update(
        &self,
        c: &Caller,
        object: &str,
        id: &str,
        body: &Map<String, Json>,
    ) -> RecordResult<()> {
        self.update_unmodified_since(c, object, id, body, None)
            .await
    }

    /// [`Platform::update`] refused with `CONFLICT`, changing nothing, when
    /// the record was modified after `since` (the `LastModifiedDate` of
    /// the copy the change is based on): no silent overwrite of a save made
    /// meanwhile. Checked inside the write's transaction.
    #[tracing::instrument(name = "records.update", skip_all, fields(object = %object))]
    pub async fn update_unmodified_since(
        &self,
        c: &Caller,
        object: &str,
        id: &str,
        body: &Map<String, Json>,
        since: Option<chrono::DateTime<Utc>>,
    ) -> RecordResult<()> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Edit)?;
        let id = parse_record_id(id)?;
        let _lock = self.lock_saves(&c.tenant_id, [id.as_str()]).await?;
        self.check_record_write(c, &obj, &id, body).await?;
        let mut op = self.prepared_update(c, &obj, &id, body).await?;
        op.unmodified_since = since;
        let op_w = WriteOp::Update(op);
        let queued = self
            .after_write(&c.tenant_id, std::slice::from_ref(&op_w))
            .await;
        Self::single(self.records.write(&c.tenant_id, vec![op_w], true).await)?;
        self.written(&c.tenant_id, queued);
        Ok(())
    }

    /// Soft-deletes a record and its master-detail children.
    #[tracing::instrument(name = "records.delete", skip_all, fields(object = %object))]
    pub async fn delete(&self, c: &Caller, object: &str, id: &str) -> MosaicResult<()> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Delete)?;
        let id = parse_record_id(id)?;
        let _lock = self.lock_saves(&c.tenant_id, [id.as_str()]).await?;
        self.require_record(c, &obj, &id, RecordLevel::Full, "delete")
            .await?;
        let op = self.delete_op(c, &obj, &id).await?;
        let op_w = WriteOp::Delete(op);
        let queued = self
            .after_write(&c.tenant_id, std::slice::from_ref(&op_w))
            .await;
        Self::single(self.records.write(&c.tenant_id, vec![op_w], true).await)?;
        self.written(&c.tenant_id, queued);
        Ok(())
    }

    async fn delete_op(&self, c: &Caller, obj: &ObjectMeta, id: &str) -> MosaicResult<DeleteOp> {
        Ok(DeleteOp {
            object_id: obj.id().to_string(),
            id: id.to_string(),
            deleted_by: c.user_id.clone(),
            deleted_at: Utc::now(),
            cascade: self.cascade_specs(&c.tenant_id, obj.id(), 0).await?,
            clear: self.lookups_to(&c.tenant_id, obj.id()).await?,
            effects: self.delete_effects(c, obj, id).await?,
        })
    }

    /// Upsert by external id: updates the record whose `ext_field` equals
    /// `value`, or creates one with it.
    #[tracing::instrument(name = "records.upsert", skip_all, fields(object = %object))]
    pub async fn upsert(
        &self,
        c: &Caller,
        object: &str,
        ext_field: &str,
        value: &str,
        body: &Map<String, Json>,
    ) -> RecordResult<WriteOutcome> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Read)?;
        if ext_field.eq_ignore_ascii_case("Id") {
            let id = parse_record_id(value)?;
            self.update(c, object, &id, body).await?;
            return Ok(WriteOutcome { id, created: false });
        }
        let f = obj
            .field(ext_field)
            .filter(|f| crate::access::can_read_field(c, f))
            .ok_or_else(|| invalid_field(&obj, ext_field))?;
        if !(f.is_external_id || f.is_unique) {
            return Err(MosaicError::field(
                ErrorCode::INVALID_FIELD,
                f.api_name.clone(),
                format!(
                    "{} is not an external id or unique field of {}",
                    f.api_name,
                    obj.api_name()
                ),
            )
            .into());
        }
        let spec =
            index_spec(f).ok_or_else(|| MosaicError::internal("external id without index"))?;
        let key = coerce(f, &Json::String(value.to_string()))?;
        if key.is_null() {
            return Err(MosaicError::field(
                ErrorCode::INVALID_FIELD,
                f.api_name.clone(),
                "the external id value is empty",
            )
            .into());
        }
        if let Some(v) = body
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&f.api_name))
            .map(|(_, v)| v)
        {
            if coerce(f, v).ok().as_ref() != Some(&key) {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_FIELD,
                    f.api_name.clone(),
                    format!(
                        "the body's {} differs from the external id in the URL",
                        f.api_name
                    ),
                )
                .into());
            }
        }
        for _attempt in 0..3 {
            let ids = self
                .records
                .find_by_index(&c.tenant_id, obj.id(), &spec, &key)
                .await?;
            match ids.len() {
                0 => {
                    let mut with_key = body.clone();
                    with_key.retain(|k, _| !k.eq_ignore_ascii_case(&f.api_name));
                    with_key.insert(f.api_name.clone(), Json::String(value.to_string()));
                    crate::access::require(c, &obj, ObjectOp::Create)?;
                    let mut op = self.prepared_insert(c, &obj, &with_key).await?;
                    op.require_absent = Some((spec.clone(), key.clone()));
                    let id = op.record.id.clone();
                    let op_w = WriteOp::Insert(op);
                    let queued = self
                        .after_write(&c.tenant_id, std::slice::from_ref(&op_w))
                        .await;
                    match Self::single(self.records.write(&c.tenant_id, vec![op_w], true).await) {
                        Ok(_) => {
                            self.written(&c.tenant_id, queued);
                            return Ok(WriteOutcome { id, created: true });
                        }
                        // Created concurrently: retry as an update.
                        Err(e)
                            if e.code == ErrorCode::DUPLICATE_VALUE
                                && e.fields.first() == Some(&f.api_name) =>
                        {
                            continue
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                1 => {
                    let id = ids[0].clone();
                    let _lock = self.lock_saves(&c.tenant_id, [id.as_str()]).await?;
                    crate::access::require(c, &obj, ObjectOp::Edit)?;
                    self.check_record_write(c, &obj, &id, body).await?;
                    let op = self.prepared_update(c, &obj, &id, body).await?;
                    let op_w = WriteOp::Update(op);
                    let queued = self
                        .after_write(&c.tenant_id, std::slice::from_ref(&op_w))
                        .await;
                    match Self::single(self.records.write(&c.tenant_id, vec![op_w], true).await) {
                        Ok(_) => {
                            self.written(&c.tenant_id, queued);
                            return Ok(WriteOutcome { id, created: false });
                        }
                        Err(e) if e.code == ErrorCode::NOT_FOUND => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                n => {
                    return Err(MosaicError::field(
                        ErrorCode::MULTIPLE_CHOICES,
                        f.api_name.clone(),
                        format!("{n} records have {} = '{value}'", f.api_name),
                    )
                    .into())
                }
            }
        }
        Err(MosaicError::new(
            ErrorCode::CONFLICT,
            "the record changed concurrently; retry the upsert",
        )
        .into())
    }

    /// Runs prepared batch ops: preparation errors and write errors are
    /// reported per record; with `all_or_none` any failure fails all.
    async fn run_batch(
        &self,
        c: &Caller,
        prepared: Vec<RecordResult<WriteOp>>,
        all_or_none: bool,
    ) -> MosaicResult<Vec<RecordResult<String>>> {
        let rolled_back = || {
            RecordErrors(vec![MosaicError::new(
                ErrorCode::ALL_OR_NONE_OPERATION_ROLLED_BACK,
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
            )])
        };
        if all_or_none && prepared.iter().any(|p| p.is_err()) {
            return Ok(prepared
                .into_iter()
                .map(|p| match p {
                    Err(e) => Err(e),
                    Ok(_) => Err(rolled_back()),
                })
                .collect());
        }
        let mut slots: Vec<Option<RecordResult<String>>> = Vec::with_capacity(prepared.len());
        let mut ops = Vec::new();
        let mut positions = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            match p {
                Ok(op) => {
                    positions.push(i);
                    ops.push(op);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(Err(e))),
            }
        }
        if !ops.is_empty() {
            let queued = self.after_write(&c.tenant_id, &ops).await;
            let results = self.records.write(&c.tenant_id, ops, all_or_none).await?;
            self.written(&c.tenant_id, queued);
            for (pos, r) in positions.into_iter().zip(results) {
                slots[pos] = Some(match r {
                    Ok(
                        WriteResult::Inserted { id }
                        | WriteResult::Updated { id }
                        | WriteResult::Deleted { id, .. },
                    ) => Ok(id),
                    Err(e) => Err(e.into()),
                });
            }
        }
        Ok(slots
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Err(MosaicError::internal("missing batch result").into())))
            .collect())
    }

    fn check_batch(n: usize) -> MosaicResult<()> {
        if n > MAX_BATCH_RECORDS {
            return Err(MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!("a batch may hold at most {MAX_BATCH_RECORDS} records, this one has {n}"),
            ));
        }
        Ok(())
    }

    fn record_type(rec: &Map<String, Json>) -> MosaicResult<&str> {
        rec.get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                MosaicError::field(
                    ErrorCode::INVALID_TYPE,
                    "attributes.type",
                    "each record needs attributes.type naming its object",
                )
            })
    }

    /// Batch create (`composite/sobjects` POST).
    #[tracing::instrument(name = "records.create_batch", skip_all, fields(records = records.len()))]
    pub async fn create_batch(
        &self,
        c: &Caller,
        records: &[Map<String, Json>],
        all_or_none: bool,
    ) -> MosaicResult<Vec<RecordResult<String>>> {
        Self::check_batch(records.len())?;
        let mut prepared = Vec::with_capacity(records.len());
        for rec in records {
            prepared.push(
                async {
                    if rec.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
                        return Err(MosaicError::field(
                            ErrorCode::INVALID_FIELD_FOR_INSERT_UPDATE,
                            "Id",
                            "records to create must not have an Id",
                        )
                        .into());
                    }
                    let obj = self
                        .meta
                        .object(&c.tenant_id, Self::record_type(rec)?)
                        .await?;
                    crate::access::require(c, &obj, ObjectOp::Create)?;
                    Ok(WriteOp::Insert(self.prepared_insert(c, &obj, rec).await?))
                }
                .await,
            );
        }
        self.run_batch(c, prepared, all_or_none).await
    }

    /// Creates records of `object` under the ids given (the Bulk API's
    /// insert: one chunk through the same pipeline as a batch create, each
    /// record succeeding or failing on its own).
    pub(crate) async fn create_rows_with_ids(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        rows: &[(String, Map<String, Json>)],
    ) -> MosaicResult<Vec<RecordResult<String>>> {
        Self::check_batch(rows.len())?;
        let mut prepared = Vec::with_capacity(rows.len());
        for (id, rec) in rows {
            prepared.push(
                async {
                    if rec.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
                        return Err(MosaicError::field(
                            ErrorCode::INVALID_FIELD_FOR_INSERT_UPDATE,
                            "Id",
                            "records to create must not have an Id",
                        )
                        .into());
                    }
                    crate::access::require(c, obj, ObjectOp::Create)?;
                    Ok(WriteOp::Insert(
                        self.prepared_insert_as(c, obj, rec, id.clone()).await?,
                    ))
                }
                .await,
            );
        }
        self.run_batch(c, prepared, false).await
    }

    /// Batch update (`composite/sobjects` PATCH): each record carries `id`.
    #[tracing::instrument(name = "records.update_batch", skip_all, fields(records = records.len()))]
    pub async fn update_batch(
        &self,
        c: &Caller,
        records: &[Map<String, Json>],
        all_or_none: bool,
    ) -> MosaicResult<Vec<RecordResult<String>>> {
        Self::check_batch(records.len())?;
        let ids: Vec<String> = records
            .iter()
            .filter_map(|r| {
                r.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("Id"))
                    .and_then(|(_, v)| v.as_str())
                    .and_then(mosaic_types::id::normalize_id)
            })
            .collect();
        let _locks = self
            .lock_saves(&c.tenant_id, ids.iter().map(String::as_str))
            .await?;
        let mut seen = std::collections::HashSet::new();
        let mut prepared = Vec::with_capacity(records.len());
        for rec in records {
            prepared.push(
                async {
                    let obj = self
                        .meta
                        .object(&c.tenant_id, Self::record_type(rec)?)
                        .await?;
                    let (idk, idv) = rec
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("Id"))
                        .ok_or_else(|| {
                            MosaicError::field(
                                ErrorCode::INVALID_ID_FIELD,
                                "Id",
                                "each record to update needs its Id",
                            )
                        })?;
                    let id = idv
                        .as_str()
                        .and_then(mosaic_types::id::normalize_id)
                        .ok_or_else(|| {
                            MosaicError::field(ErrorCode::MALFORMED_ID, "Id", "Id: malformed id")
                        })?;
                    if !seen.insert(id.clone()) {
                        return Err(MosaicError::field(
                            ErrorCode::DUPLICATE_VALUE,
                            "Id",
                            format!("the batch names record {id} more than once"),
                        )
                        .into());
                    }
                    let mut body = rec.clone();
                    body.remove(idk.as_str());
                    crate::access::require(c, &obj, ObjectOp::Edit)?;
                    self.check_record_write(c, &obj, &id, &body).await?;
                    Ok(WriteOp::Update(
                        self.prepared_update(c, &obj, &id, &body).await?,
                    ))
                }
                .await,
            );
        }
        self.run_batch(c, prepared, all_or_none).await
    }

    /// Batch delete (`composite/sobjects?ids=` DELETE).
    #[tracing::instrument(name = "records.delete_batch", skip_all, fields(records = ids.len()))]
    pub async fn delete_batch(
        &self,
        c: &Caller,
        ids: &[String],
        all_or_none: bool,
    ) -> MosaicResult<Vec<RecordResult<String>>> {
        Self::check_batch(ids.len())?;
        let normalized: Vec<String> = ids
            .iter()
            .filter_map(|i| mosaic_types::id::normalize_id(i))
            .collect();
        let _locks = self
            .lock_saves(&c.tenant_id, normalized.iter().map(String::as_str))
            .await?;
        let mut prepared = Vec::with_capacity(ids.len());
        for raw in ids {
            prepared.push(
                async {
                    let id = parse_record_id(raw)?;
                    let object_id = self
                        .records
                        .locate(&c.tenant_id, &id)
                        .await?
                        .ok_or_else(|| record_not_found(&id))?;
                    let obj = self.meta.object_by_id(&c.tenant_id, &object_id).await?;
                    crate::access::require(c, &obj, ObjectOp::Delete)?;
                    self.require_record(c, &obj, &id, RecordLevel::Full, "delete")
                        .await?;
                    Ok(WriteOp::Delete(self.delete_op(c, &obj, &id).await?))
                }
                .await,
            );
        }
        self.run_batch(c, prepared, all_or_none).await
    }
}
