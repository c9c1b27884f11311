//! The admin API under `/services/admin/v1/`: users, roles, public groups,
//! permission sets and their assignments, connected apps, and the audit log.
//! For system administrators of the tenant only; every change is
//! audit-logged by the access service. Ids of another tenant are 404, as
//! ids that do not exist.

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryMap};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mosaic_access::admin::{
    group_members_json, AssignmentInput, GroupPatchInput, NewConnectedAppInput, NewGroupInput,
    NewPermissionSetInput, NewRoleInput, NewUserInput, PermissionSetPatchInput, RolePatchInput,
    UserPatchInput,
};
use mosaic_runtime::access::permission_set_json;
use mosaic_runtime::zones::{self, LocaleInput, LocaleSettings};
use mosaic_runtime::Platform;
use mosaic_store::access_store::{AuditFilter, ConnectedAppRow, GroupRow, RoleRow};
use mosaic_store::UserRow;
use mosaic_types::value::format_datetime;
use mosaic_types::{ErrorCode, MosaicError};
use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::LazyLock;

const BASE: &str = "/services/admin/v1";

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let a = Access::TenantAdmin;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/users",
            a,
            "admin.users.list",
            "List the tenant's users",
            get(list_users),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/users",
            a,
            "admin.users.create",
            "Create a user",
            post(create_user),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/users/{id}",
            a,
            "admin.users.get",
            "Get a user",
            get(get_user),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/admin/v1/users/{id}",
            a,
            "admin.users.update",
            "Update a user",
            patch(update_user),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/roles",
            a,
            "admin.roles.list",
            "List roles",
            get(list_roles),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/roles",
            a,
            "admin.roles.create",
            "Create a role",
            post(create_role),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/roles/{id}",
            a,
            "admin.roles.get",
            "Get a role",
            get(get_role),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/admin/v1/roles/{id}",
            a,
            "admin.roles.update",
            "Update a role",
            patch(update_role),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/admin/v1/roles/{id}",
            a,
            "admin.roles.delete",
            "Delete a role",
            delete(delete_role),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/groups",
            a,
            "admin.groups.list",
            "List public groups",
            get(list_groups),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/groups",
            a,
            "admin.groups.create",
            "Create a public group",
            post(create_group),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/groups/{id}",
            a,
            "admin.groups.get",
            "Get a public group",
            get(get_group),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/admin/v1/groups/{id}",
            a,
            "admin.groups.update",
            "Update a public group",
            patch(update_group),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/admin/v1/groups/{id}",
            a,
            "admin.groups.delete",
            "Delete a public group",
            delete(delete_group),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/permission-sets",
            a,
            "admin.permission_sets.list",
            "List permission sets",
            get(list_permission_sets),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/permission-sets",
            a,
            "admin.permission_sets.create",
            "Create a permission set",
            post(create_permission_set),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/permission-sets/{id}",
            a,
            "admin.permission_sets.get",
            "Get a permission set",
            get(get_permission_set),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/admin/v1/permission-sets/{id}",
            a,
            "admin.permission_sets.update",
            "Update a permission set",
            patch(update_permission_set),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/admin/v1/permission-sets/{id}",
            a,
            "admin.permission_sets.delete",
            "Delete a permission set",
            delete(delete_permission_set),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/permission-sets/{id}/assignments",
            a,
            "admin.permission_sets.assign",
            "Assign a permission set to a user",
            post(assign),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/admin/v1/permission-sets/{id}/assignments/{user_id}",
            a,
            "admin.permission_sets.unassign",
            "Remove a permission set from a user",
            delete(unassign),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/connected-apps",
            a,
            "admin.connected_apps.list",
            "List connected apps",
            get(list_connected_apps),
        ),
        RouteSpec::new(
            Method::POST,
            "/services/admin/v1/connected-apps",
            a,
            "admin.connected_apps.create",
            "Create a connected app",
            post(create_connected_app),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/connected-apps/{id}",
            a,
            "admin.connected_apps.get",
            "Get a connected app",
            get(get_connected_app),
        ),
        RouteSpec::new(
            Method::DELETE,
            "/services/admin/v1/connected-apps/{id}",
            a,
            "admin.connected_apps.delete",
            "Delete a connected app",
            delete(delete_connected_app),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/organization",
            a,
            "admin.organization.get",
            "The tenant's default time zone and locale",
            get(get_organization),
        ),
        RouteSpec::new(
            Method::PATCH,
            "/services/admin/v1/organization",
            a,
            "admin.organization.update",
            "Set the tenant's default time zone and locale",
            patch(update_organization),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/admin/v1/audit",
            a,
            "admin.audit",
            "The tenant's audit log",
            get(audit),
        )
        .query(&["limit", "before"]),
    ]
}

