//! Automation endpoints: workflow rules per object (metadata API), record
//! field history (data API), and the dead-letter queue of the outbox
//! (admin API). Workflow rules and dead letters are for system
//! administrators; history follows object permissions and field-level
//! security.

use crate::auth::{Admin, Auth, Customizer};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryMap};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mosaic_meta::workflow::{ActionType, WorkflowInput, WorkflowRule};
use mosaic_store::OutboxEntry;
use mosaic_types::value::sf_datetime;
use mosaic_types::{ErrorCode, MosaicError};
use serde_json::{json, Value};

/// Workflow rule definitions (part of the metadata API).
pub fn metadata_routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let a = Access::Customize;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/objects/{object}/workflows",
            a,
            "metadata.workflows.list",
            "List an object's workflow rules",
            get(list_rules),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/metadata/v1/objects/{object}/workflows",
            a,
            "metadata.workflows.create",
            "Create a workflow rule",
            post(create_rule),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/objects/{object}/workflows/{rule}",
            a,
            "metadata.workflows.get",
            "Get a workflow rule",
            get(get_rule),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/metadata/v1/objects/{object}/workflows/{rule}",
            a,
            "metadata.workflows.update",
            "Update a workflow rule",
            patch(update_rule),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/metadata/v1/objects/{object}/workflows/{rule}",
            a,
            "metadata.workflows.delete",
            "Delete a workflow rule",
            delete(delete_rule),
        ),
    ]
    .into_iter()
    .map(RouteSpec::audited)
    .collect()
}

/// Field history and dead letters.
pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let a = Access::TenantAdmin;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/{field}/history",
            Access::Permission,
            "data.field_history",
            "A record's field history",
            get(history),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/dead-letters",
            a,
            "admin.dead_letters.list",
            "List dead letters",
            get(list_dead),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/dead-letters/{id}",
            a,
            "admin.dead_letters.get",
            "Get a dead letter",
            get(get_dead),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/admin/v1/dead-letters/{id}",
            a,
            "admin.dead_letters.discard",
            "Discard a dead letter",
            delete(discard_dead),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/dead-letters/{id}/replay",
            a,
            "admin.dead_letters.replay",
            "Deliver a dead letter again",
            post(replay_dead),
        )
        .body(Body::None),
    ]
}

/// A rule as the API shows it: secrets of outbound messages are never
/// rendered, only whether one is set.
fn rule_json(r: &WorkflowRule, version: Option<i64>) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(actions) = v.get_mut("actions").and_then(Value::as_array_mut) {
        for a in actions {
            if let Some(cfg) = a.get_mut("action_config").and_then(Value::as_object_mut) {
                if let Some(secret) = cfg.remove("secret") {
                    cfg.insert("has_secret".into(), json!(!secret.is_null()));
                }
            }
        }
    }
    if let (Some(m), Some(ver)) = (v.as_object_mut(), version) {
        m.insert("object_version".into(), json!(ver));
    }
    v
}

async fn list_rules(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    PathParams(object): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    Ok(Json(json!({
        "version": o.def.version,
        "workflows": o.def.workflow_rules.iter().map(|r| rule_json(r, None)).collect::<Vec<_>>(),
    })))
}

fn creates_tasks(input: &WorkflowInput) -> bool {
    input
        .actions
        .as_ref()
        .is_some_and(|a| a.iter().any(|a| a.action_type == ActionType::TaskCreation))
}

async fn create_rule(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    PathParams(object): PathParams<String>,
    JsonBody(input): JsonBody<WorkflowInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if creates_tasks(&input) {
        s.platform.ensure_task_object(&c.tenant_id).await?;
    }
    let (o, r) = s
        .platform
        .meta
        .add_workflow(&c.tenant_id, &object, input)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(rule_json(&r, Some(o.def.version))),
    ))
}

