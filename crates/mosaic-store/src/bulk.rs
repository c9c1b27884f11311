//! Bulk API jobs (decision 0035): the job rows, the uploaded CSV kept in
//! fixed-size blocks, and the results written chunk by chunk — all in the
//! metadata database, so every instance sees every job and a job survives
//! a restart. Workers claim a job with an owned, expiring lease (as the
//! outbox does); progress is recorded only by the lease's holder, one chunk
//! at a time, so a chunk is counted once.

use crate::sqlite::{map_sql, SqliteDb};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::value::format_datetime;
use mosaic_types::MosaicResult;
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;

/// Size of one stored block of uploaded CSV (the last block may be shorter).
pub const DATA_BLOCK_BYTES: usize = 1024 * 1024;

/// States a job is in before it finishes (counted against the open-job limit).
pub const UNFINISHED_STATES: [&str; 3] = ["Open", "UploadComplete", "InProgress"];

/// One Bulk API job (ingest or query).
#[derive(Debug, Clone, PartialEq)]
pub struct BulkJobRow {
    pub tenant_id: String,
    pub id: String,
    pub user_id: String,
    /// `ingest` or `query`.
    pub kind: String,
    /// insert, update, upsert, delete, hardDelete; `query` / `queryAll`.
    pub operation: String,
    /// The object's api name as the client gave it (ingest jobs).
    pub object: String,
    pub external_id_field: Option<String>,
    pub state: String,
    pub column_delimiter: String,
    pub line_ending: String,
    pub api_version: String,
    /// The SOQL statement of a query job.
    pub query: Option<String>,
    /// Column names: the upload's header (ingest) or the result's (query),
    /// as a JSON array.
    pub header: Option<String>,
    /// Bytes uploaded.
    pub data_bytes: i64,
    /// Byte offset in the upload of the next record to process.
    pub cursor: i64,
    /// Chunks recorded so far (the next chunk's number).
    pub chunk_no: i64,
    pub processed: i64,
    pub failed: i64,
    pub retries: i64,
    pub processing_ms: i64,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
}

/// One chunk's progress and results, recorded by the lease's holder.
#[derive(Debug, Clone)]
pub struct BulkChunk {
    pub tenant_id: String,
    pub job_id: String,
    pub owner: String,
    /// The chunk's number: recorded only when the job is at it.
    pub chunk_no: i64,
    /// The cursor after the chunk.
    pub cursor: i64,
    pub records: i64,
    pub failed: i64,
    /// Result lines (CSV, no header) of the successful records / query rows.
    pub successes: String,
    /// Result lines of the failed records.
    pub failures: String,
    /// The job's end: `JobComplete` or `Failed` with a message.
    pub finish: Option<(String, Option<String>)>,
    pub lease_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub elapsed_ms: i64,
}

/// One recorded chunk of results.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResultRow {
    pub seq: i64,
    /// Records before this chunk.
    pub first_record: i64,
    pub records: i64,
    pub successes: String,
    pub failures: String,
}

