//! Workflow rules at save time: criteria, field updates (in the write's
//! transaction, re-evaluated up to [`MAX_TRIGGER_DEPTH`] times), and the
//! effects the write carries — outbox entries for external actions, tasks,
//! scheduled time-based actions, field history.
//!
//! Order of a save, as Salesforce: system validation → validation rules →
//! workflow rules (field updates; validation rules are not run again) →
//! one transaction with the record and all its effects.

use crate::formula_eval::Values;
use crate::platform::Platform;
use crate::records::{Caller, Prepared, RecordErrors, RecordResult};
use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, Utc};
use mosaic_formula::FValue;
use mosaic_meta::formulas::{default_options, validation_options};
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::workflow::{
    coerce_for, parse_logic, render_template, rule_field, ActionConfig, Condition, Criteria,
    FieldUpdateConfig, Operator, ReEvaluation, RuleField, TimeUnit, ValueType, WorkflowAction,
    WorkflowRule,
};
use mosaic_store::automation::TIME_TRIGGER;
use mosaic_store::{Effect, HistoryRow, OutboxEntry, RefCheck, WriteOp};
use mosaic_types::value::{format_date, format_time, sf_datetime, to_json};
use mosaic_types::{new_id, DataType, ErrorCode, MosaicError, MosaicResult, Value};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Re-evaluations of the rules caused by field updates within one save.
pub const MAX_TRIGGER_DEPTH: usize = 5;
/// Longest time the rules of one save may take.
pub const SYNC_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Most external actions (outbox entries and tasks) one record save queues.
pub const MAX_QUEUED_ACTIONS: usize = 100;

pub const OUTBOUND_MESSAGE: &str = "outbound_message";
pub const EMAIL_ALERT: &str = "email_alert";

// ---------------------------------------------------------------- locks

const LOCK_STRIPES: usize = 4096;

/// Serializes saves of one record so that each writer's rules see the old
/// and new values of a consistent sequence of saves. Striped: records are
/// hashed onto a fixed set of mutexes, taken in index order so a batch
/// never deadlocks with another.
pub struct RecordLocks {
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl Default for RecordLocks {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordLocks {
    pub fn new() -> RecordLocks {
        RecordLocks {
            stripes: (0..LOCK_STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        }
    }

    pub async fn lock<'a>(
        &self,
        tenant: &str,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut idx: Vec<usize> = ids
            .into_iter()
            .map(|id| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                tenant.hash(&mut h);
                id.hash(&mut h);
                (h.finish() % LOCK_STRIPES as u64) as usize
            })
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let mut out = Vec::with_capacity(idx.len());
        for i in idx {
            out.push(self.stripes[i].clone().lock_owned().await);
        }
        out
    }
}

/// The locks one save holds: this process's record locks, then the
/// database's (serializing the save with those of every other instance;
/// see [`mosaic_store::RecordStore::lock_records`]).
pub(crate) struct SaveLocks {
    _database: Option<mosaic_store::record_store::HeldRecordLock>,
    _local: Vec<tokio::sync::OwnedMutexGuard<()>>,
}

impl crate::platform::Platform {
    /// Serializes saves of `ids` in every instance, from reading the old
    /// values to the commit: held until the returned locks are dropped.
    /// Correctness rests on the database alone (Redis is not involved).
    pub(crate) async fn lock_saves<'a>(
        &self,
        tenant: &str,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> MosaicResult<SaveLocks> {
        let ids: Vec<String> = ids.into_iter().map(str::to_string).collect();
        let local = self
            .record_locks
            .lock(tenant, ids.iter().map(String::as_str))
            .await;
        let database = self.records.lock_records(tenant, &ids).await?;
        Ok(SaveLocks {
            _database: database,
            _local: local,
        })
    }
}

// ---------------------------------------------------------------- values

fn limit_error(msg: impl Into<String>) -> RecordErrors {
    RecordErrors(vec![MosaicError::new(ErrorCode::LIMIT_EXCEEDED, msg)])
}

fn eq_ci(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => x.to_lowercase() == y.to_lowercase(),
        _ => a == b,
    }
}

