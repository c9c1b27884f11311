//! The composite resources of the Data API: `composite` (up to 25
//! subrequests with `@{ref.path}` references and `allOrNone`),
//! `composite/batch` (independent subrequests, `haltOnError`),
//! `composite/graph` (graphs of composite requests, each all-or-none),
//! `composite/tree/{O}` (record trees of up to 200 records, all-or-none)
//! and `GET composite/sobjects/{O}` (records by id).
//!
//! Subrequests run through the Data API's own routes (nothing outside
//! `/services/data/`, no nested composite) with the caller's credential, so
//! they pass the same authentication, permission and sharing checks as
//! single requests. All-or-none is made by compensation (decision 0026):
//! records created are deleted and updated fields restored, newest first,
//! when a later subrequest fails; a DELETE, which cannot be undone, may
//! only be the last write of an all-or-none request.

use crate::auth::Auth;
use crate::data::version;
use crate::error::{error_json, ApiError};
use crate::extract::{JsonBody, PathParams, QueryMap};
use crate::render;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use mosaic_runtime::access::{self, ObjectOp};
use mosaic_types::{ErrorCode, MosaicError};
use regex::Regex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::LazyLock;
use tower::ServiceExt;

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let (s, p) = (Access::Session, Access::Permission);
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/composite",
            s,
            "composite.resources",
            "The composite resources",
            get(resources),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/composite",
            s,
            "composite.run",
            "Up to 25 subrequests with references between them; allOrNone rolls back",
            post(composite),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/composite/batch",
            s,
            "composite.batch",
            "Up to 25 independent subrequests; haltOnError stops at the first failure",
            post(batch),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/composite/graph",
            s,
            "composite.graph",
            "Graphs of composite requests, each all-or-none",
            post(graph),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/composite/tree/{object}",
            p,
            "composite.tree",
            "Create trees of up to 200 records with their children, all-or-none",
            post(tree),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/composite/sobjects/{object}",
            p,
            "composite.sobjects_get",
            "Up to 200 records of an object by id",
            get(sobjects_get),
        )
        .query(&["ids", "fields"]),
    ]
}

/// Most subrequests of `composite` and `composite/batch`.
pub const MAX_SUBREQUESTS: usize = 25;
/// Most records of a tree and of `GET composite/sobjects`.
pub const MAX_TREE_RECORDS: usize = 200;
/// Most subrequests over all graphs of a `composite/graph` request.
pub const MAX_GRAPH_NODES: usize = 500;
/// Most graphs of a `composite/graph` request.
pub const MAX_GRAPHS: usize = 75;

fn bad(field: &str, msg: impl Into<String>) -> ApiError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg).into()
}

async fn resources(
    PathParams(v): PathParams<String>,
    Auth(_c): Auth,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let base = format!("/services/data/{v}/composite");
    Ok(Json(json!({
        "batch": format!("{base}/batch"),
        "graph": format!("{base}/graph"),
        "tree": format!("{base}/tree"),
        "sobjects": format!("{base}/sobjects"),
    })))
}

/// The Data API's routes a subrequest may reach: everything under
/// `/services/data/` except the composite resources themselves (the
/// sObject collections excepted, as in Salesforce).
fn sub_router(s: &AppState) -> Router {
    let mut app: Router<AppState> = Router::new();
    for spec in crate::routes::route_table() {
        let nested = spec.path.starts_with("/services/data/{version}/composite")
            && !spec
                .path
                .starts_with("/services/data/{version}/composite/sobjects");
        if spec.path.starts_with("/services/data/") && !nested {
            app = app.route(spec.path, spec.handler);
        }
    }
    app.fallback(crate::error::not_found_fallback)
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .with_state(s.clone())
}

/// One subrequest's answer.
struct SubResponse {
    status: StatusCode,
    body: Value,
    location: Option<String>,
}

/// Runs one request through `router` with the caller's credential.
async fn dispatch(
    router: &Router,
    auth: &HeaderValue,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> SubResponse {
    let mut b = Request::builder()
        .method(method)
        .uri(url)
        .header(header::AUTHORIZATION, auth.clone());
    let payload = match body {
        Some(v) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let req = match b.body(payload) {
        Ok(r) => r,
        Err(e) => {
            return SubResponse {
                status: StatusCode::BAD_REQUEST,
                body: json!([{"errorCode": "INVALID_INPUT", "message": format!("invalid subrequest: {e}")}]),
                location: None,
            }
        }
    };
    let res = match router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(res.into_body(), crate::MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    SubResponse {
        status,
        body,
        location,
    }
}

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[[0-9]+\])*)\}").expect("reference regex")
});

