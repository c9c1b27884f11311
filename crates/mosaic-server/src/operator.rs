//! Operator authority over HTTP. Every platform-wide route
//! ([`Access::Operator`]) passes [`require_operator`]: the credential is
//! `MOSAIC_OPERATOR_TOKEN` or an operator session, sent as `Authorization:
//! Bearer <credential>` or in `X-Mosaic-Operator-Token`; a tenant's token,
//! whatever its role, is never one. With no credential configured every
//! operator route refuses everyone. Changes made through these routes land
//! in the platform audit log. Also here: operator login and logout, the
//! platform audit log's endpoint, and the `/metrics` guard.

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::network::ClientInfo;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_access::operators::OperatorLoginError;
use mosaic_access::OperatorIdentity;
use mosaic_types::{ErrorCode, MosaicError};
use serde::Deserialize;
use serde_json::{json, Value};

/// The header that may carry the operator credential instead of
/// `Authorization`.
pub const OPERATOR_TOKEN_HEADER: &str = "x-mosaic-operator-token";

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![
        RouteSpec::new(
            Method::POST,
            "/services/operator/v1/login",
            Access::Public,
            "operator.login",
            "Sign an operator in: a short-lived operator session token",
            post(login),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/operator/v1/logout",
            Access::Operator,
            "operator.logout",
            "End the operator session sent as the credential",
            post(logout),
        )
        .body(Body::None),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/platform-audit",
            Access::Operator,
            "operator.platform_audit",
            "The platform audit log: every operator action, newest first",
            get(platform_audit),
        )
        .query(&["limit", "before"]),
    ]
}

/// Who acts with operator authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// The configured `MOSAIC_OPERATOR_TOKEN`.
    Token,
    /// A signed-in operator user.
    User(OperatorIdentity),
}

impl Operator {
    /// The actor written to the platform audit log.
    pub fn actor(&self) -> String {
        match self {
            Operator::Token => "token".into(),
            Operator::User(u) => format!("operator:{}", u.username),
        }
    }
}

/// The credential a request offers: `X-Mosaic-Operator-Token`, else the
/// bearer token of `Authorization`.
fn offered(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(OPERATOR_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return Some(v.trim());
    }
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    raw.strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .map(str::trim)
}

fn refused() -> ApiError {
    ApiError::new(
        ErrorCode::INVALID_SESSION_ID,
        "an operator credential is required (MOSAIC_OPERATOR_TOKEN or an operator session); tenant tokens are not operator credentials",
    )
}

/// Compares without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The operator a session token belongs to, while the session lasts
/// (for other front ends, such as the web console's operator view).
pub async fn verify_operator_session(s: &AppState, token: &str) -> Option<OperatorIdentity> {
    match s.platform.operators.verify_session(token).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e.message, "operator session not verified");
            None
        }
    }
}

/// The operator behind a request's credential, or 401.
pub async fn operator_of(s: &AppState, headers: &HeaderMap) -> Result<Operator, ApiError> {
    let Some(given) = offered(headers).filter(|t| !t.is_empty()) else {
        return Err(refused());
    };
    if let Some(token) = &s.operator_token {
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Ok(Operator::Token);
        }
    }
    match s.platform.operators.verify_session(given).await? {
        Some(u) => Ok(Operator::User(u)),
        None => Err(refused()),
    }
}

