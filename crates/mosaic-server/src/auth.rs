//! Bearer-token authentication: every Data and Metadata API request is
//! resolved to a (tenant, user) and that user's permission snapshot before
//! its handler runs. [`Admin`] additionally requires a system administrator.

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
        let perms = state
            .platform
            .access
            .snapshot(&s.tenant_id, &s.user_id)
            .await?;
        if !perms.is_active() {
            return Err(unauthorized());
        }
        Ok(Auth(Caller {
            tenant_id: s.tenant_id.clone(),
            user_id: s.user_id.clone(),
            username: s.username.clone(),
            perms,
        }))
    }
}

/// An authenticated system administrator of the tenant; anyone else gets
/// 403 INSUFFICIENT_ACCESS.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(c) = Auth::from_request_parts(parts, state).await?;
        if !c.perms.is_admin() {
            return Err(ApiError::new(
                ErrorCode::INSUFFICIENT_ACCESS,
                "insufficient access rights: this API is for system administrators",
            ));
        }
        Ok(Admin(c))
    }
}

/// Middleware: the routes it wraps are for system administrators only.
pub async fn require_admin(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = req.into_parts();
    if let Err(e) = Admin::from_request_parts(&mut parts, &state).await {
        return e.into_response();
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}