/// The value at `path` (`.field`, `[n]`) in a subrequest's answer.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = root;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            cur = match cur {
                Value::Object(m) => m.get(key).or_else(|| {
                    m.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                })?,
                _ => return None,
            };
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let i: usize = r[..end].parse().ok()?;
            cur = cur.as_array()?.get(i)?;
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

/// Why a reference cannot be resolved.
struct Unresolved(String);

/// Replaces `@{ref.path}` in `text` with the referenced values.
fn substitute(text: &str, answers: &HashMap<String, Value>) -> Result<String, Unresolved> {
    let mut err = None;
    let out = REFERENCE.replace_all(text, |c: &regex::Captures| {
        match resolve(&c[1], &c[2], answers) {
            Ok(v) => match v {
                Value::String(s) => s,
                other => other.to_string(),
            },
            Err(e) => {
                err.get_or_insert(e);
                String::new()
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(out.into_owned()),
    }
}

fn resolve(
    reference: &str,
    path: &str,
    answers: &HashMap<String, Value>,
) -> Result<Value, Unresolved> {
    let root = answers.get(reference).ok_or_else(|| {
        Unresolved(format!(
            "Invalid reference specified. No value for {reference}{path} found in {reference}. Provided referenceId ('{reference}') must be a previous subrequest's, which succeeded."
        ))
    })?;
    lookup(root, path).cloned().ok_or_else(|| {
        Unresolved(format!(
            "Invalid reference specified. No value for {reference}{path} found in {reference}."
        ))
    })
}

/// References inside a JSON body: a string that is one whole reference
/// takes the referenced value's type; others are interpolated as text.
fn substitute_json(v: &Value, answers: &HashMap<String, Value>) -> Result<Value, Unresolved> {
    Ok(match v {
        Value::String(s) => {
            if let Some(c) = REFERENCE.captures(s) {
                if c.get(0).map(|m| m.as_str().len()) == Some(s.len()) {
                    return resolve(&c[1], &c[2], answers);
                }
            }
            Value::String(substitute(s, answers)?)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute_json(x, answers))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), substitute_json(x, answers)?)))
                .collect::<Result<_, Unresolved>>()?,
        ),
        other => other.clone(),
    })
}

/// One subrequest of `composite` as sent.
struct Sub {
    method: Method,
    url: String,
    reference_id: String,
    body: Option<Value>,
}

fn parse_method(raw: &str, field: &str) -> Result<Method, ApiError> {
    match raw.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PATCH" => Ok(Method::PATCH),
        "PUT" => Ok(Method::PUT),
        "DELETE" => Ok(Method::DELETE),
        "HEAD" => Ok(Method::HEAD),
        _ => Err(bad(
            field,
            format!(
                "{field}: '{}' is not an HTTP method (GET, POST, PATCH, PUT, DELETE, HEAD)",
                raw.chars().take(20).collect::<String>()
            ),
        )),
    }
}

/// A subrequest URL: under `/services/data/` (the batch's short form
/// `vNN.N/...` is completed).
fn sub_url(raw: &str, field: &str, short_form: bool) -> Result<String, ApiError> {
    let url = if short_form && !raw.starts_with('/') {
        format!("/services/data/{raw}")
    } else {
        raw.to_string()
    };
    if !url.starts_with("/services/data/") || url.contains("..") || url.contains('#') {
        return Err(bad(
            field,
            format!(
                "{field}: the URL must start with /services/data/ (a resource of the Data API): '{}'",
                raw.chars().take(100).collect::<String>()
            ),
        ));
    }
    Ok(url)
}

