//! Sharing endpoints: sharing rules (admin API, audit-logged) and the
//! manual shares of a record (data API; granting and revoking are
//! audit-logged too).

use crate::auth::{Admin, Auth};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_meta::sharing::SharingRuleInput;
use mosaic_runtime::records::Caller;
use mosaic_store::access_store::AuditEntry;
use mosaic_types::{ErrorCode, MosaicError};
use serde_json::{json, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let (a, p) = (Access::TenantAdmin, Access::Permission);
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/sharing-rules",
            a,
            "admin.sharing_rules.list",
            "List sharing rules",
            get(list_rules),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/sharing-rules",
            a,
            "admin.sharing_rules.create",
            "Create a sharing rule",
            post(create_rule),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/sharing-rules/{id}",
            a,
            "admin.sharing_rules.get",
            "Get a sharing rule",
            get(get_rule),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/admin/v1/sharing-rules/{id}",
            a,
            "admin.sharing_rules.update",
            "Update a sharing rule",
            patch(update_rule),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/admin/v1/sharing-rules/{id}",
            a,
            "admin.sharing_rules.delete",
            "Delete a sharing rule",
            delete(delete_rule),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/sobjects/{object}/{field}/shares",
            p,
            "data.shares.list",
            "A record's manual shares",
            get(list_shares),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/data/{version}/sobjects/{object}/{field}/shares",
            p,
            "data.shares.grant",
            "Share a record",
            post(grant_share),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/data/{version}/sobjects/{object}/{field}/shares/{share}",
            p,
            "data.shares.revoke",
            "Remove a manual share",
            delete(revoke_share),
        ),
    ]
}

async fn audit(s: &AppState, c: &Caller, action: &str, target_type: &str, id: &str, detail: Value) {
    let entry = AuditEntry {
        tenant_id: c.tenant_id.clone(),
        actor_id: c.user_id.clone(),
        action: action.to_string(),
        target_type: target_type.to_string(),
        target_id: id.to_string(),
        detail: detail.to_string(),
        at: chrono::Utc::now(),
    };
    if let Err(e) = s.platform.access.store().append_audit(entry).await {
        tracing::warn!(error = %e.message, "audit entry for a sharing change was not written");
    }
}

/// A JSON body as a sharing-rule input: unknown or mistyped keys are a 400
/// naming the key.
fn rule_input(v: Value) -> Result<SharingRuleInput, ApiError> {
    serde_path_to_error::deserialize::<_, SharingRuleInput>(v).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        let field = if path == "." {
            msg.split('`').nth(1).unwrap_or("").to_string()
        } else {
            path
        };
        if field.is_empty() {
            MosaicError::new(ErrorCode::INVALID_INPUT, msg)
        } else {
            MosaicError::field(
                ErrorCode::INVALID_INPUT,
                field.clone(),
                format!("{field}: {msg}"),
            )
        }
        .into()
    })
}

async fn list_rules(State(s): State<AppState>, Admin(c): Admin) -> Result<Json<Value>, ApiError> {
    let rules = s.platform.sharing_rules_json(&c).await?;
    Ok(Json(json!({"sharing_rules": rules})))
}

async fn get_rule(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(s.platform.sharing_rule_json(&c, &id).await?))
}

async fn create_rule(
    State(s): State<AppState>,
    Admin(c): Admin,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let input = rule_input(body)?;
    let rule = s.platform.add_sharing_rule(&c, input).await?;
    let id = rule["id"].as_str().unwrap_or_default().to_string();
    audit(
        &s,
        &c,
        "sharing_rule.create",
        "sharing_rule",
        &id,
        rule.clone(),
    )
    .await;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

async fn update_rule(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let input = rule_input(body)?;
    let rule = s.platform.update_sharing_rule(&c, &id, input).await?;
    audit(
        &s,
        &c,
        "sharing_rule.update",
        "sharing_rule",
        &id,
        rule.clone(),
    )
    .await;
    Ok(Json(rule))
}

async fn delete_rule(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    s.platform.delete_sharing_rule(&c, &id).await?;
    audit(
        &s,
        &c,
        "sharing_rule.delete",
        "sharing_rule",
        &id,
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_shares(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((v, object, id)): PathParams<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    crate::data::version(&v)?;
    let shares = s.platform.list_shares(&c, &object, &id).await?;
    Ok(Json(json!({"shares": shares})))
}

async fn grant_share(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((v, object, id)): PathParams<(String, String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    crate::data::version(&v)?;
    let Value::Object(body) = body else {
        return Err(ApiError::new(
            ErrorCode::INVALID_INPUT,
            "the body is an object: {\"user_id\"|\"role_id\"|\"role_and_subordinates_id\"|\"group_id\", \"access_level\"}",
        ));
    };
    let share_id = s.platform.grant_share(&c, &object, &id, &body).await?;
    audit(
        &s,
        &c,
        "share.grant",
        "record",
        &id,
        json!({"share_id": share_id, "share": body}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(json!({"id": share_id}))).into_response())
}

async fn revoke_share(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((v, object, id, share)): PathParams<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    crate::data::version(&v)?;
    s.platform.revoke_share(&c, &object, &id, &share).await?;
    audit(
        &s,
        &c,
        "share.revoke",
        "record",
        &id,
        json!({"share_id": share}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
