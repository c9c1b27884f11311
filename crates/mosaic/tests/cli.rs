//! The `mosaic tenant create` contract: one JSON object on stdout, clear
//! errors (and a failing exit code) for taken usernames and subdomains.

use serde_json::Value;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mosaic");

fn create(dir: &std::path::Path, sub: &str, user: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["tenant", "create", "--data-dir"])
        .arg(dir)
        .args([
            "--name",
            "Acme",
            "--subdomain",
            sub,
            "--admin-username",
            user,
            "--admin-password",
            "long-enough-1",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mosaic")
}

#[test]
fn tenant_create_contract_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let ok = create(
        dir.path(),
        "acme",
        "admin@acme.test",
        &["--tier", "enterprise"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v: Value = serde_json::from_slice(&ok.stdout).expect("one JSON object");
    assert_eq!(v.as_object().unwrap().len(), 4);
    assert_eq!(
        v["instance_url"], "http://127.0.0.1:8080",
        "no server recorded: the default"
    );

    // The admin username is taken across the whole platform (any case).
    let dup_user = create(dir.path(), "other", "ADMIN@acme.test", &[]);
    assert!(!dup_user.status.success());
    assert!(dup_user.stdout.is_empty(), "nothing on stdout when refused");
    let err = String::from_utf8_lossy(&dup_user.stderr);
    assert!(
        err.contains("DUPLICATE_VALUE")
            && err.contains("username")
            && err.contains("already taken"),
        "{err}"
    );

    let dup_sub = create(dir.path(), "acme", "someone@else.test", &[]);
    assert!(!dup_sub.status.success());
    let err = String::from_utf8_lossy(&dup_sub.stderr);
    assert!(
        err.contains("subdomain") && err.contains("already taken"),
        "{err}"
    );

    let bad = create(dir.path(), "Bad Sub!", "x@y.test", &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("subdomain"));
    let weak = Command::new(BIN)
        .args(["tenant", "create", "--data-dir"])
        .arg(dir.path())
        .args([
            "--name",
            "W",
            "--subdomain",
            "w",
            "--admin-username",
            "w@w.test",
            "--admin-password",
            "short",
        ])
        .output()
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let tier = create(dir.path(), "t2", "t2@x.test", &["--tier", "platinum"]);
    assert!(!tier.status.success());
}
