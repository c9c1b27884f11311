//! The Data API under `/services/data/v{version}/`, following Salesforce's
//! REST conventions.

use crate::auth::Auth;
use crate::error::{error_json, ApiError};
use crate::extract::{JsonBody, PathParams, QueryMap};
use crate::render;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_runtime::access::{self, ObjectOp};
use mosaic_runtime::records::RecordResult;
use mosaic_types::{ErrorCode, MosaicError};
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;

/// The API version Mosaic reports as its newest Salesforce-compatible one.
pub const API_VERSION: &str = "60.0";

static VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^v[0-9]{1,3}(\.[0-9]{1,2})?$").expect("version regex"));

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let (s, p) = (Access::Session, Access::Permission);
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/data",
            Access::Public,
            "data.versions",
            "API versions",
            get(versions),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}",
            s,
            "data.resources",
            "Resources of an API version",
            get(resources),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects",
            s,
            "data.describe_global",
            "Objects the caller may see",
            get(describe_global),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}",
            p,
            "data.object_info",
            "An object's basic information and recent records, or a filtered list",
            get(object_info),
        )
        .query(&["fields", "where", "order_by", "limit", "offset"]),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/sobjects/{object}",
            p,
            "data.create",
            "Create a record",
            post(create),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/describe",
            p,
            "data.describe",
            "Describe an object",
            get(describe),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/{id}",
            p,
            "data.read",
            "Get a record",
            get(read),
        )
        .query(&["fields"]),
        RouteSpec::new(
            Method::PATCH,
            "/services/data/{version}/sobjects/{object}/{id}",
            p,
            "data.update",
            "Update a record",
            patch(update),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/data/{version}/sobjects/{object}/{id}",
            p,
            "data.delete",
            "Delete a record",
            delete(self::delete),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/{field}/{value}",
            p,
            "data.read_by_external_id",
            "Get a record by external id",
            get(read_by_external),
        )
        .query(&["fields"]),
        RouteSpec::new(
            Method::PATCH,
            "/services/data/{version}/sobjects/{object}/{field}/{value}",
            p,
            "data.upsert",
            "Upsert a record by external id",
            patch(upsert),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/data/{version}/sobjects/{object}/{field}/{value}",
            p,
            "data.delete_by_external_id",
            "Delete a record by external id",
            delete(delete_by_external),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/composite/sobjects",
            s,
            "data.composite_create",
            "Create up to 200 records",
            post(composite_create),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/data/{version}/composite/sobjects",
            s,
            "data.composite_update",
            "Update up to 200 records",
            patch(composite_update),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/data/{version}/composite/sobjects",
            s,
            "data.composite_delete",
            "Delete up to 200 records",
            delete(composite_delete),
        )
        .query(&["ids", "allOrNone"]),
    ]
}

/// Checks the `v{version}` path segment (`v1` or `vNN.N`).
pub(crate) fn version(v: &str) -> Result<&str, ApiError> {
    if VERSION.is_match(v) {
        Ok(v)
    } else {
        Err(ApiError::new(
            ErrorCode::NOT_FOUND,
            format!(
                "The requested resource does not exist: unsupported API version '{}' (use v1 or vNN.N)",
                v.chars().take(20).collect::<String>()
            ),
        ))
    }
}

async fn versions() -> Json<Value> {
    Json(json!([
        {"label": "Mosaic", "url": "/services/data/v1", "version": "1"},
        {"label": "Mosaic (Salesforce-compatible)", "url": format!("/services/data/v{API_VERSION}"), "version": API_VERSION},
    ]))
}

/// The resources an API version lists: each is routed (`GET` answers).
pub const RESOURCES: [&str; 10] = [
    "sobjects",
    "query",
    "queryAll",
    "search",
    "parameterizedSearch",
    "composite",
    "limits",
    "recent",
    "tooling",
    "jobs",
];

async fn resources(
    PathParams(v): PathParams<String>,
    Auth(_c): Auth,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let mut out = serde_json::Map::new();
    for r in RESOURCES {
        out.insert(r.to_string(), json!(format!("/services/data/{v}/{r}")));
    }
    Ok(Json(Value::Object(out)))
}

async fn describe_global(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let list = s.platform.meta.objects(&c.tenant_id).await?;
    Ok(Json(json!({
        "encoding": "UTF-8",
        "maxBatchSize": mosaic_runtime::records::MAX_BATCH_RECORDS,
        "sobjects": list
            .iter()
            .filter(|o| c.perms.can_read_object(o.id()))
            .map(|o| render::global_entry(v, &o.def))
            .collect::<Vec<_>>(),
    })))
}

async fn object_info(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    headers: axum::http::HeaderMap,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    access::require(&c, &o, ObjectOp::Read)?;
    if crate::query::is_list(&q) {
        return crate::query::list(&s, &c, v, &object, &q, &headers).await;
    }
    Ok(Json(json!({
        "objectDescribe": render::global_entry(v, &o.def),
        "recentItems": [],
    })))
}

