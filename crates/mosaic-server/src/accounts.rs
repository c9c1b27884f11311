//! The account lifecycle's routes: a user's own password change
//! (`POST /services/auth/v1/password`), the change of a password an
//! administrator reset (`POST /services/auth/v1/password/expired`, before
//! any session exists) and the administrator's reset
//! (`POST /services/admin/v1/users/{id}/password`).

use crate::admin::Input;
use crate::auth::{Admin, Auth};
use crate::error::ApiError;
use crate::extract::PathParams;
use crate::network::ClientInfo;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use mosaic_access::accounts::{
    ExpiredPasswordChangeInput, PasswordChangeError, PasswordChangeInput, PasswordResetInput,
};
use mosaic_runtime::Platform;
use mosaic_types::{ErrorCode, MosaicError};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![
        RouteSpec::new(
            Method::POST,
            "/services/auth/v1/password",
            Access::Session,
            "auth.password.change",
            "Change the signed-in user's password (revokes the user's other sessions and refresh tokens)",
            post(change),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/auth/v1/password/expired",
            Access::Public,
            "auth.password.change_expired",
            "Change a password an administrator reset, with the username and the temporary password",
            post(change_expired),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/users/{id}/password",
            Access::TenantAdmin,
            "admin.users.reset_password",
            "Reset a user's password to a temporary one the user must change at the next sign-in",
            post(reset),
        ),
    ]
}

fn source(client: Option<Extension<ClientInfo>>) -> Option<String> {
    client.map(|Extension(c)| c.ip.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    raw.strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("OAuth "))
        .or_else(|| raw.strip_prefix("bearer "))
        .map(str::trim)
}

fn refused(e: PasswordChangeError, field: &str, what: &str) -> Response {
    match e {
        PasswordChangeError::WrongPassword => ApiError::from(MosaicError::field(
            ErrorCode::INVALID_INPUT,
            field,
            format!("{field}: {what}"),
        ))
        .into_response(),
        PasswordChangeError::TooManyAttempts { retry_after_secs } => {
            let mut r = ApiError::new(
                ErrorCode::REQUEST_LIMIT_EXCEEDED,
                "too many failed attempts; retry later",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        PasswordChangeError::Invalid(e) => ApiError::from(e).into_response(),
    }
}

async fn change(
    State(s): State<AppState>,
    Auth(c): Auth,
    headers: HeaderMap,
    client: Option<Extension<ClientInfo>>,
    Input(input): Input<PasswordChangeInput>,
) -> Response {
    match s
        .platform
        .access
        .change_password(
            &c.tenant_id,
            &c.user_id,
            bearer(&headers),
            &input,
            source(client).as_deref(),
        )
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e, "current_password", "the current password is wrong"),
    }
}

async fn change_expired(
    State(s): State<AppState>,
    client: Option<Extension<ClientInfo>>,
    Input(input): Input<ExpiredPasswordChangeInput>,
) -> Response {
    match s
        .platform
        .access
        .change_expired_password(&input, source(client).as_deref())
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(
            e,
            "current_password",
            "authentication failure (username or current password)",
        ),
    }
}

async fn reset(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
    Input(input): Input<PasswordResetInput>,
) -> Response {
    match s
        .platform
        .access
        .reset_password(&Platform::actor(&c), &id, &input)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
