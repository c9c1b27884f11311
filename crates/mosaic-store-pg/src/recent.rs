//! PostgreSQL implementation of [`RecentStore`] (in the metadata database).

use crate::meta::PgMetaStore;
use crate::pool::{millis, with_client};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_store::recent::{RecentRow, RecentStore, MAX_RECENT_PER_USER};
use mosaic_types::MosaicResult;

#[async_trait]
impl RecentStore for PgMetaStore {
    async fn touch_recent(
        &self,
        tenant_id: &str,
        user_id: &str,
        object_id: &str,
        record_id: &str,
        at: DateTime<Utc>,
    ) -> MosaicResult<()> {
        let at = millis(&at);
        with_client!(self.pool(), |c| {
            c.execute(
                "INSERT INTO recent_records (tenant_id, user_id, record_id, object_id, viewed_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, user_id, record_id) DO UPDATE SET viewed_at = EXCLUDED.viewed_at, object_id = EXCLUDED.object_id",
                &[&tenant_id, &user_id, &record_id, &object_id, &at],
            )
            .await?;
            c.execute(
                "DELETE FROM recent_records WHERE tenant_id = $1 AND user_id = $2 AND record_id NOT IN \
                 (SELECT record_id FROM recent_records WHERE tenant_id = $1 AND user_id = $2 ORDER BY viewed_at DESC LIMIT $3)",
                &[&tenant_id, &user_id, &MAX_RECENT_PER_USER],
            )
            .await?;
            Ok(())
        })
    }

    async fn recent(
        &self,
        tenant_id: &str,
        user_id: &str,
        limit: usize,
    ) -> MosaicResult<Vec<RecentRow>> {
        let limit = limit.min(MAX_RECENT_PER_USER as usize) as i64;
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "SELECT object_id, record_id, viewed_at FROM recent_records \
                     WHERE tenant_id = $1 AND user_id = $2 ORDER BY viewed_at DESC LIMIT $3",
                )
                .await?;
            let rows = c.query(&st, &[&tenant_id, &user_id, &limit]).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(RecentRow {
                    object_id: r.try_get(0)?,
                    record_id: r.try_get(1)?,
                    viewed_at: r.try_get(2)?,
                });
            }
            Ok(out)
        })
    }
}
