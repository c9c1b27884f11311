//! `mosaic ai-eval`: the AI tier's evaluation set (`eval/ai/`) run against
//! an OpenAI-compatible LLM service, or against a stub that replays
//! recorded answers (`--stub`).
//!
//! The command boots an in-process server on a temporary data directory
//! whose LLM is the service under test, creates a tenant with the set's
//! sample object and records, sends every case to its AI endpoint, scores
//! the answer and prints the pass rate (overall and per kind) and the
//! latency percentiles of the AI calls.
//!
//! Scoring:
//! - formulas: the proposal must be valid and give the same value as the
//!   expected formula on every sample record (`formula/evaluate`);
//! - queries: the proposal must be valid and return the same rows as the
//!   expected query on the sample records;
//! - workflows: valid, with the expected trigger, criteria fields and action
//!   types;
//! - schemas: valid, with every expected object and each expected field of
//!   the expected type (more fields are allowed).

use axum::extract::State;
use axum::Json;
use clap::Args;
use mosaic_access::NewTenant;
use mosaic_runtime::ai::LlmConfig;
use mosaic_runtime::{Platform, PlatformConfig};
use mosaic_server::AppState;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The four kinds of case, in the order they are reported.
const KINDS: [&str; 4] = ["formula", "query", "workflow", "schema"];
const API: &str = "/services/data/v60.0";
/// Longest wait for a 429's `Retry-After` before a case counts as failed.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

#[derive(Args)]
pub struct AiEvalArgs {
    /// Base URL of the OpenAI-compatible LLM service under test.
    #[arg(long, required_unless_present = "stub", conflicts_with = "stub")]
    llm_url: Option<String>,
    /// Model name sent to the service.
    #[arg(long, default_value = mosaic_runtime::ai::DEFAULT_LLM_MODEL)]
    model: String,
    /// API key of the service (or `MOSAIC_LLM_API_KEY`).
    #[arg(long, env = "MOSAIC_LLM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Run against a stub LLM that answers with the set's recorded answers
    /// (`recorded.jsonl`): checks the harness itself.
    #[arg(long)]
    stub: bool,
    /// Directory of the evaluation set (`sample.json`, `cases.jsonl`,
    /// `recorded.jsonl`).
    #[arg(long, default_value = "eval/ai")]
    set: PathBuf,
    /// Timeout of one LLM completion, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
struct Sample {
    object: Value,
    records: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    kind: String,
    object: Option<String>,
    description: Option<String>,
    question: Option<String>,
    return_type: Option<String>,
    expected: Value,
}

impl Case {
    /// The text the user writes: a question for queries, else a description.
    fn text(&self) -> &str {
        self.question
            .as_deref()
            .or(self.description.as_deref())
            .unwrap_or("")
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Recorded {
    id: String,
    answer: Value,
}

fn read_set<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

pub async fn run(args: AiEvalArgs) -> Result<(), String> {
    let sample: Sample = {
        let p = args.set.join("sample.json");
        let t =
            std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))?
    };
    let cases: Vec<Case> = read_set(&args.set.join("cases.jsonl"))?;
    if let Some(c) = cases.iter().find(|c| !KINDS.contains(&c.kind.as_str())) {
        return Err(format!(
            "case {}: unknown kind {:?} (formula, query, workflow, schema)",
            c.id, c.kind
        ));
    }
    let (url, model) = if args.stub {
        let recorded: Vec<Recorded> = read_set(&args.set.join("recorded.jsonl"))?;
        (start_stub(&cases, recorded).await?, "recorded".to_string())
    } else {
        (args.llm_url.clone().unwrap_or_default(), args.model.clone())
    };
    let mut llm = LlmConfig::new(&url).map_err(|e| e.message)?;
    llm.model = model.clone();
    llm.api_key = if args.stub {
        None
    } else {
        args.api_key.clone()
    };
    llm.timeout = Duration::from_millis(args.timeout_ms);
    llm.requests_per_day = 0;
    llm.tokens_per_day = 0;

    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut cfg = PlatformConfig::new(dir.path());
    cfg.llm = Some(llm);
    let platform = Arc::new(Platform::open(cfg).await.map_err(|e| e.message)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let mut state = AppState::new(platform.clone(), base.clone());
    state.operator_token = None;
    state.metrics_token = None;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = mosaic_server::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await;
    });
    let tenant = platform
        .create_tenant(NewTenant {
            name: "AI evaluation".into(),
            subdomain: "ai-eval".into(),
            tier: "enterprise".into(),
            admin_username: "admin@ai-eval.test".into(),
            admin_password: "evaluation-password-1".into(),
            admin_email: None,
        })
        .await
        .map_err(|e| e.message)?;
    let client = Client {
        http: reqwest::Client::new(),
        base,
        token: tenant.access_token,
    };
    let result = evaluate(&client, &sample, &cases).await;
    let _ = stop.send(());
    let _ = server.await;
    platform.close();
    let report = result?;
    print!("{}", report.render(&url, &model, cases.len()));
    Ok(())
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Status and body; a 429 is waited out (its `Retry-After`, at most
    /// [`MAX_RETRY_WAIT`]) and retried. The time returned is that of the
    /// answered attempt.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value, Duration), String> {
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let started = Instant::now();
            let res = req.send().await.map_err(|e| format!("{path}: {e}"))?;
            let status = res.status().as_u16();
            let retry = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let value = res.json::<Value>().await.unwrap_or(Value::Null);
            let took = started.elapsed();
            match retry {
                Some(secs) if status == 429 && Duration::from_secs(secs) <= MAX_RETRY_WAIT => {
                    tokio::time::sleep(Duration::from_secs(secs.max(1))).await;
                }
                _ => return Ok((status, value, took)),
            }
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value, Duration), String> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// A POST that must succeed (setting up the sample).
    async fn post_ok(&self, path: &str, body: &Value) -> Result<Value, String> {
        let (status, v, _) = self.post(path, body).await?;
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err(format!("{path}: {status} {v}"))
        }
    }
}

