//! The metadata store: tenants, users, sessions and object definitions.
//! Object definitions are stored as versioned JSON documents owned by
//! `mosaic-meta`; this layer only enforces uniqueness and optimistic locking.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::MosaicResult;

#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub subdomain: String,
    pub tier: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub is_active: bool,
    pub profile: String,
    pub created_at: DateTime<Utc>,
    /// The user's role in the tenant's hierarchy, if any.
    pub role_id: Option<String>,
    /// Set by an administrator's password reset: the password must be
    /// changed before the user may sign in.
    pub must_change_password: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// SHA-256 of the bearer token (hex). The token itself is never stored.
    pub token_hash: String,
    pub tenant_id: String,
    pub user_id: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRow {
    pub id: String,
    pub tenant_id: String,
    pub api_name: String,
    pub version: i64,
    /// The object definition as JSON (format owned by `mosaic-meta`).
    pub definition: String,
}

#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Creates a tenant, its first user and optionally a session, atomically.
    /// A taken subdomain or username → `DUPLICATE_VALUE` naming it.
    async fn create_tenant(
        &self,
        tenant: TenantRow,
        admin: UserRow,
        session: Option<SessionRow>,
    ) -> MosaicResult<()>;
    async fn tenant(&self, id: &str) -> MosaicResult<Option<TenantRow>>;
    async fn user_by_username(&self, username: &str) -> MosaicResult<Option<UserRow>>;
    async fn user(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<UserRow>>;

    async fn create_session(&self, session: SessionRow) -> MosaicResult<()>;
    async fn session(&self, token_hash: &str) -> MosaicResult<Option<SessionRow>>;
    async fn revoke_session(&self, token_hash: &str) -> MosaicResult<()>;

    async fn list_objects(&self, tenant_id: &str) -> MosaicResult<Vec<ObjectRow>>;
    /// Looks an object up by api name, case-insensitively.
    async fn object_by_name(
        &self,
        tenant_id: &str,
        api_name: &str,
    ) -> MosaicResult<Option<ObjectRow>>;
    async fn object_by_id(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<ObjectRow>>;
    /// Inserts a new object. Duplicate api name in the tenant → `DUPLICATE_VALUE`.
    async fn insert_object(&self, row: ObjectRow) -> MosaicResult<()>;
    /// Replaces an object definition if its stored version is
    /// `expected_version` (the new row carries `expected_version + 1`);
    /// otherwise `CONFLICT`.
    async fn update_object(&self, row: ObjectRow, expected_version: i64) -> MosaicResult<()>;
    async fn delete_object(&self, tenant_id: &str, id: &str) -> MosaicResult<()>;
}
