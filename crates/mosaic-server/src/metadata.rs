//! The metadata API under `/services/metadata/v1/`: objects and fields.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryMap};
use crate::render;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_meta::impact::FieldChange;
use mosaic_meta::validate::{FieldInput, ObjectInput};
use mosaic_types::{ErrorCode, MosaicError};
use serde_json::{json, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let a = Access::Customize;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/objects",
            a,
            "metadata.objects.list",
            "List object definitions",
            get(list_objects),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/metadata/v1/objects",
            a,
            "metadata.objects.create",
            "Define an object",
            post(create_object),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/objects/{object}",
            a,
            "metadata.objects.get",
            "Get an object definition",
            get(get_object),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/metadata/v1/objects/{object}",
            a,
            "metadata.objects.update",
            "Change an object definition",
            patch(update_object),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/metadata/v1/objects/{object}",
            a,
            "metadata.objects.delete",
            "Delete an object and its records",
            delete(delete_object),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/objects/{object}/fields",
            a,
            "metadata.fields.list",
            "List an object's fields",
            get(list_fields),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/metadata/v1/objects/{object}/fields",
            a,
            "metadata.fields.create",
            "Add a field",
            post(create_field),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/metadata/v1/objects/{object}/fields/{field}",
            a,
            "metadata.fields.get",
            "Get a field",
            get(get_field),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/metadata/v1/objects/{object}/fields/{field}",
            a,
            "metadata.fields.update",
            "Change a field",
            patch(update_field),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/metadata/v1/objects/{object}/fields/{field}",
            a,
            "metadata.fields.delete",
            "Delete a field and its data",
            delete(delete_field),
        ),
    ]
    .into_iter()
    .map(RouteSpec::audited)
    .collect()
}

async fn list_objects(State(s): State<AppState>, Auth(c): Auth) -> Result<Json<Value>, ApiError> {
    let list = s.platform.meta.objects(&c.tenant_id).await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok(Json(json!({
        "objects": list.iter().map(|o| render::object_metadata(&o.def, &names)).collect::<Vec<_>>()
    })))
}

async fn create_object(
    State(s): State<AppState>,
    Auth(c): Auth,
    JsonBody(input): JsonBody<ObjectInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let o = s.platform.meta.create_object(&c.tenant_id, input).await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(render::object_metadata(&o.def, &names)),
    ))
}

async fn get_object(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok(crate::etag::json_value(
        &headers,
        &render::object_metadata(&o.def, &names),
    ))
}

/// `?dry_run=true`: the change is analysed and its impact report answered
/// (200), nothing is changed.
fn dry_run(q: &QueryMap) -> Result<bool, ApiError> {
    match q.0.get("dry_run").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(MosaicError::field(
            ErrorCode::INVALID_INPUT,
            "dry_run",
            "dry_run must be true or false",
        )
        .into()),
    }
}

async fn update_object(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    q: QueryMap,
    JsonBody(input): JsonBody<ObjectInput>,
) -> Result<Response, ApiError> {
    if dry_run(&q)? {
        let to = input.sharing_model.ok_or_else(|| {
            MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "sharing_model",
                "a dry run of an object change analyses a sharing_model change: name the new sharing_model",
            )
        })?;
        let report = s
            .platform
            .meta
            .sharing_model_impact(&c.tenant_id, &object, to)
            .await?;
        return Ok(Json(json!(report)).into_response());
    }
    let o = s
        .platform
        .meta
        .update_object(&c.tenant_id, &object, input)
        .await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok(Json(render::object_metadata(&o.def, &names)).into_response())
}

async fn delete_object(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    q: QueryMap,
) -> Result<Response, ApiError> {
    if dry_run(&q)? {
        let report = s.platform.meta.object_impact(&c.tenant_id, &object).await?;
        return Ok(Json(json!(report)).into_response());
    }
    s.platform.meta.delete_object(&c.tenant_id, &object).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_fields(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok(crate::etag::json_value(
        &headers,
        &json!({
            "version": o.def.version,
            "fields": o.def.fields.iter().map(|f| render::field_metadata(f, &names)).collect::<Vec<_>>()
        }),
    ))
}

async fn create_field(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams(object): PathParams<String>,
    JsonBody(input): JsonBody<FieldInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (o, f) = s
        .platform
        .meta
        .add_field(&c.tenant_id, &object, input)
        .await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    let mut body = render::field_metadata(&f, &names);
    body["object_version"] = json!(o.def.version);
    Ok((StatusCode::CREATED, Json(body)))
}

async fn get_field(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, field)): PathParams<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let o = s.platform.meta.object(&c.tenant_id, &object).await?;
    let f = o.field(&field).ok_or_else(|| {
        MosaicError::not_found(format!(
            "The requested resource does not exist: object '{}' has no field '{}'",
            o.api_name(),
            field.chars().take(80).collect::<String>()
        ))
    })?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    Ok(crate::etag::json_value(
        &headers,
        &render::field_metadata(f, &names),
    ))
}

async fn update_field(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, field)): PathParams<(String, String)>,
    q: QueryMap,
    JsonBody(input): JsonBody<FieldInput>,
) -> Result<Response, ApiError> {
    if dry_run(&q)? {
        let to = input
            .data_type
            .as_deref()
            .map(|t| {
                mosaic_types::DataType::parse(t).ok_or_else(|| {
                    MosaicError::field(
                        ErrorCode::INVALID_INPUT,
                        "data_type",
                        format!("unknown data_type '{}'", t.chars().take(40).collect::<String>()),
                    )
                })
            })
            .transpose()?
            .ok_or_else(|| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "data_type",
                    "a dry run of a field change analyses a data_type change: name the new data_type",
                )
            })?;
        let report = s
            .platform
            .meta
            .field_impact(&c.tenant_id, &object, &field, FieldChange::Retype(to))
            .await?;
        return Ok(Json(json!(report)).into_response());
    }
    let (o, f) = s
        .platform
        .meta
        .update_field(&c.tenant_id, &object, &field, input)
        .await?;
    let names = render::object_names(&s, &c.tenant_id).await?;
    let mut body = render::field_metadata(&f, &names);
    body["object_version"] = json!(o.def.version);
    Ok(Json(body).into_response())
}

async fn delete_field(
    State(s): State<AppState>,
    Auth(c): Auth,
    PathParams((object, field)): PathParams<(String, String)>,
    q: QueryMap,
) -> Result<Response, ApiError> {
    if dry_run(&q)? {
        let report = s
            .platform
            .meta
            .field_impact(&c.tenant_id, &object, &field, FieldChange::Delete)
            .await?;
        return Ok(Json(json!(report)).into_response());
    }
    let version = match q.0.get("version") {
        None => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "version",
                "version must be an integer",
            )
        })?),
    };
    s.platform
        .meta
        .delete_field(&c.tenant_id, &object, &field, version)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
