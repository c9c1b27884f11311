//! The Bulk API 2.0 (decision 0035): ingest jobs (CSV uploaded, then
//! processed in the background in chunks of [`CHUNK_RECORDS`] through the
//! record pipeline the REST API uses) and query jobs (SOQL run as the user,
//! results kept as CSV pages).
//!
//! Every instance runs a [`BulkWorker`]; a job is claimed with an owned,
//! expiring lease and its progress recorded per chunk by the lease's holder
//! only, so a job survives a restart and each chunk counts once. Inserted
//! records get ids derived from their job and row, so a chunk run again
//! after a takeover recognizes the rows it already wrote.

use crate::access::ObjectOp;
use crate::records::{Caller, RecordErrors, RecordResult};
use crate::Platform;
use chrono::Utc;
use mosaic_store::bulk::{BulkChunk, BulkJobRow, BulkResultRow, DATA_BLOCK_BYTES};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Largest upload of one job (Salesforce: 150 MB per request).
pub const MAX_UPLOAD_BYTES: u64 = 150 * 1024 * 1024;
/// Unfinished jobs (Open, UploadComplete, InProgress) a tenant may have at once.
pub const MAX_OPEN_JOBS_PER_TENANT: i64 = 100;
/// Records processed per chunk: one batch of the record pipeline.
pub const CHUNK_RECORDS: usize = crate::records::MAX_BATCH_RECORDS;
/// Most columns in an upload's header.
pub const MAX_COLUMNS: usize = 1_000;
/// Largest single CSV record (a chunk's window never grows past it).
pub const MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;
/// Rows per stored page of a query job's results.
pub const QUERY_PAGE_RECORDS: usize = 2_000;
/// `maxRecords` when the client gives none, and the most it may ask for.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;
pub const MAX_MAX_RECORDS: usize = 100_000;
/// Jobs per page of the job list.
pub const JOB_LIST_PAGE: i64 = 1_000;
/// How long a worker's claim on a job lasts by default; renewed with every chunk.
pub const JOB_LEASE: Duration = Duration::from_secs(60);
/// How often an idle worker looks for jobs when not woken.
pub const WORKER_POLL: Duration = Duration::from_millis(500);
/// Takeovers after which a job is failed instead of tried again.
pub const MAX_JOB_RETRIES: i64 = 10;
/// Result chunks read from the store per round trip.
pub const RESULT_CHUNKS_PER_READ: i64 = 16;

pub const KIND_INGEST: &str = "ingest";
pub const KIND_QUERY: &str = "query";

const OPERATIONS: [&str; 5] = ["insert", "update", "upsert", "delete", "hardDelete"];
const DELIMITERS: [(&str, u8); 6] = [
    ("COMMA", b','),
    ("TAB", b'\t'),
    ("SEMICOLON", b';'),
    ("PIPE", b'|'),
    ("CARET", b'^'),
    ("BACKQUOTE", b'`'),
];

fn invalid_state(message: impl Into<String>) -> MosaicError {
    MosaicError::new(ErrorCode::INVALIDJOBSTATE, message)
}

fn job_not_found(id: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "no bulk job with id '{}'",
        id.chars().take(80).collect::<String>()
    ))
}

/// The byte of a `columnDelimiter` name.
pub fn delimiter_byte(name: &str) -> Option<u8> {
    DELIMITERS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

fn terminator(line_ending: &str) -> csv::Terminator {
    if line_ending == "CRLF" {
        csv::Terminator::CRLF
    } else {
        csv::Terminator::Any(b'\n')
    }
}

/// What a client asks for when it creates an ingest job.
#[derive(Debug, Clone, Default)]
pub struct NewIngestJob {
    pub object: String,
    pub operation: String,
    pub external_id_field: Option<String>,
    pub column_delimiter: Option<String>,
    pub line_ending: Option<String>,
    pub content_type: Option<String>,
}

/// What a client asks for when it creates a query job.
#[derive(Debug, Clone, Default)]
pub struct NewQueryJob {
    pub query: String,
    pub operation: String,
    pub column_delimiter: Option<String>,
    pub line_ending: Option<String>,
    pub content_type: Option<String>,
}

/// Which results of an ingest job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Successful,
    Failed,
    Unprocessed,
}

/// One page of a query job's results.
#[derive(Debug, Clone)]
pub struct QueryPage {
    pub csv: Vec<u8>,
    pub records: usize,
    /// The next page's locator; `None` at the end.
    pub locator: Option<String>,
}

fn format_options(
    delimiter: &Option<String>,
    line_ending: &Option<String>,
    content_type: &Option<String>,
) -> MosaicResult<(String, String)> {
    let d = delimiter.clone().unwrap_or_else(|| "COMMA".into());
    if delimiter_byte(&d).is_none() {
        return Err(MosaicError::field(
            ErrorCode::INVALIDJOB,
            "columnDelimiter",
            format!(
                "columnDelimiter must be one of BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON, TAB; got '{}'",
                d.chars().take(40).collect::<String>()
            ),
        ));
    }
    let l = line_ending.clone().unwrap_or_else(|| "LF".into());
    if l != "LF" && l != "CRLF" {
        return Err(MosaicError::field(
            ErrorCode::INVALIDJOB,
            "lineEnding",
            "lineEnding must be LF or CRLF",
        ));
    }
    if let Some(ct) = content_type {
        if ct != "CSV" {
            return Err(MosaicError::field(
                ErrorCode::INVALIDJOB,
                "contentType",
                "contentType must be CSV (the only format of the Bulk API 2.0)",
            ));
        }
    }
    Ok((d, l))
}

