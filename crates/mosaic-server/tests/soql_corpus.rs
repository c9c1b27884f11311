//! The SOQL conformance corpus (`crates/mosaic-soql/tests/corpus/soql.txt`)
//! run over HTTP against a fixture tenant: every query whose objects exist in
//! the fixture schema plans and runs (or answers its expected error code), and
//! the record count is checked where the corpus states one. Every query the
//! parser refuses answers `400 MALFORMED_QUERY`. Runs on SQLite, and on
//! PostgreSQL with `MOSAIC_TEST_BACKEND=postgres`.

mod common;
use chrono::{TimeZone, Utc};
use common::*;
use reqwest::StatusCode;
use serde_json::json;

struct Case {
    text: String,
    expect: String,
    rows: Option<u64>,
}

fn corpus() -> Vec<Case> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mosaic-soql/tests/corpus/soql.txt");
    let text = std::fs::read_to_string(path).expect("corpus file");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut case: Option<Case> = None;
        for line in block.lines() {
            if let Some(q) = line.strip_prefix("query: ") {
                case = Some(Case {
                    text: q.to_string(),
                    expect: String::new(),
                    rows: None,
                });
            } else if let Some(c) = case.as_mut() {
                if let Some(e) = line.strip_prefix("expect: ") {
                    c.expect = e.to_string();
                } else if let Some(n) = line.strip_prefix("rows: ") {
                    c.rows = Some(n.parse().expect("rows: N"));
                }
            }
        }
        out.extend(case);
    }
    out
}

/// Names the fixture defines (objects, child relationships) or that the
/// corpus uses to test a missing one; `a` is an alias.
const FIXTURE_NAMES: [&str; 8] = [
    "account__c",
    "contact__c",
    "opportunity__c",
    "contacts__r",
    "opportunities__r",
    "nothing__c",
    "nothing__r",
    "a",
];

/// True when every `FROM` of the statement names something of the fixture.
fn on_fixture(soql: &str) -> bool {
    let words: Vec<&str> = soql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let targets: Vec<&str> = words
        .windows(2)
        .filter(|w| w[0].eq_ignore_ascii_case("FROM"))
        .map(|w| w[1])
        .collect();
    !targets.is_empty()
        && targets.iter().all(|t| {
            t.split('.')
                .all(|part| FIXTURE_NAMES.iter().any(|n| n.eq_ignore_ascii_case(part)))
        })
}

