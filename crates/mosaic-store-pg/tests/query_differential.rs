//! Differential queries: the same SOQL, planned once by the real planner,
//! runs on identical data in a SQLite shard (the reference) and a
//! PostgreSQL shard; rows, their order, the ids past `keep` and the totals
//! must be identical. Covers every filter kind, null semantics, ORDER BY
//! with ties and nulls, LIMIT / OFFSET, aggregates, parent paths,
//! semi-joins, every `Restrict` and each kind of sharing predicate.

mod common;

use chrono::{NaiveDate, TimeZone, Utc, Weekday};
use common::Shard;
use mosaic_store::plan::{plan_query, OutputItem, PlanContext, Schema, SchemaField, SchemaObject};
use mosaic_store::query_store::{QueryPlan, QueryRows, Restrict};
use mosaic_store::record_store::*;
use mosaic_store::sharing::{Principal, ShareAccess, ShareCause, ShareRow};
use mosaic_store::{RowAccess, Visibility};
use mosaic_types::{DataType, ErrorCode, FlexSlot, MosaicResult, SlotPool, Value};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::sync::Arc;

const T: &str = "tenant-q";
const ACC: &str = "obj-acc";
const CON: &str = "obj-con";

fn slot(pool: SlotPool, i: u16) -> FlexSlot {
    FlexSlot::new(pool, i).expect("slot")
}

struct F {
    name: &'static str,
    ty: DataType,
    slot: FlexSlot,
    indexed: bool,
    unique: bool,
    lookup: Option<(&'static str, &'static str, &'static str)>,
}

fn f(name: &'static str, ty: DataType, slot: FlexSlot) -> F {
    F {
        name,
        ty,
        slot,
        indexed: false,
        unique: false,
        lookup: None,
    }
}

fn account_fields() -> Vec<F> {
    vec![
        F {
            indexed: true,
            ..f("Industry__c", DataType::Picklist, slot(SlotPool::String, 1))
        },
        f(
            "Tags__c",
            DataType::MultiPicklist,
            slot(SlotPool::String, 2),
        ),
        F {
            indexed: true,
            unique: true,
            ..f("Code__c", DataType::Text, slot(SlotPool::String, 3))
        },
        F {
            indexed: true,
            lookup: Some((ACC, "Parent__r", "Children__r")),
            ..f("Parent__c", DataType::Lookup, slot(SlotPool::String, 4))
        },
        f("Note__c", DataType::Text, slot(SlotPool::String, 5)),
        f("Revenue__c", DataType::Currency, slot(SlotPool::Number, 1)),
        f("Rating__c", DataType::Number, slot(SlotPool::Number, 2)),
        f("Founded__c", DataType::Date, slot(SlotPool::Date, 1)),
        f("Seen__c", DataType::Datetime, slot(SlotPool::Datetime, 1)),
        f("Active__c", DataType::Boolean, slot(SlotPool::Boolean, 1)),
    ]
}

fn contact_fields() -> Vec<F> {
    vec![
        F {
            indexed: true,
            lookup: Some((ACC, "Account__r", "Contacts__r")),
            ..f("Account__c", DataType::Lookup, slot(SlotPool::String, 1))
        },
        f("Email__c", DataType::Email, slot(SlotPool::String, 2)),
        f("Level__c", DataType::Picklist, slot(SlotPool::String, 3)),
        f("Score__c", DataType::Number, slot(SlotPool::Number, 1)),
        f("Birth__c", DataType::Date, slot(SlotPool::Date, 1)),
        f("Vip__c", DataType::Boolean, slot(SlotPool::Boolean, 1)),
    ]
}

fn schema_object(id: &str, api: &str, fields: Vec<F>) -> SchemaObject {
    SchemaObject {
        id: id.into(),
        api_name: api.into(),
        fields: fields
            .into_iter()
            .map(|f| SchemaField {
                api_name: f.name.into(),
                data_type: f.ty,
                slot: Some(f.slot),
                indexed: f.indexed,
                unique: f.unique,
                lookup_object_id: f.lookup.map(|l| l.0.to_string()),
                relationship_name: f.lookup.map(|l| l.1.to_string()),
                child_relationship_name: f.lookup.map(|l| l.2.to_string()),
                rollup: None,
            })
            .collect(),
    }
}

fn schema() -> Schema {
    Schema {
        objects: vec![
            schema_object(ACC, "Account__c", account_fields()),
            schema_object(CON, "Contact__c", contact_fields()),
        ],
    }
}

fn ctx(include_deleted: bool) -> PlanContext {
    PlanContext {
        today: NaiveDate::from_ymd_opt(2024, 6, 15).unwrap(),
        zone: chrono_tz::Tz::Etc__GMTMinus2,
        week_start: Weekday::Mon,
        include_deleted,
        fiscal_start_month: 1,
        user_id: None,
    }
}

fn index_specs(fields: &[F]) -> Vec<IndexSpec> {
    fields
        .iter()
        .filter(|f| f.indexed || f.unique)
        .map(|f| IndexSpec {
            slot: f.slot,
            field: f.name.into(),
            unique: f.unique,
            indexed: f.indexed,
            case_insensitive: f.lookup.is_none(),
        })
        .collect()
}

/// A small deterministic generator (the data must be identical on both).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.next(xs.len() as u64) as usize]
    }
}

