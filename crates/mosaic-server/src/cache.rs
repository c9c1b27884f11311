//! The cache tier's operator API: `GET /services/admin/v1/cache` (every
//! cache by layer: hits, misses, evictions, loads, load time; the bus's
//! counters) and a tenant's rate limits,
//! `GET|PUT /services/admin/v1/tenants/{tenant_id}/rate-limits`. Operator
//! routes: the router applies the operator guard.

use crate::error::ApiError;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_cache::ratelimit::CLASSES;
use mosaic_runtime::cache::RateOverrides;
use serde_json::{json, Map, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let o = Access::Operator;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/cache",
            o,
            "operator.cache",
            "Every cache's figures by layer",
            get(figures),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/tenants/{tenant_id}/rate-limits",
            o,
            "operator.rate_limits.get",
            "A tenant's effective rate limits",
            get(rate_limits),
        ),
        RouteSpec::new(
            Method::PUT,
            "/services/admin/v1/tenants/{tenant_id}/rate-limits",
            o,
            "operator.rate_limits.set",
            "Override a tenant's rate limits",
            put(put_rate_limits),
        ),
    ]
}

/// Every cache's figures as JSON (also rendered into `/metrics`).
pub fn caches_json(s: &AppState) -> Value {
    let mut caches = Vec::new();
    for c in s.platform.cache_figures() {
        let f = c.figures;
        caches.push(json!({
            "cache": c.cache,
            "layer": c.layer,
            "entries": c.entries,
            "hits": f.hits,
            "misses": f.misses,
            "hit_rate": f.hit_rate(),
            "evictions": f.evictions,
            "loads": f.loads,
            "load_time_ms_total": f.load_nanos as f64 / 1e6,
            "mean_load_ms": f.mean_load().map(|d| d.as_secs_f64() * 1000.0),
            "errors": f.errors,
        }));
    }
    let (hits, misses) = s.describe_stats.snapshot();
    caches.push(json!({
        "cache": "describe",
        "layer": "l1",
        "entries": s.describes.entry_count(),
        "hits": hits,
        "misses": misses,
        "hit_rate": (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
    }));
    json!({"caches": caches, "tier": s.platform.cache_tier_figures()})
}

async fn figures(State(s): State<AppState>) -> Response {
    Json(caches_json(&s)).into_response()
}

fn tenant_id(raw: &str) -> Result<String, ApiError> {
    mosaic_types::id::normalize_id(raw).ok_or_else(|| {
        mosaic_types::MosaicError::field(
            mosaic_types::ErrorCode::INVALID_INPUT,
            "tenant_id",
            "tenant_id: not an id",
        )
        .into()
    })
}

async fn rate_limits(
    State(s): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let t = tenant_id(&raw)?;
    limits_json(&s, &t).await
}

async fn limits_json(s: &AppState, t: &str) -> Result<Response, ApiError> {
    let overrides = s.platform.rate_overrides(t).await?;
    let rates = s.platform.tenant_rates(t).await?;
    let effective: Map<String, Value> = CLASSES
        .iter()
        .map(|c| {
            let r = rates[c.index()];
            (
                c.name().to_string(),
                json!({"per_second": r.per_second, "burst": r.burst, "overridden": overrides.0.contains_key(c)}),
            )
        })
        .collect();
    Ok(Json(json!({"tenant_id": t, "enabled": s.platform.cache.rate_limits_enabled, "limits": effective})).into_response())
}

async fn put_rate_limits(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let t = tenant_id(&raw)?;
    let crate::extract::JsonBody(body) =
        <crate::extract::JsonBody<Value> as axum::extract::FromRequest<AppState>>::from_request(
            req, &s,
        )
        .await?;
    let o = RateOverrides::parse(&body)?;
    s.platform.set_rate_overrides(&t, &o).await?;
    limits_json(&s, &t).await
}