fn cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Datetime(x), Value::Datetime(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Datetime(y)) => Some(x.and_time(NaiveTime::MIN).and_utc().cmp(y)),
        (Value::Datetime(x), Value::Date(y)) => Some(x.cmp(&y.and_time(NaiveTime::MIN).and_utc())),
        (Value::Time(x), Value::Time(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        _ => None,
    }
}

fn blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Text(s) => s.is_empty(),
        _ => false,
    }
}

/// A value as merge-field text.
pub fn merge_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Text(s) => s.clone(),
        Value::Number(d) => d.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Date(d) => format_date(d),
        Value::Datetime(d) => sf_datetime(d),
        Value::Time(t) => format_time(t),
        Value::Location {
            latitude,
            longitude,
        } => format!("{latitude}, {longitude}"),
    }
}

fn field_value(vals: &Values, name: &str) -> Value {
    vals.get(name).cloned().unwrap_or(Value::Null)
}

fn list_values(field: &RuleField<'_>, v: &Json) -> Vec<Value> {
    let items: Vec<Json> = match v {
        Json::Array(a) => a.clone(),
        Json::String(s) => s
            .split(',')
            .map(|p| Json::String(p.trim().to_string()))
            .collect(),
        other => vec![other.clone()],
    };
    items
        .iter()
        .filter_map(|i| coerce_for(field, i).ok())
        .collect()
}

/// Whether one condition holds for `new` (with `old` the values before an
/// update; `None` on create and when judging the old state itself).
pub fn condition_holds(
    obj: &ObjectMeta,
    c: &Condition,
    new: &Values,
    old: Option<&Values>,
) -> bool {
    let Some(field) = rule_field(&obj.def, &c.field) else {
        return false;
    };
    let name = field.name().to_string();
    let cur = field_value(new, &name);
    let target = || coerce_for(&field, &c.value).unwrap_or(Value::Null);
    let prior = old.map(|o| field_value(o, &name));
    let changed = prior.as_ref().is_some_and(|p| !eq_ci(p, &cur));
    use Operator::*;
    match c.operator {
        Equals => {
            let t = target();
            (blank(&cur) && blank(&t)) || eq_ci(&cur, &t)
        }
        NotEquals => {
            let t = target();
            !((blank(&cur) && blank(&t)) || eq_ci(&cur, &t))
        }
        GreaterThan | LessThan | GreaterOrEqual | LessOrEqual => {
            let t = target();
            match cmp(&cur, &t) {
                Some(o) => match c.operator {
                    GreaterThan => o.is_gt(),
                    LessThan => o.is_lt(),
                    GreaterOrEqual => o.is_ge(),
                    _ => o.is_le(),
                },
                None => false,
            }
        }
        Contains | StartsWith => {
            let needle = c.value.as_str().unwrap_or("").to_lowercase();
            let hay = merge_text(&cur).to_lowercase();
            if c.operator == Contains {
                hay.contains(&needle)
            } else {
                hay.starts_with(&needle)
            }
        }
        In => list_values(&field, &c.value).iter().any(|t| eq_ci(&cur, t)),
        NotIn => !list_values(&field, &c.value).iter().any(|t| eq_ci(&cur, t)),
        IsNull => {
            let want_null = c.value.as_bool().unwrap_or(true);
            blank(&cur) == want_null
        }
        Changed => changed,
        ChangedTo => changed && eq_ci(&cur, &target()),
        ChangedFrom => changed && prior.as_ref().is_some_and(|p| eq_ci(p, &target())),
    }
}

/// What a committed write still has to do.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AfterWrite {
    queued: bool,
    reshare: bool,
}

pub(crate) fn criteria_hold(
    obj: &ObjectMeta,
    cr: &Criteria,
    new: &Values,
    old: Option<&Values>,
) -> bool {
    let results: Vec<bool> = cr
        .conditions
        .iter()
        .map(|c| condition_holds(obj, c, new, old))
        .collect();
    match parse_logic(&cr.logic, results.len()) {
        Ok(l) => l.eval(&|i| results.get(i).copied().unwrap_or(false)),
        // Checked at save time; a rule that no longer parses never fires.
        Err(_) => false,
    }
}

