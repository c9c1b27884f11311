//! The load test's results: a table for people (per operation: share,
//! count, errors, QPS, p50/p95/p99/max next to the seed's targets, pass or
//! fail) and the same as JSON for machines.

use super::operation::{Availability, Operation};
use super::workload::{OpStats, PhaseResult, HEALTHZ_SLOT};
use serde_json::{json, Map, Value};
use std::fmt::Write;
use std::time::Duration;

/// Largest error rate an operation may have and still pass (the seed's run
/// had 99.97 % successful requests).
pub const MAX_ERROR_RATE: f64 = 0.001;

/// How the run was configured, echoed in both outputs.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub url: String,
    /// "closed" or "open".
    pub mode: &'static str,
    pub rate: Option<f64>,
    pub connections: usize,
    pub duration: Duration,
    pub tenants: usize,
    pub records: usize,
    /// Records seeded by this run and how long it took.
    pub seeded: Option<(u64, Duration)>,
    /// `/proc/loadavg` (1, 5, 15 min) when the mix ended: client, server and
    /// anything else on the machine share it.
    pub load_average: Option<String>,
}

pub struct Report<'a> {
    pub info: RunInfo,
    pub mix: &'a PhaseResult,
    pub availability: &'a [Availability; Operation::COUNT],
    pub shares: [f64; Operation::COUNT],
    /// `GET /healthz` alone, closed loop.
    pub baseline: Option<&'a PhaseResult>,
    /// Simple record reads alone, closed loop.
    pub record_read: Option<&'a PhaseResult>,
}

/// Verdict of one available operation against the seed's targets.
fn passes(op: Operation, s: &OpStats) -> Option<bool> {
    if s.count == 0 {
        return None;
    }
    let (p50, p99) = op.target_ms();
    let error_rate = s.errors as f64 / s.count as f64;
    Some(s.ms_at(0.50) < p50 && s.ms_at(0.99) < p99 && error_rate <= MAX_ERROR_RATE)
}

