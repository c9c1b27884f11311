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

fn mosaic(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mosaic")
}

#[test]
fn shard_commands_register_list_and_drain() {
    let dir = tempfile::tempdir().unwrap();
    let add = mosaic(
        dir.path(),
        &[
            "shard",
            "add",
            "--id",
            "s1",
            "--url",
            "sqlite:shards/s1.sqlite",
            "--group",
            "starter",
            "--max-tenants",
            "1",
        ],
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let v: Value = serde_json::from_slice(&add.stdout).expect("JSON");
    assert_eq!(v["id"], "s1");
    assert!(
        dir.path().join("shards/s1.sqlite").exists(),
        "opened at once"
    );
    let again = mosaic(
        dir.path(),
        &[
            "shard",
            "add",
            "--id",
            "s1",
            "--url",
            "sqlite:x.sqlite",
            "--group",
            "starter",
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already registered"));
    let pg = mosaic(
        dir.path(),
        &[
            "shard",
            "add",
            "--id",
            "bad",
            "--url",
            "mysql://x",
            "--group",
            "starter",
        ],
    );
    assert!(!pg.status.success());

    // A starter tenant lands on s1 (one tenant at most), the next is refused.
    let t = create(dir.path(), "acme", "admin@acme.test", &[]);
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let full = create(dir.path(), "beta", "admin@beta.test", &[]);
    assert!(!full.status.success());
    assert!(String::from_utf8_lossy(&full.stderr).contains("capacity"));

    let list = mosaic(dir.path(), &["shard", "list"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let text = String::from_utf8_lossy(&list.stdout);
    let s1 = text.lines().find(|l| l.starts_with("s1 ")).expect("s1 row");
    let cols: Vec<&str> = s1.split_whitespace().collect();
    assert_eq!(cols[1..4], ["starter", "active", "1"], "{text}");
    assert!(text.contains("nearly full: s1"), "{text}");

    let drain = mosaic(dir.path(), &["shard", "drain", "--id", "s1"]);
    assert!(drain.status.success());
    let list = mosaic(dir.path(), &["shard", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("draining"));
    let unknown = mosaic(dir.path(), &["shard", "drain", "--id", "nope"]);
    assert!(!unknown.status.success());

    // Moves: to s2 (cleaned up at once), to s3 keeping the copy, rolled back.
    let tenant: Value = serde_json::from_slice(&t.stdout).expect("JSON");
    let tenant = tenant["tenant_id"].as_str().expect("tenant id").to_string();
    for id in ["s2", "s3"] {
        let add = mosaic(
            dir.path(),
            &[
                "shard",
                "add",
                "--id",
                id,
                "--url",
                &format!("sqlite:shards/{id}.sqlite"),
                "--group",
                "professional",
            ],
        );
        assert!(
            add.status.success(),
            "{}",
            String::from_utf8_lossy(&add.stderr)
        );
    }
    let moved = mosaic(
        dir.path(),
        &[
            "tenant",
            "move",
            "--tenant",
            &tenant,
            "--to",
            "s2",
            "--grace-secs",
            "0",
        ],
    );
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let report: Value = serde_json::from_slice(&moved.stdout).expect("JSON report");
    assert_eq!(
        (report["from"].as_str(), report["to"].as_str()),
        (Some("s1"), Some("s2"))
    );
    assert!(
        report["cutover_pause_ms"].as_f64().expect("pause") > 0.0,
        "{report}"
    );
    let list = mosaic(dir.path(), &["shard", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .map(|l| l.split_whitespace().nth(3).unwrap_or("").to_string())
    };
    assert_eq!(
        (row("s1").as_deref(), row("s2").as_deref()),
        (Some("0"), Some("1")),
        "{text}"
    );
    let keep = mosaic(
        dir.path(),
        &[
            "tenant",
            "move",
            "--tenant",
            &tenant,
            "--to",
            "s3",
            "--keep-source",
        ],
    );
    assert!(
        keep.status.success(),
        "{}",
        String::from_utf8_lossy(&keep.stderr)
    );
    assert!(String::from_utf8_lossy(&keep.stderr).contains("move-rollback"));
    let back = mosaic(
        dir.path(),
        &["tenant", "move-rollback", "--tenant", &tenant],
    );
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    let report: Value = serde_json::from_slice(&back.stdout).expect("JSON report");
    assert_eq!(report["to"], "s2");
    let finish = mosaic(dir.path(), &["tenant", "move-finish", "--tenant", &tenant]);
    assert!(!finish.status.success());
    assert!(String::from_utf8_lossy(&finish.stderr).contains("no moved-away copy"));
    let nowhere = mosaic(
        dir.path(),
        &["tenant", "move", "--tenant", &tenant, "--to", "nope"],
    );
    assert!(!nowhere.status.success());
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("no shard with id 'nope'"));
}