/// Field-history rows for a save: `created`, `deleted`, or one row per
/// changed field.
pub fn history_effects(
    c: &Caller,
    obj: &ObjectMeta,
    id: &str,
    old: Option<&Values>,
    new: Option<&Values>,
) -> Vec<Effect> {
    let now = Utc::now();
    let row = |field: &str, o: Option<String>, n: Option<String>| {
        Effect::History(HistoryRow {
            id: new_id(),
            object_id: obj.id().to_string(),
            record_id: id.to_string(),
            field: field.to_string(),
            old_value: o,
            new_value: n,
            changed_by: c.user_id.clone(),
            changed_at: now,
        })
    };
    match (old, new) {
        (None, Some(_)) => vec![row("created", None, None)],
        (Some(_), None) => vec![row("deleted", None, None)],
        (Some(o), Some(n)) => {
            let mut out = Vec::new();
            let tracked = ["Name", "OwnerId"]
                .into_iter()
                .map(|s| (s.to_string(), false))
                .chain(
                    obj.def
                        .fields
                        .iter()
                        .filter(|f| f.slot.is_some())
                        .map(|f| (f.api_name.clone(), f.data_type == DataType::EncryptedText)),
                );
            for (name, secret) in tracked {
                let (a, b) = (field_value(o, &name), field_value(n, &name));
                if a == b {
                    continue;
                }
                if secret {
                    // The change is recorded, never the values.
                    out.push(row(&name, None, None));
                } else {
                    out.push(row(
                        &name,
                        Some(to_json(&a).to_string()),
                        Some(to_json(&b).to_string()),
                    ));
                }
            }
            out
        }
        (None, None) => Vec::new(),
    }
}

/// Whether any active rule reads a formula field's value (criteria, merge
/// fields, outbound fields, formulas): only then are formula fields
/// computed for the rules, which can take reads across relationships.
fn rules_read_formula_fields(obj: &ObjectMeta) -> bool {
    if !obj.def.fields.iter().any(|f| f.data_type.is_computed()) {
        return false;
    }
    let is_formula = |name: &str| obj.field(name).is_some_and(|f| f.data_type.is_computed());
    let merges = |t: &str| {
        mosaic_meta::workflow::merge_fields(t)
            .iter()
            .any(|(_, n)| is_formula(n))
    };
    obj.def
        .workflow_rules
        .iter()
        .filter(|r| r.is_active)
        .any(|r| {
            r.formula.is_some()
                || r.filter_criteria
                    .as_ref()
                    .is_some_and(|c| c.conditions.iter().any(|c| is_formula(&c.field)))
                || r.actions.iter().any(|a| {
                    a.time_trigger
                        .as_ref()
                        .is_some_and(|t| is_formula(&t.field))
                        || match a.config() {
                            Ok(ActionConfig::FieldUpdate(fu)) => {
                                fu.value_type == ValueType::Formula
                            }
                            Ok(ActionConfig::TaskCreation(t)) => {
                                merges(&t.subject) || t.description.as_deref().is_some_and(merges)
                            }
                            Ok(ActionConfig::EmailAlert(e)) => {
                                merges(&e.template.subject) || merges(&e.template.body)
                            }
                            Ok(ActionConfig::OutboundMessage(o)) => {
                                o.fields.is_empty() || o.fields.iter().any(|f| is_formula(f))
                            }
                            Err(_) => true,
                        }
                })
        })
}

/// When a time-based action is due, from the record's date field.
fn due_time(a: &WorkflowAction, vals: &Values) -> Option<DateTime<Utc>> {
    let t = a.time_trigger.as_ref()?;
    let base = match field_value(vals, &t.field) {
        Value::Date(d) => d.and_time(NaiveTime::MIN).and_utc(),
        Value::Datetime(d) => d,
        _ => return None,
    };
    let delta = match t.unit {
        TimeUnit::Hours => ChronoDuration::try_hours(t.offset)?,
        TimeUnit::Days => ChronoDuration::try_days(t.offset)?,
    };
    base.checked_add_signed(delta)
}

impl Platform {
    /// Asks the delivery worker to look for due entries now.
    pub fn wake_outbox(&self) {
        self.outbox_wake.notify_one();
    }

