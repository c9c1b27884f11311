//! The AI tier: formulas, queries, workflow rules and schema plans written
//! by an LLM from a description, each checked by Mosaic's real checker (the
//! formula compiler against the object, the SOQL parser and planner against
//! the caller's schema, the metadata API's save-time validation of workflow
//! rules, the metadata validators and the tenant's schema for a plan)
//! before it is returned — with one repair round that sends the checker's
//! errors back. Nothing is saved: a workflow rule is saved by the metadata
//! API, a plan by [`Platform::apply_schema_plan`], once an administrator
//! confirms it. The LLM's answer is never trusted: it is read as data,
//! bounded, and a proposal is `valid` only when the checker says so.
//!
//! The LLM service sits behind the `llm` circuit breaker ([`LlmClient`]);
//! while it is open the AI tier refuses at once (degradation level 1) and
//! everything else serves as usual.

pub mod client;
pub mod config;
pub mod prompt;
pub mod quota;

pub use client::{AiEvent, Completion, LlmClient, Progress, Prompt, LLM};
pub use config::{LlmConfig, DEFAULT_LLM_MODEL};

use crate::access::visible_object;
use crate::formula_eval::parse_return_type;
use crate::records::Caller;
use crate::Platform;
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::workflow::WorkflowInput;
use mosaic_store::guard::is_dependency_failure;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;

/// Longest description of a formula or question, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest object name accepted in a request, in characters.
pub const MAX_OBJECT_NAME_CHARS: usize = 80;
/// Longest explanation passed on from the LLM, in characters.
pub const MAX_EXPLANATION_CHARS: usize = 2_000;
/// Times an invalid proposal is sent back with the checker's errors.
pub const REPAIR_ROUNDS: u32 = 1;
/// Below this confidence the answer carries a warning.
pub const LOW_CONFIDENCE: f64 = 0.5;

/// `POST /services/ai/v1/formula/generate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulaRequest {
    pub object: Option<String>,
    pub description: Option<String>,
    pub return_type: Option<String>,
}

/// `POST /services/ai/v1/query/natural`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub question: Option<String>,
    pub object: Option<String>,
}

/// `POST /services/ai/v1/workflow/generate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    pub object: Option<String>,
    pub description: Option<String>,
}

/// `POST /services/ai/v1/schema/recommend`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRequest {
    pub description: Option<String>,
}

/// What the LLM's answer holds at its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A formula or a query: a non-empty text.
    Text,
    /// A workflow rule or a plan: a JSON object.
    Object,
}

/// One problem the real checker found, at a byte offset of the proposal
/// when it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    pub message: String,
    pub position: Option<usize>,
}

/// What the LLM proposed, after Mosaic's checker looked at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The formula or the SOQL statement (a text), or the workflow rule or
    /// schema plan (a JSON object); null when the LLM's answer was unusable.
    pub value: Value,
    pub explanation: String,
    /// The model's own confidence in [0, 1], when it gave one (a model's
    /// score, not a quantity: a float is what it is).
    pub confidence: Option<f64>,
    /// Whether the checker accepted `text`.
    pub valid: bool,
    /// A valid formula's result type (`number`, `text`, …); a valid
    /// query's shape (`records`, `aggregate`, `count`).
    pub return_type: Option<String>,
    /// The object the formula is on, or the object a valid query reads.
    pub object: Option<String>,
    pub warnings: Vec<String>,
    /// The checker's errors when `valid` is false.
    pub errors: Vec<CheckError>,
    /// Whether `text` came from the repair round.
    pub repaired: bool,
    /// What a valid schema plan creates, counted.
    pub summary: Option<Value>,
}

/// The checker's verdict on a proposal: what it learnt of a valid one, or
/// its errors.
type Verdict<T> = Result<T, Vec<CheckError>>;

/// One answer of the LLM, read defensively.
#[derive(Debug, Clone)]
struct Proposal {
    value: Value,
    /// What is sent back in a repair round: the proposal, or the raw
    /// answer when it held none.
    text: String,
    explanation: String,
    confidence: Option<f64>,
    warnings: Vec<String>,
}