#[async_trait]
pub trait BulkStore: Send + Sync {
    /// Adds `job` unless the tenant already has `open_limit` unfinished
    /// jobs (then `false`).
    async fn insert_bulk_job(&self, job: &BulkJobRow, open_limit: i64) -> MosaicResult<bool>;
    async fn bulk_job(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<BulkJobRow>>;
    /// The tenant's jobs of `kind`, oldest first, after job id `after`.
    async fn bulk_jobs(
        &self,
        tenant_id: &str,
        kind: &str,
        after: Option<&str>,
        limit: i64,
    ) -> MosaicResult<Vec<BulkJobRow>>;
    /// Moves the job to `to` if it is in one of `from`; `false` otherwise.
    async fn set_bulk_state(
        &self,
        tenant_id: &str,
        id: &str,
        from: &[&str],
        to: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> MosaicResult<bool>;
    /// Deletes the job with its data and results.
    async fn delete_bulk_job(&self, tenant_id: &str, id: &str) -> MosaicResult<bool>;
    /// Stores block `seq` of the job's upload.
    async fn put_bulk_data(
        &self,
        tenant_id: &str,
        id: &str,
        seq: i64,
        bytes: Vec<u8>,
    ) -> MosaicResult<()>;
    /// Drops the job's uploaded blocks (a refused or aborted upload).
    async fn clear_bulk_data(&self, tenant_id: &str, id: &str) -> MosaicResult<()>;
    async fn bulk_data(&self, tenant_id: &str, id: &str, seq: i64)
        -> MosaicResult<Option<Vec<u8>>>;
    /// Records a finished upload (the job must still be `Open`): its header,
    /// where the first record starts and its size.
    async fn finish_bulk_upload(
        &self,
        tenant_id: &str,
        id: &str,
        header: &str,
        data_start: i64,
        data_bytes: i64,
        now: DateTime<Utc>,
    ) -> MosaicResult<bool>;
    /// Claims the oldest job waiting for a worker — `UploadComplete`, or
    /// `InProgress` with an expired lease — for `owner` until `lease_until`,
    /// moving it to `InProgress`.
    async fn claim_bulk_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> MosaicResult<Option<BulkJobRow>>;
    /// Records a chunk if `owner` still holds the job's lease and the job is
    /// at `chunk_no` (`InProgress`, or `Aborted` meanwhile: what was written
    /// is still reported); returns the job's state after it, `None` when not
    /// recorded.
    async fn record_bulk_chunk(&self, chunk: &BulkChunk) -> MosaicResult<Option<String>>;
    /// Starts a claimed job over (a query job taken over from another
    /// instance): results dropped, counters zeroed.
    async fn reset_bulk_job(&self, tenant_id: &str, id: &str, owner: &str) -> MosaicResult<bool>;
    /// Chunks of results from chunk `from_seq` on, at most `limit`.
    async fn bulk_results(
        &self,
        tenant_id: &str,
        id: &str,
        from_seq: i64,
        limit: i64,
    ) -> MosaicResult<Vec<BulkResultRow>>;
    /// Drops the leases `owner` holds (an instance stopping).
    async fn release_bulk_leases(&self, owner: &str) -> MosaicResult<u64>;
}

pub const BULK_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS bulk_jobs (
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
  data_bytes INTEGER NOT NULL DEFAULT 0,
  cursor INTEGER NOT NULL DEFAULT 0,
  chunk_no INTEGER NOT NULL DEFAULT 0,
  processed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  retries INTEGER NOT NULL DEFAULT 0,
  processing_ms INTEGER NOT NULL DEFAULT 0,
  error_message TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  lease_owner TEXT,
  lease_until TEXT,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS bulk_jobs_waiting ON bulk_jobs (state, created_at);
CREATE TABLE IF NOT EXISTS bulk_job_data (
  tenant_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  bytes BLOB NOT NULL,
  PRIMARY KEY (tenant_id, job_id, seq)
);
CREATE TABLE IF NOT EXISTS bulk_job_results (
  tenant_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  first_record INTEGER NOT NULL,
  records INTEGER NOT NULL,
  successes TEXT NOT NULL,
  failures TEXT NOT NULL,
  PRIMARY KEY (tenant_id, job_id, seq)
);
"#;

const JOB_COLUMNS: &str = "tenant_id, id, user_id, kind, operation, object, external_id_field, state, column_delimiter, line_ending, api_version, query, header, data_bytes, cursor, chunk_no, processed, failed, retries, processing_ms, error_message, created_at, updated_at, lease_owner";

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BulkJobRow> {
    Ok(BulkJobRow {
        tenant_id: r.get(0)?,
        id: r.get(1)?,
        user_id: r.get(2)?,
        kind: r.get(3)?,
        operation: r.get(4)?,
        object: r.get(5)?,
        external_id_field: r.get(6)?,
        state: r.get(7)?,
        column_delimiter: r.get(8)?,
        line_ending: r.get(9)?,
        api_version: r.get(10)?,
        query: r.get(11)?,
        header: r.get(12)?,
        data_bytes: r.get(13)?,
        cursor: r.get(14)?,
        chunk_no: r.get(15)?,
        processed: r.get(16)?,
        failed: r.get(17)?,
        retries: r.get(18)?,
        processing_ms: r.get(19)?,
        error_message: r.get(20)?,
        created_at: crate::sqlite_meta::parse_ts(&r.get::<_, String>(21)?)?,
        updated_at: crate::sqlite_meta::parse_ts(&r.get::<_, String>(22)?)?,
        lease_owner: r.get(23)?,
    })
}

/// Bulk jobs in an embedded metadata database.
pub struct SqliteBulkStore {
    db: Arc<SqliteDb>,
}

impl SqliteBulkStore {
    /// Kept in `db`, the metadata database (whose schema has [`BULK_SCHEMA`]).
    pub fn new(db: Arc<SqliteDb>) -> SqliteBulkStore {
        SqliteBulkStore { db }
    }
}

fn get_job(
    conn: &rusqlite::Connection,
    tenant_id: &str,
    id: &str,
) -> rusqlite::Result<Option<BulkJobRow>> {
    conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE tenant_id = ?1 AND id = ?2"
    ))?
    .query_row(params![tenant_id, id], job_row)
    .optional()
}

#[async_trait]
impl BulkStore for SqliteBulkStore {
    async fn insert_bulk_job(&self, job: &BulkJobRow, open_limit: i64) -> MosaicResult<bool> {
        let j = job.clone();
        self.db
            .write(move |conn| {
                let open: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM bulk_jobs WHERE tenant_id = ?1 AND state IN ('Open', 'UploadComplete', 'InProgress')",
                        params![j.tenant_id],
                        |r| r.get(0),
                    )
                    .map_err(map_sql)?;
                if open >= open_limit {
                    return Ok(false);
                }
                conn.execute(
                    &format!("INSERT INTO bulk_jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"),
                    params![
                        j.tenant_id, j.id, j.user_id, j.kind, j.operation, j.object,
                        j.external_id_field, j.state, j.column_delimiter, j.line_ending,
                        j.api_version, j.query, j.header, j.data_bytes, j.cursor, j.chunk_no,
                        j.processed, j.failed, j.retries, j.processing_ms, j.error_message,
                        format_datetime(&j.created_at), format_datetime(&j.updated_at), j.lease_owner
                    ],
                )
                .map_err(map_sql)?;
                Ok(true)
            })
            .await
    }

