//! The Mosaic web app for end users: login, home (object tabs, recent
//! records), list views, record pages from page layouts, create / edit /
//! delete forms, related lists and global search — server-rendered HTML
//! that works without JavaScript, with a little script for type-ahead
//! lookups, confirm dialogs and keyboard shortcuts.
//!
//! **Architecture invariant:** this crate owns HTML, cookies, CSRF,
//! templates and assets, and calls `mosaic-runtime` with the same `Caller`
//! the API builds — never the REST API, never SQL. Field-level security and
//! sharing are decided in the runtime; pages only leave out what the
//! runtime withheld.

// Handlers exit early with the page to show (a redirect, a 403 or 404
// page): `Result<_, Response>` is the idiom, and a response is not small.
#![allow(clippy::result_large_err)]

mod assets;
mod display;
mod form;
pub mod format;
mod pages;
mod session;
pub mod setup;
mod views;

use axum::routing::{get, post};
use axum::Router;
use mosaic_runtime::Platform;
use std::sync::Arc;

pub use assets::{asset_path, ASSET_CACHE_CONTROL};
pub use session::{csrf_token, SESSION_COOKIE};
pub use setup::operator::{OPERATOR_COOKIE, OPERATOR_LOGIN_COOKIE};
pub use views::refusal_page;

/// What the pages need: the platform, and the operator token
/// (`MOSAIC_OPERATOR_TOKEN`) the operator view's sign-in checks — without
/// one the operator view answers 404.
#[derive(Clone)]
pub struct WebState {
    pub platform: Arc<Platform>,
    pub operator_token: Option<Arc<str>>,
}

/// Where a request came from, as the server resolved it (the client's
/// address behind trusted proxies, and whether it arrived over HTTPS): a
/// request extension the server's gate sets before any page runs. Without
/// it a request counts as plain HTTP from an unknown address.
#[derive(Debug, Clone, Copy)]
pub struct ClientOrigin {
    pub ip: std::net::IpAddr,
    /// Over HTTPS: the session cookie is `Secure`.
    pub https: bool,
}

/// Every route of the web app, to be merged into the server's router.
pub fn router<S: Clone + Send + Sync + 'static>(state: WebState) -> Router<S> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/password/expired", post(session::change_expired_password))
        .route("/static/{file}", get(assets::serve))
        .route("/search", get(pages::search))
        .route("/lookup/{object}", get(pages::lookup))
        .route("/o/{object}", get(pages::list))
        .route("/o/{object}/count", get(pages::count))
        .route("/o/{object}/new", get(pages::new_form).post(pages::create))
        .route("/r/{object}/{id}", get(pages::record))
        .route(
            "/r/{object}/{id}/edit",
            get(pages::edit_form).post(pages::update),
        )
        .route(
            "/r/{object}/{id}/delete",
            get(pages::delete_confirm).post(pages::delete),
        )
        .route(
            "/r/{object}/{id}/related/{child}/{field}",
            get(pages::related),
        )
        .merge(setup::router())
        .with_state(state)
}

/// Whether a path belongs to the operator view (or is one of the assets
/// its pages link): the maintenance switch must stay reachable while
/// maintenance refuses everything else.
pub fn is_operator_view_path(path: &str) -> bool {
    path == "/operator" || path.starts_with("/operator/") || path.starts_with("/static/")
}

/// Whether a path belongs to the web app (its errors are HTML pages).
pub fn is_web_path(path: &str) -> bool {
    path == "/"
        || [
            "/login",
            "/logout",
            "/password/",
            "/static/",
            "/search",
            "/lookup/",
            "/o/",
            "/r/",
            "/setup",
            "/operator",
        ]
        .iter()
        .any(|p| path.starts_with(p))
}
