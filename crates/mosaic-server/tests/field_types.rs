//! Every field type through the Data API over real HTTP: what a client sends,
//! what it reads back, and the exact error for every way a value is wrong.
//! Also the record endpoints' edges: defaults, cascades, upsert, batches,
//! soft delete, `?fields=`, versions, and malformed requests.

mod common;
use common::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const KS: &str = "KS__c";

fn rec(id: &str) -> String {
    format!("{DATA}/sobjects/{KS}/{id}")
}

fn sobject(o: &str) -> String {
    format!("{DATA}/sobjects/{o}")
}

/// The `fields` of each error of an error-array response.
fn error_fields(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    e["fields"]
                        .as_array()
                        .map(|f| {
                            f.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sends a raw body with the given content type; returns status and text.
async fn raw(
    c: &Client,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut rb = c
        .http
        .request(method, format!("{}{}", c.base, path))
        .bearer_auth(c.token.as_deref().unwrap_or(""))
        .body(body);
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    let res = rb.send().await.expect("send");
    let s = res.status();
    (s, res.text().await.expect("text"))
}

/// JSON text of a value, so numbers are compared with their exact digits.
fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

/// Parses JSON text (numbers keep their digits: arbitrary precision).
fn j(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad test JSON {s}: {e}"))
}

/// (field, JSON input, JSON text read back)
fn valid_cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("Text__c", json!("0123456789"), r#""0123456789""#),
        ("Text__c", json!("ünïcødé✓"), r#""ünïcødé✓""#),
        // Ten characters of four bytes each: the limit counts characters.
        (
            "Text__c",
            json!("😀😀😀😀😀😀😀😀😀😀"),
            r#""😀😀😀😀😀😀😀😀😀😀""#,
        ),
        ("Text__c", json!(""), "null"),
        ("Text__c", Value::Null, "null"),
        ("Area__c", json!("line1\nline2"), r#""line1\nline2""#),
        (
            "Rich__c",
            json!("<b>bold</b> & <i>it</i>"),
            r#""<b>bold</b> & <i>it</i>""#,
        ),
        ("Long__c", json!("x".repeat(300)), "LONG300"),
        ("Num__c", j("1.005"), "1.01"),
        ("Num__c", j("-0.005"), "-0.01"),
        ("Num__c", j("9999.99"), "9999.99"),
        ("Num__c", j("12"), "12.00"),
        ("Num__c", json!("  42.1 "), "42.10"),
        ("Num__c", j("1e2"), "100.00"),
        ("Money__c", j("1234.565"), "1234.57"),
        ("Money__c", json!("12.5"), "12.50"),
        ("Money__c", j("0.1"), "0.10"),
        // Exact: 16 integer digits survive (no f64 on the way).
        (
            "Money__c",
            json!("1234567890123456.78"),
            "1234567890123456.78",
        ),
        ("Money__c", j("-7"), "-7.00"),
        ("Pct__c", j("50"), "50.00"),
        ("Pct__c", j("999.994"), "999.99"),
        ("Day__c", json!("2024-02-29"), r#""2024-02-29""#),
        ("Day__c", json!("1999-12-31"), r#""1999-12-31""#),
        (
            "When__c",
            json!("2024-02-29T11:00:00+01:00"),
            r#""2024-02-29T10:00:00.000+0000""#,
        ),
        (
            "When__c",
            json!("2024-02-29T10:00:00Z"),
            r#""2024-02-29T10:00:00.000+0000""#,
        ),
        (
            "When__c",
            json!("2024-02-29T11:00:00.000+0100"),
            r#""2024-02-29T10:00:00.000+0000""#,
        ),
        (
            "When__c",
            json!("2024-02-29T10:00:00"),
            r#""2024-02-29T10:00:00.000+0000""#,
        ),
        (
            "When__c",
            json!("2024-03-01T01:30:00.250+05:30"),
            r#""2024-02-29T20:00:00.250+0000""#,
        ),
        ("At__c", json!("13:45"), r#""13:45:00.000Z""#),
        ("At__c", json!("13:45:30.5Z"), r#""13:45:30.500Z""#),
        ("At__c", json!("23:59:59.999"), r#""23:59:59.999Z""#),
        ("Flag__c", json!(true), "true"),
        ("Flag__c", json!("TRUE"), "true"),
        ("Flag__c", json!(false), "false"),
        ("Flag__c", Value::Null, "false"),
        ("Pick__c", json!("red"), r#""Red""#),
        ("Pick__c", json!("GREEN"), r#""Green""#),
        ("Pick__c", json!(""), "null"),
        ("Open__c", json!("a"), r#""A""#),
        ("Open__c", json!("Anything Goes"), r#""Anything Goes""#),
        ("Multi__c", json!(["Z", "X"]), r#""X;Z""#),
        ("Multi__c", json!("y;x;Y"), r#""X;Y""#),
        ("Multi__c", json!(" z ; x "), r#""X;Z""#),
        ("Multi__c", json!(["Z", "z", "Y", "X"]), r#""X;Y;Z""#),
        ("Multi__c", json!([]), "null"),
        (
            "Mail__c",
            json!(" Bob.Smith+tag@Example.co.uk "),
            r#""Bob.Smith+tag@Example.co.uk""#,
        ),
        (
            "Tel__c",
            json!("+1 (415) 555-0100 ext 12"),
            r#""+1 (415) 555-0100 ext 12""#,
        ),
        (
            "Site__c",
            json!("https://example.com/a?b=1"),
            r#""https://example.com/a?b=1""#,
        ),
        ("Site__c", json!("example.com/x"), r#""example.com/x""#),
        (
            "Secret__c",
            json!("hunter2-topsecret"),
            r#""hunter2-topsecret""#,
        ),
        (
            "Geo__c",
            j(r#"{"latitude": 37.7749, "longitude": -122.4194}"#),
            r#"{"latitude":37.7749,"longitude":-122.4194}"#,
        ),
        (
            "Geo__c",
            json!({"latitude": "-90", "longitude": "180"}),
            r#"{"latitude":-90,"longitude":180}"#,
        ),
        ("Geo__c", Value::Null, "null"),
    ]
}

fn expected_text(e: &str) -> String {
    if e == "LONG300" {
        text(&json!("x".repeat(300)))
    } else {
        e.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_reads_back_canonically_on_create_and_update() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(kitchen_sink(KS)).await;
    let patched = c.create_record(KS, json!({"Name": "patched"})).await;
    let mut failures = Vec::new();
    for (field, input, want) in valid_cases() {
        let want = expected_text(want);
        // Create.
        let (s, v) = c
            .post(&sobject(KS), json!({"Name": "v", field: input.clone()}))
            .await;
        if s != StatusCode::CREATED {
            failures.push(format!("create {field}={input}: {s} {v}"));
            continue;
        }
        let id = v["id"].as_str().unwrap().to_string();
        let (_, got) = c.get(&rec(&id)).await;
        if text(&got[field]) != want {
            failures.push(format!(
                "create {field}={input}: read {} want {want}",
                text(&got[field])
            ));
        }
        // Update of an existing record.
        let (s, v) = c.patch(&rec(&patched), json!({field: input.clone()})).await;
        if s != StatusCode::NO_CONTENT {
            failures.push(format!("patch {field}={input}: {s} {v}"));
            continue;
        }
        let (_, got) = c.get(&rec(&patched)).await;
        if text(&got[field]) != want {
            failures.push(format!(
                "patch {field}={input}: read {} want {want}",
                text(&got[field])
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_record_has_system_fields_and_type_defaults() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(kitchen_sink(KS)).await;
    let id = c.create_record(KS, json!({"Name": "first"})).await;
    let (s, v) = c.get(&rec(&id)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["attributes"]["type"], KS);
    assert_eq!(v["attributes"]["url"], rec(&id));
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], "first");
    assert_eq!(v["OwnerId"], c.user_id.as_str());
    assert_eq!(v["CreatedById"], c.user_id.as_str());
    assert_eq!(v["LastModifiedById"], c.user_id.as_str());
    let created = v["CreatedDate"].as_str().unwrap();
    assert_eq!(
        created.len(),
        "2024-02-29T10:00:00.000+0000".len(),
        "{created}"
    );
    assert!(created.ends_with("+0000"));
    // An unset boolean reads false, never null; everything else null.
    assert_eq!(v["Flag__c"], json!(false));
    for f in [
        "Text__c",
        "Num__c",
        "Money__c",
        "Day__c",
        "When__c",
        "At__c",
        "Pick__c",
        "Multi__c",
        "Secret__c",
        "Geo__c",
    ] {
        assert_eq!(v[f], Value::Null, "{f}");
    }
    assert_eq!(v["Seq__c"], "KS-001");
    server.stop().await;
}

/// (field, JSON input, errorCode)
fn invalid_cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("Text__c", json!("01234567890"), "STRING_TOO_LONG"),
        (
            "Text__c",
            json!("😀😀😀😀😀😀😀😀😀😀😀"),
            "STRING_TOO_LONG",
        ),
        ("Text__c", json!(5), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Text__c", json!(true), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Text__c", json!(["a"]), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Area__c", json!("a".repeat(256)), "STRING_TOO_LONG"),
        ("Long__c", json!("x".repeat(301)), "STRING_TOO_LONG"),
        ("Secret__c", json!("s".repeat(21)), "STRING_TOO_LONG"),
        ("Num__c", j("10000"), "NUMBER_OUTSIDE_VALID_RANGE"),
        // Rounds up to 10000.00, which no longer fits four integer digits.
        ("Num__c", j("9999.995"), "NUMBER_OUTSIDE_VALID_RANGE"),
        ("Num__c", j("-10000"), "NUMBER_OUTSIDE_VALID_RANGE"),
        ("Num__c", json!("abc"), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Num__c", json!(""), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Num__c", json!(true), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Num__c", json!([1]), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Num__c", json!({"v": 1}), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Money__c", json!("1e20"), "NUMBER_OUTSIDE_VALID_RANGE"),
        (
            "Money__c",
            json!("12345678901234567"),
            "NUMBER_OUTSIDE_VALID_RANGE",
        ),
        ("Pct__c", j("1000"), "NUMBER_OUTSIDE_VALID_RANGE"),
        (
            "Day__c",
            json!("2023-02-29"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "Day__c",
            json!("2024-13-01"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "Day__c",
            json!("02/29/2024"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        ("Day__c", json!(20240229), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        (
            "When__c",
            json!("2024-02-30T10:00:00Z"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "When__c",
            json!("yesterday"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "When__c",
            json!(1709200800),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        ("At__c", json!("25:00"), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("At__c", json!("noon"), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Flag__c", json!("yes"), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Flag__c", json!(1), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        (
            "Pick__c",
            json!("Blue"),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        (
            "Pick__c",
            json!("Old"),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        (
            "Pick__c",
            json!("old"),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        ("Pick__c", json!(3), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        (
            "Multi__c",
            json!("X;W"),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ),
        (
            "Multi__c",
            json!(["X", 1]),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        ("Multi__c", json!(7), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Mail__c", json!("nope@"), "INVALID_EMAIL_ADDRESS"),
        ("Mail__c", json!("a@b"), "INVALID_EMAIL_ADDRESS"),
        (
            "Mail__c",
            json!("two@@example.com"),
            "INVALID_EMAIL_ADDRESS",
        ),
        (
            "Mail__c",
            json!("with space@example.com"),
            "INVALID_EMAIL_ADDRESS",
        ),
        (
            "Tel__c",
            json!("call me"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "Site__c",
            json!("not a url"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "Site__c",
            json!("javascript:alert(1)"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "Geo__c",
            json!({"latitude": 91, "longitude": 0}),
            "NUMBER_OUTSIDE_VALID_RANGE",
        ),
        (
            "Geo__c",
            json!({"latitude": 0, "longitude": -180.5}),
            "NUMBER_OUTSIDE_VALID_RANGE",
        ),
        (
            "Geo__c",
            json!({"latitude": "north", "longitude": 0}),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "Geo__c",
            json!({"latitude": 1}),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        (
            "Geo__c",
            json!("37.7,-122.4"),
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ),
        ("Seq__c", json!("KS-999"), "INVALID_FIELD_FOR_INSERT_UPDATE"),
        (
            "CreatedDate",
            json!("2020-01-01T00:00:00Z"),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (
            "LastModifiedById",
            json!("0190d6a4-0000-7000-8000-000000000000"),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        ("Nope__c", json!("x"), "INVALID_FIELD"),
        ("Name", json!("n".repeat(81)), "STRING_TOO_LONG"),
        ("Name", json!(12), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("OwnerId", json!("not-an-id"), "MALFORMED_ID"),
        (
            "OwnerId",
            json!("0190d6a4-0000-7000-8000-000000000000"),
            "INVALID_CROSS_REFERENCE_KEY",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_value_is_refused_with_its_code_and_changes_nothing() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(kitchen_sink(KS)).await;
    let target = c
        .create_record(
            KS,
            json!({"Name": "target", "Text__c": "keep", "Area__c": "keep", "Num__c": 1}),
        )
        .await;
    let (_, before) = c.get(&rec(&target)).await;
    let mut failures = Vec::new();
    for (field, input, code) in invalid_cases() {
        let name_value = if field == "Name" {
            input.clone()
        } else {
            json!("bad")
        };
        // Create: refused with exactly this error, naming the field.
        let (s, v) = c
            .post(
                &sobject(KS),
                json!({"Name": name_value, field: input.clone()}),
            )
            .await;
        if s != StatusCode::BAD_REQUEST
            || codes(&v) != vec![code]
            || error_fields(&v) != vec![vec![field.to_string()]]
        {
            failures.push(format!(
                "create {field}={input}: {s} {v} (want {code} on [{field}])"
            ));
        }
        if v[0]["message"].as_str().is_none_or(|m| m.is_empty()) {
            failures.push(format!("create {field}={input}: no message: {v}"));
        }
        // Update: refused, and the valid change beside it is not applied.
        let companion = if field == "Area__c" {
            "Text__c"
        } else {
            "Area__c"
        };
        let (s, v) = c
            .patch(
                &rec(&target),
                json!({companion: "changed", field: input.clone()}),
            )
            .await;
        if s != StatusCode::BAD_REQUEST
            || codes(&v) != vec![code]
            || error_fields(&v) != vec![vec![field.to_string()]]
        {
            failures.push(format!(
                "patch {field}={input}: {s} {v} (want {code} on [{field}])"
            ));
        }
    }
    let (_, after) = c.get(&rec(&target)).await;
    assert_eq!(after, before, "a failed update changed the record");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing was created by the failed creates: the auto number moved on by one only.
    let id = c.create_record(KS, json!({"Name": "next"})).await;
    let (_, v) = c.get(&rec(&id)).await;
    assert_eq!(v["Seq__c"], "KS-002");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_errors_of_one_record_are_reported_together() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(kitchen_sink(KS)).await;
    let (s, v) = c
        .post(
            &sobject(KS),
            json!({"Text__c": "far too long text", "Num__c": "abc", "Pick__c": "Blue", "Mail__c": "x@", "Nope__c": 1, "Seq__c": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let mut got = codes(&v);
    got.sort();
    assert_eq!(
        got,
        vec![
            "INVALID_EMAIL_ADDRESS",
            "INVALID_FIELD",
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "REQUIRED_FIELD_MISSING",
            "STRING_TOO_LONG"
        ],
        "{v}"
    );
    let missing = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["errorCode"] == "REQUIRED_FIELD_MISSING")
        .unwrap();
    assert_eq!(missing["fields"], json!(["Name"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_text_is_never_stored_in_plaintext() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(kitchen_sink(KS)).await;
    let secret = "Zq7-SECRET-9xK";
    let second = "Wv3-OTHER-SECRET";
    // A plain text marker written alongside proves the scan sees fresh writes.
    let id = c
        .create_record(
            KS,
            json!({"Name": "enc", "Secret__c": secret, "Text__c": "PLAINMRK01"}),
        )
        .await;
    let (_, v) = c.get(&rec(&id)).await;
    assert_eq!(v["Secret__c"], secret);
    let (s, _) = c
        .patch(
            &rec(&id),
            json!({"Secret__c": second, "Area__c": "PLAINMRK02"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = c.get(&rec(&id)).await;
    assert_eq!(v["Secret__c"], second);
    let all = server.stored_bytes().await;
    let contains = |needle: &str| all.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains("PLAINMRK01") && contains("PLAINMRK02"),
        "the scan must see the records' bytes"
    );
    assert!(!contains(secret), "the first secret is stored in plaintext");
    assert!(
        !contains(second),
        "the updated secret is stored in plaintext"
    );
    // Describe says so and the field cannot be used as a filter key.
    let (_, d) = c.get(&format!("{DATA}/sobjects/{KS}/describe")).await;
    let f = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Secret__c")
        .unwrap()
        .clone();
    assert_eq!(f["type"], "encryptedstring");
    assert_eq!(f["encrypted"], true);
    server.stop().await;
}

fn ticket() -> Value {
    json!({
        "api_name": "Ticket__c",
        "name_field": {"data_type": "auto_number", "auto_number_format": "T-{0000}"},
        "fields": [
            {"api_name": "Code__c", "data_type": "text", "length": 20, "is_unique": true, "is_external_id": true},
            {"api_name": "Seq__c", "data_type": "auto_number", "auto_number_format": "S{00}", "auto_number_start": 5},
            {"api_name": "Qty__c", "data_type": "number", "precision": 3, "scale": 0}
        ]
    })
}

async fn ticket_numbers(c: &Client, id: &str) -> (String, String) {
    let (s, v) = c.get(&format!("{}/{id}", sobject("Ticket__c"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["Name"].as_str().unwrap().to_string(),
        v["Seq__c"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_numbers_are_sequential_and_gap_free_across_failures() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(ticket()).await;
    let a = c.create_record("Ticket__c", json!({"Code__c": "A"})).await;
    assert_eq!(
        ticket_numbers(&c, &a).await,
        ("T-0001".into(), "S05".into())
    );
    // Fails before the transaction (validation) …
    let (s, _) = c.post(&sobject("Ticket__c"), json!({"Qty__c": 5000})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // … and inside it, after the counters were drawn (unique violation).
    let (s, v) = c.post(&sobject("Ticket__c"), json!({"Code__c": "a"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["DUPLICATE_VALUE"]);
    // … and an all-or-none batch that is rolled back.
    let (s, v) = c
        .post(
            &format!("{DATA}/composite/sobjects"),
            json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Ticket__c"}, "Code__c": "B1"},
                {"attributes": {"type": "Ticket__c"}, "Code__c": "B1"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["success"], false, "{v}");
    let b = c.create_record("Ticket__c", json!({"Code__c": "B"})).await;
    assert_eq!(
        ticket_numbers(&c, &b).await,
        ("T-0002".into(), "S06".into())
    );
    // The auto-numbered Name and field are read-only.
    for body in [json!({"Name": "T-9999"}), json!({"Seq__c": "S99"})] {
        let (s, v) = c
            .patch(&format!("{}/{b}", sobject("Ticket__c")), body.clone())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(codes(&v), vec!["INVALID_FIELD_FOR_INSERT_UPDATE"], "{body}");
    }
    // Concurrent creates still get distinct consecutive numbers.
    let mut handles = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            c.create_record("Ticket__c", json!({"Code__c": format!("P{i}")}))
                .await
        }));
    }
    let mut names = Vec::new();
    for h in handles {
        let id = h.await.unwrap();
        names.push(ticket_numbers(&c, &id).await.0);
    }
    names.sort();
    let want: Vec<String> = (3..=12).map(|n| format!("T-{n:04}")).collect();
    assert_eq!(names, want);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_and_required_fields() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({
        "api_name": "Deal__c",
        "fields": [
            {"api_name": "Stage__c", "data_type": "picklist", "picklist_values": [
                {"value": "New"}, {"value": "Open", "is_default": true}, {"value": "Won"}]},
            {"api_name": "Note__c", "data_type": "text", "default_value": "hello"},
            {"api_name": "Amount__c", "data_type": "currency", "default_value": 42},
            {"api_name": "Active__c", "data_type": "boolean", "default_value": true},
            {"api_name": "Tags__c", "data_type": "multi_picklist", "picklist_values": [
                {"value": "A", "is_default": true}, {"value": "B"}, {"value": "C", "is_default": true},
                {"value": "D", "is_default": true, "is_active": false}]},
            {"api_name": "Must__c", "data_type": "text", "is_required": true},
            {"api_name": "Count__c", "data_type": "number", "is_required": true}
        ]
    }))
    .await;
    let id = c
        .create_record(
            "Deal__c",
            json!({"Name": "d", "Must__c": "m", "Count__c": 0}),
        )
        .await;
    let (_, v) = c.get(&format!("{}/{id}", sobject("Deal__c"))).await;
    assert_eq!(v["Stage__c"], "Open");
    assert_eq!(v["Note__c"], "hello");
    assert_eq!(text(&v["Amount__c"]), "42.00");
    assert_eq!(v["Active__c"], true);
    assert_eq!(
        v["Tags__c"], "A;C",
        "every active default of a multi-picklist"
    );
    assert_eq!(text(&v["Count__c"]), "0");
    // Explicit values win over defaults; defaults are not re-applied on update.
    let id2 = c
        .create_record("Deal__c", json!({"Name": "d2", "Must__c": "m", "Count__c": 1, "Stage__c": "won", "Note__c": null, "Active__c": false}))
        .await;
    let (_, v) = c.get(&format!("{}/{id2}", sobject("Deal__c"))).await;
    assert_eq!(v["Stage__c"], "Won");
    assert_eq!(v["Note__c"], Value::Null);
    assert_eq!(v["Active__c"], false);
    let (s, _) = c
        .patch(
            &format!("{}/{id2}", sobject("Deal__c")),
            json!({"Name": "renamed"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = c.get(&format!("{}/{id2}", sobject("Deal__c"))).await;
    assert_eq!(v["Note__c"], Value::Null);
    assert_eq!(v["Name"], "renamed");

    // Required: missing on create, null or blank on update; Name too.
    let (s, v) = c.post(&sobject("Deal__c"), json!({"Must__c": "  "})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["REQUIRED_FIELD_MISSING"]);
    let mut fields = error_fields(&v).remove(0);
    fields.sort();
    assert_eq!(fields, vec!["Count__c", "Must__c", "Name"], "{v}");
    let path = format!("{}/{id}", sobject("Deal__c"));
    for (body, field) in [
        (json!({"Must__c": null}), "Must__c"),
        (json!({"Must__c": ""}), "Must__c"),
        (json!({"Count__c": null}), "Count__c"),
        (json!({"Name": null}), "Name"),
        (json!({"Name": "   "}), "Name"),
    ] {
        let (s, v) = c.patch(&path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(codes(&v), vec!["REQUIRED_FIELD_MISSING"], "{body}");
        assert_eq!(error_fields(&v), vec![vec![field.to_string()]], "{body}");
    }
    // A PATCH that leaves required fields out is fine.
    let (s, _) = c.patch(&path, json!({"Note__c": "x"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = c.get(&path).await;
    assert_eq!(v["Must__c"], "m");
    assert_eq!(v["Name"], "d");
    server.stop().await;
}

async fn family(c: &Client) {
    c.create_object(
        json!({"api_name": "Parent__c", "fields": [{"api_name": "Tag__c", "data_type": "text"}]}),
    )
    .await;
    c.create_object(json!({"api_name": "Other__c"})).await;
    c.create_object(json!({"api_name": "Child__c", "fields": [
        {"api_name": "Master__c", "data_type": "master_detail", "lookup_object": "Parent__c"},
        {"api_name": "Ref__c", "data_type": "lookup", "lookup_object": "Parent__c"}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Grand__c", "fields": [
        {"api_name": "Child__c", "data_type": "master_detail", "lookup_object": "Child__c"}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Friend__c", "fields": [
        {"api_name": "Pal__c", "data_type": "lookup", "lookup_object": "Parent__c"}
    ]}))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_master_detail_check_their_targets() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    family(&c).await;
    let p1 = c.create_record("Parent__c", json!({"Name": "p1"})).await;
    let p2 = c.create_record("Parent__c", json!({"Name": "p2"})).await;
    let gone = c.create_record("Parent__c", json!({"Name": "gone"})).await;
    let (s, _) = c.delete(&format!("{}/{gone}", sobject("Parent__c"))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let other = c.create_record("Other__c", json!({"Name": "o"})).await;
    let stranger = server.tenant().await;
    stranger
        .create_object(json!({"api_name": "Parent__c"}))
        .await;
    let foreign = stranger
        .create_record("Parent__c", json!({"Name": "theirs"}))
        .await;

    // Valid: ids in any case read back canonical (lower case).
    let child = c
        .create_record(
            "Child__c",
            json!({"Name": "c", "Master__c": p1.to_uppercase(), "Ref__c": p2}),
        )
        .await;
    let cpath = format!("{}/{child}", sobject("Child__c"));
    let (_, v) = c.get(&cpath).await;
    assert_eq!(v["Master__c"], p1.as_str());
    assert_eq!(v["Ref__c"], p2.as_str());
    let (s, _) = c.patch(&cpath, json!({"Ref__c": null})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = c.get(&cpath).await;
    assert_eq!(v["Ref__c"], Value::Null);

    let random = "0190d6a4-1111-7000-8000-000000000000";
    for (value, code) in [
        (json!("not-an-id"), "MALFORMED_ID"),
        (json!("001000000000001AAA"), "MALFORMED_ID"),
        (json!(42), "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        (json!(random), "INVALID_CROSS_REFERENCE_KEY"),
        (json!(gone), "INVALID_CROSS_REFERENCE_KEY"),
        (json!(other), "INVALID_CROSS_REFERENCE_KEY"),
        (json!(foreign), "INVALID_CROSS_REFERENCE_KEY"),
    ] {
        for field in ["Master__c", "Ref__c"] {
            let mut body = json!({"Name": "bad", "Master__c": p1});
            body[field] = value.clone();
            let (s, v) = c.post(&sobject("Child__c"), body).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{field}={value}: {v}");
            assert_eq!(codes(&v), vec![code], "{field}={value}");
            assert_eq!(
                error_fields(&v),
                vec![vec![field.to_string()]],
                "{field}={value}"
            );
            let (s, v) = c.patch(&cpath, json!({field: value.clone()})).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "patch {field}={value}: {v}");
            assert_eq!(codes(&v), vec![code], "patch {field}={value}");
        }
    }
    // Master-detail is required, on create and update.
    let (s, v) = c
        .post(&sobject("Child__c"), json!({"Name": "orphan"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["REQUIRED_FIELD_MISSING"]);
    assert_eq!(error_fields(&v), vec![vec!["Master__c".to_string()]]);
    let (s, v) = c.patch(&cpath, json!({"Master__c": null})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["REQUIRED_FIELD_MISSING"]);
    let (_, v) = c.get(&cpath).await;
    assert_eq!(v["Master__c"], p1.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_master_cascades_to_children_and_grandchildren_only() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    family(&c).await;
    let p = c.create_record("Parent__c", json!({"Name": "p"})).await;
    let keep = c.create_record("Parent__c", json!({"Name": "keep"})).await;
    let child = c
        .create_record("Child__c", json!({"Name": "c", "Master__c": p}))
        .await;
    let grand = c
        .create_record("Grand__c", json!({"Name": "g", "Child__c": child}))
        .await;
    let kept_child = c
        .create_record(
            "Child__c",
            json!({"Name": "kc", "Master__c": keep, "Ref__c": p}),
        )
        .await;
    let friend = c
        .create_record("Friend__c", json!({"Name": "f", "Pal__c": p}))
        .await;

    let (s, _) = c.delete(&format!("{}/{p}", sobject("Parent__c"))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for path in [
        format!("{}/{p}", sobject("Parent__c")),
        format!("{}/{child}", sobject("Child__c")),
        format!("{}/{grand}", sobject("Grand__c")),
    ] {
        let (s, v) = c.get(&path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(codes(&v), vec!["NOT_FOUND"]);
    }
    // Lookup children survive, as do master-detail children of other parents.
    for path in [
        format!("{}/{friend}", sobject("Friend__c")),
        format!("{}/{kept_child}", sobject("Child__c")),
    ] {
        let (s, v) = c.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    // ...and their lookups to the deleted parent are cleared, as Salesforce does.
    let (_, v) = c.get(&format!("{}/{friend}", sobject("Friend__c"))).await;
    assert_eq!(v["Pal__c"], Value::Null, "{v}");
    let (_, v) = c
        .get(&format!("{}/{kept_child}", sobject("Child__c")))
        .await;
    assert_eq!(v["Ref__c"], Value::Null, "{v}");
    // A new child cannot be attached to the deleted parent.
    let (s, v) = c
        .post(
            &sobject("Grand__c"),
            json!({"Name": "g2", "Child__c": child}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["INVALID_CROSS_REFERENCE_KEY"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_values_are_case_insensitive_on_create_update_and_upsert() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({
        "api_name": "Acct__c",
        "fields": [
            {"api_name": "Code__c", "data_type": "text", "is_unique": true, "is_external_id": true},
            {"api_name": "Mail__c", "data_type": "email", "is_unique": true},
            {"api_name": "Num__c", "data_type": "number", "is_unique": true, "scale": 2}
        ]
    }))
    .await;
    let a = c
        .create_record(
            "Acct__c",
            json!({"Name": "a", "Code__c": "ABC", "Mail__c": "x@example.com", "Num__c": 1}),
        )
        .await;
    let b = c
        .create_record("Acct__c", json!({"Name": "b", "Code__c": "DEF"}))
        .await;
    for (body, field) in [
        (json!({"Name": "dup", "Code__c": "abc"}), "Code__c"),
        (
            json!({"Name": "dup", "Mail__c": "X@EXAMPLE.COM"}),
            "Mail__c",
        ),
        (json!({"Name": "dup", "Num__c": "1.00"}), "Num__c"),
    ] {
        let (s, v) = c.post(&sobject("Acct__c"), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(codes(&v), vec!["DUPLICATE_VALUE"], "{body}");
        assert_eq!(error_fields(&v), vec![vec![field.to_string()]]);
        assert!(
            v[0]["message"].as_str().unwrap().contains(&a),
            "the message names the holder: {v}"
        );
    }
    let bpath = format!("{}/{b}", sobject("Acct__c"));
    let (s, v) = c
        .patch(&bpath, json!({"Code__c": "aBc", "Name": "changed"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["DUPLICATE_VALUE"]);
    let (_, v) = c.get(&bpath).await;
    assert_eq!(v["Code__c"], "DEF");
    assert_eq!(v["Name"], "b");
    // Setting a record's unique value to itself is no conflict.
    let (s, _) = c.patch(&bpath, json!({"Code__c": "def"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Upsert: 201 created, then 204 updated; matching is case-insensitive.
    let up = format!("{DATA}/sobjects/Acct__c/Code__c/NEW-1");
    let (s, v) = c.patch(&up, json!({"Name": "upserted"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["created"], true);
    let new_id = v["id"].as_str().unwrap().to_string();
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Acct__c/Code__c/new-1"),
            json!({"Name": "upserted again"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = c.get(&up).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Id"], new_id.as_str());
    assert_eq!(v["Name"], "upserted again");
    assert_eq!(v["Code__c"], "NEW-1");
    let (s, v) = c
        .get(&format!("{DATA}/sobjects/Acct__c/Code__c/none-such"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(codes(&v), vec!["NOT_FOUND"]);
    // Upsert that would duplicate another unique field.
    let (s, v) = c.patch(&up, json!({"Mail__c": "x@example.com"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["DUPLICATE_VALUE"]);
    assert_eq!(error_fields(&v), vec![vec!["Mail__c".to_string()]]);
    let (s, v) = c
        .patch(
            &format!("{DATA}/sobjects/Acct__c/Code__c/NEW-2"),
            json!({"Name": "n2", "Mail__c": "X@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["DUPLICATE_VALUE"]);
    let (s, _) = c
        .get(&format!("{DATA}/sobjects/Acct__c/Code__c/NEW-2"))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the failed upsert created a record"
    );
    // A body contradicting the URL's external id, or a non-unique field, is refused.
    let (s, v) = c.patch(&up, json!({"Code__c": "OTHER"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = c
        .patch(&format!("{DATA}/sobjects/Acct__c/Name/x"), json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(codes(&v), vec!["INVALID_FIELD"]);
    // Deleting frees the unique value (the deleted record no longer holds it).
    let (s, _) = c.delete(&format!("{}/{a}", sobject("Acct__c"))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = c
        .post(
            &sobject("Acct__c"),
            json!({"Name": "again", "Code__c": "abc"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Upsert on a freed value creates; delete by external id works.
    let (s, _) = c.delete(&up).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.get(&up).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = c.patch(&up, json!({"Name": "reborn"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_ne!(v["id"], new_id.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_batches_honour_all_or_none() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(ticket()).await;
    let batch = format!("{DATA}/composite/sobjects");
    let t = |code: &str| json!({"attributes": {"type": "Ticket__c"}, "Code__c": code});
    let by_code = |code: &str| format!("{DATA}/sobjects/Ticket__c/Code__c/{code}");

    // allOrNone false: each record stands alone.
    let (s, v) = c
        .post(&batch, json!({"allOrNone": false, "records": [t("A1"), {"attributes": {"type": "Ticket__c"}, "Qty__c": "many"}, t("A2"), t("A1")]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v.as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["success"], true);
    assert!(r[0]["id"].is_string());
    assert_eq!(r[0]["errors"], json!([]));
    assert_eq!(r[1]["success"], false);
    assert_eq!(
        r[1]["errors"][0]["statusCode"],
        "INVALID_TYPE_ON_FIELD_IN_RECORD"
    );
    assert_eq!(r[1]["errors"][0]["fields"], json!(["Qty__c"]));
    assert!(r[1]["errors"][0]["message"].as_str().unwrap().len() > 3);
    assert!(r[1]["id"].is_null());
    assert_eq!(r[2]["success"], true);
    assert_eq!(r[3]["success"], false);
    assert_eq!(r[3]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    for code in ["A1", "A2"] {
        let (s, v) = c.get(&by_code(code)).await;
        assert_eq!(s, StatusCode::OK, "{code}");
        assert_eq!(
            v["Id"],
            if code == "A1" {
                r[0]["id"].clone()
            } else {
                r[2]["id"].clone()
            }
        );
    }

    // allOrNone true, validation failure: nothing created.
    let (s, v) = c
        .post(&batch, json!({"allOrNone": true, "records": [t("B1"), {"attributes": {"type": "Ticket__c"}, "Code__c": "B2", "Qty__c": 1000}]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["success"], false);
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        v[1]["errors"][0]["statusCode"],
        "NUMBER_OUTSIDE_VALID_RANGE"
    );
    // allOrNone true, failure inside the transaction: the first insert is rolled back.
    let (s, v) = c
        .post(
            &batch,
            json!({"allOrNone": true, "records": [t("C1"), t("C2"), t("c1")]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v.as_array().unwrap().iter().all(|r| r["success"] == false),
        "{v}"
    );
    assert_eq!(v[2]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    for code in ["B1", "B2", "C1", "C2"] {
        let (s, _) = c.get(&by_code(code)).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{code} exists after a rolled-back batch"
        );
    }
    // An unknown object type in a batch is that record's error.
    let (s, v) = c
        .post(
            &batch,
            json!({"records": [{"attributes": {"type": "Nope__c"}}, {"Code__c": "x"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["errors"][0]["statusCode"], "NOT_FOUND");
    assert_eq!(v[1]["success"], false);

    // PATCH batch.
    let (a1, a2) = (
        r[0]["id"].as_str().unwrap().to_string(),
        r[2]["id"].as_str().unwrap().to_string(),
    );
    let upd = |id: &str, qty: Value| json!({"attributes": {"type": "Ticket__c"}, "id": id, "Qty__c": qty});
    let (s, v) = c
        .patch(
            &batch,
            json!({"allOrNone": true, "records": [upd(&a1, json!(7)), upd(&a2, json!("x"))]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        v[1]["errors"][0]["statusCode"],
        "INVALID_TYPE_ON_FIELD_IN_RECORD"
    );
    let (_, got) = c.get(&format!("{}/{a1}", sobject("Ticket__c"))).await;
    assert_eq!(got["Qty__c"], Value::Null, "rolled-back update applied");
    let (s, v) = c
        .patch(&batch, json!({"allOrNone": false, "records": [upd(&a1, json!(7)), upd("0190d6a4-1111-7000-8000-000000000000", json!(1)), upd("bad", json!(1))]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["success"], true);
    assert_eq!(v[0]["id"], a1.as_str());
    assert_eq!(v[1]["errors"][0]["statusCode"], "NOT_FOUND");
    assert_eq!(v[2]["errors"][0]["statusCode"], "MALFORMED_ID");
    let (_, got) = c.get(&format!("{}/{a1}", sobject("Ticket__c"))).await;
    assert_eq!(text(&got["Qty__c"]), "7");

    // DELETE batch.
    let missing = "0190d6a4-2222-7000-8000-000000000000";
    let (s, v) = c
        .send(
            Method::DELETE,
            &format!("{batch}?ids={a1},{missing}&allOrNone=true"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(v[1]["errors"][0]["statusCode"], "NOT_FOUND");
    let (s, _) = c.get(&format!("{}/{a1}", sobject("Ticket__c"))).await;
    assert_eq!(s, StatusCode::OK, "rolled-back delete applied");
    let (s, v) = c
        .send(Method::DELETE, &format!("{batch}?ids={a1},{missing}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["success"], true);
    assert_eq!(v[1]["success"], false);
    let (s, _) = c.get(&format!("{}/{a1}", sobject("Ticket__c"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Batch limits: 200 is fine, 201 is refused whole.
    let many: Vec<Value> = (0..200).map(|i| t(&format!("M{i}"))).collect();
    let (s, v) = c.post(&batch, json!({"records": many})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.as_array().unwrap().iter().all(|r| r["success"] == true));
    let too_many: Vec<Value> = (0..201).map(|i| t(&format!("N{i}"))).collect();
    let (s, v) = c.post(&batch, json!({"records": too_many})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.is_array() && !codes(&v).is_empty(), "{v}");
    let (s, _) = c.get(&by_code("N0")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let ids: Vec<String> = (0..201).map(|_| missing.to_string()).collect();
    let (s, _) = c
        .send(
            Method::DELETE,
            &format!("{batch}?ids={}", ids.join(",")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deleted_records_are_gone_for_good() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(kitchen_sink(KS)).await;
    let id = c.create_record(KS, json!({"Name": "doomed"})).await;
    let (s, v) = c.delete(&rec(&id)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(v, Value::Null);
    for (s, v) in [
        c.get(&rec(&id)).await,
        c.patch(&rec(&id), json!({"Name": "zombie"})).await,
        c.delete(&rec(&id)).await,
        c.get(&format!("{}?fields=Name", rec(&id))).await,
    ] {
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(codes(&v), vec!["NOT_FOUND"]);
    }
    // Ids are never reused.
    let mut seen = std::collections::HashSet::from([id.clone()]);
    for i in 0..20 {
        let n = c.create_record(KS, json!({"Name": format!("n{i}")})).await;
        assert!(seen.insert(n), "an id was reused");
    }
    // Unknown and malformed ids are 404 too; unknown objects are 404.
    for path in [
        rec("0190d6a4-3333-7000-8000-000000000000"),
        rec("not-an-id"),
        format!("{DATA}/sobjects/Nope__c/{id}"),
    ] {
        let (s, v) = c.get(&path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(codes(&v), vec!["NOT_FOUND"]);
    }
    let (s, v) = c.post(&sobject("Nope__c"), json!({"Name": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selection_versions_and_paths() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(kitchen_sink(KS)).await;
    let id = c
        .create_record(KS, json!({"Name": "sel", "Text__c": "t", "Num__c": 2}))
        .await;
    let (s, v) = c.get(&format!("{}?fields=Name,text__c", rec(&id))).await;
    assert_eq!(s, StatusCode::OK);
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["Name", "Text__c", "attributes"], "{v}");
    assert_eq!(v["Text__c"], "t");
    assert_eq!(v["attributes"]["url"], rec(&id));
    let (s, v) = c
        .get(&format!("{}?fields=Id,Num__c,Nope__c", rec(&id)))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["INVALID_FIELD"]);
    assert_eq!(error_fields(&v), vec![vec!["Nope__c".to_string()]]);

    // Versions: v1 and vNN.N work; anything else is 404.
    for ver in ["v1", "v60.0", "v58.0"] {
        let (s, v) = c
            .get(&format!("/services/data/{ver}/sobjects/{KS}/{id}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{ver}: {v}");
        assert_eq!(
            v["attributes"]["url"],
            format!("/services/data/{ver}/sobjects/{KS}/{id}")
        );
        let (s, v) = c
            .post(
                &format!("/services/data/{ver}/sobjects/{KS}"),
                json!({"Name": ver}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ver}: {v}");
    }
    for ver in ["vX", "v", "60.0", "v1.0.0", "vabc"] {
        for (s, v) in [
            c.get(&format!("/services/data/{ver}/sobjects/{KS}/{id}"))
                .await,
            c.get(&format!("/services/data/{ver}/sobjects")).await,
            c.post(
                &format!("/services/data/{ver}/sobjects/{KS}"),
                json!({"Name": "x"}),
            )
            .await,
        ] {
            assert_eq!(s, StatusCode::NOT_FOUND, "{ver}: {v}");
            assert_eq!(codes(&v), vec!["NOT_FOUND"], "{ver}");
        }
    }
    // Trailing slashes are accepted everywhere.
    let (s, v) = c
        .post(&format!("{}/", sobject(KS)), json!({"Name": "slash"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let sid = v["id"].as_str().unwrap().to_string();
    let (s, v) = c.get(&format!("{}/", rec(&sid))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["Name"], "slash");
    let (s, _) = c
        .patch(&format!("{}/", rec(&sid)), json!({"Name": "slash2"}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.get(&format!("{DATA}/sobjects/{KS}/describe/")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c.get(&format!("{DATA}/sobjects/")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c.get(&format!("{META}/objects/{KS}/")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = c.delete(&format!("{}/", rec(&sid))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    server.stop().await;
}

/// (method, path, content type, body, expected status, expected errorCode)
type MalformedCase<'a> = (
    Method,
    String,
    Option<&'a str>,
    Vec<u8>,
    StatusCode,
    &'a str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_4xx_with_json_errors() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(kitchen_sink(KS)).await;
    let id = c.create_record(KS, json!({"Name": "m"})).await;
    let create = sobject(KS);
    let json_ct = Some("application/json");
    let cases: Vec<MalformedCase> = vec![
        (
            Method::POST,
            create.clone(),
            json_ct,
            b"{\"Name\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            create.clone(),
            json_ct,
            b"{'Name': 'x'}".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            create.clone(),
            json_ct,
            b"".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            create.clone(),
            json_ct,
            b"[{\"Name\": \"x\"}]".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            create.clone(),
            json_ct,
            b"\"Name\"".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            create.clone(),
            json_ct,
            b"null".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            create.clone(),
            json_ct,
            vec![0xff, 0xfe, b'{', b'}'],
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::PATCH,
            rec(&id),
            json_ct,
            b"[1,2]".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::PATCH,
            rec(&id),
            json_ct,
            b"{\"Name\": \"x\"".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            create.clone(),
            Some("text/plain"),
            b"{\"Name\": \"x\"}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            Method::POST,
            create.clone(),
            Some("application/x-www-form-urlencoded"),
            b"Name=x".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            Method::POST,
            create.clone(),
            None,
            b"{\"Name\": \"x\"}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            Method::PATCH,
            rec(&id),
            Some("application/xml"),
            b"<Name>x</Name>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            Method::POST,
            format!("{DATA}/composite/sobjects"),
            json_ct,
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{META}/objects"),
            json_ct,
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::PUT,
            rec(&id),
            json_ct,
            b"{}".to_vec(),
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
    ];
    for (m, path, ct, body, want, code) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(40)
            .collect::<String>();
        let (s, t) = raw(&c, m.clone(), &path, ct, body).await;
        assert_eq!(s, want, "{m} {path} {ct:?} {shown}: {t}");
        let v: Value =
            serde_json::from_str(&t).unwrap_or_else(|_| panic!("non-JSON error body: {t}"));
        assert_eq!(codes(&v), vec![code], "{m} {path} {shown}: {t}");
    }
    // A charset parameter is fine.
    let (s, t) = raw(
        &c,
        Method::POST,
        &create,
        Some("application/json; charset=utf-8"),
        b"{\"Name\": \"cs\"}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    // Bodies over 8 MiB: 413, whether announced or streamed.
    let big = format!("{{\"Name\": \"{}\"}}", "a".repeat(8 * 1024 * 1024 + 10)).into_bytes();
    let mut answered = 0;
    for chunked in [false, true] {
        if let Some(status) = socket_post(&c, &create, &big, chunked).await {
            assert_eq!(status, 413, "a body over the limit (chunked: {chunked})");
            answered += 1;
        }
    }
    assert!(answered > 0, "no 413 response was seen");
    // The server still serves after refusing them.
    let (s, _) = c.get(&rec(&id)).await;
    assert_eq!(s, StatusCode::OK);
    // Just under the limit is accepted by the transport (and refused by validation).
    let under = format!("{{\"Name\": \"{}\"}}", "a".repeat(4 * 1024 * 1024)).into_bytes();
    let (s, t) = raw(&c, Method::POST, &create, json_ct, under).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        t.contains("STRING_TOO_LONG"),
        "{}",
        t.chars().take(200).collect::<String>()
    );
    server.stop().await;
}

/// POSTs `body` over a raw socket, announced by Content-Length or chunked
/// (then the limit must hold while reading). The server may answer and
/// close before the body is written, so write errors are ignored; returns
/// the status code if a response arrived.
async fn socket_post(c: &Client, path: &str, body: &[u8], chunked: bool) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = c.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n",
        c.token.as_deref().unwrap_or("")
    );
    sock.write_all(head.as_bytes()).await.ok()?;
    for chunk in body.chunks(256 * 1024) {
        let mut frame = Vec::new();
        if chunked {
            frame.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        }
        frame.extend_from_slice(chunk);
        if chunked {
            frame.extend_from_slice(b"\r\n");
        }
        if sock.write_all(&frame).await.is_err() {
            break;
        }
    }
    if chunked {
        let _ = sock.write_all(b"0\r\n\r\n").await;
    }
    let mut buf = vec![0u8; 64];
    let n = sock.read(&mut buf).await.ok()?;
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok())
}

/// Arbitrary JSON, biased toward the shapes field coercion looks at.
fn any_json() -> impl Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[-+0-9.eE]{0,30}"
            .prop_map(|s| serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s))),
        "\\PC{0,40}".prop_map(Value::String),
        "[0-9:TZ+.-]{0,30}".prop_map(Value::String),
        proptest::sample::select(vec![
            "",
            " ",
            ";",
            ";;",
            "NaN",
            "Infinity",
            "-0",
            "1e400",
            "1e-400",
            "79228162514264337593543950336",
            "-79228162514264337593543950336",
            "0.0000000000000000000000000001",
            "1e28",
            "9e27",
            "2024-02-29T24:00:00Z",
            "9999-12-31T23:59:59.999+14:00",
            "0000-01-01",
            "+275760-09-13",
            "23:59:60",
            "x;y;z",
            "red;Red;RED",
            "a@b.c",
            "http://",
            "ftp://x",
            "00000000-0000-0000-0000-000000000000",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        proptest::sample::select(vec![
            "1e400",
            "-1e400",
            "1e-400",
            "123456789012345678901234567890",
            "1.0000000000000000000000000001",
            "-0",
            "0e0"
        ])
        .prop_map(|s| serde_json::from_str::<Value>(s).unwrap()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    proptest::sample::select(vec!["latitude", "longitude", "x"]),
                    inner
                ),
                0..3
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_values_never_cause_a_server_error() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    let def = kitchen_sink(KS);
    c.create_object(def.clone()).await;
    c.create_object(json!({"api_name": "Kid__c", "fields": [
        {"api_name": "Up__c", "data_type": "lookup", "lookup_object": KS},
        {"api_name": "Code__c", "data_type": "text", "is_unique": true, "is_external_id": true},
        {"api_name": "N__c", "data_type": "number", "is_unique": true}
    ]}))
    .await;
    let target = c.create_record(KS, json!({"Name": "fuzz"})).await;
    let kid = c.create_record("Kid__c", json!({"Name": "kid"})).await;
    let mut fields: Vec<(String, String)> = def["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (KS.to_string(), f["api_name"].as_str().unwrap().to_string()))
        .collect();
    for f in ["Name", "OwnerId", "Id", "Up__c", "Code__c", "N__c"] {
        fields.push(("Kid__c".into(), f.into()));
    }
    let mut runner = TestRunner::deterministic();
    let strategy = any_json();
    let mut failures = Vec::new();
    for round in 0..30 {
        for (object, field) in &fields {
            let v = strategy.new_tree(&mut runner).unwrap().current();
            let id = if object == KS { &target } else { &kid };
            let (s1, b1) = c
                .post(
                    &sobject(object),
                    json!({"Name": "f", field.as_str(): v.clone()}),
                )
                .await;
            let (s2, b2) = c
                .patch(
                    &format!("{}/{id}", sobject(object)),
                    json!({field.as_str(): v.clone()}),
                )
                .await;
            for (what, s, b) in [("create", s1, b1), ("update", s2, b2)] {
                if s.is_server_error() {
                    failures.push(format!("{what} {object}.{field} = {v}: {s} {b}"));
                }
            }
            if round % 4 == 0 {
                if let Some(text) = v.as_str() {
                    let enc: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
                    let (s, b) = c
                        .get(&format!("{DATA}/sobjects/Kid__c/Code__c/{enc}"))
                        .await;
                    if s.is_server_error() {
                        failures.push(format!("get by external id {v}: {s} {b}"));
                    }
                }
            }
        }
    }
    // Every record the fuzzing created or touched still reads back.
    for path in [rec(&target), format!("{}/{kid}", sobject("Kid__c"))] {
        let (s, b) = c.get(&path).await;
        if s != StatusCode::OK {
            failures.push(format!("read {path}: {s} {b}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop().await;
}
