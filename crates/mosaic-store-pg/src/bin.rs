//! The recycle bin on PostgreSQL, with the behaviour of the SQLite shard's
//! (`mosaic_store`'s `sqlite_bin`): which records a delete binned (when, by
//! whom, with which root), the lookup values it cleared, undelete and purge.
//! A binned record keeps its row in `object_records` with `is_deleted`; its
//! pivot rows are dropped until it comes back (search skips deleted rows).

use crate::pool::Step;
use crate::records::{put_pivots, row_of, select_records, shard_specs};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use mosaic_store::record_store::*;
use mosaic_types::FlexSlot;

/// Migration 3 of a shard: the bin's tables.
pub(crate) const RECORDS_BIN: &str = r#"
CREATE TABLE record_bin (
  tenant_id TEXT COLLATE "C" NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  root_id TEXT COLLATE "C" NOT NULL,
  deleted_at TIMESTAMPTZ NOT NULL,
  deleted_by TEXT NOT NULL,
  PRIMARY KEY (tenant_id, record_id)
);
CREATE INDEX record_bin_by_root ON record_bin (tenant_id, root_id);
CREATE INDEX record_bin_by_time ON record_bin (tenant_id, deleted_at, record_id);
CREATE INDEX record_bin_by_object ON record_bin (tenant_id, object_id, deleted_at);
CREATE TABLE record_bin_lookups (
  tenant_id TEXT COLLATE "C" NOT NULL,
  root_id TEXT COLLATE "C" NOT NULL,
  object_id TEXT COLLATE "C" NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  slot TEXT COLLATE "C" NOT NULL,
  value TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant_id, root_id, record_id, slot)
);
"#;

/// Records that `id` went to the bin with the delete of `root`.
pub(crate) async fn bin_record(
    tx: &Transaction<'_>,
    tenant: &str,
    object_id: &str,
    id: &str,
    root: &str,
    by: &str,
    at: &DateTime<Utc>,
) -> Step<()> {
    let st = tx
        .prepare_cached(
            "INSERT INTO record_bin (tenant_id, record_id, object_id, root_id, deleted_at, deleted_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, record_id) DO UPDATE SET \
             object_id = EXCLUDED.object_id, root_id = EXCLUDED.root_id, \
             deleted_at = EXCLUDED.deleted_at, deleted_by = EXCLUDED.deleted_by",
        )
        .await?;
    tx.execute(&st, &[&tenant, &id, &object_id, &root, at, &by])
        .await?;
    Ok(())
}

/// Keeps the lookup values about to be cleared because `id` goes to the
/// bin with `root` (the lookup's pivot rows name them).
pub(crate) async fn bin_lookups(
    tx: &Transaction<'_>,
    tenant: &str,
    root: &str,
    id: &str,
    r: &LookupRef,
) -> Step<()> {
    let st = tx
        .prepare_cached(
            "INSERT INTO record_bin_lookups (tenant_id, root_id, object_id, record_id, slot, value) \
             SELECT tenant_id, $5, object_id, record_id, slot, value FROM record_index \
             WHERE tenant_id = $1 AND object_id = $2 AND slot = $3 AND value = $4 ON CONFLICT DO NOTHING",
        )
        .await?;
    tx.execute(&st, &[&tenant, &r.object_id, &r.slot.column(), &id, &root])
        .await?;
    Ok(())
}

const ENTRY_COLS: &str = "record_id, object_id, root_id, deleted_at, deleted_by";

fn entry_of(r: &tokio_postgres::Row) -> Result<BinEntry, tokio_postgres::Error> {
    Ok(BinEntry {
        id: r.try_get(0)?,
        object_id: r.try_get(1)?,
        root_id: r.try_get(2)?,
        deleted_at: r.try_get(3)?,
        deleted_by: r.try_get(4)?,
    })
}

