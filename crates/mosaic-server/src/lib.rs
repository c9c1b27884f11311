//! The Mosaic HTTP gateway. Thin handlers: extract, call the runtime, map
//! the result to Salesforce-shaped JSON.
//!
//! **Architecture invariant:** only this crate knows HTTP and the wire JSON;
//! errors from the domain are converted here, once, into the public shape.

mod accounts;
mod admin;
mod ai;
mod auth;
mod automation;
mod bulk;
mod cache;
mod composite;
mod data;
pub mod error;
pub mod etag;
mod extract;
mod files;
mod formula;
mod health;
pub mod idempotency;
mod identity;
mod maintenance;
mod metadata;
mod moves;
pub mod network;
mod oauth;
pub mod observe;
pub mod openapi;
pub mod operator;
mod param_search;
mod query;
pub mod ratelimit;
mod recycle;
mod render;
pub mod resilience;
mod rest;
pub mod routes;
mod sharing;
mod soap;
pub mod status;
pub mod tls;
mod views;

pub use network::{ClientInfo, ConnectionInfo, TrustedProxies};
pub use operator::{verify_operator_session, Operator};
pub use routes::{route_table, Access, RouteSpec};

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
    /// The operator credential (`MOSAIC_OPERATOR_TOKEN`), if configured.
    /// Operator sessions are the other credential.
    pub operator_token: Option<Arc<str>>,
    /// The read-only token of `/metrics` alone (`MOSAIC_METRICS_TOKEN`).
    pub metrics_token: Option<Arc<str>>,
    /// Proxies whose `X-Forwarded-For` / `-Proto` are believed
    /// (`--trusted-proxies`).
    pub trusted_proxies: Arc<network::TrustedProxies>,
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

/// A secret from the environment (never a flag); empty counts as unset.
fn secret_from_env(name: &str) -> Option<Arc<str>> {
    std::env::var(name)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .map(Into::into)
}

/// Rendered describes kept (they are rebuilt after any metadata change).
pub const DESCRIBE_CACHE_CAPACITY: u64 = 10_000;

impl AppState {
    /// State for `platform` served at `instance_url`; the operator and
    /// metrics tokens come from `MOSAIC_OPERATOR_TOKEN` and
    /// `MOSAIC_METRICS_TOKEN`, the gateway's limits from
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
        mosaic_runtime::platform::spawn_purge(&platform);
        mosaic_runtime::files::spawn_collector(&platform);
        AppState {
            platform,
            instance_url: instance_url.into(),
            operator_token: secret_from_env("MOSAIC_OPERATOR_TOKEN"),
            metrics_token: secret_from_env("MOSAIC_METRICS_TOKEN"),
            trusted_proxies: Arc::default(),
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

/// The whole HTTP surface, built from [`route_table`]: each route gets the
/// guard of its [`Access`] class (operator routes the operator guard,
/// metadata routes the customizer's audited guard).
pub fn router(state: AppState) -> Router {
    let mut app: Router<AppState> = Router::new();
    for spec in route_table() {
        let handler = match spec.access {
            Access::Operator => spec
                .handler
                .route_layer(axum::middleware::from_fn_with_state(
                    (state.clone(), spec.operation),
                    operator::require_operator,
                )),
            _ if spec.tenant_audit => {
                spec.handler
                    .route_layer(axum::middleware::from_fn_with_state(
                        state.clone(),
                        auth::require_customizer_audited,
                    ))
            }
            _ => spec.handler,
        };
        app = app.route(spec.path, handler);
    }
    // The web app: pages, sessions and assets (HTML, not the API: outside
    // the route table, behind the same gate).
    app.merge(
        mosaic_web::router(mosaic_web::WebState {
            platform: state.platform.clone(),
            operator_token: state.operator_token.clone(),
        })
        .layer(axum::middleware::from_fn(network::web_origin)),
    )
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
        network::resolve_client,
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
    serve_on(listener, state, shutdown).await
}

/// [`serve`] over TLS: `listener` hands out handshaken connections;
/// requests carry `ConnectionInfo { tls: true, .. }` and answers HSTS.
pub async fn serve_tls(
    listener: tls::TlsListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(listener, state, shutdown).await
}

async fn serve_on<L>(
    listener: L,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    ConnectionInfo:
        for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    let worker = state
        .platform
        .start_outbox_worker()
        .await
        .map_err(|e| std::io::Error::other(e.message))?;
    let bulk = state.platform.start_bulk_worker();
    let monitor = state.platform.start_health_monitor().await;
    let cache = state.platform.start_cache_tier();
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    let served = axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            ConnectionInfo,
        >(app),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    // Keyed writes run in tasks of their own: finish them too (each is
    // bounded by its request deadline).
    idempotency::wait_for_keyed_requests(mosaic_types::timeouts::REQUEST_DEADLINE).await;
    worker.stop().await;
    bulk.stop().await;
    monitor.stop().await;
    cache.stop().await;
    served
}