fn parse_subs(list: &[Value], all_or_none: bool) -> Result<Vec<Sub>, ApiError> {
    if list.is_empty() {
        return Err(bad(
            "compositeRequest",
            "compositeRequest must list at least one subrequest",
        ));
    }
    if list.len() > MAX_SUBREQUESTS {
        return Err(bad(
            "compositeRequest",
            format!(
                "compositeRequest has {} subrequests; at most {MAX_SUBREQUESTS} are allowed",
                list.len()
            ),
        ));
    }
    let mut subs = Vec::with_capacity(list.len());
    let mut refs = std::collections::HashSet::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("compositeRequest[{i}]");
        let o = item
            .as_object()
            .ok_or_else(|| bad(&at, format!("{at} must be an object")))?;
        for k in o.keys() {
            if !["method", "url", "referenceId", "body", "httpHeaders"].contains(&k.as_str()) {
                return Err(bad(
                    &format!("{at}.{k}"),
                    format!("{at}: unknown property '{k}'"),
                ));
            }
        }
        let str_of = |k: &str| -> Result<&str, ApiError> {
            o.get(k).and_then(Value::as_str).ok_or_else(|| {
                bad(
                    &format!("{at}.{k}"),
                    format!("{at}.{k} is required (a string)"),
                )
            })
        };
        let method = parse_method(str_of("method")?, &format!("{at}.method"))?;
        let url = sub_url(str_of("url")?, &format!("{at}.url"), false)?;
        let reference_id = str_of("referenceId")?.to_string();
        if reference_id.is_empty()
            || !reference_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || !reference_id.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Err(bad(
                &format!("{at}.referenceId"),
                format!("{at}.referenceId must start with a letter and hold only letters, digits and underscores"),
            ));
        }
        if !refs.insert(reference_id.to_ascii_lowercase()) {
            return Err(bad(
                &format!("{at}.referenceId"),
                format!("Duplicate referenceId provided in the request: {reference_id}"),
            ));
        }
        subs.push(Sub {
            method,
            url,
            reference_id,
            body: o.get("body").cloned(),
        });
    }
    if all_or_none {
        // A deletion cannot be compensated: only the last write may be one.
        let last_write = subs
            .iter()
            .rposition(|s| s.method != Method::GET && s.method != Method::HEAD);
        if let Some((i, _)) = subs
            .iter()
            .enumerate()
            .find(|(i, s)| s.method == Method::DELETE && Some(*i) != last_write)
        {
            return Err(bad(
                &format!("compositeRequest[{i}].method"),
                format!("compositeRequest[{i}]: with allOrNone a DELETE must be the last write of the request (a deletion cannot be rolled back)"),
            ));
        }
    }
    Ok(subs)
}

/// A query-string component, percent-encoded.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How to undo one successful write.
enum Undo {
    /// Delete a record that was created.
    Delete(String),
    /// Put back the fields a PATCH changed.
    Restore(String, Value),
}

/// The segments of a record URL after the version:
/// `sobjects/{O}`, `sobjects/{O}/{id}`, `sobjects/{O}/{field}/{value}`.
fn sobject_parts(url: &str) -> Option<(String, Vec<String>)> {
    let path = url.split('?').next().unwrap_or(url).trim_end_matches('/');
    let rest = path.strip_prefix("/services/data/")?;
    let mut segs = rest.split('/');
    let v = segs.next()?.to_string();
    if segs.next()? != "sobjects" {
        return None;
    }
    Some((v, segs.map(str::to_string).collect()))
}

/// What a write must save before it runs so that it can be undone: the
/// current values of the fields a PATCH of an existing record changes.
async fn before_write(
    router: &Router,
    auth: &HeaderValue,
    sub: &Sub,
    url: &str,
    body: Option<&Value>,
) -> Option<Value> {
    if sub.method != Method::PATCH {
        return None;
    }
    let (v, segs) = sobject_parts(url)?;
    let fields: Vec<&String> = body?
        .as_object()?
        .keys()
        .filter(|k| *k != "attributes")
        .collect();
    if segs.len() < 2 || fields.is_empty() {
        return None;
    }
    let list = fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let get_url = format!(
        "/services/data/{v}/sobjects/{}?fields={}",
        segs.join("/"),
        encode_component(&list)
    );
    let r = dispatch(router, auth, Method::GET, &get_url, None).await;
    if !r.status.is_success() {
        return None;
    }
    let mut prior = Map::new();
    for f in fields {
        if let Some(val) = r.body.as_object().and_then(|m| m.get(f.as_str())) {
            prior.insert(f.clone(), val.clone());
        }
    }
    // The record's own URL (an external-id path resolves to it).
    let url = r.body.get("attributes")?.get("url")?.as_str()?.to_string();
    Some(json!({"url": url, "fields": prior}))
}

