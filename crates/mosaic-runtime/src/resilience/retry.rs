//! The retry policy: which failures are worth another attempt, and how long
//! to wait before it. One type for every caller (database calls, outbound
//! HTTP, workflow deliveries), so no call site grows its own loop.
//!
//! | kind | retries | first delay → cap | jitter | retried on |
//! |---|---|---|---|---|
//! | idempotent (reads, GET) | 3 | 100 ms → 2 s | ±10 % | timeouts, connection errors, 5xx |
//! | non-idempotent (POST, PATCH, DELETE) | 1 | 100 ms | ±10 % | a failure before the request was sent |
//! | database | 3 | 50 ms → 2 s | ±10 % | deadlock, serialization failure, lock timeout, lost connection |
//! | delivery (outbound messages, email) | 5 | 1 s → 5 min | ±20 % | any failure; then the dead-letter queue |

use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use rand::Rng;
use std::future::Future;
use std::time::Duration;

/// How many times, and how far apart, a failed call is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before the first retry; each next one doubles, up to `max_delay`.
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Each delay is scaled by a random factor in `[1 - jitter, 1 + jitter]`,
    /// so retries of many callers do not arrive together.
    pub jitter: f64,
}

impl RetryPolicy {
    pub const IDEMPOTENT: RetryPolicy = RetryPolicy {
        max_retries: 3,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        jitter: 0.10,
    };
    pub const NON_IDEMPOTENT: RetryPolicy = RetryPolicy {
        max_retries: 1,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(100),
        jitter: 0.10,
    };
    pub const DATABASE: RetryPolicy = RetryPolicy {
        max_retries: 3,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(2),
        jitter: 0.10,
    };
    /// Workflow deliveries; `AutomationConfig` overrides base, cap and count.
    pub const DELIVERY: RetryPolicy = RetryPolicy {
        max_retries: 5,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(300),
        jitter: 0.20,
    };

    /// The delay before retry number `retry` (1-based) before jitter:
    /// `initial · 2^(retry-1)`, capped at `max_delay`.
    pub fn nominal_delay(&self, retry: u32) -> Duration {
        let doubled = self
            .initial_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        doubled.min(self.max_delay)
    }

    /// [`RetryPolicy::nominal_delay`] with jitter drawn from `unit` in `[0, 1]`:
    /// 0 gives the shortest delay, 1 the longest.
    pub fn delay_at(&self, retry: u32, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        let jitter = self.jitter.clamp(0.0, 1.0);
        self.nominal_delay(retry)
            .mul_f64(1.0 - jitter + 2.0 * jitter * unit)
    }

    /// The delay before retry number `retry` (1-based), randomly jittered.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_at(retry, rand::rng().random_range(0.0..=1.0))
    }

    /// Whether retry number `retry` (1-based) is still allowed.
    pub fn allows(&self, retry: u32) -> bool {
        retry <= self.max_retries
    }
}

/// What kind of call failed: it decides the policy and what may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Safe to repeat: reads, GETs, metadata reads.
    Idempotent,
    /// May have had an effect: POST, PATCH, DELETE without an idempotency key.
    NonIdempotent,
    /// A database statement or transaction.
    Database,
    /// An outbox delivery (receivers deduplicate by delivery id).
    Delivery,
}

impl CallKind {
    pub fn policy(self) -> RetryPolicy {
        match self {
            CallKind::Idempotent => RetryPolicy::IDEMPOTENT,
            CallKind::NonIdempotent => RetryPolicy::NON_IDEMPOTENT,
            CallKind::Database => RetryPolicy::DATABASE,
            CallKind::Delivery => RetryPolicy::DELIVERY,
        }
    }

