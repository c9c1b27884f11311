//! The circuit breaker every dependency sits behind: after too many failures
//! in a window it *opens* and callers fail fast with `SERVICE_UNAVAILABLE`
//! instead of queueing on a sick dependency; after a while it lets a few
//! *half-open* probe calls through, and closes again when they all succeed.
//!
//! ```text
//! closed ──(threshold failures within window)──▶ open
//! open ──(open_for elapsed, next call)──▶ half-open
//! half-open ──(probes answered)──▶ closed
//! half-open ──(one probe failed)──▶ open
//! ```

use crate::clock::Clock;
use chrono::{DateTime, Utc};
use mosaic_store::{CallGuard, CallOutcome};
use mosaic_types::{MosaicError, MosaicResult};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures within `window` that open the breaker.
    pub failure_threshold: u32,
    pub window: Duration,
    /// How long an open breaker refuses calls before probing.
    pub open_for: Duration,
    /// Probe calls let through half-open; all must succeed to close.
    pub half_open_probes: u32,
}

impl BreakerSettings {
    /// The metadata database: 5 failures in 30 s, open 30 s, 3 probes.
    pub const METADATA_DB: BreakerSettings = BreakerSettings {
        failure_threshold: 5,
        window: Duration::from_secs(30),
        open_for: Duration::from_secs(30),
        half_open_probes: 3,
    };
    /// Each record shard: the metadata database's settings.
    pub const SHARD: BreakerSettings = BreakerSettings::METADATA_DB;
    /// The L2 cache (Redis): 10 failures in 10 s, open 10 s, 5 probes.
    pub const REDIS: BreakerSettings = BreakerSettings {
        failure_threshold: 10,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(10),
        half_open_probes: 5,
    };
    /// The LLM service: 3 failures in 60 s, open 60 s, 1 probe.
    pub const LLM: BreakerSettings = BreakerSettings {
        failure_threshold: 3,
        window: Duration::from_secs(60),
        open_for: Duration::from_secs(60),
        half_open_probes: 1,
    };
}

impl BreakerSettings {
    /// These settings with the overrides of `text`: comma-separated
    /// `failures=N`, `window=D`, `open=D`, `probes=N`, where a duration `D`
    /// is a number with `ms`, `s` or `m` (`open=5s,probes=1`). What `text`
    /// does not name keeps its value. Errors name the part at fault.
    pub fn with_overrides(self, text: &str) -> Result<BreakerSettings, String> {
        let mut s = self;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            let count = || -> Result<u32, String> {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("`{part}`: {k} must be a whole number of at least 1"))
            };
            match k {
                "failures" => s.failure_threshold = count()?,
                "probes" => s.half_open_probes = count()?,
                "window" => s.window = parse_duration(v).map_err(|e| format!("`{part}`: {e}"))?,
                "open" => s.open_for = parse_duration(v).map_err(|e| format!("`{part}`: {e}"))?,
                _ => {
                    return Err(format!(
                        "`{part}`: unknown setting `{k}` (failures, window, open, probes)"
                    ))
                }
            }
        }
        Ok(s)
    }
}

/// `250ms`, `5s`, `2m` (a positive whole number and a unit), at most a day.
fn parse_duration(v: &str) -> Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{v}` is not a duration (e.g. 500ms, 30s, 2m)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{v}`: the unit must be ms, s or m")),
    };
    if d.is_zero() || d > Duration::from_secs(86_400) {
        return Err(format!("`{v}` must be more than 0 and at most a day"));
    }
    Ok(d)
}

/// The breaker settings of every dependency (`PlatformConfig::breakers`),
/// the seed's by default; `mosaic serve` takes overrides from
/// `MOSAIC_BREAKER_METADATA`, `…_SHARD`, `…_REDIS` and `…_LLM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub metadata: BreakerSettings,
    /// Each record shard (the built-in one and every registered one).
    pub shard: BreakerSettings,
    pub redis: BreakerSettings,
    pub llm: BreakerSettings,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            metadata: BreakerSettings::METADATA_DB,
            shard: BreakerSettings::SHARD,
            redis: BreakerSettings::REDIS,
            llm: BreakerSettings::LLM,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The `circuit_breaker_state` gauge's value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// Retry-After a half-open breaker suggests to callers it turned away.
