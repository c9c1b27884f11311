//! The public error shape: Salesforce's JSON array of
//! `{"message","errorCode","fields"}`, with an HTTP status chosen by code.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use mosaic_runtime::RecordErrors;
use mosaic_types::{ErrorCode, MosaicError};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<MosaicError>,
}

/// HTTP status of a domain error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        NOT_FOUND | ENTITY_IS_DELETED => StatusCode::NOT_FOUND,
        INVALID_SESSION_ID => StatusCode::UNAUTHORIZED,
        INSUFFICIENT_ACCESS => StatusCode::FORBIDDEN,
        CONFLICT => StatusCode::CONFLICT,
        IDEMPOTENCY_KEY_REUSED => StatusCode::UNPROCESSABLE_ENTITY,
        UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        REQUEST_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        METHOD_NOT_ALLOWED => StatusCode::METHOD_NOT_ALLOWED,
        REQUEST_LIMIT_EXCEEDED => StatusCode::TOO_MANY_REQUESTS,
        MULTIPLE_CHOICES => StatusCode::MULTIPLE_CHOICES,
        NOT_IMPLEMENTED => StatusCode::NOT_IMPLEMENTED,
        SERVICE_UNAVAILABLE | UNABLE_TO_LOCK_ROW => StatusCode::SERVICE_UNAVAILABLE,
        REQUEST_RUNNING_TOO_LONG => StatusCode::GATEWAY_TIMEOUT,
        UNKNOWN_EXCEPTION => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<MosaicError> for ApiError {
    fn from(e: MosaicError) -> Self {
        ApiError {
            status: status_of(e.code),
            errors: vec![e],
        }
    }
}

impl From<RecordErrors> for ApiError {
    fn from(e: RecordErrors) -> Self {
        ApiError {
            status: status_of(e.first_code()),
            errors: e.0,
        }
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        MosaicError::new(code, message).into()
    }
}

/// One error as JSON; internal failures are logged and shown generically.
pub fn error_json(e: &MosaicError) -> serde_json::Value {
    if e.code == ErrorCode::UNKNOWN_EXCEPTION {
        tracing::error!(detail = %e.message, "internal error");
        return json!({
            "message": "An unexpected error occurred. Please include the request id when reporting it.",
            "errorCode": e.code.as_str(),
            "fields": e.fields,
            "requestId": crate::observe::current_request_id(),
        });
    }
    let mut j = json!({"message": e.message, "errorCode": e.code.as_str(), "fields": e.fields});
    if let Some(id) = crate::observe::current_request_id() {
        j["requestId"] = json!(id);
    }
    j
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body: Vec<serde_json::Value> = self.errors.iter().map(error_json).collect();
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        res
    }
}

pub async fn not_found_fallback() -> ApiError {
    ApiError::new(
        ErrorCode::NOT_FOUND,
        "The requested resource does not exist",
    )
}

pub async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        errors: vec![MosaicError::new(
            ErrorCode::METHOD_NOT_ALLOWED,
            "HTTP method not allowed for this resource",
        )],
    }
}

pub fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(ErrorCode::UNKNOWN_EXCEPTION, "handler panicked").into_response()
}
