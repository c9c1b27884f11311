//! The access store: roles, public groups, permission sets and their
//! assignments, connected apps, refresh tokens, login-failure counters and
//! the admin audit log — everything identity and permissions keep beside
//! users and sessions in the metadata database.
//!
//! Every mutation takes the [`AuditEntry`] describing it and writes it in the
//! same transaction: an admin change and its audit row commit together or not
//! at all.

use crate::meta_store::UserRow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::MosaicResult;

/// Deepest role in a hierarchy (the root has depth 1).
pub const MAX_ROLE_DEPTH: i64 = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct RoleRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub label: String,
    pub parent_id: Option<String>,
    /// `/root-id/…/own-id/`: "A is above B" is "B's path starts with A's".
    pub path: String,
    /// 1 for a root role.
    pub depth: i64,
    pub created_at: DateTime<Utc>,
}

/// What a group member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    User,
    Role,
    RoleAndSubordinates,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "user",
            MemberKind::Role => "role",
            MemberKind::RoleAndSubordinates => "role_and_subordinates",
        }
    }

    pub fn parse(s: &str) -> Option<MemberKind> {
        match s {
            "user" => Some(MemberKind::User),
            "role" => Some(MemberKind::Role),
            "role_and_subordinates" => Some(MemberKind::RoleAndSubordinates),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupMember {
    pub kind: MemberKind,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub label: String,
    pub members: Vec<GroupMember>,
    pub created_at: DateTime<Utc>,
}

/// Object permissions of one permission set on one object (by object id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectFlags {
    pub create: bool,
    pub read: bool,
    pub edit: bool,
    pub delete: bool,
    pub view_all: bool,
    pub modify_all: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPermissionRow {
    pub object_id: String,
    pub flags: ObjectFlags,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldPermissionRow {
    pub object_id: String,
    pub field_id: String,
    pub read: bool,
    pub edit: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PermissionSetRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub label: String,
    pub description: Option<String>,
    pub object_permissions: Vec<ObjectPermissionRow>,
    pub field_permissions: Vec<FieldPermissionRow>,
    /// System permission "Customize Application": build the application
    /// (objects, fields, rules, layouts, list views, the AI builders).
    pub customize_application: bool,
    /// Users assigned (filled by reads).
    pub assignees: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectedAppRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Public identifier, unique across tenants.
    pub client_id: String,
    /// SHA-256 (hex) of the client secret; the secret itself is never stored.
    pub secret_hash: String,
    pub run_as_user_id: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefreshTokenRow {
    /// SHA-256 (hex) of the refresh token.
    pub token_hash: String,
    pub tenant_id: String,
    pub user_id: String,
    pub issued_at: DateTime<Utc>,
    pub revoked: bool,
    /// After this the token is refused (and purged).
    pub expires_at: DateTime<Utc>,
    /// The token a chain of rotations started from: reusing a rotated
    /// (revoked) token revokes every token of its family.
    pub family_id: String,
}

/// What presenting a refresh token did ([`AccessStore::rotate_refresh_token`]).
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshRotation {
    /// The token was live: it is revoked and its successor stored.
    Rotated { tenant_id: String, user_id: String },
    /// The token had already been used or revoked: its whole family is
    /// now revoked.
    Reused { tenant_id: String, user_id: String },
    /// Unknown or expired.
    Invalid,
}

/// Rows removed by [`AccessStore::purge_expired`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgedCredentials {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub login_failures: u64,
}

/// One admin change: who did what to which target.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub tenant_id: String,
    pub actor_id: String,
    /// e.g. `user.create`, `permission_set.assign`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// JSON text.
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// A stored audit entry with its sequence number (newest = largest).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub entry: AuditEntry,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Only entries with a smaller sequence number (paging).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// Changes to a user; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub email: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub profile: Option<String>,
    pub role_id: Option<Option<String>>,
}

/// The result of a user update.
#[derive(Debug, Clone, PartialEq)]
pub struct UserUpdated {
    pub user: UserRow,
    /// Hashes of the access tokens revoked by this change (deactivation).
    pub revoked_sessions: Vec<String>,
}

/// Changes to a permission set; `None` leaves a part as it is, `Some`
/// replaces it whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PermissionSetPatch {
    pub label: Option<String>,
    pub description: Option<Option<String>>,
    pub object_permissions: Option<Vec<ObjectPermissionRow>>,
    pub field_permissions: Option<Vec<FieldPermissionRow>>,
    pub customize_application: Option<bool>,
}

/// The effective grants of a user: every object and field permission row of
/// every permission set assigned to them (the caller takes the union).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserGrants {
    pub objects: Vec<ObjectPermissionRow>,
    pub fields: Vec<FieldPermissionRow>,
    /// Whether any assigned permission set grants "Customize Application".
    pub customize_application: bool,
}

