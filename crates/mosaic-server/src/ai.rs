//! The AI API (`/services/ai/v1/…`): formulas, queries, workflow rules and
//! schema plans written by the LLM and checked by Mosaic's real checkers
//! before they are returned; plans applied all or nothing. Thin handlers;
//! the work is `mosaic_runtime::ai`.
//!
//! - An LLM answer Mosaic cannot use is a 200 with `valid: false` and the
//!   errors.
//! - While the LLM service's breaker is open (degradation level 1), or it
//!   fails, these endpoints answer 503 with `Retry-After`; everything else
//!   serves as usual.
//! - A full LLM queue on this instance, or the tenant's daily AI quota used
//!   up, is a 429 with `Retry-After`; every answer of a generating endpoint
//!   carries `X-AI-Quota-Remaining` (requests left today) and
//!   `X-AI-Tokens-Remaining` when a limit is set.
//! - With `Accept: text/event-stream` the answer is a stream of server-sent
//!   events: `stage` (`queued`, `asking`, `checking`, `repairing`), `delta`
//!   (the LLM's text as it arrives), then one `result` (the JSON body) or
//!   `error` (the JSON error list). Refusals before the LLM is asked (bad
//!   input, breaker open, quota, queue) are plain HTTP errors.

use crate::auth::{Auth, Customizer};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_runtime::ai::client::QUEUE_FULL_RETRY_AFTER;
use mosaic_runtime::ai::quota::is_quota_refusal;
use mosaic_runtime::ai::{
    AiEvent, FormulaRequest, Progress, QueryRequest, SchemaRequest, Suggestion, WorkflowRequest,
};
use mosaic_runtime::records::Caller;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use tokio::sync::mpsc;

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![
        RouteSpec::new(
            Method::POST,
            "/services/ai/v1/formula/generate",
            Access::Customize,
            "ai.formula_generate",
            "Write a formula from a description",
            post(formula_generate),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/ai/v1/query/natural",
            Access::Session,
            "ai.query_natural",
            "Write a SOQL query from a question",
            post(query_natural),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/ai/v1/workflow/generate",
            Access::Customize,
            "ai.workflow_generate",
            "Write a workflow rule from a description (checked, not saved)",
            post(workflow_generate),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/ai/v1/schema/recommend",
            Access::Customize,
            "ai.schema_recommend",
            "Propose objects, fields and rules for an application (checked, not applied)",
            post(schema_recommend),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/ai/v1/schema/apply",
            Access::Customize,
            "ai.schema_apply",
            "Create a schema plan's objects, all or nothing",
            post(schema_apply),
        )
        .audited(),
    ]
}

/// Same permission as the formula editor's check: customize application.
async fn formula_generate(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    headers: HeaderMap,
    JsonBody(req): JsonBody<FormulaRequest>,
) -> Response {
    respond(s, c, &headers, "formula", move |s, c, p| async move {
        s.platform.generate_formula(&c, req, &p).await
    })
    .await
}

/// Any authenticated user; the query is planned against what they can read.
async fn query_natural(
    State(s): State<AppState>,
    Auth(c): Auth,
    headers: HeaderMap,
    JsonBody(req): JsonBody<QueryRequest>,
) -> Response {
    respond(s, c, &headers, "query", move |s, c, p| async move {
        s.platform.natural_query(&c, req, &p).await
    })
    .await
}

/// Customize application, as for saving a workflow rule.
async fn workflow_generate(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    headers: HeaderMap,
    JsonBody(req): JsonBody<WorkflowRequest>,
) -> Response {
    respond(s, c, &headers, "workflow", move |s, c, p| async move {
        s.platform.generate_workflow(&c, req, &p).await
    })
    .await
}

/// Customize application, as for creating objects.
async fn schema_recommend(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SchemaRequest>,
) -> Response {
    respond(s, c, &headers, "plan", move |s, c, p| async move {
        s.platform.recommend_schema(&c, req, &p).await
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyRequest {
    plan: Value,
}

/// Creates the plan's objects (no LLM involved): 201 with the objects
/// created, or the plan's problems and nothing created.
async fn schema_apply(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    JsonBody(req): JsonBody<ApplyRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = s.platform.apply_schema_plan(&c, &req.plan).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "objects": created.iter().map(|o| json!({
                "id": o.def.id,
                "api_name": o.def.api_name,
                "fields": o.def.fields.iter().map(|f| f.api_name.clone()).collect::<Vec<_>>(),
                "validation_rules": o.def.validation_rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })),
    ))
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().starts_with("text/event-stream"))
}

