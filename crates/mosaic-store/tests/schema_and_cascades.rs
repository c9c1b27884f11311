//! Cascade deletes and index builds on the SQLite shard: a master-detail
//! cascade finds children through the pivot index and runs in steps other
//! tenants' writes interleave with; a writer whose definition predates an
//! `indexed` / `unique` change still keeps the pivots the change built.

use chrono::{TimeZone, Utc};
use mosaic_store::record_store::CASCADE_BATCH;
use mosaic_store::CASCADE_CHILDREN_SQL;
use mosaic_store::{
    CascadeSpec, DeleteOp, IndexSpec, InsertOp, RecordRow, RecordStore, SqliteRecordStore, WriteOp,
    WriteResult,
};
use mosaic_types::{ErrorCode, FlexSlot, SlotPool, Value};
use std::sync::Arc;

const MASTER: &str = "obj-master";
const CHILD: &str = "obj-child";
const GRANDCHILD: &str = "obj-grandchild";

fn s(i: u16) -> FlexSlot {
    FlexSlot::new(SlotPool::String, i).unwrap()
}

/// The master-detail field of children and grandchildren (slot string 1).
fn md_spec() -> IndexSpec {
    IndexSpec {
        slot: s(1),
        field: "Parent__c".into(),
        unique: false,
        indexed: true,
        case_insensitive: false,
    }
}

fn code_spec(unique: bool) -> IndexSpec {
    IndexSpec {
        slot: s(2),
        field: "Code__c".into(),
        unique,
        indexed: !unique,
        case_insensitive: true,
    }
}

fn record(object: &str, values: Vec<(FlexSlot, Value)>, indexes: Vec<IndexSpec>) -> InsertOp {
    let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    InsertOp {
        record: RecordRow {
            id: mosaic_types::new_id(),
            object_id: object.into(),
            name: None,
            owner_id: "u".into(),
            created_by: "u".into(),
            created_at: at,
            modified_by: "u".into(),
            modified_at: at,
            is_deleted: false,
            values,
        },
        indexes,
        auto_numbers: vec![],
        ref_checks: vec![],
        require_absent: None,
        effects: vec![],
    }
}

async fn insert_all(store: &SqliteRecordStore, tenant: &str, ops: Vec<InsertOp>) -> Vec<String> {
    let ids: Vec<String> = ops.iter().map(|o| o.record.id.clone()).collect();
    for chunk in ops.chunks(1_000) {
        let res = store
            .write(
                tenant,
                chunk.iter().cloned().map(WriteOp::Insert).collect(),
                false,
            )
            .await
            .unwrap();
        assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    }
    ids
}

/// A master with `children` children; the first `with_grandchildren` of
/// them get two grandchildren each. Returns the master's id.
async fn family(
    store: &SqliteRecordStore,
    tenant: &str,
    children: usize,
    with_grandchildren: usize,
) -> String {
    let master = insert_all(store, tenant, vec![record(MASTER, vec![], vec![])]).await;
    let kids: Vec<InsertOp> = (0..children)
        .map(|_| {
            record(
                CHILD,
                vec![(s(1), Value::Text(master[0].clone()))],
                vec![md_spec()],
            )
        })
        .collect();
    let kid_ids = insert_all(store, tenant, kids).await;
    let grand: Vec<InsertOp> = kid_ids
        .iter()
        .take(with_grandchildren)
        .flat_map(|k| {
            (0..2).map(move |_| {
                record(
                    GRANDCHILD,
                    vec![(s(1), Value::Text(k.clone()))],
                    vec![md_spec()],
                )
            })
        })
        .collect();
    insert_all(store, tenant, grand).await;
    master[0].clone()
}

fn delete(id: &str) -> DeleteOp {
    DeleteOp {
        object_id: MASTER.into(),
        id: id.into(),
        deleted_by: "u".into(),
        deleted_at: Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
        cascade: vec![CascadeSpec {
            object_id: CHILD.into(),
            slot: s(1),
            children: vec![CascadeSpec {
                object_id: GRANDCHILD.into(),
                slot: s(1),
                children: vec![],
                clear: vec![],
            }],
            clear: vec![],
        }],
        clear: vec![],
        effects: vec![],
    }
}

