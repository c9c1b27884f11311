//! Workflow rules end to end: save-time validation, every condition
//! operator, custom logic, re-evaluation modes, the trigger depth limit,
//! field updates, tasks, email alerts through a real SMTP sink, outbound
//! messages to a real HTTP receiver (signatures, retries, dead letters,
//! replay), time-based actions on an injected clock, field history.

mod common;
use common::*;
use mosaic_runtime::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ------------------------------------------------------------ receivers

/// Requests a receiver accepted: headers and body.
type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;
/// Messages a sink accepted: recipients and text.
type Mails = Arc<Mutex<Vec<(Vec<String>, String)>>>;

#[derive(Clone, Default)]
struct Receiver {
    got: Received,
    /// Requests to fail (500) before succeeding; `usize::MAX` fails all.
    fail_first: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(st): axum::extract::State<Receiver>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let n = st.seen.fetch_add(1, Ordering::SeqCst);
                    if n < st.fail_first.load(Ordering::SeqCst) {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    st.got.lock().unwrap().push((headers, body.to_vec()));
                    StatusCode::OK
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app.with_state(state)).await.unwrap();
        });
        (r, url)
    }

    fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }
}

/// A minimal SMTP server that accepts every message and keeps its text.
#[derive(Clone, Default)]
struct SmtpSink {
    messages: Mails,
}

impl SmtpSink {
    async fn start() -> (SmtpSink, String) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let sink = SmtpSink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    let mut rcpt = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let up = line.to_ascii_uppercase();
                        if up.starts_with("EHLO") || up.starts_with("HELO") {
                            w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await.unwrap();
                        } else if up.starts_with("RCPT TO:") {
                            rcpt.push(line[8..].trim().trim_matches(['<', '>']).to_string());
                            w.write_all(b"250 OK\r\n").await.unwrap();
                        } else if up == "DATA" {
                            w.write_all(b"354 go\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            s.messages
                                .lock()
                                .unwrap()
                                .push((std::mem::take(&mut rcpt), data));
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else if up == "QUIT" {
                            w.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        } else {
                            w.write_all(b"250 OK\r\n").await.unwrap();
                        }
                    }
                });
            }
        });
        (sink, url)
    }
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn fast_server() -> TestServer {
    TestServer::start_with(|cfg| {
        cfg.automation.retry_base = Duration::from_millis(5);
        cfg.automation.retry_cap = Duration::from_millis(40);
        cfg.automation.poll = Duration::from_millis(20);
        cfg.automation.outbound_allow = loopback_allowed();
    })
    .await
}

fn rule(c: &Client, object: &str) -> String {
    let _ = c;
    format!("{META}/objects/{object}/workflows")
}

