//! The per-tenant rate limit in front of every authenticated API call:
//! classify the request (data read, data write, query, metadata, admin),
//! ask the platform's limiter, and either answer 429
//! `REQUEST_LIMIT_EXCEEDED` with `Retry-After`, or pass the request on;
//! both carry `X-RateLimit-Limit` / `-Remaining` / `-Reset`. Requests
//! without a valid bearer token pass through to be refused by the handler.

use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mosaic_cache::ratelimit::{Decision, EndpointClass};
use mosaic_types::{ErrorCode, MosaicError};

/// The class of a request, or `None` for what is not limited per tenant
/// (OAuth, health, metrics, the operator's endpoints).
pub fn classify(method: &Method, path: &str) -> Option<EndpointClass> {
    if let Some(rest) = path.strip_prefix("/services/data/") {
        let rest = rest.split_once('/').map(|(_, r)| r).unwrap_or("");
        if ["query", "queryAll", "search", "parameterizedSearch"]
            .iter()
            .any(|q| rest == *q || rest.starts_with(&format!("{q}/")))
        {
            return Some(EndpointClass::Query);
        }
        return Some(if method == Method::GET || method == Method::HEAD {
            EndpointClass::DataRead
        } else {
            EndpointClass::DataWrite
        });
    }
    // The AI tier is a design-time tool, like the metadata API.
    if path.starts_with("/services/metadata/") || path.starts_with("/services/ai/") {
        return Some(EndpointClass::Metadata);
    }
    if path.starts_with("/services/admin/") {
        return Some(EndpointClass::Admin);
    }
    None
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    let raw = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    raw.strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("OAuth "))
        .or_else(|| raw.strip_prefix("bearer "))
        .map(str::trim)
}

fn secs_up(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn set_headers(h: &mut HeaderMap, d: &Decision) {
    let put = |h: &mut HeaderMap, k: &'static str, v: u64| {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            h.insert(k, v);
        }
    };
    put(h, "x-ratelimit-limit", u64::from(d.limit));
    put(h, "x-ratelimit-remaining", u64::from(d.remaining));
    put(
        h,
        "x-ratelimit-reset",
        d.reset.as_secs() + u64::from(d.reset.subsec_nanos() > 0),
    );
}

pub async fn limit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(class) = classify(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let Some(token) = bearer(req.headers()) else {
        return next.run(req).await;
    };
    let Ok(session) = s.platform.auth.resolve(token).await else {
        return next.run(req).await;
    };
    s.platform.cache.api_usage.count(&session.tenant_id).await;
    let Some(d) = s.platform.rate_limit(&session.tenant_id, class).await else {
        return next.run(req).await;
    };
    if !d.allowed {
        let e = MosaicError::new(
            ErrorCode::REQUEST_LIMIT_EXCEEDED,
            format!(
                "TotalRequests Limit exceeded: this organization's {} requests are limited to {} per second; retry after the Retry-After header's seconds",
                class.name(),
                d.limit
            ),
        );
        let mut res = crate::error::ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            errors: vec![e],
        }
        .into_response();
        set_headers(res.headers_mut(), &d);
        if let Ok(v) = HeaderValue::from_str(&secs_up(d.retry_after).to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let mut res = next.run(req).await;
    set_headers(res.headers_mut(), &d);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_route() {
        let c = |m: Method, p: &str| classify(&m, p);
        assert_eq!(
            c(Method::GET, "/services/data/v60.0/query"),
            Some(EndpointClass::Query)
        );
        assert_eq!(
            c(Method::GET, "/services/data/v60.0/query/01abc-2000"),
            Some(EndpointClass::Query)
        );
        assert_eq!(
            c(Method::GET, "/services/data/v60.0/search"),
            Some(EndpointClass::Query)
        );
        assert_eq!(
            c(Method::GET, "/services/data/v60.0/sobjects/A__c/x"),
            Some(EndpointClass::DataRead)
        );
        assert_eq!(
            c(Method::PATCH, "/services/data/v60.0/sobjects/A__c/x"),
            Some(EndpointClass::DataWrite)
        );
        assert_eq!(
            c(Method::POST, "/services/metadata/v1/objects"),
            Some(EndpointClass::Metadata)
        );
        assert_eq!(
            c(Method::POST, "/services/ai/v1/formula/generate"),
            Some(EndpointClass::Metadata)
        );
        assert_eq!(
            c(Method::GET, "/services/admin/v1/users"),
            Some(EndpointClass::Admin)
        );
        assert_eq!(c(Method::POST, "/services/oauth2/token"), None);
        assert_eq!(c(Method::GET, "/healthz"), None);
    }
}