impl Proposal {
    /// `key` holds a non-empty string (the client checked); the rest may
    /// be missing or of the wrong type, which costs a warning, not the answer.
    fn read(m: &Map<String, Value>, key: &str) -> Proposal {
        let mut warnings = Vec::new();
        let value = match m.get(key) {
            Some(Value::String(t)) => Value::String(t.trim().to_string()),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        let text = match &value {
            Value::String(t) => t.clone(),
            Value::Null => String::new(),
            v => v.to_string(),
        };
        let explanation = match m.get("explanation").and_then(Value::as_str) {
            Some(e) => e.trim().chars().take(MAX_EXPLANATION_CHARS).collect(),
            None => {
                warnings.push("the LLM gave no explanation".to_string());
                String::new()
            }
        };
        let raw = m.get("confidence").and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        });
        let confidence = match raw.filter(|c| c.is_finite()) {
            None => {
                warnings.push("the LLM gave no confidence".to_string());
                None
            }
            Some(c) if !(0.0..=1.0).contains(&c) => {
                warnings.push(format!(
                    "the LLM's confidence {c} is outside 0 to 1; clamped"
                ));
                Some(c.clamp(0.0, 1.0))
            }
            Some(c) => Some(c),
        };
        if let Some(c) = confidence.filter(|c| *c < LOW_CONFIDENCE) {
            warnings.push(format!(
                "low confidence ({c}): check that it does what you asked before using it"
            ));
        }
        Proposal {
            value,
            text,
            explanation,
            confidence,
            warnings,
        }
    }

    /// An answer without the JSON object asked for.
    fn unusable(content: &str) -> Proposal {
        Proposal {
            value: Value::Null,
            text: content.chars().take(MAX_EXPLANATION_CHARS).collect(),
            explanation: String::new(),
            confidence: None,
            warnings: Vec::new(),
        }
    }

    /// Whether the value has the shape asked for; the checker's error when not.
    fn shape_error(&self, key: &str, shape: Shape) -> Option<CheckError> {
        let ok = match shape {
            Shape::Text => self.value.as_str().is_some_and(|t| !t.is_empty()),
            Shape::Object => self.value.is_object(),
        };
        (!ok).then(|| CheckError {
            message: match shape {
                Shape::Text => format!("the answer has no \"{key}\" text"),
                Shape::Object => format!("the answer has no \"{key}\" JSON object"),
            },
            position: None,
        })
    }

    /// The answer, before its checker-specific parts (type, object, errors).
    fn into_suggestion(self, valid: bool, repaired: bool) -> Suggestion {
        Suggestion {
            value: self.value,
            explanation: self.explanation,
            confidence: self.confidence,
            valid,
            return_type: None,
            object: None,
            warnings: self.warnings,
            errors: Vec::new(),
            repaired,
            summary: None,
        }
    }
}

/// One completion for `tenant`, its tokens charged to the tenant's quota.
async fn ask(
    llm: &LlmClient,
    tenant: &str,
    prompt: &Prompt,
    progress: &Progress,
) -> MosaicResult<Completion> {
    let c = llm.complete_json(prompt, progress).await?;
    llm.quota().charge(tenant, c.tokens).await;
    Ok(c)
}

/// The proposal a completion holds and the checker's verdict on it; an
/// answer without the JSON object, or without the key in the shape asked
/// for, is an error of the verdict (`valid: false`), not a failure.
async fn judge<T, F, Fut>(
    c: Completion,
    key: &str,
    shape: Shape,
    check: &F,
) -> MosaicResult<(Proposal, Verdict<T>)>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = MosaicResult<Verdict<T>>>,
{
    let m = match c.object {
        Ok(m) => m,
        Err(why) => {
            metrics::counter!("llm_answers_unusable_total").increment(1);
            return Ok((
                Proposal::unusable(&c.content),
                Err(vec![CheckError {
                    message: format!("the LLM's answer is unusable: {why}"),
                    position: None,
                }]),
            ));
        }
    };
    let p = Proposal::read(&m, key);
    if let Some(e) = p.shape_error(key, shape) {
        return Ok((p, Err(vec![e])));
    }
    let verdict = check(p.value.clone()).await?;
    Ok((p, verdict))
}

