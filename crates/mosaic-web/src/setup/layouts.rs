//! Setup area: see `setup/mod.rs` for the areas and their guard.

use crate::WebState;
use axum::Router;

/// This area's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
}