    /// Notes a committed write: wakes the delivery worker if it queued work.
    /// What `ops` need once they have committed (see [`Platform::written`]).
    pub(crate) async fn after_write(&self, tenant: &str, ops: &[WriteOp]) -> AfterWrite {
        let mut a = AfterWrite::default();
        for op in ops {
            let effects = match op {
                WriteOp::Insert(i) => &i.effects,
                WriteOp::Update(u) => &u.effects,
                WriteOp::Delete(d) => &d.effects,
            };
            a.queued |= !effects.is_empty();
            if let WriteOp::Update(u) = op {
                // Owner, master record or rule-made shares changed: cached
                // record decisions may be wrong now.
                a.reshare |= u.owner_id.is_some()
                    || effects
                        .iter()
                        .any(|e| matches!(e, Effect::RuleShares { .. }));
                if !a.reshare {
                    if let Ok(obj) = self.meta.object_by_id(tenant, &u.object_id).await {
                        if let Some((_, s)) = crate::sharing::master_field(&obj) {
                            a.reshare |= u.set.iter().any(|(x, _)| *x == s);
                        }
                    }
                }
            }
        }
        a
    }

    /// After a committed write: wakes the delivery worker when the write
    /// queued something, drops cached record decisions when it changed
    /// who may see a record.
    pub(crate) fn written(&self, tenant: &str, a: AfterWrite) {
        if a.queued {
            self.outbox_wake.notify_one();
        }
        if a.reshare {
            self.sharing_changed(tenant);
        }
    }

    /// Formula-field values computed onto a record's values (rules may
    /// read formula fields).
    pub(crate) async fn with_formulas(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        v: &Values,
    ) -> MosaicResult<Values> {
        if !rules_read_formula_fields(obj) {
            return Ok(v.clone());
        }
        let names: Vec<String> = obj
            .def
            .fields
            .iter()
            .filter(|f| f.data_type.is_computed())
            .map(|f| f.api_name.clone())
            .collect();
        let mut rows = vec![v.clone()];
        if !names.is_empty() {
            self.compute_formulas(c, obj, &mut rows, &names, 0).await?;
        }
        Ok(rows.pop().unwrap_or_default())
    }

    /// Whether a rule's criteria hold (no criteria: always).
    pub(crate) async fn rule_holds(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        r: &WorkflowRule,
        new: &Values,
        old: Option<&Values>,
    ) -> MosaicResult<bool> {
        if let Some(cr) = &r.filter_criteria {
            return Ok(criteria_hold(obj, cr, new, old));
        }
        if let Some(src) = &r.formula {
            let label = format!("workflow rule {}", r.name);
            let v = self
                .eval_on_save(c, obj, &label, src, &validation_options(), (new, old))
                .await?;
            return Ok(matches!(v, FValue::Boolean(true)));
        }
        Ok(true)
    }

    /// The value a field update writes.
    pub(crate) async fn field_update_value(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        r: &WorkflowRule,
        fu: &FieldUpdateConfig,
        new: &Values,
        old: Option<&Values>,
    ) -> MosaicResult<Value> {
        let target = rule_field(&obj.def, &fu.field_api_name).ok_or_else(|| {
            MosaicError::internal(format!("field update target {} is gone", fu.field_api_name))
        })?;
        let field_err = |msg: String| {
            MosaicError::field(ErrorCode::INVALID_FIELD, fu.field_api_name.clone(), msg)
        };
        match fu.value_type {
            ValueType::Null => coerce_for(&target, &Json::Null),
            ValueType::Literal => coerce_for(&target, fu.value.as_ref().unwrap_or(&Json::Null))
                .map_err(|e| field_err(format!("workflow rule {}: {}", r.name, e.message))),
            ValueType::Formula => {
                let src = fu.formula.as_deref().unwrap_or("");
                let opts = match &target {
                    RuleField::Custom(f) => default_options(f),
                    RuleField::System(..) => mosaic_formula::Options {
                        treat_blanks_as_zero: false,
                        return_type: Some(mosaic_formula::FormulaType::Text),
                    },
                };
                let label = format!("field update of workflow rule {}", r.name);
                let v = self
                    .eval_on_save(c, obj, &label, src, &opts, (new, old))
                    .await?;
                let as_json = match v {
                    FValue::Null => Json::Null,
                    FValue::Text(s) => Json::String(s),
                    FValue::Number(d) => mosaic_types::value::number(&d),
                    FValue::Boolean(b) => Json::Bool(b),
                    FValue::Date(d) => Json::String(format_date(&d)),
                    FValue::Datetime(d) => Json::String(d.to_rfc3339()),
                    FValue::Time(t) => Json::String(format_time(&t)),
                };
                coerce_for(&target, &as_json)
                    .map_err(|e| field_err(format!("{label}: {}", e.message)))
            }
        }
    }

