//! Query benchmark on the embedded (SQLite) backend: 1,000,000 records across
//! 100 tenants, then
//!
//! - a simple indexed query returning 100 records
//!   (`SELECT Id, Name, Amount__c FROM Contact__c WHERE Code__c = 'K42'`), and
//! - a complex query over 1,000 records with a parent join, GROUP BY and
//!   aggregates (`SELECT Account__r.Industry__c, COUNT(Id), SUM(Amount__c),
//!   AVG(Amount__c) FROM Contact__c WHERE Batch__c = 'B3' GROUP BY Account__r.Industry__c`).
//!
//! Each measured call is planning (parse + bind) + SQL + decoding, through
//! `QueryStore::query` on the reader pool, i.e. everything below HTTP.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-query cargo run --release -p mosaic-store --example query_bench
//! # reuse a seeded database: MOSAIC_BENCH_DIR=/tmp/mosaic-bench (seeded on first run)
//! ```

use chrono::{NaiveDate, TimeZone, Utc, Weekday};
use mosaic_store::plan::{plan_query, PlanContext, Schema, SchemaField, SchemaObject};
use mosaic_store::query_store::Restrict;
use mosaic_store::{
    IndexSpec, InsertOp, QueryStore, RecordRow, RecordStore, SqliteRecordStore, WriteOp,
};
use mosaic_types::{DataType, FlexSlot, SlotPool, Value};
use rust_decimal::Decimal;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANTS: usize = 100;
const ACCOUNTS: usize = 1_000;
const CONTACTS: usize = 9_000;
const CODES: usize = 90; // 9,000 / 90 = 100 contacts per code
const BATCHES: usize = 9; // 9,000 / 9 = 1,000 contacts per batch
const INDUSTRIES: [&str; 7] = [
    "Tech", "Retail", "Energy", "Health", "Media", "Finance", "Travel",
];

fn slot(pool: SlotPool, i: u16) -> FlexSlot {
    FlexSlot::new(pool, i).expect("slot")
}

fn field(name: &str, t: DataType, s: FlexSlot, indexed: bool) -> SchemaField {
    SchemaField {
        api_name: name.into(),
        data_type: t,
        slot: Some(s),
        indexed,
        unique: false,
        lookup_object_id: None,
        relationship_name: None,
        child_relationship_name: None,
        rollup: None,
    }
}

fn schema(t: usize) -> Schema {
    let mut lookup = field(
        "Account__c",
        DataType::Lookup,
        slot(SlotPool::String, 1),
        true,
    );
    lookup.lookup_object_id = Some(format!("acc-{t}"));
    lookup.relationship_name = Some("Account__r".into());
    lookup.child_relationship_name = Some("Contacts__r".into());
    Schema {
        objects: vec![
            SchemaObject {
                id: format!("acc-{t}"),
                api_name: "Account__c".into(),
                fields: vec![field(
                    "Industry__c",
                    DataType::Text,
                    slot(SlotPool::String, 1),
                    true,
                )],
            },
            SchemaObject {
                id: format!("con-{t}"),
                api_name: "Contact__c".into(),
                fields: vec![
                    lookup,
                    field("Code__c", DataType::Text, slot(SlotPool::String, 2), true),
                    field("Batch__c", DataType::Text, slot(SlotPool::String, 3), true),
                    field(
                        "Email__c",
                        DataType::Email,
                        slot(SlotPool::String, 4),
                        false,
                    ),
                    field(
                        "Amount__c",
                        DataType::Currency,
                        slot(SlotPool::Number, 1),
                        false,
                    ),
                ],
            },
        ],
    }
}

fn spec(s: FlexSlot, name: &str, ci: bool) -> IndexSpec {
    IndexSpec {
        slot: s,
        field: name.into(),
        unique: false,
        indexed: true,
        case_insensitive: ci,
    }
}

fn row(object_id: &str, id: String, name: String, values: Vec<(FlexSlot, Value)>) -> RecordRow {
    let at = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    RecordRow {
        id,
        object_id: object_id.into(),
        name: Some(name),
        owner_id: "owner".into(),
        created_by: "owner".into(),
        created_at: at,
        modified_by: "owner".into(),
        modified_at: at,
        is_deleted: false,
        values,
    }
}

