//! What only the PostgreSQL backend has: migrations, the pool, and how
//! connection failures surface.

mod common;

use common::{test_database, TestDatabase};
use mosaic_store::MetaStore;
use mosaic_store_pg::bulk::BULK_MIGRATIONS;
use mosaic_store_pg::migrate::{BULK, METADATA, METADATA_MIGRATIONS, RECENT, RECENT_MIGRATIONS};
use mosaic_store_pg::{migrate, migrate_metadata, Migration, PgMetaStore, PgPool};
use mosaic_types::ErrorCode;

async fn versions(db: &TestDatabase) -> Vec<(String, i64)> {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query(
            "SELECT component, version FROM schema_version ORDER BY component, version",
            &[],
        )
        .await
        .expect("schema_version")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_record_their_versions() {
    let db = test_database().await;
    let pool = PgPool::new(&db.url, 2).unwrap();
    let latest = METADATA_MIGRATIONS.len() as i64;
    assert_eq!(migrate_metadata(&pool).await.unwrap(), latest);
    assert_eq!(migrate_metadata(&pool).await.unwrap(), latest, "idempotent");
    // Connecting migrates too, and finds nothing to do.
    let store = PgMetaStore::connect(&db.url, 2).await.unwrap();
    assert!(store.list_objects("t1").await.unwrap().is_empty());
    // The metadata database also carries the recent-items component.
    let mut expected: Vec<(String, i64)> =
        (1..=latest).map(|v| (METADATA.to_string(), v)).collect();
    expected.extend((1..=RECENT_MIGRATIONS.len() as i64).map(|v| (RECENT.to_string(), v)));
    expected.extend((1..=BULK_MIGRATIONS.len() as i64).map(|v| (BULK.to_string(), v)));
    expected.sort();
    assert_eq!(versions(&db).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrators_wait_for_each_other() {
    let db = test_database().await;
    let pools: Vec<PgPool> = (0..6).map(|_| PgPool::new(&db.url, 1).unwrap()).collect();
    let runs: Vec<_> = pools
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move { migrate_metadata(&p).await })
        })
        .collect();
    for r in runs {
        assert_eq!(r.await.unwrap().unwrap(), METADATA_MIGRATIONS.len() as i64);
    }
    assert_eq!(
        versions(&db).await.len(),
        METADATA_MIGRATIONS.len() + RECENT_MIGRATIONS.len() + BULK_MIGRATIONS.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_migration_applies_on_top_and_a_failing_one_leaves_nothing() {
    let db = test_database().await;
    let pool = PgPool::new(&db.url, 2).unwrap();
    const V1: Migration = Migration {
        version: 1,
        name: "t",
        sql: "CREATE TABLE probe (id TEXT PRIMARY KEY)",
    };
    const V2: Migration = Migration {
        version: 2,
        name: "t2",
        sql: "ALTER TABLE probe ADD COLUMN note TEXT",
    };
    const BROKEN: Migration = Migration {
        version: 3,
        name: "broken",
        sql: "ALTER TABLE probe ADD COLUMN extra TEXT; SELECT no_such_function()",
    };
    assert_eq!(migrate(&pool, "probe", &[V1]).await.unwrap(), 1);
    assert_eq!(migrate(&pool, "probe", &[V1, V2]).await.unwrap(), 2);
    let e = migrate(&pool, "probe", &[V1, V2, BROKEN])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UNKNOWN_EXCEPTION, "{e}");
    assert_eq!(
        versions(&db).await,
        [("probe".to_string(), 1), ("probe".to_string(), 2)],
        "the failed migration rolled back whole"
    );
    // An older build (knowing only V1) runs against the newer schema.
    assert_eq!(migrate(&pool, "probe", &[V1]).await.unwrap(), 2);
    let gap = Migration { version: 3, ..V1 };
    assert_eq!(
        migrate(&pool, "probe", &[V1, gap]).await.unwrap_err().code,
        ErrorCode::UNKNOWN_EXCEPTION,
        "numbers must not skip"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_service_unavailable() {
    // Nothing listens on port 1.
    let e = PgMetaStore::connect("postgres://postgres@127.0.0.1:1/mosaic", 2)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE, "{e}");
}

#[tokio::test]
async fn a_missing_database_is_service_unavailable() {
    let url = common::with_database(&common::admin_url(), "mosaic_test_does_not_exist");
    let e = PgMetaStore::connect(&url, 2).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE, "{e}");
}

#[tokio::test]
async fn bad_settings_are_invalid_input() {
    for (url, size) in [
        ("not a url at all://", 4),
        ("postgres://postgres@127.0.0.1/db", 0),
        (
            "postgres://postgres@127.0.0.1/db",
            mosaic_store_pg::pool::MAX_POOL_SIZE + 1,
        ),
    ] {
        let e = PgPool::new(url, size).unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_INPUT, "{url} {size}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pool_is_service_unavailable() {
    let db = test_database().await;
    let store = PgMetaStore::connect(&db.url, 2).await.unwrap();
    store.pool().close();
    let e = store.tenant("t1").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_service_unavailable_and_the_pool_replaces_it() {
    let db = test_database().await;
    let store = PgMetaStore::connect(&db.url, 2).await.unwrap();
    {
        let client = store.pool().client().await.unwrap();
        let e = client
            .simple_query("SELECT pg_terminate_backend(pg_backend_pid())")
            .await
            .unwrap_err();
        assert_eq!(
            mosaic_store_pg::pool::map_pg(&e).code,
            ErrorCode::SERVICE_UNAVAILABLE,
            "{e:?}"
        );
        let e = client.simple_query("SELECT 1").await.unwrap_err();
        assert_eq!(
            mosaic_store_pg::pool::map_pg(&e).code,
            ErrorCode::SERVICE_UNAVAILABLE,
            "{e:?}"
        );
    }
    // Every connection of the store dies (a failover, a restart).
    let (admin, conn) = tokio_postgres::connect(&common::admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db.name],
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // The pool drops dead connections when handing them out and opens new ones.
    assert!(store.tenant("t1").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_database_is_dropped_with_its_guard() {
    let db = test_database().await;
    let name = db.name.clone();
    let store = PgMetaStore::connect(&db.url, 2).await.unwrap();
    assert!(common::database_exists(&name).await);
    drop(db); // with the store's connections still open
    assert!(!common::database_exists(&name).await);
    drop(store);
}

// ---------- the records shard ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_records_its_migration_and_fails_unavailable_when_unreachable() {
    let db = test_database().await;
    let store = mosaic_store_pg::PgRecordStore::connect(&db.url, 2)
        .await
        .unwrap();
    let latest = mosaic_store_pg::migrate::records_migrations().len() as i64;
    assert_eq!(
        mosaic_store_pg::migrate_records(store.pool())
            .await
            .unwrap(),
        latest
    );
    assert!(versions(&db)
        .await
        .contains(&(mosaic_store_pg::migrate::RECORDS.to_string(), latest)));
    let e = mosaic_store_pg::PgRecordStore::connect("postgres://postgres@127.0.0.1:1/mosaic", 2)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE, "{e}");
    use mosaic_store::{QueryStore, RecordStore};
    store.pool().close();
    let e = store.count("t1", "o1").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE, "{e}");
    let e = store
        .search("t1", "x", &["o1".to_string()], 10, None)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SERVICE_UNAVAILABLE, "{e}");
}

/// A master deleted while details are inserted under it never leaves a
/// live detail behind: each insert either commits first (and the delete's
/// cascade takes it) or finds the master gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_deleted_during_detail_inserts_leaves_no_orphan() {
    use chrono::Utc;
    use mosaic_store::record_store::*;
    use mosaic_store::RecordStore;
    use mosaic_types::{FlexSlot, SlotPool, Value};
    use std::sync::Arc;
    let db = test_database().await;
    let store = Arc::new(
        mosaic_store_pg::PgRecordStore::connect(&db.url, 8)
            .await
            .unwrap(),
    );
    let link = FlexSlot::new(SlotPool::String, 1).unwrap();
    let row = |object: &str, id: &str, values: Vec<(FlexSlot, Value)>| RecordRow {
        id: id.into(),
        object_id: object.into(),
        name: Some(id.into()),
        owner_id: "u".into(),
        created_by: "u".into(),
        created_at: Utc::now(),
        modified_by: "u".into(),
        modified_at: Utc::now(),
        is_deleted: false,
        values,
    };
    // A master-detail field is always indexed (the runtime's index spec);
    // cascades find children through that pivot.
    let link_index = IndexSpec {
        slot: link,
        field: "Master__c".into(),
        unique: false,
        indexed: true,
        case_insensitive: false,
    };
    let insert = |record: RecordRow, checks: Vec<RefCheck>| {
        WriteOp::Insert(InsertOp {
            record,
            indexes: vec![link_index.clone()],
            auto_numbers: vec![],
            ref_checks: checks,
            require_absent: None,
            effects: vec![],
        })
    };
    for round in 0..5 {
        let master = format!("m{round}");
        store
            .write(
                "t",
                vec![insert(row("master", &master, vec![]), vec![])],
                true,
            )
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let store = store.clone();
            let op = insert(
                row(
                    "detail",
                    &format!("d{round}-{i}"),
                    vec![(link, Value::Text(master.clone()))],
                ),
                vec![RefCheck {
                    field: "Master__c".into(),
                    object_id: "master".into(),
                    id: master.clone(),
                }],
            );
            tasks.push(tokio::spawn(async move {
                store.write("t", vec![op], true).await
            }));
        }
        let delete = WriteOp::Delete(DeleteOp {
            object_id: "master".into(),
            id: master.clone(),
            deleted_by: "u".into(),
            deleted_at: Utc::now(),
            cascade: vec![CascadeSpec {
                object_id: "detail".into(),
                slot: link,
                children: vec![],
                clear: vec![],
            }],
            clear: vec![],
            effects: vec![],
        });
        store.write("t", vec![delete], true).await.unwrap()[0]
            .as_ref()
            .unwrap();
        for t in tasks {
            let r = t.await.unwrap().unwrap();
            if let Err(e) = &r[0] {
                assert_eq!(e.code, ErrorCode::INVALID_CROSS_REFERENCE_KEY, "{e}");
            }
        }
        assert_eq!(
            store.count("t", "detail").await.unwrap(),
            0,
            "round {round}"
        );
    }
}