/// One scored case.
struct Outcome {
    id: String,
    kind: String,
    passed: bool,
    /// Why it failed.
    reason: String,
}

struct Report {
    outcomes: Vec<Outcome>,
    latencies: Vec<Duration>,
}

impl Report {
    fn render(&self, url: &str, model: &str, cases: usize) -> String {
        let mut out = format!("AI evaluation: {cases} cases against {url} (model {model})\n");
        for kind in KINDS {
            let of: Vec<&Outcome> = self.outcomes.iter().filter(|o| o.kind == kind).collect();
            let passed = of.iter().filter(|o| o.passed).count();
            out.push_str(&format!(
                "{kind}: {passed}/{} passed ({})\n",
                of.len(),
                percent(passed, of.len())
            ));
        }
        let passed = self.outcomes.iter().filter(|o| o.passed).count();
        out.push_str(&format!(
            "overall: {passed}/{} passed ({})\n",
            self.outcomes.len(),
            percent(passed, self.outcomes.len())
        ));
        let mut l = self.latencies.clone();
        l.sort();
        out.push_str(&format!(
            "latency of {} AI calls: p50 {} ms, p90 {} ms, p99 {} ms\n",
            l.len(),
            millis(percentile(&l, 50)),
            millis(percentile(&l, 90)),
            millis(percentile(&l, 99)),
        ));
        for o in self.outcomes.iter().filter(|o| !o.passed) {
            out.push_str(&format!("failed {} ({}): {}\n", o.id, o.kind, o.reason));
        }
        out
    }
}

fn percent(n: usize, of: usize) -> String {
    if of == 0 {
        "n/a".into()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / of as f64)
    }
}

/// Nearest-rank percentile of sorted figures.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

fn millis(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "n/a".into())
}

async fn evaluate(c: &Client, sample: &Sample, cases: &[Case]) -> Result<Report, String> {
    let object = sample.object["api_name"]
        .as_str()
        .ok_or("sample.json: object.api_name missing")?
        .to_string();
    c.post_ok("/services/metadata/v1/objects", &sample.object)
        .await?;
    let mut ids = Vec::new();
    for r in &sample.records {
        let v = c.post_ok(&format!("{API}/sobjects/{object}"), r).await?;
        ids.push(v["id"].as_str().ok_or("record id missing")?.to_string());
    }
    let mut report = Report {
        outcomes: Vec::new(),
        latencies: Vec::new(),
    };
    for case in cases {
        let (path, body, key) = match case.kind.as_str() {
            "formula" => (
                "/services/ai/v1/formula/generate",
                json!({"object": case.object, "description": case.text(), "return_type": case.return_type}),
                "formula",
            ),
            "query" => (
                "/services/ai/v1/query/natural",
                json!({"object": case.object, "question": case.text()}),
                "query",
            ),
            "workflow" => (
                "/services/ai/v1/workflow/generate",
                json!({"object": case.object, "description": case.text()}),
                "workflow",
            ),
            _ => (
                "/services/ai/v1/schema/recommend",
                json!({"description": case.text()}),
                "plan",
            ),
        };
        let (status, answer, took) = c.post(path, &body).await?;
        report.latencies.push(took);
        let verdict = if status != 200 {
            Err(format!("{path} answered {status}: {answer}"))
        } else if answer["valid"] != Value::Bool(true) {
            Err(format!("not valid: {}", answer["errors"]))
        } else {
            let got = &answer[key];
            match case.kind.as_str() {
                "formula" => same_formula(c, case, got, &ids).await,
                "query" => same_rows(c, &case.expected, got).await,
                "workflow" => workflow_fits(&case.expected, got),
                _ => plan_fits(&case.expected, got),
            }
        };
        report.outcomes.push(Outcome {
            id: case.id.clone(),
            kind: case.kind.clone(),
            passed: verdict.is_ok(),
            reason: verdict.err().unwrap_or_default(),
        });
    }
    Ok(report)
}

