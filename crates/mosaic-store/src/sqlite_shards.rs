//! SQLite implementation of [`ShardDirectory`] in the metadata database.

use crate::shards::*;
use crate::sqlite::map_sql;
use crate::sqlite_meta::{parse_ts, SqliteMetaStore};
use async_trait::async_trait;
use mosaic_types::value::format_datetime;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use rusqlite::{params, Connection, OptionalExtension};

pub(crate) const SHARDS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS shards (
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  grp TEXT NOT NULL,
  max_tenants INTEGER,
  max_records INTEGER,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenant_shards (
  tenant_id TEXT PRIMARY KEY,
  shard_id TEXT NOT NULL,
  version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tenant_shards_shard ON tenant_shards(shard_id);
CREATE TABLE IF NOT EXISTS directory_version (only INTEGER PRIMARY KEY CHECK (only = 1), version INTEGER NOT NULL);
INSERT OR IGNORE INTO directory_version VALUES (1, 0);
"#;

fn bump(conn: &Connection) -> MosaicResult<()> {
    conn.execute(
        "UPDATE directory_version SET version = version + 1 WHERE only = 1",
        [],
    )
    .map_err(map_sql)?;
    Ok(())
}

fn shard_of(r: &rusqlite::Row) -> rusqlite::Result<ShardRow> {
    Ok(ShardRow {
        id: r.get(0)?,
        url: r.get(1)?,
        group: r.get(2)?,
        max_tenants: r.get::<_, Option<i64>>(3)?.map(|v| v.max(0) as u64),
        max_records: r.get::<_, Option<i64>>(4)?.map(|v| v.max(0) as u64),
        status: r.get(5)?,
        created_at: parse_ts(&r.get::<_, String>(6)?)?,
    })
}

fn placement_of(r: &rusqlite::Row) -> rusqlite::Result<Placement> {
    Ok(Placement {
        tenant_id: r.get(0)?,
        shard_id: r.get(1)?,
        version: r.get(2)?,
    })
}

fn get_placement(conn: &Connection, tenant: &str) -> MosaicResult<Option<Placement>> {
    conn.prepare_cached(
        "SELECT tenant_id, shard_id, version FROM tenant_shards WHERE tenant_id = ?1",
    )
    .and_then(|mut st| st.query_row([tenant], placement_of).optional())
    .map_err(map_sql)
}

fn limit(v: Option<u64>) -> Option<i64> {
    v.map(|x| i64::try_from(x).unwrap_or(i64::MAX))
}

#[async_trait]
impl ShardDirectory for SqliteMetaStore {
    async fn add_shard(&self, row: ShardRow) -> MosaicResult<()> {
        check_shard(&row)?;
        self.db()
            .write(move |conn| {
                let taken: Option<String> = conn
                    .query_row("SELECT id FROM shards WHERE id = ?1", [&row.id], |r| r.get(0))
                    .optional()
                    .map_err(map_sql)?;
                if taken.is_some() {
                    return Err(MosaicError::field(
                        ErrorCode::DUPLICATE_VALUE,
                        "id",
                        format!("a shard '{}' is already registered", row.id),
                    ));
                }
                conn.execute(
                    "INSERT INTO shards (id, url, grp, max_tenants, max_records, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        row.id,
                        row.url,
                        row.group,
                        limit(row.max_tenants),
                        limit(row.max_records),
                        row.status,
                        format_datetime(&row.created_at)
                    ],
                )
                .map_err(map_sql)?;
                bump(conn)
            })
            .await
    }

    async fn shards(&self) -> MosaicResult<Vec<ShardRow>> {
        self.db()
            .read(|conn| {
                let mut st = conn
                    .prepare_cached("SELECT id, url, grp, max_tenants, max_records, status, created_at FROM shards ORDER BY id")
                    .map_err(map_sql)?;
                let rows = st.query_map([], shard_of).map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sql)
            })
            .await
    }

    async fn set_shard_status(&self, id: &str, status: &str) -> MosaicResult<()> {
        if !matches!(status, "active" | "draining") {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "status",
                "a shard's status is active or draining",
            ));
        }
        let (id, status) = (id.to_string(), status.to_string());
        self.db()
            .write(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE shards SET status = ?2 WHERE id = ?1",
                        params![id, status],
                    )
                    .map_err(map_sql)?;
                if n == 0 {
                    return Err(MosaicError::not_found(format!("no shard '{id}'")));
                }
                bump(conn)
            })
            .await
    }

    async fn placement(&self, tenant_id: &str) -> MosaicResult<Option<Placement>> {
        let t = tenant_id.to_string();
        self.db().read(move |conn| get_placement(conn, &t)).await
    }

    async fn placements(&self) -> MosaicResult<Vec<Placement>> {
        self.db()
            .read(|conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT tenant_id, shard_id, version FROM tenant_shards ORDER BY tenant_id",
                    )
                    .map_err(map_sql)?;
                let rows = st.query_map([], placement_of).map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sql)
            })
            .await
    }

    async fn assign(&self, tenant_id: &str, shard_id: &str) -> MosaicResult<Placement> {
        let (t, s) = (tenant_id.to_string(), shard_id.to_string());
        self.db()
            .write(move |conn| {
                if let Some(p) = get_placement(conn, &t)? {
                    return Ok(p);
                }
                conn.execute(
                    "INSERT INTO tenant_shards (tenant_id, shard_id, version) VALUES (?1, ?2, 1)",
                    params![t, s],
                )
                .map_err(map_sql)?;
                bump(conn)?;
                Ok(Placement {
                    tenant_id: t,
                    shard_id: s,
                    version: 1,
                })
            })
            .await
    }

    async fn reassign(
        &self,
        tenant_id: &str,
        shard_id: &str,
        expected_version: i64,
    ) -> MosaicResult<Placement> {
        let (t, s) = (tenant_id.to_string(), shard_id.to_string());
        self.db()
            .write(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE tenant_shards SET shard_id = ?2, version = version + 1 WHERE tenant_id = ?1 AND version = ?3",
                        params![t, s, expected_version],
                    )
                    .map_err(map_sql)?;
                if n == 0 {
                    return Err(MosaicError::new(
                        ErrorCode::CONFLICT,
                        format!("tenant {t}'s placement changed meanwhile; reload and retry"),
                    ));
                }
                bump(conn)?;
                get_placement(conn, &t)?
                    .ok_or_else(|| MosaicError::internal("placement vanished"))
            })
            .await
    }

    async fn version(&self) -> MosaicResult<i64> {
        self.db()
            .read(|conn| {
                conn.query_row(
                    "SELECT version FROM directory_version WHERE only = 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(map_sql)
            })
            .await
    }

    async fn tenant_count(&self) -> MosaicResult<u64> {
        SqliteMetaStore::tenant_count(self).await
    }
}