fn success_rate(s: &OpStats) -> f64 {
    if s.count == 0 {
        1.0
    } else {
        (s.count - s.errors) as f64 / s.count as f64
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

impl Report<'_> {
    pub fn baseline_qps(&self) -> Option<f64> {
        self.baseline.map(|b| b.slot_qps(HEALTHZ_SLOT))
    }

    pub fn record_read_qps(&self) -> Option<f64> {
        self.record_read
            .map(|r| r.slot_qps(Operation::RecordReadSimple.index()))
    }

    /// The human table, with the summary lines under it.
    pub fn table(&self) -> String {
        let i = &self.info;
        let mut out = String::new();
        let pace = match i.rate {
            Some(r) => format!("open loop at {r:.0} req/s"),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(
            out,
            "mosaic loadtest: {} — {pace}, {} connections, {:.0} s, {} tenants x {} records",
            i.url,
            i.connections,
            i.duration.as_secs_f64(),
            i.tenants,
            i.records
        );
        if let Some((n, took)) = i.seeded {
            let _ = writeln!(
                out,
                "seeded {n} records in {:.1} s ({:.0} records/s)",
                took.as_secs_f64(),
                n as f64 / took.as_secs_f64().max(1e-9)
            );
        }
        let _ = writeln!(
            out,
            "\n| operation | share | count | errors | success | QPS | p50 ms | p95 ms | p99 ms | max ms | target p50 / p99 ms | pass |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|");
        let mut notes = Vec::new();
        for op in Operation::ALL {
            let (t50, t99) = op.target_ms();
            let target = format!("{} / {}", ms(t50), ms(t99));
            if let Availability::Unavailable(why) = &self.availability[op.index()] {
                let _ = writeln!(
                    out,
                    "| {} | — | — | — | — | — | — | — | — | — | {target} | n/a |",
                    op.label()
                );
                notes.push(format!("{}: {why}", op.name()));
                continue;
            }
            let s = &self.mix.slots[op.index()];
            let verdict = match passes(op, s) {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "—",
            };
            let (p50, p95, p99, max) = if s.count == 0 {
                ("—".into(), "—".into(), "—".into(), "—".into())
            } else {
                (
                    ms(s.ms_at(0.50)),
                    ms(s.ms_at(0.95)),
                    ms(s.ms_at(0.99)),
                    ms(s.max_ms()),
                )
            };
            let _ = writeln!(
                out,
                "| {} | {:.1}% | {} | {} | {:.2}% | {:.0} | {p50} | {p95} | {p99} | {max} | {target} | {verdict} |",
                op.label(),
                self.shares[op.index()] * 100.0,
                s.count,
                s.errors,
                success_rate(s) * 100.0,
                self.mix.slot_qps(op.index()),
            );
        }
        let (total, errors) = (self.mix.total(), self.mix.errors());
        let _ = writeln!(
            out,
            "| **all** | 100% | {total} | {errors} | {:.2}% | **{:.0}** | | | | | | |",
            if total == 0 {
                100.0
            } else {
                (total - errors) as f64 * 100.0 / total as f64
            },
            self.mix.qps()
        );
        let _ = writeln!(out);
        if let Some(scheduled) = self.mix.scheduled {
            let _ = writeln!(
                out,
                "open loop: {scheduled} requests were due; {} were not sent before the end (server behind); \
                 latency is measured from each request's due time (includes up to ~1 ms timer granularity)",
                scheduled.saturating_sub(total)
            );
        }
        if let Some(b) = self.baseline_qps() {
            let _ = writeln!(
                out,
                "baseline GET /healthz (closed loop, same connections): {b:.0} QPS"
            );
            if let Some(r) = self.record_read_qps() {
                let _ = writeln!(
                    out,
                    "record read (simple) alone: {r:.0} QPS = {:.1}% of the baseline; the mix: {:.0} QPS = {:.1}% of the baseline",
                    r / b * 100.0,
                    self.mix.qps(),
                    self.mix.qps() / b * 100.0
                );
            }
        }
        if let Some(l) = &i.load_average {
            let _ = writeln!(out, "machine load average (1/5/15 min) at the end: {l}");
        }
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
        for op in Operation::ALL {
            for e in &self.mix.slots[op.index()].samples {
                let _ = writeln!(out, "error sample, {}: {e}", op.name());
            }
        }
        out
    }

    /// `{"qps", "operations": {name: {"count","errors","p50_ms","p95_ms","p99_ms","max_ms",…}}, "baseline_qps", …}`.
    pub fn json(&self) -> Value {
        let i = &self.info;
        let mut ops = Map::new();
        for op in Operation::ALL {
            let (t50, t99) = op.target_ms();
            let s = &self.mix.slots[op.index()];
            let mut o = json!({
                "label": op.label(),
                "count": s.count,
                "errors": s.errors,
                "target_p50_ms": t50,
                "target_p99_ms": t99,
            });
            match &self.availability[op.index()] {
                Availability::Unavailable(why) => {
                    o["available"] = json!(false);
                    o["note"] = json!(why);
                    for k in ["p50_ms", "p95_ms", "p99_ms", "max_ms", "pass"] {
                        o[k] = Value::Null;
                    }
                }
                Availability::Available => {
                    let q = |v: f64| if s.count == 0 { Value::Null } else { json!(v) };
                    o["available"] = json!(true);
                    o["share"] = json!(self.shares[op.index()]);
                    o["qps"] = json!(self.mix.slot_qps(op.index()));
                    o["success_rate"] = json!(success_rate(s));
                    o["p50_ms"] = q(s.ms_at(0.50));
                    o["p95_ms"] = q(s.ms_at(0.95));
                    o["p99_ms"] = q(s.ms_at(0.99));
                    o["max_ms"] = q(s.max_ms());
                    o["pass"] = json!(passes(op, s));
                    o["error_samples"] = json!(s.samples);
                }
            }
            ops.insert(op.name().to_string(), o);
        }
        let baseline = self.baseline_qps();
        let record_read = self.record_read_qps();
        json!({
            "qps": self.mix.qps(),
            "operations": ops,
            "baseline_qps": baseline,
            "record_read_qps": record_read,
            "record_read_baseline_ratio": baseline.zip(record_read).map(|(b, r)| r / b),
            "mix_baseline_ratio": baseline.map(|b| self.mix.qps() / b),
            "total": self.mix.total(),
            "errors": self.mix.errors(),
            "elapsed_s": self.mix.elapsed.as_secs_f64(),
            "scheduled": self.mix.scheduled,
            "mode": i.mode,
            "rate": i.rate,
            "connections": i.connections,
            "duration_s": i.duration.as_secs_f64(),
            "tenants": i.tenants,
            "records_per_tenant": i.records,
            "url": i.url,
            "load_average": i.load_average,
            "seed": i.seeded.map(|(n, took)| json!({
                "records": n,
                "seconds": took.as_secs_f64(),
                "records_per_s": n as f64 / took.as_secs_f64().max(1e-9),
            })),
        })
    }
}
