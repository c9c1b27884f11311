//! Moving a tenant with 100,000 records while a writer keeps updating it:
//! SQLite → SQLite, SQLite → PostgreSQL, PostgreSQL → PostgreSQL (scratch
//! databases on the local server, dropped afterwards). Prints the copy
//! time, total time, cutover pause and the slowest write of each move.
//!
//! `cargo bench -p mosaic-runtime --bench tenant_move` (needs PostgreSQL
//! at `MOSAIC_TEST_PG_URL` or 127.0.0.1:5432).

mod common;
use common::body;
use mosaic_meta::validate::ObjectInput;
use mosaic_runtime::tenant_move::{MoveOptions, Quiet};
use mosaic_store::shards::ShardRow;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORDS: usize = 100_000;

fn shard(id: &str, url: &str, group: &str) -> ShardRow {
    ShardRow {
        id: id.into(),
        url: url.into(),
        group: group.into(),
        max_tenants: None,
        max_records: None,
        status: "active".into(),
        created_at: chrono::Utc::now(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, and a 100,000-record move is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("tenant_move: run with `cargo bench -p mosaic-runtime --bench tenant_move`");
        return;
    }
    let common::Bench { rt, p, admin, .. } = common::setup();
    let p = Arc::new(p);
    rt.block_on(async {
        let t = admin.tenant_id.clone();
        let pa = mosaic_store_pg::scratch::ScratchDatabase::create().await.expect("scratch");
        let pb = mosaic_store_pg::scratch::ScratchDatabase::create().await.expect("scratch");
        let dir = p.shards.directory().clone();
        // The tenant starts on the built-in SQLite shard; the others take
        // no new tenants (professional group, the tenant is a starter).
        for s in [
            shard("sqlite-b", "sqlite:bench-b.sqlite", "professional"),
            shard("pg-a", &pa.url, "professional"),
            shard("pg-b", &pb.url, "professional"),
        ] {
            dir.add_shard(s).await.expect("shard");
        }
        let input: ObjectInput = serde_json::from_value(json!({"api_name": "Deal__c", "fields": [
            {"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 0},
            {"api_name": "Code__c", "data_type": "text", "length": 20, "is_unique": true},
            {"api_name": "Note__c", "data_type": "text", "length": 80}]}))
        .expect("object input");
        p.meta.create_object(&t, input).await.expect("object");
        let started = Instant::now();
        let mut ids = Vec::with_capacity(RECORDS);
        let mut n = 0;
        while n < RECORDS {
            let batch: Vec<Map<String, Value>> = (n..(n + 200).min(RECORDS))
                .map(|i| {
                    body(json!({"attributes": {"type": "Deal__c"}, "Name": format!("Deal {i}"),
                        "Amount__c": i, "Code__c": format!("C{i}"), "Note__c": "north harbor"}))
                })
                .collect();
            for r in p.create_batch(&admin, &batch, true).await.expect("batch") {
                ids.push(r.expect("record"));
            }
            n += batch.len();
        }
        eprintln!("seeded {RECORDS} records in {:.1} s", started.elapsed().as_secs_f64());
        let ids = Arc::new(ids);
        for to in ["sqlite-b", "pg-a", "pg-b"] {
            let from = p.shards.shard_id(&t).await.expect("shard");
            // One writer updating records throughout the move.
            let stop = Arc::new(AtomicBool::new(false));
            let (writes, slowest) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let writer = {
                let (p, admin, ids) = (p.clone(), admin.clone(), ids.clone());
                let (stop, writes, slowest) = (stop.clone(), writes.clone(), slowest.clone());
                tokio::spawn(async move {
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let id = &ids[(i * 7919) % ids.len()];
                        let rec = body(json!({"attributes": {"type": "Deal__c"}, "Id": id, "Amount__c": i}));
                        let w = Instant::now();
                        for r in p.update_batch(&admin, &[rec], true).await.expect("update") {
                            r.expect("updated");
                        }
                        slowest.fetch_max(w.elapsed().as_micros() as u64, Ordering::Relaxed);
                        writes.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
            let options = MoveOptions { cleanup: true, grace: Duration::from_millis(200) };
            let r = p.move_tenant(&t, to, &options, &Quiet).await.expect("move");
            tokio::time::sleep(Duration::from_millis(200)).await;
            stop.store(true, Ordering::Relaxed);
            writer.await.expect("writer");
            println!(
                "move {from} → {to}: {} rows ({} records), copy {:.1} s, {} catch-up rounds ({} changes), \
                 cutover pause {:.1} ms, total {:.1} s (cleanup included); {} writes during the move, slowest {:.1} ms",
                r.rows_copied,
                r.records,
                r.copy_ms as f64 / 1e3,
                r.catch_up_rounds,
                r.changes_applied,
                r.cutover_pause_ms,
                r.total_ms as f64 / 1e3,
                writes.load(Ordering::Relaxed),
                slowest.load(Ordering::Relaxed) as f64 / 1e3
            );
        }
        p.close();
    });
}
