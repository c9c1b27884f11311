//! Hand-written SOQL / SOSL conformance over HTTP, expected results written
//! out: every clause, NULL semantics, LIKE escaping, date literals at month
//! and year boundaries (injected "today"), relationships both ways, semi- and
//! anti-joins, aggregates, paging through nextRecordsUrl (and expiry),
//! injection attempts, errors with positions, and tenant isolation.

mod common;
use chrono::{TimeZone, Utc};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn q(c: &Client, soql: &str) -> (StatusCode, Value) {
    c.get(&format!("{DATA}/query?q={}", enc(soql))).await
}

/// Runs a query that must succeed; returns its records.
async fn ok(c: &Client, soql: &str) -> Vec<Value> {
    let (s, v) = q(c, soql).await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    assert_eq!(
        v["totalSize"].as_u64().unwrap() as usize,
        v["records"].as_array().unwrap().len(),
        "{soql}: {v}"
    );
    v["records"].as_array().unwrap().clone()
}

/// The Name of each record.
async fn names(c: &Client, soql: &str) -> Vec<String> {
    ok(c, soql)
        .await
        .iter()
        .map(|r| r["Name"].as_str().unwrap_or("<null>").to_string())
        .collect()
}

fn err(v: &Value) -> (String, String) {
    (
        v[0]["errorCode"].as_str().unwrap_or("").to_string(),
        v[0]["message"].as_str().unwrap_or("").to_string(),
    )
}

struct World {
    server: TestServer,
    a: Client,
    b: Client,
}

