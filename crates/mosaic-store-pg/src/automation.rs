//! PostgreSQL implementation of [`AutomationStore`] on a shard: the
//! transactional outbox and field history, written as [`Effect`]s inside the
//! record write's transaction.
//!
//! Delivery workers of any number of instances claim due entries with
//! `FOR UPDATE SKIP LOCKED`: concurrent claims never wait for each other
//! and never take the same entry; the lease (`lease_until`) keeps an entry
//! claimed after the claiming transaction commits, until the worker
//! completes it, records a failure or the lease runs out.

use crate::pool::{millis, shard_tx, with_client, Step};
use crate::records::{insert_with_effects, PgRecordStore, StepFuture};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use mosaic_store::automation::{DEAD, PENDING, TIME_TRIGGER};
use mosaic_store::{AutomationStore, Effect, HistoryRow, OutboxEntry, OutboxStats};
use mosaic_types::MosaicResult;

/// Longest `last_error` kept (characters), as on SQLite.
const MAX_ERROR_CHARS: usize = 2000;

pub(crate) fn apply_effects<'a>(
    tx: &'a Transaction<'a>,
    tenant: &'a str,
    effects: &'a [Effect],
) -> StepFuture<'a, ()> {
    Box::pin(async move {
        for e in effects {
            match e {
                Effect::Enqueue(o) => {
                    let st = tx
                        .prepare_cached(
                            "INSERT INTO outbox (tenant_id, id, kind, object_id, record_id, rule_id, action_id, payload, state, due_at, attempts, last_error, lease_until, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, NULL, NULL, $11, $11)",
                        )
                        .await?;
                    tx.execute(
                        &st,
                        &[
                            &tenant,
                            &o.id,
                            &o.kind,
                            &o.object_id,
                            &o.record_id,
                            &o.rule_id,
                            &o.action_id,
                            &o.payload,
                            &PENDING,
                            &millis(&o.due_at),
                            &millis(&o.created_at),
                        ],
                    )
                    .await?;
                }
                Effect::Unschedule { record_id, rule_id } => {
                    let st = tx
                        .prepare_cached(
                            "DELETE FROM outbox WHERE tenant_id = $1 AND record_id = $2 AND kind = $3 \
                             AND state = $4 AND ($5::text IS NULL OR rule_id = $5::text)",
                        )
                        .await?;
                    tx.execute(&st, &[&tenant, record_id, &TIME_TRIGGER, &PENDING, rule_id])
                        .await?;
                }
                Effect::History(h) => {
                    let st = tx
                        .prepare_cached(
                            "INSERT INTO field_history (tenant_id, record_id, id, object_id, field, old_value, new_value, changed_by, changed_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .await?;
                    tx.execute(
                        &st,
                        &[
                            &tenant,
                            &h.record_id,
                            &h.id,
                            &h.object_id,
                            &h.field,
                            &h.old_value,
                            &h.new_value,
                            &h.changed_by,
                            &millis(&h.changed_at),
                        ],
                    )
                    .await?;
                }
                Effect::Insert(op) => {
                    insert_with_effects(tx, tenant, op).await?;
                }
                Effect::RuleShares { record_id, rows } => {
                    crate::sharing::set_rule_shares(tx, tenant, record_id, rows).await?;
                }
            }
        }
        Ok(())
    })
}

const ENTRY_COLS: &str = "id, tenant_id, kind, object_id, record_id, rule_id, action_id, payload, state, due_at, attempts, last_error, created_at, updated_at";

fn entry_of(r: &tokio_postgres::Row) -> Result<OutboxEntry, tokio_postgres::Error> {
    let attempts: i64 = r.try_get(10)?;
    Ok(OutboxEntry {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        object_id: r.try_get(3)?,
        record_id: r.try_get(4)?,
        rule_id: r.try_get(5)?,
        action_id: r.try_get(6)?,
        payload: r.try_get(7)?,
        state: r.try_get(8)?,
        due_at: r.try_get(9)?,
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        last_error: r.try_get(11)?,
        created_at: r.try_get(12)?,
        updated_at: r.try_get(13)?,
    })
}

