//! The AI API (`/services/ai/v1/…`): formulas and queries written by the
//! LLM and checked by Mosaic's real checkers before they are returned.
//! Thin handlers; the work is `mosaic_runtime::ai`.
//!
//! While the LLM service's breaker is open (degradation level 1) these
//! endpoints answer 503 with `Retry-After` = the breaker's open time left,
//! at once; everything else serves as usual.

use crate::auth::{Admin, Auth};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_runtime::ai::{FormulaRequest, QueryRequest, Suggestion};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde_json::{json, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![
        RouteSpec::new(
            Method::POST,
            "/services/ai/v1/formula/generate",
            Access::TenantAdmin,
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
            Access::Session,
            "ai.workflow_generate",
            "Workflow generation (not implemented)",
            post(workflow_generate),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/ai/v1/schema/recommend",
            Access::Session,
            "ai.schema_recommend",
            "Schema recommendation (not implemented)",
            post(schema_recommend),
        ),
    ]
}

/// Same permission as the formula editor's check: system administrators.
async fn formula_generate(
    State(s): State<AppState>,
    Admin(c): Admin,
    JsonBody(req): JsonBody<FormulaRequest>,
) -> Response {
    let r = s.platform.generate_formula(&c, req).await;
    answer(&s, r, "formula")
}

/// Any authenticated user; the query is planned against what they can read.
async fn query_natural(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(req): JsonBody<QueryRequest>,
) -> Response {
    let r = s.platform.natural_query(&c, req).await;
    answer(&s, r, "query")
}

async fn workflow_generate(Auth(_): Auth) -> ApiError {
    not_built("workflow/generate (workflow rules from a description)")
}

async fn schema_recommend(Auth(_): Auth) -> ApiError {
    not_built("schema/recommend (objects and fields from a description)")
}

fn not_built(what: &str) -> ApiError {
    MosaicError::new(
        ErrorCode::NOT_IMPLEMENTED,
        format!("{what} is not built yet; formula/generate and query/natural are."),
    )
    .into()
}

fn answer(s: &AppState, r: MosaicResult<Suggestion>, key: &str) -> Response {
    match r {
        Ok(sug) => Json(suggestion_json(&sug, key)).into_response(),
        Err(e) => {
            // The LLM's breaker is open or probing: tell the client when
            // it reopens, not a database's wait.
            let wait = s.platform.llm.as_ref().and_then(|l| l.retry_after());
            match wait {
                Some(wait) if e.code == ErrorCode::SERVICE_UNAVAILABLE => {
                    crate::resilience::refusal(StatusCode::SERVICE_UNAVAILABLE, e, wait)
                }
                _ => ApiError::from(e).into_response(),
            }
        }
    }
}

fn suggestion_json(s: &Suggestion, key: &str) -> Value {
    json!({
        key: s.text,
        "explanation": s.explanation,
        "confidence": s.confidence,
        "valid": s.valid,
        "return_type": s.return_type,
        "object": s.object,
        "repaired": s.repaired,
        "warnings": s.warnings,
        "errors": s.errors.iter().map(|e| json!({"message": e.message, "position": e.position})).collect::<Vec<_>>(),
    })
}
