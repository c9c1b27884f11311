//! Resilience as a client sees it: maintenance mode from the admin API and
//! from another process sharing the database, read-only mode when the
//! metadata database's breaker opens (and the recovery by itself), and load
//! shedding with `Retry-After`.

mod common;

use chrono::{TimeZone, Utc};
use common::{codes, loopback_allowed, Client, TestServer, DATA};
use mosaic_access::NewTenant;
use mosaic_runtime::clock::ManualClock;
use mosaic_runtime::{Platform, PlatformConfig};
use mosaic_server::resilience::GatewayLimits;
use mosaic_server::AppState;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAINTENANCE: &str = "/services/admin/v1/maintenance";

async fn raw_get(base: &str, path: &str) -> reqwest::Response {
    reqwest::get(format!("{base}{path}")).await.expect("send")
}

fn retry_after(res: &reqwest::Response) -> Option<u64> {
    res.headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Polls `check` every 100 ms for up to `within`.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + within;
    while Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn invoice_with_record(c: &Client) -> String {
    c.create_object(json!({
        "api_name": "Invoice__c", "label": "Invoice",
        "fields": [{"api_name": "Amount__c", "data_type": "currency"}]
    }))
    .await;
    c.create_record("Invoice__c", json!({"Name": "First", "Amount__c": 10}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_switch_refuses_everything_but_health_metrics_and_the_switch() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    let id = invoice_with_record(&admin).await;
    let record = format!("{DATA}/sobjects/Invoice__c/{id}");
    let operator = server.operator();

    let (s, v) = operator.get(MAINTENANCE).await;
    assert_eq!((s, &v["enabled"]), (StatusCode::OK, &json!(false)));
    let (s, v) = server
        .anonymous()
        .post(MAINTENANCE, json!({"enabled": true}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    // A tenant's system administrator cannot take the platform offline.
    let (s, v) = admin.post(MAINTENANCE, json!({"enabled": true})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(admin.get(MAINTENANCE).await.0, StatusCode::UNAUTHORIZED);

    let (s, v) = operator
        .post(
            MAINTENANCE,
            json!({"enabled": true, "message": "Upgrading the database; back at 10:00."}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["enabled"], true);
    assert_eq!(v["degradation_level"], 4);

    // Every request is refused with the message and Retry-After…
    let res = admin
        .http
        .get(format!("{}{record}", admin.base))
        .bearer_auth(admin.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&res), Some(60));
    let body: Value = res.json().await.unwrap();
    assert_eq!(codes(&body), ["SERVICE_UNAVAILABLE"]);
    assert_eq!(body[0]["message"], "Upgrading the database; back at 10:00.");
    let (s, _) = admin
        .post(
            &format!("{DATA}/sobjects/Invoice__c"),
            json!({"Name": "Second"}),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let (s, _) = server.anonymous().get("/no/such/thing").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);

    // …but health, readiness, metrics and the switch answer.
    assert_eq!(
        raw_get(&server.base, "/healthz").await.status(),
        StatusCode::OK
    );
    let res = raw_get(&server.base, "/readyz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let ready: Value = res.json().await.unwrap();
    assert_eq!(ready["degradation_level"], 4);
    assert_eq!(ready["status"], "maintenance");
    assert_eq!(
        ready["maintenance"]["message"],
        "Upgrading the database; back at 10:00."
    );
    assert_eq!(
        raw_get(&server.base, "/metrics").await.status(),
        StatusCode::OK
    );
    let (s, v) = operator.get(MAINTENANCE).await;
    assert_eq!((s, &v["enabled"]), (StatusCode::OK, &json!(true)));
    assert_eq!(v["updated_by"], "token");

    let (s, v) = operator.post(MAINTENANCE, json!({"enabled": false})).await;
    assert_eq!((s, &v["enabled"]), (StatusCode::OK, &json!(false)), "{v}");
    let (s, v) = admin.get(&record).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ready: Value = raw_get(&server.base, "/readyz").await.json().await.unwrap();
    assert_eq!(ready["degradation_level"], 0);

    // Both switches are in the platform audit log: who, what, when.
    let (s, v) = operator.get("/services/admin/v1/platform-audit").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let switches: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "operator.maintenance.switch")
        .collect();
    assert_eq!(switches.len(), 2, "{v}");
    for e in switches {
        assert_eq!(e["actor"], "token");
        assert_eq!(e["target"], MAINTENANCE);
        assert!(e["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }
    assert_eq!(
        admin.get("/services/admin/v1/platform-audit").await.0,
        StatusCode::UNAUTHORIZED,
        "tenant administrators do not read the platform audit log"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_set_by_another_instance_reaches_this_one_within_seconds() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    // A second platform on the same databases: another instance, or the CLI.
    let other = Platform::open(server.same_databases()).await.unwrap();
    other
        .set_maintenance(true, Some("Planned work".into()), "cli")
        .await
        .unwrap();
    let refused = eventually(Duration::from_secs(5), || async {
        let (s, v) = admin.get(&format!("{DATA}/sobjects")).await;
        s == StatusCode::SERVICE_UNAVAILABLE && v[0]["message"] == "Planned work"
    })
    .await;
    assert!(refused, "maintenance did not reach the server within 5 s");
    other.set_maintenance(false, None, "cli").await.unwrap();
    let back = eventually(Duration::from_secs(5), || async {
        admin.get(&format!("{DATA}/sobjects")).await.0 == StatusCode::OK
    })
    .await;
    assert!(back, "the server did not leave maintenance within 5 s");
    other.close();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_outage_makes_the_platform_read_only_until_it_recovers_by_itself() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap(),
    ));
    let c = clock.clone();
    let server = TestServer::start_with(move |cfg| cfg.clock = c).await;
    let admin = server.tenant().await;
    let id = invoice_with_record(&admin).await;
    let record = format!("{DATA}/sobjects/Invoice__c/{id}");
    let (s, _) = admin.get(&record).await;
    assert_eq!(s, StatusCode::OK);

    // The metadata database fails: its breaker opens.
    server.platform.breakers.metadata.trip();

    let res = admin
        .http
        .post(format!("{}{DATA}/sobjects/Invoice__c", admin.base))
        .bearer_auth(admin.token.as_deref().unwrap())
        .json(&json!({"Name": "Refused", "Amount__c": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        retry_after(&res),
        Some(30),
        "Retry-After is the breaker's open time left"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(codes(&body), ["SERVICE_UNAVAILABLE"]);
    for (s, what) in [
        (
            admin.patch(&record, json!({"Amount__c": 2})).await.0,
            "record update",
        ),
        (admin.delete(&record).await.0, "record delete"),
        (
            admin
                .post(
                    "/services/metadata/v1/objects",
                    json!({"api_name": "Other__c", "label": "Other"}),
                )
                .await
                .0,
            "metadata change",
        ),
        (
            admin
                .post("/services/admin/v1/roles", json!({"name": "Sales"}))
                .await
                .0,
            "admin change",
        ),
    ] {
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{what}");
    }
    // Reads keep working.
    let (s, v) = admin.get(&record).await;
    assert_eq!(
        (s, v["Amount__c"].as_f64()),
        (StatusCode::OK, Some(10.0)),
        "{v}"
    );
    let ready: Value = raw_get(&server.base, "/readyz").await.json().await.unwrap();
    assert_eq!(ready["degradation_level"], 3, "{ready}");
    assert_eq!(ready["degradation"], "read_only");
    assert_eq!(ready["dependencies"]["metadata_store"]["breaker"], "open");

    // The open period ends; the health monitor's probes close the breaker.
    clock.advance(chrono::Duration::seconds(30));
    let recovered = eventually(Duration::from_secs(10), || async {
        let ready: Value = raw_get(&server.base, "/readyz").await.json().await.unwrap();
        ready["degradation_level"] == 0
    })
    .await;
    assert!(recovered, "the platform did not recover by itself");
    let ready: Value = raw_get(&server.base, "/readyz").await.json().await.unwrap();
    assert_eq!(ready["dependencies"]["metadata_store"]["breaker"], "closed");
    let (s, v) = admin.patch(&record, json!({"Amount__c": 3})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    // Nothing refused was applied.
    let (_, v) = admin
        .get(&format!(
            "{DATA}/query?q=SELECT+Name,+Amount__c+FROM+Invoice__c"
        ))
        .await;
    assert_eq!(v["totalSize"], 1, "{v}");
    assert_eq!(v["records"][0]["Amount__c"].as_f64(), Some(3.0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_and_sessions_past_their_cache_lifetime_are_served_stale_while_the_metadata_database_is_down(
) {
    // Definitions, sessions and permission snapshots live one second in
    // L1, so they have expired by the time the metadata database goes down.
    let server = TestServer::start_with(|cfg| {
        cfg.cache.metadata.ttl = Duration::from_secs(1);
        cfg.cache.metadata.tti = None;
        cfg.cache.sessions.ttl = Duration::from_secs(1);
        cfg.cache.permissions.ttl = Duration::from_secs(1);
    })
    .await;
    let admin = server.tenant().await;
    let id = invoice_with_record(&admin).await;
    admin
        .create_object(json!({"api_name": "Unread__c", "label": "Unread"}))
        .await;
    let record = format!("{DATA}/sobjects/Invoice__c/{id}");
    assert_eq!(admin.get(&record).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1300)).await;

    server.platform.breakers.metadata.trip();
    let before = server.platform.meta.stale_served();
    let (s, v) = admin.get(&record).await;
    assert_eq!(
        (s, v["Name"].as_str()),
        (StatusCode::OK, Some("First")),
        "{v}"
    );
    assert!(
        server.platform.meta.stale_served() > before,
        "the expired definition came from the stale fallback"
    );
    let (s, v) = admin
        .get(&format!("{DATA}/query?q=SELECT+Name+FROM+Invoice__c"))
        .await;
    assert_eq!(
        (s, v["totalSize"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    // A definition this process never read has no stale copy: 503, with
    // Retry-After, never a wrong answer.
    let res = admin
        .http
        .get(format!("{}{DATA}/sobjects/Unread__c/describe", admin.base))
        .bearer_auth(admin.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after(&res).is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_limit_are_shed_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Arc::new(Platform::open_embedded(PlatformConfig::new(dir.path())).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::with_limits(
        platform.clone(),
        base.clone(),
        GatewayLimits {
            max_in_flight: 4,
            request_deadline: Duration::from_secs(30),
        },
    );
    let limit = state.in_flight.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(mosaic_server::serve(listener, state, async {
        let _ = rx.await;
    }));
    let created = platform
        .auth
        .create_tenant(NewTenant {
            name: "Shed".into(),
            subdomain: "shed".into(),
            tier: "starter".into(),
            admin_username: "admin@shed.test".into(),
            admin_password: "correct-horse-battery".into(),
            admin_email: None,
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let sobjects = format!("{base}{DATA}/sobjects");
    let get = || {
        http.get(&sobjects)
            .bearer_auth(&created.access_token)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);

    // Every place taken: the next request is refused at once.
    let held = limit.reserve(limit.max()).await.expect("reserve");
    assert_eq!(limit.in_flight(), 4);
    let res = get().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&res), Some(1));
    let body: Value = res.json().await.unwrap();
    assert_eq!(codes(&body), ["SERVICE_UNAVAILABLE"]);
    // Health endpoints are exempt.
    assert_eq!(raw_get(&base, "/healthz").await.status(), StatusCode::OK);
    assert_eq!(raw_get(&base, "/readyz").await.status(), StatusCode::OK);

    drop(held);
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    let _ = tx.send(());
    let _ = handle.await;
    platform.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_deliveries_pause_in_maintenance_and_resume_after() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A receiver that fails its first request and accepts the rest.
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let server = TestServer::start_with(|cfg| {
        cfg.automation.retry_base = Duration::from_millis(500);
        cfg.automation.poll = Duration::from_millis(20);
        cfg.automation.outbound_allow = loopback_allowed();
    })
    .await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Order__c"})).await;
    let (s, v) = c
        .post(
            "/services/metadata/v1/objects/Order__c/workflows",
            json!({"name": "Notify", "trigger_type": "created",
              "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": hook}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    c.create_record("Order__c", json!({"Name": "O-1"})).await;
    let s2 = seen.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let s2 = s2.clone();
            async move { s2.load(Ordering::SeqCst) == 1 }
        })
        .await,
        "first attempt"
    );
    // The retry falls due while the platform is in maintenance: it waits.
    server
        .platform
        .set_maintenance(true, None, "test")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1, "no delivery in maintenance");
    server
        .platform
        .set_maintenance(false, None, "test")
        .await
        .unwrap();
    let s2 = seen.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            let s2 = s2.clone();
            async move { s2.load(Ordering::SeqCst) == 2 }
        })
        .await,
        "the retry is delivered once maintenance ends"
    );
    server.stop().await;
}

/// Metadata read replicas end to end (decision 0014): one replica down, one
/// lagging (migrated but empty, so it holds nothing this server writes).
/// Every request succeeds, what a client writes it reads back at once, and
/// a replica down degrades nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_read_replicas_down_or_lagging_cost_clients_nothing() {
    use mosaic_store_pg::scratch::ScratchDatabase;
    let meta = ScratchDatabase::create().await.expect("scratch database");
    let lagging = ScratchDatabase::create().await.expect("scratch database");
    mosaic_store_pg::PgMetaStore::connect(&lagging.url, 2)
        .await
        .expect("the replica's schema");
    let (meta_url, lagging_url) = (meta.url.clone(), lagging.url.clone());
    let server = TestServer::start_with(move |cfg| {
        cfg.metadata_url = Some(meta_url);
        cfg.metadata_replica_urls = vec![
            "postgres://postgres@127.0.0.1:1/mosaic_down".into(),
            lagging_url,
        ];
        cfg.pg_pool_size = 4;
    })
    .await;
    let c = server.tenant().await;
    for i in 0..3 {
        let name = format!("Replica{i}__c");
        c.create_object(json!({"api_name": name, "label": "R", "fields": [{"api_name": "Amount__c", "data_type": "currency"}]}))
            .await;
        let (s, v) = c.get(&format!("{DATA}/sobjects/{name}/describe")).await;
        assert_eq!(s, StatusCode::OK, "read back at once: {v}");
        let id = c.create_record(&name, json!({"Name": "one"})).await;
        let (s, _) = c.get(&format!("{DATA}/sobjects/{name}/{id}")).await;
        assert_eq!(s, StatusCode::OK);
    }
    let counts = server
        .platform
        .metadata_replicas
        .as_ref()
        .expect("replicas configured")
        .read_counts();
    assert!(counts.primary > 0, "{counts:?}");
    assert_eq!(counts.replicas.len(), 2);

    let ready: Value = raw_get(&server.base, "/readyz").await.json().await.unwrap();
    assert_eq!(ready["degradation"], "full_operation", "{ready}");
    assert!(ready["metadata_replicas"]["metadata-replica:1"]["breaker"].is_string());
    assert_eq!(
        ready["metadata_replicas"]["metadata-replica:2"]["breaker"],
        "closed"
    );
    server.stop().await;
    drop((meta, lagging));
}

#[tokio::test]
async fn metadata_read_replicas_without_a_postgresql_primary_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PlatformConfig::new(dir.path());
    cfg.metadata_replica_urls = vec!["postgres://postgres@127.0.0.1:5432/replica".into()];
    let err = Platform::open(cfg.clone()).await.err().expect("refused");
    assert_eq!(err.code, mosaic_types::ErrorCode::INVALID_INPUT);
    assert!(err.message.contains("--metadata-url"), "{}", err.message);
    cfg.metadata_url = Some("postgres://postgres@127.0.0.1:5432/primary".into());
    cfg.metadata_replica_urls = vec!["mysql://replica".into()];
    let err = Platform::open(cfg).await.err().expect("refused");
    assert!(
        err.message.contains("metadata-replica:1"),
        "{}",
        err.message
    );
}
