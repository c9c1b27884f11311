//! The recycle bin and the replication API under `/services/data/v{version}/`
//! (decision 0029): undelete, the bin's listing and emptying, and
//! `sobjects/{O}/updated` / `sobjects/{O}/deleted`.

use crate::auth::{Auth, Customizer};
use crate::data::version;
use crate::error::ApiError;
use crate::extract::{parse_json, PathParams, QueryMap};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use mosaic_runtime::recycle_bin::parse_replication_date;
use mosaic_types::value::sf_datetime;
use mosaic_types::{ErrorCode, MosaicError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let (s, p) = (Access::Session, Access::Permission);
    vec![
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/sobjects/{object}/{id}/undelete",
            p,
            "data.undelete",
            "Restore a record (and what its delete cascaded to) from the recycle bin",
            post(undelete),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/updated",
            p,
            "data.updated",
            "Ids of records changed in a time range (replication)",
            get(updated),
        )
        .query(&["start", "end"]),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/deleted",
            p,
            "data.deleted",
            "Records deleted in a time range (replication)",
            get(deleted),
        )
        .query(&["start", "end"]),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/recycleBin",
            s,
            "data.recycle_bin",
            "Records in the recycle bin the caller may see",
            get(list),
        )
        .query(&["object", "limit"]),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/recycleBin/empty",
            s,
            "data.recycle_bin_empty",
            "Remove records from the recycle bin for good",
            post(empty),
        ),
    ]
}

/// The metadata trash (deleted fields and objects kept restorable) is not
/// built yet: its routes answer 501.
pub fn metadata_routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let a = Access::Customize;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/trash",
            a,
            "metadata.trash",
            "Deleted fields and objects still restorable (not implemented)",
            get(trash_not_implemented),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/metadata/v1/objects/{object}/fields/{field}/restore",
            a,
            "metadata.fields.restore",
            "Restore a deleted field (not implemented)",
            post(restore_field_not_implemented),
        ),
    ]
}

fn trash_error() -> ApiError {
    MosaicError::new(
        ErrorCode::NOT_IMPLEMENTED,
        "deleted fields and objects are not kept in a trash yet: deleting one removes its data at once",
    )
    .into()
}

async fn trash_not_implemented(Customizer(_c): Customizer) -> Result<Json<Value>, ApiError> {
    Err(trash_error())
}

async fn restore_field_not_implemented(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    PathParams((object, _field)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    s.platform.meta.object(&c.tenant_id, &object).await?;
    Err(trash_error())
}

async fn undelete(
    State(s): State<AppState>,
    PathParams((v, object, id)): PathParams<(String, String, String)>,
    Auth(c): Auth,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    if !body.iter().all(|b| b.is_ascii_whitespace()) {
        let m: Map<String, Value> = parse_json(&body)?;
        if let Some(k) = m.keys().next() {
            return Err(MosaicError::field(
                ErrorCode::INVALID_FIELD,
                k.clone(),
                format!(
                    "undelete takes an empty body or {{}}; unexpected field '{}'",
                    k.chars().take(80).collect::<String>()
                ),
            )
            .into());
        }
    }
    let n = s.platform.undelete(&c, &object, &id).await?;
    let id = mosaic_types::id::normalize_id(&id).unwrap_or(id);
    Ok(Json(
        json!({"id": id, "success": true, "errors": [], "restored": n}),
    ))
}

fn range(
    q: &QueryMap,
) -> Result<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>), ApiError> {
    let mut out = Vec::with_capacity(2);
    for name in ["start", "end"] {
        let text = q.0.get(name).ok_or_else(|| {
            MosaicError::field(
                ErrorCode::INVALID_REPLICATION_DATE,
                name,
                format!("{name} is required: an ISO 8601 datetime (e.g. 2026-01-31T10:00:00Z)"),
            )
        })?;
        out.push(parse_replication_date(name, text)?);
    }
    Ok((out[0], out[1]))
}

async fn updated(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    s.platform.replication_access(&c, &object).await?;
    let (start, end) = range(&q)?;
    let (ids, r) = s.platform.updated_ids(&c, &object, start, end).await?;
    Ok(Json(json!({
        "ids": ids,
        "latestDateCovered": sf_datetime(&r.latest_covered),
    })))
}

async fn deleted(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    s.platform.replication_access(&c, &object).await?;
    let (start, end) = range(&q)?;
    let d = s.platform.deleted_records(&c, &object, start, end).await?;
    Ok(Json(json!({
        "deletedRecords": d.records.iter().map(|(id, at)| json!({
            "id": id,
            "deletedDate": sf_datetime(at),
        })).collect::<Vec<_>>(),
        "earliestDateAvailable": sf_datetime(&d.earliest_available),
        "latestDateCovered": sf_datetime(&d.latest_covered),
    })))
}

async fn list(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    let limit = match q.0.get("limit") {
        None => 200,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=mosaic_runtime::recycle_bin::MAX_BIN_LIST).contains(n))
            .ok_or_else(|| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "limit",
                    format!(
                        "limit must be a whole number from 1 to {}",
                        mosaic_runtime::recycle_bin::MAX_BIN_LIST
                    ),
                )
            })?,
    };
    let entries = s
        .platform
        .bin_list(&c, q.0.get("object").map(String::as_str), limit)
        .await?;
    Ok(Json(json!({
        "records": entries.iter().map(|(e, object)| json!({
            "id": e.id,
            "sobject": object,
            "deletedDate": sf_datetime(&e.deleted_at),
            "deletedById": e.deleted_by,
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {
    ids: Vec<String>,
}

async fn empty(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    let b: EmptyBody = parse_json(&body)?;
    if b.ids.is_empty() || b.ids.len() > mosaic_runtime::records::MAX_BATCH_RECORDS {
        return Err(MosaicError::field(
            ErrorCode::INVALID_INPUT,
            "ids",
            format!(
                "ids must list 1 to {} record ids",
                mosaic_runtime::records::MAX_BATCH_RECORDS
            ),
        )
        .into());
    }
    let results = s.platform.empty_bin(&c, &b.ids).await;
    Ok(crate::data::batch_json(
        results.into_iter().map(|r| r.map_err(Into::into)).collect(),
    ))
}