fn text_or_null(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::Text(s.into())
    }
}

fn num_or_null(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::Number(Decimal::from_str(s).expect("decimal"))
    }
}

fn record(
    object: &str,
    id: &str,
    name: Option<String>,
    owner: &str,
    secs: i64,
    values: Vec<(FlexSlot, Value)>,
) -> RecordRow {
    let t = Utc.timestamp_opt(1_718_400_000 + secs, 0).single().unwrap();
    RecordRow {
        id: id.into(),
        object_id: object.into(),
        name,
        owner_id: owner.into(),
        created_by: owner.into(),
        created_at: t,
        modified_by: owner.into(),
        modified_at: t,
        is_deleted: false,
        values,
    }
}

fn acc_id(i: u64) -> String {
    format!("00000000-0000-4000-8000-a{i:011}")
}
fn con_id(i: u64) -> String {
    format!("00000000-0000-4000-8000-c{i:011}")
}

const N_ACCOUNTS: u64 = 40;
const N_CONTACTS: u64 = 90;

async fn load(sh: &Shard) {
    let mut g = Lcg(42);
    let names = [
        "Acme",
        "acme",
        "ACME Corp",
        "Ébène",
        "ebene",
        "Zeta",
        "beta_1",
        "50% off",
        "O'Hara",
        "",
        "Österreich",
        "zulu",
        "Alpha",
    ];
    let industries = ["Energy", "energy", "Retail", "Mining", "", "Tech"];
    let tags = ["a;b", "B", "c;a", "", "a", "b;c;d", "D;a"];
    let revenue = [
        "10",
        "10.00",
        "-5.5",
        "1234567.891",
        "",
        "0",
        "99999999999.99",
        "0.0001",
        "-0.0001",
        "2.5",
    ];
    let ratings = ["1", "2", "3", "", "2.50"];
    let notes = [
        "hello",
        "Hello World",
        "a%b",
        "a_b",
        "ab",
        "",
        "x\\y",
        "ÀÉÎ",
    ];
    let accounts = account_fields();
    let specs = index_specs(&accounts);
    for i in 0..N_ACCOUNTS {
        let name = g.pick(&names);
        let founded = if g.next(5) == 0 {
            Value::Null
        } else {
            Value::Date(
                NaiveDate::from_ymd_opt(2024, 1 + g.next(12) as u32, 1 + g.next(28) as u32)
                    .unwrap(),
            )
        };
        let seen = if g.next(4) == 0 {
            Value::Null
        } else {
            Value::Datetime(
                Utc.timestamp_opt(1_718_000_000 + (g.next(1_000_000) as i64) * 7, 0)
                    .single()
                    .unwrap(),
            )
        };
        let active = match g.next(3) {
            0 => Value::Null,
            1 => Value::Boolean(true),
            _ => Value::Boolean(false),
        };
        let parent = if i > 3 && g.next(3) == 0 {
            Value::Text(acc_id(g.next(i)))
        } else {
            Value::Null
        };
        let code = if g.next(4) == 0 {
            Value::Null
        } else {
            Value::Text(format!("CODE-{i:03}"))
        };
        let values = vec![
            (slot(SlotPool::String, 1), text_or_null(g.pick(&industries))),
            (slot(SlotPool::String, 2), text_or_null(g.pick(&tags))),
            (slot(SlotPool::String, 3), code),
            (slot(SlotPool::String, 4), parent),
            (slot(SlotPool::String, 5), text_or_null(g.pick(&notes))),
            (slot(SlotPool::Number, 1), num_or_null(g.pick(&revenue))),
            (slot(SlotPool::Number, 2), num_or_null(g.pick(&ratings))),
            (slot(SlotPool::Date, 1), founded),
            (slot(SlotPool::Datetime, 1), seen),
            (slot(SlotPool::Boolean, 1), active),
        ];
        let owner = ["u1", "u2", "u3"][(i % 3) as usize];
        let name = (!name.is_empty()).then(|| name.to_string());
        let op = InsertOp {
            record: record(ACC, &acc_id(i), name, owner, i as i64, values),
            indexes: specs.clone(),
            auto_numbers: vec![],
            ref_checks: vec![],
            require_absent: None,
            effects: vec![],
        };
        let r = sh
            .records
            .write(T, vec![WriteOp::Insert(op)], true)
            .await
            .unwrap();
        r[0].as_ref().expect("insert account");
    }
    let contacts = contact_fields();
    let specs = index_specs(&contacts);
    let levels = ["Gold", "gold", "Silver", "", "Bronze"];
    let scores = ["1", "1.0", "-1", "3.14159", "", "100", "7"];
    for i in 0..N_CONTACTS {
        let account = if g.next(6) == 0 {
            Value::Null
        } else {
            Value::Text(acc_id(g.next(N_ACCOUNTS)))
        };
        let birth = if g.next(4) == 0 {
            Value::Null
        } else {
            Value::Date(
                NaiveDate::from_ymd_opt(
                    1960 + g.next(50) as i32,
                    1 + g.next(12) as u32,
                    1 + g.next(28) as u32,
                )
                .unwrap(),
            )
        };
        let vip = if g.next(3) == 0 {
            Value::Null
        } else {
            Value::Boolean(g.next(2) == 0)
        };
        let values = vec![
            (slot(SlotPool::String, 1), account),
            (
                slot(SlotPool::String, 2),
                Value::Text(format!("p{}@Example.test", g.next(30))),
            ),
            (slot(SlotPool::String, 3), text_or_null(g.pick(&levels))),
            (slot(SlotPool::Number, 1), num_or_null(g.pick(&scores))),
            (slot(SlotPool::Date, 1), birth),
            (slot(SlotPool::Boolean, 1), vip),
        ];
        let owner = ["u1", "u2", "u3"][(i % 3) as usize];
        let op = InsertOp {
            record: record(
                CON,
                &con_id(i),
                Some(format!("Contact {}", g.next(20))),
                owner,
                i as i64,
                values,
            ),
            indexes: specs.clone(),
            auto_numbers: vec![],
            ref_checks: vec![],
            require_absent: None,
            effects: vec![],
        };
        let r = sh
            .records
            .write(T, vec![WriteOp::Insert(op)], true)
            .await
            .unwrap();
        r[0].as_ref().expect("insert contact");
    }
    // Deleted rows (queryAll sees them), shares, another tenant's twin.
    for i in [5, 17, 33] {
        let op = DeleteOp {
            object_id: ACC.into(),
            id: acc_id(i),
            deleted_by: "u1".into(),
            deleted_at: Utc.timestamp_opt(1_718_500_000, 0).single().unwrap(),
            cascade: vec![],
            clear: vec![],
            effects: vec![],
        };
        sh.records
            .write(T, vec![WriteOp::Delete(op)], true)
            .await
            .unwrap()[0]
            .as_ref()
            .expect("delete");
    }
    for (n, i) in [1u64, 4, 8, 11, 20].into_iter().enumerate() {
        sh.shares
            .grant_share(
                T,
                ShareRow {
                    id: format!("share-{n}"),
                    object_id: ACC.into(),
                    record_id: acc_id(i),
                    principal: Principal::Role("role1".into()),
                    access: ShareAccess::Read,
                    cause: ShareCause::Manual,
                    created_by: "u1".into(),
                    created_at: Utc.timestamp_opt(1_718_500_000, 0).single().unwrap(),
                },
            )
            .await
            .expect("share");
    }
    let other = InsertOp {
        record: record(ACC, &acc_id(0), Some("Acme".into()), "u1", 0, vec![]),
        indexes: vec![],
        auto_numbers: vec![],
        ref_checks: vec![],
        require_absent: None,
        effects: vec![],
    };
    sh.records
        .write("tenant-other", vec![WriteOp::Insert(other)], true)
        .await
        .unwrap()[0]
        .as_ref()
        .expect("other");
}

