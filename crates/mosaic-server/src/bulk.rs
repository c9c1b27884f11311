//! The Bulk API 2.0 under `/services/data/v{version}/jobs/` (decision
//! 0035): ingest jobs (create, CSV upload, close or abort, results as CSV)
//! and query jobs (results as CSV pages with `Sforce-Locator`).

use crate::auth::Auth;
use crate::data::version;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryMap};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use mosaic_runtime::bulk::{
    NewIngestJob, NewQueryJob, ResultKind, KIND_INGEST, KIND_QUERY, MAX_UPLOAD_BYTES,
};
use mosaic_runtime::{Caller, Platform};
use mosaic_store::BulkJobRow;
use mosaic_types::value::sf_datetime;
use mosaic_types::{ErrorCode, MosaicError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    // Any active user: jobs are the caller's own (an administrator sees the
    // tenant's); creating one checks the object permission it needs.
    let p = Access::Session;
    let ingest = "/services/data/{version}/jobs/ingest";
    let ingest_job = "/services/data/{version}/jobs/ingest/{job_id}";
    let query = "/services/data/{version}/jobs/query";
    let query_job = "/services/data/{version}/jobs/query/{job_id}";
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/jobs",
            p,
            "bulk.index",
            "The Bulk API's job collections (ingest, query)",
            get(jobs_index),
        ),
        RouteSpec::new(
            Method::POST,
            ingest,
            p,
            "bulk.ingest.create",
            "Create a Bulk API ingest job",
            post(create_ingest),
        ),
        RouteSpec::new(
            Method::GET,
            ingest,
            p,
            "bulk.ingest.list",
            "The caller's ingest jobs",
            get(list_ingest),
        )
        .query(&["queryLocator"]),
        RouteSpec::new(
            Method::GET,
            ingest_job,
            p,
            "bulk.ingest.get",
            "An ingest job's state and progress",
            get(get_ingest),
        ),
        RouteSpec::new(
            Method::PATCH,
            ingest_job,
            p,
            "bulk.ingest.state",
            "Close (UploadComplete) or abort an ingest job",
            patch(patch_ingest),
        ),
        RouteSpec::new(
            Method::DELETE,
            ingest_job,
            p,
            "bulk.ingest.delete",
            "Delete a finished ingest job",
            delete(delete_ingest),
        ),
        RouteSpec::new(
            Method::PUT,
            "/services/data/{version}/jobs/ingest/{job_id}/batches",
            p,
            "bulk.ingest.upload",
            "Upload an ingest job's CSV data (up to 150 MB, streamed)",
            put(upload),
        )
        .body(Body_::Csv),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/jobs/ingest/{job_id}/successfulResults",
            p,
            "bulk.ingest.successful",
            "The records saved (sf__Id, sf__Created and the uploaded columns), as CSV",
            get(successful),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/jobs/ingest/{job_id}/failedResults",
            p,
            "bulk.ingest.failed",
            "The records refused (sf__Id, sf__Error and the uploaded columns), as CSV",
            get(failed),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/jobs/ingest/{job_id}/unprocessedrecords",
            p,
            "bulk.ingest.unprocessed",
            "The records an aborted or failed job never reached, as CSV",
            get(unprocessed),
        ),
        RouteSpec::new(
            Method::POST,
            query,
            p,
            "bulk.query.create",
            "Create a Bulk API query job (SOQL run as the caller)",
            post(create_query),
        ),
        RouteSpec::new(
            Method::GET,
            query,
            p,
            "bulk.query.list",
            "The caller's query jobs",
            get(list_query),
        )
        .query(&["queryLocator"]),
        RouteSpec::new(
            Method::GET,
            query_job,
            p,
            "bulk.query.get",
            "A query job's state and progress",
            get(get_query),
        ),
        RouteSpec::new(
            Method::PATCH,
            query_job,
            p,
            "bulk.query.state",
            "Abort a query job",
            patch(patch_query),
        ),
        RouteSpec::new(
            Method::DELETE,
            query_job,
            p,
            "bulk.query.delete",
            "Delete a finished query job",
            delete(delete_query),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/jobs/query/{job_id}/results",
            p,
            "bulk.query.results",
            "A page of a query job's results as CSV (Sforce-Locator, Sforce-NumberOfRecords)",
            get(query_results),
        )
        .query(&["locator", "maxRecords"]),
    ]
}

use crate::routes::Body as Body_;