    /// The effect of an external action (task, email alert, outbound
    /// message) fired for a record.
    pub(crate) async fn action_effect(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        (id, vals): (&str, &Values),
        r: &WorkflowRule,
        a: &WorkflowAction,
        event: &str,
    ) -> MosaicResult<Option<Effect>> {
        let now = self.config.clock.now();
        let render = |t: &str| {
            render_template(t, &|name| {
                let canonical = rule_field(&obj.def, name)
                    .map(|f| f.name().to_string())
                    .unwrap_or_else(|| name.to_string());
                merge_text(&field_value(vals, &canonical))
            })
        };
        let entry = |kind: &str, payload: Json| OutboxEntry {
            id: new_id(),
            tenant_id: c.tenant_id.clone(),
            kind: kind.to_string(),
            object_id: obj.id().to_string(),
            record_id: id.to_string(),
            rule_id: Some(r.id.clone()),
            action_id: Some(a.id.clone()),
            payload: payload.to_string(),
            state: mosaic_store::automation::PENDING.into(),
            due_at: now,
            attempts: 0,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        match a.config()? {
            ActionConfig::FieldUpdate(_) => Ok(None),
            ActionConfig::TaskCreation(t) => {
                let task = self
                    .meta
                    .object(&c.tenant_id, TASK_OBJECT)
                    .await
                    .map_err(|_| {
                        MosaicError::new(
                            ErrorCode::INVALID_INPUT,
                            format!(
                                "workflow rule {} creates tasks but the Task object is missing",
                                r.name
                            ),
                        )
                    })?;
                let owner = match t.assignee.as_str() {
                    "owner" => field_value(vals, "OwnerId"),
                    "creator" => field_value(vals, "CreatedById"),
                    other => Value::Text(other.to_string()),
                };
                let due = t
                    .due_date_offset
                    .and_then(ChronoDuration::try_days)
                    .and_then(|d| now.date_naive().checked_add_signed(d));
                let mut body = Map::new();
                body.insert("Subject".into(), Json::String(render(&t.subject)));
                body.insert("Status".into(), Json::String(t.status.clone()));
                body.insert("Priority".into(), Json::String(t.priority.clone()));
                body.insert("WhatId".into(), Json::String(id.to_string()));
                if let Some(d) = due {
                    body.insert("DueDate".into(), Json::String(format_date(&d)));
                }
                if let Some(d) = &t.description {
                    body.insert("Description".into(), Json::String(render(d)));
                }
                body.insert("OwnerId".into(), to_json(&owner));
                // Workflow actions run in system context: the saving user's
                // field permissions on Task do not limit them.
                let system = Caller::system(&c.tenant_id, &c.user_id);
                let p = match self.prepare(&system, &task, &body, true).await {
                    Ok(p) => p,
                    Err(e) => {
                        // An assignee that no longer exists falls back to
                        // the record's owner rather than failing the save.
                        if e.0.iter().any(|e| e.fields.iter().any(|f| f == "OwnerId")) {
                            tracing::warn!(rule = %r.name, "task assignee is not an active user; assigning the record owner");
                            body.insert("OwnerId".into(), to_json(&field_value(vals, "OwnerId")));
                            self.prepare(&system, &task, &body, true)
                                .await
                                .map_err(|e| {
                                    e.0.into_iter()
                                        .next()
                                        .unwrap_or_else(|| MosaicError::internal("task"))
                                })?
                        } else {
                            return Err(e
                                .0
                                .into_iter()
                                .next()
                                .unwrap_or_else(|| MosaicError::internal("task")));
                        }
                    }
                };
                let tenant_zone = self.zone_of(&c.tenant_id, "").await?;
                Ok(Some(Effect::Insert(Box::new(self.insert_op(
                    c,
                    &task,
                    p,
                    tenant_zone,
                )))))
            }
            ActionConfig::EmailAlert(e) => {
                let mut to = Vec::new();
                for rcpt in &e.recipients {
                    let user = match rcpt.as_str() {
                        "owner" => field_value(vals, "OwnerId").as_text().map(str::to_string),
                        "creator" => field_value(vals, "CreatedById")
                            .as_text()
                            .map(str::to_string),
                        other if other.contains('@') => {
                            to.push(other.to_string());
                            None
                        }
                        other => mosaic_types::id::normalize_id(other),
                    };
                    if let Some(uid) = user {
                        match self.meta_store.user(&c.tenant_id, &uid).await? {
                            Some(u) if u.is_active => match u.email {
                                Some(m) if !m.is_empty() => to.push(m),
                                _ => {
                                    tracing::warn!(rule = %r.name, "email recipient user has no email address")
                                }
                            },
                            _ => {
                                tracing::warn!(rule = %r.name, "email recipient is not an active user")
                            }
                        }
                    }
                }
                to.sort();
                to.dedup();
                if to.is_empty() {
                    tracing::warn!(rule = %r.name, "email alert has no deliverable recipient; skipped");
                    return Ok(None);
                }
                Ok(Some(Effect::Enqueue(entry(
                    EMAIL_ALERT,
                    json!({
                        "to": to,
                        "subject": render(&e.template.subject),
                        "body": render(&e.template.body),
                    }),
                ))))
            }
            ActionConfig::OutboundMessage(o) => {
                let mut fields = Map::new();
                fields.insert("Id".into(), Json::String(id.to_string()));
                let names: Vec<String> = if o.fields.is_empty() {
                    mosaic_meta::model::SYSTEM_FIELDS
                        .iter()
                        .map(|s| s.to_string())
                        .chain(obj.def.fields.iter().map(|f| f.api_name.clone()))
                        .collect()
                } else {
                    o.fields.clone()
                };
                for n in names {
                    fields.insert(n.clone(), to_json(&field_value(vals, &n)));
                }
                let mut e = entry(OUTBOUND_MESSAGE, Json::Null);
                let body = json!({
                    "delivery_id": e.id,
                    "tenant_id": c.tenant_id,
                    "object": obj.api_name(),
                    "record_id": id,
                    "rule": r.name,
                    "event": event,
                    "occurred_at": sf_datetime(&now),
                    "record": fields,
                });
                e.payload = json!({
                    "endpoint_url": o.endpoint_url,
                    "secret": o.secret,
                    "body": body,
                })
                .to_string();
                Ok(Some(Effect::Enqueue(e)))
            }
        }
    }

    /// Outbox entries that run a rule's time-based actions when due.
    fn schedule(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
        r: &WorkflowRule,
        vals: &Values,
    ) -> Vec<Effect> {
        let now = self.config.clock.now();
        let mut out = vec![Effect::Unschedule {
            record_id: id.to_string(),
            rule_id: Some(r.id.clone()),
        }];
        for a in r.timed() {
            let Some(due) = due_time(a, vals) else {
                continue;
            };
            out.push(Effect::Enqueue(OutboxEntry {
                id: new_id(),
                tenant_id: c.tenant_id.clone(),
                kind: TIME_TRIGGER.into(),
                object_id: obj.id().to_string(),
                record_id: id.to_string(),
                rule_id: Some(r.id.clone()),
                action_id: Some(a.id.clone()),
                payload: json!({"action_id": a.id}).to_string(),
                state: mosaic_store::automation::PENDING.into(),
                due_at: due,
                attempts: 0,
                last_error: None,
                created_at: now,
                updated_at: now,
            }));
        }
        out
    }

    /// Runs the workflow rules of a create (`old` none) or update; applies
    /// their field updates to `new` and `p`; returns the effects to write.
    pub(crate) async fn run_workflows(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
        old: Option<&Values>,
        new: &mut Values,
        p: &mut Prepared,
    ) -> RecordResult<Vec<Effect>> {
        let creating = old.is_none();
        let rules: Vec<&WorkflowRule> = obj
            .def
            .workflow_rules
            .iter()
            .filter(|r| {
                r.is_active
                    && if creating {
                        r.trigger_type.on_create()
                    } else {
                        r.trigger_type.on_update()
                    }
            })
            .collect();
        let timed: Vec<&WorkflowRule> = obj
            .def
            .workflow_rules
            .iter()
            .filter(|r| r.is_active && r.timed().next().is_some())
            .collect();
        if rules.is_empty() && (creating || timed.is_empty()) {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let event = if creating { "created" } else { "updated" };
        let old_f = match old {
            Some(o) => Some(self.with_formulas(c, obj, o).await?),
            None => None,
        };
        let mut before = Vec::with_capacity(rules.len());
        for r in &rules {
            before.push(match &old_f {
                Some(o) => self.rule_holds(c, obj, r, o, None).await?,
                None => false,
            });
        }
        let mut fired = vec![false; rules.len()];
        let mut queued: HashSet<(String, String)> = HashSet::new();
        let mut effects = Vec::new();
        let mut updated: BTreeSet<String> = BTreeSet::new();
        let mut cur = self.with_formulas(c, obj, new).await?;
        // Each round judges every rule against the record as the round
        // found it, then applies the field updates of the rules that fired;
        // a rule fires at most once per save. Updates that make further
        // rules fire start another round, up to the trigger depth limit.
        for round in 0usize.. {
            let mut holds_now = vec![false; rules.len()];
            let mut writes: Vec<(String, Value)> = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                let holds = self.rule_holds(c, obj, r, &cur, old_f.as_ref()).await?;
                holds_now[i] = holds;
                let fires = !fired[i]
                    && holds
                    && (r.re_evaluation == ReEvaluation::EveryTime || !before[i]);
                if !fires {
                    continue;
                }
                if round > MAX_TRIGGER_DEPTH {
                    return Err(limit_error(format!(
                        "workflow rule {} would fire after field updates re-triggered rules {MAX_TRIGGER_DEPTH} times (trigger depth limit); check rules that update fields other rules' criteria read",
                        r.name
                    )));
                }
                fired[i] = true;
                for a in r.immediate() {
                    match a.config()? {
                        ActionConfig::FieldUpdate(fu) => {
                            let v = self
                                .field_update_value(c, obj, r, &fu, &cur, old_f.as_ref())
                                .await?;
                            writes.push((fu.field_api_name.clone(), v));
                        }
                        _ => {
                            if queued.insert((r.id.clone(), a.id.clone())) {
                                if let Some(e) =
                                    self.action_effect(c, obj, (id, &cur), r, a, event).await?
                                {
                                    effects.push(e);
                                }
                            }
                        }
                    }
                }
            }
            let mut changed = false;
            for (name, v) in writes {
                if new.get(&name) != Some(&v) {
                    changed = true;
                    updated.insert(name.clone());
                    new.insert(name, v);
                }
            }
            if started.elapsed() > SYNC_TIME_LIMIT {
                return Err(limit_error(format!(
                    "workflow rules took longer than {} s for this save",
                    SYNC_TIME_LIMIT.as_secs()
                )));
            }
            if effects.len() > MAX_QUEUED_ACTIONS {
                return Err(limit_error(format!(
                    "workflow rules queued more than {MAX_QUEUED_ACTIONS} actions for one save"
                )));
            }
            if !changed || fired.iter().all(|f| *f) {
                break;
            }
            before = holds_now;
            cur = self.with_formulas(c, obj, new).await?;
        }
        // Time-based actions: scheduled when a rule's criteria become true,
        // moved when the date they hang on changes, cancelled when the
        // criteria stop holding.
        for r in timed {
            let pos = rules.iter().position(|x| x.id == r.id);
            let fired_now = pos.is_some_and(|i| fired[i]);
            if fired_now {
                effects.extend(self.schedule(c, obj, id, r, &cur));
                continue;
            }
            if creating {
                continue;
            }
            let holds = self.rule_holds(c, obj, r, &cur, old_f.as_ref()).await?;
            if !holds {
                effects.push(Effect::Unschedule {
                    record_id: id.to_string(),
                    rule_id: Some(r.id.clone()),
                });
            } else if let Some(o) = &old_f {
                let moved = r.timed().any(|a| {
                    a.time_trigger
                        .as_ref()
                        .is_some_and(|t| field_value(o, &t.field) != field_value(&cur, &t.field))
                });
                if moved {
                    effects.extend(self.schedule(c, obj, id, r, &cur));
                }
            }
        }
        // The field updates join the write.
        for name in updated {
            let v = field_value(new, &name);
            if name == "Name" {
                p.name = Some(
                    v.as_text()
                        .map(str::to_string)
                        .filter(|s| !s.trim().is_empty()),
                );
                continue;
            }
            let Some(f) = obj.field(&name) else { continue };
            let Some(slot) = f.slot else { continue };
            let stored = self.stored_value(f, v.clone())?;
            if let (Some(target), Value::Text(rid)) = (&f.lookup_object_id, &v) {
                p.refs.retain(|r| r.field != f.api_name);
                p.refs.push(RefCheck {
                    field: f.api_name.clone(),
                    object_id: target.clone(),
                    id: rid.clone(),
                });
            }
            p.set.retain(|(s, _)| *s != slot);
            p.set.push((slot, stored));
        }
        Ok(effects)
    }

    /// Effects of deleting a record: rules triggered by deletion, cancelled
    /// time-based actions, history.
    pub(crate) async fn delete_effects(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
    ) -> MosaicResult<Vec<Effect>> {
        let mut effects = Vec::new();
        let rules: Vec<&WorkflowRule> = obj
            .def
            .workflow_rules
            .iter()
            .filter(|r| r.is_active && r.trigger_type == mosaic_meta::workflow::Trigger::Deleted)
            .collect();
        if obj
            .def
            .workflow_rules
            .iter()
            .any(|r| r.timed().next().is_some())
        {
            effects.push(Effect::Unschedule {
                record_id: id.to_string(),
                rule_id: None,
            });
        }
        if rules.is_empty() && !obj.def.enable_history {
            return Ok(effects);
        }
        let old = match self.load_values(c, obj, id).await {
            Ok(v) => v,
            Err(e) => {
                return Err(e
                    .0
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| MosaicError::internal("load")))
            }
        };
        if !rules.is_empty() {
            let old_f = self.with_formulas(c, obj, &old).await?;
            for r in rules {
                if self.rule_holds(c, obj, r, &old_f, None).await? {
                    for a in r.immediate() {
                        if let Some(e) = self
                            .action_effect(c, obj, (id, &old_f), r, a, "deleted")
                            .await?
                        {
                            effects.push(e);
                        }
                    }
                }
            }
            if effects.len() > MAX_QUEUED_ACTIONS {
                return Err(MosaicError::new(
                    ErrorCode::LIMIT_EXCEEDED,
                    format!(
                        "workflow rules queued more than {MAX_QUEUED_ACTIONS} actions for one save"
                    ),
                ));
            }
        }
        if obj.def.enable_history {
            effects.extend(history_effects(c, obj, id, Some(&old), None));
        }
        Ok(effects)
    }