const QUERIES: &[&str] = &[
    // comparisons on every kind, with null semantics
    "SELECT Id, Name FROM Account__c",
    "SELECT Id, Name FROM Account__c WHERE Name = 'acme'",
    "SELECT Id, Name FROM Account__c WHERE Name != 'acme'",
    "SELECT Id, Name FROM Account__c WHERE Name < 'b' ORDER BY Name",
    "SELECT Id, Name FROM Account__c WHERE Name >= 'ébène' ORDER BY Name DESC",
    "SELECT Id, Name FROM Account__c WHERE Name = null",
    "SELECT Id, Name FROM Account__c WHERE Name != null ORDER BY Name NULLS LAST",
    "SELECT Id FROM Account__c WHERE Name IN ('ACME', 'zeta', 'nobody')",
    "SELECT Id FROM Account__c WHERE Name NOT IN ('ACME', 'zeta')",
    "SELECT Id FROM Account__c WHERE NOT (Name = 'acme')",
    "SELECT Id, Industry__c FROM Account__c WHERE Industry__c = 'ENERGY'",
    "SELECT Id FROM Account__c WHERE Industry__c IN ('energy', 'Retail')",
    "SELECT Id FROM Account__c WHERE Industry__c != 'energy'",
    "SELECT Id FROM Account__c WHERE Code__c = 'code-007'",
    "SELECT Id FROM Account__c WHERE Code__c IN ('CODE-001', 'code-002', 'CODE-003')",
    "SELECT Id, Revenue__c FROM Account__c WHERE Revenue__c > 2.5 ORDER BY Revenue__c",
    "SELECT Id, Revenue__c FROM Account__c WHERE Revenue__c <= 0 ORDER BY Revenue__c DESC",
    "SELECT Id FROM Account__c WHERE Revenue__c = 10",
    "SELECT Id FROM Account__c WHERE Revenue__c != 10",
    "SELECT Id FROM Account__c WHERE Revenue__c IN (10, -5.5, 0.0001)",
    "SELECT Id FROM Account__c WHERE Revenue__c NOT IN (10, -5.5)",
    "SELECT Id FROM Account__c WHERE Revenue__c > -0.001 AND Revenue__c < 0.001",
    "SELECT Id, Founded__c FROM Account__c WHERE Founded__c > 2024-06-01 ORDER BY Founded__c",
    "SELECT Id FROM Account__c WHERE Founded__c = THIS_MONTH",
    "SELECT Id FROM Account__c WHERE Founded__c < TODAY",
    "SELECT Id FROM Account__c WHERE Founded__c = LAST_N_DAYS:60",
    "SELECT Id FROM Account__c WHERE Founded__c = null",
    "SELECT Id, Seen__c FROM Account__c WHERE Seen__c > 2024-06-20T00:00:00Z ORDER BY Seen__c DESC",
    "SELECT Id FROM Account__c WHERE Seen__c = TODAY",
    "SELECT Id FROM Account__c WHERE Seen__c < LAST_WEEK",
    "SELECT Id FROM Account__c WHERE Active__c = true",
    "SELECT Id FROM Account__c WHERE Active__c = false",
    "SELECT Id FROM Account__c WHERE Active__c != true",
    "SELECT Id, Active__c FROM Account__c ORDER BY Active__c DESC NULLS LAST",
    "SELECT Id FROM Account__c WHERE CreatedDate > 2024-06-14T22:00:10Z",
    "SELECT Id FROM Account__c WHERE OwnerId = 'u2'",
    "SELECT Id FROM Account__c WHERE Id = '00000000-0000-4000-8000-A00000000007'",
    // LIKE with escapes
    "SELECT Id, Note__c FROM Account__c WHERE Note__c LIKE 'hello%'",
    "SELECT Id FROM Account__c WHERE Note__c LIKE 'a\\%b'",
    "SELECT Id FROM Account__c WHERE Note__c LIKE 'a\\_b'",
    "SELECT Id FROM Account__c WHERE Note__c LIKE 'a_b'",
    "SELECT Id FROM Account__c WHERE Note__c LIKE '%\\\\%'",
    "SELECT Id FROM Account__c WHERE Note__c LIKE 'àé%'",
    "SELECT Id FROM Account__c WHERE NOT (Note__c LIKE '%o%')",
    "SELECT Id FROM Account__c WHERE Name LIKE '50\\% %'",
    // multi-picklists
    "SELECT Id, Tags__c FROM Account__c WHERE Tags__c INCLUDES ('a')",
    "SELECT Id FROM Account__c WHERE Tags__c INCLUDES ('a;b', 'd')",
    "SELECT Id FROM Account__c WHERE Tags__c EXCLUDES ('b')",
    "SELECT Id FROM Account__c WHERE Tags__c = 'b;a'",
    // boolean logic
    "SELECT Id FROM Account__c WHERE (Industry__c = 'energy' OR Revenue__c > 100) AND Active__c = true",
    "SELECT Id FROM Account__c WHERE NOT (Industry__c = 'energy' OR Rating__c = 2)",
    "SELECT Id FROM Account__c WHERE NOT (Rating__c != 2)",
    // ORDER BY, ties, nulls, LIMIT / OFFSET
    "SELECT Id, Name FROM Account__c ORDER BY Name",
    "SELECT Id, Name FROM Account__c ORDER BY Name DESC",
    "SELECT Id, Name FROM Account__c ORDER BY Name NULLS LAST LIMIT 7",
    "SELECT Id, Rating__c FROM Account__c ORDER BY Rating__c DESC NULLS FIRST, Name LIMIT 10 OFFSET 3",
    "SELECT Id, Industry__c, Revenue__c FROM Account__c ORDER BY Industry__c, Revenue__c DESC",
    "SELECT Id FROM Account__c ORDER BY Founded__c NULLS FIRST LIMIT 5 OFFSET 30",
    "SELECT Id FROM Account__c ORDER BY Seen__c LIMIT 0",
    "SELECT Id, Tags__c FROM Account__c WHERE Tags__c != null ORDER BY Name",
    // parents
    "SELECT Id, Name, Parent__r.Name, Parent__r.Industry__c FROM Account__c",
    "SELECT Id FROM Account__c WHERE Parent__r.Name = 'acme'",
    "SELECT Id, Parent__r.Parent__r.Name FROM Account__c WHERE Parent__r.Parent__c != null",
    "SELECT Id, Account__r.Name, Account__r.Revenue__c FROM Contact__c ORDER BY Account__r.Revenue__c DESC NULLS LAST, Name",
    "SELECT Id FROM Contact__c WHERE Account__r.Industry__c = 'energy' AND Score__c > 0",
    "SELECT Id FROM Contact__c WHERE Account__c = '00000000-0000-4000-8000-a00000000003'",
    "SELECT Id FROM Contact__c WHERE Account__c IN ('00000000-0000-4000-8000-a00000000003', '00000000-0000-4000-8000-a00000000009')",
    "SELECT Id FROM Contact__c WHERE Account__c = null",
    "SELECT Id, Email__c FROM Contact__c WHERE Email__c LIKE 'p1%@example.test' ORDER BY Email__c",
    "SELECT Id FROM Contact__c WHERE Vip__c = true AND Birth__c < 1980-01-01",
    // semi- and anti-joins
    "SELECT Id FROM Account__c WHERE Id IN (SELECT Account__c FROM Contact__c WHERE Level__c = 'gold')",
    "SELECT Id FROM Account__c WHERE Id NOT IN (SELECT Account__c FROM Contact__c)",
    "SELECT Id FROM Account__c WHERE Id IN (SELECT Account__c FROM Contact__c WHERE Score__c > 5) AND Active__c = true",
    "SELECT Id FROM Contact__c WHERE Account__c IN (SELECT Id FROM Account__c WHERE Industry__c = 'energy')",
    "SELECT Id FROM Contact__c WHERE Account__c NOT IN (SELECT Id FROM Account__c WHERE Revenue__c > 5)",
    // aggregates
    "SELECT COUNT() FROM Account__c",
    "SELECT COUNT(Id) cnt FROM Account__c WHERE Revenue__c > 0",
    "SELECT Industry__c, COUNT(Id) FROM Account__c GROUP BY Industry__c",
    "SELECT Industry__c, SUM(Revenue__c), AVG(Revenue__c), MIN(Revenue__c), MAX(Revenue__c) FROM Account__c GROUP BY Industry__c",
    "SELECT SUM(Revenue__c) total, AVG(Rating__c) FROM Account__c",
    "SELECT Active__c, COUNT(Id) FROM Account__c GROUP BY Active__c",
    "SELECT Industry__c, COUNT(Id) FROM Account__c GROUP BY Industry__c HAVING COUNT(Id) > 5",
    "SELECT Industry__c, SUM(Revenue__c) FROM Account__c GROUP BY Industry__c HAVING SUM(Revenue__c) > 20 ORDER BY SUM(Revenue__c) DESC",
    "SELECT Industry__c, AVG(Rating__c) FROM Account__c GROUP BY Industry__c HAVING AVG(Rating__c) >= 2 ORDER BY AVG(Rating__c)",
    "SELECT COUNT_DISTINCT(Industry__c), MIN(Founded__c), MAX(Seen__c), MIN(Name) FROM Account__c",
    "SELECT Level__c, COUNT(Id), SUM(Score__c), AVG(Score__c) FROM Contact__c GROUP BY Level__c ORDER BY COUNT(Id) DESC",
    "SELECT Account__c, COUNT(Id) FROM Contact__c WHERE Account__c != null GROUP BY Account__c HAVING COUNT(Id) >= 3",
    "SELECT Founded__c, COUNT(Id) FROM Account__c GROUP BY Founded__c LIMIT 5",
    "SELECT Industry__c, Active__c, COUNT(Id) FROM Account__c GROUP BY Industry__c, Active__c",
];