async fn seed(store: &SqliteRecordStore) {
    let started = Instant::now();
    for t in 0..TENANTS {
        let tenant = format!("tenant-{t:03}");
        let acc_ids: Vec<String> = (0..ACCOUNTS).map(|_| mosaic_types::new_id()).collect();
        let ops: Vec<WriteOp> = acc_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                WriteOp::Insert(InsertOp {
                    record: row(
                        &format!("acc-{t}"),
                        id.clone(),
                        format!("Account {i}"),
                        vec![(
                            slot(SlotPool::String, 1),
                            Value::Text(INDUSTRIES[i % INDUSTRIES.len()].into()),
                        )],
                    ),
                    indexes: vec![spec(slot(SlotPool::String, 1), "Industry__c", true)],
                    auto_numbers: vec![],
                    ref_checks: vec![],
                    require_absent: None,
                    effects: Vec::new(),
                })
            })
            .collect();
        store
            .write(&tenant, ops, false)
            .await
            .expect("seed accounts");
        for chunk in 0..(CONTACTS / 4_500) {
            let ops: Vec<WriteOp> = (chunk * 4_500..(chunk + 1) * 4_500)
                .map(|i| {
                    WriteOp::Insert(InsertOp {
                        record: row(
                            &format!("con-{t}"),
                            mosaic_types::new_id(),
                            format!("Contact {i}"),
                            vec![
                                (
                                    slot(SlotPool::String, 1),
                                    Value::Text(acc_ids[i % ACCOUNTS].clone()),
                                ),
                                (
                                    slot(SlotPool::String, 2),
                                    Value::Text(format!("K{}", i % CODES)),
                                ),
                                (
                                    slot(SlotPool::String, 3),
                                    Value::Text(format!("B{}", i % BATCHES)),
                                ),
                                (
                                    slot(SlotPool::String, 4),
                                    Value::Text(format!("c{i}@example.test")),
                                ),
                                (
                                    slot(SlotPool::Number, 1),
                                    Value::Number(Decimal::new((i as i64 * 7919) % 100_000, 2)),
                                ),
                            ],
                        ),
                        indexes: vec![
                            spec(slot(SlotPool::String, 1), "Account__c", false),
                            spec(slot(SlotPool::String, 2), "Code__c", true),
                            spec(slot(SlotPool::String, 3), "Batch__c", true),
                        ],
                        auto_numbers: vec![],
                        ref_checks: vec![],
                        require_absent: None,
                        effects: Vec::new(),
                    })
                })
                .collect();
            store
                .write(&tenant, ops, false)
                .await
                .expect("seed contacts");
        }
        if (t + 1) % 10 == 0 {
            eprintln!(
                "seeded {} tenants ({} records) in {:.1?}",
                t + 1,
                (t + 1) * (ACCOUNTS + CONTACTS),
                started.elapsed()
            );
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(
    store: &Arc<SqliteRecordStore>,
    label: &str,
    iterations: usize,
    expect_rows: usize,
    soql: impl Fn(usize) -> String,
) {
    let ctx = PlanContext {
        today: NaiveDate::from_ymd_opt(2024, 6, 1).expect("date"),
        zone: chrono_tz::Tz::UTC,
        week_start: Weekday::Sun,
        include_deleted: false,
        fiscal_start_month: 1,
        user_id: None,
    };
    let schemas: Vec<Schema> = (0..TENANTS).map(schema).collect();
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations + 20 {
        let t = (i * 37) % TENANTS;
        let text = soql(i);
        let start = Instant::now();
        let planned = plan_query(&text, &schemas[t], &ctx).expect("plan");
        let rows = store
            .query(
                &format!("tenant-{t:03}"),
                Arc::new(planned.plan),
                Restrict::None,
                2_000,
                50_000,
            )
            .await
            .expect("query");
        let took = start.elapsed();
        assert_eq!(rows.total, expect_rows, "{text}");
        if i >= 20 {
            times.push(took);
        }
    }
    times.sort();
    println!(
        "{label}: n={iterations} p50={:.3?} p90={:.3?} p99={:.3?} max={:.3?}",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (dir, _guard) = match std::env::var("MOSAIC_BENCH_DIR") {
        Ok(d) => (std::path::PathBuf::from(d), None),
        Err(_) => {
            let t = tempfile::tempdir().expect("tempdir");
            (t.path().to_path_buf(), Some(t))
        }
    };
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join("records.sqlite");
    let fresh = !path.exists();
    let store = Arc::new(SqliteRecordStore::open(&path).expect("open"));
    if fresh {
        seed(&store).await;
    }
    let total = store.count("tenant-000", "con-0").await.expect("count") as usize;
    println!(
        "database: {} ({} tenants x {} records)",
        path.display(),
        TENANTS,
        ACCOUNTS + CONTACTS
    );
    assert_eq!(total, CONTACTS);
    measure(&store, "simple indexed query, 100 rows", 2_000, 100, |i| {
        format!(
            "SELECT Id, Name, Email__c, Amount__c FROM Contact__c WHERE Code__c = 'k{}'",
            i % CODES
        )
    })
    .await;
    measure(&store, "parent join + GROUP BY + SUM/AVG/COUNT over 1,000 rows", 300, INDUSTRIES.len(), |i| {
        format!(
            "SELECT Account__r.Industry__c, COUNT(Id), SUM(Amount__c), AVG(Amount__c) FROM Contact__c WHERE Batch__c = 'B{}' GROUP BY Account__r.Industry__c ORDER BY Account__r.Industry__c",
            i % BATCHES
        )
    })
    .await;
}