/// Runs one AI request: a JSON answer, or a stream of events when the
/// client asked for one.
async fn respond<F, Fut>(
    s: AppState,
    c: Caller,
    headers: &HeaderMap,
    key: &'static str,
    work: F,
) -> Response
where
    F: FnOnce(AppState, Caller, Progress) -> Fut + Send + 'static,
    Fut: Future<Output = MosaicResult<Suggestion>> + Send + 'static,
{
    let tenant = c.tenant_id.clone();
    if !wants_stream(headers) {
        let r = work(s.clone(), c, Progress::default()).await;
        return answer(&s, &tenant, r, key).await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(work(s.clone(), c, Progress::to(tx)));
    // Until the first event, the request may still be refused as plain
    // HTTP (bad input, breaker open, quota, queue full).
    let first = match rx.recv().await {
        Some(e) => e,
        None => {
            let r = task.await.unwrap_or_else(|e| {
                Err(MosaicError::internal(format!("the AI request failed: {e}")))
            });
            return answer(&s, &tenant, r, key).await;
        }
    };
    // One channel of events: progress as it comes, then the outcome.
    let (out, events) = mpsc::unbounded_channel::<Event>();
    let _ = out.send(progress_event(first));
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            let _ = out.send(progress_event(e));
        }
        let r = task
            .await
            .unwrap_or_else(|e| Err(MosaicError::internal(format!("the AI request failed: {e}"))));
        let last = match r {
            Ok(sug) => Event::default()
                .event("result")
                .json_data(suggestion_json(&sug, key)),
            Err(e) => Event::default()
                .event("error")
                .json_data(vec![crate::error::error_json(&e)]),
        };
        let _ = out.send(last.unwrap_or_else(|_| Event::default().event("error").data("[]")));
    });
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        events
            .recv()
            .await
            .map(|e| (Ok::<_, std::convert::Infallible>(e), events))
    });
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    quota_headers(&s, &tenant, &mut res).await;
    res
}

fn progress_event(e: AiEvent) -> Event {
    match e {
        AiEvent::Stage(s) => Event::default().event("stage").data(s),
        AiEvent::Delta(d) => Event::default()
            .event("delta")
            .json_data(json!({"text": d}))
            .unwrap_or_else(|_| Event::default().event("delta").data("")),
    }
}

/// `X-AI-Quota-Remaining` and `X-AI-Tokens-Remaining` (when limited).
async fn quota_headers(s: &AppState, tenant: &str, res: &mut Response) {
    let Some(llm) = s.platform.llm.as_ref() else {
        return;
    };
    let r = llm.quota().remaining(tenant).await;
    for (name, v) in [
        ("x-ai-quota-remaining", r.requests),
        ("x-ai-tokens-remaining", r.tokens),
    ] {
        if let Some(v) = v.and_then(|v| HeaderValue::from_str(&v.to_string()).ok()) {
            res.headers_mut().insert(name, v);
        }
    }
}

async fn answer(s: &AppState, tenant: &str, r: MosaicResult<Suggestion>, key: &str) -> Response {
    let mut res = match r {
        Ok(sug) => Json(suggestion_json(&sug, key)).into_response(),
        Err(e) => {
            let llm = s.platform.llm.as_ref();
            match e.code {
                // The LLM's breaker is open or probing: tell the client
                // when it reopens, not a database's wait.
                ErrorCode::SERVICE_UNAVAILABLE => match llm.and_then(|l| l.retry_after()) {
                    Some(wait) => {
                        crate::resilience::refusal(StatusCode::SERVICE_UNAVAILABLE, e, wait)
                    }
                    None => ApiError::from(e).into_response(),
                },
                // The tenant's quota (until midnight UTC) or the queue.
                ErrorCode::REQUEST_LIMIT_EXCEEDED => {
                    let wait = match llm.filter(|_| is_quota_refusal(&e)) {
                        Some(l) => l.quota().remaining(tenant).await.resets_in,
                        None => QUEUE_FULL_RETRY_AFTER,
                    };
                    crate::resilience::refusal(StatusCode::TOO_MANY_REQUESTS, e, wait)
                }
                _ => ApiError::from(e).into_response(),
            }
        }
    };
    quota_headers(s, tenant, &mut res).await;
    res
}

fn suggestion_json(s: &Suggestion, key: &str) -> Value {
    let mut v = json!({
        key: s.value,
        "explanation": s.explanation,
        "confidence": s.confidence,
        "valid": s.valid,
        "return_type": s.return_type,
        "object": s.object,
        "repaired": s.repaired,
        "warnings": s.warnings,
        "errors": s.errors.iter().map(|e| json!({"message": e.message, "position": e.position})).collect::<Vec<_>>(),
    });
    if let (Some(m), Some(summary)) = (v.as_object_mut(), &s.summary) {
        m.insert("summary".into(), summary.clone());
    }
    v
}
