//! Resource guards over HTTP: integer inputs at their extremes answer 400
//! naming the field (never a panic or a 500), and search terms are bounded.

mod common;

use common::{enc, TestServer, DATA, META};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn message(v: &Value) -> &str {
    v[0]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_inputs_at_their_extremes_answer_400_naming_the_field() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Deal__c", "fields": [
        {"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 2},
        {"api_name": "Close__c", "data_type": "date"},
    ]}))
    .await;
    let rules = format!("{META}/objects/Deal__c/workflows");
    for unit in ["hours", "days"] {
        for offset in [i64::MIN, i64::MIN + 1, i64::MAX, 3_650 * 24 + 1] {
            let body = json!({"name": "R", "trigger_type": "created", "actions": [{
                "action_type": "field_update", "is_immediate": false,
                "time_trigger": {"field": "Close__c", "offset": offset, "unit": unit},
                "action_config": {"field_api_name": "Amount__c", "value_type": "null"}}]});
            let (s, v) = c.post(&rules, body).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{unit} {offset}: {v}");
            assert_eq!(v[0]["fields"][0], "actions[0].time_trigger.offset", "{v}");
            assert!(message(&v).contains(unit), "{v}");
        }
    }
    // Days are bounded in days: ten years, not ten years of hours.
    let body = json!({"name": "R", "trigger_type": "created", "actions": [{
        "action_type": "field_update", "is_immediate": false,
        "time_trigger": {"field": "Close__c", "offset": 3_651, "unit": "days"},
        "action_config": {"field_api_name": "Amount__c", "value_type": "null"}}]});
    let (s, v) = c.post(&rules, body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    for offset in [i64::MIN, i64::MAX] {
        let body = json!({"name": "T", "trigger_type": "created", "actions": [{
            "action_type": "task_creation",
            "action_config": {"subject": "Call", "due_date_offset": offset}}]});
        let (s, v) = c.post(&rules, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "due {offset}: {v}");
        assert!(
            v[0]["fields"][0]
                .as_str()
                .unwrap_or_default()
                .ends_with("due_date_offset"),
            "{v}"
        );
    }
    // Nothing was saved, and saving a record fires nothing that panics.
    let (_, list) = c.get(&rules).await;
    assert_eq!(list["workflows"].as_array().unwrap().len(), 0, "{list}");
    c.create_record("Deal__c", json!({"Name": "D", "Close__c": "2026-01-01"}))
        .await;

    // LIMIT and OFFSET in SOQL.
    for clause in [
        format!("LIMIT {}", i64::MAX),
        format!("LIMIT {}", i64::MIN),
        format!("LIMIT {}", u64::MAX),
        format!("OFFSET {}", i64::MAX),
        format!("OFFSET {}", i64::MIN),
        "LIMIT 99999999999999999999999999".to_string(),
    ] {
        let soql = format!("SELECT Id FROM Deal__c {clause}");
        let (s, v) = c.get(&format!("{DATA}/query?q={}", enc(&soql))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{soql}: {v}");
        assert_eq!(v[0]["errorCode"], "MALFORMED_QUERY", "{soql}: {v}");
    }
    // LIMIT and OFFSET of the list endpoint.
    for (name, value) in [
        ("limit", i64::MAX.to_string()),
        ("limit", i64::MIN.to_string()),
        ("offset", i64::MAX.to_string()),
        ("offset", i64::MIN.to_string()),
    ] {
        let (s, v) = c
            .get(&format!("{DATA}/sobjects/Deal__c?fields=Id&{name}={value}"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name}={value}: {v}");
        assert_eq!(v[0]["fields"][0], name, "{v}");
    }
    // The deadline header at its extremes is clamped, not an error.
    for d in ["0", "18446744073709551615", "-1"] {
        let res = c
            .http
            .get(format!("{}{DATA}/sobjects/Deal__c?fields=Id", c.base))
            .bearer_auth(c.token.as_deref().unwrap())
            .header("X-Mosaic-Deadline-Ms", d)
            .send()
            .await
            .unwrap();
        assert!(
            res.status() == StatusCode::OK || res.status() == StatusCode::GATEWAY_TIMEOUT,
            "deadline {d}: {}",
            res.status()
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_terms_are_bounded() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Note__c", "fields": [
        {"api_name": "Body__c", "data_type": "text", "length": 200},
    ]}))
    .await;
    c.create_record("Note__c", json!({"Name": "acme widget", "Body__c": "blue"}))
        .await;
    let search = |sosl: String| {
        let c = c.clone();
        async move { c.get(&format!("{DATA}/search?q={}", enc(&sosl))).await }
    };
    let (s, v) = search("FIND {acme} RETURNING Note__c(Name)".into()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["searchRecords"].as_array().map(Vec::len), Some(1), "{v}");
    let words = vec!["acme"; 33].join(" OR ");
    let (s, v) = search(format!("FIND {{{words}}} RETURNING Note__c(Name)")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("at most 32"), "{v}");
    let (s, v) = search("FIND {a*} RETURNING Note__c(Name)".into()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("too short"), "{v}");
    let (s, v) = search("FIND {ac*} RETURNING Note__c(Name)".into()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    server.stop().await;
}