#[async_trait]
pub trait AccessStore: Send + Sync {
    // Users (rows live in the metadata store's users table).
    /// A taken username (across all tenants) → `DUPLICATE_VALUE` on `username`.
    async fn create_user(&self, user: UserRow, audit: AuditEntry) -> MosaicResult<()>;
    /// `None` when the user is not in the tenant. Deactivation revokes the
    /// user's sessions and refresh tokens in the same transaction.
    async fn update_user(
        &self,
        tenant_id: &str,
        id: &str,
        patch: UserPatch,
        audit: AuditEntry,
    ) -> MosaicResult<Option<UserUpdated>>;
    async fn list_users(&self, tenant_id: &str) -> MosaicResult<Vec<UserRow>>;

    // Roles.
    /// Computes path and depth from the parent (which must be in the tenant);
    /// deeper than [`MAX_ROLE_DEPTH`] → `LIMIT_EXCEEDED`; taken name → `DUPLICATE_VALUE`.
    async fn create_role(&self, role: RoleRow, audit: AuditEntry) -> MosaicResult<RoleRow>;
    /// Moves a role under `parent_id` (or to the root) and rewrites its
    /// subtree's paths in one transaction. Cycles → `INVALID_INPUT`.
    async fn update_role(
        &self,
        tenant_id: &str,
        id: &str,
        label: Option<String>,
        parent_id: Option<Option<String>>,
        audit: AuditEntry,
    ) -> MosaicResult<Option<RoleRow>>;
    async fn role(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<RoleRow>>;
    async fn list_roles(&self, tenant_id: &str) -> MosaicResult<Vec<RoleRow>>;
    /// Refuses (`DELETE_FAILED`) a role with sub-roles, users or group memberships.
    async fn delete_role(&self, tenant_id: &str, id: &str, audit: AuditEntry)
        -> MosaicResult<bool>;

    // Groups.
    async fn create_group(&self, group: GroupRow, audit: AuditEntry) -> MosaicResult<()>;
    async fn update_group(
        &self,
        tenant_id: &str,
        id: &str,
        label: Option<String>,
        members: Option<Vec<GroupMember>>,
        audit: AuditEntry,
    ) -> MosaicResult<Option<GroupRow>>;
    async fn group(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<GroupRow>>;
    async fn list_groups(&self, tenant_id: &str) -> MosaicResult<Vec<GroupRow>>;
    async fn delete_group(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool>;

    // Permission sets.
    async fn create_permission_set(
        &self,
        set: PermissionSetRow,
        audit: AuditEntry,
    ) -> MosaicResult<()>;
    async fn update_permission_set(
        &self,
        tenant_id: &str,
        id: &str,
        patch: PermissionSetPatch,
        audit: AuditEntry,
    ) -> MosaicResult<Option<PermissionSetRow>>;
    async fn permission_set(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> MosaicResult<Option<PermissionSetRow>>;
    async fn list_permission_sets(&self, tenant_id: &str) -> MosaicResult<Vec<PermissionSetRow>>;
    async fn delete_permission_set(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool>;
    /// `false` when the set is not in the tenant. Assigning twice is a no-op.
    async fn assign(
        &self,
        tenant_id: &str,
        set_id: &str,
        user_id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool>;
    /// `false` when there was no such assignment.
    async fn unassign(
        &self,
        tenant_id: &str,
        set_id: &str,
        user_id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool>;
    async fn user_grants(&self, tenant_id: &str, user_id: &str) -> MosaicResult<UserGrants>;

    // Connected apps.
    async fn create_connected_app(
        &self,
        app: ConnectedAppRow,
        audit: AuditEntry,
    ) -> MosaicResult<()>;
    async fn connected_app(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> MosaicResult<Option<ConnectedAppRow>>;
    /// By public client id (the OAuth client_credentials grant, before any tenant is known).
    async fn connected_app_by_client_id(
        &self,
        client_id: &str,
    ) -> MosaicResult<Option<ConnectedAppRow>>;
    async fn list_connected_apps(&self, tenant_id: &str) -> MosaicResult<Vec<ConnectedAppRow>>;
    async fn delete_connected_app(
        &self,
        tenant_id: &str,
        id: &str,
        audit: AuditEntry,
    ) -> MosaicResult<bool>;

    // Tokens.
    async fn create_refresh_token(&self, row: RefreshTokenRow) -> MosaicResult<()>;
    async fn refresh_token(&self, token_hash: &str) -> MosaicResult<Option<RefreshTokenRow>>;
    /// `true` when a refresh token with this hash existed.
    async fn revoke_refresh_token(&self, token_hash: &str) -> MosaicResult<bool>;
    /// In one transaction: a live (unrevoked, unexpired at `now`) token
    /// `old_hash` is revoked and `next` stored in its family (for its user);
    /// an already revoked one revokes its whole family instead.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        next: RefreshTokenRow,
        now: DateTime<Utc>,
    ) -> MosaicResult<RefreshRotation>;

    // Passwords.
    /// Replaces a user's password hash and its "must change" flag, and
    /// revokes the user's sessions (all but `keep_session`, a token hash)
    /// and refresh tokens, with the audit row, in one transaction. Returns
    /// the revoked sessions' hashes; `None` when the user is not in the tenant.
    async fn set_password(
        &self,
        tenant_id: &str,
        user_id: &str,
        password_hash: &str,
        must_change: bool,
        keep_session: Option<&str>,
        audit: AuditEntry,
    ) -> MosaicResult<Option<Vec<String>>>;

    // Expiry.
    /// Deletes sessions and refresh tokens expired before `now` and
    /// login-failure windows older than `login_window_secs`.
    async fn purge_expired(
        &self,
        now: DateTime<Utc>,
        login_window_secs: i64,
    ) -> MosaicResult<PurgedCredentials>;

    // Login failures (before authentication: keyed by scope and key, no tenant).
    /// Counts a failure in the window starting at the first failure not
    /// older than `window_secs`; returns (failures, window start).
    async fn record_login_failure(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> MosaicResult<(i64, DateTime<Utc>)>;
    async fn login_failures(
        &self,
        scope: &str,
        key: &str,
    ) -> MosaicResult<Option<(i64, DateTime<Utc>)>>;
    async fn clear_login_failures(&self, scope: &str, key: &str) -> MosaicResult<()>;
    /// Takes one back from a key's count (an attempt counted before the
    /// password check that turned out right); never below zero.
    async fn forgive_login_failure(&self, scope: &str, key: &str) -> MosaicResult<()>;

    // Audit log.
    /// Newest first.
    async fn audit(&self, tenant_id: &str, filter: AuditFilter) -> MosaicResult<Vec<AuditRow>>;
    /// Appends one entry (changes made outside this store, e.g. metadata).
    async fn append_audit(&self, entry: AuditEntry) -> MosaicResult<()>;
}
