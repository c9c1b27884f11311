//! PostgreSQL implementation of [`BulkStore`] (in the metadata database;
//! decision 0035).

use crate::meta::PgMetaStore;
use crate::migrate::Migration;
use crate::pool::{millis, shard_tx, with_client, write_tx};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_store::bulk::{BulkChunk, BulkJobRow, BulkResultRow, BulkStore};
use mosaic_types::MosaicResult;

/// The Bulk API's tables, a component of the metadata database with its own
/// numbering.
pub const BULK_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "bulk API jobs, uploads and results",
    sql: r#"
CREATE TABLE bulk_jobs (
  tenant_id TEXT NOT NULL,
  id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  operation TEXT NOT NULL,
  object TEXT NOT NULL,
  external_id_field TEXT,
  state TEXT NOT NULL,
  column_delimiter TEXT NOT NULL,
  line_ending TEXT NOT NULL,
  api_version TEXT NOT NULL,
  query TEXT,
  header TEXT,
  data_bytes BIGINT NOT NULL DEFAULT 0,
  cursor BIGINT NOT NULL DEFAULT 0,
  chunk_no BIGINT NOT NULL DEFAULT 0,
  processed BIGINT NOT NULL DEFAULT 0,
  failed BIGINT NOT NULL DEFAULT 0,
  retries BIGINT NOT NULL DEFAULT 0,
  processing_ms BIGINT NOT NULL DEFAULT 0,
  error_message TEXT,
  created_at TIMESTAMPTZ NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL,
  lease_owner TEXT,
  lease_until TIMESTAMPTZ,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX bulk_jobs_waiting ON bulk_jobs (state, created_at);
CREATE TABLE bulk_job_data (
  tenant_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  bytes BYTEA NOT NULL,
  PRIMARY KEY (tenant_id, job_id, seq)
);
CREATE TABLE bulk_job_results (
  tenant_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  first_record BIGINT NOT NULL,
  records BIGINT NOT NULL,
  successes TEXT NOT NULL,
  failures TEXT NOT NULL,
  PRIMARY KEY (tenant_id, job_id, seq)
);
"#,
}];

const JOB_COLUMNS: &str = "tenant_id, id, user_id, kind, operation, object, external_id_field, state, column_delimiter, line_ending, api_version, query, header, data_bytes, cursor, chunk_no, processed, failed, retries, processing_ms, error_message, created_at, updated_at, lease_owner";

fn job_row(r: &tokio_postgres::Row) -> Result<BulkJobRow, tokio_postgres::Error> {
    Ok(BulkJobRow {
        tenant_id: r.try_get(0)?,
        id: r.try_get(1)?,
        user_id: r.try_get(2)?,
        kind: r.try_get(3)?,
        operation: r.try_get(4)?,
        object: r.try_get(5)?,
        external_id_field: r.try_get(6)?,
        state: r.try_get(7)?,
        column_delimiter: r.try_get(8)?,
        line_ending: r.try_get(9)?,
        api_version: r.try_get(10)?,
        query: r.try_get(11)?,
        header: r.try_get(12)?,
        data_bytes: r.try_get(13)?,
        cursor: r.try_get(14)?,
        chunk_no: r.try_get(15)?,
        processed: r.try_get(16)?,
        failed: r.try_get(17)?,
        retries: r.try_get(18)?,
        processing_ms: r.try_get(19)?,
        error_message: r.try_get(20)?,
        created_at: r.try_get(21)?,
        updated_at: r.try_get(22)?,
        lease_owner: r.try_get(23)?,
    })
}

