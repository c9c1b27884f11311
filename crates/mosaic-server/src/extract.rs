//! Request extractors whose every rejection is a JSON error in the public
//! shape (never a plain-text 4xx, never a 500).

use crate::error::ApiError;
use crate::MAX_BODY_BYTES;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use mosaic_types::ErrorCode;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// A JSON body: `Content-Type: application/json`, at most
/// [`MAX_BODY_BYTES`], parsed with the error position reported.
pub struct JsonBody<T>(pub T);

fn content_type_is(parts_ct: Option<&header::HeaderValue>, want: &str) -> bool {
    parts_ct
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(want)
        })
        .unwrap_or(false)
}

pub async fn read_body(req: Request) -> Result<axum::body::Bytes, ApiError> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok())
    {
        if len > MAX_BODY_BYTES {
            return Err(too_large());
        }
    }
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::REQUEST_TOO_LARGE,
        format!("the request body exceeds the limit of {MAX_BODY_BYTES} bytes"),
    )
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::JSON_PARSER_ERROR, format!("malformed JSON: {e}")))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !content_type_is(req.headers().get(header::CONTENT_TYPE), "application/json") {
            return Err(ApiError::new(
                ErrorCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be JSON with Content-Type: application/json",
            ));
        }
        let bytes = read_body(req).await?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(ApiError::new(
                ErrorCode::JSON_PARSER_ERROR,
                "the request body is empty",
            ));
        }
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// The query string as a map (last value wins); malformed → 400.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).map_err(|e| {
            ApiError::new(
                ErrorCode::INVALID_INPUT,
                format!("malformed query string: {e}"),
            )
        })?;
        Ok(QueryMap(pairs.into_iter().collect()))
    }
}

impl QueryMap {
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self
            .0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
        {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::from(mosaic_types::MosaicError::field(
                ErrorCode::INVALID_INPUT,
                name,
                format!(
                    "{name} must be true or false, not '{}'",
                    v.chars().take(40).collect::<String>()
                ),
            ))),
        }
    }

    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        self.0.get(name).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }
}

/// Path parameters with a JSON rejection.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::NOT_FOUND,
                    format!("The requested resource does not exist: {e}"),
                )
            })
    }
}