async fn get_rule(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    PathParams((object, rule)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let r = s
        .platform
        .meta
        .workflow(&c.tenant_id, &object, &rule)
        .await?;
    Ok(Json(rule_json(&r, None)))
}

async fn update_rule(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    PathParams((object, rule)): PathParams<(String, String)>,
    JsonBody(input): JsonBody<WorkflowInput>,
) -> Result<Json<Value>, ApiError> {
    if creates_tasks(&input) {
        s.platform.ensure_task_object(&c.tenant_id).await?;
    }
    let (o, r) = s
        .platform
        .meta
        .update_workflow(&c.tenant_id, &object, &rule, input)
        .await?;
    Ok(Json(rule_json(&r, Some(o.def.version))))
}

async fn delete_rule(
    State(s): State<AppState>,
    Customizer(c): Customizer,
    PathParams((object, rule)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.platform
        .meta
        .delete_workflow(&c.tenant_id, &object, &rule)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse_json(s: &Option<String>) -> Value {
    s.as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// `GET sobjects/{O}/{id}/history`: newest first (`?limit=`, default 200).
async fn history(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((v, object, id)): PathParams<(String, String, String)>,
    QueryMap(q): QueryMap,
) -> Result<Json<Value>, ApiError> {
    crate::data::version(&v)?;
    let limit = limit_param(&q)?;
    let rows = s.platform.field_history(&c, &object, &id, limit).await?;
    let mut names = std::collections::HashMap::new();
    for r in &rows {
        names.entry(r.changed_by.clone()).or_insert(None::<String>);
    }
    for (uid, name) in names.iter_mut() {
        *name = s
            .platform
            .meta_store
            .user(&c.tenant_id, uid)
            .await?
            .map(|u| u.username);
    }
    let records: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "field": r.field,
                "oldValue": parse_json(&r.old_value),
                "newValue": parse_json(&r.new_value),
                "createdById": r.changed_by,
                "createdByUsername": names.get(&r.changed_by).cloned().flatten(),
                "createdDate": sf_datetime(&r.changed_at),
            })
        })
        .collect();
    Ok(Json(json!({
        "totalSize": records.len(),
        "records": records,
    })))
}

fn limit_param(q: &std::collections::HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(200),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=2000).contains(&n) => Ok(n),
            _ => Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "limit",
                "limit is a whole number from 1 to 2000",
            )
            .into()),
        },
    }
}

/// A dead letter as the admin API shows it (secrets never shown).
fn entry_json(e: &OutboxEntry) -> Value {
    let mut payload = serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null);
    if let Some(m) = payload.as_object_mut() {
        if let Some(secret) = m.remove("secret") {
            m.insert("has_secret".into(), json!(!secret.is_null()));
        }
    }
    json!({
        "id": e.id,
        "kind": e.kind,
        "state": e.state,
        "object_id": e.object_id,
        "record_id": e.record_id,
        "rule_id": e.rule_id,
        "action_id": e.action_id,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "payload": payload,
        "created_at": sf_datetime(&e.created_at),
        "updated_at": sf_datetime(&e.updated_at),
    })
}

fn dead_not_found(id: &str) -> ApiError {
    MosaicError::not_found(format!(
        "no dead letter with id '{}'",
        id.chars().take(80).collect::<String>()
    ))
    .into()
}

async fn list_dead(
    State(s): State<AppState>,
    Admin(c): Admin,
    QueryMap(q): QueryMap,
) -> Result<Json<Value>, ApiError> {
    let limit = limit_param(&q)?;
    let before = q.get("before").map(String::as_str);
    let rows = s
        .platform
        .automation
        .dead_letters(&c.tenant_id, limit, before)
        .await?;
    let next = (rows.len() == limit)
        .then(|| {
            rows.last().map(|e| {
                format!(
                    "/services/admin/v1/dead-letters?limit={limit}&before={}",
                    e.id
                )
            })
        })
        .flatten();
    Ok(Json(json!({
        "dead_letters": rows.iter().map(entry_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

async fn get_dead(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    match s.platform.automation.entry(&c.tenant_id, &id).await? {
        Some(e) if e.state == mosaic_store::automation::DEAD => Ok(Json(entry_json(&e))),
        _ => Err(dead_not_found(&id)),
    }
}

async fn replay_dead(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let now = s.platform.config.clock.now();
    if !s.platform.automation.replay(&c.tenant_id, &id, now).await? {
        return Err(dead_not_found(&id));
    }
    s.platform.wake_outbox();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "state": "pending"})),
    ))
}

async fn discard_dead(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    if !s.platform.automation.discard(&c.tenant_id, &id).await? {
        return Err(dead_not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}
