//! The load harness checks itself: a short `mosaic loadtest` against a real
//! `mosaic serve` (2 tenants × 300 records, a few seconds, closed loop and
//! open loop) must run every available operation without errors, mark the
//! unavailable ones n/a with a reason, and report counts that add up.
//! No assertion is about speed: tests never assert on wall-clock time.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mosaic");

/// Operations the platform has today; the harness must run each of them.
const AVAILABLE_NOW: [&str; 9] = [
    "metadata_read",
    "record_read_simple",
    "record_read_formulas",
    "record_write_simple",
    "record_write_workflows",
    "query_simple",
    "query_complex",
    "page_render",
    "list_render",
];

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path) -> (Server, String) {
    let child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mosaic serve");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("instance.json")) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if v["pid"].as_u64() == Some(u64::from(server.0.id())) {
                    let url = v["url"].as_str().unwrap().to_string();
                    return (server, url);
                }
            }
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn loadtest(dir: &Path, url: &str, extra: &[&str]) -> (Value, String) {
    let json = dir.join(format!("report-{}.json", extra.len()));
    let out = Command::new(BIN)
        .args(["loadtest", "--url", url, "--data-dir"])
        .arg(dir)
        .args([
            "--tenants",
            "2",
            "--records",
            "300",
            "--connections",
            "8",
            "--baseline-secs",
            "1",
        ])
        .args(extra)
        .arg("--json")
        .arg(&json)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mosaic loadtest");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "loadtest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("JSON report written"))
            .expect("the JSON report parses");
    (report, stdout)
}

fn check(report: &Value, table: &str) {
    let ops = report["operations"].as_object().expect("operations");
    let mut sum = 0;
    for (name, o) in ops {
        let count = o["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: count"));
        sum += count;
        assert_eq!(o["errors"], 0, "{name} had errors: {o}");
        if o["available"] == true {
            assert!(count > 0, "{name} never ran: {o}");
            for k in ["p50_ms", "p95_ms", "p99_ms", "max_ms"] {
                assert!(o[k].as_f64().is_some_and(|v| v > 0.0), "{name}.{k}: {o}");
            }
            assert!(
                o["p50_ms"].as_f64() <= o["p99_ms"].as_f64()
                    && o["p99_ms"].as_f64() <= o["max_ms"].as_f64(),
                "{o}"
            );
        } else {
            assert_eq!(count, 0, "{name} is n/a but ran: {o}");
            assert!(
                o["note"].as_str().is_some_and(|n| n.starts_with("n/a: ")),
                "{name}: {o}"
            );
            assert!(
                table.contains(&format!("{name}: n/a: ")),
                "the table explains {name}:\n{table}"
            );
        }
    }
    for name in AVAILABLE_NOW {
        assert_eq!(
            ops[name]["available"], true,
            "{name} must run against this server: {}",
            ops[name]
        );
    }
    assert_eq!(
        report["total"].as_u64(),
        Some(sum),
        "per-operation counts add up to the total"
    );
    assert_eq!(report["errors"], 0);
    assert!(report["qps"].as_f64().is_some_and(|q| q > 0.0));
    assert!(
        report["baseline_qps"].as_f64().is_some_and(|b| b > 0.0),
        "baseline measured"
    );
    assert!(report["record_read_baseline_ratio"]
        .as_f64()
        .is_some_and(|r| r > 0.0));
    for name in AVAILABLE_NOW {
        assert!(
            table.contains(&format!("| {} |", ops[name]["label"].as_str().unwrap())),
            "{name} row:\n{table}"
        );
    }
}

#[test]
fn a_short_closed_and_open_loop_run_exercises_every_operation_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = start(dir.path());

    let (report, table) = loadtest(dir.path(), &url, &["--duration", "6"]);
    check(&report, &table);
    assert_eq!(report["mode"], "closed");
    assert_eq!(report["tenants"], 2);
    assert_eq!(
        report["seed"]["records"],
        2 * (300 + 30),
        "300 opportunities and 30 accounts per tenant"
    );

    // Open loop at a rate the server easily sustains: every due request is sent.
    let (report, table) = loadtest(dir.path(), &url, &["--duration", "3", "--rate", "200"]);
    check(&report, &table);
    assert_eq!(report["mode"], "open");
    assert_eq!(report["scheduled"], 600);
    assert_eq!(
        report["total"], 600,
        "all due requests were sent and answered"
    );
}
