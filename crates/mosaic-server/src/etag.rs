//! Conditional GETs for definitions (describe, layouts, list-view
//! definitions, picklist values): an `ETag` that is a hash of the exact
//! body — so any metadata change, on any instance, changes it as soon as
//! that instance serves the new definition — `If-None-Match` answered with
//! 304 and no body, and a `Cache-Control` a CDN can use: stored by shared
//! caches (`public`) but revalidated with the origin on every use
//! (`no-cache`), keyed by the caller's credentials (`Vary`), so the origin
//! checks access each time and a CDN saves the body's bytes.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// `Cache-Control` of every definition answer.
pub const DEFINITION_CACHE_CONTROL: &str = "public, no-cache";
/// Request headers definition answers vary by.
pub const DEFINITION_VARY: &str = "Authorization, Cookie";

/// The strong entity tag of a body.
pub fn tag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// Whether `If-None-Match` names `tag` (or `*`); weak tags compare weakly,
/// as RFC 9110 says for this header.
pub fn matches(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == tag)
}

/// A JSON definition answer with its tag: 304 when the client has it.
pub fn json_definition(headers: &HeaderMap, body: Bytes) -> Response {
    let tag = tag_of(&body);
    let mut res = if matches(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(DEFINITION_CACHE_CONTROL),
    );
    h.insert(header::VARY, HeaderValue::from_static(DEFINITION_VARY));
    res
}

/// [`json_definition`] of a JSON value.
pub fn json_value(headers: &HeaderMap, v: &serde_json::Value) -> Response {
    json_definition(
        headers,
        Bytes::from(serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let tag = tag_of(b"{}");
        let mut h = HeaderMap::new();
        assert!(!matches(&h, &tag));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", W/{tag}")).unwrap(),
        );
        assert!(matches(&h, &tag));
        assert!(!matches(&h, &tag_of(b"[]")));
    }
}
