//! Shard conformance: the behaviours of the record, automation and share
//! stores, written once over the traits and run against SQLite (the
//! reference) and PostgreSQL.

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::Shard;
use mosaic_store::automation::{DEAD, PENDING, TIME_TRIGGER};
use mosaic_store::record_store::*;
use mosaic_store::sharing::{Principal, ShareAccess, ShareCause, ShareRow};
use mosaic_store::{Effect, HistoryRow, OutboxEntry};
use mosaic_types::{ErrorCode, FlexSlot, MosaicError, SlotPool, Value};
use rust_decimal::Decimal;
use std::str::FromStr;

const T: &str = "tenant-a";
const OTHER: &str = "tenant-b";
const ACC: &str = "obj-account";
const CON: &str = "obj-contact";

fn slot(pool: SlotPool, i: u16) -> FlexSlot {
    FlexSlot::new(pool, i).expect("slot")
}
fn s(i: u16) -> FlexSlot {
    slot(SlotPool::String, i)
}
fn n(i: u16) -> FlexSlot {
    slot(SlotPool::Number, i)
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 123_456_789)
        .single()
        .expect("valid time")
}
fn stored(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + secs, 123_000_000)
        .single()
        .expect("valid time")
}

fn text(v: &str) -> Value {
    Value::Text(v.into())
}
fn num(v: &str) -> Value {
    Value::Number(Decimal::from_str(v).expect("decimal"))
}

fn row(object: &str, id: &str, name: &str, values: Vec<(FlexSlot, Value)>) -> RecordRow {
    RecordRow {
        id: id.into(),
        object_id: object.into(),
        name: Some(name.into()),
        owner_id: "u1".into(),
        created_by: "u1".into(),
        created_at: at(0),
        modified_by: "u1".into(),
        modified_at: at(0),
        is_deleted: false,
        values,
    }
}

fn insert(record: RecordRow) -> InsertOp {
    InsertOp {
        record,
        indexes: Vec::new(),
        auto_numbers: Vec::new(),
        ref_checks: Vec::new(),
        require_absent: None,
        effects: Vec::new(),
    }
}

fn code_spec() -> IndexSpec {
    IndexSpec {
        slot: s(3),
        field: "Code__c".into(),
        unique: true,
        indexed: true,
        case_insensitive: true,
    }
}

fn industry_spec() -> IndexSpec {
    IndexSpec {
        slot: s(1),
        field: "Industry__c".into(),
        unique: false,
        indexed: true,
        case_insensitive: true,
    }
}

fn lookup_spec() -> IndexSpec {
    IndexSpec {
        slot: s(1),
        field: "Account__c".into(),
        unique: false,
        indexed: true,
        case_insensitive: false,
    }
}

/// An account with a unique code and an indexed industry.
fn account(id: &str, code: &str, industry: &str) -> WriteOp {
    let mut op = insert(row(
        ACC,
        id,
        &format!("Account {id}"),
        vec![
            (s(1), text(industry)),
            (s(3), text(code)),
            (n(1), num("10.50")),
        ],
    ));
    op.indexes = vec![industry_spec(), code_spec()];
    WriteOp::Insert(op)
}

/// A contact (master-detail child) of `account`.
fn contact(id: &str, account: &str) -> WriteOp {
    let mut op = insert(row(
        CON,
        id,
        &format!("Contact {id}"),
        vec![(s(1), text(account))],
    ));
    op.indexes = vec![lookup_spec()];
    op.ref_checks = vec![RefCheck {
        field: "Account__c".into(),
        object_id: ACC.into(),
        id: account.into(),
    }];
    WriteOp::Insert(op)
}

fn update(
    object: &str,
    id: &str,
    set: Vec<(FlexSlot, Value)>,
    indexes: Vec<IndexSpec>,
) -> UpdateOp {
    UpdateOp {
        object_id: object.into(),
        id: id.into(),
        name: None,
        owner_id: None,
        modified_by: "u2".into(),
        modified_at: at(60),
        set,
        indexes,
        ref_checks: Vec::new(),
        effects: Vec::new(),
        unmodified_since: None,
    }
}

fn delete(object: &str, id: &str) -> DeleteOp {
    DeleteOp {
        object_id: object.into(),
        id: id.into(),
        deleted_by: "u2".into(),
        deleted_at: at(120),
        cascade: vec![CascadeSpec {
            object_id: CON.into(),
            slot: s(1),
            children: Vec::new(),
            clear: Vec::new(),
        }],
        clear: Vec::new(),
        effects: Vec::new(),
    }
}

fn code_of<T: std::fmt::Debug>(r: &Result<T, MosaicError>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code,
    }
}

async fn write_ok(sh: &Shard, ops: Vec<WriteOp>) -> Vec<WriteResult> {
    sh.records
        .write(T, ops, true)
        .await
        .expect("write")
        .into_iter()
        .map(|r| r.expect("op"))
        .collect()
}

// ---------- records ----------

