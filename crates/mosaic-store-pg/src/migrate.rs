//! Versioned schema migrations. Each component of a database (the metadata
//! stores, the idempotency keys of a shard) has numbered migrations; the
//! `schema_version` table records every one applied. [`migrate`] applies the
//! missing ones in one transaction under an advisory lock, so any number of
//! instances may start at once: the first migrates, the others wait for it
//! and then find nothing to do.
//!
//! A migration is never edited once released; a change is a new number.
//! Text columns that the stores sort or compare by prefix are `COLLATE "C"`:
//! byte order, as SQLite compares, whatever the database's locale.

use crate::pool::{map_pg, PgPool};
use mosaic_types::{MosaicError, MosaicResult};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3, … without gaps.
    pub version: i64,
    pub name: &'static str,
    /// DDL, run with the simple query protocol (no parameters).
    pub sql: &'static str,
}

/// Key of the advisory lock every migrator holds (any constant unique to
/// Mosaic's migrations).
pub const MIGRATION_LOCK_KEY: i64 = 0x6d6f_7361_6963_0001;

/// Component name of the metadata database's tables.
pub const METADATA: &str = "metadata";
/// Component name of the idempotency-key table (in a records database).
pub const IDEMPOTENCY: &str = "idempotency";

const SCHEMA_VERSION_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_version (
  component TEXT NOT NULL,
  version BIGINT NOT NULL,
  name TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (component, version)
)";

/// The metadata database: tenants, users, sessions, object definitions and
/// the access-control tables.
pub const METADATA_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "tenants, users, sessions, objects, access control, audit log",
    sql: r#"
CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  subdomain TEXT NOT NULL UNIQUE,
  tier TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  username TEXT NOT NULL,
  username_lc TEXT COLLATE "C" NOT NULL UNIQUE,
  email TEXT,
  password_hash TEXT NOT NULL,
  is_active BOOLEAN NOT NULL,
  profile TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  role_id TEXT
);
CREATE INDEX users_tenant ON users (tenant_id, id);
CREATE INDEX users_role ON users (tenant_id, role_id) WHERE role_id IS NOT NULL;
CREATE TABLE sessions (
  token_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  issued_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL,
  revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE TABLE objects (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  api_name TEXT NOT NULL,
  api_name_lc TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  definition TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, api_name_lc)
);
CREATE TABLE roles (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_lc TEXT COLLATE "C" NOT NULL,
  label TEXT NOT NULL,
  parent_id TEXT,
  path TEXT COLLATE "C" NOT NULL,
  depth BIGINT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name_lc)
);
CREATE INDEX roles_path ON roles (tenant_id, path);
CREATE INDEX roles_parent ON roles (tenant_id, parent_id);
CREATE TABLE groups (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_lc TEXT COLLATE "C" NOT NULL,
  label TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name_lc)
);
CREATE TABLE group_members (
  tenant_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  member_kind TEXT NOT NULL,
  member_id TEXT NOT NULL,
  position BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, group_id, member_kind, member_id)
);
CREATE INDEX group_members_member ON group_members (tenant_id, member_id);
CREATE TABLE permission_sets (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_lc TEXT COLLATE "C" NOT NULL,
  label TEXT NOT NULL,
  description TEXT,
  created_at TIMESTAMPTZ NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name_lc)
);
CREATE TABLE object_permissions (
  tenant_id TEXT NOT NULL,
  permission_set_id TEXT NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  can_create BOOLEAN NOT NULL,
  can_read BOOLEAN NOT NULL,
  can_edit BOOLEAN NOT NULL,
  can_delete BOOLEAN NOT NULL,
  view_all BOOLEAN NOT NULL,
  modify_all BOOLEAN NOT NULL,
  PRIMARY KEY (tenant_id, permission_set_id, object_id)
);
CREATE TABLE field_permissions (
  tenant_id TEXT NOT NULL,
  permission_set_id TEXT NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  field_id TEXT COLLATE "C" NOT NULL,
  can_read BOOLEAN NOT NULL,
  can_edit BOOLEAN NOT NULL,
  PRIMARY KEY (tenant_id, permission_set_id, field_id)
);
CREATE TABLE permission_set_assignments (
  tenant_id TEXT NOT NULL,
  permission_set_id TEXT NOT NULL,
  user_id TEXT COLLATE "C" NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, permission_set_id, user_id)
);
CREATE INDEX psa_user ON permission_set_assignments (tenant_id, user_id);
CREATE TABLE connected_apps (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  name_lc TEXT COLLATE "C" NOT NULL,
  client_id TEXT NOT NULL UNIQUE,
  secret_hash TEXT NOT NULL,
  run_as_user_id TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name_lc)
);
CREATE TABLE refresh_tokens (
  token_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  issued_at TIMESTAMPTZ NOT NULL,
  revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_user ON refresh_tokens (tenant_id, user_id);
CREATE TABLE login_failures (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  failures BIGINT NOT NULL,
  window_start TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX login_failures_window ON login_failures (window_start);
CREATE TABLE audit_log (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  actor_id TEXT NOT NULL,
  action TEXT NOT NULL,
  target_type TEXT NOT NULL,
  target_id TEXT NOT NULL,
  detail TEXT NOT NULL,
  at TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_tenant ON audit_log (tenant_id, seq);
"#,
}];

/// The idempotency keys of a records database.
pub const IDEMPOTENCY_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "idempotency keys",
    sql: r#"
CREATE TABLE idempotency_keys (
  tenant_id TEXT NOT NULL,
  idem_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  reservation TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'complete')),
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  status INTEGER,
  headers TEXT,
  body BYTEA,
  body_kept BOOLEAN NOT NULL DEFAULT FALSE,
  PRIMARY KEY (tenant_id, idem_key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
"#,
}];