    /// Creates the tenant's `Task` object (the target of task actions) if
    /// it does not exist yet.
    pub async fn ensure_task_object(&self, tenant: &str) -> MosaicResult<()> {
        if self.meta.object(tenant, TASK_OBJECT).await.is_ok() {
            return Ok(());
        }
        let input: mosaic_meta::validate::ObjectInput = serde_json::from_value(json!({
            "api_name": TASK_OBJECT,
            "label": "Task",
            "plural_label": "Tasks",
            "description": "Follow-up work, created by people or by workflow rules.",
            "name_field": {"label": "Task Number", "data_type": "auto_number", "auto_number_format": "T-{000000}"},
            "fields": [
                {"api_name": "Subject", "label": "Subject", "data_type": "text", "length": 255, "is_required": true},
                {"api_name": "Status", "label": "Status", "data_type": "picklist", "picklist_values": [
                    {"value": "Not Started", "is_default": true}, {"value": "In Progress"},
                    {"value": "Completed"}, {"value": "Waiting"}, {"value": "Deferred"}]},
                {"api_name": "Priority", "label": "Priority", "data_type": "picklist", "picklist_values": [
                    {"value": "High"}, {"value": "Normal", "is_default": true}, {"value": "Low"}]},
                {"api_name": "DueDate", "label": "Due Date", "data_type": "date"},
                {"api_name": "WhatId", "label": "Related To", "data_type": "text", "length": 36, "is_indexed": true},
                {"api_name": "Description", "label": "Description", "data_type": "long_text"}
            ]
        }))
        .map_err(|e| MosaicError::internal(format!("task object definition: {e}")))?;
        match self.meta.create_object(tenant, input).await {
            Ok(_) => Ok(()),
            // Created concurrently.
            Err(e) if e.code == ErrorCode::DUPLICATE_VALUE => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Api name of the object task actions create records of.
pub const TASK_OBJECT: &str = "Task";
