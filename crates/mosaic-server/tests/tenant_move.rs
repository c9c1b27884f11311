//! Online tenant moves: writers and readers run against a tenant while it
//! moves between shards (PostgreSQL → PostgreSQL, SQLite → PostgreSQL,
//! SQLite → SQLite); afterwards every acknowledged write is there exactly
//! once with its latest value, no request failed, and the cutover pause is
//! reported. Rollback, cleanup and the operator API too.

mod common;
use common::*;
use mosaic_runtime::tenant_move::{MoveOptions, MoveReport, Quiet};
use mosaic_store::shards::ShardRow;
use mosaic_store_pg::scratch::ScratchDatabase;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn shard(id: &str, url: &str) -> ShardRow {
    ShardRow {
        id: id.into(),
        url: url.into(),
        group: "starter".into(),
        max_tenants: None,
        max_records: None,
        status: "active".into(),
        created_at: chrono::Utc::now(),
    }
}

async fn pg_shard(id: &str) -> (ShardRow, ScratchDatabase) {
    let db = ScratchDatabase::create().await.expect("scratch database");
    (shard(id, &db.url), db)
}

/// A tenant on shard `from` (the only starter shard when it is created)
/// with a Deal object (a unique code, an indexed amount) and `seed` deals.
async fn tenant_on(server: &TestServer, from: ShardRow, seed: usize) -> Client {
    let dir = server.platform.shards.directory().clone();
    let from_id = from.id.clone();
    dir.add_shard(from).await.unwrap();
    let c = server.tenant().await;
    assert_eq!(
        server.platform.shards.shard_id(&c.tenant_id).await.unwrap(),
        from_id
    );
    c.create_object(json!({"api_name": "Deal__c", "fields": [
        {"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 0},
        {"api_name": "Code__c", "data_type": "text", "length": 40, "is_unique": true},
        {"api_name": "Note__c", "data_type": "text", "length": 80}
    ]}))
    .await;
    for chunk in (0..seed).collect::<Vec<_>>().chunks(200) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"attributes": {"type": "Deal__c"}, "Name": format!("seed {i}"),
                       "Amount__c": i, "Code__c": format!("S-{i}"), "Note__c": "harbor lights"})
            })
            .collect();
        let (s, v) = c
            .post(
                &format!("{DATA}/composite/sobjects"),
                json!({"allOrNone": true, "records": records}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    c
}

/// Prints each phase of a move with the time since it started.
struct Phases(std::time::Instant);

impl mosaic_runtime::tenant_move::MoveProgress for Phases {
    fn phase(&self, name: &str) {
        println!("  {:>6} ms  {name}", self.0.elapsed().as_millis());
    }
    fn total(&self, rows: u64) {
        println!(
            "  {:>6} ms  {rows} rows to copy",
            self.0.elapsed().as_millis()
        );
    }
    fn advance(&self, _: u64) {}
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged records and their latest acknowledged amount.
    acked: Mutex<HashMap<String, i64>>,
    writes: AtomicU64,
    reads: AtomicU64,
    failures: Mutex<Vec<String>>,
}

fn spawn_load(
    c: &Client,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for w in 0..3 {
        let (c, stop, seen) = (c.clone(), stop.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine: Vec<String> = Vec::new();
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                if i % 2 == 1 || mine.is_empty() {
                    let (s, v) = c
                        .post(
                            &format!("{DATA}/sobjects/Deal__c"),
                            json!({"Name": format!("w{w}-{i}"), "Amount__c": i,
                                   "Code__c": format!("W{w}-{i}")}),
                        )
                        .await;
                    if s == StatusCode::CREATED {
                        let id = v["id"].as_str().unwrap().to_string();
                        seen.acked.lock().unwrap().insert(id.clone(), i);
                        mine.push(id);
                    } else {
                        seen.failures
                            .lock()
                            .unwrap()
                            .push(format!("create: {s} {v}"));
                    }
                } else {
                    let id = mine[(i as usize * 7) % mine.len()].clone();
                    let (s, v) = c
                        .patch(
                            &format!("{DATA}/sobjects/Deal__c/{id}"),
                            json!({"Amount__c": 1_000_000 + i}),
                        )
                        .await;
                    if s == StatusCode::NO_CONTENT {
                        seen.acked.lock().unwrap().insert(id, 1_000_000 + i);
                    } else {
                        seen.failures
                            .lock()
                            .unwrap()
                            .push(format!("update: {s} {v}"));
                    }
                }
                seen.writes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for r in 0..2 {
        let (c, stop, seen) = (c.clone(), stop.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = {
                    let acked = seen.acked.lock().unwrap();
                    acked.keys().nth((n * 13 + r) % acked.len().max(1)).cloned()
                };
                let (s, v) = match (n % 3, id) {
                    (0, _) | (_, None) => {
                        c.get(&format!("{DATA}/query?q=SELECT+COUNT()+FROM+Deal__c"))
                            .await
                    }
                    (_, Some(id)) => c.get(&format!("{DATA}/sobjects/Deal__c/{id}")).await,
                };
                if s != StatusCode::OK {
                    seen.failures.lock().unwrap().push(format!("read: {s} {v}"));
                }
                seen.reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tasks
}

/// Every Deal of the tenant: id → amount (paging through the query).
async fn all_deals(c: &Client) -> (HashMap<String, i64>, usize) {
    let (s, mut v) = c
        .get(&format!("{DATA}/query?q=SELECT+Id,Amount__c+FROM+Deal__c"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut out = HashMap::new();
    let mut rows = 0;
    loop {
        for r in v["records"].as_array().unwrap() {
            rows += 1;
            let amount = r["Amount__c"]
                .to_string()
                .trim_matches('"')
                .parse::<f64>()
                .unwrap();
            out.insert(r["Id"].as_str().unwrap().to_string(), amount as i64);
        }
        match v["nextRecordsUrl"].as_str() {
            Some(next) => {
                let (s, nv) = c.get(next).await;
                assert_eq!(s, StatusCode::OK, "{nv}");
                v = nv;
            }
            None => break,
        }
    }
    (out, rows)
}

/// Moves the tenant of `c` to `to` under load and checks everything.
async fn move_under_load(server: &TestServer, c: &Client, seed: usize, to: &str) -> MoveReport {
    let p = server.platform.clone();
    let from = p.shards.shard_id(&c.tenant_id).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let tasks = spawn_load(c, stop.clone(), seen.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let options = MoveOptions {
        cleanup: true,
        grace: Duration::from_millis(500),
    };
    let report = p
        .move_tenant(
            &c.tenant_id,
            to,
            &options,
            &Phases(std::time::Instant::now()),
        )
        .await
        .expect("move");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = seen.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "requests failed during the move: {failures:?}"
    );
    assert_eq!(p.shards.shard_id(&c.tenant_id).await.unwrap(), to);

    // Every acknowledged write exactly once, with its latest value.
    let (deals, rows) = all_deals(c).await;
    assert_eq!(rows, deals.len(), "a record appears twice");
    let acked = seen.acked.lock().unwrap().clone();
    for (id, amount) in &acked {
        assert_eq!(deals.get(id), Some(amount), "record {id}");
    }
    assert_eq!(
        deals.len(),
        seed + acked.len(),
        "unacknowledged records appeared"
    );
    // The old shard holds nothing of the tenant any more.
    let old = p.shards.shard_by_id(&from).await.unwrap();
    assert_eq!(old.transfer.row_count(&c.tenant_id).await.unwrap(), 0);
    assert_eq!(old.transfer.move_state(&c.tenant_id).await.unwrap(), None);

    // Pivots and search documents were rebuilt on the target.
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Deal__c"),
            json!({"Name": "dup", "Code__c": "S-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(codes(&v), vec!["DUPLICATE_VALUE"]);
    let (s, v) = c
        .get(&format!(
            "{DATA}/query?q=SELECT+COUNT()+FROM+Deal__c+WHERE+Code__c+=+'S-7'"
        ))
        .await;
    assert_eq!(
        (s, v["totalSize"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    let (s, v) = c
        .get(&format!(
            "{DATA}/search?q=FIND+%7Bharbor%7D+RETURNING+Deal__c(Id)"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!v["searchRecords"].as_array().unwrap().is_empty(), "{v}");

    println!(
        "moved {} rows ({} records) {from} → {to}: {} writes and {} reads during the run, \
         copy {} ms, {} catch-up rounds, {} changes applied, cutover pause {:.2} ms, total {} ms",
        report.rows_copied,
        report.records,
        seen.writes.load(Ordering::Relaxed),
        seen.reads.load(Ordering::Relaxed),
        report.copy_ms,
        report.catch_up_rounds,
        report.changes_applied,
        report.cutover_pause_ms,
        report.total_ms
    );
    assert!(seen.writes.load(Ordering::Relaxed) > 10 && seen.reads.load(Ordering::Relaxed) > 10);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_moves_between_postgres_shards_under_load() {
    let server = TestServer::start().await;
    let (a, _a_db) = pg_shard("pg-a").await;
    let (b, _b_db) = pg_shard("pg-b").await;
    let c = tenant_on(&server, a, 1_000).await;
    server
        .platform
        .shards
        .directory()
        .add_shard(b)
        .await
        .unwrap();
    move_under_load(&server, &c, 1_000, "pg-b").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_moves_from_sqlite_to_postgres_under_load() {
    let server = TestServer::start().await;
    let (b, _b_db) = pg_shard("pg").await;
    let c = tenant_on(
        &server,
        shard("laptop", "sqlite:shards/laptop.sqlite"),
        1_000,
    )
    .await;
    server
        .platform
        .shards
        .directory()
        .add_shard(b)
        .await
        .unwrap();
    move_under_load(&server, &c, 1_000, "pg").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_moves_between_sqlite_shards_and_back() {
    let server = TestServer::start().await;
    let c = tenant_on(&server, shard("one", "sqlite:shards/one.sqlite"), 300).await;
    let p = server.platform.clone();
    p.shards
        .directory()
        .add_shard(shard("two", "sqlite:shards/two.sqlite"))
        .await
        .unwrap();
    move_under_load(&server, &c, 300, "two").await;

    // Keep the source, write on the target, roll back: the write comes along.
    let keep = MoveOptions {
        cleanup: false,
        grace: Duration::ZERO,
    };
    p.move_tenant(&c.tenant_id, "one", &keep, &Quiet)
        .await
        .unwrap();
    let id = c
        .create_record("Deal__c", json!({"Name": "after", "Amount__c": 5}))
        .await;
    let (s, _) = c
        .patch(
            &format!("{DATA}/sobjects/Deal__c/{id}"),
            json!({"Amount__c": 6}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // A second move while the first still has a copy to clean up: refused.
    let e = p
        .move_tenant(&c.tenant_id, "two", &keep, &Quiet)
        .await
        .unwrap_err();
    assert_eq!(e.code, mosaic_types::ErrorCode::CONFLICT, "{}", e.message);
    let back = p.rollback_move(&c.tenant_id).await.unwrap();
    assert_eq!(back.to, "two");
    assert!(back.changes_applied >= 1);
    assert_eq!(p.shards.shard_id(&c.tenant_id).await.unwrap(), "two");
    let (s, v) = c.get(&format!("{DATA}/sobjects/Deal__c/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["Amount__c"].to_string().trim_matches('"'), "6");
    let one = p.shards.shard_by_id("one").await.unwrap();
    assert_eq!(one.transfer.row_count(&c.tenant_id).await.unwrap(), 0);
    // Nothing to finish or roll back any more.
    assert_eq!(
        p.finish_move(&c.tenant_id).await.unwrap_err().code,
        mosaic_types::ErrorCode::NOT_FOUND
    );
    assert_eq!(
        p.rollback_move(&c.tenant_id).await.unwrap_err().code,
        mosaic_types::ErrorCode::NOT_FOUND
    );
    // Moving to where it is, or to nowhere: clear errors.
    let e = p
        .move_tenant(&c.tenant_id, "two", &keep, &Quiet)
        .await
        .unwrap_err();
    assert_eq!(e.code, mosaic_types::ErrorCode::CONFLICT);
    let e = p
        .move_tenant(&c.tenant_id, "nope", &keep, &Quiet)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.fields.clone()),
        (mosaic_types::ErrorCode::NOT_FOUND, vec!["to".to_string()])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_move_tenants_over_http() {
    let server = TestServer::start_full(|_| {}, Some("op-secret")).await;
    let c = tenant_on(&server, shard("h1", "sqlite:shards/h1.sqlite"), 20).await;
    server
        .platform
        .shards
        .directory()
        .add_shard(shard("h2", "sqlite:shards/h2.sqlite"))
        .await
        .unwrap();
    let url = format!("/services/admin/v1/tenants/{}/move", c.tenant_id);
    let op = |req: reqwest::RequestBuilder| req.header("x-mosaic-operator-token", "op-secret");
    let http = reqwest::Client::new();
    // Without the operator token: refused, even for the tenant's admin.
    let (s, _) = c.post(&url, json!({"to": "h2"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Bad input: 400 naming the field; unknown tenant: 404.
    for (body, field) in [
        (json!({"to": ""}), Some("to")),
        (json!({"to": "h2", "extra": 1}), None),
        (json!({"shard": "h2"}), None),
    ] {
        let r = op(http.post(format!("{}{url}", server.base)).json(&body))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.unwrap();
        if let Some(f) = field {
            assert_eq!(v[0]["fields"], json!([f]), "{v}");
        }
    }
    let r = op(http
        .post(format!(
            "{}/services/admin/v1/tenants/nobody/move",
            server.base
        ))
        .json(&json!({"to": "h2"})))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Start, then watch it finish.
    let r = op(http
        .post(format!("{}{url}", server.base))
        .json(&json!({"to": "h2"})))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mut last = Value::Null;
    for _ in 0..200 {
        let r = op(http.get(format!("{}{url}", server.base)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        last = r.json().await.unwrap();
        if last["phase"] == "done" || last["phase"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["phase"], "done", "{last}");
    assert_eq!(last["report"]["to"], "h2");
    assert_eq!(last["rows_copied"], last["rows_total"], "{last}");
    assert!(last["report"]["cutover_pause_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        server.platform.shards.shard_id(&c.tenant_id).await.unwrap(),
        "h2"
    );
    let (s, v) = c
        .get(&format!("{DATA}/query?q=SELECT+COUNT()+FROM+Deal__c"))
        .await;
    assert_eq!((s, v["totalSize"].clone()), (StatusCode::OK, json!(20)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_tenants_are_moved_to_an_empty_shard_when_enabled() {
    let server = TestServer::start_with(|cfg| {
        cfg.hot_min_requests = Some(10);
        cfg.hot_auto_move = true;
    })
    .await;
    let p = server.platform.clone();
    let hot = tenant_on(&server, shard("busy", "sqlite:shards/busy.sqlite"), 30).await;
    let calm = server.tenant().await;
    assert_eq!(p.shards.shard_id(&calm.tenant_id).await.unwrap(), "busy");
    // No empty shard yet: the hot tenant is reported and stays.
    for _ in 0..60 {
        p.hot.count(&hot.tenant_id);
    }
    for _ in 0..3 {
        p.hot.count(&calm.tenant_id);
    }
    assert!(p.rebalance_hot_tenants().await.unwrap().is_empty());
    assert_eq!(p.shards.shard_id(&hot.tenant_id).await.unwrap(), "busy");
    // A spare appears: the hot tenant moves there, the calm one does not.
    let mut spare = shard("spare", "sqlite:shards/spare.sqlite");
    spare.group = "enterprise".into();
    p.shards.directory().add_shard(spare).await.unwrap();
    let moved = p.rebalance_hot_tenants().await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0].tenant_id.as_str(), moved[0].to.as_str()),
        (hot.tenant_id.as_str(), "spare")
    );
    assert_eq!(moved[0].records, 30);
    assert_eq!(p.shards.shard_id(&hot.tenant_id).await.unwrap(), "spare");
    assert_eq!(p.shards.shard_id(&calm.tenant_id).await.unwrap(), "busy");
    let (s, v) = hot
        .get(&format!("{DATA}/query?q=SELECT+COUNT()+FROM+Deal__c"))
        .await;
    assert_eq!((s, v["totalSize"].clone()), (StatusCode::OK, json!(30)));
    // Alone on its shard now: no longer hot, nothing more to move.
    assert!(p.hot_tenants().await.unwrap().is_empty());
    assert!(p.rebalance_hot_tenants().await.unwrap().is_empty());
    server.stop().await;
}
