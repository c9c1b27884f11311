//! `Idempotency-Key` on Data API writes: the first request with a key runs
//! and its response is kept; a retry with the same key and the same request
//! gets that response again, byte for byte, with `Idempotent-Replayed: true`
//! — and changes nothing. Semantics: docs/api.md ("Idempotency-Key"); why it
//! works this way: docs/decisions/0006-idempotency-keys.md.
//!
//! The key is reserved in the store before the handler runs (a unique key
//! decides between concurrent requests), so at most one request per key
//! ever executes; the others wait for its response or are told why not.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mosaic_runtime::Platform;
use mosaic_store::{IdempotencyStore, KeptResponse, KeyRecord, KeyState, Reservation};
use mosaic_types::{ErrorCode, MosaicError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The request header carrying the key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set (`true`) on a response replayed from a kept one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest key accepted (visible ASCII only).
pub const MAX_KEY_LEN: usize = 255;
/// Largest response body kept for replays. Larger ones are answered but not
/// kept: a retry gets 409 instead of a second effect.
pub const MAX_KEPT_RESPONSE_BYTES: usize = 1024 * 1024;
/// How long a request waits for another request holding its key to finish.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting request looks at the key again.
pub const IN_FLIGHT_POLL: Duration = Duration::from_millis(20);
/// A reservation older than this that never completed was left by a server
/// that stopped while running its request: its outcome is unknown.
pub const STALE_RESERVATION: Duration = Duration::from_secs(60);

/// Only requests under this prefix (the Data API) are keyed.
const KEYED_PREFIX: &str = "/services/data/";
/// The response headers a replay repeats (besides status and body).
const KEPT_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What identifies "the same request" for a key: method, calling user,
/// path with query, and the SHA-256 of the body. Each part is length-prefixed
/// so that no two different requests share an encoding.
pub fn fingerprint(method: &str, user_id: &str, path_and_query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        method.as_bytes(),
        user_id.as_bytes(),
        path_and_query.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(Sha256::digest(body));
    hex::encode(h.finalize())
}

fn is_keyed(req: &Request) -> bool {
    matches!(
        *req.method(),
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    ) && req.uri().path().starts_with(KEYED_PREFIX)
        && req.headers().contains_key(IDEMPOTENCY_KEY_HEADER)
}

/// The key of a request that carries the header: one value of 1 to
/// [`MAX_KEY_LEN`] visible ASCII characters.
fn parse_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let bad = || {
        ApiError::from(MosaicError::field(
            ErrorCode::INVALID_INPUT,
            "Idempotency-Key",
            format!(
                "the Idempotency-Key header must be one value of 1 to {MAX_KEY_LEN} visible ASCII characters"
            ),
        ))
    };
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(bad());
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(bad());
    }
    value.to_str().map(str::to_string).map_err(|_| bad())
}

/// The middleware: keyed Data API writes go through a reservation; every
/// other request passes untouched.
pub async fn keyed_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_keyed(&req) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    // Unauthenticated requests are not keyed: the handler answers them with
    // the usual authentication error.
    let Ok(Auth(caller)) = Auth::from_request_parts(&mut parts, &state).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let key = match parse_key(&parts.headers) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let bytes = match crate::extract::read_body(Request::new(body)).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| parts.uri.path());
    let fp = fingerprint(parts.method.as_str(), &caller.user_id, target, &bytes);
    let keyed = Keyed {
        store: state.platform.idempotency.clone(),
        tenant_id: caller.tenant_id,
        key,
        fingerprint: fp,
    };
    keyed
        .run(
            &state.platform,
            Request::from_parts(parts, Body::from(bytes)),
            next,
        )
        .await
}

/// One keyed request: its tenant's key and its fingerprint.
#[derive(Clone)]
struct Keyed {
    store: Arc<dyn IdempotencyStore>,
    tenant_id: String,
    key: String,
    fingerprint: String,
}

