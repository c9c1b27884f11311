//! The access service: administration of users, roles, public groups,
//! permission sets and connected apps (every change audit-logged in its own
//! transaction), and the permission snapshot of a user, invalidated before
//! any change that can alter it returns.

use crate::permissions::{PermissionSnapshot, SnapshotCache, PROFILES, PROFILE_ADMIN};
use crate::service::{check_username, AuthService};
use crate::{password, token};
use chrono::Utc;
use mosaic_store::access_store::*;
use mosaic_store::{AccessStore, MetaStore, UserRow};
use mosaic_types::{new_id, ErrorCode, MosaicError, MosaicResult};
use regex::Regex;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use std::sync::{Arc, LazyLock};

pub const MAX_NAME_LEN: usize = 80;
pub const MAX_LABEL_LEN: usize = 80;
pub const MAX_DESCRIPTION_LEN: usize = 1000;
pub const MAX_EMAIL_LEN: usize = 254;
/// Most members one group lists.
pub const MAX_GROUP_MEMBERS: usize = 1000;
/// Most object and field permission rows in one permission set.
pub const MAX_PERMISSION_ROWS: usize = 5000;
/// Largest page of the audit log.
pub const MAX_AUDIT_PAGE: usize = 1000;
pub const DEFAULT_AUDIT_PAGE: usize = 100;

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9_]*$").expect("name regex"));

/// `null` → `Some(None)`, absent → `None` (with `#[serde(default)]`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn bad(field: &str, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

fn check_name(field: &str, n: &str) -> MosaicResult<()> {
    if n.len() > MAX_NAME_LEN || !NAME.is_match(n) {
        return Err(bad(
            field,
            format!("{field}: 1 to {MAX_NAME_LEN} letters, digits or underscores, starting with a letter"),
        ));
    }
    Ok(())
}

fn check_label(field: &str, l: &str) -> MosaicResult<()> {
    if l.trim().is_empty() || l.chars().count() > MAX_LABEL_LEN {
        return Err(bad(
            field,
            format!("{field}: 1 to {MAX_LABEL_LEN} characters"),
        ));
    }
    Ok(())
}

fn check_email(e: &str) -> MosaicResult<()> {
    let ok = e.len() <= MAX_EMAIL_LEN
        && e.split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !b.starts_with('.'))
        && !e.chars().any(char::is_whitespace);
    if !ok {
        return Err(MosaicError::field(
            ErrorCode::INVALID_EMAIL_ADDRESS,
            "email",
            "email: not a valid email address",
        ));
    }
    Ok(())
}

fn check_profile(p: &str) -> MosaicResult<()> {
    if !PROFILES.contains(&p) {
        return Err(bad(
            "profile",
            format!("profile must be one of {}", PROFILES.join(", ")),
        ));
    }
    Ok(())
}

fn check_id(field: &str, id: &str) -> MosaicResult<String> {
    mosaic_types::id::normalize_id(id).ok_or_else(|| {
        bad(
            field,
            format!(
                "{field}: '{}' is not an id",
                id.chars().take(80).collect::<String>()
            ),
        )
    })
}

/// `POST /services/admin/v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserInput {
    pub username: String,
    pub password: String,
    pub email: Option<String>,
    pub profile: Option<String>,
    pub role_id: Option<String>,
}

