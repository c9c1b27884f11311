//! Two PostgreSQL clusters as record shards — the machine's server and a
//! second cluster this test creates with `initdb` on its own port. With the
//! second cluster stopped, tenants on the first keep working with zero
//! errors; tenants on the stopped one get 503 with `Retry-After`, never 500;
//! when it starts again they recover by themselves.

mod common;
use common::*;
use mosaic_access::NewTenant;
use mosaic_store::shards::ShardRow;
use mosaic_store_pg::scratch::{ScratchCluster, ScratchDatabase};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn readyz(base: &str) -> serde_json::Value {
    let res = reqwest::get(format!("{base}/readyz")).await.unwrap();
    res.json().await.unwrap()
}

fn shard(id: &str, url: &str) -> ShardRow {
    ShardRow {
        id: id.into(),
        url: url.into(),
        group: "starter".into(),
        max_tenants: Some(1),
        max_records: None,
        status: "active".into(),
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cluster_down_fails_only_its_tenants_with_503_and_they_recover() {
    let second = ScratchCluster::create().expect("a PostgreSQL cluster of the test's own");
    let first = ScratchDatabase::create().await.expect("scratch database");
    let clock = Arc::new(mosaic_runtime::clock::ManualClock::new(chrono::Utc::now()));
    let c2 = clock.clone();
    let server = TestServer::start_with(move |cfg| cfg.clock = c2).await;
    let p = server.platform.clone();
    let dir = p.shards.directory().clone();
    dir.add_shard(shard("pg-a", &first.url)).await.unwrap();
    dir.add_shard(shard("pg-b", &second.url())).await.unwrap();

    // One starter tenant per shard (each takes one at most).
    let mut clients = Vec::new();
    for sub in ["outage-one", "outage-two"] {
        let t = p
            .create_tenant(NewTenant {
                name: sub.into(),
                subdomain: sub.into(),
                tier: "starter".into(),
                admin_username: format!("admin@{sub}.test"),
                admin_password: "correct-horse-battery".into(),
                admin_email: None,
            })
            .await
            .unwrap();
        let shard = p.shards.shard_id(&t.tenant_id).await.unwrap();
        let mut c = server.anonymous();
        c.token = Some(t.access_token);
        c.tenant_id = t.tenant_id;
        c.create_object(json!({"api_name": "Deal__c"})).await;
        let id = c.create_record("Deal__c", json!({"Name": "before"})).await;
        clients.push((shard, c, id));
    }
    clients.sort_by(|a, b| a.0.cmp(&b.0));
    let [(sa, up, up_id), (sb, down, down_id)] = <[_; 2]>::try_from(clients).ok().unwrap();
    assert_eq!((sa.as_str(), sb.as_str()), ("pg-a", "pg-b"));

    second.stop().expect("stop the cluster");
    let mut up_errors = 0;
    let mut down_codes = std::collections::BTreeMap::new();
    for i in 0..20 {
        let (s, _) = up.get(&format!("{DATA}/sobjects/Deal__c/{up_id}")).await;
        up_errors += usize::from(s != StatusCode::OK);
        let (s, _) = up
            .post(
                &format!("{DATA}/sobjects/Deal__c"),
                json!({"Name": format!("during {i}")}),
            )
            .await;
        up_errors += usize::from(s != StatusCode::CREATED);
        let res = down
            .send(
                reqwest::Method::GET,
                &format!("{DATA}/sobjects/Deal__c/{down_id}"),
                None,
            )
            .await;
        *down_codes.entry(res.0.as_u16()).or_insert(0) += 1;
    }
    assert_eq!(up_errors, 0, "the other cluster's tenant saw errors");
    assert_eq!(
        down_codes.keys().copied().collect::<Vec<_>>(),
        vec![503],
        "{down_codes:?}"
    );
    // 503s carry Retry-After.
    let res = reqwest::Client::new()
        .get(format!("{}{DATA}/sobjects/Deal__c/{down_id}", server.base))
        .bearer_auth(down.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    // Readiness names the shard's breaker; the platform's level is untouched
    // (only that shard's tenants are affected).
    let ready = readyz(&server.base).await;
    assert_eq!(ready["degradation_level"], 0, "{ready}");
    assert_eq!(
        ready["dependencies"]["shard:pg-b"]["breaker"], "open",
        "{ready}"
    );
    assert_eq!(ready["dependencies"]["shard:pg-b"]["state"], "down");
    assert_eq!(ready["dependencies"]["shard:pg-a"]["state"], "up");

    // The cluster comes back; once the breaker's open period has passed
    // the tenant is served again, with nothing lost.
    second.start().expect("start the cluster");
    clock.advance(chrono::Duration::seconds(31));
    let until = Instant::now() + Duration::from_secs(15);
    let mut back = false;
    while Instant::now() < until {
        let (s, v) = down
            .get(&format!("{DATA}/sobjects/Deal__c/{down_id}"))
            .await;
        if s == StatusCode::OK {
            assert_eq!(v["Name"], "before");
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "the tenant on the restarted cluster did not recover");
    // The half-open probes (the tenant's own calls) close the breaker.
    let mut breaker = serde_json::Value::Null;
    for _ in 0..20 {
        down.get(&format!("{DATA}/sobjects/Deal__c/{down_id}"))
            .await;
        let ready = readyz(&server.base).await;
        breaker = ready["dependencies"]["shard:pg-b"]["breaker"].clone();
        if breaker == "closed" {
            break;
        }
    }
    assert_eq!(breaker, "closed");
    let (s, v) = up
        .get(&format!("{DATA}/query?q=SELECT+COUNT()+FROM+Deal__c"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["totalSize"], 21, "every write of the outage is there");
    server.stop().await;
}
