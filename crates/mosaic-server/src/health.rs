//! Liveness and readiness.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mosaic_runtime::health::DegradationLevel;
use serde_json::{json, Map, Value};

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the metadata and record stores answer.
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let deps = s.platform.probe_dependencies().await;
    let level = DegradationLevel::from_dependencies(&deps);
    let ok = deps.iter().all(|d| d.up);
    let states: Map<String, Value> = deps
        .iter()
        .map(|d| (d.name.to_string(), json!(if d.up { "up" } else { "down" })))
        .collect();
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": if ok { "ready" } else { "unavailable" },
            "degradation_level": level.level(),
            "dependencies": states,
        })),
    )
}