    /// Whether a call of this kind that failed with `e` may be tried again.
    ///
    /// Database calls retry only what is known to have changed nothing
    /// (`UNABLE_TO_LOCK_ROW`: deadlock, serialization failure, lock timeout)
    /// or a lost connection (`SERVICE_UNAVAILABLE`) — never a constraint
    /// violation (`DUPLICATE_VALUE`, …) or a broken statement
    /// (`UNKNOWN_EXCEPTION`). A domain error (validation, access, not found)
    /// is an answer, and answers are never retried.
    pub fn retries_error(self, e: &MosaicError) -> bool {
        use ErrorCode::*;
        match self {
            CallKind::Database => matches!(e.code, UNABLE_TO_LOCK_ROW | SERVICE_UNAVAILABLE),
            CallKind::Idempotent => matches!(
                e.code,
                UNABLE_TO_LOCK_ROW
                    | SERVICE_UNAVAILABLE
                    | REQUEST_RUNNING_TOO_LONG
                    | UNKNOWN_EXCEPTION
            ),
            // A domain error does not say whether the request reached the
            // other side; only an HTTP outcome can.
            CallKind::NonIdempotent => false,
            CallKind::Delivery => true,
        }
    }

    /// Whether a call of this kind that ended with `outcome` may be tried again.
    pub fn retries_http(self, outcome: HttpOutcome) -> bool {
        match self {
            CallKind::Idempotent => match outcome {
                HttpOutcome::NotSent | HttpOutcome::Timeout | HttpOutcome::ConnectionLost => true,
                HttpOutcome::Status(s) => (500..=599).contains(&s),
            },
            // A 5xx or a lost connection may come after a partial success.
            CallKind::NonIdempotent => outcome == HttpOutcome::NotSent,
            CallKind::Database => false,
            CallKind::Delivery => !matches!(outcome, HttpOutcome::Status(200..=299)),
        }
    }
}

/// How an outbound HTTP call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpOutcome {
    /// Failed before any byte of the request left (refused connection,
    /// DNS failure, TLS handshake): the other side saw nothing.
    NotSent,
    /// No answer within the timeout.
    Timeout,
    /// The connection broke after the request was (partly) sent.
    ConnectionLost,
    /// The other side answered with this status.
    Status(u16),
}

impl HttpOutcome {
    /// The outcome of a `reqwest` call.
    pub fn of(r: &Result<reqwest::Response, reqwest::Error>) -> HttpOutcome {
        match r {
            Ok(res) => HttpOutcome::Status(res.status().as_u16()),
            Err(e) if e.is_timeout() => HttpOutcome::Timeout,
            Err(e) if e.is_connect() || e.is_builder() => HttpOutcome::NotSent,
            Err(_) => HttpOutcome::ConnectionLost,
        }
    }
}

/// Runs `op` and retries it under `kind`'s policy while its error is
/// retryable; the last error is returned when the retries run out.
pub async fn retry<T, F, Fut>(kind: CallKind, op: F) -> MosaicResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = MosaicResult<T>>,
{
    retry_while(kind, op, |e| kind.retries_error(e)).await
}

/// A failed outbound HTTP call: how far it got (`None`: it never reached
/// the network, e.g. a circuit breaker refused it) and the error to report.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFailure {
    pub outcome: Option<HttpOutcome>,
    pub error: MosaicError,
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

/// Runs an outbound HTTP call and retries it under `kind`'s policy while
/// its outcome is retryable ([`CallKind::retries_http`]: for a
/// non-idempotent call, only a failure before the request was sent); the
/// last error is returned when the retries run out.
pub async fn retry_http<T, F, Fut>(kind: CallKind, op: F) -> MosaicResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, HttpFailure>>,
{
    retry_while(kind, op, |f: &HttpFailure| {
        f.outcome.is_some_and(|o| kind.retries_http(o))
    })
    .await
    .map_err(|f| f.error)
}

