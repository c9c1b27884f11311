//! The pages' templates (compiled into the binary by askama, escaped by
//! default) and the view models they render: plain, already formatted
//! strings — templates decide layout, never access or formatting.

use crate::display::Cell;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use mosaic_types::{ErrorCode, MosaicError};
use std::sync::LazyLock;

/// The fingerprinted asset URLs every page links.
#[derive(Debug, Clone)]
pub struct Assets {
    pub css: String,
    pub js: String,
    pub icon: String,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: crate::assets::asset_path("app", "css"),
    js: crate::assets::asset_path("app", "js"),
    icon: crate::assets::asset_path("icon", "svg"),
});

impl Assets {
    pub fn get() -> Assets {
        ASSETS.clone()
    }
}

/// An object tab.
#[derive(Debug, Clone)]
pub struct Tab {
    pub label: String,
    pub href: String,
    pub current: bool,
}

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub username: String,
    pub csrf: String,
    pub tabs: Vec<Tab>,
    pub search: String,
    pub lang: &'static str,
    pub assets: Assets,
    /// The user may open Setup (an administrator, or granted "Customize
    /// application"): every page shows them a "Setup" link.
    pub setup: bool,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub next: String,
    pub error: Option<String>,
    pub username: String,
    pub csrf: String,
    pub assets: Assets,
}

/// The change of a password an administrator reset (shown instead of a
/// session when the login answered `PASSWORD_EXPIRED`).
#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub next: String,
    pub error: Option<String>,
    pub username: String,
    pub csrf: String,
    pub assets: Assets,
}

#[derive(Debug, Clone)]
pub struct RecentItem {
    pub name: String,
    pub href: String,
    pub object_label: String,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub chrome: Chrome,
    pub recent: Vec<RecentItem>,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub label: String,
    /// Sorting by this column (toggling the direction when sorted).
    pub sort_href: Option<String>,
    /// `ascending`, `descending` or `none` (for `aria-sort`).
    pub aria_sort: &'static str,
    pub numeric: bool,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub href: String,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone)]
pub struct ViewOption {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "list.html")]
pub struct ListPage {
    pub chrome: Chrome,
    pub title: String,
    pub views: Vec<ViewOption>,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    pub next_href: Option<String>,
    pub prev_href: Option<String>,
    pub search: String,
    pub count_url: String,
    pub count: Option<usize>,
    pub new_href: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// A related list's page: its parent record (label, link).
    pub parent: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub label: String,
    pub cell: Cell,
}

#[derive(Debug, Clone)]
pub struct DetailSection {
    pub label: String,
    pub columns: u8,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub struct RelatedBlock {
    pub label: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    pub new_href: Option<String>,
    pub all_href: String,
    pub more: bool,
}

#[derive(Debug, Clone)]
pub struct HistoryItem {
    pub when: String,
    pub field: String,
    pub old: String,
    pub new: String,
    pub by: String,
}

#[derive(Template)]
#[template(path = "record.html")]
pub struct RecordPage {
    pub chrome: Chrome,
    pub object_label: String,
    pub list_href: String,
    pub title: String,
    pub highlights: Vec<Item>,
    pub sections: Vec<DetailSection>,
    pub related: Vec<RelatedBlock>,
    pub history: Option<Vec<HistoryItem>>,
    pub edit_href: Option<String>,
    pub delete_href: Option<String>,
    pub notice: Option<String>,
    /// The record's manual shares (for its owner and administrators).
    pub share_href: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One form control.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub name: String,
    pub id: String,
    pub label: String,
    /// `text`, `email`, `url`, `tel`, `password`, `number`, `date`,
    /// `datetime-local`, `time`, `textarea`, `checkbox`, `select`,
    /// `multiselect`, `lookup`, `readonly`.
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    pub options: Vec<Opt>,
    pub required: bool,
    pub error: Option<String>,
    pub autofocus: bool,
    pub maxlength: Option<u32>,
    pub help: Option<String>,
    pub placeholder: String,
    /// Lookups: the target object and the referenced record's name.
    pub lookup_object: String,
    pub lookup_name: String,
    /// A save made meanwhile: its value, when it differs from this input.
    pub theirs: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FormSection {
    pub label: String,
    pub columns: u8,
    pub inputs: Vec<Input>,
}

#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    pub chrome: Chrome,
    pub title: String,
    pub action: String,
    pub sections: Vec<FormSection>,
    pub errors: Vec<String>,
    pub version: String,
    pub cancel_href: String,
    /// Someone saved the record since it was opened.
    pub conflict: Option<String>,
    pub theirs_href: String,
    /// Hidden values kept through the form (a related list's parent).
    pub keep: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "delete.html")]
