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
/// The recently viewed records in a metadata database.
pub const RECENT: &str = "recent";
/// The Bulk API's jobs, uploads and results in a metadata database.
pub const BULK: &str = "bulk";
/// Component name of a shard's record tables (records, pivots, counters,
/// outbox, field history, shares).
pub const RECORDS: &str = "records";

const SCHEMA_VERSION_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_version (
  component TEXT NOT NULL,
  version BIGINT NOT NULL,
  name TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (component, version)
)";

/// The metadata database: tenants, users, sessions, object definitions and
/// the access-control tables.
pub const METADATA_MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        version: 2,
        name: "shard directory",
        sql: r#"
CREATE TABLE shards (
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  grp TEXT NOT NULL,
  max_tenants BIGINT,
  max_records BIGINT,
  status TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE tenant_shards (
  tenant_id TEXT PRIMARY KEY,
  shard_id TEXT NOT NULL,
  version BIGINT NOT NULL
);
CREATE INDEX tenant_shards_shard ON tenant_shards (shard_id);
CREATE TABLE directory_version (
  only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
  version BIGINT NOT NULL
);
INSERT INTO directory_version VALUES (1, 0);
"#,
    },
    Migration {
        version: 3,
        name: "platform settings",
        sql: r#"
CREATE TABLE platform_settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL
);
"#,
    },
    Migration {
        version: 4,
        name: "operator users, operator sessions, platform audit log",
        sql: r#"
CREATE TABLE operator_users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL,
  username_lc TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE operator_sessions (
  token_hash TEXT PRIMARY KEY,
  operator_id TEXT NOT NULL,
  username TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at);
CREATE TABLE platform_audit (
  id TEXT COLLATE "C" PRIMARY KEY,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  at TIMESTAMPTZ NOT NULL
);
"#,
    },
    Migration {
        version: 5,
        name: "password reset flag, refresh-token expiry and families, expiry indexes",
        sql: r#"
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE refresh_tokens ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE refresh_tokens ADD COLUMN family_id TEXT;
UPDATE refresh_tokens SET family_id = token_hash, expires_at = issued_at + INTERVAL '30 days';
ALTER TABLE refresh_tokens ALTER COLUMN expires_at SET NOT NULL;
ALTER TABLE refresh_tokens ALTER COLUMN family_id SET NOT NULL;
CREATE INDEX refresh_tokens_family ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX sessions_expiry ON sessions (expires_at);
"#,
    },
    Migration {
        version: 6,
        name: "tenant and user time zones and locales",
        sql: r#"
CREATE TABLE locale_settings (
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  time_zone TEXT,
  locale TEXT,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);
"#,
    },
    SYSTEM_PERMISSIONS_MIGRATION,
    FISCAL_YEAR_MIGRATION,
];

/// A tenant's fiscal year may start in another month than January
/// (`NULL`: January).
const FISCAL_YEAR_MIGRATION: Migration = Migration {
    version: 8,
    name: "organization fiscal year start month",
    sql: r#"
ALTER TABLE locale_settings ADD COLUMN fiscal_year_start_month INTEGER;
"#,
};

/// Permission sets gain the system permission "Customize Application"
/// (off for existing sets).
const SYSTEM_PERMISSIONS_MIGRATION: Migration = Migration {
    version: 7,
    name: "permission-set system permissions: customize application",
    sql: r#"
ALTER TABLE permission_sets ADD COLUMN customize_application BOOLEAN NOT NULL DEFAULT FALSE;
"#,
};

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
    client.settle();
    Ok(current.max(latest))
}

/// Each user's recently viewed records (the web app's), a component of
/// the metadata database with its own numbering.
pub const RECENT_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "recently viewed records",
    sql: r#"
CREATE TABLE recent_records (
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  viewed_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, user_id, record_id)
);
CREATE INDEX recent_records_newest ON recent_records (tenant_id, user_id, viewed_at);
"#,
}];

/// Migrates a metadata database (what `mosaic migrate` runs against it);
/// returns the version of its main component.
pub async fn migrate_metadata(pool: &PgPool) -> MosaicResult<i64> {
    let version = migrate(pool, METADATA, METADATA_MIGRATIONS).await?;
    migrate(pool, RECENT, RECENT_MIGRATIONS).await?;
    migrate(pool, BULK, crate::bulk::BULK_MIGRATIONS).await?;
    Ok(version)
}