fn undo_of(sub: &Sub, url: &str, r: &SubResponse, prior: Option<Value>) -> Option<Undo> {
    let (v, segs) = sobject_parts(url)?;
    let object = segs.first()?.clone();
    if r.status == StatusCode::CREATED {
        let id = r.body.get("id")?.as_str()?;
        return Some(Undo::Delete(format!(
            "/services/data/{v}/sobjects/{object}/{id}"
        )));
    }
    if sub.method == Method::PATCH {
        let prior = prior?;
        return Some(Undo::Restore(
            prior.get("url")?.as_str()?.to_string(),
            prior.get("fields")?.clone(),
        ));
    }
    None
}

/// Undoes `undo`, newest first; failures are logged (the caller's answer
/// already says the request failed).
async fn roll_back(router: &Router, auth: &HeaderValue, undo: Vec<Undo>) {
    for u in undo.into_iter().rev() {
        let r = match &u {
            Undo::Delete(url) => dispatch(router, auth, Method::DELETE, url, None).await,
            Undo::Restore(url, fields) => {
                dispatch(router, auth, Method::PATCH, url, Some(fields)).await
            }
        };
        if !r.status.is_success() {
            let url = match &u {
                Undo::Delete(url) | Undo::Restore(url, _) => url,
            };
            tracing::error!(status = %r.status, url = %url, "a composite rollback step failed");
        }
    }
}

fn halted(message: &str) -> Value {
    json!([{"errorCode": "PROCESSING_HALTED", "message": message}])
}

const ROLLED_BACK: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

fn sub_json(reference_id: &str, status: StatusCode, body: Value, location: Option<&str>) -> Value {
    let mut headers = Map::new();
    if let Some(l) = location {
        headers.insert("Location".into(), json!(l));
    }
    json!({
        "body": body,
        "httpHeaders": headers,
        "httpStatusCode": status.as_u16(),
        "referenceId": reference_id,
    })
}

/// Runs a composite request's subrequests; with `all_or_none` a failure
/// rolls back what ran before it. The answers in order, and whether all
/// succeeded.
async fn run_composite(
    router: &Router,
    auth: &HeaderValue,
    subs: Vec<Sub>,
    all_or_none: bool,
) -> (Vec<Value>, bool) {
    let mut answers: HashMap<String, Value> = HashMap::new();
    let mut out: Vec<Value> = Vec::with_capacity(subs.len());
    let mut undo = Vec::new();
    let mut failed_at = None;
    for (i, sub) in subs.iter().enumerate() {
        let prepared = substitute(&sub.url, &answers).and_then(|url| {
            let body = sub
                .body
                .as_ref()
                .map(|b| substitute_json(b, &answers))
                .transpose()?;
            Ok((url, body))
        });
        let (url, body) = match prepared {
            Ok(p) => p,
            Err(Unresolved(m)) => {
                out.push(sub_json(
                    &sub.reference_id,
                    StatusCode::BAD_REQUEST,
                    halted(&m),
                    None,
                ));
                if all_or_none {
                    failed_at = Some(i);
                    break;
                }
                continue;
            }
        };
        let prior = if all_or_none {
            before_write(router, auth, sub, &url, body.as_ref()).await
        } else {
            None
        };
        let r = dispatch(router, auth, sub.method.clone(), &url, body.as_ref()).await;
        let ok = r.status.is_success();
        if ok {
            if all_or_none {
                if let Some(u) = undo_of(sub, &url, &r, prior) {
                    undo.push(u);
                }
            }
            answers.insert(sub.reference_id.clone(), r.body.clone());
        }
        out.push(sub_json(
            &sub.reference_id,
            r.status,
            r.body,
            r.location.as_deref(),
        ));
        if !ok && all_or_none {
            failed_at = Some(i);
            break;
        }
    }
    let Some(failed) = failed_at else {
        let all_ok = out
            .iter()
            .all(|r| r["httpStatusCode"].as_u64().is_some_and(|s| s < 400));
        return (out, all_ok);
    };
    roll_back(router, auth, undo).await;
    // Those that ran are reported rolled back, those after never ran.
    for (i, r) in out.iter_mut().enumerate() {
        if i != failed {
            *r = sub_json(
                r["referenceId"].as_str().unwrap_or(""),
                StatusCode::BAD_REQUEST,
                halted(ROLLED_BACK),
                None,
            );
        }
    }
    for sub in &subs[failed + 1..] {
        out.push(sub_json(
            &sub.reference_id,
            StatusCode::BAD_REQUEST,
            halted(ROLLED_BACK),
            None,
        ));
    }
    (out, false)
}