/// The guard of every [`Access::Operator`] route, with its operation name:
/// refuses without an operator credential; a successful change is written
/// to the platform audit log (who, what, when).
pub async fn require_operator(
    State((s, operation)): State<(AppState, &'static str)>,
    mut req: Request,
    next: Next,
) -> Response {
    let op = match operator_of(&s, req.headers()).await {
        Ok(op) => op,
        Err(e) => return e.into_response(),
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(op.clone());
    let res = next.run(req).await;
    if method != Method::GET && method != Method::HEAD && res.status().is_success() {
        let detail =
            json!({"method": method.as_str(), "path": path, "status": res.status().as_u16()});
        if let Err(e) = s
            .platform
            .operators
            .audit(&op.actor(), operation, &path, detail)
            .await
        {
            tracing::warn!(error = %e.message, "platform audit entry was not written");
        }
    }
    res
}

/// The guard of `/metrics`: the metrics token (`MOSAIC_METRICS_TOKEN`,
/// read-only, good for nothing else) or an operator credential; without a
/// metrics token, callers on this machine (a loopback socket peer, not
/// speaking for a proxied client) need nothing.
pub async fn check_metrics_access(
    s: &AppState,
    headers: &HeaderMap,
    client: Option<&ClientInfo>,
) -> Result<(), ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match &s.metrics_token {
        Some(token) => {
            if bearer.is_some_and(|b| constant_time_eq(b.as_bytes(), token.as_bytes())) {
                return Ok(());
            }
        }
        None => {
            if client.is_some_and(|c| c.local) {
                return Ok(());
            }
        }
    }
    operator_of(s, headers).await.map(|_| ()).map_err(|_| {
        ApiError::new(
            ErrorCode::INVALID_SESSION_ID,
            "/metrics needs the metrics token (MOSAIC_METRICS_TOKEN) or an operator credential; without a metrics token it is open to this machine only",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginInput {
    username: String,
    password: String,
}

async fn login(
    State(s): State<AppState>,
    client: Option<axum::Extension<ClientInfo>>,
    JsonBody(input): JsonBody<LoginInput>,
) -> Result<Response, ApiError> {
    let source = client.map(|c| c.ip.to_string());
    match s
        .platform
        .operators
        .login(&input.username, &input.password, source.as_deref())
        .await
    {
        Ok(l) => {
            let actor = format!("operator:{}", l.username);
            let detail = json!({"address": source});
            if let Err(e) = s
                .platform
                .operators
                .audit(&actor, "operator.login", "session", detail)
                .await
            {
                tracing::warn!(error = %e.message, "platform audit entry was not written");
            }
            Ok(Json(json!({
                "access_token": l.token,
                "token_type": "Bearer",
                "username": l.username,
                "expires_at": mosaic_types::value::format_datetime(&l.expires_at),
            }))
            .into_response())
        }
        Err(OperatorLoginError::Invalid) => Err(ApiError::new(
            ErrorCode::INVALID_SESSION_ID,
            "authentication failure: wrong operator username or password",
        )),
        Err(OperatorLoginError::TooManyAttempts { retry_after_secs }) => {
            let mut res = ApiError::new(
                ErrorCode::REQUEST_LIMIT_EXCEEDED,
                "too many failed operator logins; retry later",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(res)
        }
        Err(OperatorLoginError::Internal(e)) => Err(e.into()),
    }
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    if let Some(t) = offered(&headers) {
        s.platform.operators.logout(t).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Entries per page unless `limit` says otherwise.
pub const DEFAULT_PLATFORM_AUDIT_PAGE: u32 = 100;

async fn platform_audit(
    State(s): State<AppState>,
    q: crate::extract::QueryMap,
) -> Result<Json<Value>, ApiError> {
    let max = mosaic_access::operators::MAX_PLATFORM_AUDIT_PAGE;
    if let Some(k) =
        q.0.keys()
            .find(|k| !["limit", "before"].contains(&k.as_str()))
    {
        let k: String = k.chars().take(40).collect();
        return Err(MosaicError::field(
            ErrorCode::INVALID_INPUT,
            k.clone(),
            format!("{k}: unknown parameter (use limit, before)"),
        )
        .into());
    }
    let limit = match q.0.get("limit") {
        None => DEFAULT_PLATFORM_AUDIT_PAGE,
        Some(t) => match t.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "limit",
                    format!("limit: a whole number from 1 to {max}"),
                )
                .into())
            }
        },
    };
    let before = q.0.get("before").cloned().filter(|b| !b.is_empty());
    let rows = s
        .platform
        .operators
        .audit_log(limit, before.as_deref())
        .await?;
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null),
                "at": mosaic_types::value::format_datetime(&r.at),
            })
        })
        .collect();
    Ok(Json(json!({"entries": entries})))
}