/// `PATCH /services/admin/v1/users/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatchInput {
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub role_id: Option<Option<String>>,
    pub profile: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub email: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoleInput {
    pub name: String,
    pub label: Option<String>,
    pub parent_role_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePatchInput {
    pub label: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub parent_role_id: Option<Option<String>>,
}

/// One group member: exactly one of the keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    pub user_id: Option<String>,
    pub role_id: Option<String>,
    pub role_and_subordinates_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroupInput {
    pub name: String,
    pub label: Option<String>,
    #[serde(default)]
    pub members: Vec<MemberInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPatchInput {
    pub label: Option<String>,
    pub members: Option<Vec<MemberInput>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectPermissionInput {
    pub object: String,
    #[serde(default)]
    pub create: bool,
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub edit: bool,
    #[serde(default)]
    pub delete: bool,
    #[serde(default)]
    pub view_all: bool,
    #[serde(default)]
    pub modify_all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPermissionInput {
    pub object: String,
    pub field: String,
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub edit: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPermissionSetInput {
    pub name: String,
    pub label: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub object_permissions: Vec<ObjectPermissionInput>,
    #[serde(default)]
    pub field_permissions: Vec<FieldPermissionInput>,
    /// System permission "Customize Application".
    #[serde(default)]
    pub customize_application: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSetPatchInput {
    pub label: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    pub object_permissions: Option<Vec<ObjectPermissionInput>>,
    pub field_permissions: Option<Vec<FieldPermissionInput>>,
    pub customize_application: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentInput {
    pub user_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnectedAppInput {
    pub name: String,
    pub run_as_user_id: String,
}

/// A connected app as created: the secret is shown this once.
#[derive(Debug, Clone)]
pub struct ConnectedAppCreated {
    pub id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Who performs an admin change.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant_id: String,
    pub user_id: String,
}

impl Actor {
    pub(crate) fn audit(
        &self,
        action: &str,
        target_type: &str,
        target_id: &str,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            tenant_id: self.tenant_id.clone(),
            actor_id: self.user_id.clone(),
            action: action.to_string(),
            target_type: target_type.to_string(),
            target_id: target_id.to_string(),
            detail: detail.to_string(),
            at: Utc::now(),
        }
    }
}

fn members(input: Vec<MemberInput>) -> MosaicResult<Vec<GroupMember>> {
    if input.len() > MAX_GROUP_MEMBERS {
        return Err(MosaicError::field(
            ErrorCode::LIMIT_EXCEEDED,
            "members",
            format!("a group lists at most {MAX_GROUP_MEMBERS} members"),
        ));
    }
    input
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let given: Vec<(MemberKind, &str, String)> = [
                (MemberKind::User, "user_id", m.user_id),
                (MemberKind::Role, "role_id", m.role_id),
                (
                    MemberKind::RoleAndSubordinates,
                    "role_and_subordinates_id",
                    m.role_and_subordinates_id,
                ),
            ]
            .into_iter()
            .filter_map(|(k, n, v)| v.map(|v| (k, n, v)))
            .collect();
            match given.as_slice() {
                [(kind, name, id)] => Ok(GroupMember {
                    kind: *kind,
                    id: check_id(&format!("members[{i}].{name}"), id)?,
                }),
                _ => Err(bad(
                    &format!("members[{i}]"),
                    format!("members[{i}]: give exactly one of user_id, role_id, role_and_subordinates_id"),
                )),
            }
        })
        .collect()
}

fn members_json(m: &[GroupMember]) -> serde_json::Value {
    json!(m
        .iter()
        .map(|m| match m.kind {
            MemberKind::User => json!({"user_id": m.id}),
            MemberKind::Role => json!({"role_id": m.id}),
            MemberKind::RoleAndSubordinates => json!({"role_and_subordinates_id": m.id}),
        })
        .collect::<Vec<_>>())
}

/// Renders group members as the API's JSON.
pub fn group_members_json(m: &[GroupMember]) -> serde_json::Value {
    members_json(m)
}

pub(crate) fn not_found(what: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: no such {what}"
    ))
}

/// Identity and permission administration for one process.
pub struct AccessService {
    store: Arc<dyn AccessStore>,
    meta: Arc<dyn MetaStore>,
    auth: Arc<AuthService>,
    tier: Arc<mosaic_cache::CacheTier>,
    cache: SnapshotCache,
    sharing: crate::sharing::SharingCache,
    /// The fleet-wide permission generations (the metadata database's
    /// settings), when installed: see [`AccessService::check_generation`].
    fleet: std::sync::OnceLock<Arc<dyn mosaic_store::SettingsStore>>,
    /// Per tenant: when this instance last read the fleet generation, and
    /// the value it read.
    seen: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String)>>,
}

/// How long an instance trusts the fleet generation it read for a tenant:
/// a revocation made through another instance is in force here at most
/// this long after it was acknowledged.
pub const GENERATION_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// Settings key of a tenant's fleet-wide permission generation.
fn generation_key(tenant_id: &str) -> String {
    format!("permission_generation:{tenant_id}")
}

impl AccessService {
    pub fn new(
        store: Arc<dyn AccessStore>,
        meta: Arc<dyn MetaStore>,
        auth: Arc<AuthService>,
    ) -> AccessService {
        Self::with_tier(store, meta, auth, mosaic_cache::CacheTier::embedded())
    }

    /// The service on `tier`: its permission-snapshot sizing, and the bus
    /// that carries permission and sharing changes to other instances.
    pub fn with_tier(
        store: Arc<dyn AccessStore>,
        meta: Arc<dyn MetaStore>,
        auth: Arc<AuthService>,
        tier: Arc<mosaic_cache::CacheTier>,
    ) -> AccessService {
        AccessService {
            store,
            meta,
            auth,
            cache: SnapshotCache::with_sizing(tier.config.permissions),
            sharing: crate::sharing::SharingCache::default(),
            tier,
            fleet: std::sync::OnceLock::new(),
            seen: std::sync::Mutex::default(),
        }
    }

    /// Keeps each tenant's permission generation in `settings` (the
    /// metadata database every instance shares), so that a change made
    /// through one instance is in force on every other one at the next
    /// request (after [`GENERATION_CHECK_EVERY`] at most), whether or not
    /// the invalidation message reaches them. Installed once.
    pub fn share_generations(&self, settings: Arc<dyn mosaic_store::SettingsStore>) -> bool {
        self.fleet.set(settings).is_ok()
    }

    fn seen(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (std::time::Instant, String)>>
    {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compares the tenant's fleet-wide permission generation with the one
    /// this instance last read (at most every [`GENERATION_CHECK_EVERY`]):
    /// when another instance changed permissions since, this instance's
    /// snapshots and sharing decisions of the tenant are dropped before the
    /// request is authorized. A failed read keeps what is cached (the
    /// database is then unavailable for the snapshots too).
    pub async fn check_generation(&self, tenant_id: &str) {
        let Some(settings) = self.fleet.get() else {
            return;
        };
        if self
            .seen()
            .get(tenant_id)
            .is_some_and(|(at, _)| at.elapsed() < GENERATION_CHECK_EVERY)
        {
            return;
        }
        let read_at = std::time::Instant::now();
        let current = match settings.setting(&generation_key(tenant_id)).await {
            Ok(row) => row.map(|r| r.value).unwrap_or_default(),
            Err(e) => {
                tracing::debug!(tenant = %tenant_id, error = %e.message, "permission generation not read");
                return;
            }
        };
        let changed = {
            let mut seen = self.seen();
            let before = seen.insert(tenant_id.to_string(), (read_at, current.clone()));
            before.is_some_and(|(_, g)| g != current)
        };
        if changed {
            metrics::counter!("permission_generation_changes_total").increment(1);
            self.cache.invalidate(tenant_id, None);
            self.sharing.changed(tenant_id);
        }
    }

    /// Writes a new fleet-wide generation of the tenant (any value never
    /// used before: instances compare for equality).
    async fn bump_fleet_generation(&self, tenant_id: &str) {
        let Some(settings) = self.fleet.get() else {
            return;
        };
        let value = new_id();
        let row = mosaic_store::SettingRow {
            key: generation_key(tenant_id),
            value: value.clone(),
            updated_at: Utc::now(),
        };
        match settings.put_setting(row).await {
            // This instance has already dropped its own snapshots.
            Ok(()) => {
                self.seen()
                    .insert(tenant_id.to_string(), (std::time::Instant::now(), value));
            }
            Err(e) => {
                metrics::counter!("permission_generation_write_failures_total").increment(1);
                tracing::error!(tenant = %tenant_id, error = %e.message, "permission change committed but its fleet-wide generation was not written: other instances rely on the invalidation message or the snapshot lifetime");
            }
        }
    }

    /// Permission snapshots held in process.
    pub fn snapshot_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Applies another instance's invalidation (permission or sharing
    /// generation bumps; everything after a lost subscription).
    pub fn apply(&self, event: &mosaic_cache::Invalidation) {
        use mosaic_cache::Invalidation as I;
        match event {
            I::Permissions { tenant } => {
                self.cache.invalidate(tenant, None);
                self.sharing.changed(tenant);
            }
            I::Sharing { tenant } => self.sharing.changed(tenant),
            I::All => {
                self.cache.clear();
                self.sharing.clear();
            }
            _ => {}
        }
    }

    /// Tells the other instances that the tenant's record-sharing decisions
    /// changed (this instance has bumped its own generation).
    pub fn announce_sharing_change(&self, tenant_id: &str) {
        self.publish(mosaic_cache::Invalidation::Sharing {
            tenant: tenant_id.to_string(),
        });
    }

    fn publish(&self, event: mosaic_cache::Invalidation) {
        if !self.tier.has_l2() {
            return;
        }
        let tier = self.tier.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { tier.publish(event).await });
        }
    }

    pub fn store(&self) -> &Arc<dyn AccessStore> {
        &self.store
    }

    pub fn auth(&self) -> &Arc<AuthService> {
        &self.auth
    }

    pub(crate) fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// The permission snapshot of a user: from memory when it is of the
    /// tenant's current generation, else rebuilt from the store.
    pub async fn snapshot(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> MosaicResult<Arc<PermissionSnapshot>> {
        if let Some(s) = self.cache.get(tenant_id, user_id) {
            metrics::counter!("cache_hits_total", "cache" => "permissions", "layer" => "l1")
                .increment(1);
            return Ok(s);
        }
        metrics::counter!("cache_misses_total", "cache" => "permissions", "layer" => "l1")
            .increment(1);
        // Read the generation before the data: a change committing meanwhile
        // bumps it, and this snapshot is never served.
        let generation = self.cache.generations.current(tenant_id);
        let built: MosaicResult<PermissionSnapshot> = async {
            Ok(match self.meta.user(tenant_id, user_id).await? {
                Some(u) if u.is_active && u.profile == PROFILE_ADMIN => {
                    PermissionSnapshot::system_administrator(tenant_id, user_id)
                }
                Some(u) if u.is_active => {
                    let g = self.store.user_grants(tenant_id, user_id).await?;
                    PermissionSnapshot::from_grants(tenant_id, user_id, &g.objects, &g.fields)
                        .with_customize_application(g.customize_application)
                }
                _ => PermissionSnapshot::inactive(tenant_id, user_id),
            })
        }
        .await;
        let snap = match built {
            Ok(s) => s,
            Err(e) => return self.cache.or_stale(tenant_id, user_id, e),
        };
        let snap = Arc::new(snap.with_generation(generation));
        self.cache.insert(snap.clone());
        Ok(snap)
    }

    /// The cached snapshot only (no store access): the hot path's cost.
    pub fn cached_snapshot(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Option<Arc<PermissionSnapshot>> {
        self.cache.get(tenant_id, user_id)
    }

    /// Invalidates every snapshot of the tenant (after a change commits).
    pub async fn permissions_changed(&self, tenant_id: &str, user_id: Option<&str>) {
        self.cache.invalidate(tenant_id, user_id);
        self.sharing.changed(tenant_id);
        self.bump_fleet_generation(tenant_id).await;
        self.publish(mosaic_cache::Invalidation::Permissions {
            tenant: tenant_id.to_string(),
        });
    }

    /// The user's sharing view (principals, owners held by the hierarchy).
    pub async fn user_sharing(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> MosaicResult<Arc<crate::sharing::UserSharing>> {
        self.sharing
            .user(
                self.store.as_ref(),
                &self.cache.generations,
                tenant_id,
                user_id,
            )
            .await
    }

    /// The tenant's users, roles and groups, indexed for sharing.
    pub async fn sharing_index(
        &self,
        tenant_id: &str,
    ) -> MosaicResult<Arc<crate::sharing::TenantIndex>> {
        self.sharing
            .index(self.store.as_ref(), &self.cache.generations, tenant_id)
            .await
    }

    /// Record decisions and their generation.
    pub fn sharing(&self) -> &crate::sharing::SharingCache {
        &self.sharing
    }

    // ---------- users ----------

    pub async fn create_user(&self, a: &Actor, input: NewUserInput) -> MosaicResult<UserRow> {
        check_username(&input.username)?;
        if let Some(e) = &input.email {
            check_email(e)?;
        }
        password::check_policy(&input.password, &input.username, input.email.as_deref())?;
        let profile = input
            .profile
            .unwrap_or_else(|| crate::permissions::PROFILE_STANDARD.to_string());
        check_profile(&profile)?;
        let role_id = input
            .role_id
            .as_deref()
            .map(|r| check_id("role_id", r))
            .transpose()?;
        let hash = password::hash_async(&input.password).await?;
        let user = UserRow {
            id: new_id(),
            tenant_id: a.tenant_id.clone(),
            username: input.username,
            email: input.email,
            password_hash: hash,
            is_active: true,
            profile,
            created_at: Utc::now(),
            role_id,
            must_change_password: false,
        };
        let audit = a.audit(
            "user.create",
            "user",
            &user.id,
            json!({"username": user.username, "profile": user.profile, "role_id": user.role_id, "email": user.email}),
        );
        self.store.create_user(user.clone(), audit).await?;
        Ok(user)
    }

    pub async fn update_user(
        &self,
        a: &Actor,
        id: &str,
        input: UserPatchInput,
    ) -> MosaicResult<UserRow> {
        if let Some(p) = &input.profile {
            check_profile(p)?;
        }
        if let Some(Some(e)) = &input.email {
            check_email(e)?;
        }
        let role_id = match input.role_id {
            Some(Some(r)) => Some(Some(check_id("role_id", &r)?)),
            other => other,
        };
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("user"))?;
        if input.active == Some(false) && id == a.user_id {
            return Err(bad(
                "active",
                "an administrator cannot deactivate themselves",
            ));
        }
        if input.profile.as_deref().is_some_and(|p| p != PROFILE_ADMIN) && id == a.user_id {
            return Err(bad(
                "profile",
                "an administrator cannot take their own administrator profile away",
            ));
        }
        let patch = UserPatch {
            email: input.email.clone(),
            is_active: input.active,
            profile: input.profile.clone(),
            role_id: role_id.clone(),
        };
        let audit = a.audit(
            "user.update",
            "user",
            &id,
            json!({"active": input.active, "profile": input.profile, "role_id": role_id, "email": input.email}),
        );
        let out = self
            .store
            .update_user(&a.tenant_id, &id, patch, audit)
            .await;
        // Whatever happened, nothing cached about this user may survive it.
        self.permissions_changed(&a.tenant_id, Some(&id)).await;
        let out = out?.ok_or_else(|| not_found("user"))?;
        self.auth.forget_sessions(&out.revoked_sessions).await;
        Ok(out.user)
    }

    pub async fn users(&self, tenant_id: &str) -> MosaicResult<Vec<UserRow>> {
        self.store.list_users(tenant_id).await
    }

    pub async fn user(&self, tenant_id: &str, id: &str) -> MosaicResult<UserRow> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("user"))?;
        self.meta
            .user(tenant_id, &id)
            .await?
            .ok_or_else(|| not_found("user"))
    }

    // ---------- roles ----------

    pub async fn create_role(&self, a: &Actor, input: NewRoleInput) -> MosaicResult<RoleRow> {
        check_name("name", &input.name)?;
        let label = input.label.unwrap_or_else(|| input.name.clone());
        check_label("label", &label)?;
        let parent_id = input
            .parent_role_id
            .as_deref()
            .map(|p| check_id("parent_role_id", p))
            .transpose()?;
        let id = new_id();
        let audit = a.audit(
            "role.create",
            "role",
            &id,
            json!({"name": input.name, "label": label, "parent_role_id": parent_id}),
        );
        self.store
            .create_role(
                RoleRow {
                    id,
                    tenant_id: a.tenant_id.clone(),
                    name: input.name,
                    label,
                    parent_id,
                    path: String::new(),
                    depth: 0,
                    created_at: Utc::now(),
                },
                audit,
            )
            .await
    }

    pub async fn update_role(
        &self,
        a: &Actor,
        id: &str,
        input: RolePatchInput,
    ) -> MosaicResult<RoleRow> {
        if let Some(l) = &input.label {
            check_label("label", l)?;
        }
        let parent = match input.parent_role_id {
            Some(Some(p)) => Some(Some(check_id("parent_role_id", &p)?)),
            other => other,
        };
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("role"))?;
        let audit = a.audit(
            if parent.is_some() {
                "role.move"
            } else {
                "role.update"
            },
            "role",
            &id,
            json!({"label": input.label, "parent_role_id": parent}),
        );
        let out = self
            .store
            .update_role(&a.tenant_id, &id, input.label, parent, audit)
            .await;
        self.permissions_changed(&a.tenant_id, None).await;
        out?.ok_or_else(|| not_found("role"))
    }

    pub async fn role(&self, tenant_id: &str, id: &str) -> MosaicResult<RoleRow> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("role"))?;
        self.store
            .role(tenant_id, &id)
            .await?
            .ok_or_else(|| not_found("role"))
    }

    pub async fn roles(&self, tenant_id: &str) -> MosaicResult<Vec<RoleRow>> {
        self.store.list_roles(tenant_id).await
    }

    pub async fn delete_role(&self, a: &Actor, id: &str) -> MosaicResult<()> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("role"))?;
        let audit = a.audit("role.delete", "role", &id, json!({}));
        let out = self.store.delete_role(&a.tenant_id, &id, audit).await;
        self.permissions_changed(&a.tenant_id, None).await;
        if out? {
            Ok(())
        } else {
            Err(not_found("role"))
        }
    }

    // ---------- groups ----------

    pub async fn create_group(&self, a: &Actor, input: NewGroupInput) -> MosaicResult<GroupRow> {
        check_name("name", &input.name)?;
        let label = input.label.unwrap_or_else(|| input.name.clone());
        check_label("label", &label)?;
        let members = members(input.members)?;
        let g = GroupRow {
            id: new_id(),
            tenant_id: a.tenant_id.clone(),
            name: input.name,
            label,
            members,
            created_at: Utc::now(),
        };
        let audit = a.audit(
            "group.create",
            "group",
            &g.id,
            json!({"name": g.name, "label": g.label, "members": members_json(&g.members)}),
        );
        self.store.create_group(g.clone(), audit).await?;
        self.permissions_changed(&a.tenant_id, None).await;
        Ok(g)
    }

    pub async fn update_group(
        &self,
        a: &Actor,
        id: &str,
        input: GroupPatchInput,
    ) -> MosaicResult<GroupRow> {
        if let Some(l) = &input.label {
            check_label("label", l)?;
        }
        let members = input.members.map(members).transpose()?;
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("group"))?;
        let audit = a.audit(
            "group.update",
            "group",
            &id,
            json!({"label": input.label, "members": members.as_deref().map(members_json)}),
        );
        let out = self
            .store
            .update_group(&a.tenant_id, &id, input.label, members, audit)
            .await;
        self.permissions_changed(&a.tenant_id, None).await;
        out?.ok_or_else(|| not_found("group"))
    }

    pub async fn group(&self, tenant_id: &str, id: &str) -> MosaicResult<GroupRow> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("group"))?;
        self.store
            .group(tenant_id, &id)
            .await?
            .ok_or_else(|| not_found("group"))
    }

    pub async fn groups(&self, tenant_id: &str) -> MosaicResult<Vec<GroupRow>> {
        self.store.list_groups(tenant_id).await
    }

    pub async fn delete_group(&self, a: &Actor, id: &str) -> MosaicResult<()> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("group"))?;
        let audit = a.audit("group.delete", "group", &id, json!({}));
        let out = self.store.delete_group(&a.tenant_id, &id, audit).await;
        self.permissions_changed(&a.tenant_id, None).await;
        if out? {
            Ok(())
        } else {
            Err(not_found("group"))
        }
    }

    // ---------- permission sets (rows resolved to ids by the runtime) ----------

    #[allow(clippy::too_many_arguments)]
    pub async fn create_permission_set(
        &self,
        a: &Actor,
        name: String,
        label: Option<String>,
        description: Option<String>,
        objects: Vec<ObjectPermissionRow>,
        fields: Vec<FieldPermissionRow>,
        customize_application: bool,
        detail: serde_json::Value,
    ) -> MosaicResult<PermissionSetRow> {
        check_name("name", &name)?;
        let label = label.unwrap_or_else(|| name.clone());
        check_label("label", &label)?;
        check_description(description.as_deref())?;
        check_rows(objects.len() + fields.len())?;
        let now = Utc::now();
        let set = PermissionSetRow {
            id: new_id(),
            tenant_id: a.tenant_id.clone(),
            name,
            label,
            description,
            object_permissions: objects,
            field_permissions: fields,
            customize_application,
            assignees: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let audit = a.audit("permission_set.create", "permission_set", &set.id, detail);
        self.store.create_permission_set(set.clone(), audit).await?;
        Ok(set)
    }

    pub async fn update_permission_set(
        &self,
        a: &Actor,
        id: &str,
        patch: PermissionSetPatch,
        detail: serde_json::Value,
    ) -> MosaicResult<PermissionSetRow> {
        if let Some(l) = &patch.label {
            check_label("label", l)?;
        }
        if let Some(d) = &patch.description {
            check_description(d.as_deref())?;
        }
        check_rows(
            patch.object_permissions.as_ref().map_or(0, Vec::len)
                + patch.field_permissions.as_ref().map_or(0, Vec::len),
        )?;
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("permission set"))?;
        let audit = a.audit("permission_set.update", "permission_set", &id, detail);
        let out = self
            .store
            .update_permission_set(&a.tenant_id, &id, patch, audit)
            .await;
        self.permissions_changed(&a.tenant_id, None).await;
        out?.ok_or_else(|| not_found("permission set"))
    }

    pub async fn permission_set(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> MosaicResult<PermissionSetRow> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("permission set"))?;
        self.store
            .permission_set(tenant_id, &id)
            .await?
            .ok_or_else(|| not_found("permission set"))
    }

    pub async fn permission_sets(&self, tenant_id: &str) -> MosaicResult<Vec<PermissionSetRow>> {
        self.store.list_permission_sets(tenant_id).await
    }

    pub async fn delete_permission_set(&self, a: &Actor, id: &str) -> MosaicResult<()> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("permission set"))?;
        let audit = a.audit("permission_set.delete", "permission_set", &id, json!({}));
        let out = self
            .store
            .delete_permission_set(&a.tenant_id, &id, audit)
            .await;
        self.permissions_changed(&a.tenant_id, None).await;
        if out? {
            Ok(())
        } else {
            Err(not_found("permission set"))
        }
    }

    pub async fn assign(
        &self,
        a: &Actor,
        set_id: &str,
        input: AssignmentInput,
    ) -> MosaicResult<()> {
        let user_id = check_id("user_id", &input.user_id)?;
        let set_id =
            mosaic_types::id::normalize_id(set_id).ok_or_else(|| not_found("permission set"))?;
        let audit = a.audit(
            "permission_set.assign",
            "permission_set",
            &set_id,
            json!({"user_id": user_id}),
        );
        let out = self
            .store
            .assign(&a.tenant_id, &set_id, &user_id, audit)
            .await;
        self.permissions_changed(&a.tenant_id, Some(&user_id)).await;
        if out? {
            Ok(())
        } else {
            Err(not_found("permission set"))
        }
    }

    pub async fn unassign(&self, a: &Actor, set_id: &str, user_id: &str) -> MosaicResult<()> {
        let set_id =
            mosaic_types::id::normalize_id(set_id).ok_or_else(|| not_found("permission set"))?;
        let user_id =
            mosaic_types::id::normalize_id(user_id).ok_or_else(|| not_found("assignment"))?;
        let audit = a.audit(
            "permission_set.unassign",
            "permission_set",
            &set_id,
            json!({"user_id": user_id}),
        );
        let out = self
            .store
            .unassign(&a.tenant_id, &set_id, &user_id, audit)
            .await;
        self.permissions_changed(&a.tenant_id, Some(&user_id)).await;
        if out? {
            Ok(())
        } else {
            Err(not_found("assignment"))
        }
    }

    // ---------- connected apps ----------

    pub async fn create_connected_app(
        &self,
        a: &Actor,
        input: NewConnectedAppInput,
    ) -> MosaicResult<ConnectedAppCreated> {
        check_name("name", &input.name)?;
        let run_as = check_id("run_as_user_id", &input.run_as_user_id)?;
        let client_id = token::mint_with(token::CLIENT_ID_PREFIX);
        let secret = token::mint_with(token::CLIENT_SECRET_PREFIX);
        let row = ConnectedAppRow {
            id: new_id(),
            tenant_id: a.tenant_id.clone(),
            name: input.name,
            client_id: client_id.clone(),
            secret_hash: token::hash(&secret),
            run_as_user_id: run_as,
            created_at: Utc::now(),
        };
        let audit = a.audit(
            "connected_app.create",
            "connected_app",
            &row.id,
            json!({"name": row.name, "client_id": row.client_id, "run_as_user_id": row.run_as_user_id}),
        );
        let id = row.id.clone();
        self.store.create_connected_app(row, audit).await?;
        Ok(ConnectedAppCreated {
            id,
            client_id,
            client_secret: secret,
        })
    }

    pub async fn connected_app(&self, tenant_id: &str, id: &str) -> MosaicResult<ConnectedAppRow> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("connected app"))?;
        self.store
            .connected_app(tenant_id, &id)
            .await?
            .ok_or_else(|| not_found("connected app"))
    }

    pub async fn connected_apps(&self, tenant_id: &str) -> MosaicResult<Vec<ConnectedAppRow>> {
        self.store.list_connected_apps(tenant_id).await
    }

    pub async fn delete_connected_app(&self, a: &Actor, id: &str) -> MosaicResult<()> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("connected app"))?;
        let audit = a.audit("connected_app.delete", "connected_app", &id, json!({}));
        if self
            .store
            .delete_connected_app(&a.tenant_id, &id, audit)
            .await?
        {
            Ok(())
        } else {
            Err(not_found("connected app"))
        }
    }

    // ---------- audit ----------

    pub async fn audit(
        &self,
        tenant_id: &str,
        mut filter: AuditFilter,
    ) -> MosaicResult<Vec<AuditRow>> {
        if filter.limit == 0 {
            filter.limit = DEFAULT_AUDIT_PAGE;
        }
        filter.limit = filter.limit.min(MAX_AUDIT_PAGE);
        self.store.audit(tenant_id, filter).await
    }
}

fn check_description(d: Option<&str>) -> MosaicResult<()> {
    if d.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN) {
        return Err(bad(
            "description",
            format!("description: at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    Ok(())
}

fn check_rows(n: usize) -> MosaicResult<()> {
    if n > MAX_PERMISSION_ROWS {
        return Err(MosaicError::field(
            ErrorCode::LIMIT_EXCEEDED,
            "object_permissions",
            format!(
                "a permission set holds at most {MAX_PERMISSION_ROWS} object and field permissions"
            ),
        ));
    }
    Ok(())
}