/// Asks the LLM, checks the proposal with the real checker, and while it is
/// invalid sends it back with the checker's errors ([`REPAIR_ROUNDS`]
/// times). A repair round the LLM service fails leaves the last proposal
/// standing, with a warning. Returns the proposal, the verdict and whether
/// a repair round produced it.
#[allow(clippy::too_many_arguments)]
async fn propose_checked<T, F, Fut>(
    llm: &LlmClient,
    tenant: &str,
    key: &str,
    shape: Shape,
    checker: &str,
    prompt: Prompt,
    progress: &Progress,
    check: F,
) -> MosaicResult<(Proposal, Verdict<T>, bool)>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = MosaicResult<Verdict<T>>>,
{
    let first = ask(llm, tenant, &prompt, progress).await?;
    progress.stage("checking");
    let (mut proposal, mut verdict) = judge(first, key, shape, &check).await?;
    let mut repaired = false;
    for _ in 0..REPAIR_ROUNDS {
        let Err(errors) = &verdict else {
            break;
        };
        let again = prompt::repair(&prompt, key, checker, &proposal.text, errors);
        progress.stage("repairing");
        match ask(llm, tenant, &again, progress).await {
            Ok(c) => {
                progress.stage("checking");
                (proposal, verdict) = judge(c, key, shape, &check).await?;
                repaired = true;
            }
            Err(e)
                if e.code == ErrorCode::SERVICE_UNAVAILABLE
                    || e.code == ErrorCode::REQUEST_LIMIT_EXCEEDED =>
            {
                proposal
                    .warnings
                    .push(format!("the repair round failed: {}", e.message));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if repaired {
        proposal.warnings.push(format!(
            "the first proposal did not pass the {checker}; this is the LLM's corrected one"
        ));
    }
    Ok((proposal, verdict, repaired))
}

/// A metadata validator's refusal as the checker's errors (the field path
/// leads the message); a failing dependency stays an error.
fn refusal<T>(e: MosaicError) -> MosaicResult<Verdict<T>> {
    if is_dependency_failure(&e) {
        return Err(e);
    }
    let message = match e.fields.first() {
        Some(f) if !e.message.starts_with(f.as_str()) => format!("{f}: {}", e.message),
        _ => e.message,
    };
    Ok(Err(vec![CheckError {
        message,
        position: None,
    }]))
}

/// A required text input: present, not blank, at most `max` characters.
fn required(v: Option<String>, field: &str, max: usize) -> MosaicResult<String> {
    let v = v.map(|s| s.trim().to_string()).unwrap_or_default();
    if v.is_empty() {
        return Err(MosaicError::field(
            ErrorCode::REQUIRED_FIELD_MISSING,
            field,
            format!("{field} is required"),
        ));
    }
    within(v, field, max)
}

fn within(v: String, field: &str, max: usize) -> MosaicResult<String> {
    let n = v.chars().count();
    if n > max {
        return Err(MosaicError::field(
            ErrorCode::STRING_TOO_LONG,
            field,
            format!("{field} is {n} characters long; the limit is {max}"),
        ));
    }
    Ok(v)
}

fn unknown_object(name: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::INVALID_INPUT,
        "object",
        format!(
            "object: there is no object '{}' you can read",
            name.chars().take(MAX_OBJECT_NAME_CHARS).collect::<String>()
        ),
    )
}

/// A planner error (its message renders the position as "… at line L,
/// column C" followed by the statement and a caret) as a [`CheckError`]
/// with the byte offset.
fn planner_error(src: &str, message: &str) -> CheckError {
    let first = message.lines().next().unwrap_or_default();
    let located = first.rsplit_once(" at line ").and_then(|(text, at)| {
        let (line, column) = at.split_once(", column ")?;
        let (line, column) = (
            line.trim().parse::<usize>().ok()?,
            column.trim().parse::<usize>().ok()?,
        );
        Some((text, byte_offset(src, line, column)?))
    });
    match located {
        Some((text, position)) => CheckError {
            message: text.to_string(),
            position: Some(position),
        },
        None => CheckError {
            message: first.to_string(),
            position: None,
        },
    }
}

/// The byte offset of 1-based `line` and `column` (in characters).
fn byte_offset(src: &str, line: usize, column: usize) -> Option<usize> {
    let start: usize = src
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    let rest = src.get(start..)?;
    let col = column.checked_sub(1)?;
    Some(start + rest.char_indices().nth(col).map_or(rest.len(), |(i, _)| i))
}

impl Platform {
    /// The LLM client; `NOT_IMPLEMENTED` when the server has no LLM.
    pub fn llm_client(&self) -> MosaicResult<&LlmClient> {
        self.llm.as_deref().ok_or_else(|| {
            MosaicError::new(
                ErrorCode::NOT_IMPLEMENTED,
                "No LLM is configured on this server (--llm-url / MOSAIC_LLM_URL), so the AI features are off.",
            )
        })
    }

    /// A formula on an object, written by the LLM from a description and
    /// checked by the formula compiler against the object's fields.
    #[tracing::instrument(name = "ai.formula", skip_all)]
    pub async fn generate_formula(
        &self,
        c: &Caller,
        req: FormulaRequest,
        progress: &Progress,
    ) -> MosaicResult<Suggestion> {
        let llm = self.llm_client()?;
        let object = required(req.object, "object", MAX_OBJECT_NAME_CHARS)?;
        let description = required(req.description, "description", MAX_DESCRIPTION_CHARS)?;
        let return_type = match req.return_type.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(parse_return_type(t).map(|ft| (t.to_string(), ft)).ok_or_else(|| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "return_type",
                    "return_type must be one of text, number, currency, percent, date, datetime, time, boolean",
                )
            })?),
        };
        llm.refuse_if_open()?;
        let obj = match self.meta.object(&c.tenant_id, &object).await {
            // Who may customize the application sees every definition.
            Ok(o) if c.perms.can_customize_application() || c.perms.can_read_object(o.id()) => o,
            Ok(_) => return Err(unknown_object(&object)),
            Err(e) if e.code == ErrorCode::NOT_FOUND => return Err(unknown_object(&object)),
            Err(e) => return Err(e),
        };
        llm.quota().admit(&c.tenant_id).await?;
        let all = self.meta.objects(&c.tenant_id).await?;
        let prompt = prompt::formula(
            &obj,
            &all,
            &description,
            return_type.as_ref().map(|t| t.0.as_str()),
        );
        let (rt, on) = (return_type.map(|t| t.1), &*obj);
        let (proposal, verdict, repaired) = propose_checked(
            llm,
            &c.tenant_id,
            "formula",
            Shape::Text,
            "formula checker",
            prompt,
            progress,
            |src| async move {
                let src = src.as_str().unwrap_or_default().to_string();
                Ok(self
                    .check_expression(c, Some(on), &src, rt)
                    .await?
                    .map_err(|errors| {
                        errors
                            .into_iter()
                            .map(|e| CheckError {
                                message: e.message,
                                position: Some(e.position),
                            })
                            .collect()
                    }))
            },
        )
        .await?;
        let mut s = proposal.into_suggestion(verdict.is_ok(), repaired);
        s.object = Some(obj.def.api_name.clone());
        match verdict {
            Ok(compiled) => {
                s.return_type = Some(compiled.return_type().name().to_ascii_lowercase());
                if compiled.referenced_fields().is_empty() {
                    s.warnings.push(format!(
                        "the formula reads no field of {}",
                        obj.def.api_name
                    ));
                }
            }
            Err(errors) => s.errors = errors,
        }
        Ok(s)
    }

    /// A SOQL query answering a question, written by the LLM from the
    /// objects the caller can read and checked by the SOQL parser and the
    /// query planner against the caller's view of the schema — planned,
    /// never run.
    #[tracing::instrument(name = "ai.query", skip_all)]
    pub async fn natural_query(
        &self,
        c: &Caller,
        req: QueryRequest,
        progress: &Progress,
    ) -> MosaicResult<Suggestion> {
        let llm = self.llm_client()?;
        let question = required(req.question, "question", MAX_DESCRIPTION_CHARS)?;
        let object = match req.object.map(|o| o.trim().to_string()) {
            None => None,
            Some(o) if o.is_empty() => None,
            Some(o) => Some(within(o, "object", MAX_OBJECT_NAME_CHARS)?),
        };
        llm.refuse_if_open()?;
        let all = self.meta.objects(&c.tenant_id).await?;
        let visible: Vec<Arc<ObjectMeta>> = all
            .iter()
            .filter(|o| c.perms.can_read_object(o.id()))
            .map(|o| visible_object(c, o))
            .collect();
        let focus = match &object {
            None => None,
            Some(name) => Some(
                visible
                    .iter()
                    .find(|o| o.def.api_name.eq_ignore_ascii_case(name))
                    .cloned()
                    .ok_or_else(|| unknown_object(name))?,
            ),
        };
        if visible.is_empty() {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "question",
                "question: there is no object you can read, so there is nothing to query",
            ));
        }
        llm.quota().admit(&c.tenant_id).await?;
        let (prompt, left_out) = prompt::query(&visible, focus.as_ref(), &question);
        let (proposal, verdict, repaired) = propose_checked(
            llm,
            &c.tenant_id,
            "query",
            Shape::Text,
            "SOQL parser and query planner",
            prompt,
            progress,
            |soql| async move { self.check_query(c, soql.as_str().unwrap_or_default()).await },
        )
        .await?;
        let mut s = proposal.into_suggestion(verdict.is_ok(), repaired);
        if left_out {
            s.warnings.push(format!(
                "only {} of your {} objects were described to the LLM; name the object to query",
                prompt::MAX_PROMPT_OBJECTS,
                visible.len()
            ));
        }
        match verdict {
            Ok(planned) => {
                s.return_type = Some(
                    if planned.count_only {
                        "count"
                    } else if planned.plan.aggregate {
                        "aggregate"
                    } else {
                        "records"
                    }
                    .to_string(),
                );
                if let Some(f) = &focus {
                    if !f
                        .def
                        .api_name
                        .eq_ignore_ascii_case(&planned.object_api_name)
                    {
                        s.warnings.push(format!(
                            "the query reads {}, not {}",
                            planned.object_api_name, f.def.api_name
                        ));
                    }
                }
                s.object = Some(planned.object_api_name);
            }
            Err(errors) => s.errors = errors,
        }
        Ok(s)
    }

    /// A workflow rule on an object, written by the LLM from a description
    /// in the metadata API's create shape and checked by the metadata
    /// API's own save-time validation — never saved.
    #[tracing::instrument(name = "ai.workflow", skip_all)]
    pub async fn generate_workflow(
        &self,
        c: &Caller,
        req: WorkflowRequest,
        progress: &Progress,
    ) -> MosaicResult<Suggestion> {
        let llm = self.llm_client()?;
        let object = required(req.object, "object", MAX_OBJECT_NAME_CHARS)?;
        let description = required(req.description, "description", MAX_DESCRIPTION_CHARS)?;
        llm.refuse_if_open()?;
        let obj = match self.meta.object(&c.tenant_id, &object).await {
            Ok(o) => o,
            Err(e) if e.code == ErrorCode::NOT_FOUND => return Err(unknown_object(&object)),
            Err(e) => return Err(e),
        };
        llm.quota().admit(&c.tenant_id).await?;
        let all = self.meta.objects(&c.tenant_id).await?;
        let prompt = prompt::workflow(&obj, &all, &description);
        let name = obj.def.api_name.clone();
        let (proposal, verdict, repaired) = propose_checked(
            llm,
            &c.tenant_id,
            "workflow",
            Shape::Object,
            "metadata API's workflow rule validation",
            prompt,
            progress,
            |v| {
                let name = name.clone();
                async move {
                    let input = match serde_json::from_value::<WorkflowInput>(v) {
                        Ok(i) => i,
                        Err(e) => {
                            return Ok(Err(vec![CheckError {
                                message: format!(
                                    "not a workflow rule in the metadata API's shape: {e}"
                                ),
                                position: None,
                            }]))
                        }
                    };
                    match self.meta.draft_workflow(&c.tenant_id, &name, input).await {
                        Ok((_, _, rule)) => Ok(Ok(rule)),
                        Err(e) => refusal(e),
                    }
                }
            },
        )
        .await?;
        let mut s = proposal.into_suggestion(verdict.is_ok(), repaired);
        s.object = Some(obj.def.api_name.clone());
        match verdict {
            Ok(rule) => {
                if rule.is_active {
                    s.warnings.push(
                        "the rule is active: once saved it runs on the next matching save".into(),
                    );
                }
                if rule.actions.is_empty() {
                    s.warnings.push("the rule has no actions".into());
                }
            }
            Err(errors) => s.errors = errors,
        }
        Ok(s)
    }

    /// A schema plan for an application, written by the LLM from a
    /// description and checked against the metadata validators and the
    /// tenant's existing schema — applied only by
    /// [`Platform::apply_schema_plan`].
    #[tracing::instrument(name = "ai.schema", skip_all)]
    pub async fn recommend_schema(
        &self,
        c: &Caller,
        req: SchemaRequest,
        progress: &Progress,
    ) -> MosaicResult<Suggestion> {
        let llm = self.llm_client()?;
        let description = required(req.description, "description", MAX_DESCRIPTION_CHARS)?;
        llm.refuse_if_open()?;
        llm.quota().admit(&c.tenant_id).await?;
        let all = self.meta.objects(&c.tenant_id).await?;
        let prompt = prompt::schema(&all, &description);
        let (proposal, verdict, repaired) = propose_checked(
            llm,
            &c.tenant_id,
            "plan",
            Shape::Object,
            "metadata validators",
            prompt,
            progress,
            |plan| async move {
                Ok(self
                    .meta
                    .check_plan(&c.tenant_id, &plan)
                    .await?
                    .map_err(|errors| {
                        errors
                            .into_iter()
                            .map(|e| CheckError {
                                message: format!("{}: {}", e.path, e.message),
                                position: None,
                            })
                            .collect()
                    }))
            },
        )
        .await?;
        let mut s = proposal.into_suggestion(verdict.is_ok(), repaired);
        match verdict {
            Ok(plan) => {
                s.summary = Some(plan.summary());
                for o in &plan.objects {
                    if o.fields.is_empty() {
                        s.warnings
                            .push(format!("{} has no fields besides Name", o.api_name));
                    }
                }
            }
            Err(errors) => s.errors = errors,
        }
        Ok(s)
    }

    /// Creates a schema plan's objects, all or nothing, after checking it
    /// again against the tenant's schema as it is now.
    #[tracing::instrument(name = "ai.schema_apply", skip_all)]
    pub async fn apply_schema_plan(
        &self,
        c: &Caller,
        plan: &Value,
    ) -> MosaicResult<Vec<Arc<ObjectMeta>>> {
        let created = self.meta.apply_plan(&c.tenant_id, plan).await?;
        Ok(created)
    }

    /// Parses and plans `soql` for the caller without running it. A
    /// statement the parser or planner refuses is a verdict; a failing
    /// database is an error.
    async fn check_query(
        &self,
        c: &Caller,
        soql: &str,
    ) -> MosaicResult<Verdict<mosaic_store::plan::PlannedQuery>> {
        if let Err(e) = mosaic_soql::parse_query(soql) {
            return Ok(Err(vec![CheckError {
                message: e.message,
                position: Some(e.position),
            }]));
        }
        match self.plan(c, soql, false).await {
            Ok(p) => Ok(Ok(p)),
            Err(e) if is_dependency_failure(&e) => Err(e),
            Err(e) => Ok(Err(vec![planner_error(soql, &e.message)])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Proposal {
        Proposal::read(v.as_object().unwrap(), "formula")
    }

    #[test]
    fn proposals_are_read_defensively() {
        let p = read(
            json!({"formula": " Amount__c * 2 ", "explanation": "doubles", "confidence": 0.9}),
        );
        assert_eq!(
            (p.value.as_str(), p.confidence),
            (Some("Amount__c * 2"), Some(0.9))
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);

        let p = read(json!({"formula": "1", "confidence": "0.2"}));
        assert_eq!(p.confidence, Some(0.2));
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);

        let p = read(json!({"formula": "1", "explanation": 7, "confidence": 4}));
        assert_eq!(p.confidence, Some(1.0));
        assert!(p.warnings.iter().any(|w| w.contains("clamped")));
        assert!(p.warnings.iter().any(|w| w.contains("no explanation")));

        let long = "x".repeat(MAX_EXPLANATION_CHARS + 10);
        let p = read(json!({"formula": "1", "explanation": long, "confidence": null}));
        assert_eq!(p.explanation.chars().count(), MAX_EXPLANATION_CHARS);
        assert_eq!(p.confidence, None);
    }

    #[test]
    fn inputs_are_required_and_bounded() {
        assert_eq!(required(Some(" a ".into()), "object", 5).unwrap(), "a");
        for v in [None, Some(String::new()), Some("  ".into())] {
            let e = required(v, "description", 5).unwrap_err();
            assert_eq!(e.fields, ["description"]);
        }
        let e = required(Some("é".repeat(6)), "description", 5).unwrap_err();
        assert_eq!(
            (e.code, e.fields.as_slice()),
            (ErrorCode::STRING_TOO_LONG, &["description".to_string()][..])
        );
    }

    #[test]
    fn planner_positions_are_recovered_as_byte_offsets() {
        let src = "SELECT Nme FROM Invoice__c";
        let e = planner_error(
            src,
            "No such column 'Nme' on entity 'Invoice__c' at line 1, column 8\nSELECT Nme FROM Invoice__c\n       ^",
        );
        assert_eq!(e.message, "No such column 'Nme' on entity 'Invoice__c'");
        assert_eq!(e.position, Some(7));
        assert_eq!(byte_offset("SELECT é,\n  Bad", 2, 3), Some(13));
        let e = planner_error(src, "something without a place");
        assert_eq!(
            (e.message.as_str(), e.position),
            ("something without a place", None)
        );
    }
}
