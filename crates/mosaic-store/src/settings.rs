//! Platform-wide settings: small JSON documents by key, kept in the metadata
//! database so every server instance sharing it sees the same values (the
//! maintenance switch is one). Not tenant data: no tenant predicate.

use crate::sqlite::{map_sql, SqliteDb};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::value::format_datetime;
use mosaic_types::MosaicResult;
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;

/// A stored setting: its JSON value and when it last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingRow {
    pub key: String,
    pub value: String,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn setting(&self, key: &str) -> MosaicResult<Option<SettingRow>>;
    /// Creates or replaces the setting.
    async fn put_setting(&self, row: SettingRow) -> MosaicResult<()>;
}

pub const SETTINGS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS platform_settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
"#;

/// Settings in an embedded metadata database.
pub struct SqliteSettingsStore {
    db: Arc<SqliteDb>,
}

impl SqliteSettingsStore {
    /// Settings kept in `db`, the metadata database (whose schema has
    /// [`SETTINGS_SCHEMA`]).
    pub fn new(db: Arc<SqliteDb>) -> SqliteSettingsStore {
        SqliteSettingsStore { db }
    }
}

#[async_trait]
impl SettingsStore for SqliteSettingsStore {
    async fn setting(&self, key: &str) -> MosaicResult<Option<SettingRow>> {
        let key = key.to_string();
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT key, value, updated_at FROM platform_settings WHERE key = ?1",
                )
                .and_then(|mut st| {
                    st.query_row(params![key], |r| {
                        Ok(SettingRow {
                            key: r.get(0)?,
                            value: r.get(1)?,
                            updated_at: crate::sqlite_meta::parse_ts(&r.get::<_, String>(2)?)?,
                        })
                    })
                    .optional()
                })
                .map_err(map_sql)
            })
            .await
    }

    async fn put_setting(&self, row: SettingRow) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO platform_settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .and_then(|mut st| {
                    st.execute(params![row.key, row.value, format_datetime(&row.updated_at)])
                })
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }
}
