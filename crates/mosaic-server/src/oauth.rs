//! `POST /services/oauth2/token` (grant types password, refresh_token and
//! client_credentials) and `POST /services/oauth2/revoke` (access or refresh
//! token). Failed password logins are rate limited per username and per
//! source address.

use crate::extract::read_body;
use crate::network::ClientInfo;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_access::{GrantError, Granted};
use serde_json::json;
use std::collections::HashMap;

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![
        RouteSpec::new(
            Method::POST,
            "/services/oauth2/token",
            Access::Public,
            "oauth.token",
            "Get an access token (password, refresh_token, client_credentials grants)",
            post(token),
        )
        .body(Body::Form),
        RouteSpec::new(
            Method::POST,
            "/services/oauth2/revoke",
            Access::Public,
            "oauth.revoke",
            "Revoke an access or refresh token",
            post(revoke),
        )
        .body(Body::Form),
    ]
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// Parameters that carry a secret: refused in the URL, where proxies,
/// access logs and browser histories keep them.
const SECRET_PARAMS: [&str; 5] = [
    "password",
    "client_secret",
    "refresh_token",
    "token",
    "access_token",
];

/// The request's parameters, from its body only: form-encoded, or a JSON
/// object of strings. A secret in the query string is refused (400
/// naming the parameter); other query parameters are ignored.
async fn form_params(req: Request) -> Result<HashMap<String, String>, Response> {
    if let Some(q) = req.uri().query() {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default();
        if let Some((k, _)) = pairs
            .iter()
            .find(|(k, _)| SECRET_PARAMS.contains(&k.as_str()))
        {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("{k} must be sent in the request body, never in the URL"),
            ));
        }
    }
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    let body = read_body(req).await.map_err(|_| {
        oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request too large",
        )
    })?;
    if json {
        return serde_json::from_slice::<HashMap<String, String>>(&body).map_err(|_| {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a JSON body must be an object of string values",
            )
        });
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .map(|v| v.into_iter().collect())
        .map_err(|_| {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be form-encoded",
            )
        })
}

/// `client_id` / `client_secret` from HTTP Basic authentication, if sent.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    use base64::Engine;
    let raw = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let b64 = raw.strip_prefix("Basic ")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn granted(s: &AppState, g: Granted) -> Response {
    // A login warms the tenant's definitions (once per L1 lifetime), so
    // the session's first requests do not each miss.
    let p = s.platform.clone();
    let tenant = g.tenant_id.clone();
    tokio::spawn(async move {
        if let Err(e) = p.meta.warm(&tenant).await {
            tracing::debug!(error = %e.message, "metadata warming failed");
        }
    });
    let mut body = json!({
        "access_token": g.access_token,
        "instance_url": &*s.instance_url,
        "id": format!("{}/id/{}/{}", s.instance_url, g.tenant_id, g.user_id),
        "token_type": "Bearer",
        "issued_at": g.issued_at.timestamp_millis().to_string(),
    });
    if let Some(r) = g.refresh_token {
        body["refresh_token"] = json!(r);
    }
    Json(body).into_response()
}

fn refused(e: GrantError) -> Response {
    match e {
        GrantError::InvalidGrant => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "authentication failure",
        ),
        // The credentials were right: say why no token comes, and where
        // the password is changed.
        GrantError::PasswordExpired => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "invalid_grant",
                "error_code": "PASSWORD_EXPIRED",
                "error_description": "PASSWORD_EXPIRED: an administrator reset this password; set a new one with POST /services/auth/v1/password/expired",
            })),
        )
            .into_response(),
        GrantError::InvalidClient => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ),
        GrantError::TooManyAttempts { retry_after_secs } => {
            let mut r = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_grant",
                "too many failed attempts; retry later",
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
                r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
            r
        }
        GrantError::Internal(e) => crate::error::ApiError::from(e).into_response(),
    }
}

fn missing(what: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("{what} required"),
    )
}

async fn token(State(s): State<AppState>, req: Request) -> Response {
    // The client's address: behind trusted proxies, the forwarded one.
    let source = req
        .extensions()
        .get::<ClientInfo>()
        .map(|c| c.ip.to_string());
    let basic = basic_credentials(&req);
    let p = match form_params(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let access = &s.platform.access;
    let result = match p.get("grant_type").map(String::as_str) {
        Some("password") => {
            let (Some(user), Some(pass)) = (p.get("username"), p.get("password")) else {
                return missing("username and password are");
            };
            access.password_grant(user, pass, source.as_deref()).await
        }
        Some("refresh_token") => {
            let Some(r) = p.get("refresh_token") else {
                return missing("refresh_token is");
            };
            access.refresh_grant(r).await
        }
        Some("client_credentials") => {
            let (id, secret) = match (p.get("client_id"), p.get("client_secret"), basic) {
                (Some(i), Some(sec), _) => (i.clone(), sec.clone()),
                (_, _, Some(b)) => b,
                _ => return missing("client_id and client_secret are"),
            };
            access.client_credentials_grant(&id, &secret).await
        }
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type not supported",
            )
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            )
        }
    };
    match result {
        Ok(g) => granted(&s, g),
        Err(e) => refused(e),
    }
}

async fn revoke(State(s): State<AppState>, req: Request) -> Response {
    let p = match form_params(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(tok) = p.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    match s.platform.access.revoke_token(tok).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}