// ------------------------------------------------------------ save time

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rules_are_refused_at_save_time() {
    let server = fast_server().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Deal__c", "fields": [
        {"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 2},
        {"api_name": "Close__c", "data_type": "date"},
        {"api_name": "Total__c", "data_type": "formula", "formula_expression": "Amount__c * 2", "formula_return_type": "number"},
    ]}))
    .await;
    let path = rule(&c, "Deal__c");
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"name": "R", "trigger_type": "created", "filter_criteria": {"logic": "AND", "conditions": [{"field": "Nope__c", "operator": "equals", "value": 1}]}, "actions": []}),
            "filter_criteria.conditions[0].field",
            "no field 'Nope__c'",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "filter_criteria": {"logic": "1 AND 2 OR 3", "conditions": [
            {"field": "Amount__c", "operator": "is_null"}, {"field": "Amount__c", "operator": "is_null"}, {"field": "Amount__c", "operator": "is_null"}]}, "actions": []}),
            "filter_criteria.logic",
            "position 9",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "filter_criteria": {"logic": "1 AND 3", "conditions": [{"field": "Amount__c", "operator": "is_null"}]}, "actions": []}),
            "filter_criteria.logic",
            "no condition 3",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "filter_criteria": {"conditions": [{"field": "Amount__c", "operator": "greater_than", "value": "abc"}]}, "actions": []}),
            "filter_criteria.conditions[0].value",
            "",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "filter_criteria": {"conditions": [{"field": "Amount__c", "operator": "resembles", "value": 1}]}, "actions": []}),
            "filter_criteria",
            "resembles",
        ),
        (
            json!({"name": "R", "trigger_type": "deleted", "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Amount__c", "value_type": "null"}}]}),
            "actions[0].action_type",
            "deletion",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Total__c", "value_type": "null"}}]}),
            "actions[0].action_config.field_api_name",
            "read-only",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Amount__c", "value_type": "formula", "formula": "Amount__c +"}}]}),
            "",
            "",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "actions": [{"action_type": "task_creation", "action_config": {"subject": "Call {!Nope__c}"}}]}),
            "actions[0].action_config.subject",
            "{!Nope__c}",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": "ftp://x", "fields": []}}]}),
            "actions[0].action_config.endpoint_url",
            "http",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "actions": [{"action_type": "email_alert", "action_config": {"template": {"subject": "s", "body": "b"}, "recipients": ["not an address"]}}]}),
            "actions[0].action_config.recipients[0]",
            "",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "re_evaluation": "every_time", "actions": [{"action_type": "field_update", "is_immediate": false,
            "time_trigger": {"field": "Close__c", "offset": 1, "unit": "days"}, "action_config": {"field_api_name": "Amount__c", "value_type": "null"}}]}),
            "re_evaluation",
            "time-based",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "actions": [{"action_type": "field_update", "is_immediate": false,
            "time_trigger": {"field": "Amount__c", "offset": 1, "unit": "days"}, "action_config": {"field_api_name": "Amount__c", "value_type": "null"}}]}),
            "actions[0].time_trigger.field",
            "not a date",
        ),
        (
            json!({"name": "R", "trigger_type": "sometimes", "actions": []}),
            "",
            "",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "actions": [], "bogus": 1}),
            "",
            "bogus",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "formula": "Amount__c > 1", "filter_criteria": {"conditions": [{"field": "Amount__c", "operator": "is_null"}]}, "actions": []}),
            "formula",
            "not both",
        ),
        (
            json!({"name": "R", "trigger_type": "created", "formula": "Amount__c + 1", "actions": []}),
            "",
            "",
        ),
    ];
    for (i, (body, field, msg)) in cases.into_iter().enumerate() {
        let (s, v) = c.post(&path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "case {i}: {body} → {v}");
        if !field.is_empty() {
            assert_eq!(v[0]["fields"][0], field, "case {i}: {v}");
        }
        assert!(
            v[0]["message"].as_str().unwrap().contains(msg),
            "case {i}: {v}"
        );
    }
    // Nothing was saved.
    let (_, list) = c.get(&path).await;
    assert_eq!(list["workflows"].as_array().unwrap().len(), 0);
    // A field a rule reads cannot be deleted from under it.
    let (s, _) = c
        .post(&path, json!({"name": "Big", "trigger_type": "created", "filter_criteria": {"conditions": [{"field": "Close__c", "operator": "is_null", "value": false}]}, "actions": []}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = c
        .delete(&format!("{META}/objects/Deal__c/fields/Close__c"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v[0]["message"]
            .as_str()
            .unwrap()
            .contains("workflow rule Deal__c.Big"),
        "{v}"
    );
    // Unknown rule → 404; another tenant cannot see it.
    let (s, _) = c.get(&format!("{path}/Nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let other = server.tenant().await;
    other.create_object(json!({"api_name": "Deal__c"})).await;
    let (s, _) = other.get(&format!("{path}/Big")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}

// ------------------------------------------------------------ operators

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_fires_exactly_when_it_should() {
    let server = fast_server().await;
    let c = server.tenant().await;
    let mut fields = vec![
        json!({"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 2}),
        json!({"api_name": "Stage__c", "data_type": "text", "length": 40}),
        json!({"api_name": "Note__c", "data_type": "text", "length": 40}),
    ];
    for i in 1..=14 {
        fields.push(json!({"api_name": format!("Op{i}__c"), "data_type": "boolean"}));
    }
    c.create_object(json!({"api_name": "Opp__c", "fields": fields}))
        .await;
    let conds = [
        json!({"field": "Stage__c", "operator": "equals", "value": "closed won"}),
        json!({"field": "Stage__c", "operator": "not_equals", "value": "Closed Won"}),
        json!({"field": "Amount__c", "operator": "greater_than", "value": 50}),
        json!({"field": "Amount__c", "operator": "less_than", "value": 50}),
        json!({"field": "Amount__c", "operator": "greater_or_equal", "value": 100}),
        json!({"field": "Amount__c", "operator": "less_or_equal", "value": 99}),
        json!({"field": "Stage__c", "operator": "contains", "value": "WON"}),
        json!({"field": "Stage__c", "operator": "starts_with", "value": "pro"}),
        json!({"field": "Stage__c", "operator": "in", "value": ["Prospecting", "Qualification"]}),
        json!({"field": "Stage__c", "operator": "not_in", "value": "Prospecting, Qualification"}),
        json!({"field": "Note__c", "operator": "is_null", "value": true}),
        json!({"field": "Stage__c", "operator": "changed"}),
        json!({"field": "Stage__c", "operator": "changed_to", "value": "Prospecting"}),
        json!({"field": "Stage__c", "operator": "changed_from", "value": "Closed Won"}),
    ];
    for (i, cond) in conds.iter().enumerate() {
        let n = i + 1;
        let (s, v) = c
            .post(
                &rule(&c, "Opp__c"),
                json!({"name": format!("Op{n}"), "trigger_type": "created_or_updated", "re_evaluation": "every_time",
                  "filter_criteria": {"logic": "AND", "conditions": [cond]},
                  "actions": [{"action_type": "field_update", "action_config": {"field_api_name": format!("Op{n}__c"), "value_type": "literal", "value": true}}]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let reset: serde_json::Map<String, Value> = (1..=14)
        .map(|i| (format!("Op{i}__c"), json!(false)))
        .collect();
    let hits = |v: &Value| -> Vec<usize> {
        (1..=14)
            .filter(|i| v[format!("Op{i}__c")] == json!(true))
            .collect()
    };
    let id = c
        .create_record(
            "Opp__c",
            json!({"Name": "A", "Stage__c": "Closed Won", "Amount__c": 100}),
        )
        .await;
    let rec = format!("{DATA}/sobjects/Opp__c/{id}");
    let (_, v) = c.get(&rec).await;
    assert_eq!(hits(&v), vec![1, 3, 5, 7, 10, 11], "on create");
    let mut body = reset.clone();
    body.insert("Stage__c".into(), json!("Prospecting"));
    assert_eq!(
        c.patch(&rec, Value::Object(body)).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, v) = c.get(&rec).await;
    assert_eq!(
        hits(&v),
        vec![2, 3, 5, 8, 9, 11, 12, 13, 14],
        "stage changed"
    );
    let mut body = reset.clone();
    body.insert("Amount__c".into(), json!(10));
    body.insert("Note__c".into(), json!("x"));
    assert_eq!(
        c.patch(&rec, Value::Object(body)).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, v) = c.get(&rec).await;
    assert_eq!(hits(&v), vec![2, 4, 6, 8, 9], "amount changed, stage not");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_logic_re_evaluation_and_depth_limit() {
    let server = fast_server().await;
    let c = server.tenant().await;
    let mut fields = vec![
        json!({"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 0}),
        json!({"api_name": "Stage__c", "data_type": "text", "length": 40}),
        json!({"api_name": "Every__c", "data_type": "number", "precision": 6, "scale": 0, "default_value": 0}),
        json!({"api_name": "First__c", "data_type": "number", "precision": 6, "scale": 0, "default_value": 0}),
        json!({"api_name": "Logic__c", "data_type": "boolean"}),
    ];
    for i in 1..=7 {
        fields.push(json!({"api_name": format!("C{i}__c"), "data_type": "number", "precision": 3, "scale": 0}));
    }
    c.create_object(json!({"api_name": "Acct__c", "fields": fields}))
        .await;
    let path = rule(&c, "Acct__c");
    let post = |body: Value| {
        let c = &c;
        let path = path.clone();
        async move {
            let (s, v) = c.post(&path, body).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v
        }
    };
    post(json!({"name": "Every", "trigger_type": "created_or_updated", "re_evaluation": "every_time",
        "filter_criteria": {"conditions": [{"field": "Amount__c", "operator": "greater_than", "value": 10}]},
        "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Every__c", "value_type": "formula", "formula": "Every__c + 1"}}]})).await;
    post(json!({"name": "First", "trigger_type": "created_or_updated", "re_evaluation": "when_criteria_first_true",
        "filter_criteria": {"conditions": [{"field": "Amount__c", "operator": "greater_than", "value": 10}]},
        "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "First__c", "value_type": "formula", "formula": "First__c + 1"}}]})).await;
    post(json!({"name": "Logic", "trigger_type": "created_or_updated", "re_evaluation": "every_time",
        "filter_criteria": {"logic": "(1 AND 2) OR NOT 3", "conditions": [
            {"field": "Stage__c", "operator": "equals", "value": "Won"},
            {"field": "Amount__c", "operator": "greater_or_equal", "value": 1000},
            {"field": "Amount__c", "operator": "greater_than", "value": 0}]},
        "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Logic__c", "value_type": "literal", "value": true}}]})).await;
    post(json!({"name": "LogicOff", "trigger_type": "created_or_updated", "re_evaluation": "every_time",
        "formula": "NOT(OR(AND(Stage__c = 'Won', Amount__c >= 1000), NOT(Amount__c > 0)))",
        "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Logic__c", "value_type": "literal", "value": false}}]})).await;
    let id = c
        .create_record(
            "Acct__c",
            json!({"Name": "A", "Amount__c": 20, "Stage__c": "Open"}),
        )
        .await;
    let rec = format!("{DATA}/sobjects/Acct__c/{id}");
    let read = |v: &Value| {
        (
            v["Every__c"].as_i64().unwrap(),
            v["First__c"].as_i64().unwrap(),
            v["Logic__c"].as_bool().unwrap(),
        )
    };
    let (_, v) = c.get(&rec).await;
    assert_eq!(read(&v), (1, 1, false));
    for (amount, stage, expect) in [
        (30, "Open", (2, 1, false)),
        (5, "Open", (2, 1, false)),
        (40, "Open", (3, 2, false)),
        (2000, "Won", (4, 2, true)),
        (0, "Won", (4, 2, true)),
        (50, "Won", (5, 3, false)),
    ] {
        let (s, e) = c
            .patch(&rec, json!({"Amount__c": amount, "Stage__c": stage}))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{e}");
        let (_, v) = c.get(&rec).await;
        assert_eq!(read(&v), expect, "after Amount {amount}, Stage {stage}");
    }
    // A chain of field updates: C1 → C2 → … each rule triggered by the
    // previous one's update. Five re-evaluations pass; a sixth fails the
    // save and writes nothing.
    for i in 1..=7 {
        let cond = if i == 1 {
            json!({"field": "Stage__c", "operator": "equals", "value": "Chain"})
        } else {
            json!({"field": format!("C{}__c", i - 1), "operator": "equals", "value": 1})
        };
        post(json!({"name": format!("Chain{i}"), "trigger_type": "updated", "re_evaluation": "every_time",
            "is_active": i <= 6,
            "filter_criteria": {"conditions": [cond]},
            "actions": [{"action_type": "field_update", "action_config": {"field_api_name": format!("C{i}__c"), "value_type": "literal", "value": 1}}]})).await;
    }
    let (s, e) = c.patch(&rec, json!({"Stage__c": "Chain"})).await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "six rules in a chain are five re-evaluations: {e}"
    );
    let (_, v) = c.get(&rec).await;
    assert_eq!(v["C6__c"], json!(1));
    let (s, _) = c
        .patch(&format!("{path}/Chain7"), json!({"is_active": true}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let id2 = c
        .create_record("Acct__c", json!({"Name": "B", "Amount__c": 1}))
        .await;
    let (s, e) = c
        .patch(
            &format!("{DATA}/sobjects/Acct__c/{id2}"),
            json!({"Stage__c": "Chain"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e[0]["errorCode"], "LIMIT_EXCEEDED");
    assert!(e[0]["message"].as_str().unwrap().contains("Chain7"), "{e}");
    let (_, v) = c.get(&format!("{DATA}/sobjects/Acct__c/{id2}")).await;
    assert_eq!(v["Stage__c"], Value::Null, "the failed save wrote nothing");
    assert_eq!(v["C1__c"], Value::Null);
    server.stop().await;
}

// ------------------------------------------------------------ actions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_emails_and_signed_outbound_messages() {
    let (sink, smtp) = SmtpSink::start().await;
    let (recv, hook) = Receiver::start().await;
    let server = TestServer::start_with(move |cfg| {
        cfg.automation.smtp_url = Some(smtp);
        cfg.automation.poll = Duration::from_millis(20);
        cfg.automation.outbound_allow = loopback_allowed();
    })
    .await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Case__c", "fields": [
        {"api_name": "Priority__c", "data_type": "picklist", "picklist_values": [{"value": "High"}, {"value": "Low"}]},
        {"api_name": "Contact__c", "data_type": "email"},
        {"api_name": "Secret__c", "data_type": "encrypted_text", "length": 50},
    ]}))
    .await;
    let (s, v) = c
        .post(
            &rule(&c, "Case__c"),
            json!({"name": "Escalate", "trigger_type": "created", "filter_criteria": {"conditions": [{"field": "Priority__c", "operator": "equals", "value": "High"}]},
              "actions": [
                {"action_type": "task_creation", "action_config": {"subject": "Call about {!Name}", "assignee": "owner", "due_date_offset": 2, "priority": "High"}},
                {"action_type": "email_alert", "action_config": {"template": {"subject": "Case {!Name} escalated", "body": "Contact: {!Contact__c}"}, "recipients": ["support@example.com", "lead@example.com"]}},
                {"action_type": "outbound_message", "action_config": {"endpoint_url": hook, "fields": ["Name", "Priority__c"], "secret": "s3cret"}}
              ]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["actions"][2]["action_config"]["has_secret"], json!(true));
    assert!(
        v["actions"][2]["action_config"].get("secret").is_none(),
        "secrets are never rendered"
    );
    let low = c
        .create_record("Case__c", json!({"Name": "Quiet", "Priority__c": "Low"}))
        .await;
    let id = c
        .create_record(
            "Case__c",
            json!({"Name": "Outage", "Priority__c": "High", "Contact__c": "ann@example.com"}),
        )
        .await;
    // The task exists as soon as the save returns (same transaction).
    let (s, q) = c
        .get(&format!(
            "{DATA}/query?q=SELECT+Subject,+Priority,+Status,+WhatId,+OwnerId,+DueDate+FROM+Task"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!(q["totalSize"], 1, "{q}");
    let t = &q["records"][0];
    assert_eq!(t["Subject"], "Call about Outage");
    assert_eq!(t["Priority"], "High");
    assert_eq!(t["Status"], "Not Started");
    assert_eq!(t["WhatId"], json!(id));
    let due = (chrono::Utc::now().date_naive() + chrono::Days::new(2)).to_string();
    assert_eq!(t["DueDate"], json!(due));
    // The email reaches the SMTP sink with its merge fields filled.
    let (rcpt, data) = eventually("the email", || {
        sink.messages.lock().unwrap().first().cloned()
    })
    .await;
    let mut rcpt = rcpt;
    rcpt.sort();
    assert_eq!(rcpt, vec!["lead@example.com", "support@example.com"]);
    assert!(data.contains("Subject: Case Outage escalated"), "{data}");
    assert!(data.contains("Contact: ann@example.com"), "{data}");
    // The outbound message: signed, with a delivery id, the chosen fields.
    let (headers, body) = eventually("the outbound message", || {
        recv.got.lock().unwrap().first().cloned()
    })
    .await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["record_id"], json!(id));
    assert_eq!(doc["record"]["Name"], "Outage");
    assert_eq!(doc["record"]["Priority__c"], "High");
    assert!(doc["record"].get("Secret__c").is_none());
    assert_eq!(doc["event"], "created");
    assert_eq!(
        headers["x-mosaic-delivery-id"].to_str().unwrap(),
        doc["delivery_id"].as_str().unwrap()
    );
    assert_eq!(
        headers["x-mosaic-signature"].to_str().unwrap(),
        mosaic_runtime::outbox::signature("s3cret", &body)
    );
    // Nothing was sent for the low-priority case.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(recv.bodies().len(), 1);
    assert_eq!(sink.messages.lock().unwrap().len(), 1);
    assert!(recv.bodies().iter().all(|b| b["record_id"] != json!(low)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoints_are_retried_then_dead_lettered_and_replayed() {
    let (recv, hook) = Receiver::start().await;
    recv.fail_first.store(usize::MAX, Ordering::SeqCst);
    let server = fast_server().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Order__c"})).await;
    let (s, v) = c
        .post(
            &rule(&c, "Order__c"),
            json!({"name": "Notify", "trigger_type": "created_or_updated", "re_evaluation": "every_time",
              "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": hook}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = c.create_record("Order__c", json!({"Name": "O-1"})).await;
    // 1 attempt + 5 retries, then a dead letter.
    let mut letters = Value::Null;
    for _ in 0..400 {
        let (_, v) = c.get("/services/admin/v1/dead-letters").await;
        if v["dead_letters"].as_array().is_some_and(|a| !a.is_empty()) {
            letters = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["record_id"], json!(id), "{letters}");
    assert_eq!(letter["attempts"], 6);
    assert_eq!(
        recv.seen.load(Ordering::SeqCst),
        6,
        "one attempt and five retries"
    );
    assert!(letter["last_error"].as_str().unwrap().contains("500"));
    let lid = letter["id"].as_str().unwrap().to_string();
    let (s, one) = c
        .get(&format!("/services/admin/v1/dead-letters/{lid}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["payload"]["body"]["record_id"], json!(id));
    // Another tenant sees none of it.
    let other = server.tenant().await;
    let (s, _) = other
        .get(&format!("/services/admin/v1/dead-letters/{lid}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = other
        .post(
            &format!("/services/admin/v1/dead-letters/{lid}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Replay once the receiver is back: delivered once, queue empty.
    recv.fail_first.store(0, Ordering::SeqCst);
    let (s, v) = c
        .post(
            &format!("/services/admin/v1/dead-letters/{lid}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let body = eventually("the replayed delivery", || recv.bodies().first().cloned()).await;
    assert_eq!(body["delivery_id"], json!(lid));
    let (_, v) = c.get("/services/admin/v1/dead-letters").await;
    assert_eq!(v["dead_letters"].as_array().unwrap().len(), 0);
    // A second dead letter is discarded.
    recv.fail_first.store(usize::MAX, Ordering::SeqCst);
    c.patch(
        &format!("{DATA}/sobjects/Order__c/{id}"),
        json!({"Name": "O-2"}),
    )
    .await;
    let mut lid2 = String::new();
    for _ in 0..400 {
        let (_, v) = c.get("/services/admin/v1/dead-letters").await;
        if let Some(x) = v["dead_letters"][0]["id"].as_str() {
            lid2 = x.to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!lid2.is_empty());
    assert_eq!(
        c.delete(&format!("/services/admin/v1/dead-letters/{lid2}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.delete(&format!("/services/admin/v1/dead-letters/{lid2}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, _) = c.get("/services/admin/v1/dead-letters?limit=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    server.stop().await;
}

// ------------------------------------------------------------ time-based

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_based_actions_run_when_due_move_with_their_date_and_cancel() {
    let start = chrono::DateTime::parse_from_rfc3339("2030-01-10T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let clock = Arc::new(ManualClock::new(start));
    let cl = clock.clone();
    let server = TestServer::start_with(move |cfg| {
        cfg.clock = cl;
        cfg.automation.poll = Duration::from_millis(20);
    })
    .await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Renewal__c", "fields": [
        {"api_name": "Ends__c", "data_type": "date"},
        {"api_name": "Status__c", "data_type": "text", "length": 20},
        {"api_name": "Reminded__c", "data_type": "boolean"},
    ]}))
    .await;
    let (s, v) = c
        .post(
            &rule(&c, "Renewal__c"),
            json!({"name": "Remind", "trigger_type": "created_or_updated",
              "filter_criteria": {"conditions": [{"field": "Status__c", "operator": "equals", "value": "Open"}]},
              "actions": [{"action_type": "field_update", "is_immediate": false,
                           "time_trigger": {"field": "Ends__c", "offset": -2, "unit": "days"},
                           "action_config": {"field_api_name": "Reminded__c", "value_type": "literal", "value": true}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let p = server.platform.clone();
    let tenant = c.tenant_id.clone();
    let pending = |id: String| {
        let p = p.clone();
        let tenant = tenant.clone();
        async move {
            p.automation
                .pending_for_record(&tenant, &id)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.due_at)
                .collect::<Vec<_>>()
        }
    };
    let a = c
        .create_record(
            "Renewal__c",
            json!({"Name": "A", "Status__c": "Open", "Ends__c": "2030-01-20"}),
        )
        .await;
    let ra = format!("{DATA}/sobjects/Renewal__c/{a}");
    assert_eq!(
        pending(a.clone()).await,
        vec![chrono::DateTime::parse_from_rfc3339("2030-01-18T00:00:00Z").unwrap()]
    );
    // Moving the date moves the action.
    c.patch(&ra, json!({"Ends__c": "2030-01-25"})).await;
    assert_eq!(
        pending(a.clone()).await,
        vec![chrono::DateTime::parse_from_rfc3339("2030-01-23T00:00:00Z").unwrap()]
    );
    // A second record whose criteria stop holding loses its action.
    let b = c
        .create_record(
            "Renewal__c",
            json!({"Name": "B", "Status__c": "Open", "Ends__c": "2030-01-21"}),
        )
        .await;
    assert_eq!(pending(b.clone()).await.len(), 1);
    c.patch(
        &format!("{DATA}/sobjects/Renewal__c/{b}"),
        json!({"Status__c": "Closed"}),
    )
    .await;
    assert!(pending(b.clone()).await.is_empty());
    // Not due yet: nothing happens.
    clock.set(start + chrono::Duration::days(5));
    server.platform.wake_outbox();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, v) = c.get(&ra).await;
    assert_eq!(v["Reminded__c"], json!(false));
    // Due: the field update runs, once.
    clock.set(start + chrono::Duration::days(14));
    server.platform.wake_outbox();
    for _ in 0..200 {
        let (_, v) = c.get(&ra).await;
        if v["Reminded__c"] == json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, v) = c.get(&ra).await;
    assert_eq!(v["Reminded__c"], json!(true));
    assert!(pending(a.clone()).await.is_empty());
    let (_, v) = c.get(&format!("{DATA}/sobjects/Renewal__c/{b}")).await;
    assert_eq!(v["Reminded__c"], json!(false), "cancelled action never ran");
    server.stop().await;
}

// ------------------------------------------------------------ history

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_history_records_each_change() {
    let server = fast_server().await;
    let c = server.tenant().await;
    c.create_object(
        json!({"api_name": "Lead__c", "enable_history": true, "fields": [
            {"api_name": "Score__c", "data_type": "number", "precision": 5, "scale": 0},
            {"api_name": "Status__c", "data_type": "text", "length": 20},
            {"api_name": "Pin__c", "data_type": "encrypted_text", "length": 20},
        ]}),
    )
    .await;
    let id = c
        .create_record(
            "Lead__c",
            json!({"Name": "L", "Score__c": 1, "Status__c": "New"}),
        )
        .await;
    let rec = format!("{DATA}/sobjects/Lead__c/{id}");
    c.patch(
        &rec,
        json!({"Score__c": 5, "Status__c": "Working", "Pin__c": "1234"}),
    )
    .await;
    c.patch(&rec, json!({"Score__c": 5})).await;
    let (s, h) = c.get(&format!("{rec}/history")).await;
    assert_eq!(s, StatusCode::OK, "{h}");
    let rows = h["records"].as_array().unwrap();
    let fields: Vec<&str> = rows.iter().map(|r| r["field"].as_str().unwrap()).collect();
    assert_eq!(rows.len(), 4, "{h}");
    assert!(fields.contains(&"created"));
    let score = rows.iter().find(|r| r["field"] == "Score__c").unwrap();
    assert_eq!(score["oldValue"], json!(1));
    assert_eq!(score["newValue"], json!(5));
    let status = rows.iter().find(|r| r["field"] == "Status__c").unwrap();
    assert_eq!(status["oldValue"], "New");
    assert_eq!(status["newValue"], "Working");
    let pin = rows.iter().find(|r| r["field"] == "Pin__c").unwrap();
    assert_eq!(
        pin["newValue"],
        Value::Null,
        "encrypted values never enter history"
    );
    assert!(score["createdById"].is_string());
    // Objects without history, unknown records, other tenants.
    c.create_object(json!({"api_name": "Plain__c"})).await;
    let pid = c.create_record("Plain__c", json!({"Name": "P"})).await;
    let (s, _) = c
        .get(&format!("{DATA}/sobjects/Plain__c/{pid}/history"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = c
        .get(&format!("{DATA}/sobjects/Lead__c/not-an-id/history"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let other = server.tenant().await;
    other
        .create_object(json!({"api_name": "Lead__c", "enable_history": true}))
        .await;
    let (s, v) = other.get(&format!("{rec}/history")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_one_record_see_a_consistent_old_new_chain() {
    let server = fast_server().await;
    let c = server.tenant().await;
    c.create_object(
        json!({"api_name": "Ticket__c", "enable_history": true, "fields": [
        {"api_name": "State__c", "data_type": "text", "length": 20}]}),
    )
    .await;
    let id = c
        .create_record("Ticket__c", json!({"Name": "T", "State__c": "s0"}))
        .await;
    let rec = format!("{DATA}/sobjects/Ticket__c/{id}");
    let mut tasks = Vec::new();
    for i in 1..=16 {
        let (c, rec) = (c.clone(), rec.clone());
        tasks.push(tokio::spawn(async move {
            c.patch(&rec, json!({"State__c": format!("s{i}")})).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::NO_CONTENT);
    }
    let (_, h) = c.get(&format!("{rec}/history?limit=100")).await;
    let mut rows: Vec<&Value> = h["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["field"] == "State__c")
        .collect();
    rows.reverse(); // oldest first
    assert_eq!(rows.len(), 16, "{h}");
    assert_eq!(rows[0]["oldValue"], "s0");
    for w in rows.windows(2) {
        assert_eq!(
            w[1]["oldValue"], w[0]["newValue"],
            "each save saw the previous save's result as its old value: {h}"
        );
    }
    let (_, v) = c.get(&rec).await;
    assert_eq!(v["State__c"], rows[15]["newValue"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_rules_and_the_queued_action_limit() {
    let (recv, hook) = Receiver::start().await;
    let server = fast_server().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Asset__c", "fields": [
        {"api_name": "Kind__c", "data_type": "text", "length": 20}]}))
        .await;
    let (s, v) = c
        .post(
            &rule(&c, "Asset__c"),
            json!({"name": "Gone", "trigger_type": "deleted",
              "filter_criteria": {"conditions": [{"field": "Kind__c", "operator": "equals", "value": "laptop"}]},
              "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": hook, "fields": ["Kind__c"]}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let laptop = c
        .create_record("Asset__c", json!({"Name": "L", "Kind__c": "laptop"}))
        .await;
    let desk = c
        .create_record("Asset__c", json!({"Name": "D", "Kind__c": "desk"}))
        .await;
    assert_eq!(
        c.delete(&format!("{DATA}/sobjects/Asset__c/{desk}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.delete(&format!("{DATA}/sobjects/Asset__c/{laptop}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let body = eventually("the deletion message", || recv.bodies().first().cloned()).await;
    assert_eq!(body["event"], "deleted");
    assert_eq!(body["record_id"], json!(laptop));
    assert_eq!(body["record"]["Kind__c"], "laptop");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(recv.bodies().len(), 1, "the desk matched no rule");
    // 6 rules × 20 outbound messages = 120 queued actions > 100: refused.
    c.create_object(json!({"api_name": "Noisy__c"})).await;
    for r in 0..6 {
        let actions: Vec<Value> = (0..20)
            .map(|_| json!({"action_type": "outbound_message", "action_config": {"endpoint_url": hook}}))
            .collect();
        let (s, v) = c
            .post(
                &rule(&c, "Noisy__c"),
                json!({"name": format!("N{r}"), "trigger_type": "created", "actions": actions}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, e) = c
        .post(&format!("{DATA}/sobjects/Noisy__c"), json!({"Name": "x"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e[0]["errorCode"], "LIMIT_EXCEEDED");
    assert!(e[0]["message"].as_str().unwrap().contains("100"), "{e}");
    let (_, q) = c
        .get(&format!("{DATA}/query?q=SELECT+Id+FROM+Noisy__c"))
        .await;
    assert_eq!(q["totalSize"], 0, "nothing written");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_read_formula_fields_and_cross_object_values() {
    let server = fast_server().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Co__c", "fields": [
        {"api_name": "Region__c", "data_type": "text", "length": 20}]}))
        .await;
    c.create_object(json!({"api_name": "Deal__c", "fields": [
        {"api_name": "Amount__c", "data_type": "number", "precision": 12, "scale": 0},
        {"api_name": "Co__c", "data_type": "lookup", "lookup_object": "Co__c"},
        {"api_name": "Double__c", "data_type": "formula", "formula_return_type": "number", "formula_expression": "Amount__c * 2"},
        {"api_name": "Region__c", "data_type": "formula", "formula_return_type": "text", "formula_expression": "Co__r.Region__c"},
        {"api_name": "Flag__c", "data_type": "text", "length": 80}]}))
    .await;
    let (s, v) = c
        .post(
            &rule(&c, "Deal__c"),
            json!({"name": "Big", "trigger_type": "created_or_updated", "re_evaluation": "every_time",
              "filter_criteria": {"logic": "1 AND 2", "conditions": [
                  {"field": "Double__c", "operator": "greater_than", "value": 150},
                  {"field": "Region__c", "operator": "equals", "value": "EMEA"}]},
              "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Flag__c", "value_type": "formula", "formula": "\"big in \" & Region__c"}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let emea = c
        .create_record("Co__c", json!({"Name": "E", "Region__c": "EMEA"}))
        .await;
    let apac = c
        .create_record("Co__c", json!({"Name": "A", "Region__c": "APAC"}))
        .await;
    let d1 = c
        .create_record(
            "Deal__c",
            json!({"Name": "1", "Amount__c": 100, "Co__c": emea}),
        )
        .await;
    let d2 = c
        .create_record(
            "Deal__c",
            json!({"Name": "2", "Amount__c": 100, "Co__c": apac}),
        )
        .await;
    let d3 = c
        .create_record(
            "Deal__c",
            json!({"Name": "3", "Amount__c": 50, "Co__c": emea}),
        )
        .await;
    let flag = |v: Value| v["Flag__c"].clone();
    assert_eq!(
        flag(c.get(&format!("{DATA}/sobjects/Deal__c/{d1}")).await.1),
        json!("big in EMEA")
    );
    assert_eq!(
        flag(c.get(&format!("{DATA}/sobjects/Deal__c/{d2}")).await.1),
        Value::Null
    );
    assert_eq!(
        flag(c.get(&format!("{DATA}/sobjects/Deal__c/{d3}")).await.1),
        Value::Null
    );
    c.patch(
        &format!("{DATA}/sobjects/Deal__c/{d3}"),
        json!({"Amount__c": 80}),
    )
    .await;
    assert_eq!(
        flag(c.get(&format!("{DATA}/sobjects/Deal__c/{d3}")).await.1),
        json!("big in EMEA")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_changes_are_audit_logged() {
    let server = fast_server().await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Aud__c"})).await;
    let (s, _) = c
        .post(
            &format!("{META}/objects/Aud__c/fields"),
            json!({"api_name": "Size__c", "data_type": "number"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = c
        .post(
            &rule(&c, "Aud__c"),
            json!({"name": "W", "trigger_type": "created", "actions": []}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        c.delete(&format!("{META}/objects/Aud__c/workflows/W"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    // A refused change and a read are not logged.
    let (s, _) = c.post(&rule(&c, "Aud__c"), json!({"name": "W"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    c.get(&rule(&c, "Aud__c")).await;
    let (s, v) = c.get("/services/admin/v1/audit?limit=50").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: Vec<(String, String, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("metadata."))
        .map(|e| {
            assert_eq!(e["actor_user_id"], json!(c.user_id));
            (
                e["action"].as_str().unwrap().to_string(),
                e["target_type"].as_str().unwrap().to_string(),
                e["target_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("metadata.delete", "workflow_rule", "Aud__c/W"),
        ("metadata.create", "workflow_rule", "Aud__c"),
        ("metadata.create", "field", "Aud__c"),
        ("metadata.create", "object", ""),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>(),
        "{v}"
    );
    // Another tenant's log holds none of it.
    let other = server.tenant().await;
    let (_, v) = other
        .get("/services/admin/v1/audit?action=metadata.create")
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 0, "{v}");
    server.stop().await;
}

// ------------------------------------------------------------ outbound guard

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_endpoints_in_refused_ranges_are_refused_at_save_and_delivery() {
    let (recv, hook) = Receiver::start().await;
    // No allow-list: public destinations only.
    let server = TestServer::start_with(|cfg| {
        cfg.automation.retry_base = Duration::from_millis(5);
        cfg.automation.retry_cap = Duration::from_millis(40);
        cfg.automation.poll = Duration::from_millis(20);
    })
    .await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Order__c"})).await;
    let path = rule(&c, "Order__c");
    for url in [
        "http://127.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://127.1/",
        hook.as_str(),
    ] {
        let (s, v) = c
            .post(
                &path,
                json!({"name": "R", "trigger_type": "created",
                  "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": url}}]}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {v}");
        let text = v.to_string();
        assert!(
            text.contains("actions[0].action_config.endpoint_url"),
            "{url}: {v}"
        );
        assert!(text.contains("--outbound-allow"), "{url}: {v}");
    }
    // A host name is saved (it is checked where it resolves, at delivery)…
    let port = hook
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .unwrap()
        .to_string();
    let by_name = format!("http://localhost:{port}/hook");
    let (s, v) = c
        .post(
            &path,
            json!({"name": "Notify", "trigger_type": "created",
              "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": by_name}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // …and refused there: dead-lettered after one attempt, with the reason,
    // the receiver never reached.
    let id = c.create_record("Order__c", json!({"Name": "O-1"})).await;
    let mut letter = Value::Null;
    for _ in 0..400 {
        let (_, v) = c.get("/services/admin/v1/dead-letters").await;
        if let Some(l) = v["dead_letters"].as_array().and_then(|a| a.first()) {
            letter = l.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(letter["record_id"], json!(id), "{letter}");
    assert_eq!(letter["attempts"], 1, "not retried: {letter}");
    let reason = letter["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("refused") && reason.contains("loopback") && reason.contains("localhost"),
        "{reason}"
    );
    assert_eq!(recv.seen.load(Ordering::SeqCst), 0);
    server.stop().await;

    // The operator's allow-list opens loopback: the same URLs save.
    let server = TestServer::start_with(|cfg| {
        cfg.automation.outbound_allow = loopback_allowed();
    })
    .await;
    let c = server.tenant().await;
    c.create_object(json!({"api_name": "Order__c"})).await;
    for url in ["http://127.0.0.1/hook", "http://[::ffff:127.0.0.1]/"] {
        let (s, v) = c
            .post(
                &rule(&c, "Order__c"),
                json!({"name": format!("R{}", url.len()), "trigger_type": "created",
                  "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": url}}]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{url}: {v}");
    }
    // Link-local stays refused: the list names loopback only.
    let (s, v) = c
        .post(
            &rule(&c, "Order__c"),
            json!({"name": "Meta", "trigger_type": "created",
              "actions": [{"action_type": "outbound_message", "action_config": {"endpoint_url": "http://169.254.169.254/"}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    server.stop().await;
}