pub(crate) async fn bin_entry<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    id: &str,
    lock: bool,
) -> Step<Option<BinEntry>> {
    let sql = format!(
        "SELECT {ENTRY_COLS} FROM record_bin WHERE tenant_id = $1 AND record_id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let st = c.prepare_cached(&sql).await?;
    Ok(match c.query_opt(&st, &[&tenant, &id]).await? {
        Some(r) => Some(entry_of(&r)?),
        None => None,
    })
}

pub(crate) async fn bin_entries<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    f: &BinFilter,
) -> Step<Vec<BinEntry>> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLS} FROM record_bin WHERE tenant_id = $1 \
             AND ($2::text IS NULL OR object_id = $2) \
             AND ($3::timestamptz IS NULL OR deleted_at >= $3) \
             AND ($4::timestamptz IS NULL OR deleted_at < $4) \
             AND (NOT $5 OR root_id = record_id) \
             ORDER BY deleted_at DESC, record_id LIMIT $6"
        ))
        .await?;
    let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
    let rows = c
        .query(
            &st,
            &[&tenant, &f.object_id, &f.from, &f.to, &f.roots_only, &limit],
        )
        .await?;
    Ok(rows.iter().map(entry_of).collect::<Result<_, _>>()?)
}

/// Brings one binned record back: the flag and its pivot rows (a unique
/// key taken meanwhile fails).
async fn restore_record(
    tx: &Transaction<'_>,
    tenant: &str,
    object_id: &str,
    id: &str,
    op: &UndeleteOp,
) -> Step<()> {
    let st = tx
        .prepare_cached(
            "UPDATE object_records SET is_deleted = FALSE WHERE tenant_id = $1 AND object_id = $2 AND id = $3",
        )
        .await?;
    tx.execute(&st, &[&tenant, &object_id, &id]).await?;
    let from_op = op
        .indexes
        .iter()
        .find(|(o, _)| o == object_id)
        .map(|(_, s)| s.as_slice())
        .unwrap_or(&[]);
    let specs = merge_index_specs(from_op, &shard_specs(tx, tenant, object_id).await?);
    if specs.is_empty() {
        return Ok(());
    }
    let slots: Vec<FlexSlot> = specs.iter().map(|s| s.slot).collect();
    let st = tx
        .prepare_cached(&format!(
            "{} WHERE tenant_id = $1 AND object_id = $2 AND id = $3",
            select_records(&slots)
        ))
        .await?;
    let row = row_of(
        &tx.query_one(&st, &[&tenant, &object_id, &id]).await?,
        &slots,
    )?;
    for spec in &specs {
        if let Some(v) = row.value(spec.slot) {
            put_pivots(tx, tenant, object_id, id, spec, v).await?;
        }
    }
    Ok(())
}