/// The id of row `index` of job `job`: a UUIDv7 stamped with the job's
/// creation time, its other bits from a hash of job and row.
fn row_id(job: &BulkJobRow, index: i64) -> String {
    let mut h = Sha256::new();
    h.update(job.tenant_id.as_bytes());
    h.update([0]);
    h.update(job.id.as_bytes());
    h.update(index.to_be_bytes());
    let d = h.finalize();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&d[..10]);
    let ms = job.created_at.timestamp_millis().max(0) as u64;
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A result line's error text, Salesforce's `CODE:message:fields --`.
fn error_text(e: &RecordErrors) -> String {
    e.0.iter()
        .map(|e| format!("{}:{}:{} --", e.code, e.message, e.fields.join(",")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One CSV line (with the job's delimiter and line ending), every field quoted.
fn csv_line(delimiter: u8, line_ending: &str, fields: &[&str]) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(terminator(line_ending))
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(fields);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// One parsed data row.
struct Row {
    /// Position among the job's records (0-based).
    index: i64,
    /// The values as uploaded (lossy text when not UTF-8).
    raw: Vec<String>,
    /// Why the row cannot be processed at all.
    malformed: Option<String>,
}

/// Reads records of an upload from its stored blocks, [`CHUNK_RECORDS`] at
/// a time from a byte cursor, holding only a window of the data.
struct BlockReader {
    platform: Arc<Platform>,
    tenant_id: String,
    job_id: String,
    data_bytes: i64,
    delimiter: u8,
    /// `window` holds the upload's bytes from `window_start`.
    window: Vec<u8>,
    window_start: i64,
}

impl BlockReader {
    /// Extends the window by the next block; `false` at the end of the data.
    async fn grow(&mut self) -> MosaicResult<bool> {
        let end = self.window_start + self.window.len() as i64;
        if end >= self.data_bytes {
            return Ok(false);
        }
        let seq = end / DATA_BLOCK_BYTES as i64;
        let skip = (end % DATA_BLOCK_BYTES as i64) as usize;
        let block = self
            .platform
            .bulk
            .bulk_data(&self.tenant_id, &self.job_id, seq)
            .await?
            .ok_or_else(|| MosaicError::internal("a block of the upload is missing"))?;
        self.window
            .extend_from_slice(block.get(skip..).unwrap_or(&[]));
        Ok(true)
    }

    /// Up to `n` records from byte `cursor`, and the cursor after them.
    async fn next(&mut self, cursor: i64, n: usize) -> MosaicResult<(Vec<csv::ByteRecord>, i64)> {
        if cursor < self.window_start || cursor > self.window_start + self.window.len() as i64 {
            self.window.clear();
            self.window_start = cursor;
        }
        let drop = (cursor - self.window_start) as usize;
        self.window.drain(..drop);
        self.window_start = cursor;
        loop {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(self.delimiter)
                .from_reader(self.window.as_slice());
            let mut out = Vec::with_capacity(n);
            let mut rec = csv::ByteRecord::new();
            let mut next_start = None;
            while rdr.read_byte_record(&mut rec).map_err(|e| {
                MosaicError::new(ErrorCode::INVALID_INPUT, format!("malformed CSV: {e}"))
            })? {
                if out.len() == n {
                    next_start = rec.position().map(|p| p.byte() as i64);
                    break;
                }
                out.push(rec.clone());
            }
            let at_end = self.window_start + self.window.len() as i64 >= self.data_bytes;
            if let Some(start) = next_start {
                return Ok((out, cursor + start));
            }
            if at_end {
                return Ok((out, self.data_bytes));
            }
            if self.window.len() > MAX_RECORD_BYTES + n * 64 * 1024 && out.len() < 2 {
                return Err(MosaicError::new(
                    ErrorCode::INVALID_INPUT,
                    format!("a CSV record is larger than {MAX_RECORD_BYTES} bytes"),
                ));
            }
            self.grow().await?;
        }
    }
}

/// Splits off a UTF-8 byte-order mark.
fn strip_bom(b: &[u8]) -> (&[u8], usize) {
    match b.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        Some(rest) => (rest, 3),
        None => (b, 0),
    }
}

/// An upload in progress: blocks are stored as they fill.
pub struct Upload {
    platform: Arc<Platform>,
    caller: Caller,
    job: BulkJobRow,
    buf: Vec<u8>,
    /// The first block, kept to read the header at the end.
    first: Option<Vec<u8>>,
    seq: i64,
    total: u64,
}

impl Upload {
    /// Adds bytes of the body; past [`MAX_UPLOAD_BYTES`] the upload is
    /// dropped and refused with `REQUEST_TOO_LARGE`.
    pub async fn push(&mut self, mut bytes: &[u8]) -> MosaicResult<()> {
        self.total += bytes.len() as u64;
        if self.total > MAX_UPLOAD_BYTES {
            self.abandon().await;
            return Err(MosaicError::new(
                ErrorCode::REQUEST_TOO_LARGE,
                format!("the upload exceeds the limit of {MAX_UPLOAD_BYTES} bytes per job"),
            ));
        }
        while !bytes.is_empty() {
            let room = DATA_BLOCK_BYTES - self.buf.len();
            let take = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == DATA_BLOCK_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> MosaicResult<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(DATA_BLOCK_BYTES));
        if self.seq == 0 {
            self.first = Some(block.clone());
        }
        self.platform
            .bulk
            .put_bulk_data(&self.job.tenant_id, &self.job.id, self.seq, block)
            .await?;
        self.seq += 1;
        Ok(())
    }

    /// Drops what was stored (a refused upload).
    pub async fn abandon(&mut self) {
        self.buf.clear();
        if let Err(e) = self
            .platform
            .bulk
            .clear_bulk_data(&self.job.tenant_id, &self.job.id)
            .await
        {
            tracing::warn!(error = %e.message, "a refused upload's blocks were not dropped");
        }
    }

    /// Ends the upload: checks the header against the object and the
    /// operation and records it; a refused header drops the data.
    pub async fn finish(mut self) -> MosaicResult<BulkJobRow> {
        self.flush().await?;
        let checked = self.check_header().await;
        match checked {
            Ok((header, start)) => {
                let json = serde_json::to_string(&header)
                    .map_err(|e| MosaicError::internal(e.to_string()))?;
                let ok = self
                    .platform
                    .bulk
                    .finish_bulk_upload(
                        &self.job.tenant_id,
                        &self.job.id,
                        &json,
                        start as i64,
                        self.total as i64,
                        Utc::now(),
                    )
                    .await?;
                if !ok {
                    self.abandon().await;
                    return Err(invalid_state("the job is no longer Open"));
                }
                self.platform
                    .bulk_job(&self.caller, KIND_INGEST, &self.job.id)
                    .await
            }
            Err(e) => {
                self.abandon().await;
                Err(e)
            }
        }
    }

    async fn check_header(&self) -> MosaicResult<(Vec<String>, usize)> {
        let first = self.first.as_deref().unwrap_or(&[]);
        let (body, bom) = strip_bom(first);
        let delimiter = delimiter_byte(&self.job.column_delimiter).unwrap_or(b',');
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(body);
        let mut rec = csv::ByteRecord::new();
        let got = rdr.read_byte_record(&mut rec).map_err(|e| {
            MosaicError::new(
                ErrorCode::INVALID_INPUT,
                format!("malformed CSV header: {e}"),
            )
        })?;
        if !got || rec.iter().all(|f| f.is_empty()) {
            return Err(MosaicError::new(
                ErrorCode::INVALID_INPUT,
                "the upload is empty: the first line must name the fields (API names)",
            ));
        }
        let end = rdr.position().byte() as usize;
        if end >= body.len() && self.total as usize > first.len() {
            return Err(MosaicError::new(
                ErrorCode::INVALID_INPUT,
                format!("the header line is longer than {DATA_BLOCK_BYTES} bytes"),
            ));
        }
        if rec.len() > MAX_COLUMNS {
            return Err(MosaicError::new(
                ErrorCode::INVALID_INPUT,
                format!(
                    "the header has {} columns; at most {MAX_COLUMNS}",
                    rec.len()
                ),
            ));
        }
        let mut header = Vec::with_capacity(rec.len());
        for (i, f) in rec.iter().enumerate() {
            let name = std::str::from_utf8(f).map_err(|_| {
                MosaicError::new(
                    ErrorCode::INVALID_INPUT,
                    format!("header column {}: not UTF-8", i + 1),
                )
            })?;
            header.push(name.trim().to_string());
        }
        self.platform
            .check_columns(&self.caller, &self.job, &header)
            .await?;
        Ok((header, bom + end))
    }
}

/// The background worker of one instance.
pub struct BulkWorker {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    platform: Arc<Platform>,
    owner: String,
}

impl BulkWorker {
    /// The id this worker's leases carry.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Ends the worker after its current chunk, then releases its leases so
    /// another instance takes its job over at once.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        if let Err(e) = self.platform.bulk.release_bulk_leases(&self.owner).await {
            tracing::warn!(error = %e.message, "bulk job leases not released; they expire by time");
        }
    }
}

impl Platform {
    /// Creates an ingest job (state `Open`).
    pub async fn create_ingest_job(
        &self,
        c: &Caller,
        api_version: &str,
        new: NewIngestJob,
    ) -> MosaicResult<BulkJobRow> {
        if !OPERATIONS.contains(&new.operation.as_str()) {
            return Err(MosaicError::field(
                ErrorCode::INVALIDJOB,
                "operation",
                format!(
                    "operation must be one of insert, update, upsert, delete, hardDelete; got '{}'",
                    new.operation.chars().take(40).collect::<String>()
                ),
            ));
        }
        let (delimiter, line_ending) =
            format_options(&new.column_delimiter, &new.line_ending, &new.content_type)?;
        let obj = self.meta.object(&c.tenant_id, &new.object).await?;
        let ops: &[ObjectOp] = match new.operation.as_str() {
            "insert" => &[ObjectOp::Create],
            "update" => &[ObjectOp::Edit],
            "upsert" => &[ObjectOp::Create, ObjectOp::Edit],
            _ => &[ObjectOp::Delete],
        };
        for op in ops {
            crate::access::require(c, &obj, *op)?;
        }
        if new.operation == "hardDelete" && !c.perms.is_admin() {
            return Err(MosaicError::new(
                ErrorCode::INSUFFICIENT_ACCESS,
                "hardDelete needs the \"Bulk API Hard Delete\" permission (system administrators have it)",
            ));
        }
        let external_id_field = match (new.operation.as_str(), new.external_id_field) {
            ("upsert", None) => {
                return Err(MosaicError::field(
                    ErrorCode::INVALIDJOB,
                    "externalIdFieldName",
                    "an upsert job needs externalIdFieldName",
                ))
            }
            ("upsert", Some(f)) if f.eq_ignore_ascii_case("Id") => Some("Id".to_string()),
            ("upsert", Some(f)) => {
                let fd = obj
                    .field(&f)
                    .filter(|fd| crate::access::can_read_field(c, fd))
                    .ok_or_else(|| {
                        MosaicError::field(
                            ErrorCode::INVALIDJOB,
                            "externalIdFieldName",
                            format!(
                                "{} has no field '{}'",
                                obj.api_name(),
                                f.chars().take(80).collect::<String>()
                            ),
                        )
                    })?;
                if !(fd.is_external_id || fd.is_unique) {
                    return Err(MosaicError::field(
                        ErrorCode::INVALIDJOB,
                        "externalIdFieldName",
                        format!("{} is not an external id or unique field", fd.api_name),
                    ));
                }
                Some(fd.api_name.clone())
            }
            (_, Some(_)) => {
                return Err(MosaicError::field(
                    ErrorCode::INVALIDJOB,
                    "externalIdFieldName",
                    "externalIdFieldName is only for upsert jobs",
                ))
            }
            (_, None) => None,
        };
        let now = Utc::now();
        let job = BulkJobRow {
            tenant_id: c.tenant_id.clone(),
            id: mosaic_types::new_id(),
            user_id: c.user_id.clone(),
            kind: KIND_INGEST.into(),
            operation: new.operation,
            object: obj.api_name().to_string(),
            external_id_field,
            state: "Open".into(),
            column_delimiter: delimiter,
            line_ending,
            api_version: api_version.to_string(),
            query: None,
            header: None,
            data_bytes: 0,
            cursor: 0,
            chunk_no: 0,
            processed: 0,
            failed: 0,
            retries: 0,
            processing_ms: 0,
            error_message: None,
            created_at: now,
            updated_at: now,
            lease_owner: None,
        };
        self.insert_job(job).await
    }

    async fn insert_job(&self, job: BulkJobRow) -> MosaicResult<BulkJobRow> {
        if !self
            .bulk
            .insert_bulk_job(&job, MAX_OPEN_JOBS_PER_TENANT)
            .await?
        {
            return Err(MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!(
                    "the organization has {MAX_OPEN_JOBS_PER_TENANT} unfinished bulk jobs; wait for one to finish or abort one"
                ),
            ));
        }
        Ok(job)
    }

    /// Creates a query job (state `UploadComplete`: it runs at once). The
    /// statement is checked now, as the caller.
    pub async fn create_query_job(
        &self,
        c: &Caller,
        api_version: &str,
        new: NewQueryJob,
    ) -> MosaicResult<BulkJobRow> {
        if new.operation != "query" && new.operation != "queryAll" {
            return Err(MosaicError::field(
                ErrorCode::INVALIDJOB,
                "operation",
                "operation must be query or queryAll",
            ));
        }
        let (delimiter, line_ending) =
            format_options(&new.column_delimiter, &new.line_ending, &new.content_type)?;
        let planned = self
            .plan(c, &new.query, new.operation == "queryAll")
            .await?;
        let header = serde_json::to_string(&plan_columns(&planned))
            .map_err(|e| MosaicError::internal(e.to_string()))?;
        let now = Utc::now();
        let job = BulkJobRow {
            tenant_id: c.tenant_id.clone(),
            id: mosaic_types::new_id(),
            user_id: c.user_id.clone(),
            kind: KIND_QUERY.into(),
            operation: new.operation,
            object: planned.object_api_name.clone(),
            external_id_field: None,
            state: "UploadComplete".into(),
            column_delimiter: delimiter,
            line_ending,
            api_version: api_version.to_string(),
            query: Some(new.query),
            header: Some(header),
            data_bytes: 0,
            cursor: 0,
            chunk_no: 0,
            processed: 0,
            failed: 0,
            retries: 0,
            processing_ms: 0,
            error_message: None,
            created_at: now,
            updated_at: now,
            lease_owner: None,
        };
        let job = self.insert_job(job).await?;
        self.bulk_wake.notify_one();
        Ok(job)
    }

    /// A job the caller may see: its own, or any of the tenant's for an
    /// administrator. Others' are not found.
    pub async fn bulk_job(&self, c: &Caller, kind: &str, id: &str) -> MosaicResult<BulkJobRow> {
        let job = self
            .bulk
            .bulk_job(&c.tenant_id, id)
            .await?
            .filter(|j| j.kind == kind && (j.user_id == c.user_id || c.perms.is_admin()))
            .ok_or_else(|| job_not_found(id))?;
        Ok(job)
    }

    /// The jobs of `kind` the caller may see, a page after job `after`.
    pub async fn bulk_jobs(
        &self,
        c: &Caller,
        kind: &str,
        after: Option<&str>,
    ) -> MosaicResult<(Vec<BulkJobRow>, Option<String>)> {
        let mut out = Vec::new();
        let mut cursor = after.map(str::to_string);
        loop {
            let page = self
                .bulk
                .bulk_jobs(&c.tenant_id, kind, cursor.as_deref(), JOB_LIST_PAGE)
                .await?;
            let full = page.len() as i64 == JOB_LIST_PAGE;
            cursor = page.last().map(|j| j.id.clone());
            out.extend(
                page.into_iter()
                    .filter(|j| j.user_id == c.user_id || c.perms.is_admin()),
            );
            if !full || out.len() as i64 >= JOB_LIST_PAGE {
                let next = if full { cursor } else { None };
                return Ok((out, next));
            }
        }
    }

    /// Starts the upload of an `Open` job's data (one upload per job).
    pub async fn begin_upload(self: &Arc<Self>, c: &Caller, id: &str) -> MosaicResult<Upload> {
        let job = self.bulk_job(c, KIND_INGEST, id).await?;
        if job.state != "Open" {
            return Err(invalid_state(format!(
                "data can be uploaded only while the job is Open; it is {}",
                job.state
            )));
        }
        if job.header.is_some() {
            return Err(invalid_state(
                "the job's data was already uploaded: one upload per job",
            ));
        }
        Ok(Upload {
            platform: self.clone(),
            caller: c.clone(),
            job,
            buf: Vec::with_capacity(DATA_BLOCK_BYTES),
            first: None,
            seq: 0,
            total: 0,
        })
    }

    /// Checks an upload's header: every column a field of the object the
    /// caller may write (or `Id`), the columns the operation needs present.
    async fn check_columns(
        &self,
        c: &Caller,
        job: &BulkJobRow,
        header: &[String],
    ) -> MosaicResult<()> {
        let obj = self.meta.object(&c.tenant_id, &job.object).await?;
        let mut seen = std::collections::HashSet::new();
        for (i, name) in header.iter().enumerate() {
            if name.is_empty() {
                return Err(MosaicError::new(
                    ErrorCode::INVALID_FIELD,
                    format!("header column {} has no field name", i + 1),
                ));
            }
            if !seen.insert(name.to_ascii_lowercase()) {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_FIELD,
                    name.clone(),
                    format!("the header names {name} twice"),
                ));
            }
            // The record's own columns the save path knows besides custom fields.
            if ["Id", "Name", "OwnerId", "RecordTypeId"]
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f))
            {
                continue;
            }
            if name.contains('.') {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_FIELD,
                    name.clone(),
                    format!(
                        "relationship column {name}: lookups by external id are not supported in bulk uploads; give the parent's Id in the lookup field"
                    ),
                ));
            }
            let known = obj
                .field(name)
                .is_some_and(|f| crate::access::can_read_field(c, f));
            if !known {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_FIELD,
                    name.clone(),
                    format!(
                        "Field name not found : {} (no such field on {})",
                        name.chars().take(80).collect::<String>(),
                        obj.api_name()
                    ),
                ));
            }
        }
        let has = |n: &str| header.iter().any(|h| h.eq_ignore_ascii_case(n));
        match job.operation.as_str() {
            "update" | "delete" | "hardDelete" if !has("Id") => Err(MosaicError::field(
                ErrorCode::INVALID_FIELD,
                "Id",
                format!("a {} job's data needs an Id column", job.operation),
            )),
            "upsert" => {
                let ext = job.external_id_field.as_deref().unwrap_or("Id");
                if has(ext) {
                    Ok(())
                } else {
                    Err(MosaicError::field(
                        ErrorCode::INVALID_FIELD,
                        ext,
                        format!("an upsert job's data needs the {ext} column"),
                    ))
                }
            }
            _ => Ok(()),
        }
    }

    /// Moves a job to `UploadComplete` (queued for processing) or `Aborted`.
    pub async fn set_bulk_job_state(
        &self,
        c: &Caller,
        kind: &str,
        id: &str,
        state: &str,
    ) -> MosaicResult<BulkJobRow> {
        let job = self.bulk_job(c, kind, id).await?;
        let (from, to): (&[&str], &str) = match (kind, state) {
            (KIND_INGEST, "UploadComplete") => {
                if job.state == "Open" && job.header.is_none() {
                    return Err(invalid_state(
                        "upload the job's data (PUT …/batches) before closing it",
                    ));
                }
                (&["Open"], "UploadComplete")
            }
            (_, "Aborted") => (&["Open", "UploadComplete", "InProgress"], "Aborted"),
            _ => {
                return Err(invalid_state(format!(
                    "a {kind} job's state can be set to {} only; got '{}'",
                    if kind == KIND_INGEST {
                        "UploadComplete or Aborted"
                    } else {
                        "Aborted"
                    },
                    state.chars().take(40).collect::<String>()
                )))
            }
        };
        if !self
            .bulk
            .set_bulk_state(&c.tenant_id, &job.id, from, to, None, Utc::now())
            .await?
        {
            let now = self.bulk_job(c, kind, id).await?;
            return Err(invalid_state(format!(
                "a job that is {} cannot become {to}",
                now.state
            )));
        }
        if to == "UploadComplete" {
            self.bulk_wake.notify_one();
        }
        if to == "Aborted" && job.state == "Open" {
            self.bulk.clear_bulk_data(&c.tenant_id, &job.id).await?;
        }
        self.bulk_job(c, kind, id).await
    }

    /// Deletes a finished job (JobComplete, Failed, Aborted) with its data
    /// and results.
    pub async fn delete_bulk_job(&self, c: &Caller, kind: &str, id: &str) -> MosaicResult<()> {
        let job = self.bulk_job(c, kind, id).await?;
        if !["JobComplete", "Failed", "Aborted"].contains(&job.state.as_str()) {
            return Err(invalid_state(format!(
                "only a JobComplete, Failed or Aborted job can be deleted; this one is {}",
                job.state
            )));
        }
        self.bulk.delete_bulk_job(&c.tenant_id, &job.id).await?;
        Ok(())
    }

    /// The header line of an ingest job's results.
    pub fn bulk_result_header(job: &BulkJobRow, kind: ResultKind) -> String {
        let cols: Vec<String> =
            serde_json::from_str(job.header.as_deref().unwrap_or("[]")).unwrap_or_default();
        let mut fields: Vec<&str> = match kind {
            ResultKind::Successful => vec!["sf__Id", "sf__Created"],
            ResultKind::Failed => vec!["sf__Id", "sf__Error"],
            ResultKind::Unprocessed => vec![],
        };
        fields.extend(cols.iter().map(String::as_str));
        csv_line(
            delimiter_byte(&job.column_delimiter).unwrap_or(b','),
            &job.line_ending,
            &fields,
        )
    }

    /// Chunks of an ingest job's results from chunk `from_seq` on.
    pub async fn bulk_result_chunks(
        &self,
        job: &BulkJobRow,
        from_seq: i64,
    ) -> MosaicResult<Vec<BulkResultRow>> {
        self.bulk
            .bulk_results(&job.tenant_id, &job.id, from_seq, RESULT_CHUNKS_PER_READ)
            .await
    }

    /// The job's records no worker processed (an aborted or failed job's
    /// remainder), as uploaded: block `seq` of the data from the cursor on
    /// (`None` past the end).
    pub async fn bulk_unprocessed_block(
        &self,
        job: &BulkJobRow,
        seq: i64,
    ) -> MosaicResult<Option<Vec<u8>>> {
        if !["Aborted", "Failed"].contains(&job.state.as_str()) || job.header.is_none() {
            return Ok(None);
        }
        let start = job.cursor + seq * DATA_BLOCK_BYTES as i64;
        if start >= job.data_bytes {
            return Ok(None);
        }
        let block_no = start / DATA_BLOCK_BYTES as i64;
        let skip = (start % DATA_BLOCK_BYTES as i64) as usize;
        let mut out = Vec::with_capacity(DATA_BLOCK_BYTES);
        if let Some(b) = self
            .bulk
            .bulk_data(&job.tenant_id, &job.id, block_no)
            .await?
        {
            out.extend_from_slice(b.get(skip..).unwrap_or(&[]));
        }
        if skip > 0 {
            if let Some(b) = self
                .bulk
                .bulk_data(&job.tenant_id, &job.id, block_no + 1)
                .await?
            {
                out.extend_from_slice(&b[..skip.min(b.len())]);
            }
        }
        let left = (job.data_bytes - start) as usize;
        out.truncate(left);
        Ok(Some(out))
    }

    /// A page of a finished query job's results: the CSV (with its header)
    /// from `locator` (a record offset; `None`: the start), at most
    /// `max_records` rows.
    pub async fn bulk_query_page(
        &self,
        c: &Caller,
        id: &str,
        locator: Option<&str>,
        max_records: Option<usize>,
    ) -> MosaicResult<QueryPage> {
        let job = self.bulk_job(c, KIND_QUERY, id).await?;
        if job.state != "JobComplete" {
            return Err(invalid_state(format!(
                "results are available once the job is JobComplete; it is {}",
                job.state
            )));
        }
        let max = max_records.unwrap_or(DEFAULT_MAX_RECORDS);
        if max == 0 || max > MAX_MAX_RECORDS {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "maxRecords",
                format!("maxRecords must be 1 to {MAX_MAX_RECORDS}"),
            ));
        }
        let offset = match locator {
            None | Some("") | Some("null") => 0usize,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|o| *o as i64 <= job.processed)
                .ok_or_else(|| {
                    MosaicError::field(
                        ErrorCode::INVALID_INPUT,
                        "locator",
                        "the locator is not one this job's results handed out",
                    )
                })?,
        };
        let delimiter = delimiter_byte(&job.column_delimiter).unwrap_or(b',');
        let cols: Vec<String> =
            serde_json::from_str(job.header.as_deref().unwrap_or("[]")).unwrap_or_default();
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(terminator(&job.line_ending))
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        let io = |e: csv::Error| MosaicError::internal(e.to_string());
        w.write_record(&cols).map_err(io)?;
        let mut seq = (offset / QUERY_PAGE_RECORDS) as i64;
        let mut skip = offset % QUERY_PAGE_RECORDS;
        let mut written = 0usize;
        'pages: while written < max {
            let pages = self
                .bulk
                .bulk_results(&job.tenant_id, &job.id, seq, 4)
                .await?;
            if pages.is_empty() {
                break;
            }
            for p in pages {
                seq = p.seq + 1;
                let mut rdr = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .delimiter(delimiter)
                    .from_reader(p.successes.as_bytes());
                for rec in rdr.byte_records().skip(skip) {
                    let rec = rec.map_err(io)?;
                    w.write_byte_record(&rec).map_err(io)?;
                    written += 1;
                    if written == max {
                        break 'pages;
                    }
                }
                skip = 0;
            }
        }
        let end = offset + written;
        let csv = w
            .into_inner()
            .map_err(|e| MosaicError::internal(e.to_string()))?;
        Ok(QueryPage {
            csv,
            records: written,
            locator: ((end as i64) < job.processed).then(|| end.to_string()),
        })
    }

    /// Starts this instance's bulk worker.
    pub fn start_bulk_worker(self: &Arc<Self>) -> BulkWorker {
        let owner = mosaic_types::new_id();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(worker_loop(self.clone(), owner.clone(), rx));
        BulkWorker {
            stop: tx,
            handle,
            platform: self.clone(),
            owner,
        }
    }
}