/// Queries run under every sharing predicate too.
const SHARED_QUERIES: &[&str] = &[
    "SELECT Id, Name FROM Account__c ORDER BY Name",
    "SELECT Id, Account__r.Name FROM Contact__c ORDER BY Account__r.Name, Name",
    "SELECT Id FROM Account__c WHERE Id IN (SELECT Account__c FROM Contact__c WHERE Score__c > 0)",
    "SELECT Id FROM Contact__c WHERE Account__c NOT IN (SELECT Id FROM Account__c WHERE Active__c = true)",
    "SELECT Industry__c, COUNT(Id), SUM(Revenue__c) FROM Account__c GROUP BY Industry__c",
    "SELECT Id, Parent__r.Name FROM Account__c WHERE Parent__c != null",
    "SELECT COUNT() FROM Contact__c",
];

fn plan_of(soql: &str, include_deleted: bool) -> QueryPlan {
    plan_query(soql, &schema(), &ctx(include_deleted))
        .unwrap_or_else(|e| panic!("{soql}: {e}"))
        .plan
}

fn shared(owners: &[&str], principals: &[&str]) -> RowAccess {
    RowAccess::Shared {
        owners: Arc::new(owners.iter().map(|s| s.to_string()).collect()),
        principals: Arc::new(principals.iter().map(|s| s.to_string()).collect()),
    }
}