impl Keyed {
    async fn run(self, platform: &Platform, req: Request, next: Next) -> Response {
        let ttl = millis(platform.config.idempotency_ttl);
        let deadline = Instant::now() + IN_FLIGHT_WAIT;
        loop {
            let now = now_ms();
            let reserved = self
                .store
                .reserve(
                    &self.tenant_id,
                    &self.key,
                    &self.fingerprint,
                    now,
                    now.saturating_add(ttl),
                )
                .await;
            match reserved {
                Err(e) => return ApiError::from(e).into_response(),
                Ok(Reservation::Reserved { token }) => return self.execute(token, req, next).await,
                Ok(Reservation::Existing(record)) => {
                    if let Some(res) = self.await_outcome(record, deadline).await {
                        return res;
                    }
                    // The holder released the key (its response was not
                    // kept): this request may run it now.
                }
            }
        }
    }

    /// Runs the handler under the reservation `token` and keeps (or
    /// releases) the outcome. The handler runs in its own task, so a client
    /// that hangs up does not cut a write short: its response is kept for
    /// the retry.
    async fn execute(self, token: String, req: Request, next: Next) -> Response {
        let holder = self.clone();
        let held = token.clone();
        let running = KeyedRunning::start();
        let work = async move {
            let _running = running;
            let res = next.run(req).await;
            holder.settle(&held, res).await
        };
        let task = tokio::spawn(
            mosaic_store::deadline::carry(crate::observe::within_current_request(work))
                .instrument(tracing::Span::current()),
        );
        match task.await {
            Ok(res) => res,
            Err(e) => {
                // The handler panicked (a 500 like any other): the key is
                // released so that a retry runs again.
                self.release(&token).await;
                ApiError::from(MosaicError::internal(format!("keyed request task: {e}")))
                    .into_response()
            }
        }
    }

    /// Keeps the response of the request that held the key, or releases
    /// the key when a retry should run again (5xx, 429).
    async fn settle(&self, token: &str, res: Response) -> Response {
        let status = res.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            self.release(token).await;
            return res;
        }
        let (parts, body) = res.into_parts();
        let bytes: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => {
                self.release(token).await;
                return ApiError::from(MosaicError::internal(format!("response body: {e}")))
                    .into_response();
            }
        };
        let kept = KeptResponse {
            status: status.as_u16(),
            headers: KEPT_HEADERS
                .iter()
                .flat_map(|name| {
                    parts.headers.get_all(name).iter().filter_map(|v| {
                        v.to_str()
                            .ok()
                            .map(|v| (name.as_str().to_string(), v.to_string()))
                    })
                })
                .collect(),
            body: (bytes.len() <= MAX_KEPT_RESPONSE_BYTES).then(|| bytes.to_vec()),
        };
        match self
            .store
            .complete(&self.tenant_id, &self.key, token, kept)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                key = %self.key,
                "idempotency key expired while its request ran; the response was not kept"
            ),
            // The key stays pending: a retry is told the outcome is unknown
            // rather than running the request again.
            Err(e) => {
                tracing::error!(key = %self.key, error = %e, "keeping an idempotent response failed")
            }
        }
        Response::from_parts(parts, Body::from(bytes))
    }

    async fn release(&self, token: &str) {
        if let Err(e) = self.store.release(&self.tenant_id, &self.key, token).await {
            tracing::error!(key = %self.key, error = %e, "releasing an idempotency key failed");
        }
    }

    /// Answers from a key another request holds: its kept response, or a
    /// refusal. `None` when the key was released meanwhile (reserve again).
    async fn await_outcome(&self, mut record: KeyRecord, deadline: Instant) -> Option<Response> {
        loop {
            if record.fingerprint != self.fingerprint {
                return Some(self.reused());
            }
            match record.state {
                KeyState::Complete(kept) => return Some(self.replay(kept)),
                KeyState::Pending => {
                    if now_ms().saturating_sub(record.created_at_ms) > millis(STALE_RESERVATION) {
                        return Some(self.outcome_unknown());
                    }
                    if Instant::now() >= deadline {
                        return Some(self.in_progress());
                    }
                    tokio::time::sleep(IN_FLIGHT_POLL).await;
                    match self.store.get(&self.tenant_id, &self.key, now_ms()).await {
                        Ok(Some(r)) => record = r,
                        Ok(None) => return None,
                        Err(e) => return Some(ApiError::from(e).into_response()),
                    }
                }
            }
        }
    }

    fn replay(&self, kept: KeptResponse) -> Response {
        let (Some(body), Ok(status)) = (kept.body, StatusCode::from_u16(kept.status)) else {
            return self.conflict(format!(
                "the request with Idempotency-Key '{}' completed with status {}, but its response was larger than {MAX_KEPT_RESPONSE_BYTES} bytes and was not kept; check the record instead of retrying",
                self.key, kept.status
            ))
            .into_response();
        };
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = status;
        for (name, value) in kept.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                res.headers_mut().append(n, v);
            }
        }
        res.headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        metrics::counter!("idempotency_replays_total").increment(1);
        res
    }

    fn conflict(&self, message: String) -> ApiError {
        MosaicError::field(ErrorCode::CONFLICT, "Idempotency-Key", message).into()
    }

    fn reused(&self) -> Response {
        ApiError::from(MosaicError::field(
            ErrorCode::IDEMPOTENCY_KEY_REUSED,
            "Idempotency-Key",
            format!(
                "Idempotency-Key '{}' was already used for a different request (method, path, body or user); use a new key for a new request",
                self.key
            ),
        ))
        .into_response()
    }

    fn in_progress(&self) -> Response {
        let mut res = self
            .conflict(format!(
                "a request with this Idempotency-Key ('{}') is still in progress; retry shortly",
                self.key
            ))
            .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        res
    }

    fn outcome_unknown(&self) -> Response {
        self.conflict(format!(
            "the request with Idempotency-Key '{}' was interrupted (the server stopped while running it) and its outcome is unknown; check the record, then retry with a new key if it is missing",
            self.key
        ))
        .into_response()
    }
}