fn auth_header(headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::INVALID_SESSION_ID, "Session expired or invalid"))
}

fn known_keys(o: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), ApiError> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(
            k,
            format!(
                "{at}: unknown property '{k}' (expected {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn flag(o: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(key, format!("{key} must be true or false"))),
    }
}

async fn composite(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(_c): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    known_keys(
        &body,
        &["allOrNone", "collateSubrequests", "compositeRequest"],
        "composite",
    )?;
    let all_or_none = flag(&body, "allOrNone")?;
    flag(&body, "collateSubrequests")?;
    let list = body
        .get("compositeRequest")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            bad(
                "compositeRequest",
                "compositeRequest is required: an array of subrequests",
            )
        })?;
    let subs = parse_subs(list, all_or_none)?;
    let auth = auth_header(&headers)?;
    let router = sub_router(&s);
    let (out, _) = run_composite(&router, &auth, subs, all_or_none).await;
    Ok(Json(json!({"compositeResponse": out})))
}

async fn graph(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(_c): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    known_keys(&body, &["graphs"], "composite/graph")?;
    let graphs = body
        .get("graphs")
        .and_then(Value::as_array)
        .filter(|g| !g.is_empty())
        .ok_or_else(|| {
            bad(
                "graphs",
                "graphs is required: a non-empty array of {graphId, compositeRequest}",
            )
        })?;
    if graphs.len() > MAX_GRAPHS {
        return Err(bad(
            "graphs",
            format!("{} graphs; at most {MAX_GRAPHS} are allowed", graphs.len()),
        ));
    }
    let mut parsed = Vec::with_capacity(graphs.len());
    let mut nodes = 0;
    let mut ids = std::collections::HashSet::new();
    for (i, g) in graphs.iter().enumerate() {
        let at = format!("graphs[{i}]");
        let o = g
            .as_object()
            .ok_or_else(|| bad(&at, format!("{at} must be an object")))?;
        known_keys(o, &["graphId", "compositeRequest"], &at)?;
        let id = o
            .get("graphId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                bad(
                    &format!("{at}.graphId"),
                    format!("{at}.graphId is required"),
                )
            })?;
        if !ids.insert(id.to_string()) {
            return Err(bad(
                &format!("{at}.graphId"),
                format!("graphId '{id}' appears twice"),
            ));
        }
        let list = o
            .get("compositeRequest")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                bad(
                    &format!("{at}.compositeRequest"),
                    format!("{at}.compositeRequest is required"),
                )
            })?;
        nodes += list.len();
        if nodes > MAX_GRAPH_NODES {
            return Err(bad(
                "graphs",
                format!("more than {MAX_GRAPH_NODES} subrequests over all graphs"),
            ));
        }
        // A graph may hold more nodes than a composite request; its own
        // limit is the request's total.
        let subs = parse_graph_subs(list, &at)?;
        parsed.push((id.to_string(), subs));
    }
    let auth = auth_header(&headers)?;
    let router = sub_router(&s);
    let mut out = Vec::with_capacity(parsed.len());
    for (id, subs) in parsed {
        let (responses, ok) = run_composite(&router, &auth, subs, true).await;
        out.push(json!({
            "graphId": id,
            "graphResponse": {"compositeResponse": responses},
            "isSuccessful": ok,
        }));
    }
    Ok(Json(json!({"graphs": out})))
}

fn parse_graph_subs(list: &[Value], at: &str) -> Result<Vec<Sub>, ApiError> {
    if list.len() <= MAX_SUBREQUESTS {
        return parse_subs(list, true).map_err(|e| prefix(e, at));
    }
    // Parse in windows of the composite limit, then check references and
    // the DELETE rule over the whole graph.
    let mut all = Vec::new();
    for chunk in list.chunks(MAX_SUBREQUESTS) {
        all.extend(parse_subs(chunk, false).map_err(|e| prefix(e, at))?);
    }
    let last_write = all.iter().rposition(|s| s.method != Method::GET);
    if let Some((i, _)) = all
        .iter()
        .enumerate()
        .find(|(i, s)| s.method == Method::DELETE && Some(*i) != last_write)
    {
        return Err(bad(
            &format!("{at}.compositeRequest[{i}].method"),
            "a DELETE must be the last write of a graph (a deletion cannot be rolled back)",
        ));
    }
    Ok(all)
}

