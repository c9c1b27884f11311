//! Record-level access: organization-wide defaults (sharing models), the
//! role hierarchy, owner- and criteria-based sharing rules and manual
//! shares — decided for one record (get, update, delete, share, transfer)
//! and turned into a predicate inside the SQL of every query.
//!
//! Levels, from the object's sharing model up:
//! - administrators and modify-all: full access to every record;
//! - `public_read_write`: edit; `public_read`: read; `private`: nothing;
//!   view-all lifts to at least read;
//! - the owner and every user in a role above the owner's: full;
//! - owner-based rules reaching the user: read or edit on the records of
//!   the rule's owners; criteria-based rules and manual shares: read or
//!   edit through the record's shares (`record_shares`);
//! - `controlled_by_parent`: the master record's level, where edit on the
//!   master is full access to its details.
//!
//! Delete, ownership transfer and managing shares need full access; edit
//! needs edit; read needs read. A record the user may not read does not
//! exist for them (NOT_FOUND); one they may read but not change is
//! INSUFFICIENT_ACCESS.
//!
//! The single-record decision and the query predicate are computed from the
//! same sets (the user's principals, the owners they hold, the rules'
//! owners), and decisions are cached per (user, record) against the
//! tenant's sharing generation (see `mosaic_access::sharing`).

use crate::platform::Platform;
use crate::records::Caller;
use mosaic_access::sharing::{RecordLevel, UserSharing};
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::sharing::{SharingRule, SharingRuleInput, SharingRuleType};
use mosaic_meta::SharingModel;
use mosaic_store::query_store::{Filter, QueryPlan, QueryRows, Restrict};
use mosaic_store::sharing::{Principal, RowAccess, ShareAccess, ShareCause, ShareRow, Visibility};
use mosaic_store::RecordRow;
use mosaic_types::{new_id, DataType, ErrorCode, FlexSlot, MosaicError, MosaicResult, Value};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Deepest chain of `controlled_by_parent` objects followed.
const MAX_PARENT_DEPTH: usize = 5;
/// Records per batch when a rule's shares are recalculated.
const RECALC_BATCH: usize = 500;

pub(crate) fn insufficient(what: &str) -> MosaicError {
    MosaicError::new(
        ErrorCode::INSUFFICIENT_ACCESS,
        format!("insufficient access rights on the record: you may not {what} it"),
    )
}

pub(crate) fn record_not_found(id: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: no record with id '{}'",
        id.chars().take(80).collect::<String>()
    ))
}

/// The master-detail field a `controlled_by_parent` object follows.
pub fn master_field(obj: &ObjectMeta) -> Option<(&mosaic_meta::FieldDef, FlexSlot)> {
    obj.def
        .fields
        .iter()
        .find(|f| f.data_type == DataType::MasterDetail)
        .and_then(|f| f.slot.map(|s| (f, s)))
}

/// The level granted by sharing-independent grounds, if that settles it.
pub(crate) fn settled(c: &Caller, obj: &ObjectMeta) -> Option<RecordLevel> {
    let flags = c.perms.object(obj.id());
    if c.perms.is_admin() || flags.modify_all {
        return Some(RecordLevel::Full);
    }
    None
}

fn base_level(c: &Caller, obj: &ObjectMeta) -> RecordLevel {
    let mut l = match obj.def.sharing_model {
        SharingModel::PublicReadWrite => RecordLevel::Edit,
        SharingModel::PublicRead => RecordLevel::Read,
        SharingModel::Private | SharingModel::ControlledByParent => RecordLevel::None,
    };
    if c.perms.object(obj.id()).view_all {
        l = l.max(RecordLevel::Read);
    }
    l
}

fn level_of(a: ShareAccess) -> RecordLevel {
    match a {
        ShareAccess::Read => RecordLevel::Read,
        ShareAccess::ReadWrite => RecordLevel::Edit,
    }
}

/// Owners whose records owner-based rules give this user, by level.
struct RuleOwners {
    read: HashSet<String>,
    edit: HashSet<String>,
}

impl Platform {
    /// The caller's sharing view.
    pub(crate) async fn user_sharing(&self, c: &Caller) -> MosaicResult<Arc<UserSharing>> {
        self.access.user_sharing(&c.tenant_id, &c.user_id).await
    }