/// Migrates the idempotency-key table of a records database.
pub async fn migrate_idempotency(pool: &PgPool) -> MosaicResult<i64> {
    migrate(pool, IDEMPOTENCY, IDEMPOTENCY_MIGRATIONS).await
}

/// Functions the record queries call: SOQL's text semantics (Rust's Unicode
/// lower-casing through ICU's root locale, compared in byte order),
/// multi-picklist tests and the exact decoding of decimal keys.
const RECORD_FUNCTIONS: &str = r#"
CREATE FUNCTION mosaic_lower(v text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN lower(v COLLATE "und-x-icu") COLLATE "C";
CREATE FUNCTION mosaic_mp_has(v text, term text) RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN EXISTS (SELECT 1 FROM unnest(string_to_array(v, ';')) AS p(x)
                 WHERE mosaic_lower(btrim(p.x, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13))) = term);
CREATE FUNCTION mosaic_mp_norm(v text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE WHEN v IS NULL THEN NULL ELSE coalesce(
    (SELECT string_agg(q.x, ';' ORDER BY q.x COLLATE "C")
       FROM (SELECT DISTINCT mosaic_lower(btrim(p.x, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13))) AS x
               FROM unnest(string_to_array(v, ';')) AS p(x)) AS q
      WHERE q.x <> ''), '') END;
CREATE FUNCTION mosaic_deckey_numeric(k text) RETURNS numeric
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE left(k, 1)
    WHEN '1' THEN 0::numeric
    WHEN '2' THEN ('0.' || substr(k, 5) || 'e' || (substr(k, 2, 3)::int - 500)::text)::numeric
    WHEN '0' THEN -(('0.' || translate(rtrim(substr(k, 5), '~'), '0123456789', '9876543210')
                     || 'e' || (500 - substr(k, 2, 3)::int)::text)::numeric)
  END;
"#;

/// The SQL type of a flex column of `pool`. Number slots keep the
/// order-preserving decimal keys of `mosaic_types::deckey` in byte order
/// (`COLLATE "C"`), exactly as SQLite compares them.
fn flex_type(pool: mosaic_types::SlotPool) -> &'static str {
    use mosaic_types::SlotPool;
    match pool {
        SlotPool::String | SlotPool::Number | SlotPool::Clob => "TEXT COLLATE \"C\"",
        SlotPool::Date => "DATE",
        SlotPool::Datetime => "TIMESTAMPTZ",
        SlotPool::Boolean => "BOOLEAN",
    }
}

/// The search document of a row: Name and every text-pool column,
/// lower-cased like `mosaic_lower`, every run of characters that are not
/// letters or digits turned into one space (the words SQLite's FTS5
/// `unicode61` tokenizer sees), parsed with the `simple` configuration.
fn search_document_sql() -> String {
    use mosaic_types::{FlexSlot, SlotPool};
    let mut parts = vec!["coalesce(name, '')".to_string()];
    parts.extend(
        FlexSlot::all()
            .filter(|s| matches!(s.pool, SlotPool::String | SlotPool::Clob))
            .map(|s| format!("coalesce({}, '')", s.column())),
    );
    format!(
        "to_tsvector('simple'::regconfig, regexp_replace(lower(({}) COLLATE \"und-x-icu\"), '[^[:alnum:]]+', ' ', 'g'))",
        parts.join(" || ' ' || ")
    )
}