pub struct DeletePage {
    pub chrome: Chrome,
    pub title: String,
    pub object_label: String,
    pub action: String,
    pub cancel_href: String,
}

#[derive(Debug, Clone)]
pub struct SearchGroup {
    pub label: String,
    pub hits: Vec<Row>,
}

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub chrome: Chrome,
    pub term: String,
    pub groups: Vec<SearchGroup>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub message: String,
    pub assets: Assets,
}

/// A rendered page (a template failure is logged and answered with 500).
pub fn html(t: &impl Template) -> Response {
    match t.render() {
        Ok(s) => Html(s).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

fn status_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
        title: title.to_string(),
        message: message.to_string(),
        assets: Assets::get(),
    };
    (status, html(&page)).into_response()
}

/// The 404 page.
pub fn not_found_page(message: &str) -> Response {
    status_page(StatusCode::NOT_FOUND, "Not found", message)
}

/// The 403 page.
pub fn forbidden_page(message: &str) -> Response {
    status_page(StatusCode::FORBIDDEN, "Not allowed", message)
}

/// The page of a refusal by the server's gate (maintenance, load shedding,
/// read-only mode, a request past its deadline): the same status and
/// message as the API's JSON refusal, as a page a person can read.
pub fn refusal_page(status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::GATEWAY_TIMEOUT => "That took too long",
        StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
        _ => "That did not work",
    };
    status_page(status, title, message)
}

/// The page of a runtime error: not found, not allowed, unavailable…
pub fn error_page(e: &MosaicError) -> Response {
    match e.code {
        ErrorCode::NOT_FOUND | ErrorCode::ENTITY_IS_DELETED | ErrorCode::MALFORMED_ID => {
            not_found_page("There is no such page or record, or it is not shared with you.")
        }
        ErrorCode::INSUFFICIENT_ACCESS => forbidden_page(&e.message),
        ErrorCode::SERVICE_UNAVAILABLE | ErrorCode::UNABLE_TO_LOCK_ROW => status_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            &e.message,
        ),
        ErrorCode::REQUEST_RUNNING_TOO_LONG => status_page(
            StatusCode::GATEWAY_TIMEOUT,
            "That took too long",
            "The page took too long to prepare. Try again.",
        ),
        ErrorCode::UNKNOWN_EXCEPTION => {
            tracing::error!(detail = %e.message, "internal error on a page");
            status_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An unexpected error occurred.",
            )
        }
        _ => status_page(StatusCode::BAD_REQUEST, "That did not work", &e.message),
    }
}

/// The HTTP status of a runtime error (for the JSON endpoints of pages).
pub fn status_of(e: &MosaicError) -> StatusCode {
    match e.code {
        ErrorCode::NOT_FOUND | ErrorCode::ENTITY_IS_DELETED | ErrorCode::MALFORMED_ID => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::INSUFFICIENT_ACCESS => StatusCode::FORBIDDEN,
        ErrorCode::SERVICE_UNAVAILABLE | ErrorCode::UNABLE_TO_LOCK_ROW => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::UNKNOWN_EXCEPTION => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}
