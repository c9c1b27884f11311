//! The planner's SQL on the SQLite shard: an indexed equality filter goes
//! through the pivot table (EXPLAIN QUERY PLAN at 100,000 records over
//! several tenants), and planned statements run with the right results.

use chrono::{NaiveDate, TimeZone, Utc, Weekday};
use mosaic_store::plan::{plan_query, PlanContext, Schema, SchemaField, SchemaObject};
use mosaic_store::query_store::Restrict;
use mosaic_store::{
    IndexSpec, InsertOp, QueryStore, RecordRow, RecordStore, SqliteRecordStore, WriteOp,
};
use mosaic_types::{DataType, FlexSlot, SlotPool, Value};
use rust_decimal::Decimal;
use std::sync::Arc;

const OBJECT: &str = "obj-account";

fn slot(pool: SlotPool, i: u16) -> FlexSlot {
    FlexSlot::new(pool, i).unwrap()
}

fn schema() -> Schema {
    let f = |name: &str, t: DataType, s: FlexSlot, indexed: bool| SchemaField {
        api_name: name.into(),
        data_type: t,
        slot: Some(s),
        indexed,
        unique: false,
        lookup_object_id: None,
        relationship_name: None,
        child_relationship_name: None,
        rollup: None,
    };
    Schema {
        objects: vec![SchemaObject {
            id: OBJECT.into(),
            api_name: "Account__c".into(),
            fields: vec![
                f("Code__c", DataType::Text, slot(SlotPool::String, 1), true),
                f("Plain__c", DataType::Text, slot(SlotPool::String, 2), false),
                f(
                    "Amount__c",
                    DataType::Number,
                    slot(SlotPool::Number, 1),
                    false,
                ),
            ],
        }],
    }
}

fn ctx() -> PlanContext {
    PlanContext {
        today: NaiveDate::from_ymd_opt(2024, 1, 31).unwrap(),
        zone: chrono_tz::Tz::UTC,
        week_start: Weekday::Sun,
        include_deleted: false,
        fiscal_start_month: 1,
        user_id: None,
    }
}

fn insert(i: usize) -> WriteOp {
    let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    WriteOp::Insert(InsertOp {
        record: RecordRow {
            id: mosaic_types::new_id(),
            object_id: OBJECT.into(),
            name: Some(format!("Account {i}")),
            owner_id: "u".into(),
            created_by: "u".into(),
            created_at: at,
            modified_by: "u".into(),
            modified_at: at,
            is_deleted: false,
            values: vec![
                (
                    slot(SlotPool::String, 1),
                    Value::Text(format!("C{}", i % 1000)),
                ),
                (
                    slot(SlotPool::String, 2),
                    Value::Text(format!("P{}", i % 1000)),
                ),
                (
                    slot(SlotPool::Number, 1),
                    Value::Number(Decimal::from(i as i64 % 97)),
                ),
            ],
        },
        indexes: vec![IndexSpec {
            slot: slot(SlotPool::String, 1),
            field: "Code__c".into(),
            unique: false,
            indexed: true,
            case_insensitive: true,
        }],
        auto_numbers: vec![],
        ref_checks: vec![],
        require_absent: None,
        effects: Vec::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_equality_uses_the_pivot_index_at_100k_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteRecordStore::open(&dir.path().join("r.sqlite")).unwrap());
    const TENANTS: usize = 5;
    const PER_TENANT: usize = 20_000;
    for t in 0..TENANTS {
        let tenant = format!("tenant-{t}");
        for chunk in 0..(PER_TENANT / 5_000) {
            let ops: Vec<WriteOp> = (0..5_000).map(|i| insert(chunk * 5_000 + i)).collect();
            let res = store.write(&tenant, ops, false).await.unwrap();
            assert!(res.iter().all(|r| r.is_ok()));
        }
    }
    let planned = plan_query(
        "SELECT Id, Name FROM Account__c WHERE Code__c = 'c7'",
        &schema(),
        &ctx(),
    )
    .unwrap();
    let plan = Arc::new(planned.plan.clone());
    let (sql, params) = store.statement("tenant-3", &plan).unwrap();
    assert!(sql.contains("record_index"), "{sql}");
    assert!(
        !params.iter().any(|p| p.contains("c7") && p != "'c7'"),
        "{params:?}"
    );
    let explain = store.explain("tenant-3", plan.clone()).await.unwrap();
    let text = explain.join("\n");
    println!("EXPLAIN QUERY PLAN {sql}\n{text}");
    // The pivot's primary key serves the filter, the record's primary key the fetch.
    assert!(
        text.contains("record_index USING PRIMARY KEY")
            || text.contains("USING COVERING INDEX sqlite_autoindex_record_index"),
        "{text}"
    );
    assert!(
        text.contains("object_records_pk") || text.contains("USING INDEX object_records"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("SCAN r")),
        "full scan of object_records:\n{text}"
    );
    // And it answers right: 20 of tenant-3's records have code C7 (case-insensitive).
    let rows = store
        .query("tenant-3", plan, Restrict::None, 100, 50_000)
        .await
        .unwrap();
    assert_eq!(rows.total, PER_TENANT / 1000);

    // A non-indexed filter on the same data is a scan of the tenant's object (contrast).
    let planned = plan_query(
        "SELECT Id FROM Account__c WHERE Plain__c = 'p7'",
        &schema(),
        &ctx(),
    )
    .unwrap();
    let explain = store
        .explain("tenant-3", Arc::new(planned.plan.clone()))
        .await
        .unwrap()
        .join("\n");
    assert!(!explain.contains("record_index"), "{explain}");
    let rows = store
        .query(
            "tenant-3",
            Arc::new(planned.plan),
            Restrict::None,
            100,
            50_000,
        )
        .await
        .unwrap();
    assert_eq!(rows.total, PER_TENANT / 1000);

    // Exact decimal aggregates in SQL.
    let planned = plan_query("SELECT SUM(Amount__c) s, AVG(Amount__c) a, MAX(Amount__c) m, COUNT(Id) FROM Account__c WHERE Code__c = 'C5'", &schema(), &ctx()).unwrap();
    let rows = store
        .query(
            "tenant-0",
            Arc::new(planned.plan),
            Restrict::None,
            10,
            50_000,
        )
        .await
        .unwrap();
    // i in {5, 1005, …, 19005}: i % 97.
    let vals: Vec<i64> = (0..20).map(|k| (k * 1000 + 5) % 97).collect();
    let sum: i64 = vals.iter().sum();
    assert_eq!(rows.rows[0][0], Value::Number(Decimal::from(sum)));
    assert_eq!(
        rows.rows[0][1],
        Value::Number(Decimal::from(sum) / Decimal::from(20))
    );
    assert_eq!(
        rows.rows[0][2],
        Value::Number(Decimal::from(*vals.iter().max().unwrap()))
    );
    assert_eq!(rows.rows[0][3], Value::Number(Decimal::from(20)));
}