static SERDE_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"field `([^`]{1,80})`").expect("serde field regex"));

/// A JSON body parsed into an admin input: an unknown, missing or mistyped
/// key is a 400 naming the key (with its path, e.g. `members[0].user_id`).
pub(crate) struct Input<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for Input<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let JsonBody(v) = JsonBody::<Value>::from_request(req, state).await?;
        parse_input(v).map(Input)
    }
}

/// A user body: the access input, the user's `time_zone` / `locale` (kept
/// beside the user, see `mosaic_runtime::zones`, checked first), and
/// whether the body had nothing but those two.
struct UserInput<T>(T, LocaleInput, bool);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for UserInput<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let JsonBody(mut v) = JsonBody::<Value>::from_request(req, state).await?;
        let locale = LocaleInput::take_from(&mut v)?;
        if let Some(Some(z)) = &locale.time_zone {
            zones::parse_zone("time_zone", z)?;
        }
        if let Some(Some(l)) = &locale.locale {
            zones::check_locale("locale", l)?;
        }
        let only_locale = v.as_object().is_some_and(|m| m.is_empty()) && !locale.is_empty();
        Ok(UserInput(parse_input(v)?, locale, only_locale))
    }
}

fn parse_input<T: DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        let prefix = if path == "." {
            String::new()
        } else {
            path.clone()
        };
        let field = match SERDE_FIELD.captures(&msg).and_then(|c| c.get(1)) {
            // The path of an unknown key ends with it; that of a
            // missing key is its parent.
            _ if msg.starts_with("unknown field") => prefix,
            Some(k) if prefix.is_empty() => k.as_str().to_string(),
            Some(k) => format!("{prefix}.{}", k.as_str()),
            None => prefix,
        };
        let text = if field.is_empty() {
            msg
        } else {
            format!("{field}: {msg}")
        };
        if field.is_empty() {
            MosaicError::new(ErrorCode::INVALID_INPUT, text)
        } else {
            MosaicError::field(ErrorCode::INVALID_INPUT, field, text)
        }
        .into()
    })
}

type ApiResult = Result<Response, AdminError>;

/// The admin API's errors: the public error array, with a taken name as
/// 409 Conflict (the Data API keeps Salesforce's 400 DUPLICATE_VALUE).
struct AdminError(ApiError);

impl From<MosaicError> for AdminError {
    fn from(e: MosaicError) -> Self {
        let mut api = ApiError::from(e);
        if api.errors.first().map(|e| e.code) == Some(ErrorCode::DUPLICATE_VALUE) {
            api.status = StatusCode::CONFLICT;
        }
        AdminError(api)
    }
}

impl From<ApiError> for AdminError {
    fn from(e: ApiError) -> Self {
        AdminError(e)
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn user_json(u: &UserRow, locale: &LocaleSettings) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "profile": u.profile,
        "role_id": u.role_id,
        "active": u.is_active,
        "time_zone": locale.time_zone,
        "locale": locale.locale,
        "created_at": format_datetime(&u.created_at),
    })
}

async fn user_out(p: &Platform, u: &UserRow) -> Result<Value, AdminError> {
    let locale = p.locale_settings(&u.tenant_id, Some(&u.id)).await?;
    Ok(user_json(u, &locale))
}

fn role_json(r: &RoleRow) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "label": r.label,
        "parent_role_id": r.parent_id,
        "path": r.path,
        "depth": r.depth,
        "created_at": format_datetime(&r.created_at),
    })
}

fn group_json(g: &GroupRow) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "label": g.label,
        "members": group_members_json(&g.members),
        "created_at": format_datetime(&g.created_at),
    })
}

fn app_json(a: &ConnectedAppRow) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "client_id": a.client_id,
        "run_as_user_id": a.run_as_user_id,
        "created_at": format_datetime(&a.created_at),
    })
}

fn actor(c: &mosaic_runtime::Caller) -> mosaic_access::Actor {
    Platform::actor(c)
}

// ---------- users ----------

async fn list_users(State(s): State<AppState>, Admin(c): Admin) -> ApiResult {
    let users = s.platform.access.users(&c.tenant_id).await?;
    let mut out = Vec::with_capacity(users.len());
    for u in &users {
        out.push(user_out(&s.platform, u).await?);
    }
    ok(json!({ "users": out }))
}

async fn create_user(
    State(s): State<AppState>,
    Admin(c): Admin,
    UserInput(input, locale, _): UserInput<NewUserInput>,
) -> ApiResult {
    let u = s.platform.access.create_user(&actor(&c), input).await?;
    let settings = s
        .platform
        .set_locale_settings(&c.user_id, &c.tenant_id, Some(&u.id), &locale)
        .await?;
    created(user_json(&u, &settings))
}

