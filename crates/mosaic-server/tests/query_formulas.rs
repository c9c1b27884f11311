//! Filtering and sorting on formula fields (computed and applied in the
//! engine): expected results written out, paging across batches, queryAll,
//! the refused cases, tenant isolation, and a differential check against a
//! straightforward in-test computation.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::cmp::Ordering;

async fn q(c: &Client, soql: &str) -> (StatusCode, Value) {
    c.get(&format!("{DATA}/query?q={}", enc(soql))).await
}

/// Names of the records of a query that must succeed, in order.
async fn names(c: &Client, soql: &str) -> Vec<String> {
    let (s, v) = q(c, soql).await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    let recs = v["records"].as_array().unwrap();
    assert_eq!(v["totalSize"].as_u64().unwrap() as usize, recs.len(), "{v}");
    recs.iter()
        .map(|r| r["Name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn err(v: &Value) -> (String, String) {
    (
        v[0]["errorCode"].as_str().unwrap_or("").to_string(),
        v[0]["message"].as_str().unwrap_or("").to_string(),
    )
}

async fn schema(c: &Client) {
    c.create_object(json!({"api_name": "Account__c", "fields": [
        {"api_name": "Tier__c", "data_type": "text"},
        {"api_name": "Discount__c", "data_type": "percent", "precision": 5, "scale": 2},
        {"api_name": "Parent__c", "data_type": "lookup", "lookup_object": "Account__c"},
        {"api_name": "Disc2__c", "data_type": "formula", "formula_return_type": "number", "scale": 2,
         "formula_expression": "Discount__c * 2"}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Opp__c", "fields": [
        {"api_name": "Amount__c", "data_type": "currency"},
        {"api_name": "Close__c", "data_type": "date"},
        {"api_name": "Stage__c", "data_type": "picklist", "picklist_values": [{"value": "Open"}, {"value": "Won"}]},
        {"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c"},
        {"api_name": "Commission__c", "data_type": "formula", "formula_return_type": "currency", "scale": 2,
         "formula_expression": "IF(Amount__c > 1000, Amount__c * 0.1, 0)"},
        {"api_name": "Net__c", "data_type": "formula", "formula_return_type": "currency", "scale": 2,
         "formula_expression": "Amount__c * (1 - Account__r.Discount__c / 100) - Commission__c"},
        {"api_name": "Label__c", "data_type": "formula", "formula_return_type": "text",
         "formula_expression": "Name & \" / \" & BLANKVALUE(Account__r.Parent__r.Tier__c, \"none\") & \" / \" & TEXT(Stage__c)"},
        {"api_name": "Due__c", "data_type": "formula", "formula_return_type": "date",
         "formula_expression": "ADDMONTHS(Close__c, 1)"},
        {"api_name": "Big__c", "data_type": "formula", "formula_return_type": "boolean",
         "formula_expression": "Amount__c >= 10000"}
    ]}))
    .await;
}

/// Accounts Root (Gold), Acme (10%, parent Root), Beta (50%); returns the
/// ids of Acme and Beta.
async fn accounts(c: &Client) -> (String, String) {
    let root = c
        .create_record("Account__c", json!({"Name": "Root", "Tier__c": "Gold"}))
        .await;
    let acme = c
        .create_record(
            "Account__c",
            json!({"Name": "Acme", "Discount__c": 10, "Parent__c": root}),
        )
        .await;
    let beta = c
        .create_record("Account__c", json!({"Name": "Beta", "Discount__c": 50}))
        .await;
    (acme, beta)
}

/// Six opportunities:
///
/// | Name    | Amount | Account | Stage | Commission | Net     | Label                  |
/// |---------|--------|---------|-------|------------|---------|------------------------|
/// | Alpha   | 500    | Acme    | Open  | 0.00       | 450.00  | Alpha / Gold / Open    |
/// | Bravo   | 2000   | Acme    | Won   | 200.00     | 1600.00 | Bravo / Gold / Won     |
/// | Charlie | 3000   | Beta    | Open  | 300.00     | 1200.00 | Charlie / none / Open  |
/// | Delta   | 1000   | —       | Won   | 0.00       | null    | Delta / none / Won     |
/// | Echo    | —      | Acme    | Open  | 0.00       | null    | Echo / Gold / Open     |
/// | Foxtrot | 12000  | Beta    | Open  | 1200.00    | 4800.00 | Foxtrot / none / Open  |
///
/// Returns the ids by name.
async fn world(c: &Client) -> std::collections::HashMap<String, String> {
    schema(c).await;
    let (acme, beta) = accounts(c).await;
    let mut ids = std::collections::HashMap::new();
    for (name, body) in [
        (
            "Alpha",
            json!({"Amount__c": 500, "Account__c": acme, "Stage__c": "Open", "Close__c": "2024-01-31"}),
        ),
        (
            "Bravo",
            json!({"Amount__c": 2000, "Account__c": acme, "Stage__c": "Won", "Close__c": "2024-03-15"}),
        ),
        (
            "Charlie",
            json!({"Amount__c": 3000, "Account__c": beta, "Stage__c": "Open"}),
        ),
        ("Delta", json!({"Amount__c": 1000, "Stage__c": "Won"})),
        ("Echo", json!({"Account__c": acme, "Stage__c": "Open"})),
        (
            "Foxtrot",
            json!({"Amount__c": 12000, "Account__c": beta, "Stage__c": "Open"}),
        ),
    ] {
        let mut body = body;
        body["Name"] = json!(name);
        ids.insert(name.to_string(), c.create_record("Opp__c", body).await);
    }
    ids
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_formula_fields() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    world(&c).await;
    let cases: &[(&str, &[&str])] = &[
        ("Commission__c > 100", &["Bravo", "Charlie", "Foxtrot"]),
        ("Commission__c = 0", &["Alpha", "Delta", "Echo"]),
        ("Commission__c = 200.000", &["Bravo"]),
        // != includes nulls; comparisons with null are false.
        (
            "Net__c != 1600",
            &["Alpha", "Charlie", "Delta", "Echo", "Foxtrot"],
        ),
        ("Net__c < 2000", &["Alpha", "Bravo", "Charlie"]),
        ("Net__c = null", &["Delta", "Echo"]),
        ("Net__c != null", &["Alpha", "Bravo", "Charlie", "Foxtrot"]),
        // A formula crossing a lookup, as a filter.
        ("Net__c > 1000", &["Bravo", "Charlie", "Foxtrot"]),
        // Text formulas: case-insensitive = and LIKE.
        ("Label__c = 'ALPHA / gold / OPEN'", &["Alpha"]),
        ("Label__c LIKE '%GOLD%'", &["Alpha", "Bravo", "Echo"]),
        ("Label__c LIKE 'c_arlie%'", &["Charlie"]),
        ("Label__c LIKE '%won'", &["Bravo", "Delta"]),
        ("Label__c > 'd'", &["Delta", "Echo", "Foxtrot"]),
        ("Commission__c IN (200, 300)", &["Bravo", "Charlie"]),
        ("Commission__c NOT IN (0)", &["Bravo", "Charlie", "Foxtrot"]),
        ("Net__c IN (450, null)", &["Alpha", "Delta", "Echo"]),
        (
            "Net__c NOT IN (450, 1600)",
            &["Charlie", "Delta", "Echo", "Foxtrot"],
        ),
        ("Big__c = true", &["Foxtrot"]),
        (
            "Big__c != true",
            &["Alpha", "Bravo", "Charlie", "Delta", "Echo"],
        ),
        ("Due__c = 2024-02-29", &["Alpha"]),
        ("Due__c > 2024-03-01", &["Bravo"]),
        ("Due__c < TODAY", &["Alpha", "Bravo"]),
        ("Due__c = null", &["Charlie", "Delta", "Echo", "Foxtrot"]),
        // Combined with SQL-side conditions.
        ("Stage__c = 'won' AND Commission__c > 100", &["Bravo"]),
        (
            "Commission__c = 0 AND Account__r.Name = 'Acme' AND Amount__c != null",
            &["Alpha"],
        ),
        // OR mixing formula and plain fields: the whole condition in the engine.
        (
            "Commission__c > 1000 OR Name = 'alpha'",
            &["Alpha", "Foxtrot"],
        ),
        (
            "NOT (Commission__c > 100) AND Account__r.Name = 'Acme'",
            &["Alpha", "Echo"],
        ),
        (
            "(Net__c = null OR Account__r.Name = 'Beta') AND Stage__c = 'Open'",
            &["Charlie", "Echo", "Foxtrot"],
        ),
        (
            "NOT (Net__c > 500 OR Amount__c = null)",
            &["Alpha", "Delta"],
        ),
        (
            "Commission__c > 100 AND Name IN ('Bravo', 'Foxtrot', 'Zulu')",
            &["Bravo", "Foxtrot"],
        ),
    ];
    for (cond, want) in cases {
        let soql = format!("SELECT Name FROM Opp__c WHERE {cond} ORDER BY Name");
        assert_eq!(names(&c, &soql).await, strs(want), "{soql}");
    }
    // Selected fields, parent paths and values render as on the SQL path.
    let (s, v) = q(
        &c,
        "SELECT Name, Net__c, Commission__c, Account__r.Name, Account__r.Disc2__c FROM Opp__c o WHERE o.Net__c > 1000 AND Net__c < 2000 ORDER BY Net__c DESC",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totalSize"], 2);
    assert_eq!(v["done"], true);
    let r = &v["records"];
    assert_eq!(r[0]["Name"], "Bravo");
    assert_eq!(r[0]["Net__c"].to_string(), "1600.00");
    assert_eq!(r[0]["Commission__c"].to_string(), "200.00");
    assert_eq!(r[0]["Account__r"]["Name"], "Acme");
    assert_eq!(r[0]["Account__r"]["Disc2__c"].to_string(), "20.00");
    assert_eq!(r[1]["Name"], "Charlie");
    assert_eq!(r[1]["attributes"]["type"], "Opp__c");
    // A formula filter on the parent object with a child subquery.
    let (s, v) = q(
        &c,
        "SELECT Name, (SELECT Name, Commission__c FROM Opps__r ORDER BY Name) FROM Account__c WHERE Disc2__c > 30",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totalSize"], 1);
    assert_eq!(v["records"][0]["Name"], "Beta");
    let kids = v["records"][0]["Opps__r"]["records"].as_array().unwrap();
    let kid_names: Vec<&str> = kids.iter().map(|k| k["Name"].as_str().unwrap()).collect();
    assert_eq!(kid_names, ["Charlie", "Foxtrot"]);
    assert_eq!(kids[1]["Commission__c"].to_string(), "1200.00");
    // Type errors are reported like the SQL path's.
    let (s, v) = q(&c, "SELECT Name FROM Opp__c WHERE Commission__c > 'x'").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(err(&v).0, "INVALID_FIELD");
    let (s, v) = q(&c, "SELECT Name FROM Opp__c WHERE Big__c > true").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = q(&c, "SELECT Name FROM Opp__c WHERE Commission__c LIKE '1%'").await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_FIELD")
    );
    // Errors in the pushed-down part point into the original statement.
    let (s, v) = q(
        &c,
        "SELECT Name FROM Opp__c WHERE Commission__c > 1 AND Nope__c = 1",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(err(&v).1.contains("Nope__c"), "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorts_by_formula_fields_and_other_endpoints() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let ids = world(&c).await;
    // Delta and Echo tie (null Net__c): broken by Id, as the SQL path does.
    let (d, e) = if ids["Delta"] < ids["Echo"] {
        ("Delta", "Echo")
    } else {
        ("Echo", "Delta")
    };
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "ORDER BY Net__c",
            vec![d, e, "Alpha", "Charlie", "Bravo", "Foxtrot"],
        ),
        (
            "ORDER BY Net__c ASC NULLS LAST",
            vec!["Alpha", "Charlie", "Bravo", "Foxtrot", d, e],
        ),
        (
            "ORDER BY Net__c DESC",
            vec!["Foxtrot", "Bravo", "Charlie", "Alpha", d, e],
        ),
        (
            "ORDER BY Net__c DESC NULLS FIRST, Name DESC",
            vec!["Echo", "Delta", "Foxtrot", "Bravo", "Charlie", "Alpha"],
        ),
        (
            "ORDER BY Commission__c, Name DESC",
            vec!["Echo", "Delta", "Alpha", "Bravo", "Charlie", "Foxtrot"],
        ),
        (
            "ORDER BY Account__r.Name NULLS LAST, Net__c DESC",
            vec!["Bravo", "Alpha", "Echo", "Foxtrot", "Charlie", "Delta"],
        ),
        (
            "ORDER BY Label__c DESC",
            vec!["Foxtrot", "Echo", "Delta", "Charlie", "Bravo", "Alpha"],
        ),
        (
            "ORDER BY Net__c DESC NULLS LAST LIMIT 2 OFFSET 1",
            vec!["Bravo", "Charlie"],
        ),
        ("ORDER BY Net__c LIMIT 3", vec![d, e, "Alpha"]),
        ("ORDER BY Net__c OFFSET 5", vec!["Foxtrot"]),
        ("ORDER BY Net__c OFFSET 6", vec![]),
        (
            "WHERE Commission__c > 0 ORDER BY Commission__c DESC LIMIT 2",
            vec!["Foxtrot", "Charlie"],
        ),
        (
            "WHERE Stage__c = 'Open' ORDER BY Due__c DESC, Name LIMIT 3",
            vec!["Alpha", "Charlie", "Echo"],
        ),
        (
            "WHERE Stage__c = 'Open' ORDER BY Due__c DESC NULLS FIRST, Name LIMIT 3",
            vec!["Charlie", "Echo", "Foxtrot"],
        ),
    ];
    for (tail, want) in cases {
        let soql = format!("SELECT Name FROM Opp__c {tail}");
        assert_eq!(names(&c, &soql).await, strs(&want), "{soql}");
    }
    // POST query, queryAll and the list endpoint take the same path.
    let (s, v) = c
        .post(
            &format!("{DATA}/query"),
            json!({"query": "SELECT Name FROM Opp__c WHERE Commission__c > 100 ORDER BY Net__c"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["Charlie", "Bravo", "Foxtrot"]);
    let (s, v) = c
        .get(&format!(
            "{DATA}/sobjects/Opp__c?fields=Name,Net__c&where={}&order_by={}&limit=2",
            enc("Commission__c > 100"),
            enc("Net__c DESC")
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: Vec<(&str, String)> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["Name"].as_str().unwrap(), r["Net__c"].to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("Foxtrot", "4800.00".to_string()),
            ("Bravo", "1600.00".to_string())
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_across_batches_and_query_all() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    schema(&c).await;
    // 300 opportunities, Amount 1000 + i: commission (Amount × 0.1) for i ≥ 1.
    for chunk in 0..2 {
        let records: Vec<Value> = (0..150)
            .map(|j| {
                let i = chunk * 150 + j;
                json!({"attributes": {"type": "Opp__c"}, "Name": format!("P{i:03}"), "Amount__c": 1000 + i})
            })
            .collect();
        let (s, v) = c
            .post(
                &format!("{DATA}/composite/sobjects"),
                json!({"records": records}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let soql = "SELECT Name, Commission__c FROM Opp__c WHERE Name LIKE 'P%' AND Commission__c > 0 ORDER BY Commission__c DESC";
    let res = c
        .http
        .get(format!("{}{DATA}/query?q={}", c.base, enc(soql)))
        .bearer_auth(c.token.as_ref().unwrap())
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["totalSize"].as_u64(), v["done"].as_bool()),
        (Some(299), Some(false))
    );
    let first = v["records"].as_array().unwrap();
    assert_eq!(first.len(), 200);
    assert_eq!(first[0]["Commission__c"].to_string(), "129.90");
    let mut seen: Vec<String> = first
        .iter()
        .map(|r| r["Name"].as_str().unwrap().to_string())
        .collect();
    let next = v["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(next.ends_with("-200"), "{next}");
    let other = server.tenant().await;
    let (s, _) = other.get(&next).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant cannot use the locator"
    );
    let (s, v) = c.get(&next).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["totalSize"].as_u64(), v["done"].as_bool()),
        (Some(299), Some(true))
    );
    let rest = v["records"].as_array().unwrap();
    assert_eq!(rest.len(), 99);
    assert_eq!(rest[98]["Commission__c"].to_string(), "100.10");
    seen.extend(rest.iter().map(|r| r["Name"].as_str().unwrap().to_string()));
    let want: Vec<String> = (1..300).rev().map(|i| format!("P{i:03}")).collect();
    assert_eq!(seen, want);

    // queryAll: deleted records are filtered (and shown) by their formula values.
    let (_, v) = q(&c, "SELECT Id FROM Opp__c WHERE Name = 'P150'").await;
    let id = v["records"][0]["Id"].as_str().unwrap().to_string();
    let (s, _) = c.delete(&format!("{DATA}/sobjects/Opp__c/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let soql = "SELECT Name, IsDeleted, Commission__c FROM Opp__c WHERE Commission__c = 115 OR Commission__c = 115.1";
    assert_eq!(names(&c, soql).await, strs(&["P151"]));
    let (s, v) = c
        .get(&format!(
            "{DATA}/queryAll?q={}",
            enc(&format!("{soql} ORDER BY Commission__c"))
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totalSize"], 2);
    assert_eq!(v["records"][0]["Name"], "P150");
    assert_eq!(v["records"][0]["IsDeleted"], true);
    assert_eq!(v["records"][0]["Commission__c"].to_string(), "115.00");
    assert_eq!(v["records"][1]["Name"], "P151");
    assert_eq!(v["records"][1]["IsDeleted"], false);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_cases_and_tenant_isolation() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let b = server.tenant().await;
    world(&a).await;
    schema(&b).await;
    let (_, beta_b) = accounts(&b).await;
    b.create_record(
        "Opp__c",
        json!({"Name": "Other", "Amount__c": 5000, "Account__c": beta_b}),
    )
    .await;
    for soql in [
        // Formula fields through a parent path.
        "SELECT Name FROM Opp__c WHERE Account__r.Disc2__c > 1",
        "SELECT Name FROM Opp__c ORDER BY Account__r.Disc2__c",
        // Aggregates, GROUP BY, HAVING.
        "SELECT COUNT() FROM Opp__c WHERE Commission__c > 1",
        "SELECT Stage__c, COUNT(Id) FROM Opp__c WHERE Commission__c > 1 GROUP BY Stage__c",
        "SELECT Stage__c, SUM(Commission__c) FROM Opp__c GROUP BY Stage__c",
        "SELECT Commission__c, COUNT(Id) FROM Opp__c GROUP BY Commission__c",
        // Semi-joins and child subqueries.
        "SELECT Name FROM Account__c WHERE Id IN (SELECT Account__c FROM Opp__c WHERE Commission__c > 0)",
        "SELECT Name, (SELECT Name FROM Opps__r WHERE Commission__c > 0) FROM Account__c",
        "SELECT Name, (SELECT Name FROM Opps__r ORDER BY Commission__c) FROM Account__c",
        "SELECT Name FROM Opp__c WHERE Commission__c IN (SELECT Id FROM Account__c)",
    ] {
        let (s, v) = q(&a, soql).await;
        assert_eq!(
            (s, err(&v).0.as_str()),
            (StatusCode::BAD_REQUEST, "INVALID_FIELD"),
            "{soql}: {v}"
        );
        assert!(err(&v).1.to_lowercase().contains("formula"), "{soql}: {v}");
    }
    // Each tenant sees only its own records, with its own formula values.
    assert_eq!(
        names(
            &a,
            "SELECT Name FROM Opp__c WHERE Commission__c > 100 ORDER BY Net__c"
        )
        .await,
        strs(&["Charlie", "Bravo", "Foxtrot"])
    );
    assert_eq!(
        names(
            &b,
            "SELECT Name FROM Opp__c WHERE Commission__c > 100 ORDER BY Net__c"
        )
        .await,
        strs(&["Other"])
    );
    let (_, v) = q(&b, "SELECT Net__c FROM Opp__c WHERE Net__c > 0").await;
    assert_eq!(v["records"][0]["Net__c"].to_string(), "2000.00");
    server.stop().await;
}

// ---- differential ------------------------------------------------------------

/// One record of the differential world, with its formulas computed in-test
/// (money in cents).
struct Rec {
    id: String,
    name: String,
    amount: Option<i64>,
    stage: Option<&'static str>,
    account: Option<&'static str>,
    commission: i64,
    net: Option<i64>,
    label: String,
}

#[derive(Clone, PartialEq)]
enum Key {
    Num(Option<i64>),
    Text(Option<String>),
}

fn key_cmp(a: &Key, b: &Key, desc: bool, nulls_first: bool) -> Ordering {
    let (x, y) = match (a, b) {
        (Key::Num(x), Key::Num(y)) => (x.map(Key2::N), y.map(Key2::N)),
        (Key::Text(x), Key::Text(y)) => (
            x.as_ref().map(|s| Key2::T(s.to_lowercase())),
            y.as_ref().map(|s| Key2::T(s.to_lowercase())),
        ),
        _ => unreachable!(),
    };
    match (x, y) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) if nulls_first => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) if nulls_first => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let o = x.cmp(&y);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Key2 {
    N(i64),
    T(String),
}

type Atom = (&'static str, fn(&Rec) -> bool);
type RecTest = Box<dyn Fn(&Rec) -> bool>;

fn atoms() -> Vec<Atom> {
    vec![
        ("Commission__c > 100", |r| r.commission > 10_000),
        ("Commission__c = 0", |r| r.commission == 0),
        ("Commission__c != 0", |r| r.commission != 0),
        ("Commission__c IN (0, 100.1, 250)", |r| {
            [0, 10_010, 25_000].contains(&r.commission)
        }),
        ("Net__c >= 1200", |r| r.net.is_some_and(|n| n >= 120_000)),
        ("Net__c < 900", |r| r.net.is_some_and(|n| n < 90_000)),
        ("Net__c = null", |r| r.net.is_none()),
        ("Net__c != null", |r| r.net.is_some()),
        ("Net__c != 450", |r| r.net != Some(45_000)),
        ("Net__c NOT IN (450, 1600, 900.9)", |r| {
            !r.net
                .is_some_and(|n| [45_000, 160_000, 90_090].contains(&n))
        }),
        ("Label__c LIKE '%gold%'", |r| {
            r.label.to_lowercase().contains("gold")
        }),
        ("Label__c LIKE 'a%'", |r| {
            r.label.to_lowercase().starts_with('a')
        }),
        ("Label__c > 'm'", |r| r.label.to_lowercase().as_str() > "m"),
        ("Label__c LIKE '%/ won'", |r| {
            r.label.to_lowercase().ends_with("/ won")
        }),
        ("Amount__c > 1000", |r| r.amount.is_some_and(|a| a > 1000)),
        ("Amount__c = null", |r| r.amount.is_none()),
        ("Stage__c = 'won'", |r| r.stage == Some("Won")),
        ("Name LIKE '%a%'", |r| r.name.to_lowercase().contains('a')),
        ("Account__r.Name = 'Beta'", |r| r.account == Some("Beta")),
    ]
}

fn sort_key(r: &Rec, field: &str) -> Key {
    match field {
        "Net__c" => Key::Num(r.net),
        "Commission__c" => Key::Num(Some(r.commission)),
        "Amount__c" => Key::Num(r.amount.map(|a| a * 100)),
        "Label__c" => Key::Text(Some(r.label.clone())),
        "Name" => Key::Text(Some(r.name.clone())),
        "Stage__c" => Key::Text(r.stage.map(str::to_string)),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_in_test_computation() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    schema(&c).await;
    let (acme, beta) = accounts(&c).await;
    let mut seed: u64 = 0x5eed_1234;
    let mut rnd = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let amounts = [
        None,
        Some(0),
        Some(500),
        Some(999),
        Some(1000),
        Some(1001),
        Some(1500),
        Some(2000),
        Some(9009),
        Some(12000),
    ];
    let letters = ["a", "B", "c", "D", "e", "Gold", "m", "N", "won", "Z"];
    let mut recs = Vec::new();
    let mut body = Vec::new();
    for i in 0..40 {
        let amount = amounts[rnd(amounts.len() as u64) as usize];
        let stage = [None, Some("Open"), Some("Won")][rnd(3) as usize];
        let account = [None, Some("Acme"), Some("Beta")][rnd(3) as usize];
        let name = format!(
            "{}{}{i:02}",
            letters[rnd(10) as usize],
            letters[rnd(10) as usize]
        );
        let commission = match amount {
            Some(a) if a > 1000 => a * 10,
            _ => 0,
        };
        let disc = match account {
            Some("Acme") => Some(10),
            Some("Beta") => Some(50),
            _ => None,
        };
        let net = match (amount, disc) {
            (Some(a), Some(d)) => Some(a * (100 - d) - commission),
            _ => None,
        };
        let tier = if account == Some("Acme") {
            "Gold"
        } else {
            "none"
        };
        let label = format!("{name} / {tier} / {}", stage.unwrap_or(""));
        let mut rec = json!({"attributes": {"type": "Opp__c"}, "Name": name});
        if let Some(a) = amount {
            rec["Amount__c"] = json!(a);
        }
        if let Some(s) = stage {
            rec["Stage__c"] = json!(s);
        }
        match account {
            Some("Acme") => rec["Account__c"] = json!(acme),
            Some("Beta") => rec["Account__c"] = json!(beta),
            _ => {}
        }
        body.push(rec);
        recs.push(Rec {
            id: String::new(),
            name,
            amount,
            stage,
            account,
            commission,
            net,
            label,
        });
    }
    let (s, v) = c
        .post(
            &format!("{DATA}/composite/sobjects"),
            json!({"records": body}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (r, res) in recs.iter_mut().zip(v.as_array().unwrap()) {
        r.id = res["id"].as_str().unwrap().to_string();
    }
    let atoms = atoms();
    let sort_fields = [
        "Net__c",
        "Commission__c",
        "Amount__c",
        "Label__c",
        "Name",
        "Stage__c",
    ];
    let mut non_empty = 0;
    for i in 0..50u64 {
        let mut pick = || atoms[rnd(atoms.len() as u64) as usize];
        let (a, b, cc) = (pick(), pick(), pick());
        let (cond, test): (String, RecTest) = match i % 5 {
            0 => (a.0.to_string(), Box::new(move |r| a.1(r))),
            1 => (
                format!("{} AND {}", a.0, b.0),
                Box::new(move |r| a.1(r) && b.1(r)),
            ),
            2 => (
                format!("{} OR {}", a.0, b.0),
                Box::new(move |r| a.1(r) || b.1(r)),
            ),
            3 => (
                format!("NOT ({}) AND {}", a.0, b.0),
                Box::new(move |r| !a.1(r) && b.1(r)),
            ),
            _ => (
                format!("({} OR {}) AND {}", a.0, b.0, cc.0),
                Box::new(move |r| (a.1(r) || b.1(r)) && cc.1(r)),
            ),
        };
        let nkeys = 1 + rnd(2) as usize;
        let mut keys = Vec::new();
        for _ in 0..nkeys {
            let f = sort_fields[rnd(sort_fields.len() as u64) as usize];
            let desc = rnd(2) == 1;
            let nulls = rnd(3);
            keys.push((f, desc, nulls));
        }
        let order: Vec<String> = keys
            .iter()
            .map(|(f, desc, nulls)| {
                format!(
                    "{f}{}{}",
                    if *desc { " DESC" } else { "" },
                    match nulls {
                        0 => "",
                        1 => " NULLS FIRST",
                        _ => " NULLS LAST",
                    }
                )
            })
            .collect();
        let (limit, offset) = if i % 3 == 0 {
            (Some(5usize), (i % 4) as usize)
        } else {
            (None, 0)
        };
        let mut soql = format!(
            "SELECT Name FROM Opp__c WHERE {cond} ORDER BY {}",
            order.join(", ")
        );
        if let Some(l) = limit {
            soql.push_str(&format!(" LIMIT {l} OFFSET {offset}"));
        }
        let mut want: Vec<&Rec> = recs.iter().filter(|r| test(r)).collect();
        want.sort_by(|x, y| {
            for (f, desc, nulls) in &keys {
                let nulls_first = match nulls {
                    0 => !desc,
                    1 => true,
                    _ => false,
                };
                let o = key_cmp(&sort_key(x, f), &sort_key(y, f), *desc, nulls_first);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.id.cmp(&y.id)
        });
        let want: Vec<String> = want
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .map(|r| r.name.clone())
            .collect();
        if !want.is_empty() {
            non_empty += 1;
        }
        assert_eq!(names(&c, &soql).await, want, "{soql}");
    }
    assert!(
        non_empty >= 25,
        "only {non_empty} of 50 queries matched rows"
    );
    server.stop().await;
}
