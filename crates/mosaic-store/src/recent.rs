//! Recently viewed records per user (the app's "Recent records"): the
//! newest [`MAX_RECENT_PER_USER`] records a user opened, in the metadata
//! database so every instance sees them and they survive restarts.

use crate::sqlite::{map_sql, SqliteDb};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::value::format_datetime;
use mosaic_types::MosaicResult;
use rusqlite::params;
use std::sync::Arc;

/// Records kept per user; older ones are dropped as new ones are viewed.
pub const MAX_RECENT_PER_USER: i64 = 50;

/// One recently viewed record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentRow {
    pub object_id: String,
    pub record_id: String,
    pub viewed_at: DateTime<Utc>,
}

#[async_trait]
pub trait RecentStore: Send + Sync {
    /// Records that `user_id` viewed `record_id` at `at` (keeping the
    /// newest [`MAX_RECENT_PER_USER`]).
    async fn touch_recent(
        &self,
        tenant_id: &str,
        user_id: &str,
        object_id: &str,
        record_id: &str,
        at: DateTime<Utc>,
    ) -> MosaicResult<()>;
    /// The user's recently viewed records, newest first.
    async fn recent(
        &self,
        tenant_id: &str,
        user_id: &str,
        limit: usize,
    ) -> MosaicResult<Vec<RecentRow>>;
}

pub const RECENT_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS recent_records (
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  viewed_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, user_id, record_id)
);
CREATE INDEX IF NOT EXISTS recent_records_newest ON recent_records (tenant_id, user_id, viewed_at);
"#;

/// Recent records in an embedded metadata database.
pub struct SqliteRecentStore {
    db: Arc<SqliteDb>,
}

impl SqliteRecentStore {
    /// Kept in `db`, the metadata database (whose schema has [`RECENT_SCHEMA`]).
    pub fn new(db: Arc<SqliteDb>) -> SqliteRecentStore {
        SqliteRecentStore { db }
    }
}

#[async_trait]
impl RecentStore for SqliteRecentStore {
    async fn touch_recent(
        &self,
        tenant_id: &str,
        user_id: &str,
        object_id: &str,
        record_id: &str,
        at: DateTime<Utc>,
    ) -> MosaicResult<()> {
        let (t, u, o, r) = (
            tenant_id.to_string(),
            user_id.to_string(),
            object_id.to_string(),
            record_id.to_string(),
        );
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO recent_records (tenant_id, user_id, record_id, object_id, viewed_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant_id, user_id, record_id) DO UPDATE SET viewed_at = excluded.viewed_at, object_id = excluded.object_id",
                )
                .and_then(|mut st| st.execute(params![t, u, r, o, format_datetime(&at)]))
                .and_then(|_| {
                    conn.prepare_cached(
                        "DELETE FROM recent_records WHERE tenant_id = ?1 AND user_id = ?2 AND record_id NOT IN
                         (SELECT record_id FROM recent_records WHERE tenant_id = ?1 AND user_id = ?2 ORDER BY viewed_at DESC LIMIT ?3)",
                    )
                })
                .and_then(|mut st| st.execute(params![t, u, MAX_RECENT_PER_USER]))
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }

    async fn recent(
        &self,
        tenant_id: &str,
        user_id: &str,
        limit: usize,
    ) -> MosaicResult<Vec<RecentRow>> {
        let (t, u) = (tenant_id.to_string(), user_id.to_string());
        let limit = limit.min(MAX_RECENT_PER_USER as usize) as i64;
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT object_id, record_id, viewed_at FROM recent_records
                         WHERE tenant_id = ?1 AND user_id = ?2 ORDER BY viewed_at DESC LIMIT ?3",
                    )
                    .map_err(map_sql)?;
                let rows = st
                    .query_map(params![t, u, limit], |r| {
                        Ok(RecentRow {
                            object_id: r.get(0)?,
                            record_id: r.get(1)?,
                            viewed_at: crate::sqlite_meta::parse_ts(&r.get::<_, String>(2)?)?,
                        })
                    })
                    .map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sql)
            })
            .await
    }
}
