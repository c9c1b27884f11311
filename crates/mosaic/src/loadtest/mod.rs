//! `mosaic loadtest`: the seed's mixed workload against any Mosaic server,
//! measured per operation against the seed's latency targets, next to a
//! baseline of the same machine's HTTP limit.
//!
//! A run: tenants are created in the server's data directory (`--data-dir`,
//! as `mosaic tenant create` does), each gets the fixture of `schema.rs`
//! over HTTP and is seeded in batches of 200; a preflight checks each
//! operation's answer once; then `/healthz` alone and simple record reads
//! alone are driven for `--baseline-secs` each, and the mix for
//! `--duration`. Everything after tenant creation goes through `--url`, so
//! any deployment can be measured.

mod mix;
mod operation;
mod report;
mod schema;
mod setup;
mod workload;

use clap::Args;
use operation::{Availability, Operation};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use workload::{Pace, Phase, Workload};

const MAX_TENANTS: usize = 10_000;
const MAX_RECORDS: usize = 1_000_000;
const MAX_CONNECTIONS: usize = 4_096;
const MAX_DURATION_SECS: u64 = 24 * 3600;
const MAX_SEED_CONCURRENCY: usize = 256;
/// Idle connections kept per host beyond the driving connections.
const SPARE_CONNECTIONS: usize = 16;

#[derive(Args, Debug)]
pub struct LoadtestArgs {
    /// Base URL of the server under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// Data directory of the server under test: load-test tenants are
    /// created there (safe while the server runs). Needed unless --fixture
    /// names an existing fixture file.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Tenants to create.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Opportunity records per tenant (plus one account per ten).
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Seconds to drive the mix.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Open loop: requests per second, due at a constant rate whatever the
    /// answers; without it the run is closed loop (as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Weights: `read=80,write=20` (class shares) and per operation inside
    /// its class, e.g. `query_complex=0`; repeatable.
    #[arg(long = "mix")]
    mix: Vec<String>,
    /// Seconds of the baseline (`/healthz`) and of record reads alone
    /// before the mix; 0 skips both.
    #[arg(long, default_value_t = 5)]
    baseline_secs: u64,
    /// Seeding batches in flight at once.
    #[arg(long, default_value_t = 8)]
    seed_concurrency: usize,
    /// Reuse the tenants and records listed in this file if it exists;
    /// otherwise set up as usual and write it (tokens and record ids).
    #[arg(long)]
    fixture: Option<PathBuf>,
}

fn check_args(a: &LoadtestArgs) -> Result<(), String> {
    let bounded = |name: &str, v: usize, max: usize| {
        if v == 0 || v > max {
            Err(format!("--{name} must be 1..={max}, got {v}"))
        } else {
            Ok(())
        }
    };
    bounded("tenants", a.tenants, MAX_TENANTS)?;
    bounded("records", a.records, MAX_RECORDS)?;
    bounded("connections", a.connections, MAX_CONNECTIONS)?;
    bounded("seed-concurrency", a.seed_concurrency, MAX_SEED_CONCURRENCY)?;
    if a.duration == 0 || a.duration > MAX_DURATION_SECS || a.baseline_secs > MAX_DURATION_SECS {
        return Err(format!(
            "--duration must be 1..={MAX_DURATION_SECS} and --baseline-secs at most that"
        ));
    }
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(format!("--rate must be a positive number, got {r}"));
        }
    }
    Ok(())
}

pub async fn run(args: LoadtestArgs) -> Result<(), String> {
    check_args(&args)?;
    let spec = mix::MixSpec::parse(&args.mix)?;
    let base = args.url.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections + SPARE_CONNECTIONS)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_err(|e| format!("{base} does not answer: {e}"))?;
    if !health.status().is_success() {
        return Err(format!("{base}/healthz answered {}", health.status()));
    }

    let mut availability: [Availability; Operation::COUNT] =
        std::array::from_fn(|_| Availability::Available);
    let reuse = args.fixture.as_ref().filter(|p| p.exists());
    let (tenants, records, seeded) = if let Some(path) = reuse {
        let (tenants, records, workflows) = setup::load_fixture(path, &base)?;
        eprintln!(
            "reusing {} tenants x {records} records from {}",
            tenants.len(),
            path.display()
        );
        if !workflows {
            availability[Operation::RecordWriteWorkflows.index()] =
                Availability::Unavailable(setup::WORKFLOWS_NOT_IMPLEMENTED.into());
        }
        (tenants, records, None)
    } else {
        let data_dir = args.data_dir.as_ref().ok_or(
            "--data-dir is required to create the load-test tenants (the server's data directory), unless --fixture names an existing fixture",
        )?;
        let auths: Vec<String> = setup::create_tenants(data_dir, args.tenants)
            .await?
            .into_iter()
            .map(|t| format!("Bearer {t}"))
            .collect();
        availability[Operation::RecordWriteWorkflows.index()] =
            setup::define_objects(&http, &base, &auths).await?;
        let (tenants, n, took) =
            setup::seed(&http, &base, auths, args.records, args.seed_concurrency).await?;
        eprintln!(
            "seeded {n} records in {:.1} s ({:.0} records/s)",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64().max(1e-9)
        );
        if let Some(path) = &args.fixture {
            let workflows = availability[Operation::RecordWriteWorkflows.index()].is_available();
            setup::save_fixture(path, &base, args.records, &tenants, workflows)?;
        }
        (tenants, args.records, Some((n, took)))
    };
    setup::preflight(&http, &base, &tenants[0], records, &mut availability).await?;
    let mix = mix::Mix::new(&spec, &availability)?;
    let shares = mix.shares;
    let tenant_count = tenants.len();
    let tenants = Arc::new(tenants);

    let closed = |name: &str, workload: Workload, secs: u64| Phase {
        name: name.to_string(),
        pace: Pace::Closed,
        connections: args.connections,
        duration: Duration::from_secs(secs),
        workload,
    };
    let (baseline, record_read) = if args.baseline_secs > 0 {
        let b = workload::run_phase(
            &http,
            &base,
            tenants.clone(),
            closed("baseline /healthz", Workload::Healthz, args.baseline_secs),
        )
        .await;
        let r = workload::run_phase(
            &http,
            &base,
            tenants.clone(),
            closed(
                "record reads alone",
                Workload::Only(Operation::RecordReadSimple),
                args.baseline_secs,
            ),
        )
        .await;
        (Some(b), Some(r))
    } else {
        (None, None)
    };
    let pace = match args.rate {
        Some(rate) => Pace::Open { rate },
        None => Pace::Closed,
    };
    let main = Phase {
        name: "mix".into(),
        pace,
        connections: args.connections,
        duration: Duration::from_secs(args.duration),
        workload: Workload::Mix(mix),
    };
    let result = workload::run_phase(&http, &base, tenants.clone(), main).await;

    let report = report::Report {
        info: report::RunInfo {
            url: base.clone(),
            mode: if args.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            rate: args.rate,
            connections: args.connections,
            duration: Duration::from_secs(args.duration),
            tenants: tenant_count,
            records,
            seeded,
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        },
        mix: &result,
        availability: &availability,
        shares,
        baseline: baseline.as_ref(),
        record_read: record_read.as_ref(),
    };
    println!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}
