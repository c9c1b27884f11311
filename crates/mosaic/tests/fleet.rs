//! N instances behave as one: real `mosaic serve` processes sharing
//! PostgreSQL (scratch metadata and record databases) and, where a test
//! needs it, a Redis of the test's own.

mod common;

use common::{OwnRedis, Server};
use mosaic_store_pg::scratch::ScratchDatabase;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const META: &str = "/services/metadata/v1";
const DATA: &str = "/services/data/v60.0";

/// The shared databases (and settings) of a fleet; instances are started
/// one by one, as each test needs them.
struct Fleet {
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    _dbs: Vec<ScratchDatabase>,
}

impl Fleet {
    async fn new(redis: Option<&OwnRedis>, extra: &[(&str, &str)]) -> Fleet {
        let meta = ScratchDatabase::create()
            .await
            .expect("PostgreSQL (scripts/services)");
        let records = ScratchDatabase::create().await.expect("scratch database");
        let mut env: Vec<(String, String)> = vec![
            ("MOSAIC_METADATA_URL".into(), meta.url.clone()),
            ("MOSAIC_RECORDS_URL".into(), records.url.clone()),
            ("MOSAIC_PG_POOL_SIZE".into(), "4".into()),
        ];
        if let Some(r) = redis {
            env.push(("MOSAIC_REDIS_URL".into(), r.url()));
            env.push(("MOSAIC_REDIS_PREFIX".into(), format!("fleet{}:", r.port)));
        }
        for (k, v) in extra {
            env.push((k.to_string(), v.to_string()));
        }
        Fleet {
            env,
            dir: tempfile::tempdir().unwrap(),
            _dbs: vec![meta, records],
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One more instance on the shared databases.
    fn start(&self) -> Server {
        let pairs: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        common::start_with(self.dir(), &pairs)
    }

    /// A tenant (through the CLI, on the shared databases): admin token.
    fn tenant(&self, sub: &str) -> String {
        common::create_tenant(self.dir(), &self.env, sub).0
    }
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post(url: String, token: &str, body: Value) -> (u16, Value) {
    call(reqwest::Method::POST, url, token, Some(body)).await
}

// ---------------------------------------------------------------------------
// 1. Outbox leases belong to an instance and expire by time.

/// What the receiver saw: deliveries begun and finished (delivery ids).
#[derive(Default)]
struct Hooks {
    begun: Vec<String>,
    finished: Vec<String>,
}

/// A receiver that takes `delay` per delivery.
async fn slow_receiver(delay: Duration) -> (Arc<Mutex<Hooks>>, String) {
    let log: Arc<Mutex<Hooks>> = Arc::default();
    let l = log.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let l = l.clone();
            async move {
                let id = headers
                    .get("x-mosaic-delivery-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                l.lock().unwrap().begun.push(id.clone());
                tokio::time::sleep(delay).await;
                l.lock().unwrap().finished.push(id);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (log, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_instance_leaves_a_live_lease_alone() {
    let fleet = Fleet::new(None, &[("MOSAIC_OUTBOUND_ALLOW", "127.0.0.0/8")]).await;
    let (hooks, hook) = slow_receiver(Duration::from_secs(2)).await;
    let a = fleet.start();
    let token = fleet.tenant("lease");
    let (s, v) = post(
        format!("{}{META}/objects", a.url),
        &token,
        json!({"api_name": "Order__c"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}{META}/objects/Order__c/workflows", a.url),
        &token,
        json!({"name": "Ship", "trigger_type": "created",
               "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": hook}}]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}{DATA}/sobjects/Order__c", a.url),
        &token,
        json!({"Name": "O-1"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // Instance A has claimed the entry and is delivering it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hooks.lock().unwrap().begun.is_empty() {
        assert!(Instant::now() < deadline, "A never began the delivery");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Instance B starts while A holds the lease.
    let _b = fleet.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hooks.lock().unwrap().finished.is_empty() {
        assert!(Instant::now() < deadline, "A never finished the delivery");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let h = hooks.lock().unwrap();
    assert_eq!(
        h.begun.len(),
        1,
        "the message was delivered once, not again by the starting instance: {:?}",
        h.begun
    );
}

// ---------------------------------------------------------------------------
// 4. Readiness probes a half-open Redis itself.

async fn readiness(url: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .unwrap_or(Value::Null)
}

async fn redis_breaker(url: &str) -> String {
    let v: Value = reqwest::Client::new()
        .get(format!("{url}/services/admin/v1/cache"))
        .bearer_auth(common::OPERATOR_TOKEN)
        .send()
        .await
        .expect("cache figures")
        .json()
        .await
        .unwrap_or(Value::Null);
    v["tier"]["breaker"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_returns_to_level_0_after_redis_comes_back() {
    let mut redis = OwnRedis::start();
    let fleet = Fleet::new(
        Some(&redis),
        &[("MOSAIC_BREAKER_REDIS", "failures=3,open=1s,probes=2")],
    )
    .await;
    let a = fleet.start();
    let token = fleet.tenant("ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    while readiness(&a.url).await["degradation_level"] != 0 {
        assert!(Instant::now() < deadline, "never reached level 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Redis goes away; traffic opens its breaker.
    redis.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    while redis_breaker(&a.url).await == "closed" {
        assert!(Instant::now() < deadline, "the Redis breaker never opened");
        let _ = call(
            reqwest::Method::GET,
            format!("{}{META}/objects", a.url),
            &token,
            None,
        )
        .await;
    }
    // Redis is back; no request but readiness probes reaches the instance.
    redis.restart();
    let back = Instant::now();
    loop {
        let r = readiness(&a.url).await;
        if r["degradation_level"] == 0 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "still {} 10 s after Redis came back (breaker {}): {r}",
            r["degradation_level"],
            redis_breaker(&a.url).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("level 0 again {:?} after Redis came back", back.elapsed());
}

// ---------------------------------------------------------------------------
// 5. A permission revoked through one instance is refused by every other
//    at the next request — without Redis, so no invalidation message helps.

const ADMIN: &str = "/services/admin/v1";

async fn login(url: &str, username: &str, password: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login of {username}: {v}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_instance_is_in_force_on_the_others_at_once() {
    let fleet = Fleet::new(None, &[]).await;
    let servers: Vec<Server> = (0..3).map(|_| fleet.start()).collect();
    let url = |i: usize| servers[i].url.clone();
    let admin = fleet.tenant("perm");
    let (s, v) = post(
        format!("{}{META}/objects", url(0)),
        &admin,
        json!({"api_name": "Doc__c"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}{DATA}/sobjects/Doc__c", url(0)),
        &admin,
        json!({"Name": "D-1"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let record = v["id"].as_str().unwrap().to_string();
    let (s, v) = post(
        format!("{}{ADMIN}/users", url(0)),
        &admin,
        json!({"username": "reader@perm.test", "password": "reader-pass-123456"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let user = v["id"].as_str().unwrap().to_string();
    let (s, v) = post(
        format!("{}{ADMIN}/permission-sets", url(0)),
        &admin,
        json!({"name": "Readers", "object_permissions": [
            {"object": "Doc__c", "create": false, "read": true, "edit": false,
             "delete": false, "view_all": true, "modify_all": false}]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let set = v["id"].as_str().unwrap().to_string();
    let (s, v) = post(
        format!("{}{ADMIN}/permission-sets/{set}/assignments", url(0)),
        &admin,
        json!({"user_id": user}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let reader = login(&url(0), "reader@perm.test", "reader-pass-123456").await;
    let read = |i: usize| {
        let (u, t, r) = (url(i), reader.clone(), record.clone());
        async move {
            call(
                reqwest::Method::GET,
                format!("{u}{DATA}/sobjects/Doc__c/{r}"),
                &t,
                None,
            )
            .await
        }
    };
    // Every instance has the reader's permissions cached.
    for i in 0..3 {
        for _ in 0..3 {
            let (s, v) = read(i).await;
            assert_eq!(s, 200, "instance {i} grants the read: {v}");
        }
    }
    // Revoked through instance 0 …
    let (s, v) = call(
        reqwest::Method::DELETE,
        format!("{}{ADMIN}/permission-sets/{set}/assignments/{user}", url(0)),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 204, "{v}");
    // … and refused by 1 and 2 at the next request after the check window
    // (an object the user may not read does not exist for them: 404).
    tokio::time::sleep(Duration::from_millis(6)).await;
    for i in [1, 2, 0] {
        let (s, v) = read(i).await;
        assert_eq!(
            (s, v[0]["errorCode"].as_str()),
            (404, Some("NOT_FOUND")),
            "instance {i} still grants a revoked permission: {v}"
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Hot tenants are found from the fleet's traffic.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_hot_across_three_instances_is_detected() {
    let redis = OwnRedis::start();
    // A 60 s window: a tenant needs 60 requests in it to be hot.
    let fleet = Fleet::new(Some(&redis), &[("MOSAIC_HOT_WINDOW_SECS", "60")]).await;
    let servers: Vec<Server> = (0..3).map(|_| fleet.start()).collect();
    let busy = fleet.tenant("busy");
    let quiet = fleet.tenant("quiet");
    // 30 requests of `busy` through each instance: 90 in all, but each
    // instance alone saw only 30 (below 60).
    for s in &servers {
        for _ in 0..30 {
            let (st, v) = call(
                reqwest::Method::GET,
                format!("{}{META}/objects", s.url),
                &busy,
                None,
            )
            .await;
            assert_eq!(st, 200, "{v}");
        }
        let (st, _) = call(
            reqwest::Method::GET,
            format!("{}{META}/objects", s.url),
            &quiet,
            None,
        )
        .await;
        assert_eq!(st, 200);
    }
    let hot = |i: usize| {
        let url = servers[i].url.clone();
        async move {
            let v: Value = reqwest::Client::new()
                .get(format!("{url}{ADMIN}/shards/hot"))
                .bearer_auth(common::OPERATOR_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["hot_tenants"].as_array().cloned().unwrap_or_default()
        }
    };
    // Every instance finds it (each shares its counts within a second).
    for i in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = hot(i).await;
            if let Some(h) = list.first() {
                assert_eq!(list.len(), 1, "{list:?}");
                // More than any one instance saw.
                assert!(h["requests"].as_u64().unwrap() > 30, "{h}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "instance {i} does not see the fleet's hot tenant"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Saves of one record are serialized by the database: concurrent
//    updates through two instances, without Redis, lose no increment.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_through_two_instances_lose_no_update_without_redis() {
    const PER_INSTANCE: usize = 100;
    let fleet = Fleet::new(None, &[]).await;
    let servers: Vec<Server> = (0..2).map(|_| fleet.start()).collect();
    let token = fleet.tenant("saves");
    let (s, v) = post(
        format!("{}{META}/objects", servers[0].url),
        &token,
        json!({"api_name": "Counter__c", "fields": [
            {"api_name": "Count__c", "data_type": "number", "precision": 12, "scale": 0},
            {"api_name": "Touch__c", "data_type": "number", "precision": 12, "scale": 0}]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // Every save adds one: a read-modify-write of the record's old value.
    let (s, v) = post(
        format!("{}{META}/objects/Counter__c/workflows", servers[0].url),
        &token,
        json!({"name": "Count", "trigger_type": "updated", "re_evaluation": "every_time",
               "actions": [{"action_type": "field_update", "action_config": {
                   "field_api_name": "Count__c", "value_type": "formula",
                   "formula": "BLANKVALUE(Count__c, 0) + 1"}}]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}{DATA}/sobjects/Counter__c", servers[0].url),
        &token,
        json!({"Name": "C", "Count__c": 0}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        // Two writers per instance, so saves also meet inside each process.
        for w in 0..2 {
            let (url, token, id) = (server.url.clone(), token.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..PER_INSTANCE / 2 {
                    let (s, v) = call(
                        reqwest::Method::PATCH,
                        format!("{url}{DATA}/sobjects/Counter__c/{id}"),
                        &token,
                        Some(json!({"Touch__c": i * 1000 + w * 100 + n})),
                    )
                    .await;
                    assert_eq!(s, 204, "update through instance {i}: {v}");
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (s, v) = call(
        reqwest::Method::GET,
        format!("{}{DATA}/sobjects/Counter__c/{id}", servers[1].url),
        &token,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["Count__c"].as_f64(),
        Some((2 * PER_INSTANCE) as f64),
        "every one of {} saves counted: {v}",
        2 * PER_INSTANCE
    );
}

// ---------------------------------------------------------------------------
// 6. The metadata database moves from metadata.sqlite to PostgreSQL; the
//    records stay in the data directory's shard.

fn migrate_metadata(dir: &Path, to: &str) -> std::process::Output {
    std::process::Command::new(common::bin())
        .args(["migrate-metadata", "--data-dir"])
        .arg(dir)
        .args(["--to", to])
        .env("RUST_LOG", "warn")
        .output()
        .expect("mosaic migrate-metadata")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_install_moves_its_metadata_to_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let target = ScratchDatabase::create()
        .await
        .expect("PostgreSQL (scripts/services)");
    let server = common::start(dir.path());
    let (token, _) = common::create_tenant(dir.path(), &[], "laptop");
    let (s, v) = post(
        format!("{}{META}/objects", server.url),
        &token,
        json!({"api_name": "Note__c", "fields": [
            {"api_name": "Body__c", "data_type": "text", "length": 80}]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}{DATA}/sobjects/Note__c", server.url),
        &token,
        json!({"Name": "N-1", "Body__c": "kept in records.sqlite"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let note = v["id"].as_str().unwrap().to_string();
    // Refused while the server runs.
    let out = migrate_metadata(dir.path(), &target.url);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("still running"), "{err}");
    drop(server);
    let out = migrate_metadata(dir.path(), &target.url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("migrate-metadata: {report}");
    assert_eq!(report["tables"]["tenants"], 1, "{report}");
    assert_eq!(report["tables"]["objects"], 1, "{report}");
    // A second run finds the target filled and changes nothing.
    let out = migrate_metadata(dir.path(), &target.url);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty"), "{err}");
    // Served from PostgreSQL metadata, records from the data directory.
    let server = common::start_with(dir.path(), &[("MOSAIC_METADATA_URL", target.url.as_str())]);
    let fresh = login(&server.url, "admin@laptop.test", "correct-horse-battery").await;
    for t in [&fresh, &token] {
        let (s, v) = call(
            reqwest::Method::GET,
            format!("{}{DATA}/sobjects/Note__c/{note}", server.url),
            t,
            None,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["Body__c"], "kept in records.sqlite");
    }
    // And it takes new definitions and records.
    let (s, v) = post(
        format!("{}{META}/objects", server.url),
        &fresh,
        json!({"api_name": "Later__c"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}{DATA}/sobjects/Note__c", server.url),
        &fresh,
        json!({"Name": "N-2"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

// ---------------------------------------------------------------------------
// Query locators are the fleet's: the next batch of a query answers through
// any instance.

/// Every id of a paged query, following `nextRecordsUrl` through the
/// instances in turn (the first page through `urls[0]`).
async fn page_through(urls: &[String], token: &str, soql: &str) -> (Vec<String>, usize) {
    let http = reqwest::Client::new();
    let first: Value = http
        .get(format!("{}{DATA}/query", urls[0]))
        .query(&[("q", soql)])
        .bearer_auth(token)
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = first["records"]
        .as_array()
        .unwrap_or_else(|| panic!("first page: {first}"))
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    let mut next = first["nextRecordsUrl"].as_str().map(str::to_string);
    let mut pages = 1;
    while let Some(path) = next {
        let url = &urls[pages % urls.len()];
        let res = http
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "page {pages} of {path} through {url}");
        let page: Value = res.json().await.unwrap();
        ids.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_string()),
        );
        next = page["nextRecordsUrl"].as_str().map(str::to_string);
        pages += 1;
    }
    (ids, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_of_a_query_answers_through_any_instance() {
    let redis = OwnRedis::start();
    let fleet = Fleet::new(Some(&redis), &[]).await;
    let servers: Vec<Server> = (0..2).map(|_| fleet.start()).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let admin = fleet.tenant("pages");
    let (s, v) = post(
        format!("{}{META}/objects", urls[0]),
        &admin,
        json!({"api_name": "Line__c", "fields": [
            {"api_name": "Qty__c", "data_type": "number", "precision": 10, "scale": 0},
            {"api_name": "Twice__c", "data_type": "formula", "formula_expression": "Qty__c * 2", "formula_return_type": "number"}
        ]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let mut created = Vec::new();
    for chunk in 0..3 {
        let records: Vec<Value> = (0..150)
            .map(|i| json!({"attributes": {"type": "Line__c"}, "Name": format!("L-{chunk}-{i}"), "Qty__c": chunk * 150 + i}))
            .collect();
        let (s, v) = post(
            format!("{}{DATA}/composite/sobjects", urls[0]),
            &admin,
            json!({"allOrNone": true, "records": records}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        created.extend(
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
    }
    // SQL-planned: 450 rows in three batches, the 2nd and 3rd through the
    // instance that did not run the query, then the first again.
    let (ids, pages) = page_through(&urls, &admin, "SELECT Id FROM Line__c ORDER BY Qty__c").await;
    assert_eq!(pages, 3);
    assert_eq!(ids, created, "every row once, in the query's order");
    // Rows chosen in the engine (a formula field in WHERE and ORDER BY).
    let (ids, pages) = page_through(
        &[urls[1].clone(), urls[0].clone()],
        &admin,
        "SELECT Id, Twice__c FROM Line__c WHERE Twice__c >= 100 ORDER BY Twice__c DESC",
    )
    .await;
    let want: Vec<String> = created[50..].iter().rev().cloned().collect();
    assert_eq!(pages, 2);
    assert_eq!(ids, want);
    // Another user's locator answers nothing on any instance.
    let first: Value = reqwest::Client::new()
        .get(format!("{}{DATA}/query", urls[0]))
        .query(&[("q", "SELECT Id FROM Line__c")])
        .bearer_auth(&admin)
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = first["nextRecordsUrl"].as_str().unwrap().to_string();
    let other = fleet.tenant("other");
    let (s, v) = call(
        reqwest::Method::GET,
        format!("{}{path}", urls[1]),
        &other,
        None,
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v[0]["errorCode"], "INVALID_QUERY_LOCATOR", "{v}");
}
