//! PostgreSQL implementations of [`ShardDirectory`] and [`SettingsStore`]
//! in the metadata database.

use crate::meta::PgMetaStore;
use crate::pool::{millis, with_client, write_tx};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use mosaic_store::settings::{LocaleRow, SettingRow, SettingsStore};
use mosaic_store::shards::{check_shard, Placement, ShardDirectory, ShardRow};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use tokio_postgres::Row;

const SHARD_COLS: &str = "id, url, grp, max_tenants, max_records, status, created_at";

fn shard_row(r: &Row) -> Result<ShardRow, tokio_postgres::Error> {
    Ok(ShardRow {
        id: r.try_get(0)?,
        url: r.try_get(1)?,
        group: r.try_get(2)?,
        max_tenants: r.try_get::<_, Option<i64>>(3)?.map(|v| v.max(0) as u64),
        max_records: r.try_get::<_, Option<i64>>(4)?.map(|v| v.max(0) as u64),
        status: r.try_get(5)?,
        created_at: r.try_get(6)?,
    })
}

fn placement_row(r: &Row) -> Result<Placement, tokio_postgres::Error> {
    Ok(Placement {
        tenant_id: r.try_get(0)?,
        shard_id: r.try_get(1)?,
        version: r.try_get(2)?,
    })
}

fn limit(v: Option<u64>) -> Option<i64> {
    v.map(|x| i64::try_from(x).unwrap_or(i64::MAX))
}

const PLACEMENT: &str =
    "SELECT tenant_id, shard_id, version FROM tenant_shards WHERE tenant_id = $1";

const BUMP: &str = "UPDATE directory_version SET version = version + 1 WHERE only_row = 1";

#[async_trait]
impl ShardDirectory for PgMetaStore {
    async fn add_shard(&self, row: ShardRow) -> MosaicResult<()> {
        check_shard(&row)?;
        let created = millis(&row.created_at);
        write_tx!(self.pool(), |tx| {
            let st = tx
                .prepare_cached("SELECT 1 FROM shards WHERE id = $1")
                .await?;
            if tx.query_opt(&st, &[&row.id]).await?.is_some() {
                return Err(MosaicError::field(
                    ErrorCode::DUPLICATE_VALUE,
                    "id",
                    format!("a shard '{}' is already registered", row.id),
                )
                .into());
            }
            let st = tx
                .prepare_cached(
                    "INSERT INTO shards (id, url, grp, max_tenants, max_records, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &row.id,
                    &row.url,
                    &row.group,
                    &limit(row.max_tenants),
                    &limit(row.max_records),
                    &row.status,
                    &created,
                ],
            )
            .await?;
            tx.execute(BUMP, &[]).await?;
            Ok(())
        })
    }

    async fn shards(&self) -> MosaicResult<Vec<ShardRow>> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(&format!("SELECT {SHARD_COLS} FROM shards ORDER BY id"))
                .await?;
            let rows = c.query(&st, &[]).await?;
            Ok(rows.iter().map(shard_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn set_shard_status(&self, id: &str, status: &str) -> MosaicResult<()> {
        if !matches!(status, "active" | "draining") {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "status",
                "a shard's status is active or draining",
            ));
        }
        write_tx!(self.pool(), |tx| {
            let n = tx
                .execute(
                    "UPDATE shards SET status = $2 WHERE id = $1",
                    &[&id, &status],
                )
                .await?;
            if n == 0 {
                return Err(MosaicError::not_found(format!("no shard '{id}'")).into());
            }
            tx.execute(BUMP, &[]).await?;
            Ok(())
        })
    }

    async fn placement(&self, tenant_id: &str) -> MosaicResult<Option<Placement>> {
        with_client!(self.pool(), |c| {
            let st = c.prepare_cached(PLACEMENT).await?;
            Ok(match c.query_opt(&st, &[&tenant_id]).await? {
                Some(r) => Some(placement_row(&r)?),
                None => None,
            })
        })
    }

    async fn placements(&self) -> MosaicResult<Vec<Placement>> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "SELECT tenant_id, shard_id, version FROM tenant_shards ORDER BY tenant_id",
                )
                .await?;
            let rows = c.query(&st, &[]).await?;
            Ok(rows
                .iter()
                .map(placement_row)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn assign(&self, tenant_id: &str, shard_id: &str) -> MosaicResult<Placement> {
        write_tx!(self.pool(), |tx| {
            let n = tx
                .execute(
                    "INSERT INTO tenant_shards (tenant_id, shard_id, version) VALUES ($1, $2, 1) ON CONFLICT (tenant_id) DO NOTHING",
                    &[&tenant_id, &shard_id],
                )
                .await?;
            if n > 0 {
                tx.execute(BUMP, &[]).await?;
            }
            let r = tx.query_one(PLACEMENT, &[&tenant_id]).await?;
            Ok(placement_row(&r)?)
        })
    }

    async fn reassign(
        &self,
        tenant_id: &str,
        shard_id: &str,
        expected_version: i64,
    ) -> MosaicResult<Placement> {
        write_tx!(self.pool(), |tx| {
            let n = tx
                .execute(
                    "UPDATE tenant_shards SET shard_id = $2, version = version + 1 WHERE tenant_id = $1 AND version = $3",
                    &[&tenant_id, &shard_id, &expected_version],
                )
                .await?;
            if n == 0 {
                return Err(MosaicError::new(
                    ErrorCode::CONFLICT,
                    format!("tenant {tenant_id}'s placement changed meanwhile; reload and retry"),
                )
                .into());
            }
            tx.execute(BUMP, &[]).await?;
            let r = tx.query_one(PLACEMENT, &[&tenant_id]).await?;
            Ok(placement_row(&r)?)
        })
    }

    async fn tenant_count(&self) -> MosaicResult<u64> {
        with_client!(self.pool(), |c| {
            let n: i64 = c
                .query_one("SELECT count(*) FROM tenants", &[])
                .await?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }

    async fn version(&self) -> MosaicResult<i64> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached("SELECT version FROM directory_version WHERE only_row = 1")
                .await?;
            Ok(c.query_one(&st, &[]).await?.try_get(0)?)
        })
    }
}

