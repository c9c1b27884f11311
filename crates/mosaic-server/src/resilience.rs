//! The gateway's defences, applied to every request before it reaches a
//! handler: the maintenance switch (level 4: everything refused), load
//! shedding (a bounded number of requests in flight; the rest are refused at
//! once instead of queueing without bound), read-only mode (level 3: writes
//! refused before anything is applied), and the request deadline (a request
//! that runs past it is dropped, which stops its work, and answered 504).
//! Every refusal carries `Retry-After`: the JSON error body on the API, an
//! HTML page with the same message on the web app's paths.
//!
//! Health, readiness, metrics and the operator's status view are exempt
//! from all of it, and the maintenance switch from maintenance and
//! read-only, so an operator can always see and fix the state.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mosaic_runtime::resilience::breaker::retry_after_secs;
use mosaic_types::{timeouts, ErrorCode, MosaicError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests in flight allowed per CPU core by default.
pub const DEFAULT_IN_FLIGHT_PER_CORE: usize = 256;
/// Bounds of the default in-flight limit, whatever the core count.
pub const MIN_DEFAULT_IN_FLIGHT: usize = 256;
pub const MAX_DEFAULT_IN_FLIGHT: usize = 8192;
/// `Retry-After` of a shed request: capacity frees up quickly.
pub const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The header a client names its own deadline with, in milliseconds.
pub const DEADLINE_HEADER: &str = "x-mosaic-deadline-ms";
/// The maintenance switch's path (exempt from maintenance and read-only).
pub const MAINTENANCE_PATH: &str = "/services/admin/v1/maintenance";

/// The in-flight limit for this machine: [`DEFAULT_IN_FLIGHT_PER_CORE`] per
/// core, within [`MIN_DEFAULT_IN_FLIGHT`]..=[`MAX_DEFAULT_IN_FLIGHT`].
pub fn default_max_in_flight() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * DEFAULT_IN_FLIGHT_PER_CORE).clamp(MIN_DEFAULT_IN_FLIGHT, MAX_DEFAULT_IN_FLIGHT)
}

/// The gateway's limits (`MOSAIC_MAX_IN_FLIGHT`, `MOSAIC_REQUEST_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy)]
pub struct GatewayLimits {
    pub max_in_flight: usize,
    /// A request's deadline when the client names a shorter one or none.
    pub request_deadline: Duration,
}

impl Default for GatewayLimits {
    fn default() -> GatewayLimits {
        GatewayLimits {
            max_in_flight: default_max_in_flight(),
            request_deadline: timeouts::REQUEST_DEADLINE,
        }
    }
}

impl GatewayLimits {
    /// Defaults overridden by `MOSAIC_MAX_IN_FLIGHT` and
    /// `MOSAIC_REQUEST_TIMEOUT_MS` where set to a positive number.
    pub fn from_env() -> GatewayLimits {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        let d = GatewayLimits::default();
        GatewayLimits {
            max_in_flight: num("MOSAIC_MAX_IN_FLIGHT").map_or(d.max_in_flight, |n| n as usize),
            request_deadline: num("MOSAIC_REQUEST_TIMEOUT_MS")
                .map_or(d.request_deadline, Duration::from_millis),
        }
    }
}

/// The bound on requests in flight.
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlightLimit {
    pub fn new(max: usize) -> InFlightLimit {
        let max = max.max(1);
        InFlightLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.max - self.permits.available_permits().min(self.max)
    }

    /// A place for one request, if one is free.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Takes `n` places at once (waiting for them): capacity reserved by an
    /// operator's drill or a test; released when the permit is dropped.
    pub async fn reserve(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n.min(self.max)).ok()?;
        self.permits.clone().acquire_many_owned(n).await.ok()
    }
}

/// Paths no defence applies to.
fn exempt(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/services/admin/v1/status"
    )
}