/// A shard filled right after it was created gets its planner statistics
/// once the record tables have grown past what the planner knew, without
/// waiting for autovacuum: an indexed lookup then starts from the index
/// instead of scanning every record of the object for each index entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_refresh_the_planner_statistics() {
    use chrono::Utc;
    use mosaic_store::record_store::*;
    use mosaic_store::{IndexSpec, RecordStore};
    use mosaic_types::{FlexSlot, SlotPool, Value};
    use std::time::{Duration, Instant};
    let db = test_database().await;
    let store = mosaic_store_pg::PgRecordStore::connect(&db.url, 4)
        .await
        .unwrap();
    assert_eq!(store.planner_stats().runs(), 0);
    let bucket = FlexSlot::new(SlotPool::String, 1).unwrap();
    let spec = IndexSpec {
        slot: bucket,
        field: "Bucket__c".into(),
        unique: false,
        indexed: true,
        case_insensitive: true,
    };
    let total = mosaic_store_pg::planner_stats::MIN_ROWS as usize + 200;
    for chunk in 0..total / 200 {
        let ops = (0..200)
            .map(|i| {
                let n = chunk * 200 + i;
                WriteOp::Insert(InsertOp {
                    record: RecordRow {
                        id: format!("r{n:06}"),
                        object_id: "deal".into(),
                        name: Some(format!("deal {n}")),
                        owner_id: "u".into(),
                        created_by: "u".into(),
                        created_at: Utc::now(),
                        modified_by: "u".into(),
                        modified_at: Utc::now(),
                        is_deleted: false,
                        values: vec![(bucket, Value::Text(format!("b{:03}", n / 100)))],
                    },
                    indexes: vec![spec.clone()],
                    auto_numbers: vec![],
                    ref_checks: vec![],
                    require_absent: None,
                    effects: vec![],
                })
            })
            .collect();
        for r in store.write("t", ops, true).await.unwrap() {
            r.unwrap();
        }
    }
    assert_eq!(store.planner_stats().runs(), 1, "one ANALYZE past MIN_ROWS");
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let until = Instant::now() + Duration::from_secs(20);
    let analyzed = loop {
        let row = client
            .query_one(
                "SELECT reltuples::float8 FROM pg_class WHERE oid = 'object_records'::regclass",
                &[],
            )
            .await
            .unwrap();
        let n: f64 = row.get(0);
        if n >= 1_000.0 || Instant::now() > until {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(analyzed >= 1_000.0, "the planner knows {analyzed} records");
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT r.id FROM object_records r WHERE r.tenant_id = 't' AND r.object_id = 'deal' \
             AND r.is_deleted = FALSE AND r.id IN (SELECT record_id FROM record_index \
             WHERE tenant_id = 't' AND object_id = 'deal' AND slot = 'flex_string_1' AND value = 'b003') \
             ORDER BY r.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let text = plan.join("\n");
    let index_first = text
        .lines()
        .position(|l| l.contains("record_index"))
        .zip(text.lines().position(|l| l.contains("on object_records")))
        .is_some_and(|(i, r)| i < r);
    assert!(index_first, "the lookup starts from the index:\n{text}");
}