#[async_trait]
impl BulkStore for PgMetaStore {
    async fn insert_bulk_job(&self, job: &BulkJobRow, open_limit: i64) -> MosaicResult<bool> {
        let j = job;
        let (created, updated) = (millis(&j.created_at), millis(&j.updated_at));
        write_tx!(self.pool(), |tx| {
            let open: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM bulk_jobs WHERE tenant_id = $1 AND state IN ('Open', 'UploadComplete', 'InProgress')",
                    &[&j.tenant_id],
                )
                .await?
                .try_get(0)?;
            if open >= open_limit {
                return Ok(false);
            }
            tx.execute(
                &format!("INSERT INTO bulk_jobs (tenant_id, {}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)", &JOB_COLUMNS["tenant_id, ".len()..]),
                &[
                    &j.tenant_id, &j.id, &j.user_id, &j.kind, &j.operation, &j.object,
                    &j.external_id_field, &j.state, &j.column_delimiter, &j.line_ending,
                    &j.api_version, &j.query, &j.header, &j.data_bytes, &j.cursor, &j.chunk_no,
                    &j.processed, &j.failed, &j.retries, &j.processing_ms, &j.error_message,
                    &created, &updated, &j.lease_owner,
                ],
            )
            .await?;
            Ok(true)
        })
    }

    async fn bulk_job(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<BulkJobRow>> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE tenant_id = $1 AND id = $2"
                ))
                .await?;
            match c.query_opt(&st, &[&tenant_id, &id]).await? {
                Some(r) => Ok(Some(job_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn bulk_jobs(
        &self,
        tenant_id: &str,
        kind: &str,
        after: Option<&str>,
        limit: i64,
    ) -> MosaicResult<Vec<BulkJobRow>> {
        let after = after.unwrap_or("");
        with_client!(self.pool(), |c| {
            let rows = c
                .query(
                    &format!("SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE tenant_id = $1 AND kind = $2 AND id > $3 ORDER BY id LIMIT $4"),
                    &[&tenant_id, &kind, &after, &limit],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(job_row(&r)?);
            }
            Ok(out)
        })
    }

    async fn set_bulk_state(
        &self,
        tenant_id: &str,
        id: &str,
        from: &[&str],
        to: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> MosaicResult<bool> {
        let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
        let now = millis(&now);
        with_client!(self.pool(), |c| {
            let n = c
                .execute(
                    "UPDATE bulk_jobs SET state = $3, error_message = COALESCE($4, error_message), updated_at = $5 \
                     WHERE tenant_id = $1 AND id = $2 AND state = ANY($6)",
                    &[&tenant_id, &id, &to, &error, &now, &from],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn delete_bulk_job(&self, tenant_id: &str, id: &str) -> MosaicResult<bool> {
        write_tx!(self.pool(), |tx| {
            tx.execute(
                "DELETE FROM bulk_job_data WHERE tenant_id = $1 AND job_id = $2",
                &[&tenant_id, &id],
            )
            .await?;
            tx.execute(
                "DELETE FROM bulk_job_results WHERE tenant_id = $1 AND job_id = $2",
                &[&tenant_id, &id],
            )
            .await?;
            let n = tx
                .execute(
                    "DELETE FROM bulk_jobs WHERE tenant_id = $1 AND id = $2",
                    &[&tenant_id, &id],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn put_bulk_data(
        &self,
        tenant_id: &str,
        id: &str,
        seq: i64,
        bytes: Vec<u8>,
    ) -> MosaicResult<()> {
        with_client!(self.pool(), |c| {
            c.execute(
                "INSERT INTO bulk_job_data (tenant_id, job_id, seq, bytes) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, job_id, seq) DO UPDATE SET bytes = EXCLUDED.bytes",
                &[&tenant_id, &id, &seq, &bytes],
            )
            .await?;
            Ok(())
        })
    }

    async fn clear_bulk_data(&self, tenant_id: &str, id: &str) -> MosaicResult<()> {
        with_client!(self.pool(), |c| {
            c.execute(
                "DELETE FROM bulk_job_data WHERE tenant_id = $1 AND job_id = $2",
                &[&tenant_id, &id],
            )
            .await?;
            Ok(())
        })
    }

    async fn bulk_data(
        &self,
        tenant_id: &str,
        id: &str,
        seq: i64,
    ) -> MosaicResult<Option<Vec<u8>>> {
        with_client!(self.pool(), |c| {
            let st = c
                .prepare_cached(
                    "SELECT bytes FROM bulk_job_data WHERE tenant_id = $1 AND job_id = $2 AND seq = $3",
                )
                .await?;
            match c.query_opt(&st, &[&tenant_id, &id, &seq]).await? {
                Some(r) => Ok(Some(r.try_get(0)?)),
                None => Ok(None),
            }
        })
    }

    async fn finish_bulk_upload(
        &self,
        tenant_id: &str,
        id: &str,
        header: &str,
        data_start: i64,
        data_bytes: i64,
        now: DateTime<Utc>,
    ) -> MosaicResult<bool> {
        let now = millis(&now);
        with_client!(self.pool(), |c| {
            let n = c
                .execute(
                    "UPDATE bulk_jobs SET header = $3, cursor = $4, data_bytes = $5, updated_at = $6 \
                     WHERE tenant_id = $1 AND id = $2 AND state = 'Open'",
                    &[&tenant_id, &id, &header, &data_start, &data_bytes, &now],
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn claim_bulk_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> MosaicResult<Option<BulkJobRow>> {
        let (now, until) = (millis(&now), millis(&lease_until));
        // A platform worker's claim across tenants (as the outbox's); the
        // row lock keeps two instances from taking the same job.
        shard_tx!(self.pool(), |tx| {
            let row = tx
                .query_opt(
                    &format!(
                        "UPDATE bulk_jobs SET retries = retries + (CASE WHEN state = 'InProgress' THEN 1 ELSE 0 END), \
                           state = 'InProgress', lease_owner = $2, lease_until = $3, updated_at = $1 \
                         WHERE (tenant_id, id) = (SELECT tenant_id, id FROM bulk_jobs \
                           WHERE state = 'UploadComplete' OR (state = 'InProgress' AND (lease_until IS NULL OR lease_until <= $1)) \
                           ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
                         RETURNING {JOB_COLUMNS}"
                    ),
                    &[&now, &owner, &until],
                )
                .await?;
            match row {
                Some(r) => Ok(Some(job_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn record_bulk_chunk(&self, chunk: &BulkChunk) -> MosaicResult<Option<String>> {
        let c = chunk;
        let (now, until) = (millis(&c.now), millis(&c.lease_until));
        shard_tx!(self.pool(), |tx| {
            let Some(row) = tx
                .query_opt(
                    &format!("SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE tenant_id = $1 AND id = $2 FOR UPDATE"),
                    &[&c.tenant_id, &c.job_id],
                )
                .await?
            else {
                return Ok(None);
            };
            let job = job_row(&row)?;
            if job.lease_owner.as_deref() != Some(c.owner.as_str())
                || job.chunk_no != c.chunk_no
                || !(job.state == "InProgress" || job.state == "Aborted")
            {
                return Ok(None);
            }
            let (state, error) = match (&c.finish, job.state.as_str()) {
                (Some((s, e)), "InProgress") => (s.clone(), e.clone()),
                _ => (job.state.clone(), job.error_message.clone()),
            };
            let done = state != "InProgress";
            tx.execute(
                "UPDATE bulk_jobs SET chunk_no = chunk_no + 1, cursor = $3, processed = processed + $4, failed = failed + $5, \
                   processing_ms = processing_ms + $6, state = $7, error_message = $8, updated_at = $9, \
                   lease_until = CASE WHEN $10 THEN NULL ELSE $11::timestamptz END, lease_owner = CASE WHEN $10 THEN NULL ELSE lease_owner END \
                 WHERE tenant_id = $1 AND id = $2",
                &[
                    &c.tenant_id, &c.job_id, &c.cursor, &c.records, &c.failed, &c.elapsed_ms,
                    &state, &error, &now, &done, &until,
                ],
            )
            .await?;
            if c.records > 0 {
                tx.execute(
                    "INSERT INTO bulk_job_results (tenant_id, job_id, seq, first_record, records, successes, failures) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&c.tenant_id, &c.job_id, &c.chunk_no, &job.processed, &c.records, &c.successes, &c.failures],
                )
                .await?;
            }
            Ok(Some(state))
        })
    }

    async fn reset_bulk_job(&self, tenant_id: &str, id: &str, owner: &str) -> MosaicResult<bool> {
        shard_tx!(self.pool(), |tx| {
            let n = tx
                .execute(
                    "UPDATE bulk_jobs SET chunk_no = 0, processed = 0, failed = 0 WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3",
                    &[&tenant_id, &id, &owner],
                )
                .await?;
            if n > 0 {
                tx.execute(
                    "DELETE FROM bulk_job_results WHERE tenant_id = $1 AND job_id = $2",
                    &[&tenant_id, &id],
                )
                .await?;
            }
            Ok(n > 0)
        })
    }

    async fn bulk_results(
        &self,
        tenant_id: &str,
        id: &str,
        from_seq: i64,
        limit: i64,
    ) -> MosaicResult<Vec<BulkResultRow>> {
        with_client!(self.pool(), |c| {
            let rows = c
                .query(
                    "SELECT seq, first_record, records, successes, failures FROM bulk_job_results \
                     WHERE tenant_id = $1 AND job_id = $2 AND seq >= $3 ORDER BY seq LIMIT $4",
                    &[&tenant_id, &id, &from_seq, &limit],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(BulkResultRow {
                    seq: r.try_get(0)?,
                    first_record: r.try_get(1)?,
                    records: r.try_get(2)?,
                    successes: r.try_get(3)?,
                    failures: r.try_get(4)?,
                });
            }
            Ok(out)
        })
    }

    async fn release_bulk_leases(&self, owner: &str) -> MosaicResult<u64> {
        with_client!(self.pool(), |c| {
            let n = c
                .execute(
                    "UPDATE bulk_jobs SET lease_until = NULL WHERE lease_owner = $1 AND state = 'InProgress'",
                    &[&owner],
                )
                .await?;
            Ok(n)
        })
    }
}