/// Accounts A1..A5 with contacts; the same object names in tenant B.
async fn world() -> World {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let b = server.tenant().await;
    for c in [&a, &b] {
        c.create_object(json!({"api_name": "Account__c", "fields": [
            {"api_name": "Industry__c", "data_type": "text", "is_indexed": true},
            {"api_name": "Code__c", "data_type": "text", "is_unique": true, "is_external_id": true},
            {"api_name": "Revenue__c", "data_type": "currency", "precision": 18, "scale": 2},
            {"api_name": "Founded__c", "data_type": "date"},
            {"api_name": "Active__c", "data_type": "boolean"},
            {"api_name": "Tags__c", "data_type": "multi_picklist", "picklist_values": [{"value": "Red"}, {"value": "Green"}, {"value": "Blue"}]},
            {"api_name": "Secret__c", "data_type": "encrypted_text", "length": 20},
            {"api_name": "Seen__c", "data_type": "datetime"}
        ]}))
        .await;
        c.create_object(json!({"api_name": "Contact__c", "fields": [
            {"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c", "child_relationship_name": "Contacts__r"},
            {"api_name": "Email__c", "data_type": "email"},
            {"api_name": "Score__c", "data_type": "number", "precision": 10, "scale": 0}
        ]}))
        .await;
    }
    let accounts = [
        json!({"Name": "A1 Acme", "Industry__c": "Tech", "Code__c": "X-1", "Revenue__c": 100.5, "Founded__c": "2024-01-31", "Active__c": true, "Tags__c": "Red;Green", "Secret__c": "s1", "Seen__c": "2024-01-31T23:30:00Z"}),
        json!({"Name": "A2 Bolt_Works", "Industry__c": "tech", "Code__c": "X-2", "Revenue__c": 20, "Founded__c": "2024-02-01", "Active__c": false, "Tags__c": "Blue", "Seen__c": "2024-02-01T00:30:00Z"}),
        json!({"Name": "A3 100% Cotton", "Industry__c": "Retail", "Code__c": "X-3", "Revenue__c": -5, "Founded__c": "2023-12-31", "Active__c": true, "Tags__c": "Red"}),
        json!({"Name": "A4 O'Brien", "Industry__c": null, "Code__c": "X-4", "Founded__c": "2024-03-01", "Active__c": false}),
        json!({"Name": "A5 Zeta", "Industry__c": "Retail", "Code__c": "X-5", "Revenue__c": 20.00, "Founded__c": "2025-01-01", "Active__c": true, "Tags__c": "Green;Blue"}),
    ];
    let mut ids = Vec::new();
    for acc in accounts {
        ids.push(a.create_record("Account__c", acc).await);
    }
    let contacts = [
        ("C1 Ann", Some(0), "ann@x.io", Some(5)),
        ("C2 Bob", Some(0), "bob@x.io", Some(3)),
        ("C3 Cy", Some(1), "cy@x.io", None),
        ("C4 Di", None, "di@x.io", Some(9)),
        ("C5 Ed", Some(0), "ed@x.io", Some(1)),
    ];
    for (name, acc, email, score) in contacts {
        a.create_record(
            "Contact__c",
            json!({"Name": name, "Account__c": acc.map(|i: usize| ids[i].clone()), "Email__c": email, "Score__c": score}),
        )
        .await;
    }
    b.create_record(
        "Account__c",
        json!({"Name": "B1 Other tenant", "Industry__c": "Tech", "Code__c": "X-1"}),
    )
    .await;
    // "Today" is 2024-02-01 (a Thursday) for date literals.
    server
        .platform
        .queries
        .set_clock(Some(Utc.with_ymd_and_hms(2024, 2, 1, 12, 0, 0).unwrap()));
    World { server, a, b }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clauses_and_semantics() {
    let w = world().await;
    let a = &w.a;
    // SELECT / FROM / case-insensitive names and keywords.
    assert_eq!(
        names(a, "select name from account__c order by NAME").await,
        [
            "A1 Acme",
            "A2 Bolt_Works",
            "A3 100% Cotton",
            "A4 O'Brien",
            "A5 Zeta"
        ]
    );
    // WHERE: text = is case-insensitive (indexed field, through the pivot table).
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Industry__c = 'TECH' ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A2 Bolt_Works"]
    );
    // Unique / external-id field through record_unique.
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Code__c = 'x-3'").await,
        ["A3 100% Cotton"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Code__c IN ('X-1', 'x-5', 'nope') ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A5 Zeta"]
    );
    // NULL semantics.
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Industry__c = null").await,
        ["A4 O'Brien"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Industry__c != null ORDER BY Name"
        )
        .await
        .len(),
        4
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Industry__c != 'Tech' ORDER BY Name"
        )
        .await,
        ["A3 100% Cotton", "A4 O'Brien", "A5 Zeta"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Revenue__c < 50 ORDER BY Name"
        )
        .await,
        ["A2 Bolt_Works", "A3 100% Cotton", "A5 Zeta"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE NOT (Revenue__c < 50) ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A4 O'Brien"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Industry__c NOT IN ('Retail') ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A2 Bolt_Works", "A4 O'Brien"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Industry__c IN ('Retail', null) ORDER BY Name"
        )
        .await,
        ["A3 100% Cotton", "A4 O'Brien", "A5 Zeta"]
    );
    // Exact numbers: 20 = 20.00, negatives order below zero.
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Revenue__c = 20.000 ORDER BY Name"
        )
        .await,
        ["A2 Bolt_Works", "A5 Zeta"]
    );
    assert_eq!(names(a, "SELECT Name FROM Account__c WHERE Revenue__c >= -5 AND Revenue__c <= 20 ORDER BY Revenue__c, Name").await, ["A3 100% Cotton", "A2 Bolt_Works", "A5 Zeta"]);
    // Booleans, AND / OR with parentheses.
    assert_eq!(names(a, "SELECT Name FROM Account__c WHERE Active__c = true AND (Industry__c = 'retail' OR Revenue__c > 100) ORDER BY Name").await, ["A1 Acme", "A3 100% Cotton", "A5 Zeta"]);
    // LIKE: case-insensitive, escaped wildcards are literal.
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Name LIKE 'a1%'").await,
        ["A1 Acme"]
    );
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Name LIKE '%100\\%%'").await,
        ["A3 100% Cotton"]
    );
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Name LIKE '%\\_%'").await,
        ["A2 Bolt_Works"]
    );
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Name LIKE 'A_ Zeta'").await,
        ["A5 Zeta"]
    );
    assert!(
        names(a, "SELECT Name FROM Account__c WHERE Name LIKE 'A_Zeta'")
            .await
            .is_empty()
    );
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Name LIKE '%o\\'b%'").await,
        ["A4 O'Brien"]
    );
    // INCLUDES / EXCLUDES: ';' inside a value means AND.
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Tags__c INCLUDES ('red') ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A3 100% Cotton"]
    );
    assert_eq!(names(a, "SELECT Name FROM Account__c WHERE Tags__c INCLUDES ('Red;Green', 'Blue') ORDER BY Name").await, ["A1 Acme", "A2 Bolt_Works", "A5 Zeta"]);
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Tags__c EXCLUDES ('Green') ORDER BY Name"
        )
        .await,
        ["A2 Bolt_Works", "A3 100% Cotton", "A4 O'Brien"]
    );
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Tags__c = 'green;red'").await,
        ["A1 Acme"]
    );
    // ORDER BY: NULLS defaults (ASC → first, DESC → last) and explicit.
    assert_eq!(
        names(a, "SELECT Name FROM Account__c ORDER BY Revenue__c").await,
        [
            "A4 O'Brien",
            "A3 100% Cotton",
            "A2 Bolt_Works",
            "A5 Zeta",
            "A1 Acme"
        ]
    );
    assert_eq!(
        names(a, "SELECT Name FROM Account__c ORDER BY Revenue__c DESC").await,
        [
            "A1 Acme",
            "A2 Bolt_Works",
            "A5 Zeta",
            "A3 100% Cotton",
            "A4 O'Brien"
        ]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c ORDER BY Revenue__c DESC NULLS FIRST, Name DESC"
        )
        .await,
        [
            "A4 O'Brien",
            "A1 Acme",
            "A5 Zeta",
            "A2 Bolt_Works",
            "A3 100% Cotton"
        ]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c ORDER BY Industry__c ASC NULLS LAST, Name LIMIT 2"
        )
        .await,
        ["A3 100% Cotton", "A5 Zeta"]
    );
    // LIMIT / OFFSET.
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c ORDER BY Name LIMIT 2 OFFSET 1"
        )
        .await,
        ["A2 Bolt_Works", "A3 100% Cotton"]
    );
    assert!(
        names(a, "SELECT Name FROM Account__c ORDER BY Name OFFSET 10")
            .await
            .is_empty()
    );
    let (s, v) = q(a, "SELECT Name FROM Account__c OFFSET 2001").await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::BAD_REQUEST, "MALFORMED_QUERY"),
        "{v}"
    );
    // Values come back typed and formatted: currency at scale, decrypted text, datetimes.
    let r = &ok(a, "SELECT Revenue__c, Secret__c, Seen__c, Founded__c, Active__c, Tags__c FROM Account__c WHERE Code__c = 'X-1'").await[0];
    assert_eq!(r["Revenue__c"].to_string(), "100.50");
    assert_eq!(r["Secret__c"], "s1");
    assert_eq!(r["Seen__c"], "2024-01-31T23:30:00.000+0000");
    assert_eq!(r["Founded__c"], "2024-01-31");
    assert_eq!(r["Active__c"], true);
    assert_eq!(r["Tags__c"], "Red;Green");
    assert!(r["attributes"]["url"]
        .as_str()
        .unwrap()
        .starts_with("/services/data/v60.0/sobjects/Account__c/"));
    // The alias prefix does not count as a hop.
    assert_eq!(
        names(
            a,
            "SELECT acc.Name FROM Account__c acc WHERE acc.Code__c = 'X-2'"
        )
        .await,
        ["A2 Bolt_Works"]
    );
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_literals_at_boundaries() {
    let w = world().await;
    let a = &w.a;
    // Today = 2024-02-01 (UTC).
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Founded__c = TODAY").await,
        ["A2 Bolt_Works"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = YESTERDAY"
        )
        .await,
        ["A1 Acme"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = LAST_MONTH"
        )
        .await,
        ["A1 Acme"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = THIS_MONTH"
        )
        .await,
        ["A2 Bolt_Works"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = NEXT_MONTH"
        )
        .await,
        ["A4 O'Brien"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = LAST_YEAR"
        )
        .await,
        ["A3 100% Cotton"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = THIS_YEAR ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A2 Bolt_Works", "A4 O'Brien"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c > THIS_YEAR"
        )
        .await,
        ["A5 Zeta"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c < THIS_MONTH ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A3 100% Cotton"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = LAST_N_DAYS:32 ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A2 Bolt_Works", "A3 100% Cotton"]
    );
    assert_eq!(names(a, "SELECT Name FROM Account__c WHERE Founded__c != THIS_MONTH AND Founded__c IN (YESTERDAY, 2025-01-01) ORDER BY Name").await, ["A1 Acme", "A5 Zeta"]);
    // Datetime field: TODAY is [00:00, 24:00) in the tenant's zone.
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Seen__c = TODAY").await,
        ["A2 Bolt_Works"]
    );
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Seen__c = LAST_MONTH").await,
        ["A1 Acme"]
    );
    // In UTC-01:00 the 2024-01-31T23:30Z / 2024-02-01T00:30Z instants are 22:30 and 23:30 on Jan 31.
    w.server
        .platform
        .set_locale_settings(
            &a.user_id,
            &a.tenant_id,
            None,
            &mosaic_runtime::zones::LocaleInput {
                time_zone: Some(Some("Etc/GMT+1".into())),
                ..Default::default()
            },
        )
        .await
        .expect("tenant zone");
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Seen__c = TODAY ORDER BY Name"
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Seen__c = THIS_MONTH ORDER BY Name"
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Seen__c = LAST_MONTH ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A2 Bolt_Works"]
    );
    // Year boundary: "today" 2025-01-01 makes 2024 LAST_YEAR.
    w.server
        .platform
        .queries
        .set_clock(Some(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()));
    assert_eq!(
        names(a, "SELECT Name FROM Account__c WHERE Founded__c = TODAY").await,
        ["A5 Zeta"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = LAST_YEAR ORDER BY Name"
        )
        .await,
        ["A1 Acme", "A2 Bolt_Works", "A4 O'Brien"]
    );
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Account__c WHERE Founded__c = LAST_MONTH"
        )
        .await,
        Vec::<String>::new()
    );
    // Type mismatch: a datetime for a date field is an error naming the field.
    let (s, v) = q(
        a,
        "SELECT Name FROM Account__c WHERE Founded__c = 2024-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err(&v).0, "INVALID_FIELD", "{v}");
    assert!(err(&v).1.contains("Founded__c"), "{v}");
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationships_aggregates_and_joins() {
    let w = world().await;
    let a = &w.a;
    // Parent fields nest; an empty lookup is null.
    let recs = ok(a, "SELECT Name, Account__r.Name, Account__r.Industry__c, Owner.Username FROM Contact__c ORDER BY Name").await;
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0]["Account__r"]["Name"], "A1 Acme");
    assert_eq!(recs[0]["Account__r"]["Industry__c"], "Tech");
    assert_eq!(recs[0]["Account__r"]["attributes"]["type"], "Account__c");
    assert_eq!(recs[3]["Account__r"], Value::Null);
    assert_eq!(recs[0]["Owner"]["Username"], a.username.as_str());
    assert_eq!(recs[0]["Owner"]["attributes"]["type"], "User");
    // Filtering and sorting on a parent field (LEFT JOIN on the lookup slot).
    assert_eq!(names(a, "SELECT Name FROM Contact__c WHERE Account__r.Industry__c = 'tech' ORDER BY Account__r.Name DESC, Name").await, ["C3 Cy", "C1 Ann", "C2 Bob", "C5 Ed"]);
    assert_eq!(
        names(
            a,
            "SELECT Name FROM Contact__c WHERE Account__r.Name = null"
        )
        .await,
        ["C4 Di"]
    );
    // Child subqueries nest as query results, with their own WHERE / ORDER BY / LIMIT; none → null.
    let recs = ok(a, "SELECT Name, (SELECT Name, Score__c FROM Contacts__r WHERE Score__c != null ORDER BY Score__c DESC LIMIT 2) FROM Account__c ORDER BY Name").await;
    let kids = &recs[0]["Contacts__r"];
    assert_eq!(kids["totalSize"], 2);
    assert_eq!(kids["done"], true);
    assert_eq!(kids["records"][0]["Name"], "C1 Ann");
    assert_eq!(kids["records"][1]["Name"], "C2 Bob");
    assert_eq!(recs[1]["Contacts__r"], Value::Null, "C3 has no score");
    assert_eq!(recs[2]["Contacts__r"], Value::Null);
    // Semi-join and anti-join.
    assert_eq!(names(a, "SELECT Name FROM Account__c WHERE Id IN (SELECT Account__c FROM Contact__c WHERE Score__c > 2) ORDER BY Name").await, ["A1 Acme"]);
    assert_eq!(names(a, "SELECT Name FROM Account__c WHERE Id NOT IN (SELECT Account__c FROM Contact__c) ORDER BY Name").await, ["A3 100% Cotton", "A4 O'Brien", "A5 Zeta"]);
    assert_eq!(names(a, "SELECT Name FROM Contact__c WHERE Account__c IN (SELECT Id FROM Account__c WHERE Active__c = false) ORDER BY Name").await, ["C3 Cy"]);
    // Aggregates: COUNT, COUNT_DISTINCT, SUM / AVG exact, MIN / MAX, GROUP BY, HAVING, aliases.
    let recs = ok(a, "SELECT Industry__c, COUNT(Id) n, SUM(Revenue__c), AVG(Revenue__c) avg, MIN(Founded__c), MAX(Revenue__c) FROM Account__c WHERE Industry__c != null GROUP BY Industry__c ORDER BY Industry__c").await;
    assert_eq!(
        recs.len(),
        3,
        "text groups are case-sensitive: Tech, tech, Retail: {recs:?}"
    );
    let retail = &recs[0];
    assert_eq!(retail["attributes"]["type"], "AggregateResult");
    assert_eq!(retail["Industry__c"], "Retail");
    assert_eq!(retail["n"], 2);
    assert_eq!(retail["expr0"].to_string(), "15");
    assert_eq!(retail["avg"].to_string(), "7.5");
    assert_eq!(retail["expr1"], "2023-12-31");
    assert_eq!(retail["expr2"].to_string(), "20");
    let recs = ok(a, "SELECT Account__r.Industry__c, COUNT(Id) FROM Contact__c GROUP BY Account__r.Industry__c HAVING COUNT(Id) > 1").await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["Industry__c"], "Tech");
    assert_eq!(recs[0]["expr0"], 3);
    let recs = ok(a, "SELECT COUNT(Id), COUNT(Industry__c), COUNT_DISTINCT(Industry__c), SUM(Revenue__c) FROM Account__c").await;
    assert_eq!(
        (
            recs[0]["expr0"].as_u64(),
            recs[0]["expr1"].as_u64(),
            recs[0]["expr2"].as_u64()
        ),
        (Some(5), Some(4), Some(3))
    );
    assert_eq!(recs[0]["expr3"].to_string(), "135.5");
    let (s, v) = q(a, "SELECT COUNT() FROM Contact__c WHERE Score__c > 2").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            v["totalSize"].as_u64(),
            v["records"].as_array().map(Vec::len)
        ),
        (Some(3), Some(0))
    );
    // POST form, v1.
    let (s, v) = a
        .post(
            "/services/data/v1/query",
            json!({"query": "SELECT Name FROM Account__c WHERE Code__c = 'X-4'"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["records"][0]["Name"], "A4 O'Brien");
    assert_eq!(
        v["records"][0]["attributes"]["url"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(3),
        Some("v1")
    );
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_injection_and_isolation() {
    let w = world().await;
    let (a, b) = (&w.a, &w.b);
    // MALFORMED_QUERY with line / column and a caret.
    let (s, v) = q(a, "SELECT Name\nFROM Account__c\nWHERE Name = = 'x'").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (code, msg) = err(&v);
    assert_eq!(code, "MALFORMED_QUERY");
    assert!(msg.contains("line 3, column 14"), "{msg}");
    assert!(
        msg.ends_with("WHERE Name = = 'x'\n             ^"),
        "{msg:?}"
    );
    // INVALID_FIELD names field and object; INVALID_TYPE for unknown objects.
    let (s, v) = q(a, "SELECT Name, Bogus__c FROM Account__c").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (code, msg) = err(&v);
    assert_eq!(code, "INVALID_FIELD");
    assert!(
        msg.contains("'Bogus__c'") && msg.contains("Account__c") && msg.contains("column 14"),
        "{msg}"
    );
    assert_eq!(v[0]["fields"], json!(["Bogus__c"]));
    let (s, v) = q(a, "SELECT Name FROM Nope__c").await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_TYPE")
    );
    let (_, v) = q(a, "SELECT Account__c.Name FROM Contact__c").await;
    assert_eq!(
        err(&v).0,
        "INVALID_FIELD",
        "field name used as a relationship: {v}"
    );
    let (_, v) = q(a, "SELECT Name FROM Contact__c WHERE Owner.Username = 'x'").await;
    assert_eq!(err(&v).0, "INVALID_FIELD", "{v}");
    let (_, v) = q(a, "SELECT Name FROM Account__c WHERE Revenue__c = 'ten'").await;
    assert_eq!(err(&v).0, "INVALID_FIELD", "{v}");
    let (_, v) = q(a, "SELECT Name FROM Account__c WHERE Secret__c = 's1'").await;
    assert_eq!(
        err(&v).0,
        "INVALID_FIELD",
        "encrypted fields are not filterable: {v}"
    );
    let (s, v) = a.get(&format!("{DATA}/query")).await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::BAD_REQUEST, "MALFORMED_QUERY")
    );
    // Injection in literals matches nothing (it is just text).
    for lit in ["' OR 1=1 --", "x' OR '1'='1", "%' OR name LIKE '%"] {
        let soql = format!(
            "SELECT Name FROM Account__c WHERE Name = '{}'",
            lit.replace('\'', "\\'")
        );
        assert!(names(a, &soql).await.is_empty(), "{soql}");
        let soql = format!(
            "SELECT Name FROM Account__c WHERE Industry__c = '{}'",
            lit.replace('\'', "\\'")
        );
        assert!(names(a, &soql).await.is_empty(), "{soql}");
    }
    // Unescaped quotes, comments, statement separators, SQL-isms in names: malformed, never run.
    for soql in [
        "SELECT Name FROM Account__c WHERE Name = '' OR 1=1 --'",
        "SELECT Name FROM Account__c WHERE Name = '\\\\' OR 1=1 --'",
        "SELECT Name FROM Account__c WHERE Name = 'x'; DROP TABLE object_records",
        "SELECT Name__c; DROP TABLE object_records FROM Account__c",
        "SELECT Name FROM Account__c; DELETE FROM object_records",
        "SELECT Name FROM Account__c WHERE Name = 'a' UNION SELECT id FROM object_records",
        "SELECT \"Name\" FROM Account__c",
        "SELECT * FROM Account__c",
        "SELECT Name FROM object_records",
        "SELECT tenant_id FROM Account__c",
        "SELECT flex_string_1 FROM Account__c",
    ] {
        let (s, v) = q(a, soql).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{soql}: {v}");
        assert!(
            ["MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE"].contains(&err(&v).0.as_str()),
            "{soql}: {v}"
        );
    }
    assert_eq!(
        names(a, "SELECT Name FROM Account__c").await.len(),
        5,
        "nothing was dropped"
    );
    // Simple list endpoint: names only in fields / order_by.
    let (s, v) = a
        .get(&format!(
            "{DATA}/sobjects/Account__c?fields={}",
            enc("Name FROM Contact__c")
        ))
        .await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_INPUT"),
        "{v}"
    );
    let (s, v) = a
        .get(&format!(
            "{DATA}/sobjects/Account__c?order_by={}",
            enc("Name; DROP TABLE x")
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Isolation: same object names, different tenants, never leak.
    assert_eq!(
        names(b, "SELECT Name FROM Account__c").await,
        ["B1 Other tenant"]
    );
    assert_eq!(
        names(b, "SELECT Name FROM Account__c WHERE Code__c = 'X-1'").await,
        ["B1 Other tenant"]
    );
    assert_eq!(
        names(b, "SELECT Name FROM Account__c WHERE Industry__c = 'tech'").await,
        ["B1 Other tenant"]
    );
    assert!(names(b, "SELECT Name FROM Contact__c").await.is_empty());
    let (_, v) = b
        .get(&format!(
            "{DATA}/search?q={}",
            enc("FIND {Acme} RETURNING Account__c(Name)")
        ))
        .await;
    assert_eq!(v["searchRecords"], json!([]));
    let (_, v) = a
        .get(&format!(
            "{DATA}/query?q={}",
            enc("SELECT COUNT() FROM Account__c")
        ))
        .await;
    assert_eq!(v["totalSize"], 5);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_query_all_list_and_search() {
    let w = world().await;
    let (a, b) = (&w.a, &w.b);
    // 450 more contacts to page through with batchSize=200.
    for chunk in 0..3 {
        let records: Vec<Value> = (0..150)
            .map(|i| json!({"attributes": {"type": "Contact__c"}, "Name": format!("P{:03}", chunk * 150 + i), "Score__c": i % 7}))
            .collect();
        let (s, v) = a
            .post(
                &format!("{DATA}/composite/sobjects"),
                json!({"records": records}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let soql = "SELECT Name FROM Contact__c WHERE Name LIKE 'P%' ORDER BY Name";
    let send = |path: String, batch: Option<&str>| {
        let mut rb = a
            .http
            .get(format!("{}{}", a.base, path))
            .bearer_auth(a.token.as_ref().unwrap());
        if let Some(bs) = batch {
            rb = rb.header("Sforce-Query-Options", format!("batchSize={bs}"));
        }
        async move {
            let res = rb.send().await.unwrap();
            let s = res.status();
            (s, res.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = send(format!("{DATA}/query?q={}", enc(soql)), Some("200")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["totalSize"].as_u64(), v["done"].as_bool()),
        (Some(450), Some(false))
    );
    let mut seen: Vec<String> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen.len(), 200);
    let mut next = v["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(
        next.starts_with("/services/data/v60.0/query/") && next.ends_with("-200"),
        "{next}"
    );
    let first_next = next.clone();
    // A record changed after the first page does not move the snapshot.
    a.create_record("Contact__c", json!({"Name": "P000a"}))
        .await;
    loop {
        let (s, v) = a.get(&next).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["totalSize"], 450);
        seen.extend(
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Name"].as_str().unwrap().to_string()),
        );
        match v["nextRecordsUrl"].as_str() {
            Some(n) => next = n.to_string(),
            None => {
                assert_eq!(v["done"], true);
                break;
            }
        }
    }
    let want: Vec<String> = (0..450).map(|i| format!("P{i:03}")).collect();
    assert_eq!(seen, want);
    // Another tenant's token cannot use the locator; unknown and expired ones are INVALID_QUERY_LOCATOR.
    let (s, v) = b.get(&first_next).await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::NOT_FOUND, "INVALID_QUERY_LOCATOR")
    );
    let (s, v) = a.get(&format!("{DATA}/query/nosuchlocator-200")).await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::NOT_FOUND, "INVALID_QUERY_LOCATOR")
    );
    let (s, _) = a.get(&first_next).await;
    assert_eq!(s, StatusCode::OK, "still valid before expiry");
    w.server.platform.queries.expire_cursors();
    let (s, v) = a.get(&first_next).await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::NOT_FOUND, "INVALID_QUERY_LOCATOR")
    );
    // Default batch is 2,000: everything in one page, no locator.
    let (_, v) = send(format!("{DATA}/query?q={}", enc(soql)), None).await;
    assert_eq!(
        (
            v["totalSize"].as_u64(),
            v["done"].as_bool(),
            v.get("nextRecordsUrl")
        ),
        (Some(451), Some(true), None)
    );
    // Batch sizes are clamped to 200..2000.
    let (_, v) = send(format!("{DATA}/query?q={}", enc(soql)), Some("5")).await;
    assert_eq!(v["records"].as_array().unwrap().len(), 200);

    // queryAll sees deleted records and IsDeleted.
    let id = a.create_record("Contact__c", json!({"Name": "Gone"})).await;
    a.delete(&format!("{DATA}/sobjects/Contact__c/{id}")).await;
    assert!(names(a, "SELECT Name FROM Contact__c WHERE Name = 'Gone'")
        .await
        .is_empty());
    let (s, v) = a
        .get(&format!(
            "{DATA}/queryAll?q={}",
            enc("SELECT Name, IsDeleted FROM Contact__c WHERE Name = 'gone'")
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["records"][0]["IsDeleted"], true);

    // Simple list: params → query result; none → object info as before.
    let (s, v) = a
        .get(&format!(
            "{DATA}/sobjects/Account__c?fields=Name,Code__c&where={}&order_by={}&limit=2&offset=1",
            enc("Active__c = true"),
            enc("Name DESC")
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["A3 100% Cotton", "A1 Acme"]);
    let (s, v) = a.get(&format!("{DATA}/sobjects/Account__c")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["objectDescribe"]["name"], "Account__c");

    // Search: FTS over text fields, tenant-scoped, live records only, WHERE applies.
    let search = |term: &str| {
        let path = format!("{DATA}/search?q={}", enc(term));
        async move { a.get(&path).await }
    };
    let (s, v) = search("FIND {acme} IN ALL FIELDS RETURNING Account__c(Name, Industry__c)").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["searchRecords"].as_array().unwrap().len(), 1);
    assert_eq!(v["searchRecords"][0]["Name"], "A1 Acme");
    assert_eq!(v["searchRecords"][0]["Industry__c"], "Tech");
    assert_eq!(v["searchRecords"][0]["attributes"]["type"], "Account__c");
    let (_, v) =
        search("FIND {x.io} RETURNING Contact__c(Name WHERE Score__c > 2 ORDER BY Name)").await;
    let got: Vec<&str> = v["searchRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["C1 Ann", "C2 Bob", "C4 Di"]);
    let (_, v) = search("FIND {Bol*} RETURNING Account__c(Name)").await;
    assert_eq!(v["searchRecords"][0]["Name"], "A2 Bolt_Works");
    let (_, v) = search("FIND {gone} RETURNING Contact__c(Name)").await;
    assert_eq!(
        v["searchRecords"],
        json!([]),
        "deleted records are not found"
    );
    let (_, v) = search("FIND {\"O Brien\"} RETURNING Account__c").await;
    assert_eq!(v["searchRecords"].as_array().unwrap().len(), 1, "{v}");
    let (s, v) = search("FIND {\") OR * NEAR(} RETURNING Account__c").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "FTS syntax in the term is quoted away: {v}"
    );
    let (s, v) = search("FIND {acme} RETURNING Nope__c").await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::BAD_REQUEST, "INVALID_TYPE")
    );
    let (s, v) = search("FIND acme").await;
    assert_eq!(
        (s, err(&v).0.as_str()),
        (StatusCode::BAD_REQUEST, "MALFORMED_QUERY")
    );
    // Updates re-index.
    let acme = ok(a, "SELECT Id FROM Account__c WHERE Code__c = 'X-1'").await[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = a
        .send(
            Method::PATCH,
            &format!("{DATA}/sobjects/Account__c/{acme}"),
            Some(&json!({"Name": "A1 Renamed"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = search("FIND {acme} RETURNING Account__c(Name)").await;
    assert_eq!(v["searchRecords"], json!([]));
    let (_, v) = search("FIND {renamed} RETURNING Account__c(Name)").await;
    assert_eq!(v["searchRecords"][0]["Name"], "A1 Renamed");
    w.server.stop().await;
}
