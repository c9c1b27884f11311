//! The outbox survives a crash, tested on the real binary: a server is
//! killed with SIGKILL while outbound messages are being delivered; after a
//! restart every acknowledged record's message arrives, and the receiver —
//! deduplicating by delivery id — records each exactly once.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{start_with, BIN};

/// Deliveries as the receiver saw them: (delivery id, record id).
type Log = Arc<Mutex<Vec<(String, String)>>>;

/// A slow receiver, so that deliveries are in flight when the server dies.
async fn receiver() -> (Log, String) {
    let log: Log = Arc::default();
    let l = log.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let l = l.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let id = headers
                        .get("x-mosaic-delivery-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    l.lock()
                        .unwrap()
                        .push((id, doc["record_id"].as_str().unwrap_or("").to_string()));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (log, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_messages_survive_sigkill_and_arrive_once_per_delivery_id() {
    let dir = tempfile::tempdir().unwrap();
    let (log, hook) = receiver().await;
    let mut server = start_with(
        dir.path(),
        &[
            ("MOSAIC_OUTBOX_RETRY_BASE_MS", "50"),
            // The killed instance's leases expire, then are taken over.
            ("MOSAIC_OUTBOX_LEASE_SECS", "2"),
            // The receiver is on loopback, refused without the allow-list.
            ("MOSAIC_OUTBOUND_ALLOW", "127.0.0.0/8"),
        ],
    );
    let out = Command::new(BIN)
        .args(["tenant", "create", "--data-dir"])
        .arg(dir.path())
        .args(["--name", "Outbox Co", "--subdomain", "outbox"])
        .args([
            "--admin-username",
            "admin@outbox.test",
            "--admin-password",
            "durable-pass-1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = t["access_token"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let post = |url: String, body: Value| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = post(
        format!("{}/services/metadata/v1/objects", server.url),
        json!({"api_name": "Order__c"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}/services/metadata/v1/objects/Order__c/workflows", server.url),
        json!({"name": "Ship", "trigger_type": "created",
               "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": hook}}]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // Acknowledged writes, in batches, while deliveries run.
    let mut acked: Vec<String> = Vec::new();
    for b in 0..6 {
        let records: Vec<Value> = (0..20)
            .map(|i| json!({"attributes": {"type": "Order__c"}, "Name": format!("O-{b}-{i}")}))
            .collect();
        let (s, v) = post(
            format!("{}/services/data/v60.0/composite/sobjects", server.url),
            json!({"allOrNone": true, "records": records}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        for r in v.as_array().unwrap() {
            assert_eq!(r["success"], true, "{r}");
            acked.push(r["id"].as_str().unwrap().to_string());
        }
    }
    // Kill it mid-delivery.
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGKILL);
    }
    let _ = server.child.wait();
    let before_restart = log.lock().unwrap().len();
    assert!(
        before_restart < acked.len(),
        "the kill must land while deliveries are pending ({before_restart} of {})",
        acked.len()
    );
    let _server = start_with(
        dir.path(),
        &[
            ("MOSAIC_OUTBOX_RETRY_BASE_MS", "50"),
            // The killed instance's leases expire, then are taken over.
            ("MOSAIC_OUTBOX_LEASE_SECS", "2"),
            // The receiver is on loopback, refused without the allow-list.
            ("MOSAIC_OUTBOUND_ALLOW", "127.0.0.0/8"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records: HashSet<String> = log.lock().unwrap().iter().map(|(_, r)| r.clone()).collect();
        if acked.iter().all(|a| records.contains(a)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart only {} of {} records' messages arrived",
            records.len(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let any straggling redelivery land, then check exactly-once by id.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = log.lock().unwrap().clone();
    let mut by_delivery: HashMap<String, HashSet<String>> = HashMap::new();
    for (d, r) in &log {
        assert!(!d.is_empty(), "every delivery carries its id");
        by_delivery.entry(d.clone()).or_default().insert(r.clone());
    }
    assert_eq!(
        by_delivery.len(),
        acked.len(),
        "one delivery id per acknowledged record"
    );
    assert!(
        by_delivery.values().all(|r| r.len() == 1),
        "a delivery id names one record"
    );
    let distinct: HashSet<&String> = by_delivery.values().flatten().collect();
    assert_eq!(distinct.len(), acked.len());
    eprintln!(
        "{} acknowledged, {} received before the kill, {} requests in all ({} redelivered)",
        acked.len(),
        before_restart,
        log.len(),
        log.len() - by_delivery.len()
    );
}