pub const HALF_OPEN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A circuit breaker for one dependency.
pub struct CircuitBreaker {
    dependency: String,
    settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Failure times within the window (closed state).
    failures: VecDeque<DateTime<Utc>>,
    opened_at: DateTime<Utc>,
    /// Half-open: probes let through and not yet answered, and probes answered.
    probes_in_flight: u32,
    probes_answered: u32,
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl CircuitBreaker {
    pub fn new(
        dependency: impl Into<String>,
        settings: BreakerSettings,
        clock: Arc<dyn Clock>,
    ) -> CircuitBreaker {
        assert!(settings.failure_threshold > 0 && settings.half_open_probes > 0);
        let dependency = dependency.into();
        metrics::gauge!("circuit_breaker_state", "dependency" => dependency.clone())
            .set(BreakerState::Closed.gauge());
        CircuitBreaker {
            dependency,
            settings,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: VecDeque::new(),
                opened_at: clock.now(),
                probes_in_flight: 0,
                probes_answered: 0,
            }),
            clock,
        }
    }

    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state now: an open breaker whose time is up reads as half-open.
    pub fn state(&self) -> BreakerState {
        let mut g = self.lock();
        self.tick(&mut g, self.clock.now());
        g.state
    }

    /// How long callers should wait before trying again: the open time left,
    /// [`HALF_OPEN_RETRY_AFTER`] when half-open, `None` when closed.
    pub fn retry_after(&self) -> Option<Duration> {
        let now = self.clock.now();
        let mut g = self.lock();
        self.tick(&mut g, now);
        match g.state {
            BreakerState::Closed => None,
            BreakerState::HalfOpen => Some(HALF_OPEN_RETRY_AFTER),
            BreakerState::Open => {
                let left = g.opened_at + chrono_of(self.settings.open_for) - now;
                Some(left.to_std().unwrap_or(Duration::ZERO))
            }
        }
    }

    /// Whether a call may go to the dependency now. Refusals carry the time
    /// to wait.
    pub fn try_admit(&self) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut g = self.lock();
        self.tick(&mut g, now);
        match g.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open => {
                let left = g.opened_at + chrono_of(self.settings.open_for) - now;
                Err(left.to_std().unwrap_or(Duration::ZERO))
            }
            BreakerState::HalfOpen => {
                if g.probes_in_flight + g.probes_answered < self.settings.half_open_probes {
                    g.probes_in_flight += 1;
                    Ok(())
                } else {
                    Err(HALF_OPEN_RETRY_AFTER)
                }
            }
        }
    }

    /// Records how an admitted call ended.
    pub fn on_outcome(&self, outcome: CallOutcome) {
        let now = self.clock.now();
        let mut g = self.lock();
        self.tick(&mut g, now);
        match (g.state, outcome) {
            (BreakerState::Closed, CallOutcome::Failed) => {
                g.failures.push_back(now);
                self.forget_old_failures(&mut g, now);
                if g.failures.len() >= self.settings.failure_threshold as usize {
                    self.transition(&mut g, BreakerState::Open, now);
                }
            }
            (BreakerState::Closed, _) => {}
            (BreakerState::HalfOpen, CallOutcome::Answered) => {
                g.probes_in_flight = g.probes_in_flight.saturating_sub(1);
                g.probes_answered += 1;
                if g.probes_answered >= self.settings.half_open_probes {
                    self.transition(&mut g, BreakerState::Closed, now);
                }
            }
            (BreakerState::HalfOpen, CallOutcome::Failed) => {
                self.transition(&mut g, BreakerState::Open, now);
            }
            (BreakerState::HalfOpen, CallOutcome::Abandoned) => {
                g.probes_in_flight = g.probes_in_flight.saturating_sub(1);
            }
            // A call let through before the breaker opened: its news is old.
            (BreakerState::Open, _) => {}
        }
    }

    /// Opens the breaker now, whatever its state (an operator's or a test's
    /// way to take a dependency out).
    pub fn trip(&self) {
        let now = self.clock.now();
        let mut g = self.lock();
        if g.state == BreakerState::Open {
            g.opened_at = now;
        } else {
            self.transition(&mut g, BreakerState::Open, now);
        }
    }

    fn forget_old_failures(&self, g: &mut Inner, now: DateTime<Utc>) {
        let since = now - chrono_of(self.settings.window);
        while g.failures.front().is_some_and(|t| *t <= since) {
            g.failures.pop_front();
        }
    }

    /// Moves an open breaker whose time is up to half-open.
    fn tick(&self, g: &mut Inner, now: DateTime<Utc>) {
        if g.state == BreakerState::Open && now >= g.opened_at + chrono_of(self.settings.open_for) {
            self.transition(g, BreakerState::HalfOpen, now);
        }
    }

    fn transition(&self, g: &mut Inner, to: BreakerState, now: DateTime<Utc>) {
        let from = g.state;
        g.state = to;
        g.failures.clear();
        g.probes_in_flight = 0;
        g.probes_answered = 0;
        if to == BreakerState::Open {
            g.opened_at = now;
        }
        metrics::counter!("circuit_breaker_transitions_total", "dependency" => self.dependency.clone(), "to" => to.name())
            .increment(1);
        metrics::gauge!("circuit_breaker_state", "dependency" => self.dependency.clone())
            .set(to.gauge());
        match to {
            BreakerState::Open => tracing::warn!(
                dependency = %self.dependency,
                from = from.name(),
                open_for_secs = self.settings.open_for.as_secs(),
                "circuit breaker opened: calls fail fast"
            ),
            BreakerState::HalfOpen => tracing::info!(
                dependency = %self.dependency,
                probes = self.settings.half_open_probes,
                "circuit breaker half-open: probing"
            ),
            BreakerState::Closed => {
                tracing::info!(dependency = %self.dependency, "circuit breaker closed")
            }
        }
    }

    /// The error callers get when the breaker refuses a call.
    pub fn unavailable(&self, retry_after: Duration) -> MosaicError {
        MosaicError::unavailable(format!(
            "{} is unavailable (circuit breaker open); retry in {} s",
            self.dependency,
            retry_after_secs(retry_after)
        ))
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    whole.max(1)
}