    async fn rule_owners(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        us: &UserSharing,
    ) -> MosaicResult<RuleOwners> {
        let mut out = RuleOwners {
            read: HashSet::new(),
            edit: HashSet::new(),
        };
        let rules: Vec<&SharingRule> = obj
            .def
            .sharing_rules
            .iter()
            .filter(|r| r.rule_type == SharingRuleType::OwnerBased && us.reaches(&r.share_to))
            .collect();
        if rules.is_empty() {
            return Ok(out);
        }
        let idx = self.access.sharing_index(&c.tenant_id).await?;
        for r in rules {
            let Some(from) = &r.share_from else { continue };
            let users = idx.users_of(from);
            match r.access_level {
                ShareAccess::Read => out.read.extend(users),
                ShareAccess::ReadWrite => out.edit.extend(users),
            }
        }
        Ok(out)
    }

    /// The caller's level on a stored record of `obj` (cached per user and
    /// record). `generation` is the tenant's sharing generation read before
    /// `row` was loaded.
    pub async fn record_level(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        row: &RecordRow,
        generation: u64,
    ) -> MosaicResult<RecordLevel> {
        if let Some(l) = settled(c, obj) {
            return Ok(l);
        }
        let cache = self.access.sharing();
        if let Some(l) = cache.decision(&c.tenant_id, &c.user_id, &row.id) {
            return Ok(l);
        }
        let l = self.level_uncached(c, obj, row, 0).await?;
        cache.remember(&c.tenant_id, &c.user_id, &row.id, l, generation);
        Ok(l)
    }

    /// The tenant's sharing generation (read before loading what a decision
    /// is made from).
    pub fn sharing_generation(&self, tenant_id: &str) -> u64 {
        self.access.sharing().generations.current(tenant_id)
    }

    /// Drops every cached record decision of the tenant (after a change
    /// that may alter one has committed).
    pub fn sharing_changed(&self, tenant_id: &str) {
        self.access.sharing().changed(tenant_id);
        self.access.announce_sharing_change(tenant_id);
    }