async fn records_are_written_read_updated_and_soft_deleted(sh: &Shard) {
    let mut op = insert(row(
        ACC,
        "a1",
        "Acme",
        vec![
            (s(1), text("Energy")),
            (n(1), num("-1234.5600")),
            (
                slot(SlotPool::Date, 1),
                Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            ),
            (slot(SlotPool::Datetime, 1), Value::Datetime(at(5))),
            (slot(SlotPool::Boolean, 1), Value::Boolean(true)),
            (slot(SlotPool::Clob, 1), text("long ☃ text")),
        ],
    ));
    op.indexes = vec![industry_spec()];
    write_ok(sh, vec![WriteOp::Insert(op)]).await;
    let slots = [
        s(1),
        n(1),
        slot(SlotPool::Date, 1),
        slot(SlotPool::Datetime, 1),
        slot(SlotPool::Boolean, 1),
        slot(SlotPool::Clob, 1),
        s(2),
    ];
    let got = sh
        .records
        .get(T, ACC, "a1", &slots)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(got.created_at, stored(0), "{}", sh.backend);
    assert_eq!(got.value(n(1)), Some(&num("-1234.56")));
    assert_eq!(
        got.value(slot(SlotPool::Datetime, 1)),
        Some(&Value::Datetime(stored(5)))
    );
    assert_eq!(
        got.value(slot(SlotPool::Boolean, 1)),
        Some(&Value::Boolean(true))
    );
    assert_eq!(got.value(s(2)), Some(&Value::Null));
    assert_eq!(
        got.value(slot(SlotPool::Clob, 1)),
        Some(&text("long ☃ text"))
    );
    assert!(sh
        .records
        .get(OTHER, ACC, "a1", &slots)
        .await
        .unwrap()
        .is_none());
    assert!(sh
        .records
        .get(T, CON, "a1", &slots)
        .await
        .unwrap()
        .is_none());

    let mut u = update(
        ACC,
        "a1",
        vec![(s(1), text("Mining")), (n(1), Value::Null)],
        vec![industry_spec()],
    );
    u.name = Some(None);
    u.owner_id = Some("u9".into());
    write_ok(sh, vec![WriteOp::Update(u)]).await;
    let got = sh.records.get(T, ACC, "a1", &slots).await.unwrap().unwrap();
    assert_eq!((got.name.clone(), got.owner_id.as_str()), (None, "u9"));
    assert_eq!(got.modified_at, stored(60));
    assert_eq!(got.value(n(1)), Some(&Value::Null));
    assert!(sh
        .records
        .find_by_index(T, ACC, &industry_spec(), &text("energy"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        sh.records
            .find_by_index(T, ACC, &industry_spec(), &text("MINING"))
            .await
            .unwrap(),
        vec!["a1".to_string()]
    );
    assert_eq!(sh.records.count(T, ACC).await.unwrap(), 1);
    assert_eq!(
        sh.records.locate(T, "a1").await.unwrap().as_deref(),
        Some(ACC)
    );

    let r = sh
        .records
        .write(T, vec![WriteOp::Delete(delete(ACC, "a1"))], true)
        .await
        .unwrap();
    assert_eq!(
        r[0],
        Ok(WriteResult::Deleted {
            id: "a1".into(),
            cascaded: 0
        })
    );
    let got = sh.records.get(T, ACC, "a1", &slots).await.unwrap().unwrap();
    assert!(got.is_deleted);
    assert_eq!(sh.records.locate(T, "a1").await.unwrap(), None);
    assert_eq!(sh.records.count(T, ACC).await.unwrap(), 0);
    assert!(sh
        .records
        .find_by_index(T, ACC, &industry_spec(), &text("mining"))
        .await
        .unwrap()
        .is_empty());
    assert!(sh
        .records
        .get_many(T, ACC, &["a1".into()], &slots)
        .await
        .unwrap()
        .is_empty());
    let again = sh
        .records
        .write(T, vec![WriteOp::Delete(delete(ACC, "a1"))], true)
        .await
        .unwrap();
    assert_eq!(code_of(&again[0]), ErrorCode::NOT_FOUND);
    let upd = sh
        .records
        .write(
            T,
            vec![WriteOp::Update(update(ACC, "zz", vec![], vec![]))],
            true,
        )
        .await
        .unwrap();
    assert_eq!(code_of(&upd[0]), ErrorCode::NOT_FOUND);
}

async fn unique_values_are_refused_naming_the_field(sh: &Shard) {
    write_ok(sh, vec![account("a1", "X-1", "Energy")]).await;
    let r = sh
        .records
        .write(T, vec![account("a2", "x-1", "Energy")], true)
        .await
        .unwrap();
    let e = r[0].clone().unwrap_err();
    assert_eq!(e.code, ErrorCode::DUPLICATE_VALUE, "{}", sh.backend);
    assert_eq!(e.fields, vec!["Code__c".to_string()]);
    assert!(e.message.contains("a1"), "{}", e.message);
    // Another tenant may use the value.
    let r = sh
        .records
        .write(OTHER, vec![account("a2", "X-1", "Energy")], true)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    // An update onto a taken value fails; onto its own value succeeds.
    write_ok(sh, vec![account("a3", "X-3", "Energy")]).await;
    let r = sh
        .records
        .write(
            T,
            vec![WriteOp::Update(update(
                ACC,
                "a3",
                vec![(s(3), text("X-1"))],
                vec![code_spec()],
            ))],
            true,
        )
        .await
        .unwrap();
    assert_eq!(code_of(&r[0]), ErrorCode::DUPLICATE_VALUE);
    let r = sh
        .records
        .write(
            T,
            vec![WriteOp::Update(update(
                ACC,
                "a3",
                vec![(s(3), text("x-3"))],
                vec![code_spec()],
            ))],
            true,
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    // A deleted record's value is free again.
    write_ok(sh, vec![WriteOp::Delete(delete(ACC, "a1"))]).await;
    write_ok(sh, vec![account("a4", "X-1", "Energy")]).await;
    // Upsert's create branch: an existing live value is a duplicate.
    let mut op = insert(row(ACC, "a5", "Up", vec![(s(3), text("X-9"))]));
    op.require_absent = Some((code_spec(), text("x-3")));
    let r = sh
        .records
        .write(T, vec![WriteOp::Insert(op)], true)
        .await
        .unwrap();
    assert_eq!(code_of(&r[0]), ErrorCode::DUPLICATE_VALUE);
}

async fn all_or_none_batches_roll_back_together(sh: &Shard) {
    let ops = vec![
        account("a1", "C1", "E"),
        account("a2", "C1", "E"),
        account("a3", "C3", "E"),
    ];
    let r = sh.records.write(T, ops.clone(), true).await.unwrap();
    assert_eq!(
        code_of(&r[0]),
        ErrorCode::ALL_OR_NONE_OPERATION_ROLLED_BACK,
        "{}",
        sh.backend
    );
    assert_eq!(code_of(&r[1]), ErrorCode::DUPLICATE_VALUE);
    assert_eq!(code_of(&r[2]), ErrorCode::ALL_OR_NONE_OPERATION_ROLLED_BACK);
    assert_eq!(sh.records.count(T, ACC).await.unwrap(), 0);
    assert!(sh
        .records
        .find_by_index(T, ACC, &code_spec(), &text("c1"))
        .await
        .unwrap()
        .is_empty());
    // Without all-or-none each op stands alone.
    let r = sh.records.write(T, ops, false).await.unwrap();
    assert!(r[0].is_ok() && r[2].is_ok());
    assert_eq!(code_of(&r[1]), ErrorCode::DUPLICATE_VALUE);
    assert_eq!(sh.records.count(T, ACC).await.unwrap(), 2);
    assert!(sh.records.get(T, ACC, "a2", &[]).await.unwrap().is_none());
}

fn numbered(id: &str) -> WriteOp {
    let mut op = insert(row(ACC, id, "", vec![]));
    op.record.name = None;
    let date = op.record.created_at.date_naive();
    op.auto_numbers = vec![
        AutoNumberSpec {
            slot: None,
            counter: "f-name".into(),
            format: "INV-{0000}".into(),
            start: 1,
            date,
        },
        AutoNumberSpec {
            slot: Some(s(4)),
            counter: "f-ref".into(),
            format: "{YYYY}-{0}".into(),
            start: 100,
            date,
        },
    ];
    WriteOp::Insert(op)
}

async fn auto_numbers_are_gap_free(sh: &Shard) {
    write_ok(sh, vec![numbered("a1"), numbered("a2")]).await;
    // A rolled-back batch gives its numbers back.
    let r = sh
        .records
        .write(T, vec![numbered("a3"), numbered("a1")], true)
        .await
        .unwrap();
    assert!(r[1].is_err());
    write_ok(sh, vec![numbered("a4")]).await;
    let rows = sh
        .records
        .get_many(T, ACC, &["a1".into(), "a2".into(), "a4".into()], &[s(4)])
        .await
        .unwrap();
    let mut got: Vec<(String, Option<String>, Option<&Value>)> = rows
        .iter()
        .map(|r| (r.id.clone(), r.name.clone(), r.value(s(4))))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            (
                "a1".into(),
                Some("INV-0001".into()),
                Some(&text("2026-100"))
            ),
            (
                "a2".into(),
                Some("INV-0002".into()),
                Some(&text("2026-101"))
            ),
            (
                "a4".into(),
                Some("INV-0003".into()),
                Some(&text("2026-102"))
            ),
        ],
        "{}",
        sh.backend
    );
}

async fn concurrent_inserts_draw_distinct_numbers(sh: &Shard) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let records = sh.records.clone();
        tasks.push(tokio::spawn(async move {
            records
                .write(T, vec![numbered(&format!("c{i:02}"))], true)
                .await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap()[0].is_ok());
    }
    let ids: Vec<String> = (0..16).map(|i| format!("c{i:02}")).collect();
    let mut names: Vec<String> = sh
        .records
        .get_many(T, ACC, &ids, &[])
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| r.name)
        .collect();
    names.sort();
    let expected: Vec<String> = (1..=16).map(|i| format!("INV-{i:04}")).collect();
    assert_eq!(names, expected, "{}", sh.backend);
}