fn visibilities() -> Vec<(&'static str, Visibility)> {
    let mut out = Vec::new();
    let mut v = Visibility::default();
    v.objects
        .insert(ACC.into(), shared(&["u1"], &["r:role1", "u:u1"]));
    out.push(("accounts shared", v));
    let mut v = Visibility::default();
    v.objects.insert(ACC.into(), shared(&["u2"], &[]));
    v.objects.insert(
        CON.into(),
        RowAccess::Parent {
            via: slot(SlotPool::String, 1),
            parent_object_id: ACC.into(),
            parent: Box::new(shared(&["u2"], &[])),
        },
    );
    out.push(("contacts controlled by parent", v));
    let mut v = Visibility::default();
    v.objects.insert(CON.into(), RowAccess::Nothing);
    v.objects.insert(ACC.into(), shared(&["u3"], &["r:role1"]));
    out.push(("no contacts", v));
    out
}

async fn both(
    sqlite: &Shard,
    pg: &Shard,
    what: &str,
    plan: QueryPlan,
    restrict: Restrict,
    keep: usize,
    max_rows: usize,
) -> MosaicResult<QueryRows> {
    let plan = Arc::new(plan);
    let a = sqlite
        .queries
        .query(T, plan.clone(), restrict.clone(), keep, max_rows)
        .await;
    let b = pg
        .queries
        .query(T, plan.clone(), restrict.clone(), keep, max_rows)
        .await;
    match (&a, &b) {
        (Ok(x), Ok(y)) => assert_eq!(
            x,
            y,
            "{what}: results differ\n{}",
            pg.queries.statement(T, &plan).unwrap().0
        ),
        (Err(x), Err(y)) => assert_eq!(x.code, y.code, "{what}: errors differ: {x} / {y}"),
        _ => panic!("{what}: sqlite {a:?}\npostgres {b:?}"),
    }
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_queries_give_the_same_rows_on_both_shards() {
    let sqlite = common::sqlite_shard().await;
    let pg = common::postgres_shard().await;
    load(&sqlite).await;
    load(&pg).await;
    let mut nonempty = 0;
    let mut runs = 0;
    for q in QUERIES {
        // Past `keep` only root ids are kept: record queries only (the
        // runtime keeps aggregate rows whole).
        let keeps: &[usize] = if plan_of(q, false).aggregate {
            &[usize::MAX]
        } else {
            &[usize::MAX, 3]
        };
        for &keep in keeps {
            let rows = both(
                &sqlite,
                &pg,
                q,
                plan_of(q, false),
                Restrict::None,
                keep,
                50_000,
            )
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
            runs += 1;
            if rows.total > 0 {
                nonempty += 1;
            }
        }
    }
    // queryAll
    for q in [
        "SELECT Id, IsDeleted FROM Account__c ORDER BY Name",
        "SELECT Id FROM Account__c WHERE IsDeleted = true",
        "SELECT COUNT(Id) FROM Account__c",
    ] {
        both(
            &sqlite,
            &pg,
            q,
            plan_of(q, true),
            Restrict::None,
            usize::MAX,
            50_000,
        )
        .await
        .unwrap();
        runs += 1;
    }
    // visibility of each kind
    for (name, vis) in visibilities() {
        let vis = Arc::new(vis);
        for q in SHARED_QUERIES {
            let mut plan = plan_of(q, false);
            plan.visibility = Some(vis.clone());
            let rows = both(
                &sqlite,
                &pg,
                &format!("{name}: {q}"),
                plan,
                Restrict::None,
                usize::MAX,
                50_000,
            )
            .await
            .unwrap();
            runs += 1;
            if rows.total > 0 {
                nonempty += 1;
            }
        }
    }
    assert!(runs >= 170, "{runs}");
    assert!(
        nonempty > 130,
        "too few queries match anything: {nonempty} of {runs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_runs_and_limits_agree() {
    let sqlite = common::sqlite_shard().await;
    let pg = common::postgres_shard().await;
    load(&sqlite).await;
    load(&pg).await;
    // Restrict::Ids: exactly these records, in no promised order.
    let ids: Vec<String> = [2, 5, 9, 13, 99].into_iter().map(acc_id).collect();
    let plan = plan_of("SELECT Id, Name, Parent__r.Name FROM Account__c WHERE Name = 'nobody' ORDER BY Name LIMIT 1", false);
    let pa = Arc::new(plan);
    let mut a = sqlite
        .queries
        .query(
            T,
            pa.clone(),
            Restrict::Ids(ids.clone()),
            usize::MAX,
            50_000,
        )
        .await
        .unwrap();
    let mut b = pg
        .queries
        .query(
            T,
            pa.clone(),
            Restrict::Ids(ids.clone()),
            usize::MAX,
            50_000,
        )
        .await
        .unwrap();
    let by_id = |r: &Vec<Value>, s: &Vec<Value>| format!("{:?}", r[0]).cmp(&format!("{:?}", s[0]));
    a.rows.sort_by(by_id);
    b.rows.sort_by(by_id);
    assert_eq!(a, b);
    assert_eq!(
        a.total, 3,
        "a deleted id and a missing one are skipped: {a:?}"
    );
    let empty = pg
        .queries
        .query(T, pa, Restrict::Ids(vec![]), usize::MAX, 50_000)
        .await
        .unwrap();
    assert_eq!(empty.total, 0);
    // Restrict::ColumnIn: a child subquery for a page of parents.
    let planned = plan_query("SELECT Id, (SELECT Id, Name, Score__c FROM Contacts__r WHERE Score__c != 7 ORDER BY Score__c DESC) FROM Account__c", &schema(), &ctx(false)).unwrap();
    let child = planned
        .items
        .iter()
        .find_map(|i| match i {
            OutputItem::Child(c) => Some(c.clone()),
            _ => None,
        })
        .expect("child plan");
    for (n, vis) in [
        (None, None),
        (Some("shared"), Some(Arc::new(visibilities().remove(1).1))),
    ] {
        let mut plan = child.plan.clone();
        plan.visibility = vis;
        let values: Vec<String> = (0..N_ACCOUNTS).step_by(2).map(acc_id).collect();
        let rows = both(
            &sqlite,
            &pg,
            &format!("children {n:?}"),
            plan,
            Restrict::ColumnIn {
                column: child.link,
                values,
            },
            usize::MAX,
            50_000,
        )
        .await
        .unwrap();
        assert!(rows.total > 0);
    }
    // LIMIT_EXCEEDED past max_rows, on both.
    for q in [
        "SELECT Id FROM Contact__c",
        "SELECT Id FROM Account__c WHERE Name != null",
    ] {
        let e = both(&sqlite, &pg, q, plan_of(q, false), Restrict::None, 10, 5)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::LIMIT_EXCEEDED);
    }
    let q = "SELECT Id FROM Contact__c LIMIT 5";
    both(&sqlite, &pg, q, plan_of(q, false), Restrict::None, 10, 5)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_parameterized_and_explained() {
    let pg = common::postgres_shard().await;
    load(&pg).await;
    let mut plan = plan_of("SELECT Id FROM Account__c WHERE Code__c = 'x\\'); DROP TABLE object_records; --' AND Name LIKE '%\\'%'", false);
    plan.visibility = Some(Arc::new(visibilities().remove(0).1));
    let (sql, params) = pg.queries.statement(T, &plan).unwrap();
    assert!(!sql.contains("DROP"), "{sql}");
    assert!(
        params.iter().any(|p| p.contains("drop table")),
        "{params:?}"
    );
    assert!(sql.contains("= ANY("), "{sql}");
    let rows = pg
        .queries
        .query(T, Arc::new(plan.clone()), Restrict::None, 10, 100)
        .await
        .unwrap();
    assert_eq!(rows.total, 0);
    // An indexed equality goes through the pivot table's primary key.
    let plan = plan_of(
        "SELECT Id FROM Account__c WHERE Code__c = 'CODE-007'",
        false,
    );
    let lines = pg.queries.explain(T, Arc::new(plan)).await.unwrap();
    let text = lines.join("\n");
    assert!(text.contains("record_unique"), "{text}");
    assert_eq!(pg.records.count(T, ACC).await.unwrap(), N_ACCOUNTS - 3);
}
