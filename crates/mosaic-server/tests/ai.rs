//! The AI tier as a client sees it, against a stub LLM service speaking the
//! chat-completions wire format: formulas and queries checked by the real
//! checkers (with one repair round), input errors, the server without an
//! LLM, and the LLM's circuit breaker — open after three failures, 503 with
//! `Retry-After` without calling the service, degradation level 1 while the
//! rest of the platform serves, and recovery through a half-open probe.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{TimeZone, Utc};
use common::{codes, Client, TestServer, DATA};
use mosaic_runtime::ai::LlmConfig;
use mosaic_runtime::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FORMULA: &str = "/services/ai/v1/formula/generate";
const QUERY: &str = "/services/ai/v1/query/natural";
const API_KEY: &str = "sk-test-not-a-real-key";
/// The LLM timeout of these servers: long enough for the stub's instant
/// answers on a busy machine, short enough that a hang costs one second.
const LLM_TIMEOUT: Duration = Duration::from_secs(1);

const GOOD_FORMULA: &str = "Due_Date__c - TODAY()";
const MISSPELT_FORMULA: &str = "Due_Date__c - TODAYY()";
const MISTYPED_FORMULA: &str = "Amount__c + \"x\"";
const GOOD_QUERY: &str =
    "SELECT Name, Amount__c FROM Invoice__c WHERE Amount__c > 100 ORDER BY Amount__c DESC LIMIT 10";
const BAD_QUERY: &str = "SELECT Nme FROM Invoice__c";

/// What the stub does with the next completion request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// A valid formula or query.
    Valid,
    /// An invalid one first; a valid one when asked to repair it.
    InvalidThenValid,
    /// An invalid one, repair or not.
    Invalid,
    /// Prose instead of the JSON object.
    Malformed,
    /// 500.
    Fail,
    /// 401, as for a wrong API key.
    Refuse,
    /// No answer for far longer than the timeout.
    Hang,
}

/// One request the stub received.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    body: Value,
}

impl Seen {
    fn message(&self, i: usize) -> &str {
        self.body["messages"][i]["content"].as_str().unwrap_or("")
    }
}