fn open() -> (tempfile::TempDir, Arc<SqliteRecordStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteRecordStore::open(&dir.path().join("r.sqlite")).unwrap());
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_removes_every_descendant_through_the_pivot_index() {
    let (dir, store) = open();
    // Another master of the same tenant and another tenant's family: untouched.
    let keep = family(&store, "t1", 30, 5).await;
    family(&store, "t2", 500, 0).await;
    let master = family(&store, "t1", 1_000, 300).await;
    let res = store
        .write("t1", vec![WriteOp::Delete(delete(&master))], true)
        .await
        .unwrap();
    assert_eq!(
        res[0].as_ref().unwrap(),
        &WriteResult::Deleted {
            id: master.clone(),
            cascaded: 1_000 + 600
        }
    );
    assert!(
        store
            .get("t1", MASTER, &master, &[])
            .await
            .unwrap()
            .unwrap()
            .is_deleted
    );
    assert_eq!(store.count("t1", CHILD).await.unwrap(), 30);
    assert_eq!(store.count("t1", GRANDCHILD).await.unwrap(), 10);
    assert_eq!(store.count("t2", CHILD).await.unwrap(), 500);
    assert!(
        !store
            .get("t1", MASTER, &keep, &[])
            .await
            .unwrap()
            .unwrap()
            .is_deleted
    );

    // The children are found through the pivot's primary key and each
    // fetched by its id: no scan of the child object's rows.
    let conn = rusqlite::Connection::open(dir.path().join("r.sqlite")).unwrap();
    let mut st = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {CASCADE_CHILDREN_SQL}"))
        .unwrap();
    let plan: Vec<String> = st
        .query_map(
            rusqlite::params!["t1", CHILD, s(1).column(), master, 200],
            |r| r.get::<_, String>(3),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let text = plan.join("\n");
    println!("EXPLAIN QUERY PLAN of the cascade:\n{text}");
    assert!(
        plan.iter()
            .any(|l| l.contains("SEARCH i USING PRIMARY KEY") && l.contains("value=?")),
        "{text}"
    );
    assert!(
        plan.iter()
            .any(|l| l.starts_with("SEARCH r USING INDEX object_records") && l.ends_with("id=?)")),
        "{text}"
    );
    assert!(!plan.iter().any(|l| l.contains("SCAN")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_write_completes_before_a_large_cascade_ends() {
    let (_dir, store) = open();
    const CHILDREN: usize = 6_000;
    const { assert!(CHILDREN / CASCADE_BATCH >= 20) };
    let master = family(&store, "big", CHILDREN, 0).await;
    let deleting = {
        let store = store.clone();
        let master = master.clone();
        tokio::spawn(async move {
            store
                .write("big", vec![WriteOp::Delete(delete(&master))], true)
                .await
        })
    };
    // Wait until the cascade has committed its first step.
    loop {
        let left = store.count("big", CHILD).await.unwrap();
        if left < CHILDREN as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let other = store
        .write(
            "small",
            vec![WriteOp::Insert(record(MASTER, vec![], vec![]))],
            true,
        )
        .await
        .unwrap();
    assert!(other[0].is_ok());
    // The other tenant's write is done; the cascade is not: the master is
    // still live and some children are still there.
    let m = store
        .get("big", MASTER, &master, &[])
        .await
        .unwrap()
        .unwrap();
    assert!(!m.is_deleted, "the cascade ended before the other write");
    assert!(store.count("big", CHILD).await.unwrap() > 0);
    let res = deleting.await.unwrap().unwrap();
    assert_eq!(
        res[0].as_ref().unwrap(),
        &WriteResult::Deleted {
            id: master.clone(),
            cascaded: CHILDREN
        }
    );
    assert_eq!(store.count("big", CHILD).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_with_an_older_definition_keep_the_pivots_of_an_index_build() {
    let (_dir, store) = open();
    let code = |i: usize| Value::Text(format!("Code-{i}"));
    // Records written before the field is indexed.
    let before: Vec<InsertOp> = (0..300)
        .map(|i| record(CHILD, vec![(s(2), code(i))], vec![]))
        .collect();
    let mut ids = insert_all(&store, "t", before).await;
    // The build runs while writers that do not know of the index insert.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..50 {
                    let op = record(CHILD, vec![(s(2), code(1_000 + w * 100 + i))], vec![]);
                    ids.push(op.record.id.clone());
                    let r = store
                        .write("t", vec![WriteOp::Insert(op)], true)
                        .await
                        .unwrap();
                    assert!(r[0].is_ok());
                }
                ids
            })
        })
        .collect();
    store
        .build_index("t", CHILD, &code_spec(false))
        .await
        .unwrap();
    for w in writers {
        ids.extend(w.await.unwrap());
    }
    // And a writer with the old definition after the build.
    let late = record(CHILD, vec![(s(2), code(5_000))], vec![]);
    ids.push(late.record.id.clone());
    insert_all(&store, "t", vec![late]).await;
    // Every record is found through the index by its code.
    let mut found = 0;
    for (i, id) in ids.iter().enumerate() {
        let n = if i < 300 {
            i
        } else if i == ids.len() - 1 {
            5_000
        } else {
            let k = i - 300;
            1_000 + (k / 50) * 100 + k % 50
        };
        let hit = store
            .find_by_index("t", CHILD, &code_spec(false), &code(n))
            .await
            .unwrap();
        assert_eq!(hit, vec![id.clone()], "code {n}");
        found += 1;
    }
    assert_eq!(found, 501);

    // An old-definition update moves the pivot row with the value.
    let upd = mosaic_store::UpdateOp {
        object_id: CHILD.into(),
        id: ids[0].clone(),
        name: None,
        owner_id: None,
        modified_by: "u".into(),
        modified_at: Utc::now(),
        set: vec![(s(2), code(9_999))],
        indexes: vec![],
        ref_checks: vec![],
        effects: vec![],
        unmodified_since: None,
    };
    let r = store
        .write("t", vec![WriteOp::Update(upd)], true)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let spec = code_spec(false);
    assert!(store
        .find_by_index("t", CHILD, &spec, &code(0))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .find_by_index("t", CHILD, &spec, &code(9_999))
            .await
            .unwrap(),
        vec![ids[0].clone()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_with_an_older_definition_cannot_break_a_new_unique_constraint() {
    let (_dir, store) = open();
    let v = |t: &str| Value::Text(t.into());
    insert_all(
        &store,
        "t",
        vec![record(CHILD, vec![(s(2), v("A-1"))], vec![])],
    )
    .await;
    store
        .build_index("t", CHILD, &code_spec(true))
        .await
        .unwrap();
    // The writer's definition does not know the field is unique.
    let dup = record(CHILD, vec![(s(2), v("a-1"))], vec![]);
    let r = store
        .write("t", vec![WriteOp::Insert(dup)], true)
        .await
        .unwrap();
    let e = r[0].as_ref().unwrap_err();
    assert_eq!(e.code, ErrorCode::DUPLICATE_VALUE, "{e:?}");
    assert_eq!(e.fields, vec!["Code__c".to_string()]);
    let ok = record(CHILD, vec![(s(2), v("A-2"))], vec![]);
    assert!(store
        .write("t", vec![WriteOp::Insert(ok)], true)
        .await
        .unwrap()[0]
        .is_ok());

    // Dropping the constraint: an old-definition writer no longer enforces it.
    store.drop_index("t", CHILD, s(2)).await.unwrap();
    let again = record(CHILD, vec![(s(2), v("A-2"))], vec![code_spec(true)]);
    assert!(store
        .write("t", vec![WriteOp::Insert(again)], true)
        .await
        .unwrap()[0]
        .is_ok());
}
