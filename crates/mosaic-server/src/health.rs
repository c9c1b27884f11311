//! Liveness and readiness.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the metadata and record stores answer.
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let meta = s
        .platform
        .meta_store
        .tenant("00000000-0000-0000-0000-000000000000")
        .await;
    let records = s
        .platform
        .records
        .locate(
            "00000000-0000-0000-0000-000000000000",
            "00000000-0000-0000-0000-000000000000",
        )
        .await;
    let state = |ok: bool| if ok { "up" } else { "down" };
    let ok = meta.is_ok() && records.is_ok();
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": if ok { "ready" } else { "unavailable" },
            "degradation_level": if ok { 0 } else { 3 },
            "dependencies": {
                "metadata_store": state(meta.is_ok()),
                "record_store": state(records.is_ok()),
            }
        })),
    )
}