fn entries(rows: &[tokio_postgres::Row]) -> Step<Vec<OutboxEntry>> {
    Ok(rows.iter().map(entry_of).collect::<Result<Vec<_>, _>>()?)
}

async fn delete_entry<C: GenericClient + Sync>(c: &C, tenant: &str, id: &str) -> Step<()> {
    let st = c
        .prepare_cached("DELETE FROM outbox WHERE tenant_id = $1 AND id = $2")
        .await?;
    c.execute(&st, &[&tenant, &id]).await?;
    Ok(())
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl AutomationStore for PgRecordStore {
    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        let (now, until, limit) = (millis(&now), millis(&lease_until), limit_of(limit));
        // Platform-wide: the delivery worker serves every tenant of the shard.
        let sql = format!(
            "UPDATE outbox o SET lease_until = $1, lease_owner = $5 FROM (
                 SELECT tenant_id, id FROM outbox WHERE state = $2 AND due_at <= $3
                 AND (lease_until IS NULL OR lease_until <= $3)
                 AND tenant_id NOT IN (SELECT tenant_id FROM tenant_moves WHERE state <> 'journal')
                 ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) due
             WHERE o.tenant_id = due.tenant_id AND o.id = due.id
             RETURNING {}",
            ENTRY_COLS
                .split(", ")
                .map(|c| format!("o.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut claimed = with_client!(self.pool(), |c| {
            let st = c.prepare_cached(&sql).await?;
            entries(
                &c.query(&st, &[&until, &PENDING, &now, &limit, &owner])
                    .await?,
            )
        })?;
        claimed.sort_by(|a, b| a.due_at.cmp(&b.due_at).then(a.id.cmp(&b.id)));
        Ok(claimed)
    }

    async fn release_leases(&self, owner: &str) -> MosaicResult<u64> {
        with_client!(self.pool(), |c| {
            // Platform-wide: a stopping instance's own leases, in every tenant.
            let st = c
                .prepare_cached(
                    "UPDATE outbox SET lease_until = NULL, lease_owner = NULL WHERE lease_owner = $1 AND lease_until IS NOT NULL AND tenant_id NOT IN (SELECT tenant_id FROM tenant_moves WHERE state <> 'journal')",
                )
                .await?;
            Ok(c.execute(&st, &[&owner]).await?)
        })
    }

    async fn complete(&self, tenant_id: &str, id: &str) -> MosaicResult<()> {
        with_client!(self.pool(), |c| delete_entry(c, tenant_id, id).await)
    }

    async fn complete_with(
        &self,
        tenant_id: &str,
        id: &str,
        effects: Vec<Effect>,
    ) -> MosaicResult<()> {
        shard_tx!(self.pool(), |tx| {
            apply_effects(tx, tenant_id, &effects).await?;
            delete_entry(tx, tenant_id, id).await
        })
    }

    async fn failed(
        &self,
        tenant_id: &str,
        id: &str,
        attempts: u32,
        error: &str,
        due_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> MosaicResult<()> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let (state, due) = match due_at {
            Some(d) => (PENDING, Some(millis(&d))),
            None => (DEAD, None),
        };
        let (attempts, now) = (i64::from(attempts), millis(&now));
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "UPDATE outbox SET state = $1, due_at = COALESCE($2, due_at), attempts = $3, \
                     last_error = $4, lease_until = NULL, lease_owner = NULL, updated_at = $5 \
                     WHERE tenant_id = $6 AND id = $7",
                )
                .await?;
            c.execute(
                &st,
                &[&state, &due, &attempts, &error, &now, &tenant_id, &id],
            )
            .await?;
            Ok(())
        })
    }

    async fn dead_letters(
        &self,
        tenant_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM outbox WHERE tenant_id = $1 AND state = $2 \
             AND ($3::text IS NULL OR id < $3::text) ORDER BY id DESC LIMIT $4"
        );
        let limit = limit_of(limit);
        with_client!(self.pool(), |c| {
            let st = c.prepare_cached(&sql).await?;
            entries(&c.query(&st, &[&tenant_id, &DEAD, &before, &limit]).await?)
        })
    }

    async fn entry(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<OutboxEntry>> {
        let sql = format!("SELECT {ENTRY_COLS} FROM outbox WHERE tenant_id = $1 AND id = $2");
        with_client!(self.pool(), |c| {
            let st = c.prepare_cached(&sql).await?;
            Ok(entries(&c.query(&st, &[&tenant_id, &id]).await?)?
                .into_iter()
                .next())
        })
    }

    async fn replay(&self, tenant_id: &str, id: &str, now: DateTime<Utc>) -> MosaicResult<bool> {
        let now = millis(&now);
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "UPDATE outbox SET state = $1, attempts = 0, due_at = $2, lease_until = NULL, updated_at = $2 \
                     WHERE tenant_id = $3 AND id = $4 AND state = $5",
                )
                .await?;
            Ok(c.execute(&st, &[&PENDING, &now, &tenant_id, &id, &DEAD])
                .await?
                > 0)
        })
    }

    async fn discard(&self, tenant_id: &str, id: &str) -> MosaicResult<bool> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "DELETE FROM outbox WHERE tenant_id = $1 AND id = $2 AND state = $3",
                )
                .await?;
            Ok(c.execute(&st, &[&tenant_id, &id, &DEAD]).await? > 0)
        })
    }

    async fn pending_for_record(
        &self,
        tenant_id: &str,
        record_id: &str,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        let sql = format!(
            "SELECT {ENTRY_COLS} FROM outbox WHERE tenant_id = $1 AND record_id = $2 AND state = $3 ORDER BY due_at, id"
        );
        with_client!(self.pool(), |c| {
            let st = c.prepare_cached(&sql).await?;
            entries(&c.query(&st, &[&tenant_id, &record_id, &PENDING]).await?)
        })
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> MosaicResult<OutboxStats> {
        let now = millis(&now);
        with_client!(self.pool(), |c| {
            // Platform-wide totals for the operator's gauges.
            let st = c
                .prepare_cached(
                    "SELECT COUNT(*) FILTER (WHERE state = $1), \
                     MIN(due_at) FILTER (WHERE state = $1 AND due_at <= $2), \
                     COUNT(*) FILTER (WHERE state = $3) FROM outbox",
                )
                .await?;
            let r = c.query_one(&st, &[&PENDING, &now, &DEAD]).await?;
            let (pending, oldest, dead): (i64, Option<DateTime<Utc>>, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            Ok(OutboxStats {
                pending: u64::try_from(pending).unwrap_or(0),
                oldest_due: oldest,
                dead: u64::try_from(dead).unwrap_or(0),
            })
        })
    }

    async fn history(
        &self,
        tenant_id: &str,
        record_id: &str,
        limit: usize,
    ) -> MosaicResult<Vec<HistoryRow>> {
        let limit = limit_of(limit);
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "SELECT id, object_id, record_id, field, old_value, new_value, changed_by, changed_at \
                     FROM field_history WHERE tenant_id = $1 AND record_id = $2 ORDER BY id DESC LIMIT $3",
                )
                .await?;
            let rows = c.query(&st, &[&tenant_id, &record_id, &limit]).await?;
            Ok(rows
                .iter()
                .map(|r| {
                    Ok(HistoryRow {
                        id: r.try_get(0)?,
                        object_id: r.try_get(1)?,
                        record_id: r.try_get(2)?,
                        field: r.try_get(3)?,
                        old_value: r.try_get(4)?,
                        new_value: r.try_get(5)?,
                        changed_by: r.try_get(6)?,
                        changed_at: r.try_get(7)?,
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?)
        })
    }
}