/// Puts back the lookup values the delete of `root` cleared, on referring
/// records that are live and whose lookup is still empty.
async fn restore_lookups(tx: &Transaction<'_>, tenant: &str, root: &str) -> Step<()> {
    let st = tx
        .prepare_cached(
            "SELECT object_id, record_id, slot, value FROM record_bin_lookups WHERE tenant_id = $1 AND root_id = $2",
        )
        .await?;
    for r in tx.query(&st, &[&tenant, &root]).await? {
        let (object_id, record_id, slot, value): (String, String, String, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let Some(slot) = FlexSlot::from_column(&slot) else {
            continue;
        };
        let st = tx
            .prepare_cached(&format!(
                "UPDATE object_records SET {c} = $1 WHERE tenant_id = $2 AND object_id = $3 AND id = $4 \
                 AND is_deleted = FALSE AND {c} IS NULL",
                c = slot.column()
            ))
            .await?;
        let n = tx
            .execute(&st, &[&value, &tenant, &object_id, &record_id])
            .await?;
        if n > 0 {
            let st = tx
                .prepare_cached(
                    "INSERT INTO record_index (tenant_id, object_id, slot, value, record_id) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(
                &st,
                &[&tenant, &object_id, &slot.column(), &value, &record_id],
            )
            .await?;
        }
    }
    Ok(())
}

async fn check_parents(tx: &Transaction<'_>, tenant: &str, checks: &[RefCheck]) -> Step<()> {
    for c in checks {
        let st = tx
            .prepare_cached(
                "SELECT is_deleted FROM object_records WHERE tenant_id = $1 AND object_id = $2 AND id = $3 FOR KEY SHARE",
            )
            .await?;
        let deleted: Option<bool> = match tx.query_opt(&st, &[&tenant, &c.object_id, &c.id]).await?
        {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        };
        if let Some(err) = parent_error(c, deleted) {
            return Err(err.into());
        }
    }
    Ok(())
}

/// Undoes the delete of `op.id` (in the caller's transaction, which a
/// failure rolls back).
pub(crate) async fn undelete(tx: &Transaction<'_>, tenant: &str, op: &UndeleteOp) -> Step<usize> {
    let entry = bin_entry(tx, tenant, &op.id, true)
        .await?
        .filter(|e| e.object_id == op.object_id)
        .ok_or_else(|| not_in_bin(&op.id))?;
    if entry.root_id != op.id {
        return Err(cascaded_error(&op.id, &entry.root_id).into());
    }
    check_parents(tx, tenant, &op.ref_checks).await?;
    let st = tx
        .prepare_cached(
            "SELECT record_id, object_id FROM record_bin WHERE tenant_id = $1 AND root_id = $2 ORDER BY record_id FOR UPDATE",
        )
        .await?;
    let members: Vec<(String, String)> = tx
        .query(&st, &[&tenant, &op.id])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    for (id, object_id) in &members {
        restore_record(tx, tenant, object_id, id, op).await?;
    }
    restore_lookups(tx, tenant, &op.id).await?;
    for sql in [
        "DELETE FROM record_bin_lookups WHERE tenant_id = $1 AND root_id = $2",
        "DELETE FROM record_bin WHERE tenant_id = $1 AND root_id = $2",
    ] {
        let st = tx.prepare_cached(sql).await?;
        tx.execute(&st, &[&tenant, &op.id]).await?;
    }
    Ok(members.len())
}

/// Removes for good up to `limit` binned records deleted with `roots`.
pub(crate) async fn purge(
    tx: &Transaction<'_>,
    tenant: &str,
    roots: &[String],
    limit: usize,
) -> Step<usize> {
    let mut n = 0;
    for root in roots {
        if n >= limit {
            break;
        }
        let left = i64::try_from(limit - n).unwrap_or(i64::MAX);
        let st = tx
            .prepare_cached(
                "SELECT record_id FROM record_bin WHERE tenant_id = $1 AND root_id = $2 \
                 ORDER BY record_id LIMIT $3 FOR UPDATE",
            )
            .await?;
        let ids: Vec<String> = tx
            .query(&st, &[&tenant, root, &left])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        for sql in [
            "DELETE FROM object_records WHERE tenant_id = $1 AND id = ANY($2::text[]) AND is_deleted = TRUE",
            "DELETE FROM record_shares WHERE tenant_id = $1 AND record_id = ANY($2::text[])",
            "DELETE FROM field_history WHERE tenant_id = $1 AND record_id = ANY($2::text[])",
            "DELETE FROM record_bin WHERE tenant_id = $1 AND record_id = ANY($2::text[])",
        ] {
            let st = tx.prepare_cached(sql).await?;
            tx.execute(&st, &[&tenant, &ids]).await?;
        }
        n += ids.len();
        let st = tx
            .prepare_cached(
                "DELETE FROM record_bin_lookups WHERE tenant_id = $1 AND root_id = $2 \
                 AND NOT EXISTS (SELECT 1 FROM record_bin WHERE tenant_id = $1 AND root_id = $2)",
            )
            .await?;
        tx.execute(&st, &[&tenant, root]).await?;
    }
    Ok(n)
}

/// Ids of live records of an object last modified in `[start, end)`.
pub(crate) async fn updated_ids<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    object_id: &str,
    start: &DateTime<Utc>,
    end: &DateTime<Utc>,
    limit: usize,
) -> Step<Vec<String>> {
    let st = c
        .prepare_cached(
            "SELECT id FROM object_records WHERE tenant_id = $1 AND object_id = $2 AND is_deleted = FALSE \
             AND modified_at >= $3 AND modified_at < $4 ORDER BY modified_at, id LIMIT $5",
        )
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(c.query(&st, &[&tenant, &object_id, start, end, &limit])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}
