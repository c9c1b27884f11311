//! Driving the server: N connections issuing the mix either as fast as
//! they can (closed loop) or at a constant arrival rate (open loop, latency
//! measured from each request's scheduled send time so a stalled server
//! cannot hide behind the requests it delayed — no coordinated omission).

use super::mix::Mix;
use super::operation::Operation;
use super::schema::{self, ACCOUNT, API, OPPORTUNITY};
use super::setup::{encode_component, TenantFixture};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::{Client, StatusCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A request slower than this counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest latency the histograms hold (longer ones are clamped to it).
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Error messages kept per operation for the report.
const ERROR_SAMPLES: usize = 5;
/// Progress line interval when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Characters of an error body kept in a sample.
const ERROR_BODY_CHARS: usize = 300;

/// How requests are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Every connection sends its next request as soon as the last answered.
    Closed,
    /// Requests are due at a constant rate (per second) whatever the answers.
    Open { rate: f64 },
}

/// What a phase sends.
#[derive(Debug, Clone)]
pub enum Workload {
    Mix(Mix),
    Only(Operation),
    /// `GET /healthz`: the HTTP stack's limit on this machine.
    Healthz,
}

/// One thing a request does; `Healthz` has its own histogram slot.
#[derive(Debug, Clone, Copy)]
enum Step {
    Op(Operation),
    Healthz,
}

/// Histogram slots: one per operation, then the baseline.
pub const SLOTS: usize = Operation::COUNT + 1;
pub const HEALTHZ_SLOT: usize = Operation::COUNT;

impl Step {
    fn slot(self) -> usize {
        match self {
            Step::Op(op) => op.index(),
            Step::Healthz => HEALTHZ_SLOT,
        }
    }
}

