//! Liveness and readiness.

use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mosaic_runtime::health::{DegradationLevel, DependencyProbe};
use serde_json::{json, Map, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![
        RouteSpec::new(
            Method::GET,
            "/healthz",
            Access::Public,
            "health.live",
            "Liveness",
            get(healthz),
        ),
        RouteSpec::new(
            Method::GET,
            "/readyz",
            Access::Public,
            "health.ready",
            "Readiness: degradation level and each dependency",
            get(readyz),
        ),
    ]
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Probes the dependencies and combines what they answered with what this
/// instance knows without calling them (maintenance switch, breakers, the
/// health monitor's last probe): the more severe level wins.
pub(crate) async fn current_level(s: &AppState) -> (Vec<DependencyProbe>, DegradationLevel) {
    let deps = s.platform.probe_dependencies().await;
    let probed = DegradationLevel::from_dependencies(s.platform.maintenance().enabled, &deps);
    let level = probed.max(s.platform.degradation_level());
    (deps, level)
}

/// The level and each dependency's state and breaker. 503 only when the
/// record store does not answer (nothing could be served); read-only and
/// maintenance are 200 with the level, so a load balancer keeps sending
/// readers their reads, users the maintenance message, and operators the
/// switch.
pub async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let (deps, level) = current_level(&s).await;
    let records_up = deps
        .iter()
        .filter(|d| d.name == mosaic_runtime::resilience::RECORD_STORE)
        .all(|d| d.up);
    let states: Map<String, Value> = deps
        .iter()
        .map(|d| {
            let mut v = json!({
                "state": if d.up { "up" } else { "down" },
                "breaker": d.breaker.map(|b| b.name()),
                "latency_ms": d.latency.as_secs_f64() * 1000.0,
            });
            if let Some(e) = &d.error {
                v["error"] = json!(e);
            }
            (d.name.to_string(), v)
        })
        .collect();
    let status = match level {
        _ if !records_up => "unavailable",
        DegradationLevel::FullOperation => "ready",
        DegradationLevel::Maintenance => "maintenance",
        _ => "degraded",
    };
    // Read replicas of the metadata database: their breakers only (a
    // replica down degrades nothing; its reads go elsewhere).
    let replicas: Map<String, Value> = s
        .platform
        .breakers
        .replicas
        .iter()
        .map(|b| {
            (
                b.dependency().to_string(),
                json!({"breaker": b.state().name()}),
            )
        })
        .collect();
    let maintenance = s.platform.maintenance();
    (
        if records_up {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": status,
            "degradation_level": level.level(),
            "degradation": level.name(),
            "dependencies": states,
            "metadata_replicas": replicas,
            "maintenance": {
                "enabled": maintenance.enabled,
                "message": maintenance.enabled.then(|| maintenance.text()),
            },
        })),
    )
}
