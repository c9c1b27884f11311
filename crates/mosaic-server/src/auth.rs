//! Bearer-token authentication: every Data and Metadata API request is
//! resolved to a (tenant, user) before its handler runs.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use mosaic_runtime::Caller;
use mosaic_types::ErrorCode;

/// The authenticated caller of a request.
pub struct Auth(pub Caller);

fn unauthorized() -> ApiError {
    ApiError::new(ErrorCode::INVALID_SESSION_ID, "Session expired or invalid")
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        let token = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("OAuth "))
            .or_else(|| raw.strip_prefix("bearer "))
            .ok_or_else(unauthorized)?
            .trim();
        let s = state.platform.auth.resolve(token).await.map_err(|e| {
            if e.code == ErrorCode::INVALID_SESSION_ID {
                unauthorized()
            } else {
                e.into()
            }
        })?;
        crate::observe::set_caller(&s.tenant_id, &s.user_id);
        Ok(Auth(Caller {
            tenant_id: s.tenant_id.clone(),
            user_id: s.user_id.clone(),
            username: s.username.clone(),
        }))
    }
}