fn prefix(mut e: ApiError, at: &str) -> ApiError {
    for x in &mut e.errors {
        x.message = format!("{at}: {}", x.message);
    }
    e
}

async fn batch(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(_c): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    known_keys(&body, &["batchRequests", "haltOnError"], "composite/batch")?;
    let halt = flag(&body, "haltOnError")?;
    let list = body
        .get("batchRequests")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            bad(
                "batchRequests",
                "batchRequests is required: a non-empty array",
            )
        })?;
    if list.len() > MAX_SUBREQUESTS {
        return Err(bad(
            "batchRequests",
            format!(
                "batchRequests has {} subrequests; at most {MAX_SUBREQUESTS} are allowed",
                list.len()
            ),
        ));
    }
    let mut subs = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = format!("batchRequests[{i}]");
        let o = item
            .as_object()
            .ok_or_else(|| bad(&at, format!("{at} must be an object")))?;
        known_keys(
            o,
            &[
                "method",
                "url",
                "richInput",
                "binaryPartName",
                "binaryPartNameAlias",
            ],
            &at,
        )?;
        if o.contains_key("binaryPartName") {
            return Err(MosaicError::new(
                ErrorCode::NOT_IMPLEMENTED,
                format!("{at}: binary parts are not supported"),
            )
            .into());
        }
        let method = parse_method(
            o.get("method")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&format!("{at}.method"), format!("{at}.method is required")))?,
            &format!("{at}.method"),
        )?;
        let url = sub_url(
            o.get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&format!("{at}.url"), format!("{at}.url is required")))?,
            &format!("{at}.url"),
            true,
        )?;
        subs.push((method, url, o.get("richInput").cloned()));
    }
    let auth = auth_header(&headers)?;
    let router = sub_router(&s);
    let mut results = Vec::with_capacity(subs.len());
    let mut has_errors = false;
    for (method, url, body) in subs {
        if halt && has_errors {
            results.push(json!({
                "statusCode": 412,
                "result": [{"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}],
            }));
            continue;
        }
        let r = dispatch(&router, &auth, method, &url, body.as_ref()).await;
        if !r.status.is_success() {
            has_errors = true;
        }
        results.push(json!({"statusCode": r.status.as_u16(), "result": r.body}));
    }
    Ok(Json(json!({"hasErrors": has_errors, "results": results})))
}

/// One record of a tree, flattened: its object, fields, reference id and
/// the index of its parent with the lookup field to set.
struct TreeNode {
    object: String,
    reference_id: String,
    fields: Map<String, Value>,
    parent: Option<(usize, String)>,
}

async fn flatten(
    s: &AppState,
    c: &mosaic_runtime::Caller,
    object: &str,
    records: &[Value],
    parent: Option<(usize, String)>,
    at: &str,
    out: &mut Vec<TreeNode>,
) -> Result<(), ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, object).await?;
    access::require(c, &o, ObjectOp::Create)?;
    let children = s.platform.meta.children(&c.tenant_id, o.id()).await?;
    for (i, rec) in records.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let m = rec
            .as_object()
            .ok_or_else(|| bad(&at, format!("{at} must be an object")))?;
        let attrs = m
            .get("attributes")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                bad(
                    &format!("{at}.attributes"),
                    format!("{at}.attributes is required ({{type, referenceId}})"),
                )
            })?;
        if let Some(t) = attrs.get("type").and_then(Value::as_str) {
            if !t.eq_ignore_ascii_case(o.api_name()) {
                return Err(bad(
                    &format!("{at}.attributes.type"),
                    format!("{at}: type '{t}' is not {}", o.api_name()),
                ));
            }
        }
        let reference_id = attrs
            .get("referenceId")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                bad(
                    &format!("{at}.attributes.referenceId"),
                    format!("{at}.attributes.referenceId is required"),
                )
            })?
            .to_string();
        if out
            .iter()
            .any(|n| n.reference_id.eq_ignore_ascii_case(&reference_id))
        {
            return Err(bad(
                &format!("{at}.attributes.referenceId"),
                format!("Duplicate ReferenceId provided in the request: {reference_id}"),
            ));
        }
        if out.len() >= MAX_TREE_RECORDS {
            return Err(bad(
                "records",
                format!("a tree holds at most {MAX_TREE_RECORDS} records"),
            ));
        }
        let index = out.len();
        let mut fields = Map::new();
        let mut nested = Vec::new();
        for (k, v) in m {
            if k == "attributes" {
                continue;
            }
            if let Some(sub) = v
                .as_object()
                .and_then(|x| x.get("records"))
                .and_then(Value::as_array)
            {
                let (child, f) = children
                    .iter()
                    .find(|(_, f)| {
                        f.relationship_name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(k))
                    })
                    .ok_or_else(|| {
                        bad(
                            &format!("{at}.{k}"),
                            format!(
                                "{at}: '{k}' is not a child relationship of {}",
                                o.api_name()
                            ),
                        )
                    })?;
                nested.push((
                    child.api_name().to_string(),
                    f.api_name.clone(),
                    sub.clone(),
                    format!("{at}.{k}.records"),
                ));
            } else {
                fields.insert(k.clone(), v.clone());
            }
        }
        if let Some((_, lookup)) = &parent {
            fields.remove(lookup);
        }
        out.push(TreeNode {
            object: o.api_name().to_string(),
            reference_id,
            fields,
            parent: parent.clone(),
        });
        for (child, lookup, sub, sub_at) in nested {
            Box::pin(flatten(
                s,
                c,
                &child,
                &sub,
                Some((index, lookup)),
                &sub_at,
                out,
            ))
            .await?;
        }
    }
    Ok(())
}

