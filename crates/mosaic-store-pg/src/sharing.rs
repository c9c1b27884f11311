//! PostgreSQL implementation of [`ShareStore`]: `record_shares` in the
//! shard, beside the records, so a query's sharing predicate is plain SQL.

use crate::pool::{millis, shard_tx, with_client, Step};
use crate::records::{row_of, select_records, PgRecordStore};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use mosaic_store::record_store::RecordRow;
use mosaic_store::sharing::{Principal, ShareAccess, ShareCause, ShareRow, ShareStore};
use mosaic_types::{FlexSlot, MosaicError, MosaicResult};

const SHARE_COLS: &str =
    "id, object_id, record_id, principal, access, rule_id, created_by, created_at";

/// The stored access level (as SQLite's `record_shares.access`).
fn access_code(a: ShareAccess) -> i16 {
    match a {
        ShareAccess::Read => 1,
        ShareAccess::ReadWrite => 2,
    }
}

fn share_of(r: &tokio_postgres::Row) -> Result<ShareRow, tokio_postgres::Error> {
    let principal: String = r.try_get(3)?;
    let rule: Option<String> = r.try_get(5)?;
    let access: i16 = r.try_get(4)?;
    Ok(ShareRow {
        id: r.try_get(0)?,
        object_id: r.try_get(1)?,
        record_id: r.try_get(2)?,
        principal: Principal::from_key(&principal).unwrap_or(Principal::User(principal)),
        access: if access >= 2 {
            ShareAccess::ReadWrite
        } else {
            ShareAccess::Read
        },
        cause: rule.map_or(ShareCause::Manual, ShareCause::Rule),
        created_by: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

async fn insert_share<C: GenericClient + Sync>(c: &C, tenant: &str, s: &ShareRow) -> Step<()> {
    let rule = match &s.cause {
        ShareCause::Manual => None,
        ShareCause::Rule(r) => Some(r.as_str()),
    };
    let st = c
        .prepare_cached(
            "INSERT INTO record_shares (tenant_id, record_id, principal, id, object_id, access, rule_id, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?;
    c.execute(
        &st,
        &[
            &tenant,
            &s.record_id,
            &s.principal.key(),
            &s.id,
            &s.object_id,
            &access_code(s.access),
            &rule,
            &s.created_by,
            &millis(&s.created_at),
        ],
    )
    .await?;
    Ok(())
}

/// Replaces the rule-made shares of one record (a save's effect).
pub(crate) async fn set_rule_shares(
    tx: &Transaction<'_>,
    tenant: &str,
    record_id: &str,
    rows: &[ShareRow],
) -> Step<()> {
    let st = tx
        .prepare_cached(
            "DELETE FROM record_shares WHERE tenant_id = $1 AND record_id = $2 AND rule_id IS NOT NULL",
        )
        .await?;
    tx.execute(&st, &[&tenant, &record_id]).await?;
    for r in rows {
        insert_share(tx, tenant, r).await?;
    }
    Ok(())
}

#[async_trait]
impl ShareStore for PgRecordStore {
    async fn shares_of(&self, tenant_id: &str, record_id: &str) -> MosaicResult<Vec<ShareRow>> {
        let sql = format!(
            "SELECT {SHARE_COLS} FROM record_shares WHERE tenant_id = $1 AND record_id = $2 ORDER BY created_at, id"
        );
        with_client!(self.pool(), |c| {
            let st = c.prepare_cached(&sql).await?;
            Ok(c.query(&st, &[&tenant_id, &record_id])
                .await?
                .iter()
                .map(share_of)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn grant_share(&self, tenant_id: &str, row: ShareRow) -> MosaicResult<String> {
        shard_tx!(self.pool(), |tx| {
            // One manual share per (record, principal): grants of one
            // principal to one record wait for each other here.
            let lock = format!(
                "{tenant_id}\u{1f}share\u{1f}{}\u{1f}{}",
                row.record_id,
                row.principal.key()
            );
            let st = tx
                .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .await?;
            tx.execute(&st, &[&lock]).await?;
            let st = tx
                .prepare_cached(
                    "SELECT id FROM record_shares WHERE tenant_id = $1 AND record_id = $2 AND principal = $3 AND rule_id IS NULL",
                )
                .await?;
            let existing = tx
                .query_opt(&st, &[&tenant_id, &row.record_id, &row.principal.key()])
                .await?;
            match existing {
                Some(r) => {
                    let id: String = r.try_get(0)?;
                    let st = tx
                        .prepare_cached(
                            "UPDATE record_shares SET access = $3 WHERE tenant_id = $1 AND id = $2",
                        )
                        .await?;
                    tx.execute(&st, &[&tenant_id, &id, &access_code(row.access)])
                        .await?;
                    Ok(id)
                }
                None => {
                    insert_share(tx, tenant_id, &row).await?;
                    Ok(row.id.clone())
                }
            }
        })
    }

    async fn revoke_share(
        &self,
        tenant_id: &str,
        record_id: &str,
        share_id: &str,
    ) -> MosaicResult<bool> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "DELETE FROM record_shares WHERE tenant_id = $1 AND id = $2 AND record_id = $3 AND rule_id IS NULL",
                )
                .await?;
            Ok(c.execute(&st, &[&tenant_id, &share_id, &record_id]).await? > 0)
        })
    }

    async fn replace_rule_shares(
        &self,
        tenant_id: &str,
        rule_ids: &[String],
        record_ids: &[String],
        rows: Vec<ShareRow>,
    ) -> MosaicResult<()> {
        for r in &rows {
            if !matches!(&r.cause, ShareCause::Rule(id) if rule_ids.contains(id)) {
                return Err(MosaicError::internal(
                    "a recalculated share must come from a recalculated rule",
                ));
            }
        }
        shard_tx!(self.pool(), |tx| {
            let st = tx
                .prepare_cached(
                    "DELETE FROM record_shares WHERE tenant_id = $1 AND rule_id = ANY($2::text[]) AND record_id = ANY($3::text[])",
                )
                .await?;
            tx.execute(&st, &[&tenant_id, &rule_ids, &record_ids])
                .await?;
            for r in &rows {
                insert_share(tx, tenant_id, r).await?;
            }
            Ok(())
        })
    }

    async fn drop_rule_shares(&self, tenant_id: &str, rule_id: &str) -> MosaicResult<()> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached("DELETE FROM record_shares WHERE tenant_id = $1 AND rule_id = $2")
                .await?;
            c.execute(&st, &[&tenant_id, &rule_id]).await?;
            Ok(())
        })
    }

    async fn scan(
        &self,
        tenant_id: &str,
        object_id: &str,
        after: Option<&str>,
        limit: usize,
        slots: &[FlexSlot],
    ) -> MosaicResult<Vec<RecordRow>> {
        let sql = format!(
            "{} WHERE tenant_id = $1 AND object_id = $2 AND id > $3 AND is_deleted = FALSE ORDER BY id LIMIT $4",
            select_records(slots)
        );
        let after = after.unwrap_or("");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        with_client!(self.pool(), |c| {
            let st = c.prepare_cached(&sql).await?;
            Ok(c.query(&st, &[&tenant_id, &object_id, &after, &limit])
                .await?
                .iter()
                .map(|r| row_of(r, slots))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }
}
