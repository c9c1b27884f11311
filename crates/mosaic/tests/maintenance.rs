//! `mosaic maintenance on|off` against a running server binary: the switch
//! written by the CLI into the shared metadata database reaches the server
//! within seconds, and switching it off brings the server back.

mod common;

use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

fn cli(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(common::BIN)
        .arg("maintenance")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mosaic maintenance");
    assert!(
        out.status.success(),
        "mosaic maintenance {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// Status and body of an unauthenticated data API call.
async fn probe(url: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{url}/services/data/v60.0/sobjects"))
        .await
        .expect("get");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn wait_for(url: &str, want: u16) -> (u16, Value) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let got = probe(url).await;
        if got.0 == want || Instant::now() >= until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn cli_switch_reaches_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path());
    assert_eq!(probe(&server.url).await.0, 401, "no token: unauthorized");

    let on = cli(dir.path(), &["on", "--message", "Moving to new disks"]);
    assert_eq!(on["enabled"], true);
    assert_eq!(on["updated_by"], "cli");
    let (status, body) = wait_for(&server.url, 503).await;
    assert_eq!(
        status, 503,
        "maintenance did not reach the server within 5 s"
    );
    assert_eq!(body[0]["message"], "Moving to new disks");
    let ready: Value = reqwest::get(format!("{}/readyz", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["degradation_level"], 4);
    assert_eq!(cli(dir.path(), &["status"])["enabled"], true);

    let off = cli(dir.path(), &["off"]);
    assert_eq!(off["enabled"], false);
    assert_eq!(
        wait_for(&server.url, 401).await.0,
        401,
        "the server stayed in maintenance"
    );
}

/// Runs `mosaic shard hot` on `dir` with `args`, the operator token from
/// the environment when `env_token` says so.
fn shard_hot(dir: &std::path::Path, args: &[&str], env_token: bool) -> std::process::Output {
    let mut cmd = Command::new(common::BIN);
    cmd.args(["shard", "hot"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .env_remove("MOSAIC_PUBLIC_URL")
        .env_remove("MOSAIC_OPERATOR_TOKEN");
    if env_token {
        cmd.env("MOSAIC_OPERATOR_TOKEN", common::OPERATOR_TOKEN);
    }
    cmd.output().expect("run mosaic shard hot")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `mosaic shard hot` asks the server recorded in the data directory, with
/// the operator token from `MOSAIC_OPERATOR_TOKEN` or `--token`.
#[tokio::test]
async fn shard_hot_asks_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let _server = common::start(dir.path());
    let out = shard_hot(dir.path(), &[], true);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["hot_tenants"], serde_json::json!([]));
    assert_eq!(v["window_seconds"], 86_400);
    // Without the operator credential the server refuses, and the command says so.
    let out = shard_hot(dir.path(), &[], false);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    // `--token` carries it as well.
    let out = shard_hot(dir.path(), &["--token", common::OPERATOR_TOKEN], false);
    assert!(out.status.success(), "{}", stderr(&out));
    // Without a server to ask: a clear error.
    let empty = tempfile::tempdir().unwrap();
    let out = shard_hot(empty.path(), &[], true);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no running server"));
}