/// Brings `component` of the database behind `pool` up to the last of
/// `migrations` and returns its version. Idempotent and safe to run from
/// several processes at once. A database already at a later version (a newer
/// Mosaic migrated it) is left as it is: migrations only add.
pub async fn migrate(
    pool: &PgPool,
    component: &str,
    migrations: &[Migration],
) -> MosaicResult<i64> {
    for (i, m) in migrations.iter().enumerate() {
        if m.version != i as i64 + 1 {
            return Err(MosaicError::internal(format!(
                "{component} migrations must be numbered 1, 2, …: found {} at position {}",
                m.version,
                i + 1
            )));
        }
    }
    let mut client = pool.client().await?;
    let tx = client.transaction().await.map_err(|e| map_pg(&e))?;
    let pg = |e: tokio_postgres::Error| map_pg(&e);
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(pg)?;
    tx.batch_execute(SCHEMA_VERSION_DDL).await.map_err(pg)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = $1",
            &[&component],
        )
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    let latest = migrations.last().map_or(0, |m| m.version);
    if current > latest {
        tracing::warn!(
            component,
            current,
            latest,
            "the database schema is newer than this build knows; leaving it as it is"
        );
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        tracing::info!(
            component,
            version = m.version,
            name = m.name,
            "applying migration"
        );
        tx.batch_execute(m.sql).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO schema_version (component, version, name) VALUES ($1, $2, $3)",
            &[&component, &m.version, &m.name],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(current.max(latest))
}

/// Migrates a metadata database (what `mosaic migrate` runs against it).
pub async fn migrate_metadata(pool: &PgPool) -> MosaicResult<i64> {
    migrate(pool, METADATA, METADATA_MIGRATIONS).await
}

/// Migrates the idempotency-key table of a records database.
pub async fn migrate_idempotency(pool: &PgPool) -> MosaicResult<i64> {
    migrate(pool, IDEMPOTENCY, IDEMPOTENCY_MIGRATIONS).await
}
