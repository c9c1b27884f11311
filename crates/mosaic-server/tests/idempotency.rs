//! `Idempotency-Key` on Data API writes, end to end: a retry with the same
//! key and request replays the first response and has no second effect.

mod common;

use common::{codes, Client, TestServer, DATA};
use mosaic_store::{KeptResponse, Reservation};
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const WIDGETS: &str = "/services/data/v60.0/sobjects/Widget__c";

/// A response as a client sees it.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: StatusCode,
    replayed: bool,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        if self.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&self.body).expect("JSON body")
        }
    }
}

async fn send(
    c: &Client,
    method: Method,
    path: &str,
    key: Option<&[u8]>,
    body: Option<&Value>,
) -> Reply {
    let mut rb = c.http.request(method, format!("{}{path}", c.base));
    if let Some(t) = &c.token {
        rb = rb.bearer_auth(t);
    }
    if let Some(k) = key {
        rb = rb.header(
            "Idempotency-Key",
            HeaderValue::from_bytes(k).expect("header value"),
        );
    }
    if let Some(b) = body {
        rb = rb
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(b).expect("encode"));
    }
    let res = rb.send().await.expect("send");
    let status = res.status();
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = res.bytes().await.expect("body").to_vec();
    Reply {
        status,
        replayed,
        content_type,
        body,
    }
}

/// A keyed create of a widget.
async fn create(c: &Client, key: &[u8], body: &Value) -> Reply {
    send(c, Method::POST, WIDGETS, Some(key), Some(body)).await
}

async fn setup(server: &TestServer) -> Client {
    let c = server.tenant().await;
    c.create_object(json!({
        "api_name": "Widget__c",
        "label": "Widget",
        "fields": [
            {"api_name": "Amount__c", "data_type": "number", "precision": 10, "scale": 2},
            {"api_name": "Code__c", "data_type": "text", "length": 20, "is_unique": true, "is_external_id": true}
        ]
    }))
    .await;
    c
}