/// Latencies and outcomes of one operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Microseconds, successes and errors alike.
    pub hist: Histogram<u64>,
    /// Requests completed (errors included).
    pub count: u64,
    pub errors: u64,
    pub samples: Vec<String>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"),
            count: 0,
            errors: 0,
            samples: Vec::new(),
        }
    }

    fn merge(&mut self, other: &OpStats) {
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds merge");
        self.count += other.count;
        self.errors += other.errors;
        for s in &other.samples {
            if self.samples.len() < ERROR_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }

    /// Latency at quantile `q` in milliseconds.
    pub fn ms_at(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
}

/// The outcome of one phase.
#[derive(Debug)]
pub struct PhaseResult {
    pub slots: Vec<OpStats>,
    /// From the phase's start to the last answer.
    pub elapsed: Duration,
    /// Open loop: requests due during the phase (some may not have been
    /// sent when it ended if the server fell behind).
    pub scheduled: Option<u64>,
}

impl PhaseResult {
    pub fn total(&self) -> u64 {
        self.slots.iter().map(|s| s.count).sum()
    }
    pub fn errors(&self) -> u64 {
        self.slots.iter().map(|s| s.errors).sum()
    }
    pub fn qps(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn slot_qps(&self, slot: usize) -> f64 {
        self.slots[slot].count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A phase to run.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub pace: Pace,
    pub connections: usize,
    pub duration: Duration,
    pub workload: Workload,
}

struct Shared {
    http: Client,
    base: String,
    tenants: Arc<Vec<TenantFixture>>,
    workload: Workload,
    pace: Pace,
    start: Instant,
    end: Instant,
    next: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn pick(&self, rng: &mut SmallRng) -> Step {
        match &self.workload {
            Workload::Mix(m) => Step::Op(m.pick(rng.random())),
            Workload::Only(op) => Step::Op(*op),
            Workload::Healthz => Step::Healthz,
        }
    }

    /// Sends one request and reads the whole answer; Err carries why it failed.
    async fn send(&self, step: Step, rng: &mut SmallRng) -> Result<(), String> {
        let base = &self.base;
        let (req, expect) = match step {
            Step::Healthz => (self.http.get(format!("{base}/healthz")), StatusCode::OK),
            Step::Op(op) => {
                let t = &self.tenants[rng.random_range(0..self.tenants.len())];
                let opp = &t.opportunities[rng.random_range(0..t.opportunities.len())];
                let buckets = t.opportunities.len().div_ceil(schema::BUCKET_SIZE);
                let req = match op {
                    Operation::MetadataRead => self
                        .http
                        .get(format!("{base}{API}/sobjects/{OPPORTUNITY}/describe")),
                    Operation::RecordReadSimple => self.http.get(format!(
                        "{base}{API}/sobjects/{OPPORTUNITY}/{}?fields={}",
                        opp,
                        schema::READ_FIELDS
                    )),
                    Operation::RecordReadFormulas => self.http.get(format!(
                        "{base}{API}/sobjects/{OPPORTUNITY}/{}?fields={}",
                        opp,
                        schema::READ_FIELDS_WITH_FORMULAS
                    )),
                    Operation::RecordWriteSimple => {
                        let acc = &t.accounts[rng.random_range(0..t.accounts.len())];
                        let revenue = format!(
                            "{}.{:02}",
                            rng.random_range(0..100_000_000u64),
                            rng.random_range(0..100u32)
                        );
                        self.http
                            .patch(format!("{base}{API}/sobjects/{ACCOUNT}/{acc}"))
                            .header("Content-Type", "application/json")
                            .body(format!("{{\"AnnualRevenue__c\":{revenue}}}"))
                    }
                    Operation::RecordWriteWorkflows => {
                        // About half the new amounts cross the rule's threshold.
                        let amount = format!(
                            "{}.{:02}",
                            rng.random_range(0..100_000u64),
                            rng.random_range(0..100u32)
                        );
                        self.http
                            .patch(format!("{base}{API}/sobjects/{OPPORTUNITY}/{}", opp))
                            .header("Content-Type", "application/json")
                            .body(format!("{{\"Amount__c\":{amount}}}"))
                    }
                    Operation::QuerySimple => {
                        // Only full buckets, so every answer has BUCKET_SIZE rows.
                        let full = (t.opportunities.len() / schema::BUCKET_SIZE).max(1);
                        let soql = schema::simple_query(rng.random_range(0..full));
                        self.http
                            .get(format!("{base}{API}/query?q={}", encode_component(&soql)))
                    }
                    Operation::QueryComplex => {
                        let first = rng.random_range(
                            0..=buckets.saturating_sub(schema::COMPLEX_QUERY_BUCKETS),
                        );
                        let soql = schema::complex_query(first);
                        self.http
                            .get(format!("{base}{API}/query?q={}", encode_component(&soql)))
                    }
                    Operation::PageRender => {
                        // The Account's full record page, signed in with a
                        // session cookie (a session of the same store as
                        // the API's tokens).
                        let acc = &t.accounts[rng.random_range(0..t.accounts.len())];
                        let token = t.authorization.trim_start_matches("Bearer ");
                        let req = self
                            .http
                            .get(format!("{base}/r/{ACCOUNT}/{acc}"))
                            .header("Cookie", format!("mosaic_sid={token}"));
                        return self.finish(req, StatusCode::OK).await;
                    }
                    Operation::ListRender => {
                        // The first page (25 rows) of the opportunities'
                        // "All" list view, with a session cookie.
                        let token = t.authorization.trim_start_matches("Bearer ");
                        let req = self
                            .http
                            .get(format!("{base}/o/{OPPORTUNITY}"))
                            .header("Cookie", format!("mosaic_sid={token}"));
                        return self.finish(req, StatusCode::OK).await;
                    }
                };
                let expect = match op {
                    Operation::RecordWriteSimple | Operation::RecordWriteWorkflows => {
                        StatusCode::NO_CONTENT
                    }
                    _ => StatusCode::OK,
                };
                (req.header("Authorization", &t.authorization), expect)
            }
        };
        self.finish(req, expect).await
    }

    /// Sends a request and reads the whole answer.
    async fn finish(&self, req: reqwest::RequestBuilder, expect: StatusCode) -> Result<(), String> {
        let res = req
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let status = res.status();
        let body = res
            .bytes()
            .await
            .map_err(|e| format!("{status}, reading the body: {e}"))?;
        if status == expect {
            Ok(())
        } else {
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .take(ERROR_BODY_CHARS)
                .collect();
            Err(format!("{status}: {text}"))
        }
    }
}

async fn worker(shared: Arc<Shared>, seed: u64) -> (Vec<OpStats>, Instant) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut stats: Vec<OpStats> = (0..SLOTS).map(|_| OpStats::new()).collect();
    let mut last = shared.start;
    loop {
        // The instant latency is measured from.
        let origin = match shared.pace {
            Pace::Closed => {
                let now = Instant::now();
                if now >= shared.end {
                    break;
                }
                now
            }
            Pace::Open { rate } => {
                let i = shared.next.fetch_add(1, Ordering::Relaxed);
                let due = shared.start + Duration::from_secs_f64(i as f64 / rate);
                if due >= shared.end {
                    break;
                }
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                due
            }
        };
        let step = shared.pick(&mut rng);
        let outcome = shared.send(step, &mut rng).await;
        last = Instant::now();
        let s = &mut stats[step.slot()];
        s.hist
            .saturating_record(last.duration_since(origin).as_micros() as u64);
        s.count += 1;
        shared.done.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = outcome {
            s.errors += 1;
            shared.errors.fetch_add(1, Ordering::Relaxed);
            if s.samples.len() < ERROR_SAMPLES {
                s.samples.push(e);
            }
        }
    }
    (stats, last)
}

/// Shows elapsed time, QPS and errors while a phase runs: a bar on a
/// terminal, a line every few seconds otherwise.
async fn progress(shared: Arc<Shared>, name: String, stop: Arc<AtomicBool>) {
    let total = shared.end.duration_since(shared.start);
    let pb = ProgressBar::new(total.as_millis() as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(name.clone());
    let mut last_line = Instant::now();
    let (mut prev_done, mut prev_at) = (0u64, Instant::now());
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        let done = shared.done.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        let qps = (done - prev_done) as f64 / now.duration_since(prev_at).as_secs_f64().max(1e-9);
        (prev_done, prev_at) = (done, now);
        let msg = format!("{done} requests, {qps:.0} QPS now, {errors} errors");
        pb.set_position(
            now.saturating_duration_since(shared.start)
                .min(total)
                .as_millis() as u64,
        );
        pb.set_message(msg.clone());
        if pb.is_hidden() && now.duration_since(last_line) >= PLAIN_PROGRESS_EVERY {
            last_line = now;
            eprintln!(
                "{name}: {:.0}s: {msg}",
                now.saturating_duration_since(shared.start).as_secs_f64()
            );
        }
    }
    pb.finish_and_clear();
}

/// Runs one phase to its end and merges every connection's histograms.
pub async fn run_phase(
    http: &Client,
    base: &str,
    tenants: Arc<Vec<TenantFixture>>,
    phase: Phase,
) -> PhaseResult {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        http: http.clone(),
        base: base.to_string(),
        tenants,
        workload: phase.workload,
        pace: phase.pace,
        start,
        end: start + phase.duration,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let shown = tokio::spawn(progress(shared.clone(), phase.name, stop.clone()));
    let salt = rand::rng().random::<u64>();
    let workers: Vec<_> = (0..phase.connections.max(1))
        .map(|w| {
            tokio::spawn(worker(
                shared.clone(),
                salt ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ))
        })
        .collect();
    let mut slots: Vec<OpStats> = (0..SLOTS).map(|_| OpStats::new()).collect();
    let mut last = start;
    for w in workers {
        if let Ok((stats, finished)) = w.await {
            for (acc, s) in slots.iter_mut().zip(&stats) {
                acc.merge(s);
            }
            last = last.max(finished);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = shown.await;
    let scheduled = match phase.pace {
        Pace::Open { rate } => Some((phase.duration.as_secs_f64() * rate).ceil() as u64),
        Pace::Closed => None,
    };
    PhaseResult {
        slots,
        elapsed: last.duration_since(start).max(Duration::from_millis(1)),
        scheduled,
    }
}
