//! SQLite implementation of [`MetaStore`].

use crate::meta_store::*;
use crate::sqlite::{map_sql, SqliteDb};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::value::format_datetime;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::sync::Arc;

pub const META_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT OR IGNORE INTO schema_version VALUES ('metadata', 1);
CREATE TABLE IF NOT EXISTS tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  subdomain TEXT NOT NULL UNIQUE,
  tier TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  username TEXT NOT NULL,
  username_lc TEXT NOT NULL UNIQUE,
  email TEXT,
  password_hash TEXT NOT NULL,
  is_active INTEGER NOT NULL,
  profile TEXT NOT NULL,
  created_at TEXT NOT NULL,
  role_id TEXT,
  must_change_password INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS users_tenant ON users(tenant_id, id);
CREATE TABLE IF NOT EXISTS sessions (
  token_hash TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  issued_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(tenant_id, user_id);
CREATE TABLE IF NOT EXISTS objects (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  api_name TEXT NOT NULL,
  api_name_lc TEXT NOT NULL,
  version INTEGER NOT NULL,
  definition TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, api_name_lc)
);
"#;

pub struct SqliteMetaStore {
    db: Arc<SqliteDb>,
}

impl SqliteMetaStore {
    pub fn open(path: &Path) -> MosaicResult<SqliteMetaStore> {
        crate::sqlite_access::migrate(path)?;
        let schema = format!(
            "{META_SCHEMA}{}{}{}{}{}{}",
            crate::sqlite_access::ACCESS_SCHEMA,
            crate::sqlite_shards::SHARDS_SCHEMA,
            crate::settings::SETTINGS_SCHEMA,
            crate::recent::RECENT_SCHEMA,
            crate::operators::OPERATORS_SCHEMA,
            crate::bulk::BULK_SCHEMA
        );
        Ok(SqliteMetaStore {
            db: SqliteDb::open(path, &schema)?,
        })
    }

    pub fn db(&self) -> &Arc<SqliteDb> {
        &self.db
    }
}

pub(crate) fn parse_ts(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn tenant_row(r: &Row) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: r.get(0)?,
        name: r.get(1)?,
        subdomain: r.get(2)?,
        tier: r.get(3)?,
        status: r.get(4)?,
        created_at: parse_ts(&r.get::<_, String>(5)?)?,
    })
}

pub(crate) const USER_COLS: &str =
    "id, tenant_id, username, email, password_hash, is_active, profile, created_at, role_id, must_change_password";

pub(crate) fn user_row(r: &Row) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        username: r.get(2)?,
        email: r.get(3)?,
        password_hash: r.get(4)?,
        is_active: r.get(5)?,
        profile: r.get(6)?,
        created_at: parse_ts(&r.get::<_, String>(7)?)?,
        role_id: r.get(8)?,
        must_change_password: r.get(9)?,
    })
}

fn object_row(r: &Row) -> rusqlite::Result<ObjectRow> {
    Ok(ObjectRow {
        tenant_id: r.get(0)?,
        id: r.get(1)?,
        api_name: r.get(2)?,
        version: r.get(3)?,
        definition: r.get(4)?,
    })
}

const OBJECT_COLS: &str = "tenant_id, id, api_name, version, definition";

fn insert_session(conn: &Connection, s: &SessionRow) -> MosaicResult<()> {
    conn.prepare_cached(
        "INSERT INTO sessions (token_hash, tenant_id, user_id, issued_at, expires_at, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![
            s.token_hash,
            s.tenant_id,
            s.user_id,
            format_datetime(&s.issued_at),
            format_datetime(&s.expires_at),
            s.revoked
        ])
    })
    .map_err(map_sql)?;
    Ok(())
}

#[async_trait]
impl MetaStore for SqliteMetaStore {
    async fn create_tenant(
        &self,
        t: TenantRow,
        u: UserRow,
        s: Option<SessionRow>,
    ) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                let taken: Option<String> = conn
                    .query_row(
                        "SELECT id FROM tenants WHERE subdomain = ?1",
                        [&t.subdomain],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(map_sql)?;
                if taken.is_some() {
                    return Err(MosaicError::field(
                        ErrorCode::DUPLICATE_VALUE,
                        "subdomain",
                        format!("the subdomain '{}' is already taken", t.subdomain),
                    ));
                }
                let user_taken: Option<String> = conn
                    .query_row(
                        "SELECT id FROM users WHERE username_lc = ?1",
                        [u.username.to_lowercase()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(map_sql)?;
                if user_taken.is_some() {
                    return Err(MosaicError::field(
                        ErrorCode::DUPLICATE_VALUE,
                        "username",
                        format!(
                            "the username '{}' is already taken (usernames are unique across all tenants)",
                            u.username
                        ),
                    ));
                }
                conn.execute(
                    "INSERT INTO tenants (id, name, subdomain, tier, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![t.id, t.name, t.subdomain, t.tier, t.status, format_datetime(&t.created_at)],
                )
                .map_err(map_sql)?;
                conn.execute(
                    "INSERT INTO users (id, tenant_id, username, username_lc, email, password_hash, is_active, profile, created_at, role_id, must_change_password) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![u.id, u.tenant_id, u.username, u.username.to_lowercase(), u.email, u.password_hash, u.is_active, u.profile, format_datetime(&u.created_at), u.role_id, u.must_change_password],
                )
                .map_err(map_sql)?;
                if let Some(s) = &s {
                    insert_session(conn, s)?;
                }
                Ok(())
            })
            .await
    }