    fn level_uncached<'a>(
        &'a self,
        c: &'a Caller,
        obj: &'a ObjectMeta,
        row: &'a RecordRow,
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = MosaicResult<RecordLevel>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(l) = settled(c, obj) {
                return Ok(l);
            }
            let base = base_level(c, obj);
            if obj.def.sharing_model == SharingModel::ControlledByParent {
                let Some((f, slot)) = master_field(obj) else {
                    return Ok(base);
                };
                let parent_id = match row.value(slot) {
                    Some(Value::Text(s)) => s.clone(),
                    _ => return Ok(base),
                };
                if depth >= MAX_PARENT_DEPTH {
                    return Ok(base);
                }
                let Some(target) = f.lookup_object_id.as_deref() else {
                    return Ok(base);
                };
                let parent_obj = self.meta.object_by_id(&c.tenant_id, target).await?;
                let slots: Vec<FlexSlot> = master_field(&parent_obj)
                    .map(|(_, s)| vec![s])
                    .unwrap_or_default();
                let Some(prow) = self
                    .records
                    .get(&c.tenant_id, parent_obj.id(), &parent_id, &slots)
                    .await?
                    .filter(|r| !r.is_deleted)
                else {
                    return Ok(base);
                };
                let pl = self
                    .level_uncached(c, &parent_obj, &prow, depth + 1)
                    .await?;
                let inherited = match pl {
                    RecordLevel::Edit | RecordLevel::Full => RecordLevel::Full,
                    l => l,
                };
                return Ok(base.max(inherited));
            }
            let us = self.user_sharing(c).await?;
            if us.holds(&row.owner_id) {
                return Ok(RecordLevel::Full);
            }
            let mut level = base;
            let ro = self.rule_owners(c, obj, &us).await?;
            if ro.edit.contains(&row.owner_id) {
                level = level.max(RecordLevel::Edit);
            } else if ro.read.contains(&row.owner_id) {
                level = level.max(RecordLevel::Read);
            }
            if level < RecordLevel::Edit {
                for s in self.shares.shares_of(&c.tenant_id, &row.id).await? {
                    if us.reaches(&s.principal) {
                        level = level.max(level_of(s.access));
                    }
                }
            }
            Ok(level)
        })
    }

    /// Loads a live record for an operation needing `need`, deciding the
    /// caller's access: NOT_FOUND when they may not read it, else
    /// INSUFFICIENT_ACCESS when `need` is more than they have.
    pub(crate) async fn require_record(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
        need: RecordLevel,
        what: &str,
    ) -> MosaicResult<()> {
        if settled(c, obj).is_some() {
            return Ok(());
        }
        if need <= RecordLevel::Edit
            && obj.def.sharing_model == SharingModel::PublicReadWrite
            && base_level(c, obj) >= need
        {
            // Existence is checked by the write itself.
            return Ok(());
        }
        let g = self.sharing_generation(&c.tenant_id);
        let slots: Vec<FlexSlot> = master_field(obj).map(|(_, s)| vec![s]).unwrap_or_default();
        let Some(row) = self
            .records
            .get(&c.tenant_id, obj.id(), id, &slots)
            .await?
            .filter(|r| !r.is_deleted)
        else {
            return Err(record_not_found(id));
        };
        let l = self.record_level(c, obj, &row, g).await?;
        if l == RecordLevel::None {
            return Err(record_not_found(id));
        }
        if l < need {
            return Err(insufficient(what));
        }
        Ok(())
    }

    // ------------------------------------------------------------ queries

    fn row_access<'a>(
        &'a self,
        c: &'a Caller,
        obj: &'a ObjectMeta,
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = MosaicResult<Option<RowAccess>>> + Send + 'a>> {
        Box::pin(async move {
            if settled(c, obj).is_some() || base_level(c, obj) >= RecordLevel::Read {
                return Ok(None);
            }
            if obj.def.sharing_model == SharingModel::ControlledByParent {
                let Some((f, via)) = master_field(obj) else {
                    return Ok(None);
                };
                let Some(target) = f.lookup_object_id.as_deref() else {
                    return Ok(None);
                };
                if depth >= MAX_PARENT_DEPTH {
                    return Ok(Some(RowAccess::Nothing));
                }
                let parent = self.meta.object_by_id(&c.tenant_id, target).await?;
                return Ok(self.row_access(c, &parent, depth + 1).await?.map(|p| {
                    RowAccess::Parent {
                        via,
                        parent_object_id: parent.id().to_string(),
                        parent: Box::new(p),
                    }
                }));
            }
            let us = self.user_sharing(c).await?;
            let ro = self.rule_owners(c, obj, &us).await?;
            let owners: Arc<Vec<String>> = if ro.read.is_empty() && ro.edit.is_empty() {
                us.owners.clone()
            } else {
                let mut all: BTreeSet<String> = us.owners.iter().cloned().collect();
                all.extend(ro.read);
                all.extend(ro.edit);
                Arc::new(all.into_iter().collect())
            };
            Ok(Some(RowAccess::Shared {
                owners,
                principals: us.principals.clone(),
            }))
        })
    }

    /// The sharing predicates of the caller for these objects (`None`:
    /// nothing restricted).
    pub(crate) async fn visibility(
        &self,
        c: &Caller,
        object_ids: impl IntoIterator<Item = String>,
    ) -> MosaicResult<Option<Arc<Visibility>>> {
        if c.perms.is_admin() {
            return Ok(None);
        }
        let mut v = Visibility::default();
        for id in object_ids.into_iter().collect::<BTreeSet<_>>() {
            let obj = self.meta.object_by_id(&c.tenant_id, &id).await?;
            if let Some(a) = self.row_access(c, &obj, 0).await? {
                v.objects.insert(id, a);
            }
        }
        Ok((!v.is_unrestricted()).then(|| Arc::new(v)))
    }

    /// Runs a plan for a caller, with their sharing predicates on every
    /// object it reads. Every query of the Data API goes through here.
    pub(crate) async fn run_plan(
        &self,
        c: &Caller,
        plan: &QueryPlan,
        restrict: Restrict,
        keep: usize,
        max_rows: usize,
    ) -> MosaicResult<QueryRows> {
        let mut plan = plan.clone();
        plan.visibility = self.visibility(c, plan_objects(&plan)).await?;
        self.queries
            .store()
            .query(&c.tenant_id, Arc::new(plan), restrict, keep, max_rows)
            .await
    }

    // ------------------------------------------------- criteria-based rules

    /// The shares the object's criteria-based rules give a record with
    /// these values.
    pub(crate) fn criteria_shares(
        &self,
        obj: &ObjectMeta,
        id: &str,
        values: &crate::formula_eval::Values,
    ) -> Vec<ShareRow> {
        let now = chrono::Utc::now();
        obj.def
            .sharing_rules
            .iter()
            .filter(|r| r.rule_type == SharingRuleType::CriteriaBased)
            .filter(|r| {
                r.criteria
                    .as_ref()
                    .is_some_and(|cr| crate::workflow::criteria_hold(obj, cr, values, None))
            })
            .map(|r| ShareRow {
                id: new_id(),
                object_id: obj.id().to_string(),
                record_id: id.to_string(),
                principal: r.share_to.clone(),
                access: r.access_level,
                cause: ShareCause::Rule(r.id.clone()),
                created_by: "system".into(),
                created_at: now,
            })
            .collect()
    }

    /// Rewrites the shares of criteria-based rules `rules` of `obj` over
    /// all its records (a rule created, changed or deleted). Each batch
    /// holds the locks of its records, so a concurrent save of one of them
    /// lands entirely before or after the batch.
    async fn recalculate(
        &self,
        tenant: &str,
        obj: &ObjectMeta,
        rule_ids: Vec<String>,
    ) -> MosaicResult<usize> {
        let slots = obj.slots();
        let mut after: Option<String> = None;
        let mut n = 0;
        loop {
            let batch = self
                .shares
                .scan(tenant, obj.id(), after.as_deref(), RECALC_BATCH, &slots)
                .await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id.clone());
            let ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
            let _locks = self
                .lock_saves(tenant, ids.iter().map(String::as_str))
                .await?;
            // Re-read under the locks: the values a save may just have changed.
            let rows = self
                .records
                .get_many(tenant, obj.id(), &ids, &slots)
                .await?;
            let mut shares = Vec::new();
            for r in &rows {
                let vals = crate::formula_eval::row_values(self, obj, r);
                shares.extend(
                    self.criteria_shares(obj, &r.id, &vals).into_iter().filter(
                        |s| matches!(&s.cause, ShareCause::Rule(id) if rule_ids.contains(id)),
                    ),
                );
            }
            n += shares.len();
            self.shares
                .replace_rule_shares(tenant, &rule_ids, &ids, shares)
                .await?;
            if batch.len() < RECALC_BATCH {
                break;
            }
        }
        Ok(n)
    }

    /// Checks that a principal exists in the caller's tenant.
    async fn check_principal(&self, c: &Caller, p: &Principal, path: &str) -> MosaicResult<()> {
        let t = &c.tenant_id;
        let found = match p {
            Principal::User(id) => self
                .meta_store
                .user(t, id)
                .await?
                .is_some_and(|u| u.is_active),
            Principal::Role(id) | Principal::RoleAndSubordinates(id) => {
                self.access.store().role(t, id).await?.is_some()
            }
            Principal::Group(id) => self.access.store().group(t, id).await?.is_some(),
        };
        if found {
            Ok(())
        } else {
            let what = match p {
                Principal::User(_) => "active user",
                Principal::Group(_) => "group",
                _ => "role",
            };
            Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                format!("{path}.{}", p.id_field()),
                format!(
                    "no {what} with id '{}'",
                    p.id().chars().take(80).collect::<String>()
                ),
            ))
        }
    }

    async fn check_rule_principals(&self, c: &Caller, r: &SharingRule) -> MosaicResult<()> {
        self.check_principal(c, &r.share_to, "share_to").await?;
        if let Some(f) = &r.share_from {
            self.check_principal(c, f, "share_from")
                .await
                .map_err(|mut e| {
                    e.fields = vec![match f {
                        Principal::RoleAndSubordinates(_) => {
                            "share_from_role_and_subordinates_id".to_string()
                        }
                        _ => "share_from_role_id".to_string(),
                    }];
                    e
                })?;
        }
        Ok(())
    }

    /// Creates a sharing rule (administrators), then materializes its
    /// shares when it is criteria-based.
    pub async fn add_sharing_rule(
        &self,
        c: &Caller,
        input: SharingRuleInput,
    ) -> MosaicResult<Json> {
        let Some(object) = input.object.clone() else {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "object",
                "object is required (the api name of the object whose records are shared)",
            ));
        };
        // Check principals before saving: build the rule as it would be.
        let cur = self.meta.object(&c.tenant_id, &object).await?;
        let mut probe = mosaic_meta::sharing::new_sharing_rule(&input)?;
        mosaic_meta::sharing::apply_sharing_rule(&cur.def, &mut probe, input.clone())?;
        self.check_rule_principals(c, &probe).await?;
        let (obj, rule) = self
            .meta
            .add_sharing_rule(&c.tenant_id, &object, input)
            .await?;
        if rule.rule_type == SharingRuleType::CriteriaBased {
            self.recalculate(&c.tenant_id, &obj, vec![rule.id.clone()])
                .await?;
        }
        self.sharing_changed(&c.tenant_id);
        Ok(mosaic_meta::sharing::sharing_rule_json(
            obj.api_name(),
            &rule,
        ))
    }

    pub async fn update_sharing_rule(
        &self,
        c: &Caller,
        id: &str,
        input: SharingRuleInput,
    ) -> MosaicResult<Json> {
        let (cur, before) = self.meta.sharing_rule(&c.tenant_id, id).await?;
        let mut probe = before.clone();
        mosaic_meta::sharing::apply_sharing_rule(&cur.def, &mut probe, input.clone())?;
        self.check_rule_principals(c, &probe).await?;
        let (obj, before, after) = self
            .meta
            .update_sharing_rule(&c.tenant_id, id, input)
            .await?;
        if after.rule_type == SharingRuleType::CriteriaBased {
            self.recalculate(&c.tenant_id, &obj, vec![after.id.clone()])
                .await?;
        } else if before.rule_type == SharingRuleType::CriteriaBased {
            self.shares
                .drop_rule_shares(&c.tenant_id, &after.id)
                .await?;
        }
        self.sharing_changed(&c.tenant_id);
        Ok(mosaic_meta::sharing::sharing_rule_json(
            obj.api_name(),
            &after,
        ))
    }

    pub async fn delete_sharing_rule(&self, c: &Caller, id: &str) -> MosaicResult<()> {
        let (_, rule) = self.meta.delete_sharing_rule(&c.tenant_id, id).await?;
        self.shares.drop_rule_shares(&c.tenant_id, &rule.id).await?;
        self.sharing_changed(&c.tenant_id);
        Ok(())
    }

    pub async fn sharing_rule_json(&self, c: &Caller, id: &str) -> MosaicResult<Json> {
        let (obj, r) = self.meta.sharing_rule(&c.tenant_id, id).await?;
        Ok(mosaic_meta::sharing::sharing_rule_json(obj.api_name(), &r))
    }

    pub async fn sharing_rules_json(&self, c: &Caller) -> MosaicResult<Vec<Json>> {
        Ok(self
            .meta
            .sharing_rules(&c.tenant_id)
            .await?
            .iter()
            .map(|(o, r)| mosaic_meta::sharing::sharing_rule_json(o.api_name(), r))
            .collect())
    }

    // ------------------------------------------------------- manual shares

    async fn shareable(&self, c: &Caller, object: &str, id: &str) -> MosaicResult<Arc<ObjectMeta>> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, crate::access::ObjectOp::Read)?;
        let id = crate::records::parse_record_id(id)?;
        // Existence first: administrators skip the record decision.
        if self
            .records
            .get(&c.tenant_id, obj.id(), &id, &[])
            .await?
            .is_none_or(|r| r.is_deleted)
        {
            return Err(record_not_found(&id));
        }
        self.require_record(c, &obj, &id, RecordLevel::Read, "share")
            .await?;
        if obj.def.sharing_model == SharingModel::ControlledByParent {
            return Err(MosaicError::new(
                ErrorCode::INVALID_INPUT,
                format!(
                    "records of {} are shared through their master record; share that one instead",
                    obj.api_name()
                ),
            ));
        }
        Ok(obj)
    }

    /// Grants a manual share: `{"user_id"|"role_id"|"role_and_subordinates_id"|"group_id", "access_level"}`.
    pub async fn grant_share(
        &self,
        c: &Caller,
        object: &str,
        id: &str,
        body: &Map<String, Json>,
    ) -> MosaicResult<String> {
        let obj = self.shareable(c, object, id).await?;
        let id = crate::records::parse_record_id(id)?;
        self.require_record(c, &obj, &id, RecordLevel::Full, "share")
            .await?;
        let mut who = body.clone();
        let bad_level = |msg: &str| {
            MosaicError::field(ErrorCode::INVALID_INPUT, "access_level", msg.to_string())
        };
        let level = match who.remove("access_level") {
            None => return Err(bad_level("access_level is required (read or read_write)")),
            Some(v) => v
                .as_str()
                .and_then(ShareAccess::parse)
                .ok_or_else(|| bad_level("access_level is read or read_write"))?,
        };
        let principal = mosaic_meta::sharing::parse_principal("share", &Json::Object(who), true)
            .map_err(|mut e| {
                if let Some(f) = e.fields.first_mut() {
                    *f = f.trim_start_matches("share.").to_string();
                }
                e
            })?;
        self.check_principal(c, &principal, "share")
            .await
            .map_err(|mut e| {
                e.fields = vec![principal.id_field().to_string()];
                e
            })?;
        let share_id = self
            .shares
            .grant_share(
                &c.tenant_id,
                ShareRow {
                    id: new_id(),
                    object_id: obj.id().to_string(),
                    record_id: id,
                    principal,
                    access: level,
                    cause: ShareCause::Manual,
                    created_by: c.user_id.clone(),
                    created_at: chrono::Utc::now(),
                },
            )
            .await?;
        self.sharing_changed(&c.tenant_id);
        Ok(share_id)
    }

    /// Every share of a record (manual and rule-made).
    pub async fn list_shares(&self, c: &Caller, object: &str, id: &str) -> MosaicResult<Vec<Json>> {
        let obj = self.shareable(c, object, id).await?;
        let id = crate::records::parse_record_id(id)?;
        self.require_record(c, &obj, &id, RecordLevel::Full, "see the shares of")
            .await?;
        Ok(self
            .shares
            .shares_of(&c.tenant_id, &id)
            .await?
            .into_iter()
            .map(|s| share_json(&s))
            .collect())
    }

    pub async fn revoke_share(
        &self,
        c: &Caller,
        object: &str,
        id: &str,
        share_id: &str,
    ) -> MosaicResult<()> {
        let obj = self.shareable(c, object, id).await?;
        let id = crate::records::parse_record_id(id)?;
        self.require_record(c, &obj, &id, RecordLevel::Full, "share")
            .await?;
        let shares = self.shares.shares_of(&c.tenant_id, &id).await?;
        match shares.iter().find(|s| s.id == share_id) {
            None => Err(MosaicError::not_found(format!(
                "The requested resource does not exist: no share '{}' on this record",
                share_id.chars().take(80).collect::<String>()
            ))),
            Some(s) if s.cause != ShareCause::Manual => Err(MosaicError::new(
                ErrorCode::INVALID_INPUT,
                "this share comes from a sharing rule; change or delete the rule instead",
            )),
            Some(_) => {
                self.shares
                    .revoke_share(&c.tenant_id, &id, share_id)
                    .await?;
                self.sharing_changed(&c.tenant_id);
                Ok(())
            }
        }
    }
}

