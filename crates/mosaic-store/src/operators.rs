//! Platform operators: operator users (argon2 hashes), their short-lived
//! sessions (SHA-256 of the token only) and the platform audit log of every
//! operator action. Platform-level, in the metadata database: no tenant, no
//! tenant predicate (operators act on the whole platform).

use crate::sqlite::{map_sql, SqliteDb};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::value::format_datetime;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;

/// An operator user.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorRow {
    pub id: String,
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A signed-in operator's session, keyed by the hash of its token.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSessionRow {
    pub token_hash: String,
    pub operator_id: String,
    pub username: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One operator action: who (`operator:<username>`, `token` or `cli`),
/// what, on what, when.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformAuditRow {
    pub id: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// JSON text.
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Adds an operator; a taken username (case-insensitive) → `DUPLICATE_VALUE`.
    async fn create_operator(&self, row: OperatorRow) -> MosaicResult<()>;
    /// The operator with this username, compared case-insensitively.
    async fn operator_by_username(&self, username: &str) -> MosaicResult<Option<OperatorRow>>;
    async fn operator_count(&self) -> MosaicResult<u64>;
    async fn create_operator_session(&self, row: OperatorSessionRow) -> MosaicResult<()>;
    async fn operator_session(&self, token_hash: &str) -> MosaicResult<Option<OperatorSessionRow>>;
    /// Ends the session (no error when it is unknown).
    async fn delete_operator_session(&self, token_hash: &str) -> MosaicResult<()>;
    /// Deletes sessions that expired before `now`; returns how many.
    async fn purge_operator_sessions(&self, now: DateTime<Utc>) -> MosaicResult<u64>;
    async fn append_platform_audit(&self, row: PlatformAuditRow) -> MosaicResult<()>;
    /// The newest `limit` entries, newest first, older than `before` (an
    /// entry id) when given.
    async fn platform_audit(
        &self,
        limit: u32,
        before: Option<&str>,
    ) -> MosaicResult<Vec<PlatformAuditRow>>;
}

/// The error of a taken operator username.
pub fn taken_username(username: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::DUPLICATE_VALUE,
        "username",
        format!("username: an operator named '{username}' exists already"),
    )
}

pub const OPERATORS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS operator_users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL,
  username_lc TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS operator_sessions (
  token_hash TEXT PRIMARY KEY,
  operator_id TEXT NOT NULL,
  username TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS platform_audit (
  id TEXT PRIMARY KEY,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  at TEXT NOT NULL
);
"#;

/// Operators in an embedded metadata database.
pub struct SqliteOperatorStore {
    db: Arc<SqliteDb>,
}

impl SqliteOperatorStore {
    /// Operators kept in `db`, the metadata database (whose schema has
    /// [`OPERATORS_SCHEMA`]).
    pub fn new(db: Arc<SqliteDb>) -> SqliteOperatorStore {
        SqliteOperatorStore { db }
    }
}

fn ts(r: &rusqlite::Row, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    crate::sqlite_meta::parse_ts(&r.get::<_, String>(i)?)
}

#[async_trait]
impl OperatorStore for SqliteOperatorStore {
    async fn create_operator(&self, row: OperatorRow) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                let lc = row.username.to_lowercase();
                let taken: Option<String> = conn
                    .query_row(
                        "SELECT id FROM operator_users WHERE username_lc = ?1",
                        params![lc],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(map_sql)?;
                if taken.is_some() {
                    return Err(taken_username(&row.username));
                }
                conn.execute(
                    "INSERT INTO operator_users (id, username, username_lc, password_hash, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        row.id,
                        row.username,
                        lc,
                        row.password_hash,
                        format_datetime(&row.created_at)
                    ],
                )
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }

    async fn operator_by_username(&self, username: &str) -> MosaicResult<Option<OperatorRow>> {
        let lc = username.to_lowercase();
        self.db
            .read(move |conn| {
                conn.query_row(
                    "SELECT id, username, password_hash, created_at FROM operator_users WHERE username_lc = ?1",
                    params![lc],
                    |r| {
                        Ok(OperatorRow {
                            id: r.get(0)?,
                            username: r.get(1)?,
                            password_hash: r.get(2)?,
                            created_at: ts(r, 3)?,
                        })
                    },
                )
                .optional()
                .map_err(map_sql)
            })
            .await
    }

    async fn operator_count(&self) -> MosaicResult<u64> {
        self.db
            .read(|conn| {
                conn.query_row("SELECT count(*) FROM operator_users", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n.max(0) as u64)
                .map_err(map_sql)
            })
            .await
    }

    async fn create_operator_session(&self, row: OperatorSessionRow) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO operator_sessions (token_hash, operator_id, username, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        row.token_hash,
                        row.operator_id,
                        row.username,
                        format_datetime(&row.created_at),
                        format_datetime(&row.expires_at)
                    ],
                )
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }

    async fn operator_session(&self, token_hash: &str) -> MosaicResult<Option<OperatorSessionRow>> {
        let h = token_hash.to_string();
        self.db
            .read(move |conn| {
                conn.query_row(
                    "SELECT token_hash, operator_id, username, created_at, expires_at
                     FROM operator_sessions WHERE token_hash = ?1",
                    params![h],
                    |r| {
                        Ok(OperatorSessionRow {
                            token_hash: r.get(0)?,
                            operator_id: r.get(1)?,
                            username: r.get(2)?,
                            created_at: ts(r, 3)?,
                            expires_at: ts(r, 4)?,
                        })
                    },
                )
                .optional()
                .map_err(map_sql)
            })
            .await
    }

    async fn delete_operator_session(&self, token_hash: &str) -> MosaicResult<()> {
        let h = token_hash.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM operator_sessions WHERE token_hash = ?1",
                    params![h],
                )
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }

    async fn purge_operator_sessions(&self, now: DateTime<Utc>) -> MosaicResult<u64> {
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM operator_sessions WHERE expires_at < ?1",
                    params![format_datetime(&now)],
                )
                .map(|n| n as u64)
                .map_err(map_sql)
            })
            .await
    }

    async fn append_platform_audit(&self, row: PlatformAuditRow) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO platform_audit (id, actor, action, target, detail, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        row.id,
                        row.actor,
                        row.action,
                        row.target,
                        row.detail,
                        format_datetime(&row.at)
                    ],
                )
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }

    async fn platform_audit(
        &self,
        limit: u32,
        before: Option<&str>,
    ) -> MosaicResult<Vec<PlatformAuditRow>> {
        let before = before.map(str::to_string);
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT id, actor, action, target, detail, at FROM platform_audit
                         WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
                    )
                    .map_err(map_sql)?;
                let rows = st
                    .query_map(params![before, i64::from(limit)], |r| {
                        Ok(PlatformAuditRow {
                            id: r.get(0)?,
                            actor: r.get(1)?,
                            action: r.get(2)?,
                            target: r.get(3)?,
                            detail: r.get(4)?,
                            at: ts(r, 5)?,
                        })
                    })
                    .map_err(map_sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_sql)
            })
            .await
    }
}
