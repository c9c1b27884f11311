//! Metrics move by the expected amounts; request ids flow from the request
//! to the response and error bodies; the exposition is well formed.

mod common;
use common::exposition::parse_exposition;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;

async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_exposition(&text)
}

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_the_expected_amounts() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Gauge__c"})).await;
    let route = r#"http_requests_total{route="/services/data/{version}/sobjects/{object}/describe",method="GET",status="2xx"}"#;
    let before = scrape(&server).await;
    let n = 7;
    for _ in 0..n {
        let (s, _) = c.get(&format!("{DATA}/sobjects/Gauge__c/describe")).await;
        assert_eq!(s, StatusCode::OK);
    }
    let after = scrape(&server).await;
    assert_eq!(value(&after, route) - value(&before, route), n as f64);
    let hits = r#"cache_hits_total{cache="metadata",layer="l1"}"#;
    assert!(
        value(&after, hits) - value(&before, hits) >= (n - 1) as f64,
        "identical describes hit the cache"
    );
    let count = r#"http_request_duration_seconds_count{route="/services/data/{version}/sobjects/{object}/describe",method="GET"}"#;
    assert_eq!(value(&after, count) - value(&before, count), n as f64);
    assert!(
        after.keys().any(|k| k.contains("le=\"0.0001\"")),
        "sub-millisecond buckets"
    );
    assert_eq!(value(&after, "degradation_level"), 0.0);
    assert_eq!(
        value(&after, r#"dependency_up{dependency="record_store"}"#),
        1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_and_carried_by_errors() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let http = reqwest::Client::new();
    let res = http
        .get(format!(
            // Not the describe route: the counters test measures that one.
            "{}{DATA}/sobjects/Missing__c/fields",
            server.base
        ))
        .bearer_auth(c.token.as_ref().unwrap())
        .header("X-Request-Id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["x-request-id"], "trace-me-42");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body[0]["requestId"], "trace-me-42");
    // Without a header (or with an unusable one) an id is minted.
    for header in [None, Some("has space"), Some(&*"x".repeat(500))] {
        let mut rb = http.get(format!("{}/healthz", server.base));
        if let Some(h) = header {
            rb = rb.header("X-Request-Id", h);
        }
        let res = rb.send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36, "minted UUID, got {id}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_labels_stay_bounded() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for _ in 0..30 {
        clients.push(server.tenant().await);
    }
    for (i, c) in clients.iter().enumerate() {
        for _ in 0..(i % 3 + 1) {
            c.get(&format!("{DATA}/sobjects")).await;
        }
    }
    let m = scrape(&server).await;
    let tenant_series = m
        .keys()
        .filter(|k| k.starts_with("tenant_requests_total{"))
        .count();
    // The top ranks plus `other`, and at most as many again from re-ranking
    // churn until idle series expire.
    assert!(
        tenant_series <= 2 * mosaic_server::observe::TOP_TENANTS + 1,
        "{tenant_series} tenant series"
    );
    assert!(m.contains_key(r#"tenant_requests_total{tenant="other"}"#));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_and_store_series_move() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Engine__c", "fields": [
        {"api_name": "N__c", "data_type": "number"},
        {"api_name": "Twice__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "N__c * 2"}
    ]}))
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            c.create_record("Engine__c", json!({"Name": format!("e{i}"), "N__c": i}))
                .await,
        );
    }
    let before = scrape(&server).await;
    for id in &ids {
        let (_, v) = c.get(&format!("{DATA}/sobjects/Engine__c/{id}")).await;
        assert!(v["Twice__c"].is_number());
    }
    let (s, _) = c
        .get(&format!("{DATA}/query?q=SELECT+COUNT()+FROM+Engine__c"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let after = scrape(&server).await;
    let evals = r#"formula_evaluations_total{kind="field"}"#;
    assert_eq!(
        value(&after, evals) - value(&before, evals),
        3.0,
        "one evaluation per record read"
    );
    let plans = r#"query_plans_total{shape="aggregate"}"#;
    assert_eq!(value(&after, plans) - value(&before, plans), 1.0);
    assert!(value(&after, "formula_compilations_total") >= 1.0);
    if on_postgres() {
        // The embedded engine's writer and reader pool are not in play.
        server.stop().await;
        return;
    }
    assert!(value(&after, r#"store_group_commit_jobs_count{db="records"}"#) >= 3.0);
    assert!(value(&after, r#"store_read_seconds_count{db="records"}"#) >= 3.0);
    for state in ["idle", "in_use"] {
        let series = format!(r#"store_pool_connections{{db="records",state="{state}"}}"#);
        let v = after
            .get(&series)
            .unwrap_or_else(|| panic!("{series} is exposed"));
        assert!(
            (0.0..=mosaic_store::sqlite::READERS as f64).contains(v),
            "{series} = {v}"
        );
    }
    server.stop().await;
}

const STATUS: &str = "/services/admin/v1/status";

async fn status(server: &TestServer) -> serde_json::Value {
    let res = reqwest::Client::new()
        .get(format!("{}{STATUS}", server.base))
        .bearer_auth(common::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_platform_and_moves_with_traffic() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Status__c"})).await;
    for i in 0..2 {
        c.create_record("Status__c", json!({"Name": format!("s{i}")}))
            .await;
    }
    let describe = format!("{DATA}/sobjects/Status__c/describe");
    for _ in 0..5 {
        assert_eq!(c.get(&describe).await.0, StatusCode::OK);
    }
    let v = status(&server).await;
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptime_seconds"].is_u64());
    assert!(chrono::DateTime::parse_from_rfc3339(v["started_at"].as_str().unwrap()).is_ok());
    assert_eq!(v["degradation_level"], 0);
    assert_eq!(v["degradation"], "full_operation");
    for dep in ["metadata_store", "record_store"] {
        assert_eq!(v["dependencies"][dep]["state"], "up", "{v}");
        assert!(v["dependencies"][dep]["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(
        v["shards"],
        json!([{"name": "local", "state": "up", "tenants": 1, "records": 2}])
    );
    // One miss builds the describe, the next four are served from the cache.
    assert_eq!(v["caches"]["describe"]["misses"], 1, "{v}");
    assert_eq!(v["caches"]["describe"]["hits"], 4, "{v}");
    assert_eq!(v["caches"]["describe"]["hit_ratio"], 0.8);
    assert!(v["caches"]["session"]["hits"].as_u64().unwrap() >= 7, "{v}");
    assert!(
        v["caches"]["metadata"]["hits"].as_u64().unwrap() >= 4,
        "{v}"
    );
    for cache in ["metadata", "compiled_formula", "describe", "session"] {
        assert!(v["caches"][cache]["entries"].is_u64(), "{cache}: {v}");
    }
    // The embedded engine's writer and reader figures (none on PostgreSQL).
    if !on_postgres() {
        let records = &v["store"]["records"];
        assert!(records["transactions"].as_u64().unwrap() >= 1, "{v}");
        assert!(records["write_jobs"].as_u64().unwrap() >= 2, "{v}");
        assert_eq!(records["readers"], mosaic_store::sqlite::READERS);
        assert!(v["store"]["metadata"]["write_jobs"].as_u64().unwrap() >= 2);
    }
    // Create object, two records, five describes: eight requests.
    assert_eq!(v["top_tenants_window_seconds"], 60);
    let top = v["top_tenants"].as_array().unwrap();
    assert_eq!(top.len(), 1, "{v}");
    assert_eq!(top[0]["tenant_id"], c.tenant_id.as_str());
    assert_eq!(top[0]["requests"], 8);
    assert!(top[0]["subdomain"].as_str().unwrap().starts_with('t'));

    // A second tenant, busier than the first, takes the lead; the describe
    // cache keeps counting.
    let d = server.tenant().await;
    for _ in 0..15 {
        assert_eq!(d.get(&format!("{DATA}/sobjects")).await.0, StatusCode::OK);
    }
    for _ in 0..3 {
        assert_eq!(c.get(&describe).await.0, StatusCode::OK);
    }
    let w = status(&server).await;
    assert_eq!(w["caches"]["describe"]["hits"], 7, "{w}");
    assert_eq!(w["shards"][0]["tenants"], 2);
    let top = w["top_tenants"].as_array().unwrap();
    assert_eq!(top[0]["tenant_id"], d.tenant_id.as_str());
    assert_eq!(top[0]["requests"], 15);
    assert_eq!(top[1]["requests"], 11);
    server.stop().await;
}

/// A server with a metrics token and an operator token.
async fn start_guarded(
    metrics: &str,
    operator: &str,
) -> (String, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let platform = std::sync::Arc::new(
        mosaic_runtime::Platform::open_embedded(mosaic_runtime::PlatformConfig::new(dir.path()))
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut state = mosaic_server::AppState::new(platform, base.clone());
    state.metrics_token = Some(metrics.into());
    state.operator_token = Some(operator.into());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = mosaic_server::serve(listener, state, async {
            let _ = rx.await;
        })
        .await;
    });
    (base, tx, dir)
}

/// The metrics token opens `/metrics` and nothing else; the operator token
/// opens both. Once set, the metrics token is needed even on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_token_opens_metrics_alone() {
    let (base, stop, _dir) = start_guarded("metrics-secret-1", "operator-secret-1").await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut rb = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    for path in ["/metrics", STATUS] {
        let res = get(path, None).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "{path} without token"
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
        for wrong in ["metrics-secret-2", "metrics-secret-1x", ""] {
            let res = get(path, Some(wrong)).await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{path} with {wrong:?}"
            );
        }
        let res = get(path, Some("operator-secret-1")).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{path} with the operator token"
        );
    }
    let res = get("/metrics", Some("metrics-secret-1")).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "/metrics with the metrics token"
    );
    for path in [
        STATUS,
        "/services/admin/v1/cache",
        "/services/admin/v1/shards",
    ] {
        let res = get(path, Some("metrics-secret-1")).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "{path}: the metrics token is no operator credential"
        );
    }
    let _ = stop.send(());
}