/// Migration 1 of a shard: the wide record table (its flex columns follow
/// the pool capacities of `mosaic_types::SlotPool`; a larger pool is a new
/// migration), pivot tables, auto-number counters, outbox, field history
/// and record shares.
fn records_v1() -> String {
    let mut cols = String::new();
    for s in mosaic_types::FlexSlot::all() {
        cols.push_str(&format!(",\n  {} {}", s.column(), flex_type(s.pool)));
    }
    format!(
        r#"{RECORD_FUNCTIONS}
CREATE TABLE object_records (
  tenant_id TEXT COLLATE "C" NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  name TEXT COLLATE "C",
  owner_id TEXT COLLATE "C" NOT NULL,
  created_by TEXT COLLATE "C" NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  modified_by TEXT COLLATE "C" NOT NULL,
  modified_at TIMESTAMPTZ NOT NULL,
  is_deleted BOOLEAN NOT NULL DEFAULT FALSE{cols},
  search_doc TSVECTOR GENERATED ALWAYS AS ({doc}) STORED,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX object_records_by_object ON object_records (tenant_id, object_id, id);
CREATE INDEX object_records_search ON object_records USING gin (search_doc);
CREATE TABLE record_index (
  tenant_id TEXT COLLATE "C" NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  slot TEXT COLLATE "C" NOT NULL,
  value TEXT COLLATE "C" NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant_id, object_id, slot, value, record_id)
);
CREATE INDEX record_index_by_record ON record_index (tenant_id, record_id, slot);
CREATE TABLE record_unique (
  tenant_id TEXT COLLATE "C" NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  slot TEXT COLLATE "C" NOT NULL,
  value TEXT COLLATE "C" NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant_id, object_id, slot, value)
);
CREATE INDEX record_unique_by_record ON record_unique (tenant_id, record_id, slot);
CREATE TABLE auto_number_counters (
  tenant_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  counter TEXT NOT NULL,
  next_value BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, object_id, counter)
);
CREATE TABLE outbox (
  tenant_id TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  kind TEXT NOT NULL,
  object_id TEXT NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  rule_id TEXT COLLATE "C",
  action_id TEXT,
  payload TEXT NOT NULL,
  state TEXT NOT NULL,
  due_at TIMESTAMPTZ NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  last_error TEXT,
  lease_until TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_due ON outbox (state, due_at);
CREATE INDEX outbox_by_record ON outbox (tenant_id, record_id, rule_id);
CREATE INDEX outbox_by_tenant ON outbox (tenant_id, state, id);
CREATE TABLE field_history (
  tenant_id TEXT COLLATE "C" NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  object_id TEXT NOT NULL,
  field TEXT NOT NULL,
  old_value TEXT,
  new_value TEXT,
  changed_by TEXT NOT NULL,
  changed_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, record_id, id)
);
CREATE TABLE record_shares (
  tenant_id TEXT COLLATE "C" NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  principal TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  access SMALLINT NOT NULL,
  rule_id TEXT COLLATE "C",
  created_by TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, record_id, principal, id)
);
CREATE UNIQUE INDEX record_shares_id ON record_shares (tenant_id, id);
CREATE INDEX record_shares_rule ON record_shares (tenant_id, rule_id, record_id);
"#,
        doc = search_document_sql()
    )
}

static RECORDS_MIGRATIONS: std::sync::LazyLock<Vec<Migration>> = std::sync::LazyLock::new(|| {
    vec![
        Migration {
            version: 1,
            name: "records, pivots, counters, outbox, field history, shares",
            sql: Box::leak(records_v1().into_boxed_str()),
        },
        Migration {
            version: 2,
            name: "the shard's record of each slot's pivot flags",
            sql: RECORDS_V2,
        },
        Migration {
            version: 3,
            name: "the instance holding each outbox lease",
            sql: RECORDS_V3_LEASE_OWNER,
        },
        Migration {
            version: 4,
            name: "the recycle bin",
            sql: crate::bin::RECORDS_BIN,
        },
    ]
});

/// Migration 2 of a shard: which slots writers keep pivots for, written
/// with the pivot rows by an index build, so a writer holding an older
/// definition still keeps them (see `mosaic_store::record_store::merge_index_specs`).
const RECORDS_V2: &str = r#"
CREATE TABLE pivot_specs (
  tenant_id TEXT COLLATE "C" NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  slot TEXT COLLATE "C" NOT NULL,
  field TEXT NOT NULL,
  is_unique BOOLEAN NOT NULL,
  is_indexed BOOLEAN NOT NULL,
  case_insensitive BOOLEAN NOT NULL,
  PRIMARY KEY (tenant_id, object_id, slot)
);
"#;

/// Migration 3 of a shard: an outbox lease names the instance holding it,
/// so a stopping instance releases its own leases and no other's.
const RECORDS_V3_LEASE_OWNER: &str = "ALTER TABLE outbox ADD COLUMN lease_owner TEXT;";

/// The migrations of a shard's record tables.
pub fn records_migrations() -> &'static [Migration] {
    &RECORDS_MIGRATIONS
}

/// Migrates the record tables of a shard (what `mosaic migrate` runs against it).
pub async fn migrate_records(pool: &PgPool) -> MosaicResult<i64> {
    migrate(pool, RECORDS, records_migrations()).await
}