async fn references_cascades_and_cleared_lookups(sh: &Shard) {
    write_ok(sh, vec![account("a1", "C1", "E"), account("a2", "C2", "E")]).await;
    let r = sh
        .records
        .write(T, vec![contact("k0", "nope")], true)
        .await
        .unwrap();
    let e = r[0].clone().unwrap_err();
    assert_eq!(
        (e.code, e.fields.clone()),
        (
            ErrorCode::INVALID_CROSS_REFERENCE_KEY,
            vec!["Account__c".to_string()]
        )
    );
    write_ok(
        sh,
        vec![
            contact("k1", "a1"),
            contact("k2", "a1"),
            contact("k3", "a2"),
        ],
    )
    .await;
    // A lookup from another account record (Parent__c, string 5) to a1.
    let mut op = insert(row(ACC, "a3", "Child account", vec![(s(5), text("a1"))]));
    op.indexes = vec![IndexSpec {
        slot: s(5),
        field: "Parent__c".into(),
        unique: false,
        indexed: true,
        case_insensitive: false,
    }];
    write_ok(sh, vec![WriteOp::Insert(op)]).await;
    let mut d = delete(ACC, "a1");
    d.clear = vec![LookupRef {
        object_id: ACC.into(),
        slot: s(5),
    }];
    let r = write_ok(sh, vec![WriteOp::Delete(d)]).await;
    assert_eq!(
        r[0],
        WriteResult::Deleted {
            id: "a1".into(),
            cascaded: 2
        },
        "{}",
        sh.backend
    );
    assert_eq!(sh.records.count(T, CON).await.unwrap(), 1);
    assert!(
        sh.records
            .get(T, CON, "k1", &[])
            .await
            .unwrap()
            .unwrap()
            .is_deleted
    );
    let a3 = sh
        .records
        .get(T, ACC, "a3", &[s(5)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a3.value(s(5)), Some(&Value::Null));
    let parent_spec = IndexSpec {
        slot: s(5),
        field: "Parent__c".into(),
        unique: false,
        indexed: true,
        case_insensitive: false,
    };
    assert!(sh
        .records
        .find_by_index(T, ACC, &parent_spec, &text("a1"))
        .await
        .unwrap()
        .is_empty());
    // A deleted record cannot be referred to.
    let r = sh
        .records
        .write(T, vec![contact("k4", "a1")], true)
        .await
        .unwrap();
    assert_eq!(code_of(&r[0]), ErrorCode::INVALID_CROSS_REFERENCE_KEY);
    assert_eq!(
        sh.records
            .find_by_index(T, CON, &lookup_spec(), &text("a2"))
            .await
            .unwrap(),
        vec!["k3".to_string()]
    );
}

async fn slots_and_indexes_are_maintained_in_bulk(sh: &Shard) {
    write_ok(
        sh,
        vec![
            account("a1", "C1", "Energy"),
            account("a2", "C2", "energy"),
            account("a3", "C3", "Retail"),
        ],
    )
    .await;
    assert_eq!(sh.records.max_text_len(T, ACC, s(1)).await.unwrap(), 6);
    let mut ids = sh
        .records
        .find_by_index(T, ACC, &industry_spec(), &text("ENERGY"))
        .await
        .unwrap();
    ids.sort();
    assert_eq!(ids, vec!["a1".to_string(), "a2".to_string()]);
    // A unique index over duplicate data fails and changes nothing.
    let unique_industry = IndexSpec {
        unique: true,
        ..industry_spec()
    };
    let e = sh
        .records
        .build_index(T, ACC, &unique_industry)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.fields.clone()),
        (ErrorCode::DUPLICATE_VALUE, vec!["Industry__c".to_string()]),
        "{}",
        sh.backend
    );
    assert_eq!(
        sh.records
            .find_by_index(T, ACC, &industry_spec(), &text("energy"))
            .await
            .unwrap()
            .len(),
        2
    );
    sh.records.drop_index(T, ACC, s(1)).await.unwrap();
    assert!(sh
        .records
        .find_by_index(T, ACC, &industry_spec(), &text("energy"))
        .await
        .unwrap()
        .is_empty());
    sh.records
        .build_index(T, ACC, &industry_spec())
        .await
        .unwrap();
    assert_eq!(
        sh.records
            .find_by_index(T, ACC, &industry_spec(), &text("energy"))
            .await
            .unwrap()
            .len(),
        2
    );
    let flag = slot(SlotPool::Boolean, 2);
    sh.records
        .fill_nulls(T, ACC, flag, &Value::Boolean(false))
        .await
        .unwrap();
    let got = sh
        .records
        .get(T, ACC, "a2", &[flag, s(1)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.value(flag), Some(&Value::Boolean(false)));
    sh.records.clear_slot(T, ACC, s(1)).await.unwrap();
    assert_eq!(sh.records.max_text_len(T, ACC, s(1)).await.unwrap(), 0);
    assert!(sh
        .records
        .find_by_index(T, ACC, &industry_spec(), &text("retail"))
        .await
        .unwrap()
        .is_empty());
    sh.records.purge_object(T, ACC).await.unwrap();
    assert_eq!(sh.records.count(T, ACC).await.unwrap(), 0);
    assert!(sh.records.get(T, ACC, "a1", &[]).await.unwrap().is_none());
    write_ok(sh, vec![numbered("a9")]).await;
    let got = sh.records.get(T, ACC, "a9", &[]).await.unwrap().unwrap();
    assert_eq!(
        got.name.as_deref(),
        Some("INV-0001"),
        "purge resets counters"
    );
}

