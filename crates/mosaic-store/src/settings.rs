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

/// A tenant's default (empty `user_id`) or a user's time zone and locale;
/// `None` falls back (user → tenant → UTC / en_US).
#[derive(Debug, Clone, PartialEq)]
pub struct LocaleRow {
    pub tenant_id: String,
    pub user_id: String,
    /// An IANA zone name (`Europe/Paris`).
    pub time_zone: Option<String>,
    /// `en_US`, `de_DE`, …
    pub locale: Option<String>,
    /// The tenant's row only: first month (1–12) of the fiscal year.
    pub fiscal_year_start_month: Option<u32>,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn setting(&self, key: &str) -> MosaicResult<Option<SettingRow>>;
    /// Creates or replaces the setting.
    async fn put_setting(&self, row: SettingRow) -> MosaicResult<()>;
    /// The tenant's default row and `user_id`'s row, those that exist.
    async fn locales(&self, tenant_id: &str, user_id: &str) -> MosaicResult<Vec<LocaleRow>>;
    /// Creates or replaces a tenant's (empty `user_id`) or a user's row.
    async fn put_locale(&self, row: LocaleRow) -> MosaicResult<()>;
}

pub const SETTINGS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS platform_settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS locale_settings (
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  time_zone TEXT,
  locale TEXT,
  updated_at TEXT NOT NULL,
  fiscal_year_start_month INTEGER,
  PRIMARY KEY (tenant_id, user_id)
);
"#;

/// Locale settings from before fiscal years gain `fiscal_year_start_month`
/// (unset: January).
pub(crate) fn add_fiscal_year_start(conn: &rusqlite::Connection) -> MosaicResult<()> {
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('locale_settings')")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(map_sql)?;
    if !cols.is_empty() && !cols.iter().any(|c| c == "fiscal_year_start_month") {
        conn.execute_batch(
            "ALTER TABLE locale_settings ADD COLUMN fiscal_year_start_month INTEGER",
        )
        .map_err(map_sql)?;
    }
    Ok(())
}

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

    async fn locales(&self, tenant_id: &str, user_id: &str) -> MosaicResult<Vec<LocaleRow>> {
        let (tenant_id, user_id) = (tenant_id.to_string(), user_id.to_string());
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT tenant_id, user_id, time_zone, locale, updated_at, fiscal_year_start_month
                         FROM locale_settings WHERE tenant_id = ?1 AND user_id IN ('', ?2)",
                    )
                    .map_err(map_sql)?;
                let rows = st
                    .query_map(params![tenant_id, user_id], |r| {
                        Ok(LocaleRow {
                            tenant_id: r.get(0)?,
                            user_id: r.get(1)?,
                            time_zone: r.get(2)?,
                            locale: r.get(3)?,
                            updated_at: crate::sqlite_meta::parse_ts(&r.get::<_, String>(4)?)?,
                            fiscal_year_start_month: r.get(5)?,
                        })
                    })
                    .map_err(map_sql)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(map_sql)
            })
            .await
    }

    async fn put_locale(&self, row: LocaleRow) -> MosaicResult<()> {
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO locale_settings (tenant_id, user_id, time_zone, locale, updated_at,
                       fiscal_year_start_month)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tenant_id, user_id) DO UPDATE SET time_zone = excluded.time_zone,
                       locale = excluded.locale, updated_at = excluded.updated_at,
                       fiscal_year_start_month = excluded.fiscal_year_start_month",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        row.tenant_id,
                        row.user_id,
                        row.time_zone,
                        row.locale,
                        format_datetime(&row.updated_at),
                        row.fiscal_year_start_month
                    ])
                })
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }
}
