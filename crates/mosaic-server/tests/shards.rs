//! Tenant placement on record shards: tiers, capacities, draining, and
//! every Data API path of a tenant served from its own shard's database.

mod common;
use common::*;
use mosaic_access::NewTenant;
use mosaic_store::shards::{ShardRow, LOCAL_SHARD};
use mosaic_types::ErrorCode;
use reqwest::StatusCode;
use serde_json::json;

fn shard(id: &str, group: &str, max_tenants: Option<u64>) -> ShardRow {
    ShardRow {
        id: id.into(),
        url: format!("sqlite:shards/{id}.sqlite"),
        group: group.into(),
        max_tenants,
        max_records: None,
        status: "active".into(),
        created_at: chrono::Utc::now(),
    }
}

fn new_tenant(sub: &str, tier: &str) -> NewTenant {
    NewTenant {
        name: sub.into(),
        subdomain: sub.into(),
        tier: tier.into(),
        admin_username: format!("admin@{sub}.test"),
        admin_password: "correct-horse-battery".into(),
        admin_email: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_placed_by_tier_and_served_from_their_shard() {
    let server = TestServer::start().await;
    let p = server.platform.clone();
    let dir = p.shards.directory().clone();
    dir.add_shard(shard("s1", "starter", Some(2)))
        .await
        .unwrap();
    dir.add_shard(shard("e1", "enterprise", None))
        .await
        .unwrap();

    // Starter tenants fill s1 (two at most), then are refused.
    let a = p
        .create_tenant(new_tenant("alpha", "starter"))
        .await
        .unwrap();
    let b = p
        .create_tenant(new_tenant("beta", "starter"))
        .await
        .unwrap();
    assert_eq!(p.shards.shard_id(&a.tenant_id).await.unwrap(), "s1");
    assert_eq!(p.shards.shard_id(&b.tenant_id).await.unwrap(), "s1");
    let e = p
        .create_tenant(new_tenant("gamma", "starter"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::LIMIT_EXCEEDED);
    assert!(e.message.contains("capacity"), "{}", e.message);
    // Enterprise: the spare, then nothing left.
    let ent = p
        .create_tenant(new_tenant("bigco", "enterprise"))
        .await
        .unwrap();
    assert_eq!(p.shards.shard_id(&ent.tenant_id).await.unwrap(), "e1");
    let e = p
        .create_tenant(new_tenant("bigco2", "enterprise"))
        .await
        .unwrap_err();
    assert!(e.message.contains("spare"), "{}", e.message);
    // Professional: no professional shard registered → the built-in one.
    let pro = p
        .create_tenant(new_tenant("proco", "professional"))
        .await
        .unwrap();
    assert_eq!(
        p.shards.shard_id(&pro.tenant_id).await.unwrap(),
        LOCAL_SHARD
    );
    // Draining: no new tenants.
    dir.add_shard(shard("s2", "starter", None)).await.unwrap();
    dir.set_shard_status("s2", "draining").await.unwrap();
    let e = p
        .create_tenant(new_tenant("delta", "starter"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::LIMIT_EXCEEDED);

    // Alpha works end to end, and its rows are in s1's database only.
    let mut c = server.anonymous();
    c.token = Some(a.access_token.clone());
    c.tenant_id = a.tenant_id.clone();
    c.create_object(json!({"api_name": "Deal__c", "fields": [
        {"api_name": "Amount__c", "data_type": "number", "precision": 10, "scale": 0}]}))
        .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            c.create_record(
                "Deal__c",
                json!({"Name": format!("deal {i}"), "Amount__c": i}),
            )
            .await,
        );
    }
    let (s, v) = c
        .get(&format!(
            "{DATA}/query?q=SELECT+Id+FROM+Deal__c+WHERE+Amount__c+>+1"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totalSize"], 3);
    let (s, v) = c
        .get(&format!(
            "{DATA}/search?q=FIND+%7Bdeal%7D+RETURNING+Deal__c(Id)"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["searchRecords"].as_array().unwrap().len(), 5);
    let (s, _) = c
        .patch(
            &format!("{DATA}/sobjects/Deal__c/{}", ids[0]),
            json!({"Amount__c": 9}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c
        .delete(&format!("{DATA}/sobjects/Deal__c/{}", ids[1]))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let s1 = p
        .shards
        .all()
        .into_iter()
        .find(|s| s.id == "s1")
        .expect("s1 open");
    let on_s1 = s1.census.record_count().await.unwrap();
    assert_eq!(on_s1, 5, "alpha's records are on s1");
    let on_local = p.shards.local().census.record_count().await.unwrap();
    assert_eq!(on_local, 0, "nothing of alpha's on the built-in shard");
    assert!(server.dir.path().join("shards/s1.sqlite").exists());

    // Another tenant on the same shard sees none of it.
    let mut cb = server.anonymous();
    cb.token = Some(b.access_token.clone());
    let (s, _) = cb.get(&format!("{DATA}/sobjects/Deal__c/{}", ids[0])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_registrations_are_checked() {
    let server = TestServer::start().await;
    let dir = server.platform.shards.directory().clone();
    dir.add_shard(shard("s1", "starter", None)).await.unwrap();
    let e = dir
        .add_shard(shard("s1", "starter", None))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::DUPLICATE_VALUE);
    for (row, field) in [
        (shard("local", "starter", None), "id"),
        (shard("bad id!", "starter", None), "id"),
        (shard("s9", "gold", None), "group"),
        (
            ShardRow {
                url: "mysql://x".into(),
                ..shard("s9", "starter", None)
            },
            "url",
        ),
        (shard("s9", "starter", Some(0)), "max_tenants"),
    ] {
        let e = dir.add_shard(row).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_INPUT);
        assert_eq!(e.fields, vec![field.to_string()], "{}", e.message);
    }
    let e = dir.set_shard_status("nope", "draining").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_tenants_are_detected_over_the_window() {
    let clock = std::sync::Arc::new(mosaic_runtime::clock::ManualClock::new(chrono::Utc::now()));
    let c2 = clock.clone();
    let server = TestServer::start_with(move |cfg| {
        cfg.clock = c2;
        cfg.hot_window = std::time::Duration::from_secs(3600);
        cfg.hot_min_requests = Some(20);
    })
    .await;
    let busy = server.tenant().await;
    let quiet = server.tenant().await;
    let other = server.tenant().await;
    for _ in 0..40 {
        assert_eq!(
            busy.get(&format!("{DATA}/sobjects")).await.0,
            StatusCode::OK
        );
    }
    for c in [&quiet, &other] {
        for _ in 0..3 {
            assert_eq!(c.get(&format!("{DATA}/sobjects")).await.0, StatusCode::OK);
        }
    }
    let operator = server.operator();
    let hot = |_: &TestServer| {
        let operator = operator.clone();
        async move { operator.get("/services/admin/v1/shards/hot").await.1 }
    };
    let v = hot(&server).await;
    let list = v["hot_tenants"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["tenant_id"], busy.tenant_id.as_str());
    assert_eq!(list[0]["shard"], LOCAL_SHARD);
    assert!(list[0]["share"].as_f64().unwrap() > 0.8, "{v}");
    // Half a window later the busy tenant's requests still count…
    clock.advance(chrono::Duration::minutes(30));
    assert_eq!(
        hot(&server).await["hot_tenants"].as_array().unwrap().len(),
        1
    );
    // …a window later they have slid out: nobody is hot.
    clock.advance(chrono::Duration::minutes(40));
    let v = hot(&server).await;
    assert_eq!(v["hot_tenants"], json!([]), "{v}");
    // The shard listing reports the built-in shard and its tenants.
    let (_, v) = server.operator().get("/services/admin/v1/shards").await;
    assert_eq!(v["shards"][0]["id"], LOCAL_SHARD);
    assert_eq!(v["shards"][0]["tenants"], 3, "{v}");
    server.stop().await;
}
