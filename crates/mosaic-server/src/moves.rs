//! Tenant moves for platform operators (`mosaic tenant move` does the same
//! from the command line):
//!
//! - `POST /services/admin/v1/tenants/{tenant}/move` `{"to": "s2",
//!   "cleanup": true}` starts a move in the background → 202;
//! - `GET  …/move` shows its phase, progress and report;
//! - `POST …/move/rollback` returns a moved tenant to its old shard (until
//!   the cleanup), `POST …/move/finish` deletes the old copy.
//!
//! Moving tenants is platform-wide, so these need the operator token
//! (`MOSAIC_METRICS_TOKEN`) in `X-Mosaic-Operator-Token`; without a
//! configured token they are refused.

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::maintenance::OPERATOR_TOKEN_HEADER;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mosaic_runtime::tenant_move::{MoveOptions, MoveReport};
use mosaic_types::ErrorCode;
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/services/admin/v1/tenants/{tenant}/move",
            get(show).post(start),
        )
        .route(
            "/services/admin/v1/tenants/{tenant}/move/rollback",
            post(rollback),
        )
        .route(
            "/services/admin/v1/tenants/{tenant}/move/finish",
            post(finish),
        )
}

fn operator(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &s.metrics_token else {
        return Err(ApiError::new(
            ErrorCode::INSUFFICIENT_ACCESS,
            "tenant moves over HTTP need an operator token (MOSAIC_METRICS_TOKEN); use `mosaic tenant move` otherwise",
        ));
    };
    let given = headers
        .get(OPERATOR_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if crate::observe::constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::INSUFFICIENT_ACCESS,
            "moving tenants needs the operator token in X-Mosaic-Operator-Token",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveInput {
    to: String,
    #[serde(default)]
    cleanup: Option<bool>,
}

async fn start(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<MoveInput>,
) -> Result<Response, ApiError> {
    operator(&s, &headers)?;
    let to = input.to.trim().to_string();
    if to.is_empty() || to.len() > 64 {
        return Err(mosaic_types::MosaicError::field(
            ErrorCode::INVALID_INPUT,
            "to",
            "name the shard to move to (1 to 64 characters)",
        )
        .into());
    }
    let p = s.platform.clone();
    if p.meta_store.tenant(&tenant).await?.is_none() {
        return Err(mosaic_types::MosaicError::not_found(format!(
            "no tenant with id '{}'",
            tenant.chars().take(80).collect::<String>()
        ))
        .into());
    }
    if !p.moves.start(&tenant, &to) {
        return Err(ApiError::new(
            ErrorCode::CONFLICT,
            "a move of this tenant is already running",
        ));
    }
    let options = MoveOptions {
        cleanup: input.cleanup.unwrap_or(true),
        ..MoveOptions::default()
    };
    let t = tenant.clone();
    tokio::spawn(async move {
        let progress = p.moves.progress(&t);
        let r = p.move_tenant(&t, &to, &options, &progress).await;
        p.moves.finish(&t, &r);
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"tenant_id": tenant, "status": "started"})),
    )
        .into_response())
}

async fn show(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    operator(&s, &headers)?;
    match s.platform.moves.get(&tenant) {
        Some(m) => Ok(Json(m).into_response()),
        None => Err(mosaic_types::MosaicError::not_found(
            "no move of this tenant was started through this server",
        )
        .into()),
    }
}

async fn rollback(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<MoveReport>, ApiError> {
    operator(&s, &headers)?;
    Ok(Json(s.platform.rollback_move(&tenant).await?))
}

async fn finish(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    operator(&s, &headers)?;
    let n = s.platform.finish_move(&tenant).await?;
    Ok(Json(json!({"tenant_id": tenant, "rows_deleted": n})))
}