async fn worker_loop(
    p: Arc<Platform>,
    owner: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        if p.degradation_level() >= crate::health::DegradationLevel::ReadOnly {
            tokio::select! {
                _ = tokio::time::sleep(WORKER_POLL) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let now = Utc::now();
        let lease = chrono::Duration::from_std(p.config.bulk_lease)
            .unwrap_or(chrono::Duration::seconds(60));
        match p.bulk.claim_bulk_job(&owner, now, now + lease).await {
            Ok(Some(job)) => {
                let id = job.id.clone();
                tracing::info!(job = %id, kind = %job.kind, retries = job.retries, "bulk job claimed");
                if let Err(e) = run_job(&p, &owner, job, &stop).await {
                    tracing::warn!(job = %id, error = %e.message, "bulk job interrupted; its lease expires and it is taken up again");
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = p.bulk_wake.notified() => {}
                    _ = tokio::time::sleep(WORKER_POLL) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.message, "bulk job claim failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(WORKER_POLL) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// The job's user as a caller (permissions as of now).
async fn job_caller(p: &Platform, job: &BulkJobRow) -> MosaicResult<Option<Caller>> {
    let perms = p.access.snapshot(&job.tenant_id, &job.user_id).await?;
    if !perms.is_active() {
        return Ok(None);
    }
    let username = p
        .meta_store
        .user(&job.tenant_id, &job.user_id)
        .await?
        .map(|u| u.username)
        .unwrap_or_default();
    Ok(Some(Caller {
        tenant_id: job.tenant_id.clone(),
        user_id: job.user_id.clone(),
        username,
        perms,
        zone: p.zone_of(&job.tenant_id, &job.user_id).await?,
    }))
}

async fn fail_job(p: &Platform, owner: &str, job: &BulkJobRow, message: &str) -> MosaicResult<()> {
    let lease =
        chrono::Duration::from_std(p.config.bulk_lease).unwrap_or(chrono::Duration::seconds(60));
    let now = Utc::now();
    p.bulk
        .record_bulk_chunk(&BulkChunk {
            tenant_id: job.tenant_id.clone(),
            job_id: job.id.clone(),
            owner: owner.to_string(),
            chunk_no: job.chunk_no,
            cursor: job.cursor,
            records: 0,
            failed: 0,
            successes: String::new(),
            failures: String::new(),
            finish: Some(("Failed".into(), Some(message.to_string()))),
            lease_until: now + lease,
            now,
            elapsed_ms: 0,
        })
        .await?;
    Ok(())
}

async fn run_job(
    p: &Arc<Platform>,
    owner: &str,
    job: BulkJobRow,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> MosaicResult<()> {
    if job.retries > MAX_JOB_RETRIES {
        return fail_job(
            p,
            owner,
            &job,
            &format!("the job was interrupted {MAX_JOB_RETRIES} times"),
        )
        .await;
    }
    let Some(c) = job_caller(p, &job).await? else {
        return fail_job(p, owner, &job, "the job's user is no longer active").await;
    };
    if job.kind == KIND_QUERY {
        run_query(p, owner, &c, job, stop).await
    } else {
        run_ingest(p, owner, &c, job, stop).await
    }
}

/// Waits while the tenant is over its write rate (a chunk counts as one
/// request of the data-write class, as a composite batch does).
async fn wait_for_rate(p: &Platform, tenant: &str, class: mosaic_cache::ratelimit::EndpointClass) {
    for _ in 0..100 {
        match p.rate_limit(tenant, class).await {
            Some(d) if !d.allowed => {
                tokio::time::sleep(d.retry_after.max(Duration::from_millis(10))).await
            }
            _ => return,
        }
    }
}

async fn run_ingest(
    p: &Arc<Platform>,
    owner: &str,
    c: &Caller,
    job: BulkJobRow,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> MosaicResult<()> {
    let header: Vec<String> =
        serde_json::from_str(job.header.as_deref().unwrap_or("[]")).unwrap_or_default();
    let obj = match p.meta.object(&c.tenant_id, &job.object).await {
        Ok(o) => o,
        Err(e) if e.code == ErrorCode::NOT_FOUND => {
            return fail_job(
                p,
                owner,
                &job,
                &format!("the object {} no longer exists", job.object),
            )
            .await
        }
        Err(e) => return Err(e),
    };
    let delimiter = delimiter_byte(&job.column_delimiter).unwrap_or(b',');
    let mut reader = BlockReader {
        platform: p.clone(),
        tenant_id: job.tenant_id.clone(),
        job_id: job.id.clone(),
        data_bytes: job.data_bytes,
        delimiter,
        window: Vec::new(),
        window_start: 0,
    };
    // A job taken over may have had a chunk written but not recorded.
    let mut careful = job.retries > 0;
    let (mut cursor, mut chunk_no, mut index) = (job.cursor, job.chunk_no, job.processed);
    let lease =
        chrono::Duration::from_std(p.config.bulk_lease).unwrap_or(chrono::Duration::seconds(60));
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        wait_for_rate(
            p,
            &c.tenant_id,
            mosaic_cache::ratelimit::EndpointClass::DataWrite,
        )
        .await;
        let (records, next) = match reader.next(cursor, CHUNK_RECORDS).await {
            Ok(r) => r,
            Err(e) if e.code == ErrorCode::INVALID_INPUT => {
                return fail_job(p, owner, &job, &e.message).await;
            }
            Err(e) => return Err(e),
        };
        let rows: Vec<Row> = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let n = index + i as i64;
                let raw: Vec<String> = r
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                let malformed = if std::str::from_utf8(r.as_slice()).is_err() {
                    Some(format!(
                        "INVALID_INPUT:row {}: the values are not UTF-8: --",
                        n + 1
                    ))
                } else if r.len() != header.len() {
                    Some(format!(
                        "INVALID_INPUT:row {}: {} values, the header has {} columns: --",
                        n + 1,
                        r.len(),
                        header.len()
                    ))
                } else {
                    None
                };
                Row {
                    index: n,
                    raw,
                    malformed,
                }
            })
            .collect();
        let (successes, failures, failed) =
            process_chunk(p, c, &job, &obj, &header, &rows, careful, delimiter).await?;
        careful = false;
        let now = Utc::now();
        let done = next >= job.data_bytes;
        let state = p
            .bulk
            .record_bulk_chunk(&BulkChunk {
                tenant_id: job.tenant_id.clone(),
                job_id: job.id.clone(),
                owner: owner.to_string(),
                chunk_no,
                cursor: next,
                records: rows.len() as i64,
                failed,
                successes,
                failures,
                finish: done.then(|| ("JobComplete".to_string(), None)),
                lease_until: now + lease,
                now,
                elapsed_ms: started.elapsed().as_millis() as i64,
            })
            .await?;
        match state.as_deref() {
            Some("InProgress") => {}
            None => {
                tracing::warn!(job = %job.id, "bulk job's lease was lost; another instance continues it");
                return Ok(());
            }
            Some(_) => return Ok(()),
        }
        metrics::counter!("bulk_records_processed_total").increment(rows.len() as u64);
        cursor = next;
        chunk_no += 1;
        index += rows.len() as i64;
    }
}

/// Saves one chunk; returns the success lines, the failure lines and the
/// number of failures.
#[allow(clippy::too_many_arguments)]
async fn process_chunk(
    p: &Arc<Platform>,
    c: &Caller,
    job: &BulkJobRow,
    obj: &mosaic_meta::model::ObjectMeta,
    header: &[String],
    rows: &[Row],
    careful: bool,
    delimiter: u8,
) -> MosaicResult<(String, String, i64)> {
    let id_col = header.iter().position(|h| h.eq_ignore_ascii_case("Id"));
    let body_of = |r: &Row| -> Map<String, Json> {
        let mut m = Map::new();
        for (h, v) in header.iter().zip(&r.raw) {
            if h.eq_ignore_ascii_case("Id") {
                continue;
            }
            if v.is_empty() {
                continue;
            }
            m.insert(
                h.clone(),
                if v == "#N/A" {
                    Json::Null
                } else {
                    Json::String(v.clone())
                },
            );
        }
        m
    };
    let valid: Vec<&Row> = rows.iter().filter(|r| r.malformed.is_none()).collect();
    // (result, created) per valid row, in order.
    let mut outcomes: Vec<RecordResult<(String, bool)>> = Vec::with_capacity(valid.len());
    match job.operation.as_str() {
        "insert" => {
            let mut batch = Vec::with_capacity(valid.len());
            let mut already = vec![false; valid.len()];
            for (k, r) in valid.iter().enumerate() {
                let id = row_id(job, r.index);
                if careful && p.records.locate(&c.tenant_id, &id).await?.is_some() {
                    already[k] = true;
                    continue;
                }
                let mut body = body_of(r);
                if let Some(i) = id_col {
                    if !r.raw[i].is_empty() {
                        body.insert("Id".into(), Json::String(r.raw[i].clone()));
                    }
                }
                batch.push((id, body));
            }
            let mut results = p.create_rows_with_ids(c, obj, &batch).await?.into_iter();
            for (k, r) in valid.iter().enumerate() {
                outcomes.push(if already[k] {
                    Ok((row_id(job, r.index), true))
                } else {
                    results
                        .next()
                        .unwrap_or_else(|| Err(MosaicError::internal("missing result").into()))
                        .map(|id| (id, true))
                });
            }
        }
        "update" => {
            let i = id_col.unwrap_or(0);
            let batch: Vec<Map<String, Json>> = valid
                .iter()
                .map(|r| {
                    let mut m = body_of(r);
                    m.insert("Id".into(), Json::String(r.raw[i].clone()));
                    m.insert(
                        "attributes".into(),
                        serde_json::json!({"type": obj.api_name()}),
                    );
                    m
                })
                .collect();
            for (r, res) in valid.iter().zip(p.update_batch(c, &batch, false).await?) {
                let _ = r;
                outcomes.push(res.map(|id| (id, false)));
            }
        }
        "upsert" => {
            let ext = job.external_id_field.as_deref().unwrap_or("Id");
            let col = header
                .iter()
                .position(|h| h.eq_ignore_ascii_case(ext))
                .unwrap_or(0);
            for r in &valid {
                let value = r.raw[col].clone();
                let mut body = body_of(r);
                if ext.eq_ignore_ascii_case("Id") {
                    body.remove("Id");
                }
                let res = if value.is_empty() {
                    Err(MosaicError::field(
                        ErrorCode::REQUIRED_FIELD_MISSING,
                        ext,
                        format!("the row has no {ext} value to match on"),
                    )
                    .into())
                } else {
                    p.upsert(c, obj.api_name(), ext, &value, &body)
                        .await
                        .map(|o| (o.id, o.created))
                };
                outcomes.push(res);
            }
        }
        _ => {
            let i = id_col.unwrap_or(0);
            let ids: Vec<String> = valid.iter().map(|r| r.raw[i].clone()).collect();
            let results = p.delete_batch(c, &ids, false).await?;
            let hard = job.operation == "hardDelete";
            let deleted: Vec<String> = results
                .iter()
                .filter_map(|r| r.as_ref().ok().cloned())
                .collect();
            let mut purge_errors = std::collections::HashMap::new();
            if hard && !deleted.is_empty() {
                for (id, r) in deleted.iter().zip(p.empty_bin(c, &deleted).await) {
                    if let Err(e) = r {
                        purge_errors.insert(id.clone(), e);
                    }
                }
            }
            for res in results {
                outcomes.push(match res {
                    Ok(id) => match purge_errors.remove(&id) {
                        Some(e) => Err(e.into()),
                        None => Ok((id, false)),
                    },
                    Err(e) => Err(e),
                });
            }
        }
    }
    let le = job.line_ending.as_str();
    let (mut ok, mut bad, mut failed) = (String::new(), String::new(), 0i64);
    let mut results = outcomes.into_iter();
    for r in rows {
        let outcome = match &r.malformed {
            Some(m) => Err(m.clone()),
            None => results
                .next()
                .unwrap_or_else(|| Err(MosaicError::internal("missing result").into()))
                .map_err(|e| error_text(&e)),
        };
        let raw = r.raw.iter().map(String::as_str);
        match outcome {
            Ok((id, created)) => {
                let created = if created { "true" } else { "false" };
                let fields: Vec<&str> = [id.as_str(), created].into_iter().chain(raw).collect();
                ok.push_str(&csv_line(delimiter, le, &fields));
            }
            Err(e) => {
                failed += 1;
                let id = id_col
                    .and_then(|i| r.raw.get(i))
                    .map(String::as_str)
                    .unwrap_or("");
                let fields: Vec<&str> = [id, e.as_str()].into_iter().chain(raw).collect();
                bad.push_str(&csv_line(delimiter, le, &fields));
            }
        }
    }
    Ok((ok, bad, failed))
}

/// A query value as one or more CSV columns (parents flattened as
/// `Relationship.Field`; child subqueries are not part of CSV results).
fn flatten(prefix: &str, rec: &crate::query::QueryRecord, out: &mut Vec<(String, String)>) {
    use crate::query::QueryValue;
    for (name, v) in &rec.fields {
        let col = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match v {
            QueryValue::Value(v) => out.push((col, value_text(v))),
            QueryValue::Record(Some(r)) => flatten(&col, r, out),
            QueryValue::Record(None) => out.push((col, String::new())),
            QueryValue::Children(_) => {}
        }
    }
}

fn value_text(v: &mosaic_types::Value) -> String {
    match mosaic_types::value::to_json(v) {
        Json::Null => String::new(),
        Json::String(s) => s,
        other => other.to_string(),
    }
}

async fn run_query(
    p: &Arc<Platform>,
    owner: &str,
    c: &Caller,
    job: BulkJobRow,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> MosaicResult<()> {
    if job.chunk_no > 0
        && !p
            .bulk
            .reset_bulk_job(&job.tenant_id, &job.id, owner)
            .await?
    {
        return Ok(());
    }
    let soql = job.query.clone().unwrap_or_default();
    let delimiter = delimiter_byte(&job.column_delimiter).unwrap_or(b',');
    let lease =
        chrono::Duration::from_std(p.config.bulk_lease).unwrap_or(chrono::Duration::seconds(60));
    let opts = crate::query::QueryOptions {
        include_deleted: job.operation == "queryAll",
        batch_size: Some(QUERY_PAGE_RECORDS),
    };
    let header: Vec<String> =
        serde_json::from_str(job.header.as_deref().unwrap_or("[]")).unwrap_or_default();
    let first = match p.query(c, &soql, opts).await {
        Ok(r) => r,
        Err(e) if e.code != ErrorCode::SERVICE_UNAVAILABLE => {
            return fail_job(p, owner, &job, &format!("{}: {}", e.code, e.message)).await
        }
        Err(e) => return Err(e),
    };
    let mut page = Some(first);
    let mut chunk_no = 0i64;
    while let Some(r) = page.take() {
        if *stop.borrow() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        wait_for_rate(
            p,
            &c.tenant_id,
            mosaic_cache::ratelimit::EndpointClass::Query,
        )
        .await;
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(terminator(&job.line_ending))
            .quote_style(csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        for rec in &r.records {
            let mut cols = Vec::new();
            flatten("", rec, &mut cols);
            let line: Vec<&str> = header
                .iter()
                .map(|n| {
                    cols.iter()
                        .find(|(c, _)| c.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("")
                })
                .collect();
            w.write_record(&line)
                .map_err(|e| MosaicError::internal(e.to_string()))?;
        }
        let body = String::from_utf8(
            w.into_inner()
                .map_err(|e| MosaicError::internal(e.to_string()))?,
        )
        .unwrap_or_default();
        let next = match &r.next {
            Some(l) => p.query_more(c, l).await?,
            None => None,
        };
        let now = Utc::now();
        let state = p
            .bulk
            .record_bulk_chunk(&BulkChunk {
                tenant_id: job.tenant_id.clone(),
                job_id: job.id.clone(),
                owner: owner.to_string(),
                chunk_no,
                cursor: 0,
                records: r.records.len() as i64,
                failed: 0,
                successes: body,
                failures: String::new(),
                finish: next.is_none().then(|| ("JobComplete".to_string(), None)),
                lease_until: now + lease,
                now,
                elapsed_ms: started.elapsed().as_millis() as i64,
            })
            .await?;
        if state.as_deref() != Some("InProgress") {
            return Ok(());
        }
        chunk_no += 1;
        page = next;
    }
    Ok(())
}

/// The CSV columns of a planned query: fields by their path
/// (`Account__r.Name`), aggregates by alias; child subqueries have none.
fn plan_columns(planned: &mosaic_store::plan::PlannedQuery) -> Vec<String> {
    use mosaic_store::plan::OutputItem;
    let path = |hops: &[mosaic_store::plan::Hop], last: &str| {
        hops.iter()
            .map(|h| h.name.as_str())
            .chain([last])
            .collect::<Vec<_>>()
            .join(".")
    };
    planned
        .items
        .iter()
        .filter_map(|i| match i {
            OutputItem::Field { hops, name, .. } | OutputItem::Formula { hops, name, .. } => {
                Some(path(hops, name))
            }
            OutputItem::User { hops, field } => Some(path(hops, field.api_name())),
            OutputItem::Aggregate { name, .. } => Some(name.clone()),
            OutputItem::Child(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_quote_every_field_and_end_as_asked() {
        assert_eq!(
            csv_line(b',', "LF", &["a", "b,c", "d\"e"]),
            "\"a\",\"b,c\",\"d\"\"e\"\n"
        );
        assert_eq!(csv_line(b'|', "CRLF", &["a", "b"]), "\"a\"|\"b\"\r\n");
    }

    #[test]
    fn row_ids_are_stable_per_job_and_row() {
        let now = Utc::now();
        let job = BulkJobRow {
            tenant_id: "t".into(),
            id: "j".into(),
            user_id: "u".into(),
            kind: KIND_INGEST.into(),
            operation: "insert".into(),
            object: "A".into(),
            external_id_field: None,
            state: "Open".into(),
            column_delimiter: "COMMA".into(),
            line_ending: "LF".into(),
            api_version: "v60.0".into(),
            query: None,
            header: None,
            data_bytes: 0,
            cursor: 0,
            chunk_no: 0,
            processed: 0,
            failed: 0,
            retries: 0,
            processing_ms: 0,
            error_message: None,
            created_at: now,
            updated_at: now,
            lease_owner: None,
        };
        assert_eq!(row_id(&job, 7), row_id(&job, 7));
        assert_ne!(row_id(&job, 7), row_id(&job, 8));
        assert!(mosaic_types::id::is_valid_id(&row_id(&job, 7)));
    }
}