async fn describe(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let v = version(&v)?;
    // The epoch is read before the definitions: a change that lands while
    // this describe is built moves it, so the entry is never served again.
    let epoch = s.platform.meta.epoch();
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    access::require(&c, &o, ObjectOp::Read)?;
    if !c.perms.is_admin() {
        // Field-level security: rendered for this caller, never cached.
        let o = access::visible_object(&c, &o);
        let names = render::object_names(&s, &c.tenant_id).await?;
        let children: Vec<(String, mosaic_meta::FieldDef)> = s
            .platform
            .meta
            .children(&c.tenant_id, o.id())
            .await?
            .into_iter()
            .filter(|(child, f)| {
                c.perms.can_read_object(child.id()) && access::can_read_field(&c, f)
            })
            .map(|(child, f)| (child.api_name().to_string(), f))
            .collect();
        let mut json = render::describe(v, &o, &names, &children);
        caller_flags(&c, &o, &mut json);
        return Ok(crate::etag::json_value(&headers, &json));
    }
    // The tenant's newest definition change: a describe also shows other
    // objects (child relationships, reference targets).
    let last_modified = s
        .platform
        .meta
        .objects(&c.tenant_id)
        .await?
        .iter()
        .map(|x| x.def.updated_at)
        .max()
        .unwrap_or(o.def.updated_at);
    if not_modified_since(&headers, last_modified) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        set_last_modified(&mut r, last_modified);
        return Ok(r);
    }
    let key = (
        c.tenant_id.clone(),
        o.id().to_string(),
        v.to_string(),
        epoch,
    );
    let body = match s.describes.get(&key) {
        Some(b) => {
            s.describe_stats.hit();
            metrics::counter!("cache_hits_total", "cache" => "describe", "layer" => "l1")
                .increment(1);
            b
        }
        None => {
            s.describe_stats.miss();
            metrics::counter!("cache_misses_total", "cache" => "describe", "layer" => "l1")
                .increment(1);
            let names = render::object_names(&s, &c.tenant_id).await?;
            let children: Vec<(String, mosaic_meta::FieldDef)> = s
                .platform
                .meta
                .children(&c.tenant_id, o.id())
                .await?
                .into_iter()
                .map(|(child, f)| (child.api_name().to_string(), f))
                .collect();
            let json = render::describe(v, &o, &names, &children);
            let bytes = axum::body::Bytes::from(serde_json::to_vec(&json).map_err(|e| {
                mosaic_types::MosaicError::internal(format!("render describe: {e}"))
            })?);
            s.describes.insert(key, bytes.clone());
            bytes
        }
    };
    let mut r = crate::etag::json_definition(&headers, body);
    set_last_modified(&mut r, last_modified);
    Ok(r)
}

/// Whether `If-Modified-Since` is at or after `at` (HTTP dates have whole
/// seconds); an unreadable date is ignored, as RFC 9110 says.
fn not_modified_since(headers: &axum::http::HeaderMap, at: chrono::DateTime<chrono::Utc>) -> bool {
    headers
        .get(axum::http::header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v.trim()).ok())
        .is_some_and(|since| since.timestamp() >= at.timestamp())
}

fn set_last_modified(r: &mut Response, at: chrono::DateTime<chrono::Utc>) {
    let text = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
        r.headers_mut().insert(axum::http::header::LAST_MODIFIED, v);
    }
}

/// A describe's create / update / delete flags as this caller has them.
fn caller_flags(c: &mosaic_runtime::Caller, o: &mosaic_meta::model::ObjectMeta, json: &mut Value) {
    let flags = c.perms.object(o.id());
    json["createable"] = json!(flags.create);
    json["updateable"] = json!(flags.edit);
    json["deletable"] = json!(flags.delete);
    if let Some(fields) = json["fields"].as_array_mut() {
        for f in fields {
            let editable = f["name"]
                .as_str()
                .and_then(|n| o.field(n))
                .map(|d| c.perms.field(&d.id).edit);
            if editable == Some(false) {
                f["createable"] = json!(false);
                f["updateable"] = json!(false);
            }
        }
    }
}

fn created(id: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "success": true, "errors": []})),
    )
}

async fn create(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    version(&v)?;
    if crate::files::handles(&object) {
        return crate::files::create(&s, &c, &object, req).await;
    }
    let JsonBody(body) =
        <JsonBody<Map<String, Value>> as axum::extract::FromRequest<AppState>>::from_request(
            req, &s,
        )
        .await?;
    if body.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
        return Err(MosaicError::field(
            ErrorCode::INVALID_FIELD_FOR_INSERT_UPDATE,
            "Id",
            "Unable to create/update fields: Id. A new record's Id is assigned by the platform.",
        )
        .into());
    }
    let id = s.platform.create(&c, &object, &body).await?;
    Ok(created(&id).into_response())
}

async fn read(
    State(s): State<AppState>,
    PathParams((v, object, id)): PathParams<(String, String, String)>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let fields = q.list("fields");
    let r = s.platform.get(&c, &object, &id, fields.as_deref()).await?;
    Ok(Json(render::record(v, &r)))
}

