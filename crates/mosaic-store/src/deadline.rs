//! The deadline a database call must finish by. The server sets a request's
//! deadline around its handler ([`scope`]); every database call made while
//! it runs reads it ([`statement_deadline`]) and is stopped inside the
//! database once it passes: SQLite readers by a progress handler that
//! interrupts the statement, PostgreSQL by `statement_timeout` and by
//! cancelling the statement when the request is dropped. Calls outside a
//! request (delivery workers, maintenance tasks) get
//! [`mosaic_types::timeouts::DB_STATEMENT_TIMEOUT`].

use mosaic_types::{timeouts, ErrorCode, MosaicError};
use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `f` with `deadline` as the deadline of every database call it makes.
/// A deadline already in scope and earlier than `deadline` is kept.
pub async fn scope<F: Future>(deadline: Instant, f: F) -> F::Output {
    let d = current().map_or(deadline, |outer| outer.min(deadline));
    DEADLINE.scope(d, f).await
}

/// `f` under the deadline in scope where `carry` is called, if any: for
/// work moved to another task (task-local values do not follow
/// `tokio::spawn` by themselves).
pub fn carry<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let d = current();
    async move {
        match d {
            Some(d) => DEADLINE.scope(d, f).await,
            None => f.await,
        }
    }
}

/// The request's deadline, when a request is being served.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// When a statement started now must end: the request's deadline, and never
/// later than [`timeouts::DB_STATEMENT_TIMEOUT`] from now.
pub fn statement_deadline() -> Instant {
    let cap = Instant::now() + timeouts::DB_STATEMENT_TIMEOUT;
    current().map_or(cap, |d| d.min(cap))
}

/// Time left before [`statement_deadline`] (zero once it has passed).
pub fn remaining() -> Duration {
    statement_deadline().saturating_duration_since(Instant::now())
}

/// The error of a statement stopped at its deadline (HTTP 504, like the
/// request deadline itself).
pub fn timed_out() -> MosaicError {
    MosaicError::new(
        ErrorCode::REQUEST_RUNNING_TOO_LONG,
        "The database statement did not finish within the request's deadline and was stopped.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadlines_only_shorten_and_default_to_the_statement_timeout() {
        assert!(current().is_none());
        assert!(remaining() <= timeouts::DB_STATEMENT_TIMEOUT);
        assert!(remaining() > timeouts::DB_STATEMENT_TIMEOUT / 2);
        let soon = Instant::now() + Duration::from_millis(100);
        scope(soon, async {
            assert_eq!(current(), Some(soon));
            assert!(remaining() <= Duration::from_millis(100));
            let later = soon + Duration::from_secs(60);
            scope(later, async { assert_eq!(current(), Some(soon)) }).await;
            let bare = tokio::spawn(async { current() }).await.unwrap();
            assert_eq!(bare, None, "spawned work does not inherit by itself");
            let carried = tokio::spawn(carry(async { current() })).await.unwrap();
            assert_eq!(carried, Some(soon));
        })
        .await;
    }
}