fn share_json(s: &ShareRow) -> Json {
    let mut m = match s.principal.to_json() {
        Json::Object(m) => m,
        _ => Map::new(),
    };
    m.insert("id".into(), json!(s.id));
    m.insert("access_level".into(), json!(s.access.as_str()));
    m.insert(
        "row_cause".into(),
        match &s.cause {
            ShareCause::Manual => json!("manual"),
            ShareCause::Rule(_) => json!("rule"),
        },
    );
    if let ShareCause::Rule(r) = &s.cause {
        m.insert("rule_id".into(), json!(r));
    }
    m.insert("created_by".into(), json!(s.created_by));
    m.insert("created_at".into(), json!(s.created_at));
    Json::Object(m)
}

/// Every object a plan reads rows of: the queried one, joined parents and
/// the objects of semi-join subqueries.
pub(crate) fn plan_objects(plan: &QueryPlan) -> Vec<String> {
    fn filter_objects(f: &Filter, out: &mut Vec<String>) {
        match f {
            Filter::And(v) | Filter::Or(v) => v.iter().for_each(|x| filter_objects(x, out)),
            Filter::Not(x) => filter_objects(x, out),
            Filter::SemiJoin { sub, .. } => {
                out.push(sub.object_id.clone());
                out.extend(sub.joins.iter().map(|j| j.object_id.clone()));
                if let Some(f) = &sub.filter {
                    filter_objects(f, out);
                }
            }
            _ => {}
        }
    }
    let mut out = vec![plan.object_id.clone()];
    out.extend(plan.joins.iter().map(|j| j.object_id.clone()));
    if let Some(f) = &plan.filter {
        filter_objects(f, &mut out);
    }
    if let Some(f) = &plan.having {
        filter_objects(f, &mut out);
    }
    let set: BTreeMap<String, ()> = out.into_iter().map(|o| (o, ())).collect();
    set.into_keys().collect()
}