#[async_trait]
impl SettingsStore for PgMetaStore {
    async fn setting(&self, key: &str) -> MosaicResult<Option<SettingRow>> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "SELECT key, value, updated_at FROM platform_settings WHERE key = $1",
                )
                .await?;
            Ok(match c.query_opt(&st, &[&key]).await? {
                Some(r) => Some(SettingRow {
                    key: r.try_get(0)?,
                    value: r.try_get(1)?,
                    updated_at: r.try_get(2)?,
                }),
                None => None,
            })
        })
    }

    async fn put_setting(&self, row: SettingRow) -> MosaicResult<()> {
        let at = millis(&row.updated_at);
        with_client!(self.pool(), |c| {
            c.execute(
                "INSERT INTO platform_settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
                &[&row.key, &row.value, &at],
            )
            .await?;
            Ok(())
        })
    }

    async fn locales(&self, tenant_id: &str, user_id: &str) -> MosaicResult<Vec<LocaleRow>> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "SELECT tenant_id, user_id, time_zone, locale, updated_at, fiscal_year_start_month FROM locale_settings WHERE tenant_id = $1 AND user_id IN ('', $2)",
                )
                .await?;
            let mut out = Vec::new();
            for r in c.query(&st, &[&tenant_id, &user_id]).await? {
                out.push(LocaleRow {
                    tenant_id: r.try_get(0)?,
                    user_id: r.try_get(1)?,
                    time_zone: r.try_get(2)?,
                    locale: r.try_get(3)?,
                    updated_at: r.try_get(4)?,
                    fiscal_year_start_month: r
                        .try_get::<_, Option<i32>>(5)?
                        .and_then(|m| u32::try_from(m).ok()),
                });
            }
            Ok(out)
        })
    }

    async fn put_locale(&self, row: LocaleRow) -> MosaicResult<()> {
        let at = millis(&row.updated_at);
        let fiscal = row
            .fiscal_year_start_month
            .and_then(|m| i32::try_from(m).ok());
        with_client!(self.pool(), |c| {
            c.execute(
                "INSERT INTO locale_settings (tenant_id, user_id, time_zone, locale, updated_at, fiscal_year_start_month) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, user_id) DO UPDATE SET time_zone = EXCLUDED.time_zone, locale = EXCLUDED.locale, updated_at = EXCLUDED.updated_at, fiscal_year_start_month = EXCLUDED.fiscal_year_start_month",
                &[&row.tenant_id, &row.user_id, &row.time_zone, &row.locale, &at, &fiscal],
            )
            .await?;
            Ok(())
        })
    }
}
