//! The Mosaic HTTP gateway. Thin handlers: extract, call the runtime, map
//! the result to Salesforce-shaped JSON.
//!
//! **Architecture invariant:** only this crate knows HTTP and the wire JSON;
//! errors from the domain are converted here, once, into the public shape.

mod admin;
mod ai;
mod auth;
mod automation;
mod cache;
mod data;
pub mod error;
pub mod etag;
mod extract;
mod formula;
mod health;
pub mod idempotency;
mod maintenance;
mod metadata;
mod moves;
mod oauth;
pub mod observe;
mod query;
pub mod ratelimit;
mod render;
pub mod resilience;
mod sharing;
pub mod status;
mod views;

use axum::routing::get;
use axum::Router;
use mosaic_runtime::Platform;
use std::sync::Arc;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    /// The URL clients reach this server at (`instance_url`).
    pub instance_url: Arc<str>,
    /// Bearer token `/metrics` requires (`MOSAIC_METRICS_TOKEN`), if any.
    pub metrics_token: Option<Arc<str>>,
    /// Tenant labels of bounded cardinality for per-tenant metrics.
    pub tenants: Arc<observe::TenantRanking>,
    /// Rendered describes by (tenant, object id, API version, metadata epoch).
    pub describes: moka::sync::Cache<(String, String, String, u64), axum::body::Bytes>,
    /// Hits and misses of `describes`.
    pub describe_stats: Arc<mosaic_types::CacheStats>,
    /// When this server state was built (the process's start, for uptime).
    pub started: std::time::Instant,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// In-flight limit and request deadline.
    pub limits: resilience::GatewayLimits,
    /// Places for requests in flight (load shedding).
    pub in_flight: Arc<resilience::InFlightLimit>,
}

/// Rendered describes kept (they are rebuilt after any metadata change).
pub const DESCRIBE_CACHE_CAPACITY: u64 = 10_000;

impl AppState {
    /// State for `platform` served at `instance_url`; the metrics token
    /// comes from `MOSAIC_METRICS_TOKEN`, the gateway's limits from
    /// `MOSAIC_MAX_IN_FLIGHT` and `MOSAIC_REQUEST_TIMEOUT_MS`.
    pub fn new(platform: Arc<Platform>, instance_url: impl Into<Arc<str>>) -> AppState {
        Self::with_limits(
            platform,
            instance_url,
            resilience::GatewayLimits::from_env(),
        )
    }

    /// [`AppState::new`] with explicit gateway limits.
    pub fn with_limits(
        platform: Arc<Platform>,
        instance_url: impl Into<Arc<str>>,
        limits: resilience::GatewayLimits,
    ) -> AppState {
        observe::metrics_handle();
        idempotency::spawn_purge(&platform);
        AppState {
            platform,
            instance_url: instance_url.into(),
            metrics_token: std::env::var("MOSAIC_METRICS_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .map(Into::into),
            tenants: Arc::default(),
            describes: moka::sync::Cache::builder()
                .max_capacity(DESCRIBE_CACHE_CAPACITY)
                .time_to_live(std::time::Duration::from_secs(300))
                .build(),
            describe_stats: Arc::default(),
            started: std::time::Instant::now(),
            started_at: chrono::Utc::now(),
            in_flight: Arc::new(resilience::InFlightLimit::new(limits.max_in_flight)),
            limits,
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics_endpoint))
        .route("/services/admin/v1/status", get(status::status))
        .route("/services/admin/v1/shards", get(status::shards))
        .route("/services/admin/v1/shards/hot", get(status::hot))
        .merge(oauth::routes())
        .merge(admin::routes())
        .merge(maintenance::routes())
        .merge(moves::routes())
        .merge(cache::routes())
        // Changing (and reading) definitions is for system administrators.
        .merge(
            metadata::routes()
                .merge(views::metadata_routes())
                .merge(formula::routes())
                .merge(automation::metadata_routes())
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::require_admin_audited,
                )),
        )
        .merge(data::routes())
        .merge(views::data_routes())
        .merge(query::routes())
        .merge(automation::routes())
        .merge(sharing::routes())
        .merge(ai::routes())
        // The web app: pages, sessions and assets.
        .merge(mosaic_web::router(mosaic_web::WebState {
            platform: state.platform.clone(),
        }))
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::keyed_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            resilience::defend,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::track,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// in-flight requests. Starts the outbox worker and the health monitor
/// (maintenance switch and metadata probe, every second) and the cache
/// tier's invalidation subscriber first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let worker = state
        .platform
        .start_outbox_worker()
        .await
        .map_err(|e| std::io::Error::other(e.message))?;
    let monitor = state.platform.start_health_monitor().await;
    let cache = state.platform.start_cache_tier();
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    let served = axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(app),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    worker.stop().await;
    monitor.stop().await;
    cache.stop().await;
    served
}
