//! Formula endpoints of the metadata API: validation rules per object and
//! the editor's check / evaluate calls.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mosaic_meta::validate::RuleInput;
use mosaic_runtime::formula_eval::{parse_return_type, type_name};
use mosaic_types::{ErrorCode, MosaicError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let a = Access::Customize;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/objects/{object}/validations",
            a,
            "metadata.validations.list",
            "List an object's validation rules",
            get(list_rules),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/metadata/v1/objects/{object}/validations",
            a,
            "metadata.validations.create",
            "Create a validation rule",
            post(create_rule),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/objects/{object}/validations/{rule}",
            a,
            "metadata.validations.get",
            "Get a validation rule",
            get(get_rule),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/metadata/v1/objects/{object}/validations/{rule}",
            a,
            "metadata.validations.update",
            "Update a validation rule",
            patch(update_rule),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/metadata/v1/objects/{object}/validations/{rule}",
            a,
            "metadata.validations.delete",
            "Delete a validation rule",
            delete(delete_rule),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/metadata/v1/formula/check",
            a,
            "metadata.formula.check",
            "Check a formula",
            post(check),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/metadata/v1/formula/evaluate",
            a,
            "metadata.formula.evaluate",
            "Evaluate a formula",
            post(evaluate),
        ),
    ]
    .into_iter()
    .map(RouteSpec::audited)
    .collect()
}

fn rule_json(r: &mosaic_meta::ValidationRule, version: Option<i64>) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let (Some(m), Some(ver)) = (v.as_object_mut(), version) {
        m.insert("object_version".into(), json!(ver));
    }
    v
}

async fn list_rules(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    Ok(Json(json!({
        "version": o.def.version,
        "validations": o.def.validation_rules.iter().map(|r| rule_json(r, None)).collect::<Vec<_>>(),
    })))
}

async fn create_rule(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    JsonBody(input): JsonBody<RuleInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (o, r) = s
        .platform
        .meta
        .add_rule(&c.tenant_id, &object, input)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(rule_json(&r, Some(o.def.version))),
    ))
}

async fn get_rule(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, rule)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let r = s.platform.meta.rule(&c.tenant_id, &object, &rule).await?;
    Ok(Json(rule_json(&r, None)))
}

async fn update_rule(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, rule)): PathParams<(String, String)>,
    JsonBody(input): JsonBody<RuleInput>,
) -> Result<Json<Value>, ApiError> {
    let (o, r) = s
        .platform
        .meta
        .update_rule(&c.tenant_id, &object, &rule, input)
        .await?;
    Ok(Json(rule_json(&r, Some(o.def.version))))
}

async fn delete_rule(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, rule)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.platform
        .meta
        .delete_rule(&c.tenant_id, &object, &rule)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    object: Option<String>,
    expression: String,
    return_type: Option<String>,
}

async fn check(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(body): JsonBody<CheckBody>,
) -> Result<Json<Value>, ApiError> {
    let obj = match &body.object {
        Some(o) => Some(s.platform.meta.object(&c.tenant_id, o).await?),
        None => None,
    };
    let rt = match &body.return_type {
        None => None,
        Some(t) => Some(parse_return_type(t).ok_or_else(|| {
            MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "return_type",
                "return_type must be one of text, number, currency, percent, date, datetime, time, boolean",
            )
        })?),
    };
    let result = s
        .platform
        .check_expression(&c, obj.as_deref(), &body.expression, rt)
        .await?;
    Ok(Json(match result {
        Ok(compiled) => json!({
            "ok": true,
            "return_type": compiled.return_type().name().to_ascii_lowercase(),
            "referenced_fields": compiled.referenced_fields().iter().map(|p| p.join(".")).collect::<Vec<_>>(),
            "errors": [],
        }),
        Err(errors) => json!({
            "ok": false,
            "return_type": null,
            "referenced_fields": [],
            "errors": errors.iter().map(|e| json!({
                "message": e.message, "position": e.position, "line": e.line, "column": e.column,
            })).collect::<Vec<_>>(),
        }),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateBody {
    object: Option<String>,
    expression: String,
    record: Option<Map<String, Value>>,
    record_id: Option<String>,
}

async fn evaluate(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(body): JsonBody<EvaluateBody>,
) -> Result<Json<Value>, ApiError> {
    let obj = match &body.object {
        Some(o) => Some(s.platform.meta.object(&c.tenant_id, o).await?),
        None => None,
    };
    if obj.is_none() && body.record_id.is_some() {
        return Err(MosaicError::field(
            ErrorCode::INVALID_INPUT,
            "record_id",
            "record_id needs object",
        )
        .into());
    }
    let v = s
        .platform
        .evaluate_expression(
            &c,
            obj,
            &body.expression,
            body.record.as_ref(),
            body.record_id.as_deref(),
        )
        .await?;
    let value = crate::render::value(&match &v {
        mosaic_formula::FValue::Null => mosaic_types::Value::Null,
        mosaic_formula::FValue::Text(t) => mosaic_types::Value::Text(t.clone()),
        mosaic_formula::FValue::Number(d) => mosaic_types::Value::Number(*d),
        mosaic_formula::FValue::Boolean(b) => mosaic_types::Value::Boolean(*b),
        mosaic_formula::FValue::Date(d) => mosaic_types::Value::Date(*d),
        mosaic_formula::FValue::Datetime(d) => mosaic_types::Value::Datetime(*d),
        mosaic_formula::FValue::Time(t) => mosaic_types::Value::Time(*t),
    });
    Ok(Json(json!({"value": value, "type": type_name(&v)})))
}
