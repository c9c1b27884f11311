//! Differential testing of the SOQL engine: a small in-memory reference
//! evaluator (obviously correct, slow) runs the same queries over the same
//! generated records as the SQL path, through real HTTP. Hand-written
//! queries plus proptest-generated ones (≥ 300 in all) must return the same
//! records in the same order.

mod common;
use chrono::NaiveDate;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value as Json};
use std::cmp::Ordering;
use std::str::FromStr;

// ---- the data ----------------------------------------------------------------

const TEXTS: [Option<&str>; 11] = [
    Some("alpha"),
    Some("Alpha"),
    Some("ALPHA"),
    Some("beta"),
    Some("Beta_1"),
    Some("gamma%"),
    Some("O'Neil"),
    Some("äpfel"),
    Some("Äpfel"),
    Some("zeta"),
    None,
];
const NUMS: [Option<&str>; 10] = [
    Some("-10"),
    Some("-1.5"),
    Some("0"),
    Some("0.25"),
    Some("1"),
    Some("2"),
    Some("10"),
    Some("100.99"),
    Some("1.5"),
    None,
];
const DAYS: [Option<&str>; 7] = [
    Some("2023-12-31"),
    Some("2024-01-01"),
    Some("2024-01-31"),
    Some("2024-02-01"),
    Some("2024-02-29"),
    Some("2024-12-31"),
    None,
];
const WORDS: [&str; 6] = [
    "plain",
    "50%_off",
    "under_score",
    "Mixed Case",
    "back\\slash",
    "ÉTÉ",
];

#[derive(Debug, Clone)]
struct Rec {
    id: String,
    name: String,
    txt: Option<String>,
    num: Option<Decimal>,
    day: Option<NaiveDate>,
    flag: bool,
}

fn gen_records(n: usize) -> Vec<Rec> {
    // A fixed LCG: the same data on every run.
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |m: usize| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as usize) % m
    };
    (0..n)
        .map(|i| Rec {
            id: String::new(),
            name: format!("Item {i:02} {}", WORDS[next(WORDS.len())]),
            txt: TEXTS[next(TEXTS.len())].map(str::to_string),
            num: NUMS[next(NUMS.len())].map(|d| Decimal::from_str(d).unwrap()),
            day: DAYS[next(DAYS.len())].map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()),
            flag: next(2) == 0,
        })
        .collect()
}

// ---- the query model ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Name,
    Txt,
    Num,
    Day,
    Flag,
}

