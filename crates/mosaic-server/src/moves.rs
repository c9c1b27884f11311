//! Tenant moves for platform operators (`mosaic tenant move` does the same
//! from the command line):
//!
//! - `POST /services/admin/v1/tenants/{tenant}/move` `{"to": "s2",
//!   "cleanup": true}` starts a move in the background → 202;
//! - `GET  …/move` shows its phase, progress and report;
//! - `POST …/move/rollback` returns a moved tenant to its old shard (until
//!   the cleanup), `POST …/move/finish` deletes the old copy.
//!
//! Moving tenants is platform-wide: operator routes (the router applies
//! the operator guard and writes the platform audit log).

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_runtime::tenant_move::MoveReport;
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let o = Access::Operator;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/tenants/{tenant}/move",
            o,
            "operator.moves.get",
            "A tenant move's phase, progress and report",
            get(show),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/tenants/{tenant}/move",
            o,
            "operator.moves.start",
            "Move a tenant to another shard",
            post(start),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/tenants/{tenant}/move/rollback",
            o,
            "operator.moves.rollback",
            "Return a moved tenant to its old shard",
            post(rollback),
        )
        .body(Body::None),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/tenants/{tenant}/move/finish",
            o,
            "operator.moves.finish",
            "Delete a moved tenant's old copy",
            post(finish),
        )
        .body(Body::None),
    ]
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
    JsonBody(input): JsonBody<MoveInput>,
) -> Result<Response, ApiError> {
    s.platform
        .start_move(&tenant, &input.to, input.cleanup.unwrap_or(true))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"tenant_id": tenant, "status": "started"})),
    )
        .into_response())
}

async fn show(State(s): State<AppState>, Path(tenant): Path<String>) -> Result<Response, ApiError> {
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
) -> Result<Json<MoveReport>, ApiError> {
    Ok(Json(s.platform.rollback_move(&tenant).await?))
}

async fn finish(
    State(s): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let n = s.platform.finish_move(&tenant).await?;
    Ok(Json(json!({"tenant_id": tenant, "rows_deleted": n})))
}