/// Keyed requests still running in their own tasks. Their connections may be
/// gone (a client or balancer that hung up, a connection closed by the
/// shutdown), so the server's shutdown waits for these as well: a write that
/// holds its key finishes and keeps its response for the retry, rather than
/// dying with the process and leaving the key reserved.
static KEYED_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct KeyedRunning;

impl KeyedRunning {
    fn start() -> KeyedRunning {
        KEYED_RUNNING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        KeyedRunning
    }
}

impl Drop for KeyedRunning {
    fn drop(&mut self) {
        KEYED_RUNNING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Waits (at most `limit`) until no keyed request runs in this process.
pub async fn wait_for_keyed_requests(limit: Duration) {
    let until = Instant::now() + limit;
    while KEYED_RUNNING.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_a_request_changes_its_fingerprint() {
        let base = fingerprint("POST", "u1", "/services/data/v1/sobjects/A", b"{}");
        assert_eq!(
            base,
            fingerprint("POST", "u1", "/services/data/v1/sobjects/A", b"{}")
        );
        for other in [
            fingerprint("PATCH", "u1", "/services/data/v1/sobjects/A", b"{}"),
            fingerprint("POST", "u2", "/services/data/v1/sobjects/A", b"{}"),
            fingerprint("POST", "u1", "/services/data/v1/sobjects/B", b"{}"),
            fingerprint("POST", "u1", "/services/data/v1/sobjects/A?x=1", b"{}"),
            fingerprint("POST", "u1", "/services/data/v1/sobjects/A", b"{ }"),
            // Parts are length-prefixed: moving a boundary is a change.
            fingerprint("POST", "u1/", "services/data/v1/sobjects/A", b"{}"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn keys_are_one_value_of_visible_ascii() {
        let headers = |values: &[&[u8]]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(
                    IDEMPOTENCY_KEY_HEADER,
                    HeaderValue::from_bytes(v).expect("value"),
                );
            }
            h
        };
        assert_eq!(
            parse_key(&headers(&[b"abc-123_~!"])).ok(),
            Some("abc-123_~!".into())
        );
        assert!(parse_key(&headers(&[&[b'a'; MAX_KEY_LEN]])).is_ok());
        for bad in [
            headers(&[b""]),
            headers(&[b"a b"]),
            headers(&[&[b'a'; MAX_KEY_LEN + 1]]),
            headers(&["\u{e9}".as_bytes()]),
            headers(&[b"a", b"b"]),
        ] {
            assert!(parse_key(&bad).is_err(), "{bad:?}");
        }
    }
}