impl Field {
    fn api(self) -> &'static str {
        match self {
            Field::Name => "Name",
            Field::Txt => "Txt__c",
            Field::Num => "Num__c",
            Field::Day => "Day__c",
            Field::Flag => "Flag__c",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Null,
    Text(String),
    Num(Decimal),
    Day(NaiveDate),
    Bool(bool),
}

impl Lit {
    fn soql(&self) -> String {
        match self {
            Lit::Null => "null".into(),
            Lit::Text(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            Lit::Num(d) => d.to_string(),
            Lit::Day(d) => d.format("%Y-%m-%d").to_string(),
            Lit::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum LikePart {
    Text(String),
    One,
    Any,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Cmp(Field, Op, Lit),
    In(Field, Vec<Lit>, bool),
    Like(Field, Vec<LikePart>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    fn soql(&self) -> String {
        match self {
            Cond::Cmp(f, op, l) => {
                let o = match op {
                    Op::Eq => "=",
                    Op::Ne => "!=",
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    Op::Ge => ">=",
                };
                format!("{} {o} {}", f.api(), l.soql())
            }
            Cond::In(f, ls, neg) => format!(
                "{} {}IN ({})",
                f.api(),
                if *neg { "NOT " } else { "" },
                ls.iter().map(Lit::soql).collect::<Vec<_>>().join(", ")
            ),
            Cond::Like(f, parts) => {
                let mut p = String::new();
                for part in parts {
                    match part {
                        LikePart::Text(t) => {
                            for c in t.chars() {
                                match c {
                                    '%' => p.push_str("\\%"),
                                    '_' => p.push_str("\\_"),
                                    '\'' => p.push_str("\\'"),
                                    '\\' => p.push_str("\\\\"),
                                    c => p.push(c),
                                }
                            }
                        }
                        LikePart::One => p.push('_'),
                        LikePart::Any => p.push('%'),
                    }
                }
                format!("{} LIKE '{p}'", f.api())
            }
            Cond::And(cs) => format!(
                "({})",
                cs.iter().map(Cond::soql).collect::<Vec<_>>().join(" AND ")
            ),
            Cond::Or(cs) => format!(
                "({})",
                cs.iter().map(Cond::soql).collect::<Vec<_>>().join(" OR ")
            ),
            Cond::Not(c) => format!("(NOT {})", c.soql()),
        }
    }
}

#[derive(Debug, Clone)]
struct Key {
    field: Field,
    desc: bool,
    nulls: Option<bool>, // Some(true) = NULLS FIRST
}

#[derive(Debug, Clone)]
struct Q {
    cond: Option<Cond>,
    order: Vec<Key>,
    limit: Option<usize>,
    offset: Option<usize>,
}

impl Q {
    fn soql(&self) -> String {
        let mut s = "SELECT Id, Name, Txt__c, Num__c, Day__c, Flag__c FROM Item__c".to_string();
        if let Some(c) = &self.cond {
            s.push_str(" WHERE ");
            s.push_str(&c.soql());
        }
        if !self.order.is_empty() {
            s.push_str(" ORDER BY ");
            let keys: Vec<String> = self
                .order
                .iter()
                .map(|k| {
                    format!(
                        "{}{}{}",
                        k.field.api(),
                        if k.desc { " DESC" } else { " ASC" },
                        match k.nulls {
                            Some(true) => " NULLS FIRST",
                            Some(false) => " NULLS LAST",
                            None => "",
                        }
                    )
                })
                .collect();
            s.push_str(&keys.join(", "));
        }
        if let Some(l) = self.limit {
            s.push_str(&format!(" LIMIT {l}"));
        }
        if let Some(o) = self.offset {
            s.push_str(&format!(" OFFSET {o}"));
        }
        s
    }
}

// ---- the reference evaluator -------------------------------------------------

fn value(r: &Rec, f: Field) -> Lit {
    match f {
        Field::Name => Lit::Text(r.name.clone()),
        Field::Txt => r.txt.clone().map_or(Lit::Null, Lit::Text),
        Field::Num => r.num.map_or(Lit::Null, Lit::Num),
        Field::Day => r.day.map_or(Lit::Null, Lit::Day),
        Field::Flag => Lit::Bool(r.flag),
    }
}

/// SOQL order of two non-null values: text case-insensitively.
fn cmp_values(a: &Lit, b: &Lit) -> Ordering {
    match (a, b) {
        (Lit::Text(x), Lit::Text(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Lit::Num(x), Lit::Num(y)) => x.cmp(y),
        (Lit::Day(x), Lit::Day(y)) => x.cmp(y),
        (Lit::Bool(x), Lit::Bool(y)) => x.cmp(y),
        _ => panic!("type mismatch {a:?} {b:?}"),
    }
}

fn like(s: &[char], p: &[LikePart]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((LikePart::Any, rest)) => (0..=s.len()).any(|i| like(&s[i..], rest)),
        Some((LikePart::One, rest)) => !s.is_empty() && like(&s[1..], rest),
        Some((LikePart::Text(t), rest)) => {
            let t: Vec<char> = t.to_lowercase().chars().collect();
            s.len() >= t.len() && s[..t.len()] == t[..] && like(&s[t.len()..], rest)
        }
    }
}

fn eval(r: &Rec, c: &Cond) -> bool {
    match c {
        Cond::And(cs) => cs.iter().all(|c| eval(r, c)),
        Cond::Or(cs) => cs.iter().any(|c| eval(r, c)),
        Cond::Not(c) => !eval(r, c),
        Cond::Cmp(f, op, lit) => {
            let v = value(r, *f);
            match (v, lit) {
                (Lit::Null, Lit::Null) => *op == Op::Eq,
                (_, Lit::Null) => *op == Op::Ne,
                (Lit::Null, _) => *op == Op::Ne,
                (v, lit) => {
                    let o = cmp_values(&v, lit);
                    match op {
                        Op::Eq => o == Ordering::Equal,
                        Op::Ne => o != Ordering::Equal,
                        Op::Lt => o == Ordering::Less,
                        Op::Le => o != Ordering::Greater,
                        Op::Gt => o == Ordering::Greater,
                        Op::Ge => o != Ordering::Less,
                    }
                }
            }
        }
        Cond::In(f, lits, neg) => {
            let v = value(r, *f);
            let hit = lits.iter().any(|l| match (&v, l) {
                (Lit::Null, Lit::Null) => true,
                (Lit::Null, _) | (_, Lit::Null) => false,
                (v, l) => cmp_values(v, l) == Ordering::Equal,
            });
            hit != *neg
        }
        Cond::Like(f, parts) => match value(r, *f) {
            Lit::Text(s) => like(&s.to_lowercase().chars().collect::<Vec<_>>(), parts),
            _ => false,
        },
    }
}

fn reference(records: &[Rec], q: &Q) -> Vec<String> {
    let mut hits: Vec<&Rec> = records
        .iter()
        .filter(|r| q.cond.as_ref().is_none_or(|c| eval(r, c)))
        .collect();
    hits.sort_by(|a, b| {
        for k in &q.order {
            let (x, y) = (value(a, k.field), value(b, k.field));
            let nulls_first = k.nulls.unwrap_or(!k.desc);
            let o = match (&x, &y) {
                (Lit::Null, Lit::Null) => Ordering::Equal,
                (Lit::Null, _) => {
                    if nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (_, Lit::Null) => {
                    if nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                _ => {
                    let o = cmp_values(&x, &y);
                    if k.desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    hits.into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|r| r.id.clone())
        .collect()
}

// ---- strategies --------------------------------------------------------------

fn text_lit() -> impl Strategy<Value = Lit> {
    prop_oneof![
        prop::sample::select(TEXTS.to_vec())
            .prop_map(|t| t.map_or(Lit::Null, |s| Lit::Text(s.to_string()))),
        prop::sample::select(vec![
            "ALPHA",
            "bet",
            "Ä",
            "o'neil",
            "Item 07 plain",
            "zz",
            "a"
        ])
        .prop_map(|s| Lit::Text(s.to_string())),
    ]
}

fn num_lit() -> impl Strategy<Value = Lit> {
    prop_oneof![
        prop::sample::select(NUMS.to_vec())
            .prop_map(|t| t.map_or(Lit::Null, |s| Lit::Num(Decimal::from_str(s).unwrap()))),
        (-200i64..200, 0u32..3).prop_map(|(m, s)| Lit::Num(Decimal::new(m, s))),
    ]
}

fn day_lit() -> impl Strategy<Value = Lit> {
    prop_oneof![
        prop::sample::select(DAYS.to_vec()).prop_map(|t| t.map_or(Lit::Null, |s| Lit::Day(
            NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
        ))),
        (0i64..500).prop_map(|d| Lit::Day(
            NaiveDate::from_ymd_opt(2023, 10, 1).unwrap() + chrono::Duration::days(d)
        )),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge])
}

fn like_parts() -> impl Strategy<Value = Vec<LikePart>> {
    prop::collection::vec(
        prop_oneof![
            Just(LikePart::Any),
            Just(LikePart::One),
            prop::sample::select(vec![
                "a", "Al", "pha", "%", "_", "50", "off", "item", "ä", "'", "é", "\\", " "
            ])
            .prop_map(|s| LikePart::Text(s.to_string())),
        ],
        1..5,
    )
}

fn atom() -> impl Strategy<Value = Cond> {
    let null_or = |s: BoxedStrategy<Lit>| s;
    prop_oneof![
        (
            prop::sample::select(vec![Field::Txt, Field::Name]),
            op(),
            null_or(text_lit().boxed())
        )
            .prop_map(|(f, o, l)| fix_null(Cond::Cmp(f, o, l))),
        (op(), num_lit()).prop_map(|(o, l)| fix_null(Cond::Cmp(Field::Num, o, l))),
        (op(), day_lit()).prop_map(|(o, l)| fix_null(Cond::Cmp(Field::Day, o, l))),
        (prop::bool::ANY, prop::bool::ANY).prop_map(|(b, ne)| Cond::Cmp(
            Field::Flag,
            if ne { Op::Ne } else { Op::Eq },
            Lit::Bool(b)
        )),
        (prop::collection::vec(text_lit(), 1..4), prop::bool::ANY).prop_map(|(l, n)| Cond::In(
            Field::Txt,
            l,
            n
        )),
        (prop::collection::vec(num_lit(), 1..4), prop::bool::ANY).prop_map(|(l, n)| Cond::In(
            Field::Num,
            l,
            n
        )),
        (prop::collection::vec(day_lit(), 1..3), prop::bool::ANY).prop_map(|(l, n)| Cond::In(
            Field::Day,
            l,
            n
        )),
        (
            prop::sample::select(vec![Field::Txt, Field::Name]),
            like_parts()
        )
            .prop_map(|(f, p)| Cond::Like(f, p)),
    ]
}

/// `< null` is not SOQL: use = / != with null.
fn fix_null(c: Cond) -> Cond {
    match c {
        Cond::Cmp(f, o, Lit::Null) if !matches!(o, Op::Eq | Op::Ne) => {
            Cond::Cmp(f, Op::Eq, Lit::Null)
        }
        c => c,
    }
}

fn cond() -> impl Strategy<Value = Cond> {
    atom().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::Or),
            inner.prop_map(|c| Cond::Not(Box::new(c))),
        ]
    })
}

fn query() -> impl Strategy<Value = Q> {
    (
        prop::option::weighted(0.9, cond()),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    Field::Name,
                    Field::Txt,
                    Field::Num,
                    Field::Day,
                    Field::Flag,
                ]),
                prop::bool::ANY,
                prop::option::of(prop::bool::ANY),
            )
                .prop_map(|(field, desc, nulls)| Key { field, desc, nulls }),
            0..3,
        ),
        prop::option::weighted(0.4, 0usize..30),
        prop::option::weighted(0.3, 0usize..40),
    )
        .prop_map(|(cond, order, limit, offset)| Q {
            cond,
            order,
            limit,
            offset,
        })
}

fn hand_written() -> Vec<Q> {
    let t = |s: &str| Lit::Text(s.to_string());
    let n = |s: &str| Lit::Num(Decimal::from_str(s).unwrap());
    let d = |s: &str| Lit::Day(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
    let q = |cond: Option<Cond>| Q {
        cond,
        order: vec![],
        limit: None,
        offset: None,
    };
    let mut out = vec![
        q(None),
        q(Some(Cond::Cmp(Field::Txt, Op::Eq, t("alpha")))),
        q(Some(Cond::Cmp(Field::Txt, Op::Ne, t("ALPHA")))),
        q(Some(Cond::Cmp(Field::Txt, Op::Eq, Lit::Null))),
        q(Some(Cond::Cmp(Field::Txt, Op::Ne, Lit::Null))),
        q(Some(Cond::Not(Box::new(Cond::Cmp(
            Field::Txt,
            Op::Eq,
            t("beta"),
        ))))),
        q(Some(Cond::Cmp(Field::Txt, Op::Eq, t("O'Neil")))),
        q(Some(Cond::Cmp(Field::Txt, Op::Eq, t("äPFEL")))),
        q(Some(Cond::Cmp(Field::Txt, Op::Gt, t("Beta")))),
        q(Some(Cond::In(
            Field::Txt,
            vec![t("alpha"), t("zeta"), Lit::Null],
            false,
        ))),
        q(Some(Cond::In(
            Field::Txt,
            vec![t("alpha"), t("zeta")],
            true,
        ))),
        q(Some(Cond::In(Field::Txt, vec![Lit::Null], true))),
        q(Some(Cond::Cmp(Field::Num, Op::Eq, n("1.50")))),
        q(Some(Cond::Cmp(Field::Num, Op::Lt, n("0")))),
        q(Some(Cond::Cmp(Field::Num, Op::Ge, n("-1.5")))),
        q(Some(Cond::Cmp(Field::Num, Op::Gt, n("9.999")))),
        q(Some(Cond::In(
            Field::Num,
            vec![n("-10"), n("100.99"), n("0.250")],
            false,
        ))),
        q(Some(Cond::Cmp(Field::Day, Op::Ge, d("2024-01-01")))),
        q(Some(Cond::Cmp(Field::Day, Op::Lt, d("2024-02-01")))),
        q(Some(Cond::Cmp(Field::Day, Op::Eq, d("2024-02-29")))),
        q(Some(Cond::Like(
            Field::Name,
            vec![LikePart::Any, LikePart::Text("50%".into()), LikePart::Any],
        ))),
        q(Some(Cond::Like(
            Field::Name,
            vec![LikePart::Any, LikePart::Text("_".into()), LikePart::Any],
        ))),
        q(Some(Cond::Like(
            Field::Txt,
            vec![LikePart::Text("gamma%".into())],
        ))),
        q(Some(Cond::Like(
            Field::Txt,
            vec![LikePart::Text("gamma".into()), LikePart::One],
        ))),
        q(Some(Cond::Like(
            Field::Txt,
            vec![
                LikePart::Text("beta".into()),
                LikePart::One,
                LikePart::Text("1".into()),
            ],
        ))),
        q(Some(Cond::Like(
            Field::Name,
            vec![LikePart::Any, LikePart::Text("\\".into()), LikePart::Any],
        ))),
        q(Some(Cond::Like(
            Field::Name,
            vec![LikePart::Any, LikePart::Text("été".into())],
        ))),
        q(Some(Cond::Or(vec![
            Cond::Cmp(Field::Flag, Op::Eq, Lit::Bool(true)),
            Cond::Cmp(Field::Num, Op::Eq, Lit::Null),
        ]))),
        q(Some(Cond::And(vec![
            Cond::Cmp(Field::Flag, Op::Ne, Lit::Bool(true)),
            Cond::Not(Box::new(Cond::Cmp(Field::Day, Op::Eq, Lit::Null))),
        ]))),
    ];
    for field in [Field::Name, Field::Txt, Field::Num, Field::Day, Field::Flag] {
        for desc in [false, true] {
            for nulls in [None, Some(true), Some(false)] {
                out.push(Q {
                    cond: None,
                    order: vec![Key { field, desc, nulls }],
                    limit: Some(25),
                    offset: Some(3),
                });
            }
        }
    }
    out
}

// ---- the test ----------------------------------------------------------------

async fn ids_via_http(c: &Client, soql: &str) -> Result<Vec<String>, String> {
    let (s, v) = c
        .post(&format!("{DATA}/query"), json!({ "query": soql }))
        .await;
    if s != StatusCode::OK {
        return Err(format!("{s}: {v}"));
    }
    let recs = v["records"].as_array().cloned().unwrap_or_default();
    if v["totalSize"].as_u64() != Some(recs.len() as u64) || v["done"] != Json::Bool(true) {
        return Err(format!("bad envelope: {v}"));
    }
    Ok(recs
        .iter()
        .map(|r| r["Id"].as_str().unwrap_or("").to_string())
        .collect())
}

#[test]
fn sql_path_matches_the_reference_evaluator() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, client, records) = rt.block_on(async {
        let server = TestServer::start().await;
        let c = server.tenant().await;
        c.create_object(json!({"api_name": "Item__c", "fields": [
            {"api_name": "Txt__c", "data_type": "text", "is_indexed": true},
            {"api_name": "Num__c", "data_type": "number", "precision": 12, "scale": 2, "is_indexed": true},
            {"api_name": "Day__c", "data_type": "date"},
            {"api_name": "Flag__c", "data_type": "boolean"}
        ]}))
        .await;
        let mut records = gen_records(80);
        for chunk in records.chunks_mut(40) {
            let body: Vec<Json> = chunk
                .iter()
                .map(|r| {
                    json!({
                        "attributes": {"type": "Item__c"},
                        "Name": r.name,
                        "Txt__c": r.txt,
                        "Num__c": r.num.map(|d| serde_json::Number::from_str(&d.to_string()).unwrap()),
                        "Day__c": r.day.map(|d| d.format("%Y-%m-%d").to_string()),
                        "Flag__c": r.flag,
                    })
                })
                .collect();
            let (s, v) = c.post(&format!("{DATA}/composite/sobjects"), json!({"allOrNone": true, "records": body})).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            for (r, res) in chunk.iter_mut().zip(v.as_array().unwrap()) {
                assert_eq!(res["success"], true, "{res}");
                r.id = res["id"].as_str().unwrap().to_string();
            }
        }
        (server, c, records)
    });

    let mut checked = 0usize;
    for q in hand_written() {
        let soql = q.soql();
        let got = rt
            .block_on(ids_via_http(&client, &soql))
            .unwrap_or_else(|e| panic!("{soql}: {e}"));
        assert_eq!(got, reference(&records, &q), "{soql}");
        checked += 1;
    }
    let mut runner = TestRunner::new(Config {
        cases: 320,
        failure_persistence: None,
        ..Config::default()
    });
    let generated = std::cell::Cell::new(0usize);
    runner
        .run(&query(), |q| {
            let soql = q.soql();
            let got = rt
                .block_on(ids_via_http(&client, &soql))
                .map_err(|e| TestCaseError::fail(format!("{soql}: {e}")))?;
            let want = reference(&records, &q);
            prop_assert_eq!(got, want, "{}", soql);
            generated.set(generated.get() + 1);
            Ok(())
        })
        .unwrap();
    checked += generated.get();
    assert!(checked >= 300, "only {checked} queries checked");
    println!("differential: {checked} queries agreed");
    rt.block_on(server.stop());
}