    async fn bulk_job(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<BulkJobRow>> {
        let (t, i) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| get_job(conn, &t, &i).map_err(map_sql))
            .await
    }

    async fn bulk_jobs(
        &self,
        tenant_id: &str,
        kind: &str,
        after: Option<&str>,
        limit: i64,
    ) -> MosaicResult<Vec<BulkJobRow>> {
        let (t, k, a) = (
            tenant_id.to_string(),
            kind.to_string(),
            after.unwrap_or("").to_string(),
        );
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE tenant_id = ?1 AND kind = ?2 AND id > ?3 ORDER BY id LIMIT ?4"
                    ))
                    .map_err(map_sql)?;
                let rows = st
                    .query_map(params![t, k, a, limit], job_row)
                    .map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sql)
            })
            .await
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
        let (t, i, to, error) = (
            tenant_id.to_string(),
            id.to_string(),
            to.to_string(),
            error.map(str::to_string),
        );
        let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
        self.db
            .write(move |conn| {
                let Some(job) = get_job(conn, &t, &i).map_err(map_sql)? else {
                    return Ok(false);
                };
                if !from.contains(&job.state) {
                    return Ok(false);
                }
                conn.execute(
                    "UPDATE bulk_jobs SET state = ?3, error_message = COALESCE(?4, error_message), updated_at = ?5 WHERE tenant_id = ?1 AND id = ?2",
                    params![t, i, to, error, format_datetime(&now)],
                )
                .map_err(map_sql)?;
                Ok(true)
            })
            .await
    }

    async fn delete_bulk_job(&self, tenant_id: &str, id: &str) -> MosaicResult<bool> {
        let (t, i) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM bulk_job_data WHERE tenant_id = ?1 AND job_id = ?2",
                    params![t, i],
                )
                .map_err(map_sql)?;
                conn.execute(
                    "DELETE FROM bulk_job_results WHERE tenant_id = ?1 AND job_id = ?2",
                    params![t, i],
                )
                .map_err(map_sql)?;
                let n = conn
                    .execute(
                        "DELETE FROM bulk_jobs WHERE tenant_id = ?1 AND id = ?2",
                        params![t, i],
                    )
                    .map_err(map_sql)?;
                Ok(n > 0)
            })
            .await
    }

    async fn put_bulk_data(
        &self,
        tenant_id: &str,
        id: &str,
        seq: i64,
        bytes: Vec<u8>,
    ) -> MosaicResult<()> {
        let (t, i) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO bulk_job_data (tenant_id, job_id, seq, bytes) VALUES (?1, ?2, ?3, ?4)",
                    params![t, i, seq, bytes],
                )
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }

    async fn clear_bulk_data(&self, tenant_id: &str, id: &str) -> MosaicResult<()> {
        let (t, i) = (tenant_id.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM bulk_job_data WHERE tenant_id = ?1 AND job_id = ?2",
                    params![t, i],
                )
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }

    async fn bulk_data(
        &self,
        tenant_id: &str,
        id: &str,
        seq: i64,
    ) -> MosaicResult<Option<Vec<u8>>> {
        let (t, i) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT bytes FROM bulk_job_data WHERE tenant_id = ?1 AND job_id = ?2 AND seq = ?3",
                )
                .and_then(|mut st| st.query_row(params![t, i, seq], |r| r.get(0)).optional())
                .map_err(map_sql)
            })
            .await
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
        let (t, i, h) = (tenant_id.to_string(), id.to_string(), header.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE bulk_jobs SET header = ?3, cursor = ?4, data_bytes = ?5, updated_at = ?6 WHERE tenant_id = ?1 AND id = ?2 AND state = 'Open'",
                    params![t, i, h, data_start, data_bytes, format_datetime(&now)],
                )
                .map(|n| n > 0)
                .map_err(map_sql)
            })
            .await
    }

    async fn claim_bulk_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> MosaicResult<Option<BulkJobRow>> {
        let owner = owner.to_string();
        let (now, until) = (format_datetime(&now), format_datetime(&lease_until));
        self.db
            .write(move |conn| {
                // A platform worker's claim: it looks across tenants, as the
                // outbox's does, and then works on one tenant's job.
                let found: Option<(String, String)> = conn
                    .query_row(
                        "SELECT tenant_id, id FROM bulk_jobs
                         WHERE (state = 'UploadComplete' OR (state = 'InProgress' AND (lease_until IS NULL OR lease_until <= ?1)))
                         ORDER BY created_at LIMIT 1",
                        params![now],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(map_sql)?;
                let Some((t, i)) = found else { return Ok(None) };
                conn.execute(
                    "UPDATE bulk_jobs SET retries = retries + (CASE WHEN state = 'InProgress' THEN 1 ELSE 0 END),
                       state = 'InProgress', lease_owner = ?3, lease_until = ?4, updated_at = ?5
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![t, i, owner, until, now],
                )
                .map_err(map_sql)?;
                get_job(conn, &t, &i).map_err(map_sql)
            })
            .await
    }

    async fn record_bulk_chunk(&self, chunk: &BulkChunk) -> MosaicResult<Option<String>> {
        let c = chunk.clone();
        self.db
            .write(move |conn| {
                let Some(job) = get_job(conn, &c.tenant_id, &c.job_id).map_err(map_sql)? else {
                    return Ok(None);
                };
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
                conn.execute(
                    "UPDATE bulk_jobs SET chunk_no = chunk_no + 1, cursor = ?3, processed = processed + ?4, failed = failed + ?5,
                       processing_ms = processing_ms + ?6, state = ?7, error_message = ?8, updated_at = ?9,
                       lease_until = CASE WHEN ?10 THEN NULL ELSE ?11 END, lease_owner = CASE WHEN ?10 THEN NULL ELSE lease_owner END
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![
                        c.tenant_id, c.job_id, c.cursor, c.records, c.failed, c.elapsed_ms,
                        state, error, format_datetime(&c.now), done, format_datetime(&c.lease_until)
                    ],
                )
                .map_err(map_sql)?;
                if c.records > 0 {
                    conn.execute(
                        "INSERT INTO bulk_job_results (tenant_id, job_id, seq, first_record, records, successes, failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![c.tenant_id, c.job_id, c.chunk_no, job.processed, c.records, c.successes, c.failures],
                    )
                    .map_err(map_sql)?;
                }
                Ok(Some(state))
            })
            .await
    }

    async fn reset_bulk_job(&self, tenant_id: &str, id: &str, owner: &str) -> MosaicResult<bool> {
        let (t, i, o) = (tenant_id.to_string(), id.to_string(), owner.to_string());
        self.db
            .write(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE bulk_jobs SET chunk_no = 0, processed = 0, failed = 0 WHERE tenant_id = ?1 AND id = ?2 AND lease_owner = ?3",
                        params![t, i, o],
                    )
                    .map_err(map_sql)?;
                if n > 0 {
                    conn.execute(
                        "DELETE FROM bulk_job_results WHERE tenant_id = ?1 AND job_id = ?2",
                        params![t, i],
                    )
                    .map_err(map_sql)?;
                }
                Ok(n > 0)
            })
            .await
    }

    async fn bulk_results(
        &self,
        tenant_id: &str,
        id: &str,
        from_seq: i64,
        limit: i64,
    ) -> MosaicResult<Vec<BulkResultRow>> {
        let (t, i) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT seq, first_record, records, successes, failures FROM bulk_job_results
                         WHERE tenant_id = ?1 AND job_id = ?2 AND seq >= ?3 ORDER BY seq LIMIT ?4",
                    )
                    .map_err(map_sql)?;
                let rows = st
                    .query_map(params![t, i, from_seq, limit], |r| {
                        Ok(BulkResultRow {
                            seq: r.get(0)?,
                            first_record: r.get(1)?,
                            records: r.get(2)?,
                            successes: r.get(3)?,
                            failures: r.get(4)?,
                        })
                    })
                    .map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sql)
            })
            .await
    }

    async fn release_bulk_leases(&self, owner: &str) -> MosaicResult<u64> {
        let o = owner.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE bulk_jobs SET lease_until = NULL WHERE lease_owner = ?1 AND state = 'InProgress'",
                    params![o],
                )
                .map(|n| n as u64)
                .map_err(map_sql)
            })
            .await
    }
}
