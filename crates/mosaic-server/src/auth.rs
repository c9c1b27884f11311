//! Bearer-token authentication: every Data and Metadata API request is
//! resolved to a (tenant, user) and that user's permission snapshot before
//! its handler runs. [`Admin`] additionally requires a system administrator,
//! [`Customizer`] one or a user with "Customize Application".

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
        caller_of_token(state, token).await.map(Auth)
    }
}

/// The active caller an access token belongs to, or `INVALID_SESSION_ID`.
pub(crate) async fn caller_of_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let s = state.platform.auth.resolve(token).await.map_err(|e| {
        if e.code == ErrorCode::INVALID_SESSION_ID {
            unauthorized()
        } else {
            e.into()
        }
    })?;
    crate::observe::set_caller(&s.tenant_id, &s.user_id);
    // A permission change made through another instance is in force
    // here now, whether or not its invalidation message arrived.
    state.platform.access.check_generation(&s.tenant_id).await;
    let perms = state
        .platform
        .access
        .snapshot(&s.tenant_id, &s.user_id)
        .await?;
    if !perms.is_active() {
        return Err(unauthorized());
    }
    let zone = state.platform.zone_of(&s.tenant_id, &s.user_id).await?;
    Ok(Caller {
        tenant_id: s.tenant_id.clone(),
        user_id: s.user_id.clone(),
        username: s.username.clone(),
        perms,
        zone,
    })
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

/// A caller who may build the application: a system administrator, or a
/// user whose permission sets grant "Customize Application" (checked on
/// the snapshot of the tenant's current generation, so a revoke applies to
/// the next request); anyone else gets 403 INSUFFICIENT_ACCESS.
pub struct Customizer(pub Caller);

impl FromRequestParts<AppState> for Customizer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(c) = Auth::from_request_parts(parts, state).await?;
        if !c.perms.can_customize_application() {
            return Err(ApiError::new(
                ErrorCode::INSUFFICIENT_ACCESS,
                "insufficient access rights: this API is for system administrators and users with the customize_application permission",
            ));
        }
        Ok(Customizer(c))
    }
}

/// Only callers who may customize the application ([`Customizer`]) pass;
/// every successful change (POST, PUT, PATCH, DELETE) is written to the
/// tenant's audit log: who, which method on which definition, when.
pub async fn require_customizer_audited(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = req.into_parts();
    let caller = match Customizer::from_request_parts(&mut parts, &state).await {
        Ok(Customizer(c)) => c,
        Err(e) => return e.into_response(),
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    // A dry run (`?dry_run=true`) answers an impact report and changes nothing.
    let dry_run = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "dry_run=true"));
    let res = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    let changes = matches!(
        method,
        axum::http::Method::POST
            | axum::http::Method::PUT
            | axum::http::Method::PATCH
            | axum::http::Method::DELETE
    );
    // The formula editor's check / evaluate change nothing.
    if changes && !dry_run && res.status().is_success() && !path.contains("/formula/") {
        // A sharing model, a master-detail field or a definition a rule
        // reads may have changed: cached record decisions are stale.
        state.platform.sharing_changed(&caller.tenant_id);
        let (target_type, target_id) = metadata_target(&path);
        let entry = mosaic_store::access_store::AuditEntry {
            tenant_id: caller.tenant_id.clone(),
            actor_id: caller.user_id.clone(),
            action: format!(
                "metadata.{}",
                match method {
                    axum::http::Method::POST => "create",
                    axum::http::Method::DELETE => "delete",
                    _ => "update",
                }
            ),
            target_type,
            target_id,
            detail: serde_json::json!({"method": method.as_str(), "path": path}).to_string(),
            at: chrono::Utc::now(),
        };
        if let Err(e) = state.platform.access.store().append_audit(entry).await {
            tracing::warn!(error = %e.message, "audit entry for a metadata change was not written");
        }
    }
    res
}

/// What a metadata path changes: (`object` | `field` | `validation_rule` |
/// `workflow_rule`, its name path such as `Deal__c/Amount__c`).
fn metadata_target(path: &str) -> (String, String) {
    let rest = path
        .trim_start_matches("/services/metadata/v1/objects")
        .trim_matches('/');
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let kind = match parts.get(1).copied() {
        None => "object",
        Some("fields") => "field",
        Some("validations") => "validation_rule",
        Some("workflows") => "workflow_rule",
        Some("layouts") => "layout",
        Some("listviews") => "list_view",
        Some(_) => "object",
    };
    let id = match parts.as_slice() {
        [] => String::new(),
        [o] | [o, _] => o.to_string(),
        [o, _, name, ..] => format!("{o}/{name}"),
    };
    (kind.into(), id)
}