    async fn tenant(&self, id: &str) -> MosaicResult<Option<TenantRow>> {
        let id = id.to_string();
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT id, name, subdomain, tier, status, created_at FROM tenants WHERE id = ?1",
                )
                .and_then(|mut st| st.query_row([id], tenant_row).optional())
                .map_err(map_sql)
            })
            .await
    }

    async fn user_by_username(&self, username: &str) -> MosaicResult<Option<UserRow>> {
        let lc = username.to_lowercase();
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {USER_COLS} FROM users WHERE username_lc = ?1"
                ))
                .and_then(|mut st| st.query_row([lc], user_row).optional())
                .map_err(map_sql)
            })
            .await
    }

    async fn user(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<UserRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {USER_COLS} FROM users WHERE tenant_id = ?1 AND id = ?2"
                ))
                .and_then(|mut st| st.query_row([t, id], user_row).optional())
                .map_err(map_sql)
            })
            .await
    }

    async fn create_session(&self, s: SessionRow) -> MosaicResult<()> {
        self.db.write(move |conn| insert_session(conn, &s)).await
    }

    async fn session(&self, token_hash: &str) -> MosaicResult<Option<SessionRow>> {
        let h = token_hash.to_string();
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT token_hash, tenant_id, user_id, issued_at, expires_at, revoked FROM sessions WHERE token_hash = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([h], |r| {
                        Ok(SessionRow {
                            token_hash: r.get(0)?,
                            tenant_id: r.get(1)?,
                            user_id: r.get(2)?,
                            issued_at: parse_ts(&r.get::<_, String>(3)?)?,
                            expires_at: parse_ts(&r.get::<_, String>(4)?)?,
                            revoked: r.get(5)?,
                        })
                    })
                    .optional()
                })
                .map_err(map_sql)
            })
            .await
    }

    async fn revoke_session(&self, token_hash: &str) -> MosaicResult<()> {
        let h = token_hash.to_string();
        self.db
            .write(move |conn| {
                conn.execute("UPDATE sessions SET revoked = 1 WHERE token_hash = ?1", [h])
                    .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn list_objects(&self, tenant_id: &str) -> MosaicResult<Vec<ObjectRow>> {
        let t = tenant_id.to_string();
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {OBJECT_COLS} FROM objects WHERE tenant_id = ?1 ORDER BY api_name_lc"
                    ))
                    .map_err(map_sql)?;
                let rows = st
                    .query_map([t], object_row)
                    .map_err(map_sql)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_sql)?;
                Ok(rows)
            })
            .await
    }

    async fn object_by_name(
        &self,
        tenant_id: &str,
        api_name: &str,
    ) -> MosaicResult<Option<ObjectRow>> {
        let (t, n) = (tenant_id.to_string(), api_name.to_lowercase());
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {OBJECT_COLS} FROM objects WHERE tenant_id = ?1 AND api_name_lc = ?2"
                ))
                .and_then(|mut st| st.query_row([t, n], object_row).optional())
                .map_err(map_sql)
            })
            .await
    }

    async fn object_by_id(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<ObjectRow>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {OBJECT_COLS} FROM objects WHERE tenant_id = ?1 AND id = ?2"
                ))
                .and_then(|mut st| st.query_row([t, id], object_row).optional())
                .map_err(map_sql)
            })
            .await
    }

    async fn insert_object(&self, row: ObjectRow) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                let exists: Option<String> = conn
                    .query_row(
                        "SELECT api_name FROM objects WHERE tenant_id = ?1 AND api_name_lc = ?2",
                        params![row.tenant_id, row.api_name.to_lowercase()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(map_sql)?;
                if let Some(name) = exists {
                    return Err(MosaicError::field(
                        ErrorCode::DUPLICATE_VALUE,
                        "api_name",
                        format!("an object named '{name}' already exists"),
                    ));
                }
                conn.execute(
                    "INSERT INTO objects (tenant_id, id, api_name, api_name_lc, version, definition) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![row.tenant_id, row.id, row.api_name, row.api_name.to_lowercase(), row.version, row.definition],
                )
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn update_object(&self, row: ObjectRow, expected_version: i64) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                let clash: Option<String> = conn
                    .query_row(
                        "SELECT api_name FROM objects WHERE tenant_id = ?1 AND api_name_lc = ?2 AND id <> ?3",
                        params![row.tenant_id, row.api_name.to_lowercase(), row.id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(map_sql)?;
                if let Some(name) = clash {
                    return Err(MosaicError::field(
                        ErrorCode::DUPLICATE_VALUE,
                        "api_name",
                        format!("an object named '{name}' already exists"),
                    ));
                }
                let n = conn
                    .execute(
                        "UPDATE objects SET api_name = ?1, api_name_lc = ?2, version = ?3, definition = ?4 WHERE tenant_id = ?5 AND id = ?6 AND version = ?7",
                        params![row.api_name, row.api_name.to_lowercase(), row.version, row.definition, row.tenant_id, row.id, expected_version],
                    )
                    .map_err(map_sql)?;
                if n == 0 {
                    let current: Option<i64> = conn
                        .query_row(
                            "SELECT version FROM objects WHERE tenant_id = ?1 AND id = ?2",
                            params![row.tenant_id, row.id],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(map_sql)?;
                    return Err(match current {
                        None => MosaicError::not_found(format!("object '{}' not found", row.api_name)),
                        Some(v) => MosaicError::field(
                            ErrorCode::CONFLICT,
                            "version",
                            format!(
                                "object '{}' was changed concurrently: current version is {v}, the update was based on {expected_version}",
                                row.api_name
                            ),
                        ),
                    });
                }
                Ok(())
            })
            .await
    }

    async fn delete_object(&self, tenant_id: &str, id: &str) -> MosaicResult<()> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM objects WHERE tenant_id = ?1 AND id = ?2",
                    params![t, id],
                )
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }
}
