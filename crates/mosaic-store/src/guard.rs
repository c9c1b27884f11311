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
    // A write refused by a tenant move is the database answering.
    !crate::transfer::is_moving(e)
        && matches!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteDb;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// Refuses while `closed` is false; remembers every outcome.
    #[derive(Default)]
    struct Recorder {
        refuse: AtomicBool,
        outcomes: Mutex<Vec<CallOutcome>>,
    }

    impl CallGuard for Recorder {
        fn admit(&self) -> MosaicResult<()> {
            if self.refuse.load(Ordering::Relaxed) {
                Err(MosaicError::unavailable("breaker open"))
            } else {
                Ok(())
            }
        }
        fn record(&self, outcome: CallOutcome) {
            self.outcomes.lock().unwrap().push(outcome);
        }
    }

    #[tokio::test]
    async fn every_database_call_asks_the_guard_and_reports_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(
            &dir.path().join("g.sqlite"),
            "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);",
        )
        .unwrap();
        let guard = Arc::new(Recorder::default());
        assert!(db.set_guard(guard.clone()));
        assert!(!db.set_guard(guard.clone()), "one guard per database");

        db.write(|c| {
            c.execute("INSERT INTO t VALUES ('a')", [])
                .map_err(crate::sqlite::map_sql)
        })
        .await
        .unwrap();
        // A constraint violation is the database answering.
        let dup = db
            .write(|c| {
                c.execute("INSERT INTO t VALUES ('a')", [])
                    .map_err(crate::sqlite::map_sql)
            })
            .await;
        assert!(dup.is_err());
        let n: i64 = db
            .read(|c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(crate::sqlite::map_sql)
            })
            .await
            .unwrap();
        assert_eq!(n, 1);
        let broken = db
            .read(|_| Err::<(), _>(MosaicError::internal("disk I/O error")))
            .await;
        assert!(broken.is_err());
        assert_eq!(
            *guard.outcomes.lock().unwrap(),
            [
                CallOutcome::Answered,
                CallOutcome::Answered,
                CallOutcome::Answered,
                CallOutcome::Failed
            ]
        );

        // Refused: the closure never runs and nothing is recorded.
        guard.refuse.store(true, Ordering::Relaxed);
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let e = db
            .write(move |_| {
                r.store(true, Ordering::Relaxed);
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE);
        assert!(!ran.load(Ordering::Relaxed));
        assert_eq!(guard.outcomes.lock().unwrap().len(), 4);
        db.close();
    }

    #[test]
    fn a_lock_not_taken_in_time_is_unable_to_lock_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let a = rusqlite::Connection::open(&path).unwrap();
        a.execute_batch("CREATE TABLE t (k TEXT); BEGIN IMMEDIATE; INSERT INTO t VALUES ('x');")
            .unwrap();
        let b = rusqlite::Connection::open(&path).unwrap();
        b.busy_timeout(std::time::Duration::from_millis(1)).unwrap();
        let e = b
            .execute("INSERT INTO t VALUES ('y')", [])
            .map_err(crate::sqlite::map_sql)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UNABLE_TO_LOCK_ROW);
        assert!(is_dependency_failure(&e));
        assert!(!is_dependency_failure(&MosaicError::new(
            ErrorCode::DUPLICATE_VALUE,
            "dup"
        )));
    }
}