async fn update(
    State(s): State<AppState>,
    PathParams((v, object, id)): PathParams<(String, String, String)>,
    Auth(c): Auth,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<StatusCode, ApiError> {
    version(&v)?;
    crate::files::check_update(&object, &body)?;
    s.platform.update(&c, &object, &id, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(
    State(s): State<AppState>,
    PathParams((v, object, id)): PathParams<(String, String, String)>,
    Auth(c): Auth,
) -> Result<StatusCode, ApiError> {
    version(&v)?;
    if crate::files::handles(&object) {
        return crate::files::delete(&s, &c, &object, &id).await;
    }
    s.platform.delete(&c, &object, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn upsert(
    State(s): State<AppState>,
    PathParams((v, object, field, value)): PathParams<(String, String, String, String)>,
    Auth(c): Auth,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    version(&v)?;
    let out = s
        .platform
        .upsert(&c, &object, &field, &value, &body)
        .await?;
    Ok(if out.created {
        (
            StatusCode::CREATED,
            Json(json!({"id": out.id, "success": true, "errors": [], "created": true})),
        )
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    })
}

/// Resolves an external-id path to a record id (404 when none).
async fn external_id(
    s: &AppState,
    c: &mosaic_runtime::Caller,
    object: &str,
    field: &str,
    value: &str,
) -> Result<String, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, object).await?;
    access::require(c, &o, ObjectOp::Read)?;
    if field.eq_ignore_ascii_case("Id") {
        return Ok(mosaic_runtime::records::parse_record_id(value)?);
    }
    let f = o
        .field(field)
        .filter(|f| access::can_read_field(c, f))
        .ok_or_else(|| {
            MosaicError::field(
                ErrorCode::INVALID_FIELD,
                field.chars().take(80).collect::<String>(),
                format!(
                    "No such column '{}' on sobject of type {}",
                    field.chars().take(80).collect::<String>(),
                    o.api_name()
                ),
            )
        })?;
    let spec = mosaic_meta::service::index_spec(f)
        .filter(|_| f.is_external_id || f.is_unique)
        .ok_or_else(|| {
            MosaicError::field(
                ErrorCode::INVALID_FIELD,
                f.api_name.clone(),
                format!("{} is not an external id field", f.api_name),
            )
        })?;
    let key = mosaic_meta::coerce::coerce(f, &Value::String(value.to_string()))?;
    let ids = s
        .platform
        .records
        .find_by_index(&c.tenant_id, o.id(), &spec, &key)
        .await?;
    match ids.len() {
        0 => Err(MosaicError::not_found(format!(
            "The requested resource does not exist: no {} record with {} = '{}'",
            o.api_name(),
            f.api_name,
            value.chars().take(80).collect::<String>()
        ))
        .into()),
        1 => Ok(ids[0].clone()),
        n => Err(MosaicError::new(
            ErrorCode::MULTIPLE_CHOICES,
            format!("{n} records match {} = '{value}'", f.api_name),
        )
        .into()),
    }
}

async fn read_by_external(
    State(s): State<AppState>,
    PathParams((v, object, field, value)): PathParams<(String, String, String, String)>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let id = external_id(&s, &c, &object, &field, &value).await?;
    let fields = q.list("fields");
    let r = s.platform.get(&c, &object, &id, fields.as_deref()).await?;
    Ok(Json(render::record(v, &r)))
}

async fn delete_by_external(
    State(s): State<AppState>,
    PathParams((v, object, field, value)): PathParams<(String, String, String, String)>,
    Auth(c): Auth,
) -> Result<StatusCode, ApiError> {
    version(&v)?;
    let id = external_id(&s, &c, &object, &field, &value).await?;
    s.platform.delete(&c, &object, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompositeBody {
    #[serde(rename = "allOrNone", default)]
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

pub(crate) fn batch_json(results: Vec<RecordResult<String>>) -> Json<Value> {
    Json(Value::Array(
        results
            .into_iter()
            .map(|r| match r {
                Ok(id) => json!({"id": id, "success": true, "errors": []}),
                Err(e) => json!({
                    "success": false,
                    "errors": e.0.iter().map(|x| {
                        let j = error_json(x);
                        json!({"statusCode": j["errorCode"], "message": j["message"], "fields": j["fields"]})
                    }).collect::<Vec<_>>(),
                }),
            })
            .collect(),
    ))
}

async fn composite_create(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    JsonBody(body): JsonBody<CompositeBody>,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    let r = s
        .platform
        .create_batch(&c, &body.records, body.all_or_none)
        .await?;
    Ok(batch_json(r))
}

async fn composite_update(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    JsonBody(body): JsonBody<CompositeBody>,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    let r = s
        .platform
        .update_batch(&c, &body.records, body.all_or_none)
        .await?;
    Ok(batch_json(r))
}

async fn composite_delete(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    let ids = q.list("ids").ok_or_else(|| {
        MosaicError::field(
            ErrorCode::INVALID_INPUT,
            "ids",
            "ids is required: a comma-separated list of record ids",
        )
    })?;
    let all_or_none = q.flag("allOrNone")?;
    let r = s.platform.delete_batch(&c, &ids, all_or_none).await?;
    Ok(batch_json(r))
}