/// Requests that change nothing even though their method could: the formula
/// editor's check and evaluate, and logins (which fail on their own, with
/// the breaker's answer, when the metadata database is down).
fn changes_nothing(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || path.starts_with("/services/metadata/v1/formula/")
        || path.starts_with("/services/oauth2/")
}

/// A refusal: the JSON error body with `Retry-After`. The gate leaves a
/// handler's refusal as it is (its dependency knows the wait best).
pub fn refusal(status: StatusCode, e: MosaicError, retry_after: Duration) -> Response {
    let mut res = ApiError {
        status,
        errors: vec![e],
    }
    .into_response();
    set_retry_after(&mut res, retry_after);
    res.extensions_mut().insert(RetryAfterChosen);
    res
}

/// The gate's refusal `res` as the web app's page when `path` is one of its
/// pages: people reading it get HTML, with the same status, message and
/// `Retry-After`.
fn for_pages(path: &str, res: Response, message: &str) -> Response {
    if !mosaic_web::is_web_path(path) {
        return res;
    }
    let mut page = mosaic_web::refusal_page(res.status(), message);
    if let Some(v) = res.headers().get(header::RETRY_AFTER) {
        page.headers_mut().insert(header::RETRY_AFTER, v.clone());
    }
    page.extensions_mut().insert(RetryAfterChosen);
    page
}

/// Marks a response whose `Retry-After` was chosen on purpose.
#[derive(Debug, Clone, Copy)]
struct RetryAfterChosen;