async fn tree(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    version(&v)?;
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    access::require(&c, &o, ObjectOp::Create)?;
    known_keys(&body, &["records"], "composite/tree")?;
    let records = body
        .get("records")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            bad(
                "records",
                "records is required: a non-empty array of records",
            )
        })?;
    let mut nodes = Vec::new();
    flatten(&s, &c, o.api_name(), records, None, "records", &mut nodes).await?;
    let mut ids: Vec<String> = Vec::with_capacity(nodes.len());
    for n in &nodes {
        let mut fields = n.fields.clone();
        if let Some((p, lookup)) = &n.parent {
            fields.insert(lookup.clone(), json!(ids[*p]));
        }
        match s.platform.create(&c, &n.object, &fields).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                // All or none: what was created is deleted, newest first.
                for (done, id) in nodes.iter().zip(&ids).rev() {
                    if let Err(x) = s.platform.delete(&c, &done.object, id).await {
                        tracing::error!(error = %x.message, "a composite tree rollback step failed");
                    }
                }
                let errors: Vec<Value> = e
                    .0
                    .iter()
                    .map(|x| {
                        let j = error_json(x);
                        json!({"statusCode": j["errorCode"], "message": j["message"], "fields": j["fields"]})
                    })
                    .collect();
                return Ok((
                    StatusCode::BAD_REQUEST,
                    Json(json!({"hasErrors": true, "results": [{"referenceId": n.reference_id, "errors": errors}]})),
                )
                    .into_response());
            }
        }
    }
    let results: Vec<Value> = nodes
        .iter()
        .zip(&ids)
        .map(|(n, id)| json!({"referenceId": n.reference_id, "id": id}))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({"hasErrors": false, "results": results})),
    )
        .into_response())
}

async fn sobjects_get(
    State(s): State<AppState>,
    PathParams((v, object)): PathParams<(String, String)>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    access::require(&c, &o, ObjectOp::Read)?;
    let ids = q.list("ids").filter(|l| !l.is_empty()).ok_or_else(|| {
        bad(
            "ids",
            "ids is required: a comma-separated list of record ids",
        )
    })?;
    if ids.len() > MAX_TREE_RECORDS {
        return Err(bad(
            "ids",
            format!("{} ids; at most {MAX_TREE_RECORDS} are allowed", ids.len()),
        ));
    }
    let fields = q.list("fields").filter(|l| !l.is_empty()).ok_or_else(|| {
        bad(
            "fields",
            "fields is required: a comma-separated list of field names",
        )
    })?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match s.platform.get(&c, o.api_name(), &id, Some(&fields)).await {
            Ok(r) => out.push(render::record(v, &r)),
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::NOT_FOUND | ErrorCode::ENTITY_IS_DELETED | ErrorCode::MALFORMED_ID
                ) =>
            {
                out.push(Value::Null)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(Value::Array(out)))
}