async fn fixture(c: &Client) {
    c.create_object(json!({"api_name": "Account__c", "fields": [
        {"api_name": "Industry__c", "data_type": "text", "is_indexed": true},
        {"api_name": "AnnualRevenue__c", "data_type": "currency", "precision": 18, "scale": 2},
        {"api_name": "Founded__c", "data_type": "date"},
        {"api_name": "Active__c", "data_type": "boolean"},
        {"api_name": "Rating__c", "data_type": "picklist", "picklist_values": [{"value": "Hot"}, {"value": "Warm"}, {"value": "Cold"}]},
        {"api_name": "Tags__c", "data_type": "multi_picklist", "picklist_values": [{"value": "Red"}, {"value": "Green"}, {"value": "Blue"}]}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Contact__c", "fields": [
        {"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c", "child_relationship_name": "Contacts__r"},
        {"api_name": "Email__c", "data_type": "email"},
        {"api_name": "Level__c", "data_type": "number", "precision": 10, "scale": 0}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Opportunity__c", "fields": [
        {"api_name": "Account__c", "data_type": "lookup", "lookup_object": "Account__c", "child_relationship_name": "Opportunities__r"},
        {"api_name": "Amount__c", "data_type": "currency", "precision": 18, "scale": 2},
        {"api_name": "CloseDate__c", "data_type": "date"},
        {"api_name": "StageName__c", "data_type": "text"},
        {"api_name": "Probability__c", "data_type": "percent", "precision": 5, "scale": 0},
        {"api_name": "LastActivity__c", "data_type": "datetime"}
    ]}))
    .await;
    let accounts = [
        json!({"Name": "A1 Acme", "Industry__c": "Tech", "AnnualRevenue__c": 100.5, "Founded__c": "2024-01-31", "Active__c": true, "Rating__c": "Hot", "Tags__c": "Red;Green"}),
        json!({"Name": "A2 Bolt", "Industry__c": "Retail", "AnnualRevenue__c": 20, "Founded__c": "2023-06-15", "Active__c": false, "Rating__c": "Warm"}),
        json!({"Name": "A3 Cotton", "Industry__c": "Retail", "AnnualRevenue__c": 5000, "Founded__c": "2020-02-01", "Active__c": true, "Rating__c": "Cold", "Tags__c": "Blue"}),
        json!({"Name": "A4 Delta", "Founded__c": "2024-02-01", "Active__c": false}),
    ];
    let mut ids = Vec::new();
    for a in accounts {
        ids.push(c.create_record("Account__c", a).await);
    }
    let contacts = [
        ("C1 Ann", Some(0), Some(5)),
        ("C2 Bob", Some(0), Some(3)),
        ("C3 Cy", Some(1), None),
        ("C4 Di", None, Some(9)),
    ];
    for (name, acc, level) in contacts {
        c.create_record(
            "Contact__c",
            json!({"Name": name, "Account__c": acc.map(|i: usize| ids[i].clone()), "Email__c": format!("{}@x.io", name.len()), "Level__c": level}),
        )
        .await;
    }
    let opps = [
        json!({"Name": "O1", "Account__c": ids[0], "Amount__c": 1000, "CloseDate__c": "2024-01-15", "StageName__c": "Closed Won", "Probability__c": 100, "LastActivity__c": "2024-01-31T10:00:00Z"}),
        json!({"Name": "O2", "Account__c": ids[0], "Amount__c": 250.5, "CloseDate__c": "2024-03-10", "StageName__c": "Prospecting", "Probability__c": 10, "LastActivity__c": "2024-01-15T08:00:00Z"}),
        json!({"Name": "O3", "Account__c": ids[2], "Amount__c": 6000, "CloseDate__c": "2023-11-20", "StageName__c": "Closed Lost", "Probability__c": 0, "LastActivity__c": "2023-06-01T00:00:00Z"}),
        json!({"Name": "O4", "Account__c": ids[1], "CloseDate__c": "2024-02-01", "StageName__c": "Prospecting", "Probability__c": 20}),
    ];
    for o in opps {
        c.create_record("Opportunity__c", o).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_plans_and_runs_on_the_fixture() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    fixture(&c).await;
    // "Today" is 2024-02-01 (a Thursday) for date literals.
    server
        .platform
        .queries
        .set_clock(Some(Utc.with_ymd_and_hms(2024, 2, 1, 12, 0, 0).unwrap()));
    let cases = corpus();
    let (mut ran, mut skipped, mut counted, mut refused) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let parse_error = case.expect == "parse";
        if !parse_error && !on_fixture(&case.text) {
            skipped += 1;
            continue;
        }
        let (status, body) = c.get(&format!("{DATA}/query?q={}", enc(&case.text))).await;
        let code = body[0]["errorCode"].as_str().unwrap_or("").to_string();
        let outcome = match case.expect.as_str() {
            "ok" => {
                if status != StatusCode::OK {
                    Err(format!("{status} {body}"))
                } else if let Some(n) = case.rows {
                    counted += 1;
                    let total = body["totalSize"].as_u64().unwrap_or(u64::MAX);
                    if total == n {
                        Ok(())
                    } else {
                        Err(format!("{total} rows, expected {n}: {body}"))
                    }
                } else {
                    Ok(())
                }
            }
            "parse" => {
                refused += 1;
                if status == StatusCode::BAD_REQUEST && code == "MALFORMED_QUERY" {
                    Ok(())
                } else {
                    Err(format!("expected 400 MALFORMED_QUERY, got {status} {body}"))
                }
            }
            expected => {
                if code == expected && (status.is_client_error() || status.is_server_error()) {
                    Ok(())
                } else {
                    Err(format!("expected {expected}, got {status} {body}"))
                }
            }
        };
        ran += 1;
        if let Err(e) = outcome {
            failures.push(format!("{}\n  → {e}", case.text));
        }
    }
    println!(
        "corpus on the fixture: {} cases, {ran} sent ({refused} parse errors), {counted} row counts checked, {skipped} skipped (objects not in the fixture)",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    server.stop().await;
}

const ADMIN: &str = "/services/admin/v1";
const PASSWORD: &str = "correct-horse-battery";

/// A standard user of the tenant, signed in with a password grant.
async fn standard_user(admin: &Client) -> (String, Client) {
    let username = format!("soql-{}@example.test", admin.tenant_id);
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": username, "password": PASSWORD, "email": "u@example.test", "profile": "standard"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", admin.base))
        .form(&[
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t: serde_json::Value = res.json().await.unwrap();
    let mut c = admin.with_token(t["access_token"].as_str().unwrap());
    c.user_id = id.clone();
    c.username = username;
    (id, c)
}

/// `WITH SECURITY_ENFORCED` / `USER_MODE` turn "no such field" for a field
/// the caller may not read into INSUFFICIENT_ACCESS; `FIELDS(CUSTOM)` lists
/// readable fields only; `USING SCOPE mine` keeps the caller's own records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_modes_fields_and_scope() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    fixture(&admin).await;
    let (uid, user) = standard_user(&admin).await;
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/permission-sets"),
            json!({"name": "Accounts",
                   "object_permissions": [{"object": "Account__c", "create": true, "read": true, "edit": true}],
                   "field_permissions": [{"object": "Account__c", "field": "Industry__c", "read": true, "edit": true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let set = v["id"].as_str().unwrap().to_string();
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/permission-sets/{set}/assignments"),
            json!({"user_id": uid}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    user.create_record(
        "Account__c",
        json!({"Name": "U1 Mine", "Industry__c": "Tech"}),
    )
    .await;

    let q = |c: &Client, soql: &str| {
        let path = format!("{DATA}/query?q={}", enc(soql));
        let c = c.clone();
        async move { c.get(&path).await }
    };
    // Without the clause an unreadable field is as good as absent.
    let (s, v) = q(&user, "SELECT Name, AnnualRevenue__c FROM Account__c").await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str()),
        (StatusCode::BAD_REQUEST, Some("INVALID_FIELD")),
        "{v}"
    );
    for clause in ["WITH SECURITY_ENFORCED", "WITH USER_MODE"] {
        let (s, v) = q(
            &user,
            &format!("SELECT Name, AnnualRevenue__c FROM Account__c {clause}"),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{clause}: {v}");
        assert_eq!(v[0]["errorCode"], "INSUFFICIENT_ACCESS", "{v}");
        assert_eq!(v[0]["fields"], json!(["AnnualRevenue__c"]), "{v}");
        let (s, v) = q(&user, &format!("SELECT Name FROM Opportunity__c {clause}")).await;
        assert_eq!(v[0]["errorCode"], "INSUFFICIENT_ACCESS", "{s} {v}");
        // Names that exist nowhere keep their own error.
        let (_, v) = q(&user, &format!("SELECT Nope__c FROM Account__c {clause}")).await;
        assert_eq!(v[0]["errorCode"], "INVALID_FIELD", "{v}");
        let (s, v) = q(
            &user,
            &format!("SELECT Name, Industry__c FROM Account__c {clause}"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // SYSTEM_MODE never widens access through the API.
    let (_, v) = q(
        &user,
        "SELECT AnnualRevenue__c FROM Account__c WITH SYSTEM_MODE",
    )
    .await;
    assert_eq!(v[0]["errorCode"], "INVALID_FIELD", "{v}");
    // FIELDS(CUSTOM): the readable custom fields only.
    let (s, v) = q(
        &user,
        "SELECT FIELDS(CUSTOM) FROM Account__c WHERE Name = 'U1 Mine' LIMIT 10",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rec = &v["records"][0];
    assert_eq!(rec["Industry__c"], "Tech", "{v}");
    assert!(rec.get("AnnualRevenue__c").is_none(), "{v}");
    let (_, v) = q(
        &admin,
        "SELECT FIELDS(ALL) FROM Account__c WHERE Name = 'A1 Acme' LIMIT 1",
    )
    .await;
    let rec = &v["records"][0];
    for f in [
        "Id",
        "Name",
        "OwnerId",
        "CreatedDate",
        "Industry__c",
        "AnnualRevenue__c",
        "Tags__c",
    ] {
        assert!(rec.get(f).is_some(), "FIELDS(ALL) lacks {f}: {v}");
    }
    // USING SCOPE mine: the caller's own records; everything: all they see.
    let (_, v) = q(&admin, "SELECT Name FROM Account__c USING SCOPE everything").await;
    assert_eq!(v["totalSize"], 5, "{v}");
    let (_, v) = q(
        &admin,
        "SELECT Name FROM Account__c USING SCOPE mine ORDER BY Name",
    )
    .await;
    assert_eq!(v["totalSize"], 4, "{v}");
    let (_, v) = q(
        &admin,
        "SELECT Name FROM Account__c USING SCOPE mine WHERE Name LIKE 'U%'",
    )
    .await;
    assert_eq!(v["totalSize"], 0, "{v}");
    let (_, v) = q(&user, "SELECT Name FROM Account__c USING SCOPE mine").await;
    assert_eq!(v["records"][0]["Name"], "U1 Mine", "{v}");
    assert_eq!(v["totalSize"], 1, "{v}");
    server.stop().await;
}