fn set_retry_after(res: &mut Response, d: Duration) {
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs(d).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// The deadline of `req`: the client's `X-Mosaic-Deadline-Ms` if shorter
/// than the server's (and not below [`timeouts::MIN_REQUEST_DEADLINE`]).
fn deadline_of(req: &Request, server: Duration) -> Duration {
    req.headers()
        .get(DEADLINE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .map_or(server, |d| d.clamp(timeouts::MIN_REQUEST_DEADLINE, server))
}

/// `work`'s response, or 504 `REQUEST_RUNNING_TOO_LONG` when `deadline`
/// passes first. The work is dropped then, which stops it at its next
/// await; a write already handed to the database may still commit, which
/// the message says.
pub async fn within_deadline(
    deadline: Duration,
    work: impl std::future::Future<Output = Response>,
) -> Response {
    match tokio::time::timeout(deadline, work).await {
        Ok(res) => res,
        Err(_) => deadline_refusal(deadline),
    }
}

/// The 504 of a request stopped at its deadline.
fn deadline_refusal(deadline: Duration) -> Response {
    metrics::counter!("requests_refused_total", "reason" => "deadline").increment(1);
    tracing::warn!(
        deadline_ms = deadline.as_millis() as u64,
        "request ran past its deadline; stopped"
    );
    ApiError {
        status: StatusCode::GATEWAY_TIMEOUT,
        errors: vec![MosaicError::new(
            ErrorCode::REQUEST_RUNNING_TOO_LONG,
            format!(
                "The request did not finish within its deadline of {} ms and was stopped. A write may or may not have been applied: retry it with the same Idempotency-Key.",
                deadline.as_millis()
            ),
        )],
    }
    .into_response()
}

/// The middleware.
pub async fn defend(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if exempt(&path) {
        return next.run(req).await;
    }
    let p = &s.platform;
    // The switch itself, and operators signing in to turn it.
    let switch = path == MAINTENANCE_PATH
        || path.starts_with("/services/operator/v1/")
        || mosaic_web::is_operator_view_path(&path);
    let maintenance = p.maintenance();
    if maintenance.enabled && !switch {
        metrics::counter!("requests_refused_total", "reason" => "maintenance").increment(1);
        let e = MosaicError::unavailable(maintenance.text());
        let message = e.message.clone();
        let res = refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            e,
            mosaic_runtime::resilience::maintenance::MAINTENANCE_RETRY_AFTER,
        );
        return for_pages(&path, res, &message);
    }
    let Some(_place) = s.in_flight.try_enter() else {
        metrics::counter!("requests_refused_total", "reason" => "overloaded").increment(1);
        let message =
            "The server is at capacity; retry shortly (another instance may answer sooner).";
        let res = refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            MosaicError::unavailable(message),
            SHED_RETRY_AFTER,
        );
        return for_pages(&path, res, message);
    };
    if !switch && !changes_nothing(req.method(), &path) {
        if let Some((e, retry_after)) = p.write_refusal() {
            metrics::counter!("requests_refused_total", "reason" => "read_only").increment(1);
            let message = e.message.clone();
            let res = refusal(StatusCode::SERVICE_UNAVAILABLE, e, retry_after);
            return for_pages(&path, res, &message);
        }
    }
    let deadline = deadline_of(&req, s.limits.request_deadline);
    // The deadline reaches the databases too: a statement still running
    // when it passes is stopped there, not left holding a connection.
    let work = mosaic_store::deadline::scope(std::time::Instant::now() + deadline, next.run(req));
    let mut res = match tokio::time::timeout(deadline, work).await {
        Ok(res) => res,
        Err(_) => {
            let res = deadline_refusal(deadline);
            if mosaic_web::is_web_path(&path) {
                mosaic_web::refusal_page(
                    StatusCode::GATEWAY_TIMEOUT,
                    "The page took too long to prepare and was stopped. Try again.",
                )
            } else {
                res
            }
        }
    };
    // A dependency refused inside the handler (its breaker open): tell the
    // client when it is worth trying again.
    if res.status() == StatusCode::SERVICE_UNAVAILABLE
        && res.extensions().get::<RetryAfterChosen>().is_none()
    {
        set_retry_after(&mut res, p.retry_after());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(h: Option<&str>) -> Request {
        let mut b = axum::http::Request::builder().uri("/x");
        if let Some(h) = h {
            b = b.header(DEADLINE_HEADER, h);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn client_deadlines_only_shorten_the_servers() {
        let server = Duration::from_secs(30);
        assert_eq!(deadline_of(&req(None), server), server);
        assert_eq!(
            deadline_of(&req(Some("250")), server),
            Duration::from_millis(250)
        );
        assert_eq!(deadline_of(&req(Some("600000")), server), server);
        assert_eq!(
            deadline_of(&req(Some("0")), server),
            timeouts::MIN_REQUEST_DEADLINE
        );
        assert_eq!(deadline_of(&req(Some("soon")), server), server);
    }

    #[test]
    fn reads_and_editor_calls_pass_read_only_mode() {
        assert!(changes_nothing(
            &Method::GET,
            "/services/data/v60.0/sobjects/A__c"
        ));
        assert!(changes_nothing(
            &Method::POST,
            "/services/metadata/v1/formula/check"
        ));
        assert!(!changes_nothing(
            &Method::POST,
            "/services/data/v60.0/sobjects/A__c"
        ));
        assert!(!changes_nothing(
            &Method::PATCH,
            "/services/admin/v1/users/1"
        ));
        assert!(!changes_nothing(
            &Method::DELETE,
            "/services/metadata/v1/objects/A__c"
        ));
    }

    #[tokio::test]
    async fn work_past_its_deadline_is_stopped_and_answered_504() {
        let res = within_deadline(
            Duration::from_millis(10),
            std::future::pending::<Response>(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v[0]["errorCode"], "REQUEST_RUNNING_TOO_LONG");
        let done = within_deadline(Duration::from_secs(30), async {
            StatusCode::NO_CONTENT.into_response()
        })
        .await;
        assert_eq!(done.status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn default_in_flight_limit_is_bounded() {
        let n = default_max_in_flight();
        assert!((MIN_DEFAULT_IN_FLIGHT..=MAX_DEFAULT_IN_FLIGHT).contains(&n));
    }
}
