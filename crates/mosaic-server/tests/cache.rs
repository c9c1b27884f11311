//! The cache tier within one server: a stampede on an uncached definition
//! costs one database load; rate limits answer 429 with their headers;
//! the cache figures are on the operator API.

mod common;

use common::{TestServer, META, OPERATOR_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_misses_load_a_definition_once() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Hot__c", "fields": [
        {"api_name": "Status__c", "data_type": "text", "length": 20}
    ]}))
    .await;
    // Warm the caller's session and permissions, not the object.
    let (s, _) = c.get(&format!("{META}/objects")).await;
    assert_eq!(s, StatusCode::OK);
    let meta = &server.platform.meta;
    let before = meta.database_loads();
    let url = format!("{META}/objects/Hot__c/fields/Status__c");
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move { c.get(&url).await.0 }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let loads = meta.database_loads() - before;
    println!("500 concurrent requests for an uncached definition: {loads} database load(s)");
    assert_eq!(loads, 1, "request coalescing: one load per key");
}

#[tokio::test]
async fn over_the_limit_is_429_with_rate_headers_and_the_operator_sees_the_caches() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let other = server.tenant().await;
    let http = reqwest::Client::new();
    let put = |body: Value| {
        http.put(format!(
            "{}/services/admin/v1/tenants/{}/rate-limits",
            server.base, c.tenant_id
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
    };
    let r = put(json!({"metadata": {"per_second": 1, "burst": 2}}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["limits"]["metadata"]["per_second"], 1);
    assert_eq!(v["limits"]["metadata"]["overridden"], true);
    assert_eq!(v["limits"]["data_read"]["overridden"], false);
    let bad = put(json!({"nonsense": {"per_second": 1}})).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let e: Value = bad.json().await.unwrap();
    assert_eq!(e[0]["fields"][0], "nonsense");

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = http
            .get(format!("{}{META}/objects", server.base))
            .bearer_auth(c.token.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        assert!(r.headers().contains_key("x-ratelimit-limit"));
        assert!(r.headers().contains_key("x-ratelimit-remaining"));
        assert!(r.headers().contains_key("x-ratelimit-reset"));
        let status = r.status().as_u16();
        if status == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 429, 429], "a burst of 2, then refused");
    // Another tenant and another class of the same tenant are unaffected.
    assert_eq!(
        other.get(&format!("{META}/objects")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        c.get("/services/data/v60.0/sobjects").await.0,
        StatusCode::OK
    );

    let (_, v) = server.operator().get("/services/admin/v1/cache").await;
    let meta = v["caches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cache"] == "metadata" && c["layer"] == "l1")
        .expect("metadata L1 figures");
    for k in ["hits", "misses", "evictions", "loads", "load_time_ms_total"] {
        assert!(meta.get(k).is_some(), "{k} in {meta}");
    }
    assert_eq!(v["tier"]["l2_configured"], false);
}
