//! SOQL date functions (`CALENDAR_YEAR` … `FISCAL_YEAR`, `DAY_ONLY`,
//! `HOUR_IN_DAY`) in SELECT / GROUP BY / WHERE / HAVING / ORDER BY, with
//! `convertTimezone()` across both daylight-saving changes of
//! America/New_York, and the organization's fiscal year start month (4)
//! used by the FISCAL_* functions and fiscal date literals. Every value is
//! computed by hand. Runs on SQLite, and on PostgreSQL with
//! `MOSAIC_TEST_BACKEND=postgres`.

mod common;
use chrono::{TimeZone, Utc};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const ADMIN: &str = "/services/admin/v1";

/// (name, CloseDate__c, At__c)
const EVENTS: [(&str, &str, &str); 5] = [
    // Sunday; 01:30 EST, half an hour before the spring-forward change.
    ("E1", "2024-03-31", "2024-03-10T06:30:00Z"),
    // Monday; 03:30 EDT, half an hour after it.
    ("E2", "2024-04-01", "2024-03-10T07:30:00Z"),
    // Friday; 22:00 on New Year's Eve in New York, 2024 in UTC.
    ("E3", "2023-12-15", "2024-01-01T03:00:00Z"),
    // Thursday; 01:30 EDT, the first 01:30 of the fall-back day.
    ("E4", "2024-07-04", "2024-11-03T05:30:00Z"),
    // Leap day, Thursday; 01:30 EST, the second 01:30.
    ("E5", "2024-02-29", "2024-11-03T06:30:00Z"),
];

async fn fixture(server: &TestServer) -> Client {
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Event__c", "fields": [
        {"api_name": "CloseDate__c", "data_type": "date"},
        {"api_name": "At__c", "data_type": "datetime"},
        {"api_name": "Kind__c", "data_type": "text"}
    ]}))
    .await;
    for (name, d, at) in EVENTS {
        c.create_record(
            "Event__c",
            json!({"Name": name, "CloseDate__c": d, "At__c": at, "Kind__c": "x"}),
        )
        .await;
    }
    let (s, v) = c
        .patch(
            &format!("{ADMIN}/organization"),
            json!({"time_zone": "America/New_York", "fiscal_year_start_month": 4}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fiscal_year_start_month"], 4, "{v}");
    c
}

fn num(v: &Value) -> Value {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => json!(f as i64),
        _ => v.clone(),
    }
}

async fn query(c: &Client, soql: &str) -> Value {
    let (s, v) = c.get(&format!("{DATA}/query?q={}", enc(soql))).await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    v
}

/// `f` per event name, through SELECT and GROUP BY.
async fn per_event(c: &Client, f: &str) -> BTreeMap<String, Value> {
    let v = query(
        c,
        &format!("SELECT Name n, {f} v FROM Event__c GROUP BY Name, {f}"),
    )
    .await;
    let rows = v["records"].as_array().expect("records");
    assert_eq!(rows.len(), EVENTS.len(), "{f}: {v}");
    rows.iter()
        .map(|r| (r["n"].as_str().unwrap_or("").to_string(), num(&r["v"])))
        .collect()
}

