//! `GET|POST /services/admin/v1/maintenance`: the maintenance switch
//! (degradation level 4) for system administrators. It is platform-wide, so
//! when an operator token is configured (`MOSAIC_METRICS_TOKEN`) turning it
//! needs that token too, in `X-Mosaic-Operator-Token`: one tenant's
//! administrator alone cannot take every tenant offline. Each switch is
//! written to the acting administrator's audit log.

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use mosaic_runtime::resilience::Maintenance;
use mosaic_types::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};

/// The header carrying the operator token for the switch.
pub const OPERATOR_TOKEN_HEADER: &str = "x-mosaic-operator-token";

pub fn routes() -> Router<AppState> {
    Router::new().route(crate::resilience::MAINTENANCE_PATH, get(show).post(switch))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchInput {
    enabled: bool,
    #[serde(default)]
    message: Option<String>,
}

fn body(s: &AppState, m: &Maintenance) -> Value {
    json!({
        "enabled": m.enabled,
        "message": m.enabled.then(|| m.text()),
        "updated_at": m.updated_at.map(|t| mosaic_types::value::format_datetime(&t)),
        "updated_by": m.updated_by,
        "degradation_level": s.platform.degradation_level().level(),
    })
}

async fn show(State(s): State<AppState>, _admin: Admin) -> Json<Value> {
    Json(body(&s, &s.platform.maintenance()))
}

async fn switch(
    State(s): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    JsonBody(input): JsonBody<SwitchInput>,
) -> Result<Json<Value>, ApiError> {
    if let Some(token) = &s.metrics_token {
        let given = headers
            .get(OPERATOR_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !crate::observe::constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Err(ApiError::new(
                ErrorCode::INSUFFICIENT_ACCESS,
                "switching maintenance mode needs the operator token in X-Mosaic-Operator-Token",
            ));
        }
    }
    let by = format!("user:{}/{}", caller.tenant_id, caller.user_id);
    let m = s
        .platform
        .set_maintenance(input.enabled, input.message, &by)
        .await?;
    let entry = mosaic_store::access_store::AuditEntry {
        tenant_id: caller.tenant_id.clone(),
        actor_id: caller.user_id.clone(),
        action: if m.enabled {
            "platform.maintenance_on".into()
        } else {
            "platform.maintenance_off".into()
        },
        target_type: "platform".into(),
        target_id: "maintenance".into(),
        detail: json!({"enabled": m.enabled, "message": m.message}).to_string(),
        at: chrono::Utc::now(),
    };
    if let Err(e) = s.platform.access.store().append_audit(entry).await {
        tracing::warn!(error = %e.message, "audit entry for the maintenance switch was not written");
    }
    Ok(Json(body(&s, &m)))
}