async fn get_user(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    let u = s.platform.access.user(&c.tenant_id, &id).await?;
    ok(user_out(&s.platform, &u).await?)
}

async fn update_user(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
    UserInput(input, locale, only_locale): UserInput<UserPatchInput>,
) -> ApiResult {
    let u = if only_locale {
        s.platform.access.user(&c.tenant_id, &id).await?
    } else {
        s.platform
            .access
            .update_user(&actor(&c), &id, input)
            .await?
    };
    let settings = s
        .platform
        .set_locale_settings(&c.user_id, &c.tenant_id, Some(&u.id), &locale)
        .await?;
    ok(user_json(&u, &settings))
}

// ---------- the organization (the tenant's own settings) ----------

async fn get_organization(State(s): State<AppState>, Admin(c): Admin) -> ApiResult {
    let settings = s.platform.locale_settings(&c.tenant_id, None).await?;
    let mut org = organization_json(&c.tenant_id, &settings);
    let row = s.platform.meta_store.tenant(&c.tenant_id).await?;
    org["subdomain"] = json!(row.map(|r| r.subdomain));
    ok(org)
}

async fn update_organization(
    State(s): State<AppState>,
    Admin(c): Admin,
    Input(input): Input<LocaleInput>,
) -> ApiResult {
    let settings = s
        .platform
        .set_locale_settings(&c.user_id, &c.tenant_id, None, &input)
        .await?;
    ok(organization_json(&c.tenant_id, &settings))
}

fn organization_json(tenant_id: &str, settings: &LocaleSettings) -> Value {
    json!({
        "id": tenant_id,
        "time_zone": settings.time_zone,
        "locale": settings.locale,
        "default_time_zone": zones::DEFAULT_TIME_ZONE,
        "default_locale": zones::DEFAULT_LOCALE,
    })
}

// ---------- roles ----------

async fn list_roles(State(s): State<AppState>, Admin(c): Admin) -> ApiResult {
    let roles = s.platform.access.roles(&c.tenant_id).await?;
    ok(json!({"roles": roles.iter().map(role_json).collect::<Vec<_>>()}))
}

async fn create_role(
    State(s): State<AppState>,
    Admin(c): Admin,
    Input(input): Input<NewRoleInput>,
) -> ApiResult {
    let r = s.platform.access.create_role(&actor(&c), input).await?;
    created(role_json(&r))
}

async fn get_role(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    ok(role_json(&s.platform.access.role(&c.tenant_id, &id).await?))
}

async fn update_role(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
    Input(input): Input<RolePatchInput>,
) -> ApiResult {
    let r = s
        .platform
        .access
        .update_role(&actor(&c), &id, input)
        .await?;
    ok(role_json(&r))
}

async fn delete_role(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    s.platform.access.delete_role(&actor(&c), &id).await?;
    no_content()
}

// ---------- groups ----------

async fn list_groups(State(s): State<AppState>, Admin(c): Admin) -> ApiResult {
    let groups = s.platform.access.groups(&c.tenant_id).await?;
    ok(json!({"groups": groups.iter().map(group_json).collect::<Vec<_>>()}))
}

async fn create_group(
    State(s): State<AppState>,
    Admin(c): Admin,
    Input(input): Input<NewGroupInput>,
) -> ApiResult {
    let g = s.platform.access.create_group(&actor(&c), input).await?;
    created(group_json(&g))
}

async fn get_group(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    ok(group_json(
        &s.platform.access.group(&c.tenant_id, &id).await?,
    ))
}

async fn update_group(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
    Input(input): Input<GroupPatchInput>,
) -> ApiResult {
    let g = s
        .platform
        .access
        .update_group(&actor(&c), &id, input)
        .await?;
    ok(group_json(&g))
}

async fn delete_group(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    s.platform.access.delete_group(&actor(&c), &id).await?;
    no_content()
}

// ---------- permission sets ----------

async fn list_permission_sets(State(s): State<AppState>, Admin(c): Admin) -> ApiResult {
    let sets = s.platform.access.permission_sets(&c.tenant_id).await?;
    let names = s.platform.permission_names(&c.tenant_id).await?;
    ok(json!({
        "permission_sets": sets.iter().map(|p| permission_set_json(p, &names)).collect::<Vec<_>>()
    }))
}

async fn create_permission_set(
    State(s): State<AppState>,
    Admin(c): Admin,
    Input(input): Input<NewPermissionSetInput>,
) -> ApiResult {
    let set = s.platform.create_permission_set(&c, input).await?;
    let names = s.platform.permission_names(&c.tenant_id).await?;
    created(permission_set_json(&set, &names))
}

async fn get_permission_set(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    let set = s.platform.access.permission_set(&c.tenant_id, &id).await?;
    let names = s.platform.permission_names(&c.tenant_id).await?;
    ok(permission_set_json(&set, &names))
}

