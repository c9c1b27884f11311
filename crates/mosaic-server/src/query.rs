//! Query routes of the Data API: `query`, `queryAll`, query locators
//! (`nextRecordsUrl`), `search`, and the simple list under `sobjects/{O}`.

use crate::auth::Auth;
use crate::data::version;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryMap};
use crate::render;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_runtime::query::{list_soql, QueryOptions, QueryRecord, QueryResult, QueryValue};
use mosaic_runtime::Caller;
use mosaic_types::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let s = Access::Session;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/query",
            s,
            "query.run",
            "Run a SOQL query",
            get(query),
        )
        .query(&["q"]),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/query",
            s,
            "query.run_post",
            "Run a SOQL query sent in the body",
            post(query_post),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/queryAll",
            s,
            "query.run_all",
            "Run a SOQL query including deleted records",
            get(query_all),
        )
        .query(&["q"]),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/queryAll",
            s,
            "query.run_all_post",
            "queryAll with the query in the body",
            post(query_all_post),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/query/{locator}",
            s,
            "query.more",
            "The next page of a query",
            get(more),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/queryAll/{locator}",
            s,
            "query.more_all",
            "The next page of a queryAll",
            get(more),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/search",
            s,
            "query.search",
            "Run a SOSL search",
            get(search),
        )
        .query(&["q"]),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/parameterizedSearch",
            s,
            "query.parameterized_search",
            "Search by parameters (q, sobject, fields, in, overallLimit, defaultLimit)",
            get(crate::param_search::get_search),
        )
        .query(&["q"]),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/parameterizedSearch",
            s,
            "query.parameterized_search_post",
            "Search by parameters sent as JSON",
            post(crate::param_search::post_search),
        ),
    ]
}

/// `Sforce-Query-Options: batchSize=N`.
fn batch_size(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(raw) = headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    for part in raw.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            if k.trim().eq_ignore_ascii_case("batchSize") {
                return v.trim().parse::<usize>().map(Some).map_err(|_| {
                    ApiError::new(
                        ErrorCode::INVALID_INPUT,
                        "Sforce-Query-Options batchSize must be an integer (200 to 2000)",
                    )
                });
            }
        }
    }
    Ok(None)
}

pub(crate) fn record_json(v: &str, r: &QueryRecord) -> Value {
    let mut m = Map::new();
    let attrs = match &r.id {
        Some(id) if r.object != "AggregateResult" => {
            json!({"type": r.object, "url": render::sobject_url(v, &r.object, id)})
        }
        _ => json!({"type": r.object}),
    };
    m.insert("attributes".into(), attrs);
    for (k, val) in &r.fields {
        let j = match val {
            QueryValue::Value(x) => render::value(x),
            QueryValue::Record(None) => Value::Null,
            QueryValue::Record(Some(p)) => record_json(v, p),
            QueryValue::Children(None) => Value::Null,
            QueryValue::Children(Some(res)) => result_json(v, res),
        };
        m.insert(k.clone(), j);
    }
    Value::Object(m)
}

fn result_json(v: &str, res: &QueryResult) -> Value {
    let mut m = Map::new();
    m.insert("totalSize".into(), json!(res.total_size));
    m.insert("done".into(), json!(res.done));
    if let Some(next) = &res.next {
        m.insert(
            "nextRecordsUrl".into(),
            json!(format!("/services/data/{v}/query/{next}")),
        );
    }
    m.insert(
        "records".into(),
        Value::Array(res.records.iter().map(|r| record_json(v, r)).collect()),
    );
    Value::Object(m)
}

fn missing_query() -> ApiError {
    ApiError::new(
        ErrorCode::MALFORMED_QUERY,
        "a query is required: pass it as q=SELECT …",
    )
}

async fn run(
    s: &AppState,
    c: &Caller,
    v: &str,
    soql: &str,
    opts: QueryOptions,
) -> Result<Json<Value>, ApiError> {
    let res = s.platform.query(c, soql, opts).await?;
    Ok(Json(result_json(v, &res)))
}

async fn query(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    headers: HeaderMap,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let soql = q.0.get("q").ok_or_else(missing_query)?;
    let opts = QueryOptions {
        include_deleted: false,
        batch_size: batch_size(&headers)?,
    };
    run(&s, &c, v, soql, opts).await
}

async fn query_all(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    headers: HeaderMap,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let soql = q.0.get("q").ok_or_else(missing_query)?;
    let opts = QueryOptions {
        include_deleted: true,
        batch_size: batch_size(&headers)?,
    };
    run(&s, &c, v, soql, opts).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    query: String,
}

async fn query_post(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<QueryBody>,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let opts = QueryOptions {
        include_deleted: false,
        batch_size: batch_size(&headers)?,
    };
    run(&s, &c, v, &body.query, opts).await
}

async fn query_all_post(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<QueryBody>,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let opts = QueryOptions {
        include_deleted: true,
        batch_size: batch_size(&headers)?,
    };
    run(&s, &c, v, &body.query, opts).await
}

async fn more(
    State(s): State<AppState>,
    PathParams((v, locator)): PathParams<(String, String)>,
    Auth(c): Auth,
) -> Result<Response, ApiError> {
    let v = version(&v)?;
    match s.platform.query_more(&c, &locator).await? {
        Some(res) => Ok(Json(result_json(v, &res)).into_response()),
        None => Ok((
            StatusCode::NOT_FOUND,
            Json(json!([{
                "message": "invalid query locator: it is unknown, expired (locators last 15 minutes) or past the end of the result",
                "errorCode": "INVALID_QUERY_LOCATOR",
                "fields": [],
            }])),
        )
            .into_response()),
    }
}

async fn search(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let sosl = q.0.get("q").ok_or_else(|| {
        ApiError::new(
            ErrorCode::MALFORMED_QUERY,
            "a search is required: pass it as q=FIND {…}",
        )
    })?;
    let records = s.platform.search(&c, sosl).await?;
    Ok(Json(json!({
        "searchRecords": records.iter().map(|r| record_json(v, r)).collect::<Vec<_>>(),
    })))
}

/// Query-string names of the simple list endpoint.
pub const LIST_PARAMS: [&str; 5] = ["fields", "where", "order_by", "limit", "offset"];

/// `GET sobjects/{O}?fields=&where=&order_by=&limit=&offset=`: a SOQL query
/// built from the parameters. Called by the `sobjects/{O}` handler when any
/// list parameter is present.
pub async fn list(
    s: &AppState,
    c: &Caller,
    v: &str,
    object: &str,
    q: &QueryMap,
    headers: &HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, object).await?;
    let get = |k: &str| q.0.get(k).map(String::as_str);
    let fields = q.list("fields");
    let soql = list_soql(
        &o,
        fields.as_deref(),
        get("where"),
        get("order_by"),
        get("limit"),
        get("offset"),
    )?;
    let opts = QueryOptions {
        include_deleted: false,
        batch_size: batch_size(headers)?,
    };
    run(s, c, v, &soql, opts).await
}

/// True when a `sobjects/{O}` GET asks for a list.
pub fn is_list(q: &QueryMap) -> bool {
    q.0.keys().any(|k| LIST_PARAMS.contains(&k.as_str()))
}