/// `v60.0` → 60.0 (Salesforce writes `apiVersion` as a number).
fn api_version_number(v: &str) -> Value {
    v.trim_start_matches('v')
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A job as Salesforce's Bulk API 2.0 renders it.
fn render_job(j: &BulkJobRow) -> Value {
    let mut v = json!({
        "id": j.id,
        "operation": j.operation,
        "object": j.object,
        "createdById": j.user_id,
        "createdDate": sf_datetime(&j.created_at),
        "systemModstamp": sf_datetime(&j.updated_at),
        "state": j.state,
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": api_version_number(&j.api_version),
        "jobType": if j.kind == KIND_QUERY { "V2Query" } else { "V2Ingest" },
        "lineEnding": j.line_ending,
        "columnDelimiter": j.column_delimiter,
        "numberRecordsProcessed": j.processed,
        "retries": j.retries,
        "totalProcessingTime": j.processing_ms,
    });
    let m = v.as_object_mut().expect("an object");
    if j.kind == KIND_INGEST {
        m.insert("numberRecordsFailed".into(), json!(j.failed));
        m.insert("apiActiveProcessingTime".into(), json!(j.processing_ms));
        m.insert("apexProcessingTime".into(), json!(0));
        m.insert(
            "contentUrl".into(),
            json!(format!(
                "services/data/{}/jobs/ingest/{}/batches",
                j.api_version, j.id
            )),
        );
        if let Some(f) = &j.external_id_field {
            m.insert("externalIdFieldName".into(), json!(f));
        }
    } else if let Some(q) = &j.query {
        m.insert("query".into(), json!(q));
    }
    if let Some(e) = &j.error_message {
        m.insert("errorMessage".into(), json!(e));
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IngestBody {
    object: String,
    #[serde(default = "insert")]
    operation: String,
    external_id_field_name: Option<String>,
    column_delimiter: Option<String>,
    line_ending: Option<String>,
    content_type: Option<String>,
}

fn insert() -> String {
    "insert".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct QueryBody {
    query: String,
    #[serde(default = "query_op")]
    operation: String,
    column_delimiter: Option<String>,
    line_ending: Option<String>,
    content_type: Option<String>,
}

fn query_op() -> String {
    "query".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
}

async fn create_ingest(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<IngestBody>,
) -> Result<Response, ApiError> {
    let v = version(&v)?;
    let job = s
        .platform
        .create_ingest_job(
            &c,
            v,
            NewIngestJob {
                object: b.object,
                operation: b.operation,
                external_id_field: b.external_id_field_name,
                column_delimiter: b.column_delimiter,
                line_ending: b.line_ending,
                content_type: b.content_type,
            },
        )
        .await?;
    Ok((StatusCode::OK, Json(render_job(&job))).into_response())
}

async fn create_query(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<QueryBody>,
) -> Result<Response, ApiError> {
    let v = version(&v)?;
    let job = s
        .platform
        .create_query_job(
            &c,
            v,
            NewQueryJob {
                query: b.query,
                operation: b.operation,
                column_delimiter: b.column_delimiter,
                line_ending: b.line_ending,
                content_type: b.content_type,
            },
        )
        .await?;
    Ok((StatusCode::OK, Json(render_job(&job))).into_response())
}

async fn list(
    s: &AppState,
    c: &Caller,
    v: &str,
    kind: &str,
    q: &QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(v)?;
    let after = q.0.get("queryLocator").map(String::as_str);
    let (jobs, next) = s.platform.bulk_jobs(c, kind, after).await?;
    Ok(Json(json!({
        "done": next.is_none(),
        "records": jobs.iter().map(render_job).collect::<Vec<_>>(),
        "nextRecordsUrl": next.map(|n| format!("/services/data/{v}/jobs/{kind}?queryLocator={n}")),
    })))
}

/// What `jobs` in the resources list leads to: the two job collections.
async fn jobs_index(
    PathParams(v): PathParams<String>,
    Auth(_c): Auth,
) -> Result<Json<Value>, ApiError> {
    let v = crate::data::version(&v)?;
    Ok(Json(json!({
        "ingest": format!("/services/data/{v}/jobs/ingest"),
        "query": format!("/services/data/{v}/jobs/query"),
    })))
}

async fn list_ingest(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    list(&s, &c, &v, KIND_INGEST, &q).await
}

async fn list_query(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    list(&s, &c, &v, KIND_QUERY, &q).await
}

async fn get_ingest(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    Ok(Json(render_job(
        &s.platform.bulk_job(&c, KIND_INGEST, &id).await?,
    )))
}

async fn get_query(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    Ok(Json(render_job(
        &s.platform.bulk_job(&c, KIND_QUERY, &id).await?,
    )))
}

async fn patch_ingest(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<StateBody>,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    let job = s
        .platform
        .set_bulk_job_state(&c, KIND_INGEST, &id, &b.state)
        .await?;
    Ok(Json(render_job(&job)))
}

async fn patch_query(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
    JsonBody(b): JsonBody<StateBody>,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    let job = s
        .platform
        .set_bulk_job_state(&c, KIND_QUERY, &id, &b.state)
        .await?;
    Ok(Json(render_job(&job)))
}

async fn delete_ingest(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
) -> Result<StatusCode, ApiError> {
    version(&v)?;
    s.platform.delete_bulk_job(&c, KIND_INGEST, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_query(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
) -> Result<StatusCode, ApiError> {
    version(&v)?;
    s.platform.delete_bulk_job(&c, KIND_QUERY, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn is_csv(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/csv")
        })
        .unwrap_or(false)
}

/// The upload: the body is streamed into the job's stored blocks, never
/// held whole (its own limit, [`MAX_UPLOAD_BYTES`], not the JSON one).
async fn upload(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
    req: Request,
) -> Result<StatusCode, ApiError> {
    version(&v)?;
    if !is_csv(&req) {
        return Err(ApiError::new(
            ErrorCode::UNSUPPORTED_MEDIA_TYPE,
            "job data is uploaded as Content-Type: text/csv",
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            ErrorCode::REQUEST_TOO_LARGE,
            format!("the upload exceeds the limit of {MAX_UPLOAD_BYTES} bytes per job"),
        )
    };
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES) {
        return Err(too_large());
    }
    let mut up = s.platform.begin_upload(&c, &id).await?;
    let mut body = req.into_body().into_data_stream();
    while let Some(frame) = body.next().await {
        match frame {
            Ok(bytes) => up.push(&bytes).await?,
            Err(e) => {
                up.abandon().await;
                return Err(ApiError::new(
                    ErrorCode::INVALID_INPUT,
                    format!("the upload was cut off: {e}"),
                ));
            }
        }
    }
    up.finish().await?;
    Ok(StatusCode::CREATED)
}

fn csv_response(body: Body) -> Response {
    let mut res = Response::new(body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    res
}

/// Streams an ingest job's results: the header line, then the stored
/// chunks' lines of `kind`, a few chunks per read.
async fn results(
    s: AppState,
    c: Caller,
    v: String,
    id: String,
    kind: ResultKind,
) -> Result<Response, ApiError> {
    version(&v)?;
    let job = s.platform.bulk_job(&c, KIND_INGEST, &id).await?;
    let header = Platform::bulk_result_header(&job, kind);
    let platform = s.platform.clone();
    struct St {
        platform: Arc<Platform>,
        job: BulkJobRow,
        next: i64,
        done: bool,
    }
    let st = St {
        platform,
        job,
        next: 0,
        done: false,
    };
    let rest = futures_util::stream::unfold(st, move |mut st| async move {
        if st.done {
            return None;
        }
        let out = if kind == ResultKind::Unprocessed {
            match st.platform.bulk_unprocessed_block(&st.job, st.next).await {
                Ok(Some(b)) => Ok(b),
                Ok(None) => return None,
                Err(e) => Err(e),
            }
        } else {
            match st.platform.bulk_result_chunks(&st.job, st.next).await {
                Ok(rows) if rows.is_empty() => return None,
                Ok(rows) => {
                    st.next = rows.last().map_or(st.next, |r| r.seq);
                    let mut b = Vec::new();
                    for r in &rows {
                        b.extend_from_slice(match kind {
                            ResultKind::Successful => r.successes.as_bytes(),
                            _ => r.failures.as_bytes(),
                        });
                    }
                    Ok(b)
                }
                Err(e) => Err(e),
            }
        };
        st.next += 1;
        match out {
            Ok(b) => Some((Ok::<_, std::io::Error>(b), st)),
            Err(e) => {
                st.done = true;
                Some((Err(std::io::Error::other(e.message)), st))
            }
        }
    });
    let first = futures_util::stream::once(async move { Ok(header.into_bytes()) });
    Ok(csv_response(Body::from_stream(first.chain(rest))))
}

async fn successful(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
) -> Result<Response, ApiError> {
    results(s, c, v, id, ResultKind::Successful).await
}

async fn failed(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
) -> Result<Response, ApiError> {
    results(s, c, v, id, ResultKind::Failed).await
}

async fn unprocessed(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
) -> Result<Response, ApiError> {
    results(s, c, v, id, ResultKind::Unprocessed).await
}

async fn query_results(
    State(s): State<AppState>,
    PathParams((v, id)): PathParams<(String, String)>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Response, ApiError> {
    version(&v)?;
    let max = match q.0.get("maxRecords") {
        None => None,
        Some(m) => Some(m.parse::<usize>().map_err(|_| {
            MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "maxRecords",
                "maxRecords must be a positive whole number",
            )
        })?),
    };
    let page = s
        .platform
        .bulk_query_page(&c, &id, q.0.get("locator").map(String::as_str), max)
        .await?;
    let mut res = csv_response(Body::from(page.csv));
    let h = res.headers_mut();
    let locator = page.locator.unwrap_or_else(|| "null".into());
    if let Ok(l) = HeaderValue::from_str(&locator) {
        h.insert("sforce-locator", l);
    }
    h.insert("sforce-numberofrecords", HeaderValue::from(page.records));
    Ok(res)
}