struct StubState {
    behaviour: Mutex<Behaviour>,
    hits: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// An LLM service on a loopback port speaking the chat-completions shape.
struct StubLlm {
    url: String,
    state: Arc<StubState>,
}

impl StubLlm {
    async fn start(behaviour: Behaviour) -> StubLlm {
        let state = Arc::new(StubState {
            behaviour: Mutex::new(behaviour),
            hits: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", axum::routing::post(completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StubLlm { url, state }
    }

    fn set(&self, b: Behaviour) {
        *self.state.behaviour.lock().unwrap() = b;
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn completion(content: &str) -> Response {
    Json(json!({
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
    }))
    .into_response()
}

fn proposal(key: &str, text: &str, confidence: f64) -> String {
    json!({key: text, "explanation": "what the stub proposes", "confidence": confidence})
        .to_string()
}

async fn completions(
    State(st): State<Arc<StubState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    st.hits.fetch_add(1, Ordering::SeqCst);
    let seen = Seen {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    let is_query = seen.message(0).contains("SOQL");
    let is_repair = seen.message(1).contains("was rejected");
    st.seen.lock().unwrap().push(seen);
    let behaviour = *st.behaviour.lock().unwrap();
    let (key, good, bad) = if is_query {
        ("query", GOOD_QUERY, BAD_QUERY)
    } else {
        ("formula", GOOD_FORMULA, MISSPELT_FORMULA)
    };
    match behaviour {
        Behaviour::Valid => completion(&proposal(key, good, 0.9)),
        Behaviour::InvalidThenValid if is_repair => completion(&proposal(key, good, 0.8)),
        Behaviour::InvalidThenValid => completion(&proposal(key, bad, 0.7)),
        Behaviour::Invalid if is_query => completion(&proposal(key, BAD_QUERY, 0.6)),
        Behaviour::Invalid => completion(&proposal(key, MISTYPED_FORMULA, 0.6)),
        Behaviour::Malformed => completion("Sure! Here it is: Due_Date__c - TODAY()"),
        Behaviour::Fail => (AxumStatus::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        Behaviour::Refuse => (
            AxumStatus::UNAUTHORIZED,
            Json(json!({"error": {"message": "Incorrect API key provided"}})),
        )
            .into_response(),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            completion(&proposal(key, good, 0.9))
        }
    }
}

fn llm_config(url: &str) -> LlmConfig {
    let mut cfg = LlmConfig::new(url).expect("LLM url");
    cfg.model = "stub-model".into();
    cfg.api_key = Some(API_KEY.into());
    cfg.timeout = LLM_TIMEOUT;
    cfg
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap(),
    ))
}

/// A server whose AI tier talks to `stub`, on a manual clock.
async fn server_with(stub: &StubLlm, clock: Arc<ManualClock>) -> TestServer {
    let cfg = llm_config(&stub.url);
    TestServer::start_with(move |c| {
        c.llm = Some(cfg);
        c.clock = clock;
    })
    .await
}

async fn invoice(c: &Client) {
    c.create_object(json!({
        "api_name": "Invoice__c", "label": "Invoice",
        "fields": [
            {"api_name": "Amount__c", "data_type": "currency"},
            {"api_name": "Due_Date__c", "label": "Due Date", "data_type": "date"},
            {"api_name": "Status__c", "data_type": "picklist",
             "picklist_values": [{"value": "Draft"}, {"value": "Paid"}]}
        ]
    }))
    .await;
}

/// Status, `Retry-After` and body of a POST.
async fn post_raw(c: &Client, path: &str, body: Value) -> (StatusCode, Option<u64>, Value) {
    let res = c
        .http
        .post(format!("{}{path}", c.base))
        .bearer_auth(c.token.as_deref().unwrap_or(""))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry_after, res.json().await.unwrap_or(Value::Null))
}

fn days_until_due() -> Value {
    json!({"object": "Invoice__c", "description": "days until due", "return_type": "number"})
}

async fn readyz(server: &TestServer) -> (StatusCode, Value) {
    let res = reqwest::get(format!("{}/readyz", server.base))
        .await
        .expect("readyz");
    (res.status(), res.json().await.expect("readyz json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_generate_returns_a_formula_the_checker_accepted() {
    let stub = StubLlm::start(Behaviour::Valid).await;
    let server = server_with(&stub, manual_clock()).await;
    let admin = server.tenant().await;
    invoice(&admin).await;

    let (s, v) = admin.post(FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["formula"], GOOD_FORMULA);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["return_type"], "number");
    assert_eq!(v["object"], "Invoice__c");
    assert_eq!(v["explanation"], "what the stub proposes");
    assert_eq!(v["confidence"].as_f64(), Some(0.9));
    assert_eq!(v["repaired"], false);
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["warnings"], json!([]));

    // The wire format: one chat completion, system then user, the key as
    // a bearer token, the object's fields and the description in the prompt.
    assert_eq!(stub.hits(), 1);
    let seen = &stub.seen()[0];
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(seen.body["model"], "stub-model");
    assert_eq!(seen.body["temperature"], 0);
    let roles: Vec<&str> = seen.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user"]);
    let user = seen.message(1);
    for expected in [
        "Invoice__c",
        "Due_Date__c (label \"Due Date\"): date",
        "Amount__c",
        "currency",
        "Status__c",
        "Draft, Paid",
        "days until due",
        "must return: number",
    ] {
        assert!(
            user.contains(expected),
            "{expected:?} not in the prompt:\n{user}"
        );
    }
    assert!(seen.message(0).contains("\"formula\""));

    // Not an administrator: the same refusal as the formula editor's check.
    let standard = standard_user(&admin).await;
    let (s, v) = standard.post(FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = server.anonymous().post(FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(stub.hits(), 1);
    server.stop().await;
}

async fn standard_user(admin: &Client) -> Client {
    let username = format!("ann-{}@example.test", admin.tenant_id);
    let (s, v) = admin
        .post(
            "/services/admin/v1/users",
            json!({"username": username, "password": "correct-horse-battery", "profile": "standard"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", admin.base))
        .form(&[
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", "correct-horse-battery"),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = res.json().await.unwrap();
    admin.with_token(t["access_token"].as_str().expect("token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_formula_is_sent_back_once_with_the_checkers_errors() {
    let stub = StubLlm::start(Behaviour::InvalidThenValid).await;
    let server = server_with(&stub, manual_clock()).await;
    let admin = server.tenant().await;
    invoice(&admin).await;

    let (s, v) = admin.post(FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["valid"].clone(), v["repaired"].clone()),
        (json!(true), json!(true)),
        "{v}"
    );
    assert_eq!(v["formula"], GOOD_FORMULA);
    assert_eq!(v["return_type"], "number");
    assert!(
        v["warnings"].to_string().contains("corrected"),
        "the answer says it was repaired: {v}"
    );
    assert_eq!(stub.hits(), 2, "one repair round");
    let repair = stub.seen()[1].message(1).to_string();
    assert!(repair.contains(MISSPELT_FORMULA), "{repair}");
    assert!(
        repair.contains("unknown function TODAYY (at byte 14)"),
        "the checker's error goes back to the LLM: {repair}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formula_invalid_after_the_repair_round_is_answered_invalid_with_positions() {
    let stub = StubLlm::start(Behaviour::Invalid).await;
    let server = server_with(&stub, manual_clock()).await;
    let admin = server.tenant().await;
    invoice(&admin).await;

    let (s, v) = admin.post(FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["formula"], MISTYPED_FORMULA);
    assert_eq!(v["return_type"], Value::Null);
    let errors = v["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "{v}");
    for e in errors {
        assert!(!e["message"].as_str().unwrap_or("").is_empty(), "{e}");
        let p = e["position"].as_u64().expect("a position");
        assert!((p as usize) < MISTYPED_FORMULA.len(), "{e}");
    }
    assert_eq!(stub.hits(), 2, "one repair round, no more");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natural_query_is_planned_against_the_callers_schema_not_run() {
    let stub = StubLlm::start(Behaviour::Valid).await;
    let server = server_with(&stub, manual_clock()).await;
    let admin = server.tenant().await;
    invoice(&admin).await;

    let question = json!({"question": "the ten biggest invoices over 100", "object": "invoice__c"});
    let (s, v) = admin.post(QUERY, question.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["query"], GOOD_QUERY);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["return_type"], "records");
    assert_eq!(v["object"], "Invoice__c");
    assert_eq!(v["errors"], json!([]));
    let user = stub.seen()[0].message(1).to_string();
    assert!(user.contains("Amount__c (label"), "{user}");
    assert!(user.contains("the ten biggest invoices over 100"), "{user}");
    assert!(stub.seen()[0].message(0).contains("\"query\""));

    // A field that does not exist: repaired once…
    stub.set(Behaviour::InvalidThenValid);
    let (s, v) = admin.post(QUERY, question.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["valid"].clone(), v["repaired"].clone()),
        (json!(true), json!(true)),
        "{v}"
    );
    assert!(stub.seen()[2].message(1).contains("Nme"));
    // …or reported with its position when the repair fails too.
    stub.set(Behaviour::Invalid);
    let (s, v) = admin.post(QUERY, question.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["query"], BAD_QUERY);
    assert_eq!(v["errors"][0]["position"], 7, "{v}");
    assert!(
        v["errors"][0]["message"].as_str().unwrap().contains("Nme"),
        "{v}"
    );
    assert_eq!(stub.hits(), 5);

    // Nothing ran: no record was created, and the query planned above
    // reads an object that has none.
    let (_, v) = admin
        .get(&format!("{DATA}/query?q=SELECT+Id+FROM+Invoice__c"))
        .await;
    assert_eq!(v["totalSize"], 0, "{v}");

    // A user who cannot read Invoice__c cannot name it, and with no
    // readable object there is nothing to describe to the LLM.
    let standard = standard_user(&admin).await;
    let (s, v) = standard.post(QUERY, question).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v[0]["fields"], json!(["object"]), "{v}");
    let (s, v) = standard
        .post(QUERY, json!({"question": "all invoices"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(stub.hits(), 5, "no prompt left the server for them");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_field_named_before_the_llm_is_asked() {
    let stub = StubLlm::start(Behaviour::Valid).await;
    let server = server_with(&stub, manual_clock()).await;
    let admin = server.tenant().await;
    invoice(&admin).await;

    let long = "d".repeat(2_001);
    for (path, body, field) in [
        (FORMULA, json!({"object": "Invoice__c"}), "description"),
        (
            FORMULA,
            json!({"object": "Invoice__c", "description": "   "}),
            "description",
        ),
        (FORMULA, json!({"description": "days until due"}), "object"),
        (
            FORMULA,
            json!({"object": "", "description": "days until due"}),
            "object",
        ),
        (
            FORMULA,
            json!({"object": "Nope__c", "description": "days until due"}),
            "object",
        ),
        (
            FORMULA,
            json!({"object": "Invoice__c", "description": long}),
            "description",
        ),
        (
            FORMULA,
            json!({"object": "Invoice__c", "description": "x", "return_type": "lookup"}),
            "return_type",
        ),
        (QUERY, json!({"object": "Invoice__c"}), "question"),
        (QUERY, json!({"question": long}), "question"),
        (
            QUERY,
            json!({"question": "all of them", "object": "Nope__c"}),
            "object",
        ),
    ] {
        let (s, v) = admin.post(path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v[0]["fields"], json!([field]), "{body}: {v}");
    }
    let (s, v) = admin
        .post(
            FORMULA,
            json!({"object": "Invoice__c", "description": "x", "colour": "red"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "unknown members are refused: {v}"
    );
    assert_eq!(stub.hits(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_llm_the_ai_endpoints_say_none_is_configured() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    invoice(&admin).await;
    for (path, body) in [
        (FORMULA, days_until_due()),
        (QUERY, json!({"question": "all invoices"})),
    ] {
        let (s, v) = admin.post(path, body).await;
        assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{v}");
        assert_eq!(codes(&v), ["NOT_IMPLEMENTED"]);
        let msg = v[0]["message"].as_str().unwrap();
        assert!(msg.contains("--llm-url / MOSAIC_LLM_URL"), "{msg}");
    }
    for path in [
        "/services/ai/v1/workflow/generate",
        "/services/ai/v1/schema/recommend",
    ] {
        let (s, v) = admin.post(path, json!({"description": "x"})).await;
        assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{v}");
        assert!(
            v[0]["message"].as_str().unwrap().contains("not built yet"),
            "{v}"
        );
    }
    let (s, ready) = readyz(&server).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ready["degradation_level"], 0, "{ready}");
    assert!(ready["dependencies"].get("llm").is_none(), "{ready}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_llm_failures_open_the_breaker_level_1_then_a_probe_recovers() {
    let stub = StubLlm::start(Behaviour::Fail).await;
    let clock = manual_clock();
    let server = server_with(&stub, clock.clone()).await;
    let admin = server.tenant().await;
    invoice(&admin).await;
    let id = admin
        .create_record("Invoice__c", json!({"Name": "First", "Amount__c": 10}))
        .await;

    let (_, ready) = readyz(&server).await;
    assert_eq!(ready["degradation_level"], 0, "{ready}");
    assert_eq!(ready["dependencies"]["llm"]["state"], "up", "{ready}");
    assert_eq!(ready["dependencies"]["llm"]["breaker"], "closed");

    // Three 500s: each answered 503, none retried (a sent completion is
    // not repeated), and the third opens the breaker.
    for n in 1..=3 {
        let (s, _, v) = post_raw(&admin, FORMULA, days_until_due()).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(codes(&v), ["SERVICE_UNAVAILABLE"]);
        assert_eq!(stub.hits(), n);
    }
    // Open: refused at once, with the open time left, without a call.
    stub.set(Behaviour::Valid);
    for (path, body) in [
        (FORMULA, days_until_due()),
        (QUERY, json!({"question": "all invoices"})),
    ] {
        let (s, retry_after, v) = post_raw(&admin, path, body).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(retry_after, Some(60), "the breaker's open time left");
        assert!(
            v[0]["message"]
                .as_str()
                .unwrap()
                .contains("circuit breaker open"),
            "{v}"
        );
    }
    assert_eq!(stub.hits(), 3, "an open breaker does not call the LLM");

    // Level 1: the AI tier is degraded, everything else serves.
    let (s, ready) = readyz(&server).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ready["degradation_level"], 1, "{ready}");
    assert_eq!(ready["degradation"], "ai_degraded");
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["dependencies"]["llm"]["state"], "down");
    assert_eq!(ready["dependencies"]["llm"]["breaker"], "open");
    assert!(ready["dependencies"]["llm"]["error"]
        .as_str()
        .unwrap()
        .contains("retry in 60 s"));
    let (s, v) = admin.get(&format!("{DATA}/sobjects/Invoice__c/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = admin
        .post(
            &format!("{DATA}/sobjects/Invoice__c"),
            json!({"Name": "Second"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "writes are not refused at level 1: {v}"
    );
    let (s, v) = admin
        .post(
            "/services/metadata/v1/formula/check",
            json!({"object": "Invoice__c", "expression": GOOD_FORMULA}),
        )
        .await;
    assert_eq!((s, v["ok"].clone()), (StatusCode::OK, json!(true)), "{v}");

    // The open time passes: half-open, one probe goes through, it succeeds,
    // the breaker closes and the level returns to 0.
    clock.advance(chrono::Duration::seconds(60));
    let (_, ready) = readyz(&server).await;
    assert_eq!(
        ready["dependencies"]["llm"]["breaker"], "half_open",
        "{ready}"
    );
    assert_eq!(ready["degradation_level"], 1);
    let (s, v) = admin.post(FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(stub.hits(), 4);
    let (_, ready) = readyz(&server).await;
    assert_eq!(ready["degradation_level"], 0, "{ready}");
    assert_eq!(ready["dependencies"]["llm"]["breaker"], "closed");
    assert_eq!(ready["dependencies"]["llm"]["state"], "up");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_answers_refusals_and_timeouts_are_failures_of_the_llm() {
    let stub = StubLlm::start(Behaviour::Malformed).await;
    let server = server_with(&stub, manual_clock()).await;
    let admin = server.tenant().await;
    invoice(&admin).await;

    let (s, _, v) = post_raw(&admin, FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v[0]["message"].as_str().unwrap().contains("unusable"),
        "{v}"
    );

    stub.set(Behaviour::Refuse);
    let (s, _, v) = post_raw(&admin, FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let msg = v[0]["message"].as_str().unwrap();
    assert!(msg.contains("HTTP 401"), "{msg}");
    assert!(!msg.contains(API_KEY));

    let (_, ready) = readyz(&server).await;
    assert_eq!(ready["degradation_level"], 0, "two failures: still closed");

    stub.set(Behaviour::Hang);
    let (s, retry_after, v) = post_raw(&admin, QUERY, json!({"question": "all invoices"})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v[0]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1000 ms"),
        "{v}"
    );
    assert_eq!(
        retry_after,
        Some(60),
        "the third failure opened the breaker"
    );
    assert_eq!(stub.hits(), 3, "a timed-out completion is not sent again");
    let (_, ready) = readyz(&server).await;
    assert_eq!(ready["degradation"], "ai_degraded", "{ready}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_llm_is_tried_twice_per_request_and_soon_fails_fast() {
    // A port nothing listens on: connections are refused before anything
    // is sent, so each request tries once more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let cfg = llm_config(&closed);
    let server = TestServer::start_with(move |c| {
        c.llm = Some(cfg);
        c.clock = manual_clock();
    })
    .await;
    let admin = server.tenant().await;
    invoice(&admin).await;

    let (s, _, v) = post_raw(&admin, FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v[0]["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{v}"
    );
    let (_, ready) = readyz(&server).await;
    assert_eq!(
        ready["degradation_level"], 0,
        "two refused attempts: {ready}"
    );

    // The second request's first attempt is the third failure: the breaker
    // opens and its retry is refused without a call.
    let (s, retry_after, v) = post_raw(&admin, FORMULA, days_until_due()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(retry_after, Some(60), "{v}");
    let (_, ready) = readyz(&server).await;
    assert_eq!(ready["degradation_level"], 1, "{ready}");
    server.stop().await;
}
