//! Backups on the real binary: `serve --backup-target` ships every
//! committed write and a graceful stop ships the last ones; `restore`
//! refuses what it must and its result serves every acknowledged record;
//! `check` finds a damaged pivot row.

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

mod common;
use common::{create_tenant, start, start_with, BIN};

async fn define_object(http: &reqwest::Client, url: &str, token: &str) {
    let res = http
        .post(format!("{url}/services/metadata/v1/objects"))
        .bearer_auth(token)
        .json(&json!({"api_name": "Ledger__c", "fields": [
            {"api_name": "Code__c", "data_type": "text", "length": 20, "is_external_id": true, "is_unique": true},
            {"api_name": "Amount__c", "data_type": "currency"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

async fn create(http: &reqwest::Client, url: &str, token: &str, i: usize) -> String {
    let r = http
        .post(format!("{url}/services/data/v60.0/sobjects/Ledger__c"))
        .bearer_auth(token)
        .json(&json!({"Name": format!("L{i}"), "Code__c": format!("C-{i}"), "Amount__c": format!("{i}.25")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sigterm(server: &mut common::Server) {
    // SAFETY: a signal to our own child process.
    let rc = unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

fn mosaic(args: &[&str], dirs: &[&Path]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(args).env("RUST_LOG", "warn");
    for d in dirs {
        c.arg(d);
    }
    c.output().expect("run mosaic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_ships_every_committed_write_and_restore_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let target = backups.path().join("target");
    let target_s = target.to_str().unwrap().to_string();
    let mut server = start_with(dir.path(), &[("MOSAIC_BACKUP_TARGET", &target_s)]);
    let (token, _) = create_tenant(dir.path(), &[], "pitr");
    let http = reqwest::Client::new();
    define_object(&http, &server.url, &token).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(create(&http, &server.url, &token, i).await);
    }
    sigterm(&mut server);

    // Refusals, with messages that say why.
    let out = mosaic(
        &[
            "restore",
            "--target",
            &target_s,
            "--to",
            "2001-01-01T00:00:00Z",
            "--into",
        ],
        &[&dir.path().join("never")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("before the first backup"), "{err}");
    let out = mosaic(&["restore", "--target", &target_s, "--into"], &[dir.path()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    let restored = backups.path().join("restored");
    let out = mosaic(&["restore", "--target", &target_s, "--into"], &[&restored]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["check"], "ok");

    let server = start(&restored);
    for (i, id) in ids.iter().enumerate() {
        let r = http
            .get(format!(
                "{}/services/data/v60.0/sobjects/Ledger__c/{id}",
                server.url
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "record {i} ({id}) shipped and restored");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Code__c"], format!("C-{i}"));
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_damaged_pivot_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let (token, _) = create_tenant(dir.path(), &[], "checked");
    let http = reqwest::Client::new();
    define_object(&http, &server.url, &token).await;
    for i in 0..5 {
        create(&http, &server.url, &token, i).await;
    }
    sigterm(&mut server);

    let out = mosaic(&["check", "--data-dir"], &[dir.path()]);
    assert!(
        out.status.success(),
        "a healthy directory: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let c = rusqlite::Connection::open(dir.path().join("records.sqlite")).unwrap();
    let n = c
        .execute(
            "UPDATE record_unique SET value = 'damaged' WHERE lower(value) = 'c-3'",
            [],
        )
        .unwrap();
    assert_eq!(n, 1, "the unique pivot row of C-3");
    drop(c);
    let out = mosaic(&["check", "--data-dir"], &[dir.path()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a damaged pivot row fails the check: {stdout}"
    );
    assert!(
        stdout.contains("record_unique") && stdout.contains("no pivot row"),
        "{stdout}"
    );
    assert!(
        stdout.contains("damaged"),
        "the stray row is named: {stdout}"
    );
}

#[test]
fn backup_takes_a_snapshot_a_restore_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = mosaic(&["migrate", "--data-dir"], &[dir.path()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backups = tempfile::tempdir().unwrap();
    let target = backups.path().join("t");
    let out = mosaic(
        &["backup", "--target", target.to_str().unwrap(), "--data-dir"],
        &[dir.path()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["databases"].as_array().unwrap().len(), 2);
    let restored = backups.path().join("r");
    let out = mosaic(
        &["restore", "--target", target.to_str().unwrap(), "--into"],
        &[&restored],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(restored.join("metadata.sqlite").is_file());
}