// ---------- automation ----------

fn entry(id: &str, record: &str, kind: &str, rule: Option<&str>, due: i64) -> OutboxEntry {
    OutboxEntry {
        id: id.into(),
        tenant_id: T.into(),
        kind: kind.into(),
        object_id: ACC.into(),
        record_id: record.into(),
        rule_id: rule.map(str::to_string),
        action_id: Some("act".into()),
        payload: "{\"x\":1}".into(),
        state: PENDING.into(),
        due_at: at(due),
        attempts: 0,
        last_error: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn history(id: &str, record: &str, field: &str) -> HistoryRow {
    HistoryRow {
        id: id.into(),
        object_id: ACC.into(),
        record_id: record.into(),
        field: field.into(),
        old_value: Some("\"a\"".into()),
        new_value: None,
        changed_by: "u1".into(),
        changed_at: at(3),
    }
}

async fn effects_commit_with_their_write(sh: &Shard) {
    let WriteOp::Insert(mut op) = account("a1", "C1", "E") else {
        unreachable!()
    };
    op.effects = vec![
        Effect::Enqueue(entry("o1", "a1", "outbound_message", Some("r1"), 10)),
        Effect::Enqueue(entry("o2", "a1", TIME_TRIGGER, Some("r1"), 500)),
        Effect::Enqueue(entry("o3", "a1", TIME_TRIGGER, Some("r2"), 600)),
        Effect::History(history("h1", "a1", "created")),
        Effect::Insert(Box::new(insert(row(CON, "task1", "Follow up", vec![])))),
    ];
    write_ok(sh, vec![WriteOp::Insert(op)]).await;
    assert!(sh
        .records
        .get(T, CON, "task1", &[])
        .await
        .unwrap()
        .is_some());
    let pending = sh.automation.pending_for_record(T, "a1").await.unwrap();
    assert_eq!(
        pending.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["o1", "o2", "o3"],
        "{}",
        sh.backend
    );
    assert_eq!(pending[0].due_at, stored(10));
    // A failing write leaves no effect behind.
    let WriteOp::Insert(mut dup) = account("a2", "C1", "E") else {
        unreachable!()
    };
    dup.effects = vec![
        Effect::Enqueue(entry("o9", "a2", "email_alert", None, 1)),
        Effect::History(history("h9", "a2", "created")),
    ];
    let r = sh
        .records
        .write(T, vec![WriteOp::Insert(dup)], false)
        .await
        .unwrap();
    assert!(r[0].is_err());
    assert!(sh.automation.entry(T, "o9").await.unwrap().is_none());
    assert!(sh.automation.history(T, "a2", 10).await.unwrap().is_empty());
    // Unschedule one rule's time triggers, then every rule's.
    let mut u = update(ACC, "a1", vec![], vec![]);
    u.effects = vec![
        Effect::Unschedule {
            record_id: "a1".into(),
            rule_id: Some("r1".into()),
        },
        Effect::History(history("h2", "a1", "Industry__c")),
    ];
    write_ok(sh, vec![WriteOp::Update(u)]).await;
    let ids: Vec<String> = sh
        .automation
        .pending_for_record(T, "a1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["o1", "o3"]);
    let mut u = update(ACC, "a1", vec![], vec![]);
    u.effects = vec![Effect::Unschedule {
        record_id: "a1".into(),
        rule_id: None,
    }];
    write_ok(sh, vec![WriteOp::Update(u)]).await;
    let ids: Vec<String> = sh
        .automation
        .pending_for_record(T, "a1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["o1"]);
    let h = sh.automation.history(T, "a1", 10).await.unwrap();
    assert_eq!(
        h.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["h2", "h1"]
    );
    assert_eq!(h[1].changed_at, stored(3));
    assert_eq!(sh.automation.history(T, "a1", 1).await.unwrap().len(), 1);
    assert!(sh
        .automation
        .history(OTHER, "a1", 10)
        .await
        .unwrap()
        .is_empty());
}

async fn the_outbox_leases_retries_and_dead_letters(sh: &Shard) {
    let WriteOp::Insert(mut op) = account("a1", "C1", "E") else {
        unreachable!()
    };
    op.effects = (1..=4)
        .map(|i| {
            Effect::Enqueue(entry(
                &format!("o{i}"),
                "a1",
                "outbound_message",
                None,
                i * 10,
            ))
        })
        .collect();
    write_ok(sh, vec![WriteOp::Insert(op)]).await;
    let stats = sh.automation.outbox_stats(at(25)).await.unwrap();
    assert_eq!(
        (stats.pending, stats.oldest_due, stats.dead),
        (4, Some(stored(10)), 0),
        "{}",
        sh.backend
    );
    let claimed = sh
        .automation
        .claim_due("A", at(30), at(90), 2)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["o1", "o2"]
    );
    // Leased entries are not claimed again until the lease ends.
    let claimed = sh
        .automation
        .claim_due("B", at(31), at(91), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["o3"]
    );
    assert!(sh
        .automation
        .claim_due("A", at(32), at(92), 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = sh
        .automation
        .claim_due("C", at(90), at(150), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["o1", "o2", "o4"]
    );
    // Expired leases were taken over by "C": "A" holds none any more, and
    // releasing an owner's leases leaves the others' alone.
    assert_eq!(sh.automation.release_leases("A").await.unwrap(), 0);
    assert_eq!(sh.automation.release_leases("B").await.unwrap(), 1);
    assert!(sh
        .automation
        .claim_due("A", at(90), at(150), 10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.id == "o3"));
    assert_eq!(sh.automation.release_leases("C").await.unwrap(), 3);
    sh.automation.complete(T, "o1").await.unwrap();
    assert!(sh.automation.entry(T, "o1").await.unwrap().is_none());
    sh.automation
        .failed(T, "o2", 1, "HTTP 500", Some(at(200)), at(95))
        .await
        .unwrap();
    let e = sh.automation.entry(T, "o2").await.unwrap().unwrap();
    assert_eq!(
        (
            e.state.as_str(),
            e.attempts,
            e.last_error.as_deref(),
            e.due_at,
            e.updated_at
        ),
        (PENDING, 1, Some("HTTP 500"), stored(200), stored(95))
    );
    sh.automation
        .failed(T, "o2", 5, &"x".repeat(3000), None, at(96))
        .await
        .unwrap();
    sh.automation
        .failed(T, "o3", 5, "gone", None, at(97))
        .await
        .unwrap();
    let dead = sh.automation.dead_letters(T, 10, None).await.unwrap();
    assert_eq!(
        dead.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["o3", "o2"]
    );
    assert_eq!(dead[1].state, DEAD);
    assert_eq!(
        dead[1].last_error.as_ref().map(|s| s.chars().count()),
        Some(2000)
    );
    assert_eq!(
        dead[1].due_at,
        stored(200),
        "a dead letter keeps its last due time"
    );
    let page = sh.automation.dead_letters(T, 10, Some("o3")).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["o2"]
    );
    assert!(sh
        .automation
        .dead_letters(OTHER, 10, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(sh.automation.outbox_stats(at(30)).await.unwrap().dead, 2);
    assert!(sh.automation.replay(T, "o2", at(300)).await.unwrap());
    assert!(!sh.automation.replay(T, "o2", at(300)).await.unwrap());
    assert!(!sh.automation.replay(OTHER, "o3", at(300)).await.unwrap());
    let e = sh.automation.entry(T, "o2").await.unwrap().unwrap();
    assert_eq!(
        (e.state.as_str(), e.attempts, e.due_at),
        (PENDING, 0, stored(300))
    );
    assert!(sh.automation.discard(T, "o3").await.unwrap());
    assert!(!sh.automation.discard(T, "o3").await.unwrap());
    assert!(
        !sh.automation.discard(T, "o4").await.unwrap(),
        "only dead letters are discarded"
    );
    sh.automation
        .complete_with(
            T,
            "o4",
            vec![Effect::Enqueue(entry("o5", "a1", "email_alert", None, 700))],
        )
        .await
        .unwrap();
    assert!(sh.automation.entry(T, "o4").await.unwrap().is_none());
    assert!(sh.automation.entry(T, "o5").await.unwrap().is_some());
}

async fn concurrent_claims_never_share_an_entry(sh: &Shard) {
    let WriteOp::Insert(mut op) = account("a1", "C1", "E") else {
        unreachable!()
    };
    op.effects = (0..40)
        .map(|i| {
            Effect::Enqueue(entry(
                &format!("o{i:02}"),
                "a1",
                "outbound_message",
                None,
                i,
            ))
        })
        .collect();
    write_ok(sh, vec![WriteOp::Insert(op)]).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let a = sh.automation.clone();
        tasks.push(tokio::spawn(async move {
            a.claim_due("W", at(100), at(1000), 7).await
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap().unwrap().into_iter().map(|e| e.id));
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((all.len(), n), (40, 40), "{}", sh.backend);
}

// ---------- shares ----------

fn share(
    id: &str,
    record: &str,
    p: Principal,
    access: ShareAccess,
    cause: ShareCause,
    secs: i64,
) -> ShareRow {
    ShareRow {
        id: id.into(),
        object_id: ACC.into(),
        record_id: record.into(),
        principal: p,
        access,
        cause,
        created_by: "u1".into(),
        created_at: at(secs),
    }
}

async fn shares_are_granted_replaced_and_revoked(sh: &Shard) {
    write_ok(sh, vec![account("a1", "C1", "E"), account("a2", "C2", "E")]).await;
    let id = sh
        .shares
        .grant_share(
            T,
            share(
                "s1",
                "a1",
                Principal::User("u2".into()),
                ShareAccess::Read,
                ShareCause::Manual,
                5,
            ),
        )
        .await
        .unwrap();
    assert_eq!(id, "s1");
    let id = sh
        .shares
        .grant_share(
            T,
            share(
                "s2",
                "a1",
                Principal::User("u2".into()),
                ShareAccess::ReadWrite,
                ShareCause::Manual,
                6,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        id, "s1",
        "{}: a second grant to one principal replaces the first",
        sh.backend
    );
    sh.shares
        .grant_share(
            T,
            share(
                "s0",
                "a1",
                Principal::Group("g1".into()),
                ShareAccess::Read,
                ShareCause::Manual,
                7,
            ),
        )
        .await
        .unwrap();
    let rows = sh.shares.shares_of(T, "a1").await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.id.as_str(), r.access))
            .collect::<Vec<_>>(),
        [("s1", ShareAccess::ReadWrite), ("s0", ShareAccess::Read)]
    );
    assert_eq!(rows[0].created_at, stored(5));
    assert_eq!(rows[1].principal, Principal::Group("g1".into()));
    // Rule shares come with a save and replace the record's previous ones.
    let mut u = update(ACC, "a1", vec![], vec![]);
    u.effects = vec![Effect::RuleShares {
        record_id: "a1".into(),
        rows: vec![share(
            "r1s",
            "a1",
            Principal::RoleAndSubordinates("boss".into()),
            ShareAccess::Read,
            ShareCause::Rule("rule1".into()),
            8,
        )],
    }];
    write_ok(sh, vec![WriteOp::Update(u)]).await;
    let mut u = update(ACC, "a1", vec![], vec![]);
    u.effects = vec![Effect::RuleShares {
        record_id: "a1".into(),
        rows: vec![share(
            "r2s",
            "a1",
            Principal::Role("r".into()),
            ShareAccess::Read,
            ShareCause::Rule("rule2".into()),
            9,
        )],
    }];
    write_ok(sh, vec![WriteOp::Update(u)]).await;
    let ids: Vec<String> = sh
        .shares
        .shares_of(T, "a1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["s1", "s0", "r2s"]);
    // A rule's shares are not revocable by hand.
    assert!(!sh.shares.revoke_share(T, "a1", "r2s").await.unwrap());
    assert!(!sh.shares.revoke_share(T, "a2", "s1").await.unwrap());
    assert!(sh.shares.revoke_share(T, "a1", "s1").await.unwrap());
    sh.shares
        .replace_rule_shares(
            T,
            &["rule2".into()],
            &["a1".into(), "a2".into()],
            vec![share(
                "r3s",
                "a2",
                Principal::User("u3".into()),
                ShareAccess::ReadWrite,
                ShareCause::Rule("rule2".into()),
                10,
            )],
        )
        .await
        .unwrap();
    let ids: Vec<String> = sh
        .shares
        .shares_of(T, "a1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["s0"]);
    let bad = sh
        .shares
        .replace_rule_shares(
            T,
            &["rule2".into()],
            &["a1".into()],
            vec![share(
                "x",
                "a1",
                Principal::User("u".into()),
                ShareAccess::Read,
                ShareCause::Manual,
                1,
            )],
        )
        .await;
    assert!(bad.is_err());
    sh.shares.drop_rule_shares(T, "rule2").await.unwrap();
    assert!(sh.shares.shares_of(T, "a2").await.unwrap().is_empty());
    assert!(sh.shares.shares_of(OTHER, "a1").await.unwrap().is_empty());
    let page = sh.shares.scan(T, ACC, None, 1, &[s(3)]).await.unwrap();
    assert_eq!(
        (page.len(), page[0].id.as_str(), page[0].value(s(3))),
        (1, "a1", Some(&text("C1")))
    );
    let page = sh.shares.scan(T, ACC, Some("a1"), 10, &[]).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a2"]
    );
}

// ---------- search ----------

async fn search_finds_words_prefixes_and_phrases(sh: &Shard) {
    let docs = [
        ("a1", "Acme Rocket Works", "info@acme.test"),
        ("a2", "Rocketry Supplies", "sales"),
        ("a3", "Big Cat Food", "purr"),
        ("a4", "Cat Big Food", "meow"),
        ("a5", "ÉCOLE Zürich", "o'brien_x"),
    ];
    for (id, name, extra) in docs {
        let mut op = insert(row(ACC, id, name, vec![(s(2), text(extra))]));
        op.record.owner_id = if id == "a2" { "u2".into() } else { "u1".into() };
        write_ok(sh, vec![WriteOp::Insert(op)]).await;
    }
    write_ok(sh, vec![WriteOp::Delete(delete(ACC, "a4"))]).await;
    let objects = vec![ACC.to_string()];
    let hits = |term: &'static str, vis: Option<std::sync::Arc<mosaic_store::Visibility>>| {
        let q = sh.queries.clone();
        let objects = objects.clone();
        async move {
            let mut ids: Vec<String> = q
                .search(T, term, &objects, 100, vis)
                .await
                .unwrap_or_else(|e| panic!("{term}: {e}"))
                .into_iter()
                .map(|h| h.record_id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(hits("rocket", None).await, ["a1"], "{}", sh.backend);
    assert_eq!(hits("rocket*", None).await, ["a1", "a2"]);
    assert_eq!(
        hits("ACME", None).await,
        ["a1"],
        "words of an email address"
    );
    assert_eq!(hits("\"big cat\"", None).await, ["a3"]);
    assert_eq!(hits("big cat", None).await, ["a3"], "a4 is deleted");
    assert_eq!(hits("cat OR rocketry", None).await, ["a2", "a3"]);
    assert_eq!(hits("food AND NOT purr", None).await, Vec::<String>::new());
    assert_eq!(hits("école zürich", None).await, ["a5"]);
    assert_eq!(hits("brien", None).await, ["a5"]);
    assert_eq!(hits("x' | !(", None).await, ["a5"]);
    assert_eq!(hits("?!", None).await, Vec::<String>::new());
    assert!(sh
        .queries
        .search(OTHER, "rocket", &objects, 10, None)
        .await
        .unwrap()
        .is_empty());
    let mut vis = mosaic_store::Visibility::default();
    vis.objects.insert(
        ACC.into(),
        mosaic_store::RowAccess::Shared {
            owners: std::sync::Arc::new(vec!["u2".into()]),
            principals: std::sync::Arc::new(vec![]),
        },
    );
    assert_eq!(
        hits("rocket*", Some(std::sync::Arc::new(vis))).await,
        ["a2"]
    );
}

// ---------- the two backends ----------

// ---------- stale updates ----------

async fn updates_based_on_an_old_read_are_refused(sh: &Shard) {
    write_ok(sh, vec![account("a9", "C9", "Energy")]).await;
    let read = sh
        .records
        .get(T, ACC, "a9", &[s(1)])
        .await
        .unwrap()
        .expect("found");
    // A save based on the copy just read passes and moves modified_at on.
    let mut first = update(ACC, "a9", vec![(s(1), text("Retail"))], vec![]);
    first.unmodified_since = Some(read.modified_at);
    write_ok(sh, vec![WriteOp::Update(first)]).await;
    // A second save based on the same (now old) copy is refused, and
    // changes nothing.
    let mut second = update(ACC, "a9", vec![(s(1), text("Banking"))], vec![]);
    second.modified_at = at(120);
    second.unmodified_since = Some(read.modified_at);
    let r = sh
        .records
        .write(T, vec![WriteOp::Update(second)], true)
        .await
        .unwrap();
    assert_eq!(code_of(&r[0]), ErrorCode::CONFLICT, "{}", sh.backend);
    let now = sh
        .records
        .get(T, ACC, "a9", &[s(1)])
        .await
        .unwrap()
        .expect("found");
    assert_eq!(now.value(s(1)), Some(&text("Retail")), "{}", sh.backend);
}

// ---------- schema changes and large cascades ----------

/// An account of `T` whose writer's definition has no index at all.
fn unindexed_account(id: &str, industry: &str, code: &str) -> WriteOp {
    WriteOp::Insert(insert(row(
        ACC,
        id,
        id,
        vec![(s(1), text(industry)), (s(3), text(code))],
    )))
}

async fn writers_with_an_older_definition_keep_built_pivots(sh: &Shard) {
    let records = sh.records.clone();
    for i in 0..100 {
        write_ok(
            sh,
            vec![unindexed_account(
                &format!("b{i}"),
                "Mining",
                &format!("c{i}"),
            )],
        )
        .await;
    }
    // Writers that never heard of the index insert while it is built.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let records = records.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let id = format!("w{w}-{i}");
                    let r = records
                        .write(T, vec![unindexed_account(&id, "Mining", &id)], true)
                        .await
                        .unwrap();
                    r[0].as_ref().unwrap();
                }
            })
        })
        .collect();
    sh.records
        .build_index(T, ACC, &industry_spec())
        .await
        .unwrap();
    for w in writers {
        w.await.unwrap();
    }
    write_ok(sh, vec![unindexed_account("late", "Mining", "late")]).await;
    assert_eq!(mining_count(sh).await, 100 + 100 + 1, "{}", sh.backend);
    // An update by such a writer moves its pivot row.
    write_ok(
        sh,
        vec![WriteOp::Update(update(
            ACC,
            "late",
            vec![(s(1), text("Retail"))],
            vec![],
        ))],
    )
    .await;
    assert_eq!(mining_count(sh).await, 200, "{}", sh.backend);

    // Unique built: a writer whose definition lacks it still meets it.
    sh.records.build_index(T, ACC, &code_spec()).await.unwrap();
    let r = sh
        .records
        .write(T, vec![unindexed_account("dup", "Mining", "C7")], true)
        .await
        .unwrap();
    let e = r[0].clone().unwrap_err();
    assert_eq!(e.code, ErrorCode::DUPLICATE_VALUE, "{}: {e:?}", sh.backend);
    assert_eq!(e.fields, vec!["Code__c".to_string()]);
    // Dropped: a writer whose definition still has it no longer enforces it.
    sh.records.drop_index(T, ACC, s(3)).await.unwrap();
    let mut op = insert(row(ACC, "dup2", "dup2", vec![(s(3), text("C7"))]));
    op.indexes = vec![code_spec()];
    write_ok(sh, vec![WriteOp::Insert(op)]).await;
}

/// How many of `T`'s accounts an indexed equality filter on Industry
/// finds (answered from the pivot).
async fn mining_count(sh: &Shard) -> usize {
    use mosaic_store::plan::{plan_query, PlanContext, Schema, SchemaField, SchemaObject};
    use mosaic_store::query_store::Restrict;
    use mosaic_types::DataType;
    let schema = Schema {
        objects: vec![SchemaObject {
            id: ACC.into(),
            api_name: "Account__c".into(),
            fields: vec![SchemaField {
                api_name: "Industry__c".into(),
                data_type: DataType::Text,
                slot: Some(s(1)),
                indexed: true,
                unique: false,
                lookup_object_id: None,
                relationship_name: None,
                child_relationship_name: None,
                rollup: None,
            }],
        }],
    };
    let ctx = PlanContext {
        today: NaiveDate::from_ymd_opt(2024, 1, 31).unwrap(),
        zone: chrono_tz::UTC,
        week_start: chrono::Weekday::Sun,
        include_deleted: false,
        fiscal_start_month: 1,
        user_id: None,
    };
    let planned = plan_query(
        "SELECT Id FROM Account__c WHERE Industry__c = 'Mining'",
        &schema,
        &ctx,
    )
    .unwrap();
    let plan = std::sync::Arc::new(planned.plan);
    let (sql, _) = sh.queries.statement(T, &plan).unwrap();
    assert!(sql.contains("record_index"), "{}: {sql}", sh.backend);
    let rows = sh
        .queries
        .query(T, plan, Restrict::None, 1_000, 50_000)
        .await
        .unwrap();
    rows.total
}

async fn large_cascades_delete_every_descendant_in_steps(sh: &Shard) {
    const KIDS: usize = 2 * CASCADE_BATCH + 50;
    write_ok(sh, vec![account("m1", "M1", "E"), account("m2", "M2", "E")]).await;
    let kids: Vec<WriteOp> = (0..KIDS).map(|i| contact(&format!("k{i}"), "m1")).collect();
    for chunk in kids.chunks(200) {
        sh.records.write(T, chunk.to_vec(), false).await.unwrap();
    }
    write_ok(sh, vec![contact("other", "m2")]).await;
    let r = write_ok(sh, vec![WriteOp::Delete(delete(ACC, "m1"))]).await;
    assert_eq!(
        r[0],
        WriteResult::Deleted {
            id: "m1".into(),
            cascaded: KIDS
        },
        "{}",
        sh.backend
    );
    assert_eq!(sh.records.count(T, CON).await.unwrap(), 1, "{}", sh.backend);
    assert!(
        sh.records
            .get(T, ACC, "m1", &[])
            .await
            .unwrap()
            .unwrap()
            .is_deleted
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let shard = crate::common::sqlite_shard().await;
                    super::$case(&shard).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let shard = crate::common::postgres_shard().await;
                    super::$case(&shard).await;
                }
            )*
        }
    };
}

conformance!(
    records_are_written_read_updated_and_soft_deleted,
    unique_values_are_refused_naming_the_field,
    all_or_none_batches_roll_back_together,
    auto_numbers_are_gap_free,
    concurrent_inserts_draw_distinct_numbers,
    references_cascades_and_cleared_lookups,
    slots_and_indexes_are_maintained_in_bulk,
    effects_commit_with_their_write,
    the_outbox_leases_retries_and_dead_letters,
    concurrent_claims_never_share_an_entry,
    shares_are_granted_replaced_and_revoked,
    search_finds_words_prefixes_and_phrases,
    updates_based_on_an_old_read_are_refused,
    writers_with_an_older_definition_keep_built_pivots,
    large_cascades_delete_every_descendant_in_steps,
);

/// PostgreSQL finds a cascade's children through the pivot's primary key
/// and fetches each by its id, however many records the child object has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_finds_cascade_children_through_the_pivot_index() {
    let sh = common::postgres_shard().await;
    let common::Home::Postgres(db) = &sh.home else {
        unreachable!()
    };
    write_ok(
        &sh,
        vec![account("m1", "M1", "E"), account("m2", "M2", "E")],
    )
    .await;
    write_ok(&sh, vec![contact("few-1", "m1"), contact("few-2", "m1")]).await;
    let many: Vec<WriteOp> = (0..3_000)
        .map(|i| contact(&format!("k{i}"), "m2"))
        .collect();
    for chunk in many.chunks(500) {
        sh.records.write(T, chunk.to_vec(), false).await.unwrap();
    }
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("ANALYZE object_records; ANALYZE record_index;")
        .await
        .unwrap();
    let limit: i64 = CASCADE_BATCH as i64;
    let plan: Vec<String> = client
        .query(
            &format!("EXPLAIN {}", mosaic_store_pg::records::CASCADE_CHILDREN_SQL),
            &[&T, &CON, &s(1).column(), &"m1", &limit],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let text = plan.join("\n");
    println!("EXPLAIN of the cascade:\n{text}");
    assert!(text.contains("record_index_pkey"), "{text}");
    // Each child fetched by its id (either index holding it), no scan.
    assert!(text.contains("id = i.record_id"), "{text}");
    assert!(!text.contains("Seq Scan"), "{text}");
}