async fn update_permission_set(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
    Input(input): Input<PermissionSetPatchInput>,
) -> ApiResult {
    let set = s.platform.update_permission_set(&c, &id, input).await?;
    let names = s.platform.permission_names(&c.tenant_id).await?;
    ok(permission_set_json(&set, &names))
}

async fn delete_permission_set(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    s.platform
        .access
        .delete_permission_set(&actor(&c), &id)
        .await?;
    no_content()
}

async fn assign(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
    Input(input): Input<AssignmentInput>,
) -> ApiResult {
    let user_id = input.user_id.clone();
    s.platform.access.assign(&actor(&c), &id, input).await?;
    created(json!({"permission_set_id": id, "user_id": user_id}))
}

async fn unassign(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams((id, user_id)): PathParams<(String, String)>,
) -> ApiResult {
    s.platform
        .access
        .unassign(&actor(&c), &id, &user_id)
        .await?;
    no_content()
}

// ---------- connected apps ----------

async fn list_connected_apps(State(s): State<AppState>, Admin(c): Admin) -> ApiResult {
    let apps = s.platform.access.connected_apps(&c.tenant_id).await?;
    ok(json!({"connected_apps": apps.iter().map(app_json).collect::<Vec<_>>()}))
}

async fn create_connected_app(
    State(s): State<AppState>,
    Admin(c): Admin,
    Input(input): Input<NewConnectedAppInput>,
) -> ApiResult {
    let a = s
        .platform
        .access
        .create_connected_app(&actor(&c), input)
        .await?;
    created(json!({"id": a.id, "client_id": a.client_id, "client_secret": a.client_secret}))
}

async fn get_connected_app(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    ok(app_json(
        &s.platform.access.connected_app(&c.tenant_id, &id).await?,
    ))
}

async fn delete_connected_app(
    State(s): State<AppState>,
    Admin(c): Admin,
    PathParams(id): PathParams<String>,
) -> ApiResult {
    s.platform
        .access
        .delete_connected_app(&actor(&c), &id)
        .await?;
    no_content()
}

// ---------- audit ----------

fn bad_param(name: &str, msg: &str) -> AdminError {
    MosaicError::field(ErrorCode::INVALID_INPUT, name, format!("{name}: {msg}")).into()
}

/// `GET /services/admin/v1/audit?action=&target=&since=&limit=&before=`:
/// newest first; `next` pages further back.
async fn audit(State(s): State<AppState>, Admin(c): Admin, q: QueryMap) -> ApiResult {
    const KNOWN: [&str; 5] = ["action", "target", "since", "limit", "before"];
    if let Some(k) = q.0.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad_param(
            &k.chars().take(40).collect::<String>(),
            "unknown parameter (use action, target, since, limit, before)",
        ));
    }
    let since = match q.0.get("since") {
        None => None,
        Some(v) => Some(
            chrono::DateTime::parse_from_rfc3339(v)
                .map_err(|_| {
                    bad_param(
                        "since",
                        "an ISO 8601 date-time such as 2026-01-31T12:00:00Z",
                    )
                })?
                .with_timezone(&chrono::Utc),
        ),
    };
    let limit = match q.0.get("limit") {
        None => mosaic_access::admin::DEFAULT_AUDIT_PAGE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=mosaic_access::admin::MAX_AUDIT_PAGE).contains(n))
            .ok_or_else(|| bad_param("limit", "an integer from 1 to 1000"))?,
    };
    let before_seq = match q.0.get("before") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| bad_param("before", "a sequence number from a previous page"))?,
        ),
    };
    let rows = s
        .platform
        .access
        .audit(
            &c.tenant_id,
            AuditFilter {
                action: q.0.get("action").cloned(),
                target_id: q.0.get("target").cloned(),
                since,
                before_seq,
                limit,
            },
        )
        .await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten()
        .map(|seq| {
            let mut p: Vec<(String, String)> =
                q.0.iter()
                    .filter(|(k, _)| k.as_str() != "before")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
            p.push(("before".into(), seq.to_string()));
            p.sort();
            format!(
                "{BASE}/audit?{}",
                serde_urlencoded::to_string(&p).unwrap_or_default()
            )
        });
    ok(json!({
        "entries": rows.iter().map(|r| json!({
            "seq": r.seq,
            "actor_user_id": r.entry.actor_id,
            "action": r.entry.action,
            "target_type": r.entry.target_type,
            "target_id": r.entry.target_id,
            "detail": serde_json::from_str::<Value>(&r.entry.detail).unwrap_or(Value::Null),
            "at": format_datetime(&r.entry.at),
        })).collect::<Vec<_>>(),
        "next": next,
    }))
}