/// The value of `expression` on one record.
async fn formula_value(
    c: &Client,
    object: &str,
    expression: &str,
    id: &str,
) -> Result<Value, String> {
    let (status, v, _) = c
        .post(
            "/services/metadata/v1/formula/evaluate",
            &json!({"object": object, "expression": expression, "record_id": id}),
        )
        .await?;
    if status == 200 {
        Ok(v["value"].clone())
    } else {
        Err(format!("{expression:?} does not evaluate ({status}): {v}"))
    }
}

async fn same_formula(c: &Client, case: &Case, got: &Value, ids: &[String]) -> Result<(), String> {
    let object = case.object.as_deref().unwrap_or_default();
    let expected = case
        .expected
        .as_str()
        .ok_or("expected formula is not a text")?;
    let got = got.as_str().ok_or("no formula in the answer")?;
    for id in ids {
        let want = formula_value(c, object, expected, id).await?;
        let have = formula_value(c, object, got, id).await?;
        if want != have {
            return Err(format!(
                "{got:?} gives {have} on record {id}, {expected:?} gives {want}"
            ));
        }
    }
    Ok(())
}

/// A query's rows without their `attributes`.
async fn rows(c: &Client, soql: &str) -> Result<Value, String> {
    let path = format!("{API}/query?q={}", url_encode(soql));
    let (status, mut v, _) = c.send(reqwest::Method::GET, &path, None).await?;
    if status != 200 {
        return Err(format!("{soql:?} does not run ({status}): {v}"));
    }
    if let Some(records) = v["records"].as_array_mut() {
        for r in records {
            if let Some(m) = r.as_object_mut() {
                m.remove("attributes");
            }
        }
    }
    Ok(json!({"totalSize": v["totalSize"], "records": v["records"]}))
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn same_rows(c: &Client, expected: &Value, got: &Value) -> Result<(), String> {
    let expected = expected.as_str().ok_or("expected query is not a text")?;
    let got = got.as_str().ok_or("no query in the answer")?;
    let want = rows(c, expected).await?;
    let have = rows(c, got).await?;
    if want == have {
        Ok(())
    } else {
        Err(format!(
            "{got:?} returns {have}, {expected:?} returns {want}"
        ))
    }
}

fn names(v: &Value, pick: impl Fn(&Value) -> Option<&str>) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| pick(x).map(str::to_string))
        .collect()
}

fn workflow_fits(expected: &Value, got: &Value) -> Result<(), String> {
    if got["trigger_type"] != expected["trigger_type"] {
        return Err(format!(
            "trigger {} instead of {}",
            got["trigger_type"], expected["trigger_type"]
        ));
    }
    let fields = names(&got["filter_criteria"]["conditions"], |c| {
        c["field"].as_str()
    });
    let want_fields = names(&expected["criteria_fields"], Value::as_str);
    if fields != want_fields {
        return Err(format!("criteria on {fields:?} instead of {want_fields:?}"));
    }
    let mut actions: Vec<&str> = got["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["action_type"].as_str())
        .collect();
    actions.sort_unstable();
    let mut want_actions: Vec<&str> = expected["action_types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    want_actions.sort_unstable();
    if actions != want_actions {
        return Err(format!("actions {actions:?} instead of {want_actions:?}"));
    }
    Ok(())
}

fn plan_fits(expected: &Value, got: &Value) -> Result<(), String> {
    let objects = got["objects"].as_array().cloned().unwrap_or_default();
    for (name, fields) in expected["objects"].as_object().into_iter().flatten() {
        let obj = objects
            .iter()
            .find(|o| o["api_name"].as_str() == Some(name))
            .ok_or_else(|| format!("no object {name}"))?;
        for (field, ty) in fields.as_object().into_iter().flatten() {
            let f = obj["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| f["api_name"].as_str() == Some(field))
                .ok_or_else(|| format!("no field {name}.{field}"))?;
            if &f["data_type"] != ty {
                return Err(format!(
                    "{name}.{field} is {} instead of {ty}",
                    f["data_type"]
                ));
            }
        }
    }
    Ok(())
}

/// Recorded answers by the text of their case.
struct StubAnswers {
    by_text: Vec<(String, String)>,
}

/// A stub LLM on a loopback port speaking the chat-completions shape; it
/// answers with the recorded answer of the case whose text (description
/// or question) the request holds — the longest such text wins.
async fn start_stub(cases: &[Case], recorded: Vec<Recorded>) -> Result<String, String> {
    let mut by_text = Vec::new();
    for r in recorded {
        let case = cases
            .iter()
            .find(|c| c.id == r.id)
            .ok_or_else(|| format!("recorded.jsonl: no case {}", r.id))?;
        by_text.push((case.text().to_string(), r.answer.to_string()));
    }
    by_text.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(stub_completion))
        .with_state(Arc::new(StubAnswers { by_text }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

async fn stub_completion(
    State(s): State<Arc<StubAnswers>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let prompt: String = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let content = s
        .by_text
        .iter()
        .find(|(text, _)| prompt.contains(text.as_str()))
        .map(|(_, answer)| answer.clone())
        .unwrap_or_else(|| "No recorded answer for this request.".into());
    Json(json!({
        "id": "chatcmpl-recorded",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
    }))
}
