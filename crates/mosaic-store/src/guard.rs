//! The seam between a database and whatever watches its health: every call
//! of an embedded database asks its [`CallGuard`] for admission first and
//! reports how the call went afterwards. The runtime installs a circuit
//! breaker here, so an unhealthy database is not called at all (the caller
//! gets `SERVICE_UNAVAILABLE` at once) and the store traits stay unaware of
//! it.

use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::sync::Arc;

/// How one admitted call ended, as far as the dependency's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The database answered (a domain error such as `DUPLICATE_VALUE` is
    /// an answer too).
    Answered,
    /// The database failed or did not answer.
    Failed,
    /// The caller went away before the answer (its deadline passed).
    Abandoned,
}

impl CallOutcome {
    /// Whether `r` shows the dependency failing: internal errors,
    /// unavailability and lock timeouts do; answers and domain errors don't.
    pub fn of<T>(r: &MosaicResult<T>) -> CallOutcome {
        match r {
            Err(e) if is_dependency_failure(e) => CallOutcome::Failed,
            _ => CallOutcome::Answered,
        }
    }
}

/// Errors that say the database itself is in trouble.
pub fn is_dependency_failure(e: &MosaicError) -> bool {
    matches!(
        e.code,
        ErrorCode::UNKNOWN_EXCEPTION
            | ErrorCode::SERVICE_UNAVAILABLE
            | ErrorCode::UNABLE_TO_LOCK_ROW
    )
}

/// Admission and outcome reporting for one dependency.
pub trait CallGuard: Send + Sync {
    /// `Err(SERVICE_UNAVAILABLE)` when the dependency must not be called now.
    fn admit(&self) -> MosaicResult<()>;
    /// Reports the end of a call `admit` let through.
    fn record(&self, outcome: CallOutcome);
}

/// One admitted call: reports [`CallOutcome::Abandoned`] if dropped before
/// [`Admitted::finish`], so a cancelled caller never holds a probe slot.
pub struct Admitted {
    guard: Option<Arc<dyn CallGuard>>,
}

impl Admitted {
    /// Asks `guard` (if any) for admission.
    pub fn ask(guard: Option<&Arc<dyn CallGuard>>) -> MosaicResult<Admitted> {
        if let Some(g) = guard {
            g.admit()?;
        }
        Ok(Admitted {
            guard: guard.cloned(),
        })
    }

    /// Reports how the call went and passes its result through.
    pub fn finish<T>(mut self, r: MosaicResult<T>) -> MosaicResult<T> {
        if let Some(g) = self.guard.take() {
            g.record(CallOutcome::of(&r));
        }
        r
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            g.record(CallOutcome::Abandoned);
        }
    }
}