async fn widget_count(c: &Client) -> u64 {
    let (s, v) = c
        .get(&format!("{DATA}/query?q=SELECT%20Id%20FROM%20Widget__c"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["totalSize"].as_u64().expect("totalSize")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn a_repeated_create_makes_one_record_and_replays_the_response() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let body = json!({"Name": "First", "Amount__c": 5});
    let first = create(&c, b"create-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.json());
    assert!(!first.replayed);
    let second = create(&c, b"create-1", &body).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert!(second.replayed, "the repeat is a replay");
    assert_eq!(second.body, first.body, "byte for byte");
    assert_eq!(second.content_type, first.content_type);
    assert_eq!(widget_count(&c).await, 1);

    // Requests without a key are untouched: two creates, two records.
    let plain = send(&c, Method::POST, WIDGETS, None, Some(&body)).await;
    let again = send(&c, Method::POST, WIDGETS, None, Some(&body)).await;
    assert!(!plain.replayed && !again.replayed);
    assert_ne!(plain.json()["id"], again.json()["id"]);
    assert_eq!(widget_count(&c).await, 3);

    let metrics = c
        .http
        .get(format!("{}/metrics", c.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("idempotency_replays_total"),
        "replays are counted"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_repeated_update_is_not_applied_again() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let id = c
        .create_record("Widget__c", json!({"Name": "W", "Amount__c": 1}))
        .await;
    let path = format!("{WIDGETS}/{id}");
    let first = send(
        &c,
        Method::PATCH,
        &path,
        Some(b"patch-1"),
        Some(&json!({"Amount__c": 2})),
    )
    .await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    // Someone else changes the record in between.
    let (s, _) = c.patch(&path, json!({"Amount__c": 3})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let retry = send(
        &c,
        Method::PATCH,
        &path,
        Some(b"patch-1"),
        Some(&json!({"Amount__c": 2})),
    )
    .await;
    assert_eq!(retry.status, StatusCode::NO_CONTENT);
    assert!(retry.replayed);
    let (_, rec) = c.get(&format!("{path}?fields=Amount__c")).await;
    assert_eq!(
        rec["Amount__c"].to_string(),
        "3.00",
        "the retry did not write again"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_repeated_delete_replays_its_204() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let id = c.create_record("Widget__c", json!({"Name": "W"})).await;
    let path = format!("{WIDGETS}/{id}");
    let first = send(&c, Method::DELETE, &path, Some(b"delete-1"), None).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    let retry = send(&c, Method::DELETE, &path, Some(b"delete-1"), None).await;
    assert_eq!(
        retry.status,
        StatusCode::NO_CONTENT,
        "not 404: {:?}",
        retry.json()
    );
    assert!(retry.replayed);
    // Without the key, the record is gone.
    let plain = send(&c, Method::DELETE, &path, None, None).await;
    assert_eq!(plain.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_without_effect() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let first = create(&c, b"reuse-1", &json!({"Name": "A"})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let other_body = create(&c, b"reuse-1", &json!({"Name": "B"})).await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(codes(&other_body.json()), ["IDEMPOTENCY_KEY_REUSED"]);
    assert!(other_body.json()[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("reuse-1")));
    assert_eq!(other_body.json()[0]["fields"], json!(["Idempotency-Key"]));
    let id = first.json()["id"].as_str().expect("id").to_string();
    let other_path = send(
        &c,
        Method::PATCH,
        &format!("{WIDGETS}/{id}"),
        Some(b"reuse-1"),
        Some(&json!({"Name": "A"})),
    )
    .await;
    assert_eq!(other_path.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(widget_count(&c).await, 1);
    let (_, rec) = c.get(&format!("{WIDGETS}/{id}?fields=Name")).await;
    assert_eq!(rec["Name"], json!("A"), "nothing ran");

    server.stop().await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_have_one_effect() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    for round in 0..5 {
        let key = format!("race-{round}");
        let body = json!({"Name": format!("Race {round}"), "Amount__c": round});
        let (a, b) = tokio::join!(
            create(&c, key.as_bytes(), &body),
            create(&c, key.as_bytes(), &body),
        );
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
        assert_eq!(b.status, StatusCode::CREATED, "{:?}", b.json());
        assert_eq!(a.body, b.body, "identical responses");
        assert!(a.replayed != b.replayed, "exactly one ran, one replayed");
    }
    assert_eq!(widget_count(&c).await, 5);
    server.stop().await;
}

#[tokio::test]
async fn a_client_error_is_replayed_not_run_again() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let taken = c
        .create_record("Widget__c", json!({"Name": "Taken", "Code__c": "X-1"}))
        .await;
    let body = json!({"Name": "Clash", "Code__c": "X-1"});
    let first = create(&c, b"dup-1", &body).await;
    assert_eq!(first.status, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&first.json()), ["DUPLICATE_VALUE"]);
    // Free the value: running the request again would now succeed.
    let (s, _) = c.delete(&format!("{WIDGETS}/{taken}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let retry = create(&c, b"dup-1", &body).await;
    assert_eq!(retry.status, StatusCode::BAD_REQUEST);
    assert!(retry.replayed);
    assert_eq!(retry.body, first.body);
    assert_eq!(widget_count(&c).await, 0);
    // A new key runs it.
    let fresh = create(&c, b"dup-2", &body).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{:?}", fresh.json());
    server.stop().await;
}

#[tokio::test]
async fn keys_of_one_tenant_are_invisible_to_another() {
    let server = TestServer::start().await;
    let a = setup(&server).await;
    let b = setup(&server).await;
    let body = json!({"Name": "Same"});
    let ra = create(&a, b"shared-key", &body).await;
    let rb = create(&b, b"shared-key", &body).await;
    assert_eq!(ra.status, StatusCode::CREATED);
    assert_eq!(rb.status, StatusCode::CREATED);
    assert!(!ra.replayed && !rb.replayed);
    assert_ne!(ra.json()["id"], rb.json()["id"]);
    // Each tenant's retry replays its own response.
    let again_a = create(&a, b"shared-key", &body).await;
    let again_b = create(&b, b"shared-key", &body).await;
    assert!(again_a.replayed && again_b.replayed);
    assert_eq!(again_a.body, ra.body);
    assert_eq!(again_b.body, rb.body);
    assert_eq!(widget_count(&a).await, 1);
    assert_eq!(widget_count(&b).await, 1);
    server.stop().await;
}

#[tokio::test]
async fn malformed_keys_are_refused_before_anything_runs() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let long = vec![b'k'; 256];
    let bad: [&[u8]; 5] = [
        b"",
        b"has space",
        b"tab\there",
        &long,
        "caf\u{e9}".as_bytes(),
    ];
    for key in bad {
        let r = create(&c, key, &json!({"Name": "N"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "key {key:?}");
        assert_eq!(codes(&r.json()), ["INVALID_INPUT"]);
        assert_eq!(r.json()[0]["fields"], json!(["Idempotency-Key"]));
    }
    let longest = vec![b'~'; 255];
    let ok = create(&c, &longest, &json!({"Name": "N"})).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(widget_count(&c).await, 1);
    server.stop().await;
}

#[tokio::test]
async fn unauthenticated_and_read_requests_are_not_keyed() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let anon = server.anonymous();
    let r = create(&anon, b"k", &json!({"Name": "N"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(codes(&r.json()), ["INVALID_SESSION_ID"]);
    // The key was not taken by the refused request.
    let ok = create(&c, b"k", &json!({"Name": "N"})).await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert!(!ok.replayed);
    let id = ok.json()["id"].as_str().expect("id").to_string();
    let retry = create(&c, b"k", &json!({"Name": "N"})).await;
    assert!(retry.replayed);
    assert_eq!(retry.body, ok.body);
    let read = send(
        &c,
        Method::GET,
        &format!("{WIDGETS}/{id}"),
        Some(b"k"),
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(!read.replayed, "reads ignore the header");
    server.stop().await;
}

#[tokio::test]
async fn expired_keys_are_absent_and_purged() {
    let server = TestServer::start_with(|cfg| cfg.idempotency_ttl = Duration::from_secs(1)).await;
    let c = setup(&server).await;
    let body = json!({"Name": "Expiring"});
    let first = create(&c, b"ttl-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let within = create(&c, b"ttl-1", &body).await;
    assert!(within.replayed, "kept while the key lives");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = create(&c, b"ttl-1", &body).await;
    assert_eq!(after.status, StatusCode::CREATED);
    assert!(!after.replayed, "an expired key is absent");
    assert_ne!(after.json()["id"], first.json()["id"]);
    assert_eq!(widget_count(&c).await, 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let purged = server
        .platform
        .idempotency
        .purge_expired(now_ms())
        .await
        .expect("purge");
    assert!(purged >= 1, "expired keys are deleted");
    assert!(server
        .platform
        .idempotency
        .get(&c.tenant_id, "ttl-1", 0)
        .await
        .expect("get")
        .is_none());
    server.stop().await;
}

/// Reserves `key` in the store as if a request for `body` from `c` were
/// running since `started_ms`.
async fn hold_key(
    server: &TestServer,
    c: &Client,
    key: &str,
    body: &Value,
    started_ms: i64,
) -> String {
    let fp = mosaic_server::idempotency::fingerprint(
        "POST",
        &c.user_id,
        WIDGETS,
        &serde_json::to_vec(body).expect("encode"),
    );
    match server
        .platform
        .idempotency
        .reserve(&c.tenant_id, key, &fp, started_ms, now_ms() + 3_600_000)
        .await
        .expect("reserve")
    {
        Reservation::Reserved { token } => token,
        Reservation::Existing(_) => panic!("key already held"),
    }
}

#[tokio::test]
async fn a_waiting_request_replays_the_holders_response_when_it_completes() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let body = json!({"Name": "Held"});
    let token = hold_key(&server, &c, "held-1", &body, now_ms()).await;
    let waiter = {
        let c = c.clone();
        let body = body.clone();
        tokio::spawn(async move { create(&c, b"held-1", &body).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = br#"{"id":"kept-by-the-holder","success":true,"errors":[]}"#.to_vec();
    assert!(server
        .platform
        .idempotency
        .complete(
            &c.tenant_id,
            "held-1",
            &token,
            KeptResponse {
                status: 201,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(kept.clone()),
            },
        )
        .await
        .expect("complete"));
    let r = waiter.await.expect("waiter");
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.replayed);
    assert_eq!(r.body, kept);
    assert_eq!(
        widget_count(&c).await,
        0,
        "the waiter did not run the request"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_reservation_left_by_a_stopped_server_is_reported_not_run() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let body = json!({"Name": "Orphan"});
    hold_key(&server, &c, "orphan-1", &body, now_ms() - 120_000).await;
    let r = create(&c, b"orphan-1", &body).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(codes(&r.json()), ["CONFLICT"]);
    assert!(r.json()[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("outcome is unknown")));
    assert_eq!(widget_count(&c).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_request_still_in_progress_after_the_wait_gets_409() {
    let server = TestServer::start().await;
    let c = setup(&server).await;
    let body = json!({"Name": "Slow"});
    hold_key(&server, &c, "slow-1", &body, now_ms()).await;
    let r = create(&c, b"slow-1", &body).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("still in progress")));
    assert_eq!(widget_count(&c).await, 0);
    server.stop().await;
}
