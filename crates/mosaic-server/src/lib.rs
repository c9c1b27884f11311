//! The Mosaic HTTP gateway. Thin handlers: extract, call the runtime, map
//! the result to Salesforce-shaped JSON.
//!
//! **Architecture invariant:** only this crate knows HTTP and the wire JSON;
//! errors from the domain are converted here, once, into the public shape.

mod auth;
mod data;
pub mod error;
mod extract;
mod formula;
mod health;
mod metadata;
mod oauth;
mod query;
mod render;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use mosaic_runtime::Platform;
use std::sync::Arc;
use std::time::Instant;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    /// The URL clients reach this server at (`instance_url`).
    pub instance_url: Arc<str>,
}

async fn log_request(State(_s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let res = next.run(req).await;
    tracing::info!(
        %method,
        route,
        status = res.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    res
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(oauth::routes())
        .merge(metadata::routes())
        .merge(formula::routes())
        .merge(data::routes())
        .merge(query::routes())
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), log_request))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes
/// in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
