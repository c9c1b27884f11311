//! `GET /services/admin/v1/status`: the platform operator's view — version,
//! uptime, degradation level, dependency states, shards, cache statistics,
//! store figures and the hottest tenants — and the shard views. Operator
//! routes: the router applies the operator guard.

use crate::observe::RATE_WINDOW_SECS;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_types::CacheStats;
use serde_json::{json, Map, Value};

/// Tenants listed under `top_tenants`.
pub const STATUS_TOP_TENANTS: usize = 10;

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let o = Access::Operator;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/status",
            o,
            "operator.status",
            "The platform's status: dependencies, shards, caches, busiest tenants",
            get(status),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/shards",
            o,
            "operator.shards",
            "Shards with their load, and the nearly full ones",
            get(shards),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/shards/hot",
            o,
            "operator.hot_tenants",
            "Tenants above their share of a shard's requests",
            get(hot),
        ),
    ]
}

pub async fn status(State(s): State<AppState>) -> Response {
    let p = &s.platform;
    let (deps, level) = crate::health::current_level(&s).await;
    let dependencies: Map<String, Value> = deps
        .iter()
        .map(|d| {
            let mut v = json!({
                "state": up_down(d.up),
                "breaker": d.breaker.map(|b| b.name()),
                "latency_ms": d.latency.as_secs_f64() * 1000.0,
            });
            if let Some(e) = &d.error {
                v["error"] = json!(e);
            }
            (d.name.to_string(), v)
        })
        .collect();
    let shards: Vec<Value> = p
        .shards()
        .await
        .into_iter()
        .map(|sh| {
            json!({
                "name": sh.name,
                "state": up_down(sh.up),
                "tenants": sh.tenants,
                "records": sh.records,
            })
        })
        .collect();
    let (meta_entries, formula_entries) = p.meta.cache_entries();
    let caches = json!({
        "metadata": cache(meta_entries, &p.meta.stats),
        "compiled_formula": cache(formula_entries, &p.meta.formula_stats),
        "describe": cache(s.describes.entry_count(), &s.describe_stats),
        "session": cache(p.auth.session_cache_entries(), &p.auth.session_cache),
    });
    let store: Map<String, Value> = p
        .store_figures()
        .into_iter()
        .map(|f| {
            let mean_batch = (f.transactions > 0).then(|| f.jobs as f64 / f.transactions as f64);
            (
                f.db,
                json!({
                    "transactions": f.transactions,
                    "write_jobs": f.jobs,
                    "mean_group_commit_jobs": mean_batch,
                    "readers": f.readers,
                    "readers_in_use": f.readers_in_use,
                }),
            )
        })
        .collect();
    let mut top_tenants = Vec::new();
    for t in s.tenants.top_by_rate(STATUS_TOP_TENANTS) {
        let row = p.meta_store.tenant(&t.tenant).await.ok().flatten();
        top_tenants.push(json!({
            "tenant_id": t.tenant,
            "name": row.as_ref().map(|r| r.name.clone()),
            "subdomain": row.as_ref().map(|r| r.subdomain.clone()),
            "requests": t.requests,
            "qps": t.qps(),
        }));
    }
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": s.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "uptime_seconds": s.started.elapsed().as_secs(),
        "degradation_level": level.level(),
        "degradation": level.name(),
        "maintenance": {
            "enabled": p.maintenance().enabled,
            "message": p.maintenance().enabled.then(|| p.maintenance().text().to_string()),
        },
        "requests_in_flight": s.in_flight.in_flight(),
        "max_requests_in_flight": s.in_flight.max(),
        "dependencies": dependencies,
        "shards": shards,
        "caches": caches,
        "store": store,
        "top_tenants_window_seconds": RATE_WINDOW_SECS,
        "top_tenants": top_tenants,
    }))
    .into_response()
}

fn up_down(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

fn cache(entries: u64, stats: &CacheStats) -> Value {
    let (hits, misses) = stats.snapshot();
    let lookups = hits + misses;
    json!({
        "entries": entries,
        "hits": hits,
        "misses": misses,
        "hit_ratio": (lookups > 0).then(|| hits as f64 / lookups as f64),
    })
}

/// `GET /services/admin/v1/shards`: every shard with its group, status,
/// tenants and records, and the nearly full ones with a suggestion.
pub async fn shards(State(s): State<AppState>) -> Response {
    let p = &s.platform;
    let rows = match p.shards.directory().shards().await {
        Ok(r) => r,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let mut load = std::collections::HashMap::new();
    let mut list = Vec::new();
    for sh in p.shards().await {
        let row = rows.iter().find(|r| r.id == sh.name);
        load.insert(
            sh.name.clone(),
            mosaic_store::shards::Load {
                tenants: sh.tenants.unwrap_or(0),
                records: sh.records.unwrap_or(0),
            },
        );
        list.push(json!({
            "id": sh.name,
            "group": row.map_or("built-in", |r| r.group.as_str()),
            "status": row.map_or("active", |r| r.status.as_str()),
            "up": sh.up,
            "tenants": sh.tenants,
            "records": sh.records,
        }));
    }
    let advice: Vec<Value> = mosaic_store::shards::nearly_full(&rows, &load)
        .into_iter()
        .map(|(id, text)| json!({"shard": id, "suggestion": text}))
        .collect();
    Json(json!({"shards": list, "nearly_full": advice})).into_response()
}

/// `GET /services/admin/v1/shards/hot`: tenants above 10 % of their shard's
/// requests over the detection window.
pub async fn hot(State(s): State<AppState>) -> Response {
    match s.platform.hot_tenants().await {
        Ok(list) => Json(json!({
            "window_seconds": s.platform.hot.window().as_secs(),
            "threshold_share": mosaic_runtime::hot::HOT_SHARE,
            "hot_tenants": list.iter().map(|h| json!({
                "tenant_id": h.tenant_id,
                "shard": h.shard_id,
                "requests": h.requests,
                "shard_requests": h.shard_requests,
                "share": h.share,
                "suggestion": "a dedicated shard suits this tenant (register a spare with `mosaic shard add --group enterprise`); online tenant moves are not available yet",
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}
