//! Durability of the embedded backend, tested on the real binary: a server
//! under write load is killed with SIGKILL (and, separately, stopped with
//! SIGTERM); after a restart every write that was answered 201 is present
//! and intact. Also exercises the `tenant create` CLI contract while a
//! server runs on the same data directory.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::{start, BIN};

fn create_tenant(dir: &Path, sub: &str) -> Value {
    let out = Command::new(BIN)
        .args(["tenant", "create", "--data-dir"])
        .arg(dir)
        .args([
            "--name",
            "Crash Co",
            "--subdomain",
            sub,
            "--tier",
            "professional",
        ])
        .args([
            "--admin-username",
            &format!("admin@{sub}.test"),
            "--admin-password",
            "durable-pass-1",
        ])
        .output()
        .expect("run tenant create");
    assert!(
        out.status.success(),
        "tenant create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "exactly one JSON line: {stdout}"
    );
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    for k in ["tenant_id", "user_id", "access_token", "instance_url"] {
        assert!(v[k].is_string(), "missing {k} in {v}");
    }
    v
}

async fn write_load_then(dir: &Path, sub: &str, stop: impl FnOnce(&mut Child)) {
    let mut server = start(dir);
    let t = create_tenant(dir, sub);
    assert_eq!(
        t["instance_url"],
        server.url.as_str(),
        "instance_url is the running server's"
    );
    let token = t["access_token"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/services/metadata/v1/objects", server.url))
        .bearer_auth(&token)
        .json(&json!({"api_name": "Ledger__c", "fields": [
            {"api_name": "Amount__c", "data_type": "currency"},
            {"api_name": "Seq__c", "data_type": "auto_number", "auto_number_format": "L-{000000}"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..16 {
        let (http, url, token, acked) = (
            http.clone(),
            server.url.clone(),
            token.clone(),
            acked.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let amount = format!("{w}{i}.{:02}", i % 100);
                let res = http
                    .post(format!("{url}/services/data/v60.0/sobjects/Ledger__c"))
                    .bearer_auth(&token)
                    .json(&json!({"Name": name, "Amount__c": amount}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => return,
                        };
                        acked.lock().unwrap().push((
                            v["id"].as_str().unwrap().to_string(),
                            name,
                            amount,
                        ));
                    }
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop(&mut server.child);
    for w in writers {
        let _ = w.await;
    }
    let _ = server.child.wait();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load produced only {} writes",
        acked.len()
    );

    let server = start(dir);
    let mut seqs = Vec::new();
    for (id, name, amount) in &acked {
        let r = http
            .get(format!(
                "{}/services/data/v60.0/sobjects/Ledger__c/{id}",
                server.url
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged record {id} lost");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["Name"], name.as_str());
        let want: rust_decimal_like::Dec = amount.parse().unwrap();
        let got: rust_decimal_like::Dec = v["Amount__c"].to_string().parse().unwrap();
        assert_eq!(got, want, "amount of {id}");
        seqs.push(v["Seq__c"].as_str().unwrap().to_string());
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), acked.len(), "auto numbers are unique");
    let mut s = server;
    let _ = s.child.kill();
    let _ = s.child.wait();
    eprintln!("{} acknowledged writes verified after restart", acked.len());
}

/// Decimal comparison without pulling a decimal crate into the binary's tests.
mod rust_decimal_like {
    #[derive(Debug, PartialEq)]
    pub struct Dec(String);
    impl std::str::FromStr for Dec {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let s = s.trim_matches('"');
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            let frac = frac.trim_end_matches('0');
            let int = int.trim_start_matches('0');
            Ok(Dec(format!(
                "{}.{}",
                if int.is_empty() { "0" } else { int },
                frac
            )))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_write_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    write_load_then(dir.path(), "crash", |c| {
        c.kill().expect("SIGKILL");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_writes() {
    let dir = tempfile::tempdir().unwrap();
    write_load_then(dir.path(), "drain", |c| {
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let status = c.wait().expect("wait");
        assert!(status.success(), "graceful shutdown exits 0, got {status}");
    })
    .await;
}