fn expect(values: [Value; 5]) -> BTreeMap<String, Value> {
    EVENTS
        .iter()
        .zip(values)
        .map(|((n, _, _), v)| (n.to_string(), v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_functions_match_hand_computed_values() {
    let server = TestServer::start().await;
    let c = fixture(&server).await;
    server
        .platform
        .queries
        .set_clock(Some(Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()));
    let cases: [(&str, [Value; 5]); 19] = [
        (
            "CALENDAR_YEAR(CloseDate__c)",
            [
                json!(2024),
                json!(2024),
                json!(2023),
                json!(2024),
                json!(2024),
            ],
        ),
        (
            "CALENDAR_QUARTER(CloseDate__c)",
            [json!(1), json!(2), json!(4), json!(3), json!(1)],
        ),
        (
            "CALENDAR_MONTH(CloseDate__c)",
            [json!(3), json!(4), json!(12), json!(7), json!(2)],
        ),
        (
            "DAY_IN_MONTH(CloseDate__c)",
            [json!(31), json!(1), json!(15), json!(4), json!(29)],
        ),
        (
            "DAY_IN_WEEK(CloseDate__c)",
            [json!(1), json!(2), json!(6), json!(5), json!(5)],
        ),
        (
            "DAY_IN_YEAR(CloseDate__c)",
            [json!(91), json!(92), json!(349), json!(186), json!(60)],
        ),
        (
            "WEEK_IN_MONTH(CloseDate__c)",
            [json!(5), json!(1), json!(3), json!(1), json!(5)],
        ),
        (
            "WEEK_IN_YEAR(CloseDate__c)",
            [json!(13), json!(14), json!(50), json!(27), json!(9)],
        ),
        // Fiscal year from April, named by the year it ends in.
        (
            "FISCAL_YEAR(CloseDate__c)",
            [
                json!(2024),
                json!(2025),
                json!(2024),
                json!(2025),
                json!(2024),
            ],
        ),
        (
            "FISCAL_QUARTER(CloseDate__c)",
            [json!(4), json!(1), json!(3), json!(2), json!(4)],
        ),
        (
            "FISCAL_MONTH(CloseDate__c)",
            [json!(12), json!(1), json!(9), json!(4), json!(11)],
        ),
        // Datetimes: UTC unless converted.
        (
            "HOUR_IN_DAY(At__c)",
            [json!(6), json!(7), json!(3), json!(5), json!(6)],
        ),
        (
            "HOUR_IN_DAY(convertTimezone(At__c))",
            [json!(1), json!(3), json!(22), json!(1), json!(1)],
        ),
        (
            "DAY_ONLY(At__c)",
            [
                json!("2024-03-10"),
                json!("2024-03-10"),
                json!("2024-01-01"),
                json!("2024-11-03"),
                json!("2024-11-03"),
            ],
        ),
        (
            "DAY_ONLY(convertTimezone(At__c))",
            [
                json!("2024-03-10"),
                json!("2024-03-10"),
                json!("2023-12-31"),
                json!("2024-11-03"),
                json!("2024-11-03"),
            ],
        ),
        (
            "CALENDAR_YEAR(At__c)",
            [
                json!(2024),
                json!(2024),
                json!(2024),
                json!(2024),
                json!(2024),
            ],
        ),
        (
            "CALENDAR_YEAR(convertTimezone(At__c))",
            [
                json!(2024),
                json!(2024),
                json!(2023),
                json!(2024),
                json!(2024),
            ],
        ),
        (
            "DAY_IN_WEEK(convertTimezone(At__c))",
            [json!(1), json!(1), json!(1), json!(1), json!(1)],
        ),
        (
            "FISCAL_YEAR(convertTimezone(At__c))",
            [
                json!(2024),
                json!(2024),
                json!(2024),
                json!(2025),
                json!(2025),
            ],
        ),
    ];
    for (f, values) in cases {
        assert_eq!(per_event(&c, f).await, expect(values), "{f}");
    }

    // WHERE, with the zone's daylight saving.
    for (soql, names) in [
        (
            "SELECT Name FROM Event__c WHERE HOUR_IN_DAY(convertTimezone(At__c)) = 1 ORDER BY Name",
            vec!["E1", "E4", "E5"],
        ),
        (
            "SELECT Name FROM Event__c WHERE HOUR_IN_DAY(At__c) >= 6 ORDER BY Name",
            vec!["E1", "E2", "E5"],
        ),
        (
            "SELECT Name FROM Event__c WHERE DAY_ONLY(convertTimezone(At__c)) = 2023-12-31",
            vec!["E3"],
        ),
        (
            "SELECT Name FROM Event__c WHERE FISCAL_QUARTER(CloseDate__c) IN (1, 2) ORDER BY Name",
            vec!["E2", "E4"],
        ),
        (
            "SELECT Name FROM Event__c WHERE CALENDAR_YEAR(CloseDate__c) != 2024",
            vec!["E3"],
        ),
        // Fiscal date literals use the start month too: FY2025 is 2024-04-01 … 2025-03-31.
        (
            "SELECT Name FROM Event__c WHERE CloseDate__c = THIS_FISCAL_YEAR ORDER BY Name",
            vec!["E2", "E4"],
        ),
        (
            "SELECT Name FROM Event__c WHERE CloseDate__c = LAST_FISCAL_YEAR ORDER BY Name",
            vec!["E1", "E3", "E5"],
        ),
    ] {
        let v = query(&c, soql).await;
        let got: Vec<&str> = v["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["Name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(got, names, "{soql}");
    }

    // GROUP BY with HAVING and ORDER BY on the function.
    let v = query(
        &c,
        "SELECT FISCAL_YEAR(CloseDate__c) fy, COUNT(Id) n FROM Event__c GROUP BY FISCAL_YEAR(CloseDate__c) ORDER BY FISCAL_YEAR(CloseDate__c) DESC",
    )
    .await;
    let rows: Vec<(Value, Value)> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| (num(&r["fy"]), num(&r["n"])))
        .collect();
    assert_eq!(
        rows,
        vec![(json!(2025), json!(2)), (json!(2024), json!(3))],
        "{v}"
    );
    let v = query(
        &c,
        "SELECT CALENDAR_MONTH(CloseDate__c) m, COUNT(Id) n FROM Event__c GROUP BY CALENDAR_MONTH(CloseDate__c) HAVING CALENDAR_MONTH(CloseDate__c) > 6",
    )
    .await;
    let months: Vec<Value> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| num(&r["m"]))
        .collect();
    assert_eq!(months, vec![json!(7), json!(12)], "{v}");

    // Misuse: 400s naming the problem.
    for (soql, code) in [
        ("SELECT CALENDAR_YEAR(CloseDate__c) y, COUNT(Id) FROM Event__c GROUP BY CALENDAR_MONTH(CloseDate__c)", "MALFORMED_QUERY"),
        ("SELECT CALENDAR_YEAR(Kind__c), COUNT(Id) FROM Event__c GROUP BY CALENDAR_YEAR(Kind__c)", "INVALID_FIELD"),
        ("SELECT Name FROM Event__c WHERE HOUR_IN_DAY(CloseDate__c) = 1", "INVALID_FIELD"),
        ("SELECT Name FROM Event__c WHERE CALENDAR_YEAR(convertTimezone(CloseDate__c)) = 2024", "INVALID_FIELD"),
        ("SELECT Name FROM Event__c ORDER BY CALENDAR_YEAR(Nothing__c)", "INVALID_FIELD"),
    ] {
        let (s, v) = c.get(&format!("{DATA}/query?q={}", enc(soql))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{soql}: {v}");
        assert_eq!(v[0]["errorCode"], code, "{soql}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fiscal_year_start_month_is_an_organization_setting() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let (s, v) = c.get(&format!("{ADMIN}/organization")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fiscal_year_start_month"], 1, "{v}");
    for bad in [json!(0), json!(13), json!(-4)] {
        let (s, v) = c
            .patch(
                &format!("{ADMIN}/organization"),
                json!({"fiscal_year_start_month": bad}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains("fiscal_year_start_month"), "{v}");
    }
    let (s, v) = c
        .patch(
            &format!("{ADMIN}/organization"),
            json!({"fiscal_year_start_month": 10}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = c.get(&format!("{ADMIN}/organization")).await;
    assert_eq!(v["fiscal_year_start_month"], 10, "{v}");
    // The time zone is kept; null goes back to January.
    let (s, v) = c
        .patch(
            &format!("{ADMIN}/organization"),
            json!({"fiscal_year_start_month": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fiscal_year_start_month"], 1, "{v}");
}

/// `GROUP BY ROLLUP` / `CUBE` with `GROUPING()`: subtotal rows after the
/// rows they total, the grand total last, identical on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_and_cube_add_subtotal_rows() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Deal__c", "fields": [
        {"api_name": "Region__c", "data_type": "text"},
        {"api_name": "Won__c", "data_type": "boolean"},
        {"api_name": "Amount__c", "data_type": "number", "precision": 10, "scale": 0}
    ]}))
    .await;
    for (name, region, won, amount) in [
        ("D1", Some("East"), true, 10),
        ("D2", Some("East"), false, 20),
        ("D3", Some("West"), true, 30),
        ("D4", Some("West"), true, 40),
        ("D5", None, false, 50),
    ] {
        c.create_record(
            "Deal__c",
            json!({"Name": name, "Region__c": region, "Won__c": won, "Amount__c": amount}),
        )
        .await;
    }
    let rows = |v: &Value| -> Vec<Value> {
        v["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| {
                json!([
                    r["Region__c"],
                    r["Won__c"],
                    num(&r["gr"]),
                    num(&r["gw"]),
                    num(&r["n"]),
                    num(&r["s"])
                ])
            })
            .collect()
    };
    let select = "SELECT Region__c, Won__c, GROUPING(Region__c) gr, GROUPING(Won__c) gw, COUNT(Id) n, SUM(Amount__c) s FROM Deal__c";
    let v = query(&c, &format!("{select} GROUP BY ROLLUP(Region__c, Won__c)")).await;
    let n = Value::Null;
    assert_eq!(
        rows(&v),
        vec![
            json!([n, false, 0, 0, 1, 50]),
            json!([n, n, 0, 1, 1, 50]),
            json!(["East", false, 0, 0, 1, 20]),
            json!(["East", true, 0, 0, 1, 10]),
            json!(["East", n, 0, 1, 2, 30]),
            json!(["West", true, 0, 0, 2, 70]),
            json!(["West", n, 0, 1, 2, 70]),
            json!([n, n, 1, 1, 5, 150]),
        ],
        "{v}"
    );
    let v = query(&c, &format!("{select} GROUP BY CUBE(Region__c, Won__c)")).await;
    assert_eq!(
        rows(&v),
        vec![
            json!([n, false, 0, 0, 1, 50]),
            json!([n, n, 0, 1, 1, 50]),
            json!(["East", false, 0, 0, 1, 20]),
            json!(["East", true, 0, 0, 1, 10]),
            json!(["East", n, 0, 1, 2, 30]),
            json!(["West", true, 0, 0, 2, 70]),
            json!(["West", n, 0, 1, 2, 70]),
            json!([n, false, 1, 0, 2, 70]),
            json!([n, true, 1, 0, 3, 80]),
            json!([n, n, 1, 1, 5, 150]),
        ],
        "{v}"
    );
    // HAVING on GROUPING(): the subtotal rows only.
    let v = query(
        &c,
        &format!("{select} GROUP BY ROLLUP(Region__c, Won__c) HAVING GROUPING(Won__c) = 1"),
    )
    .await;
    assert_eq!(
        rows(&v),
        vec![
            json!([n, n, 0, 1, 1, 50]),
            json!(["East", n, 0, 1, 2, 30]),
            json!(["West", n, 0, 1, 2, 70]),
            json!([n, n, 1, 1, 5, 150]),
        ],
        "{v}"
    );
    // ORDER BY comes first, subtotals included.
    let v = query(
        &c,
        "SELECT Region__c r, SUM(Amount__c) s FROM Deal__c GROUP BY ROLLUP(Region__c) ORDER BY SUM(Amount__c) DESC",
    )
    .await;
    let got: Vec<Value> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| json!([r["r"], num(&r["s"])]))
        .collect();
    assert_eq!(
        got,
        vec![
            json!([n, 150]),
            json!(["West", 70]),
            json!([n, 50]),
            json!(["East", 30])
        ],
        "{v}"
    );
    // A date function as a ROLLUP key.
    let v = query(
        &c,
        "SELECT CALENDAR_YEAR(CreatedDate) y, Won__c, COUNT(Id) n FROM Deal__c GROUP BY ROLLUP(CALENDAR_YEAR(CreatedDate), Won__c)",
    )
    .await;
    let got: Vec<Value> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| json!([r["y"].is_null(), r["Won__c"], num(&r["n"])]))
        .collect();
    assert_eq!(
        got,
        vec![
            json!([false, false, 2]),
            json!([false, true, 3]),
            json!([false, n, 5]),
            json!([true, n, 5]),
        ],
        "{v}"
    );
}