impl CallGuard for CircuitBreaker {
    fn admit(&self) -> MosaicResult<()> {
        self.try_admit().map_err(|left| self.unavailable(left))
    }

    fn record(&self, outcome: CallOutcome) {
        self.on_outcome(outcome);
    }
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("dependency", &self.dependency)
            .field("state", &self.state())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use CallOutcome::*;

    fn breaker(settings: BreakerSettings) -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ));
        (
            CircuitBreaker::new("metadata_store", settings, clock.clone()),
            clock,
        )
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn fail(b: &CircuitBreaker, n: u32) {
        for _ in 0..n {
            b.try_admit().expect("admitted");
            b.on_outcome(Failed);
        }
    }

    #[test]
    fn opens_after_threshold_failures_within_the_window() {
        let (b, _) = breaker(BreakerSettings::METADATA_DB);
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_admit().unwrap();
        b.on_outcome(Answered);
        assert_eq!(b.state(), BreakerState::Closed, "answers do not open it");
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_admit(), Err(Duration::from_secs(30)));
        let e = b.admit().unwrap_err();
        assert_eq!(e.code, mosaic_types::ErrorCode::SERVICE_UNAVAILABLE);
        assert!(e.message.contains("retry in 30 s"), "{}", e.message);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let (b, clock) = breaker(BreakerSettings::METADATA_DB);
        fail(&b, 4);
        clock.advance(secs(31));
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b, 1);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn open_breaker_counts_down_then_goes_half_open() {
        let (b, clock) = breaker(BreakerSettings::METADATA_DB);
        fail(&b, 5);
        clock.advance(secs(12));
        assert_eq!(b.retry_after(), Some(Duration::from_secs(18)));
        assert_eq!(b.try_admit(), Err(Duration::from_secs(18)));
        clock.advance(secs(18));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.retry_after(), Some(HALF_OPEN_RETRY_AFTER));
    }

    #[test]
    fn half_open_lets_k_probes_through_and_closes_when_all_succeed() {
        let (b, clock) = breaker(BreakerSettings::METADATA_DB);
        fail(&b, 5);
        clock.advance(secs(30));
        for _ in 0..3 {
            b.try_admit().expect("probe admitted");
        }
        assert_eq!(b.try_admit(), Err(HALF_OPEN_RETRY_AFTER), "a 4th waits");
        b.on_outcome(Answered);
        b.on_outcome(Answered);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.on_outcome(Answered);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.retry_after(), None);
        // Closed again with a clean slate: 4 new failures do not reopen it.
        fail(&b, 4);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_period() {
        let (b, clock) = breaker(BreakerSettings::METADATA_DB);
        fail(&b, 5);
        clock.advance(secs(30));
        b.try_admit().unwrap();
        b.on_outcome(Answered);
        b.try_admit().unwrap();
        b.on_outcome(Failed);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.retry_after(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn an_abandoned_probe_frees_its_slot() {
        let (b, clock) = breaker(BreakerSettings::LLM);
        fail(&b, 3);
        clock.advance(secs(60));
        b.try_admit().unwrap();
        assert!(b.try_admit().is_err(), "the LLM gets one probe");
        b.on_outcome(Abandoned);
        b.try_admit().expect("slot freed");
        b.on_outcome(Answered);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn trip_opens_at_once_and_late_answers_are_ignored() {
        let (b, clock) = breaker(BreakerSettings::REDIS);
        b.try_admit().unwrap();
        b.trip();
        b.on_outcome(Answered);
        assert_eq!(b.state(), BreakerState::Open);
        clock.advance(secs(10));
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn seed_settings() {
        let m = BreakerSettings::METADATA_DB;
        assert_eq!(
            (
                m.failure_threshold,
                m.window.as_secs(),
                m.open_for.as_secs(),
                m.half_open_probes
            ),
            (5, 30, 30, 3)
        );
        let r = BreakerSettings::REDIS;
        assert_eq!(
            (
                r.failure_threshold,
                r.window.as_secs(),
                r.open_for.as_secs(),
                r.half_open_probes
            ),
            (10, 10, 10, 5)
        );
        let l = BreakerSettings::LLM;
        assert_eq!(
            (
                l.failure_threshold,
                l.window.as_secs(),
                l.open_for.as_secs(),
                l.half_open_probes
            ),
            (3, 60, 60, 1)
        );
        assert_eq!(BreakerSettings::SHARD, m);
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let s = BreakerSettings::METADATA_DB
            .with_overrides("open=5s, probes=1")
            .unwrap();
        assert_eq!(s.open_for, Duration::from_secs(5));
        assert_eq!(s.half_open_probes, 1);
        assert_eq!(s.failure_threshold, 5);
        assert_eq!(s.window, Duration::from_secs(30));
        let s = BreakerSettings::REDIS
            .with_overrides("failures=3,window=1500ms,open=2m")
            .unwrap();
        assert_eq!(
            (s.failure_threshold, s.window, s.open_for),
            (3, Duration::from_millis(1500), Duration::from_secs(120))
        );
        assert_eq!(
            BreakerSettings::LLM.with_overrides(""),
            Ok(BreakerSettings::LLM)
        );
    }

    #[test]
    fn bad_overrides_name_the_part_at_fault() {
        let err = |t: &str| BreakerSettings::METADATA_DB.with_overrides(t).unwrap_err();
        assert!(err("open").contains("`open`: expected key=value"));
        assert!(err("failures=0").contains("at least 1"));
        assert!(err("probes=-1").contains("`probes=-1`"));
        assert!(err("open=5h").contains("unit must be ms, s or m"));
        assert!(err("window=0s").contains("more than 0"));
        assert!(err("open=s").contains("not a duration"));
        assert!(err("speed=3").contains("unknown setting `speed`"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
    }
}