/// The one retry loop: `op` again after `kind`'s delay while `retryable`
/// says so and the policy allows another retry.
async fn retry_while<T, E, F, Fut>(
    kind: CallKind,
    mut op: F,
    retryable: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let policy = kind.policy();
    let mut retry = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && policy.allows(retry + 1) => {
                retry += 1;
                let delay = policy.delay(retry);
                tracing::debug!(error = %e, retry, delay_ms = delay.as_millis() as u64, "retrying");
                metrics::counter!("retries_total", "kind" => kind.name()).increment(1);
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl CallKind {
    /// The `kind` label of `retries_total`.
    pub fn name(self) -> &'static str {
        match self {
            CallKind::Idempotent => "idempotent",
            CallKind::NonIdempotent => "non_idempotent",
            CallKind::Database => "database",
            CallKind::Delivery => "delivery",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn err(code: ErrorCode) -> MosaicError {
        MosaicError::new(code, "x")
    }

    #[test]
    fn database_retries_only_lock_and_connection_failures() {
        use ErrorCode::*;
        for code in [UNABLE_TO_LOCK_ROW, SERVICE_UNAVAILABLE] {
            assert!(CallKind::Database.retries_error(&err(code)), "{code}");
        }
        for code in [
            DUPLICATE_VALUE,
            UNKNOWN_EXCEPTION,
            INVALID_CROSS_REFERENCE_KEY,
            CONFLICT,
            NOT_FOUND,
            FIELD_CUSTOM_VALIDATION_EXCEPTION,
            MALFORMED_QUERY,
        ] {
            assert!(!CallKind::Database.retries_error(&err(code)), "{code}");
        }
    }

    #[test]
    fn idempotent_calls_retry_timeouts_connection_errors_and_5xx() {
        use ErrorCode::*;
        let k = CallKind::Idempotent;
        for code in [
            SERVICE_UNAVAILABLE,
            REQUEST_RUNNING_TOO_LONG,
            UNKNOWN_EXCEPTION,
            UNABLE_TO_LOCK_ROW,
        ] {
            assert!(k.retries_error(&err(code)), "{code}");
        }
        for code in [
            NOT_FOUND,
            INSUFFICIENT_ACCESS,
            INVALID_SESSION_ID,
            REQUEST_LIMIT_EXCEEDED,
            INVALID_INPUT,
        ] {
            assert!(!k.retries_error(&err(code)), "{code}");
        }
        for o in [
            HttpOutcome::NotSent,
            HttpOutcome::Timeout,
            HttpOutcome::ConnectionLost,
            HttpOutcome::Status(500),
            HttpOutcome::Status(503),
        ] {
            assert!(k.retries_http(o), "{o:?}");
        }
        for o in [
            HttpOutcome::Status(200),
            HttpOutcome::Status(404),
            HttpOutcome::Status(409),
            HttpOutcome::Status(429),
        ] {
            assert!(!k.retries_http(o), "{o:?}");
        }
    }

    #[test]
    fn non_idempotent_calls_retry_only_what_was_never_sent() {
        let k = CallKind::NonIdempotent;
        assert!(k.retries_http(HttpOutcome::NotSent));
        for o in [
            HttpOutcome::Timeout,
            HttpOutcome::ConnectionLost,
            HttpOutcome::Status(500),
            HttpOutcome::Status(503),
        ] {
            assert!(!k.retries_http(o), "{o:?}");
        }
        assert!(!k.retries_error(&err(ErrorCode::SERVICE_UNAVAILABLE)));
        assert_eq!(k.policy().max_retries, 1);
    }

    #[test]
    fn deliveries_retry_every_failure_but_not_success() {
        let k = CallKind::Delivery;
        assert!(k.retries_http(HttpOutcome::Status(400)));
        assert!(k.retries_http(HttpOutcome::Timeout));
        assert!(!k.retries_http(HttpOutcome::Status(204)));
        assert!(k.retries_error(&err(ErrorCode::UNKNOWN_EXCEPTION)));
    }

    #[test]
    fn delays_double_up_to_the_cap_within_jitter_bounds() {
        let p = RetryPolicy::IDEMPOTENT;
        let nominal: Vec<u128> = (1..=6).map(|n| p.nominal_delay(n).as_millis()).collect();
        assert_eq!(nominal, [100, 200, 400, 800, 1600, 2000]);
        assert_eq!(p.delay_at(1, 0.0), Duration::from_millis(90));
        assert_eq!(p.delay_at(1, 1.0), Duration::from_millis(110));
        assert_eq!(p.delay_at(6, 1.0), Duration::from_millis(2200));
        for n in 1..=3 {
            for _ in 0..200 {
                let d = p.delay(n).as_secs_f64();
                let base = p.nominal_delay(n).as_secs_f64();
                assert!(
                    d >= base * 0.9 - 1e-9 && d <= base * 1.1 + 1e-9,
                    "{d} vs {base}"
                );
            }
        }
        let db: Vec<u128> = (1..=3)
            .map(|n| RetryPolicy::DATABASE.nominal_delay(n).as_millis())
            .collect();
        assert_eq!(db, [50, 100, 200]);
        let out: Vec<u64> = (1..=5)
            .map(|n| RetryPolicy::DELIVERY.nominal_delay(n).as_secs())
            .collect();
        assert_eq!(out, [1, 2, 4, 8, 16]);
        assert_eq!(
            RetryPolicy::DELIVERY.nominal_delay(12),
            Duration::from_secs(300)
        );
        assert_eq!(
            RetryPolicy::DELIVERY.delay_at(12, 0.0),
            Duration::from_secs(240)
        );
        assert!(p.allows(3) && !p.allows(4));
    }

    #[tokio::test]
    async fn retry_stops_at_the_first_answer_or_after_the_last_retry() {
        let calls = AtomicU32::new(0);
        let r: MosaicResult<()> = retry(CallKind::Database, || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(err(ErrorCode::UNABLE_TO_LOCK_ROW)) }
        })
        .await;
        assert_eq!(r.unwrap_err().code, ErrorCode::UNABLE_TO_LOCK_ROW);
        assert_eq!(calls.load(Ordering::Relaxed), 4, "1 attempt + 3 retries");

        let calls = AtomicU32::new(0);
        let r: MosaicResult<()> = retry(CallKind::Database, || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(err(ErrorCode::DUPLICATE_VALUE)) }
        })
        .await;
        assert_eq!(r.unwrap_err().code, ErrorCode::DUPLICATE_VALUE);
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "constraint violations never retry"
        );

        let calls = AtomicU32::new(0);
        let r = retry(CallKind::Database, || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if n < 2 {
                    Err(err(ErrorCode::SERVICE_UNAVAILABLE))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
    }

    #[tokio::test]
    async fn non_idempotent_http_calls_retry_once_and_only_what_was_never_sent() {
        let fail = |outcome| HttpFailure {
            outcome,
            error: err(ErrorCode::SERVICE_UNAVAILABLE),
        };
        for (outcome, calls_expected) in [
            (Some(HttpOutcome::NotSent), 2),
            (Some(HttpOutcome::Timeout), 1),
            (Some(HttpOutcome::ConnectionLost), 1),
            (Some(HttpOutcome::Status(500)), 1),
            (None, 1),
        ] {
            let calls = AtomicU32::new(0);
            let r: MosaicResult<()> = retry_http(CallKind::NonIdempotent, || {
                calls.fetch_add(1, Ordering::Relaxed);
                let f = fail(outcome);
                async move { Err(f) }
            })
            .await;
            assert_eq!(r.unwrap_err().code, ErrorCode::SERVICE_UNAVAILABLE);
            assert_eq!(calls.load(Ordering::Relaxed), calls_expected, "{outcome:?}");
        }
        let calls = AtomicU32::new(0);
        let r = retry_http(CallKind::NonIdempotent, || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            let f = fail(Some(HttpOutcome::NotSent));
            async move {
                if n == 0 {
                    Err(f)
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 1, "a refused connection is tried again");
    }
}
