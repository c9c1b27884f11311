//! `POST /services/oauth2/token` (password grant) and token revocation.

use crate::extract::read_body;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", post(revoke))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn form_params(req: Request) -> Result<HashMap<String, String>, Response> {
    let query = req.uri().query().unwrap_or("").to_string();
    let body = read_body(req).await.map_err(|_| {
        oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request too large",
        )
    })?;
    let text = if body.is_empty() {
        query.into_bytes()
    } else {
        body.to_vec()
    };
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&text)
        .map(|v| v.into_iter().collect())
        .map_err(|_| {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be form-encoded",
            )
        })
}

async fn token(State(s): State<AppState>, req: Request) -> Response {
    let p = match form_params(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match p.get("grant_type").map(String::as_str) {
        Some("password") => {}
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
    }
    let (Some(user), Some(pass)) = (p.get("username"), p.get("password")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "username and password are required",
        );
    };
    match s.platform.auth.login(user, pass).await {
        Ok((tok, issued, tenant)) => Json(json!({
            "access_token": tok,
            "instance_url": &*s.instance_url,
            "id": format!("{}/id/{tenant}", s.instance_url),
            "token_type": "Bearer",
            "issued_at": issued.timestamp_millis().to_string(),
        }))
        .into_response(),
        Err(e) if e.code == mosaic_types::ErrorCode::INSUFFICIENT_ACCESS => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "authentication failure",
        ),
        Err(e) => crate::error::ApiError::from(e).into_response(),
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
    match s.platform.auth.revoke(tok).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}
