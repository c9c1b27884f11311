//! Setup: security administration — users, roles (a tree), public groups,
//! permission sets (object × action grid, field-level security grid,
//! "Customize application"), sharing settings (organisation-wide defaults
//! and sharing rules), manual shares of a record, connected apps and the
//! audit log. Administrators only ([`Need::Admin`]); every call is the
//! access service's or the runtime's one the admin API makes, with the
//! administrator as actor, so every change is checked and audit-logged
//! the same way.

use super::{setup_chrome, setup_user, Need};
use crate::session::WebUser;
use crate::views::{error_page, html, Chrome};
use crate::WebState;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use mosaic_access::admin::{
    AssignmentInput, FieldPermissionInput, GroupPatchInput, MemberInput, NewConnectedAppInput,
    NewGroupInput, NewPermissionSetInput, NewRoleInput, NewUserInput, ObjectPermissionInput,
    PermissionSetPatchInput, RolePatchInput, UserPatchInput,
};
use mosaic_access::Actor;
use mosaic_runtime::zones::LocaleInput;
use mosaic_runtime::Platform;
use mosaic_store::access_store::{AuditEntry, AuditFilter, MemberKind};
use mosaic_types::{ErrorCode, MosaicError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// Audit entries per page.
pub const AUDIT_PAGE: usize = 50;
/// Longest audit filter value kept.
pub const MAX_FILTER_LEN: usize = 200;
/// Length of a generated one-time password.
pub const ONE_TIME_PASSWORD_LEN: usize = 20;

/// This area's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/setup/users", get(users).post(create_user))
        .route("/setup/users/{id}", get(user_page).post(update_user))
        .route("/setup/users/{id}/reset-password", post(reset_password))
        .route("/setup/users/{id}/permission-sets", post(user_sets))
        .route("/setup/roles", get(roles).post(create_role))
        .route("/setup/roles/{id}", post(rename_role))
        .route("/setup/roles/{id}/delete", post(delete_role))
        .route("/setup/groups", get(groups).post(create_group))
        .route("/setup/groups/{id}", get(group_page).post(update_group))
        .route("/setup/groups/{id}/delete", post(delete_group))
        .route(
            "/setup/permission-sets",
            get(permission_sets).post(create_permission_set),
        )
        .route(
            "/setup/permission-sets/{id}",
            get(permission_set_page).post(update_permission_set),
        )
        .route(
            "/setup/permission-sets/{id}/delete",
            post(delete_permission_set),
        )
        .route("/setup/sharing", get(sharing))
        .route("/setup/sharing/defaults", post(sharing_defaults))
        .route("/setup/sharing/rules", post(create_sharing_rule))
        .route(
            "/setup/sharing/rules/{id}/delete",
            post(delete_sharing_rule),
        )
        .route("/setup/shares/{object}/{id}", get(shares).post(grant_share))
        .route(
            "/setup/shares/{object}/{id}/{share}/delete",
            post(revoke_share),
        )
        .route(
            "/setup/connected-apps",
            get(connected_apps).post(create_connected_app),
        )
        .route(
            "/setup/connected-apps/{id}/delete",
            post(delete_connected_app),
        )
        .route("/setup/audit-log", get(audit_log))
}

// ---------- shared bits ----------

/// Values or errors of a form by input name (templates look them up by
/// `&str`).
#[derive(Debug, Clone, Default)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    fn new() -> Fields {
        Fields::default()
    }
    pub fn contains_key(&self, k: impl AsRef<str>) -> bool {
        self.0.contains_key(k.as_ref())
    }
    pub fn get(&self, k: impl AsRef<str>) -> Option<&String> {
        self.0.get(k.as_ref())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn insert(&mut self, k: String, v: String) {
        self.0.insert(k, v);
    }
    fn remove(&mut self, k: &str) {
        self.0.remove(k);
    }
}

impl From<[(String, String); 1]> for Fields {
    fn from(a: [(String, String); 1]) -> Fields {
        Fields(a.into_iter().collect())
    }
}

/// A posted form as name → value (the last value of a repeated name)
/// and the set of names posted with value "1" (checkboxes).
struct Posted {
    values: Fields,
    checked: HashSet<String>,
    all: Vec<(String, String)>,
}

impl Posted {
    fn new(all: Vec<(String, String)>) -> Posted {
        let values = Fields(all.iter().cloned().collect());
        let checked = all
            .iter()
            .filter(|(_, v)| v == "1")
            .map(|(k, _)| k.clone())
            .collect();
        Posted {
            values,
            checked,
            all,
        }
    }
    fn get(&self, k: &str) -> String {
        self.values
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }
    fn opt(&self, k: &str) -> Option<String> {
        Some(self.get(k)).filter(|v| !v.is_empty())
    }
    fn on(&self, k: &str) -> bool {
        self.checked.contains(k)
    }
    fn many(&self, k: &str) -> Vec<String> {
        self.all
            .iter()
            .filter(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The admin of a Setup request and, for a form, its checked CSRF.
async fn admin(s: &WebState, headers: &HeaderMap, uri: &Uri) -> Result<WebUser, Response> {
    setup_user(s, headers, uri, Need::Admin).await
}

async fn posting(
    s: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    form: &Posted,
) -> Result<WebUser, Response> {
    let u = admin(s, headers, uri).await?;
    u.check_csrf(form.values.get("_csrf").map(String::as_str))?;
    Ok(u)
}

fn actor(u: &WebUser) -> Actor {
    Platform::actor(&u.caller)
}

/// Where an error belongs: the field it names (mapped through `map`,
/// else the form's `default`), with its message.
fn placed(e: &MosaicError, default: &str) -> (String, String) {
    let field = e
        .fields
        .first()
        .map(|f| f.split(['.', '[']).next().unwrap_or(f).to_string())
        .unwrap_or_else(|| default.to_string());
    (field, e.message.clone())
}

/// A client mistake to show on the form again (status 400, 409 for a
/// taken name), or the error page for anything else.
fn form_error(e: &MosaicError) -> Option<StatusCode> {
    match e.code {
        ErrorCode::INVALID_INPUT
        | ErrorCode::INVALID_FIELD
        | ErrorCode::REQUIRED_FIELD_MISSING
        | ErrorCode::INVALID_TYPE
        | ErrorCode::STRING_TOO_LONG
        | ErrorCode::INVALID_CROSS_REFERENCE_KEY
        | ErrorCode::MALFORMED_ID => Some(StatusCode::BAD_REQUEST),
        ErrorCode::DUPLICATE_VALUE | ErrorCode::CONFLICT => Some(StatusCode::CONFLICT),
        _ if e.code != ErrorCode::NOT_FOUND
            && e.code != ErrorCode::INSUFFICIENT_ACCESS
            && e.code != ErrorCode::UNKNOWN_EXCEPTION
            && e.code != ErrorCode::SERVICE_UNAVAILABLE =>
        {
            Some(StatusCode::BAD_REQUEST)
        }
        _ => None,
    }
}

fn with_status(mut r: Response, st: StatusCode) -> Response {
    *r.status_mut() = st;
    r
}

fn back(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Deserialize, Default)]
struct Done {
    #[serde(default)]
    done: Option<String>,
}

fn notice(d: &Done) -> Option<String> {
    Some(
        match d.done.as_deref()? {
            "created" => "Created.",
            "saved" => "Saved.",
            "deleted" => "Deleted.",
            "assigned" => "Permission sets saved.",
            _ => return None,
        }
        .to_string(),
    )
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices(items: &[(String, String)], selected: &str) -> Vec<Choice> {
    items
        .iter()
        .map(|(v, l)| Choice {
            value: v.clone(),
            label: l.clone(),
            selected: v == selected,
        })
        .collect()
}

const PROFILES: [(&str, &str); 2] = [
    ("standard", "Standard user"),
    ("system_administrator", "System administrator"),
];

fn profile_label(p: &str) -> String {
    PROFILES
        .iter()
        .find(|(v, _)| *v == p)
        .map(|(_, l)| l.to_string())
        .unwrap_or_else(|| p.to_string())
}

async fn role_items(s: &WebState, tenant: &str) -> Result<Vec<(String, String)>, Response> {
    let mut roles = s
        .platform
        .access
        .roles(tenant)
        .await
        .map_err(|e| error_page(&e))?;
    roles.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(roles
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                format!("{}{}", "— ".repeat((r.depth - 1).max(0) as usize), r.label),
            )
        })
        .collect())
}

async fn user_items(s: &WebState, tenant: &str) -> Result<Vec<(String, String)>, Response> {
    let users = s
        .platform
        .access
        .users(tenant)
        .await
        .map_err(|e| error_page(&e))?;
    Ok(users
        .iter()
        .map(|u| (u.id.clone(), u.username.clone()))
        .collect())
}

/// A random password the policy accepts, shown to the administrator once.
fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let bytes: [u8; ONE_TIME_PASSWORD_LEN] = rand::random();
    let body: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{body}-7q")
}

// ---------- users ----------

pub struct UserLine {
    pub id: String,
    pub username: String,
    pub email: String,
    pub profile: String,
    pub role: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "setup/security_users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserLine>,
    notice: Option<String>,
    errors: Fields,
    typed: Fields,
    profiles: Vec<Choice>,
    roles: Vec<Choice>,
    /// A password generated at creation, shown this once.
    one_time: Option<(String, String)>,
}

async fn users_page(
    s: &WebState,
    u: &WebUser,
    errors: Fields,
    typed: Fields,
    notice: Option<String>,
    one_time: Option<(String, String)>,
) -> Response {
    let rows = match s.platform.access.users(&u.caller.tenant_id).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let roles = match role_items(s, &u.caller.tenant_id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let role_names: HashMap<_, _> = roles.iter().cloned().collect();
    let profile_items: Vec<(String, String)> = PROFILES
        .iter()
        .map(|(v, l)| (v.to_string(), l.to_string()))
        .collect();
    html(&UsersPage {
        chrome: setup_chrome(s, u).await,
        users: rows
            .iter()
            .map(|r| UserLine {
                id: r.id.clone(),
                username: r.username.clone(),
                email: r.email.clone().unwrap_or_default(),
                profile: profile_label(&r.profile),
                role: r
                    .role_id
                    .as_ref()
                    .and_then(|id| role_names.get(id))
                    .map(|l| l.trim_start_matches("— ").to_string())
                    .unwrap_or_default(),
                active: r.is_active,
            })
            .collect(),
        notice,
        profiles: choices(
            &profile_items,
            typed.get("profile").map_or("standard", String::as_str),
        ),
        roles: choices(&roles, typed.get("role_id").map_or("", String::as_str)),
        errors,
        typed,
        one_time,
    })
}

async fn users(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    users_page(&s, &u, Fields::new(), Fields::new(), notice(&d), None).await
}

fn locale_input(f: &Posted) -> LocaleInput {
    LocaleInput {
        time_zone: Some(f.opt("time_zone")),
        locale: Some(f.opt("locale")),
        ..LocaleInput::default()
    }
}

fn check_locale(f: &Posted) -> Result<LocaleInput, MosaicError> {
    let input = locale_input(f);
    if let Some(Some(z)) = &input.time_zone {
        mosaic_runtime::zones::parse_zone("time_zone", z)?;
    }
    if let Some(Some(l)) = &input.locale {
        mosaic_runtime::zones::check_locale("locale", l)?;
    }
    Ok(input)
}

async fn create_user(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let generated = f.get("password").is_empty();
    let password = if generated {
        one_time_password()
    } else {
        f.get("password")
    };
    let input = NewUserInput {
        username: f.get("username"),
        password: password.clone(),
        email: f.opt("email"),
        profile: f.opt("profile"),
        role_id: f.opt("role_id"),
    };
    let mut typed = f.values.clone();
    typed.remove("password");
    let result = async {
        let locale = check_locale(&f)?;
        let created = s.platform.access.create_user(&actor(&u), input).await?;
        if generated {
            // A generated password is one-time: the user sets their own
            // at the first sign-in.
            let reset = mosaic_access::accounts::PasswordResetInput {
                password: password.clone(),
            };
            s.platform
                .access
                .reset_password(&actor(&u), &created.id, &reset)
                .await?;
        }
        s.platform
            .set_locale_settings(
                &u.caller.user_id,
                &u.caller.tenant_id,
                Some(&created.id),
                &locale,
            )
            .await?;
        Ok::<_, MosaicError>(created)
    }
    .await;
    match result {
        Ok(created) => {
            // A generated password is shown once, on this answer only
            // (never in a URL, never stored in the clear).
            let one_time = generated.then(|| (created.username.clone(), password));
            users_page(
                &s,
                &u,
                Fields::new(),
                Fields::new(),
                Some(format!("User {} created.", created.username)),
                one_time,
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(st) => {
                let (field, msg) = placed(&e, "username");
                let errors = Fields::from([(field, msg)]);
                with_status(users_page(&s, &u, errors, typed, None, None).await, st)
            }
            None => error_page(&e),
        },
    }
}

pub struct SetChoice {
    pub id: String,
    pub label: String,
    pub assigned: bool,
}

#[derive(Template)]
#[template(path = "setup/security_user.html")]
struct UserPage {
    chrome: Chrome,
    id: String,
    username: String,
    email: String,
    active: bool,
    time_zone: String,
    locale: String,
    profiles: Vec<Choice>,
    roles: Vec<Choice>,
    sets: Vec<SetChoice>,
    errors: Fields,
    notice: Option<String>,
    one_time: Option<String>,
}

async fn user_view(
    s: &WebState,
    u: &WebUser,
    id: &str,
    typed: Option<&Posted>,
    errors: Fields,
    notice: Option<String>,
    one_time: Option<String>,
) -> Response {
    let t = &u.caller.tenant_id;
    let row = match s.platform.access.user(t, id).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let settings = match s.platform.locale_settings(t, Some(&row.id)).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let roles = match role_items(s, t).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let sets = match s.platform.access.permission_sets(t).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let profile_items: Vec<(String, String)> = PROFILES
        .iter()
        .map(|(v, l)| (v.to_string(), l.to_string()))
        .collect();
    let pick = |k: &str, cur: String| typed.map(|f| f.get(k)).unwrap_or(cur);
    html(&UserPage {
        chrome: setup_chrome(s, u).await,
        id: row.id.clone(),
        username: row.username.clone(),
        email: pick("email", row.email.clone().unwrap_or_default()),
        active: typed.map_or(row.is_active, |f| f.on("active")),
        time_zone: pick("time_zone", settings.time_zone.clone().unwrap_or_default()),
        locale: pick("locale", settings.locale.clone().unwrap_or_default()),
        profiles: choices(&profile_items, &pick("profile", row.profile.clone())),
        roles: choices(
            &roles,
            &pick("role_id", row.role_id.clone().unwrap_or_default()),
        ),
        sets: sets
            .iter()
            .map(|p| SetChoice {
                id: p.id.clone(),
                label: p.label.clone(),
                assigned: p.assignees.contains(&row.id),
            })
            .collect(),
        errors,
        notice,
        one_time,
    })
}

async fn user_page(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    user_view(&s, &u, &id, None, Fields::new(), notice(&d), None).await
}

async fn update_user(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let input = UserPatchInput {
        active: Some(f.on("active")),
        role_id: Some(f.opt("role_id")),
        profile: f.opt("profile"),
        email: Some(f.opt("email")),
    };
    let result = async {
        let locale = check_locale(&f)?;
        let row = s
            .platform
            .access
            .update_user(&actor(&u), &id, input)
            .await?;
        s.platform
            .set_locale_settings(
                &u.caller.user_id,
                &u.caller.tenant_id,
                Some(&row.id),
                &locale,
            )
            .await?;
        Ok::<_, MosaicError>(row)
    }
    .await;
    match result {
        Ok(row) => back(&format!("/setup/users/{}?done=saved", row.id)),
        Err(e) => match form_error(&e) {
            Some(st) => {
                let (field, msg) = placed(&e, "email");
                let errors = Fields::from([(field, msg)]);
                with_status(
                    user_view(&s, &u, &id, Some(&f), errors, None, None).await,
                    st,
                )
            }
            None => error_page(&e),
        },
    }
}

async fn reset_password(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let password = one_time_password();
    let input = mosaic_access::accounts::PasswordResetInput {
        password: password.clone(),
    };
    match s
        .platform
        .access
        .reset_password(&actor(&u), &id, &input)
        .await
    {
        Ok(()) => {
            user_view(
                &s,
                &u,
                &id,
                None,
                Fields::new(),
                Some("The password was reset; every session of the user ended.".into()),
                Some(password),
            )
            .await
        }
        Err(e) => error_page(&e),
    }
}

async fn user_sets(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let t = &u.caller.tenant_id;
    let row = match s.platform.access.user(t, &id).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let sets = match s.platform.access.permission_sets(t).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let wanted: HashSet<String> = f.many("set").into_iter().collect();
    for p in &sets {
        let has = p.assignees.contains(&row.id);
        let want = wanted.contains(&p.id);
        let r = if want && !has {
            s.platform
                .access
                .assign(
                    &actor(&u),
                    &p.id,
                    AssignmentInput {
                        user_id: row.id.clone(),
                    },
                )
                .await
        } else if has && !want {
            s.platform.access.unassign(&actor(&u), &p.id, &row.id).await
        } else {
            Ok(())
        };
        if let Err(e) = r {
            return error_page(&e);
        }
    }
    back(&format!("/setup/users/{}?done=assigned", row.id))
}

// ---------- roles ----------

pub struct RoleLine {
    pub id: String,
    pub name: String,
    /// The label (as typed, after a failed rename).
    pub label: String,
    pub depth: usize,
    pub users: usize,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "setup/security_roles.html")]
struct RolesPage {
    chrome: Chrome,
    roles: Vec<RoleLine>,
    parents: Vec<Choice>,
    errors: Fields,
    typed: Fields,
    notice: Option<String>,
}

async fn roles_page(
    s: &WebState,
    u: &WebUser,
    errors: Fields,
    typed: Fields,
    rename_error: Option<(String, String, String)>,
    notice: Option<String>,
) -> Response {
    let t = &u.caller.tenant_id;
    let mut rows = match s.platform.access.roles(t).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    let users = s.platform.access.users(t).await.unwrap_or_default();
    let items = match role_items(s, t).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    html(&RolesPage {
        chrome: setup_chrome(s, u).await,
        roles: rows
            .iter()
            .map(|r| {
                let failed = rename_error.as_ref().filter(|e| e.0 == r.id);
                RoleLine {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    label: failed
                        .map(|e| e.1.clone())
                        .filter(|l| !l.is_empty())
                        .unwrap_or_else(|| r.label.clone()),
                    depth: (r.depth - 1).max(0) as usize,
                    users: users
                        .iter()
                        .filter(|x| x.role_id.as_deref() == Some(&r.id))
                        .count(),
                    error: failed.map(|e| e.2.clone()),
                }
            })
            .collect(),
        parents: choices(
            &items,
            typed.get("parent_role_id").map_or("", String::as_str),
        ),
        errors,
        typed,
        notice,
    })
}

async fn roles(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    roles_page(&s, &u, Fields::new(), Fields::new(), None, notice(&d)).await
}

async fn create_role(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let input = NewRoleInput {
        name: f.get("name"),
        label: f.opt("label"),
        parent_role_id: f.opt("parent_role_id"),
    };
    match s.platform.access.create_role(&actor(&u), input).await {
        Ok(_) => back("/setup/roles?done=created"),
        Err(e) => match form_error(&e) {
            Some(st) => {
                let (field, msg) = placed(&e, "name");
                let errors = Fields::from([(field, msg)]);
                with_status(
                    roles_page(&s, &u, errors, f.values.clone(), None, None).await,
                    st,
                )
            }
            None => error_page(&e),
        },
    }
}

async fn rename_role(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let input = RolePatchInput {
        label: Some(f.get("label")),
        ..RolePatchInput::default()
    };
    match s.platform.access.update_role(&actor(&u), &id, input).await {
        Ok(_) => back("/setup/roles?done=saved"),
        Err(e) => match form_error(&e) {
            Some(st) => with_status(
                roles_page(
                    &s,
                    &u,
                    Fields::new(),
                    Fields::new(),
                    Some((id.clone(), f.get("label"), e.message.clone())),
                    None,
                )
                .await,
                st,
            ),
            None => error_page(&e),
        },
    }
}

async fn delete_role(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match s.platform.access.delete_role(&actor(&u), &id).await {
        Ok(()) => back("/setup/roles?done=deleted"),
        Err(e) => match form_error(&e) {
            Some(st) => with_status(
                roles_page(
                    &s,
                    &u,
                    Fields::new(),
                    Fields::new(),
                    Some((id.clone(), String::new(), e.message.clone())),
                    None,
                )
                .await,
                st,
            ),
            None => error_page(&e),
        },
    }
}

// ---------- public groups ----------

pub struct GroupLine {
    pub id: String,
    pub name: String,
    pub label: String,
    pub members: usize,
}

#[derive(Template)]
#[template(path = "setup/security_groups.html")]
struct GroupsPage {
    chrome: Chrome,
    groups: Vec<GroupLine>,
    errors: Fields,
    typed: Fields,
    notice: Option<String>,
}

async fn groups_page(
    s: &WebState,
    u: &WebUser,
    errors: Fields,
    typed: Fields,
    notice: Option<String>,
) -> Response {
    let rows = match s.platform.access.groups(&u.caller.tenant_id).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    html(&GroupsPage {
        chrome: setup_chrome(s, u).await,
        groups: rows
            .iter()
            .map(|g| GroupLine {
                id: g.id.clone(),
                name: g.name.clone(),
                label: g.label.clone(),
                members: g.members.len(),
            })
            .collect(),
        errors,
        typed,
        notice,
    })
}

async fn groups(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    groups_page(&s, &u, Fields::new(), Fields::new(), notice(&d)).await
}

async fn create_group(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let input = NewGroupInput {
        name: f.get("name"),
        label: f.opt("label"),
        members: Vec::new(),
    };
    match s.platform.access.create_group(&actor(&u), input).await {
        Ok(g) => back(&format!("/setup/groups/{}?done=created", g.id)),
        Err(e) => match form_error(&e) {
            Some(st) => {
                let (field, msg) = placed(&e, "name");
                with_status(
                    groups_page(&s, &u, Fields::from([(field, msg)]), f.values.clone(), None).await,
                    st,
                )
            }
            None => error_page(&e),
        },
    }
}

pub struct MemberChoice {
    pub id: String,
    pub label: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "setup/security_group.html")]
struct GroupPage {
    chrome: Chrome,
    id: String,
    name: String,
    label: String,
    users: Vec<MemberChoice>,
    roles: Vec<MemberChoice>,
    subordinates: Vec<MemberChoice>,
    error: Option<String>,
    notice: Option<String>,
}

async fn group_view(
    s: &WebState,
    u: &WebUser,
    id: &str,
    typed: Option<&Posted>,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let t = &u.caller.tenant_id;
    let g = match s.platform.access.group(t, id).await {
        Ok(g) => g,
        Err(e) => return error_page(&e),
    };
    let users = match user_items(s, t).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let roles = match role_items(s, t).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let member = |kind: MemberKind, key: &str, id: &str| match typed {
        Some(f) => f.many(key).iter().any(|v| v == id),
        None => g.members.iter().any(|m| m.kind == kind && m.id == id),
    };
    let list = |items: &[(String, String)], kind: MemberKind, key: &str| {
        items
            .iter()
            .map(|(id, l)| MemberChoice {
                id: id.clone(),
                label: l.clone(),
                checked: member(kind, key, id),
            })
            .collect()
    };
    html(&GroupPage {
        chrome: setup_chrome(s, u).await,
        id: g.id.clone(),
        name: g.name.clone(),
        label: typed.map(|f| f.get("label")).unwrap_or(g.label.clone()),
        users: list(&users, MemberKind::User, "user"),
        roles: list(&roles, MemberKind::Role, "role"),
        subordinates: list(
            &roles,
            MemberKind::RoleAndSubordinates,
            "role_and_subordinates",
        ),
        error,
        notice,
    })
}

async fn group_page(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    group_view(&s, &u, &id, None, None, notice(&d)).await
}

async fn update_group(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut members = Vec::new();
    for v in f.many("user") {
        members.push(MemberInput {
            user_id: Some(v),
            ..MemberInput::default()
        });
    }
    for v in f.many("role") {
        members.push(MemberInput {
            role_id: Some(v),
            ..MemberInput::default()
        });
    }
    for v in f.many("role_and_subordinates") {
        members.push(MemberInput {
            role_and_subordinates_id: Some(v),
            ..MemberInput::default()
        });
    }
    let input = GroupPatchInput {
        label: Some(f.get("label")),
        members: Some(members),
    };
    match s.platform.access.update_group(&actor(&u), &id, input).await {
        Ok(g) => back(&format!("/setup/groups/{}?done=saved", g.id)),
        Err(e) => match form_error(&e) {
            Some(st) => with_status(
                group_view(&s, &u, &id, Some(&f), Some(e.message.clone()), None).await,
                st,
            ),
            None => error_page(&e),
        },
    }
}

async fn delete_group(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match s.platform.access.delete_group(&actor(&u), &id).await {
        Ok(()) => back("/setup/groups?done=deleted"),
        Err(e) => error_page(&e),
    }
}

// ---------- permission sets ----------

pub struct SetLine {
    pub id: String,
    pub name: String,
    pub label: String,
    pub assignees: usize,
    pub customize: bool,
}

#[derive(Template)]
#[template(path = "setup/security_permission_sets.html")]
struct SetsPage {
    chrome: Chrome,
    sets: Vec<SetLine>,
    errors: Fields,
    typed: Fields,
    notice: Option<String>,
}

async fn sets_page(
    s: &WebState,
    u: &WebUser,
    errors: Fields,
    typed: Fields,
    notice: Option<String>,
) -> Response {
    let rows = match s.platform.access.permission_sets(&u.caller.tenant_id).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    html(&SetsPage {
        chrome: setup_chrome(s, u).await,
        sets: rows
            .iter()
            .map(|p| SetLine {
                id: p.id.clone(),
                name: p.name.clone(),
                label: p.label.clone(),
                assignees: p.assignees.len(),
                customize: p.customize_application,
            })
            .collect(),
        errors,
        typed,
        notice,
    })
}

async fn permission_sets(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    sets_page(&s, &u, Fields::new(), Fields::new(), notice(&d)).await
}

async fn create_permission_set(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let input = NewPermissionSetInput {
        name: f.get("name"),
        label: f.opt("label"),
        description: f.opt("description"),
        object_permissions: Vec::new(),
        field_permissions: Vec::new(),
        customize_application: false,
    };
    match s.platform.create_permission_set(&u.caller, input).await {
        Ok(p) => back(&format!("/setup/permission-sets/{}?done=created", p.id)),
        Err(e) => match form_error(&e) {
            Some(st) => {
                let (field, msg) = placed(&e, "name");
                with_status(
                    sets_page(&s, &u, Fields::from([(field, msg)]), f.values.clone(), None).await,
                    st,
                )
            }
            None => error_page(&e),
        },
    }
}

/// The object × action grid's actions: (form key, column label).
pub const ACTIONS: [(&str, &str); 6] = [
    ("read", "Read"),
    ("create", "Create"),
    ("edit", "Edit"),
    ("delete", "Delete"),
    ("view_all", "View all"),
    ("modify_all", "Modify all"),
];

pub struct Cell {
    pub name: String,
    pub label: String,
    pub checked: bool,
}

pub struct ObjectGridRow {
    pub api_name: String,
    pub label: String,
    pub cells: Vec<Cell>,
}

pub struct FieldGridRow {
    pub api_name: String,
    pub label: String,
    pub read: Cell,
    pub edit: Cell,
}

pub struct FieldGrid {
    pub object: String,
    pub label: String,
    pub rows: Vec<FieldGridRow>,
}

#[derive(Template)]
#[template(path = "setup/security_permission_set.html")]
struct SetPage {
    chrome: Chrome,
    id: String,
    name: String,
    label: String,
    description: String,
    customize: bool,
    actions: Vec<&'static str>,
    objects: Vec<ObjectGridRow>,
    fields: Vec<FieldGrid>,
    assignees: Vec<String>,
    error: Option<String>,
    notice: Option<String>,
}

async fn set_view(
    s: &WebState,
    u: &WebUser,
    id: &str,
    typed: Option<&Posted>,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let t = &u.caller.tenant_id;
    let set = match s.platform.access.permission_set(t, id).await {
        Ok(p) => p,
        Err(e) => return error_page(&e),
    };
    let objects = match s.platform.meta.objects(t).await {
        Ok(o) => o,
        Err(e) => return error_page(&e),
    };
    let users: HashMap<String, String> = match user_items(s, t).await {
        Ok(r) => r.into_iter().collect(),
        Err(r) => return r,
    };
    let mut grid = Vec::new();
    let mut fgrids = Vec::new();
    for o in objects.iter() {
        let perm = set
            .object_permissions
            .iter()
            .find(|p| p.object_id == o.id())
            .map(|p| p.flags)
            .unwrap_or_default();
        let stored = |k: &str| match k {
            "read" => perm.read,
            "create" => perm.create,
            "edit" => perm.edit,
            "delete" => perm.delete,
            "view_all" => perm.view_all,
            _ => perm.modify_all,
        };
        let cell = |k: &str, l: &str| {
            let name = format!("o.{}.{k}", o.api_name());
            Cell {
                checked: typed.map_or(stored(k), |f| f.on(&name)),
                label: format!("{l} {}", o.def.label),
                name,
            }
        };
        grid.push(ObjectGridRow {
            api_name: o.api_name().to_string(),
            label: o.def.label.clone(),
            cells: ACTIONS.iter().map(|(k, l)| cell(k, l)).collect(),
        });
        let mut rows = Vec::new();
        for fd in o.def.fields.iter() {
            let fp = set
                .field_permissions
                .iter()
                .find(|p| p.object_id == o.id() && p.field_id == fd.id);
            let fcell = |k: &str, l: &str, cur: bool| {
                let name = format!("f.{}.{}.{k}", o.api_name(), fd.api_name);
                Cell {
                    checked: typed.map_or(cur, |f| f.on(&name)),
                    label: format!("{l} {}", fd.label),
                    name,
                }
            };
            rows.push(FieldGridRow {
                api_name: fd.api_name.clone(),
                label: fd.label.clone(),
                read: fcell("read", "Read", fp.is_some_and(|p| p.read)),
                edit: fcell("edit", "Edit", fp.is_some_and(|p| p.edit)),
            });
        }
        if !rows.is_empty() {
            fgrids.push(FieldGrid {
                object: o.api_name().to_string(),
                label: o.def.label.clone(),
                rows,
            });
        }
    }
    let mut assignees: Vec<String> = set
        .assignees
        .iter()
        .filter_map(|a| users.get(a).cloned())
        .collect();
    assignees.sort();
    html(&SetPage {
        chrome: setup_chrome(s, u).await,
        id: set.id.clone(),
        name: set.name.clone(),
        label: typed.map(|f| f.get("label")).unwrap_or(set.label.clone()),
        description: typed
            .map(|f| f.get("description"))
            .unwrap_or(set.description.clone().unwrap_or_default()),
        customize: typed.map_or(set.customize_application, |f| f.on("customize_application")),
        actions: ACTIONS.iter().map(|(_, l)| *l).collect(),
        objects: grid,
        fields: fgrids,
        assignees,
        error,
        notice,
    })
}

async fn permission_set_page(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    set_view(&s, &u, &id, None, None, notice(&d)).await
}

async fn update_permission_set(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let objects = match s.platform.meta.objects(&u.caller.tenant_id).await {
        Ok(o) => o,
        Err(e) => return error_page(&e),
    };
    let mut ops = Vec::new();
    let mut fps = Vec::new();
    for o in objects.iter() {
        let on = |k: &str| f.on(&format!("o.{}.{k}", o.api_name()));
        let p = ObjectPermissionInput {
            object: o.api_name().to_string(),
            read: on("read"),
            create: on("create"),
            edit: on("edit"),
            delete: on("delete"),
            view_all: on("view_all"),
            modify_all: on("modify_all"),
        };
        if p.read || p.create || p.edit || p.delete || p.view_all || p.modify_all {
            ops.push(p);
        }
        for fd in o.def.fields.iter() {
            let on = |k: &str| f.on(&format!("f.{}.{}.{k}", o.api_name(), fd.api_name));
            let (read, edit) = (on("read"), on("edit"));
            if read || edit {
                fps.push(FieldPermissionInput {
                    object: o.api_name().to_string(),
                    field: fd.api_name.clone(),
                    read,
                    edit,
                });
            }
        }
    }
    let input = PermissionSetPatchInput {
        label: Some(f.get("label")),
        description: Some(f.opt("description")),
        object_permissions: Some(ops),
        field_permissions: Some(fps),
        customize_application: Some(f.on("customize_application")),
    };
    match s
        .platform
        .update_permission_set(&u.caller, &id, input)
        .await
    {
        Ok(p) => back(&format!("/setup/permission-sets/{}?done=saved", p.id)),
        Err(e) => match form_error(&e) {
            Some(st) => with_status(
                set_view(&s, &u, &id, Some(&f), Some(e.message.clone()), None).await,
                st,
            ),
            None => error_page(&e),
        },
    }
}

async fn delete_permission_set(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match s
        .platform
        .access
        .delete_permission_set(&actor(&u), &id)
        .await
    {
        Ok(()) => back("/setup/permission-sets?done=deleted"),
        Err(e) => error_page(&e),
    }
}

// ---------- sharing settings ----------

const MODELS: [(&str, &str); 4] = [
    ("private", "Private"),
    ("public_read", "Public Read Only"),
    ("public_read_write", "Public Read/Write"),
    ("controlled_by_parent", "Controlled by Parent"),
];

fn model_name(m: mosaic_meta::model::SharingModel) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub struct DefaultRow {
    pub api_name: String,
    pub label: String,
    pub version: i64,
    pub models: Vec<Choice>,
    pub error: Option<String>,
}

pub struct RuleLine {
    pub id: String,
    pub object: String,
    pub name: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub access: String,
}

#[derive(Template)]
#[template(path = "setup/security_sharing.html")]
struct SharingPage {
    chrome: Chrome,
    defaults: Vec<DefaultRow>,
    rules: Vec<RuleLine>,
    objects: Vec<Choice>,
    roles: Vec<Choice>,
    targets: Vec<Choice>,
    operators: Vec<Choice>,
    criteria: bool,
    access_level: String,
    errors: Fields,
    typed: Fields,
    notice: Option<String>,
}

/// Criterion operators of the criteria-based rule form (value, label).
const OPERATORS: [(&str, &str); 6] = [
    ("equals", "equals"),
    ("not_equals", "does not equal"),
    ("greater_than", "greater than"),
    ("less_than", "less than"),
    ("contains", "contains"),
    ("starts_with", "starts with"),
];

async fn sharing_page(
    s: &WebState,
    u: &WebUser,
    default_errors: HashMap<String, String>,
    errors: Fields,
    typed: Fields,
    notice: Option<String>,
) -> Response {
    let t = &u.caller.tenant_id;
    let objects = match s.platform.meta.objects(t).await {
        Ok(o) => o,
        Err(e) => return error_page(&e),
    };
    let rules = match s.platform.sharing_rules_json(&u.caller).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let roles = match role_items(s, t).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let groups = s.platform.access.groups(t).await.unwrap_or_default();
    let names: HashMap<String, String> = roles
        .iter()
        .map(|(id, l)| (id.clone(), l.trim_start_matches("— ").to_string()))
        .chain(groups.iter().map(|g| (g.id.clone(), g.label.clone())))
        .collect();
    let name_of = |v: &Value| -> String {
        let Some(m) = v.as_object() else {
            return String::new();
        };
        m.iter()
            .map(|(k, id)| {
                let id = id.as_str().unwrap_or_default();
                let who = names.get(id).cloned().unwrap_or_else(|| id.to_string());
                match k.as_str() {
                    "role_id" => format!("Role: {who}"),
                    "role_and_subordinates_id" => format!("Role and subordinates: {who}"),
                    "group_id" => format!("Group: {who}"),
                    _ => who,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rule_lines = rules
        .iter()
        .map(|r| {
            let from = if let Some(c) = r.get("criteria").filter(|c| !c.is_null()) {
                c.to_string()
            } else {
                let mut m = serde_json::Map::new();
                for k in ["share_from_role_id", "share_from_role_and_subordinates_id"] {
                    if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
                        m.insert(k.trim_start_matches("share_from_").to_string(), v.clone());
                    }
                }
                format!("Owned by {}", name_of(&Value::Object(m)))
            };
            RuleLine {
                id: r["id"].as_str().unwrap_or_default().to_string(),
                object: r["object"].as_str().unwrap_or_default().to_string(),
                name: r["name"].as_str().unwrap_or_default().to_string(),
                kind: r["rule_type"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('_', " "),
                from,
                to: name_of(&r["share_to"]),
                access: r["access_level"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    let model_items: Vec<(String, String)> = MODELS
        .iter()
        .map(|(v, l)| (v.to_string(), l.to_string()))
        .collect();
    let object_items: Vec<(String, String)> = objects
        .iter()
        .map(|o| (o.api_name().to_string(), o.def.label.clone()))
        .collect();
    let mut targets: Vec<(String, String)> = roles
        .iter()
        .map(|(id, l)| {
            (
                format!("role_id:{id}"),
                format!("Role: {}", l.trim_start_matches("— ")),
            )
        })
        .collect();
    targets.extend(roles.iter().map(|(id, l)| {
        (
            format!("role_and_subordinates_id:{id}"),
            format!("Role and subordinates: {}", l.trim_start_matches("— ")),
        )
    }));
    targets.extend(
        groups
            .iter()
            .map(|g| (format!("group_id:{}", g.id), format!("Group: {}", g.label))),
    );
    let tget = |k: &str| typed.get(k).map_or("", String::as_str).to_string();
    html(&SharingPage {
        chrome: setup_chrome(s, u).await,
        defaults: objects
            .iter()
            .map(|o| DefaultRow {
                api_name: o.api_name().to_string(),
                label: o.def.label.clone(),
                version: o.def.version,
                models: choices(&model_items, &model_name(o.def.sharing_model)),
                error: default_errors.get(o.api_name()).cloned(),
            })
            .collect(),
        rules: rule_lines,
        objects: choices(&object_items, &tget("object")),
        roles: choices(&roles, &tget("from")),
        targets: choices(&targets, &tget("to")),
        operators: choices(
            &OPERATORS
                .iter()
                .map(|(v, l)| (v.to_string(), l.to_string()))
                .collect::<Vec<_>>(),
            &tget("criteria_operator"),
        ),
        criteria: tget("rule_type") == "criteria_based",
        access_level: tget("access_level"),
        errors,
        typed,
        notice,
    })
}

async fn sharing(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    sharing_page(
        &s,
        &u,
        HashMap::new(),
        Fields::new(),
        Fields::new(),
        notice(&d),
    )
    .await
}

/// An audit entry of a Setup change the admin API audits in its handler.
async fn audit(
    s: &WebState,
    u: &WebUser,
    action: &str,
    target_type: &str,
    id: &str,
    detail: Value,
) {
    let entry = AuditEntry {
        tenant_id: u.caller.tenant_id.clone(),
        actor_id: u.caller.user_id.clone(),
        action: action.to_string(),
        target_type: target_type.to_string(),
        target_id: id.to_string(),
        detail: detail.to_string(),
        at: chrono::Utc::now(),
    };
    if let Err(e) = s.platform.access.store().append_audit(entry).await {
        tracing::warn!(error = %e.message, "audit entry for a sharing change was not written");
    }
}

/// `POST /setup/sharing/defaults`: `model.<Object>` and `version.<Object>`
/// for every object; only changed ones are saved (each with its version,
/// so a change made meanwhile is refused, never overwritten).
async fn sharing_defaults(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let t = &u.caller.tenant_id;
    let objects = match s.platform.meta.objects(t).await {
        Ok(o) => o,
        Err(e) => return error_page(&e),
    };
    let mut errors = HashMap::new();
    let mut status = StatusCode::BAD_REQUEST;
    for o in objects.iter() {
        let Some(want) = f.opt(&format!("model.{}", o.api_name())) else {
            continue;
        };
        if want == model_name(o.def.sharing_model) {
            continue;
        }
        let model = match serde_json::from_value(json!(want)) {
            Ok(m) => m,
            Err(_) => {
                errors.insert(o.api_name().to_string(), "Choose a sharing model.".into());
                continue;
            }
        };
        let version = f.get(&format!("version.{}", o.api_name())).parse().ok();
        let input = mosaic_meta::validate::ObjectInput {
            sharing_model: Some(model),
            version,
            ..Default::default()
        };
        match s.platform.meta.update_object(t, o.api_name(), input).await {
            Ok(_) => {
                s.platform.sharing_changed(t);
                audit(
                    &s,
                    &u,
                    "metadata.update",
                    "object",
                    o.api_name(),
                    json!({"sharing_model": want, "via": "setup"}),
                )
                .await;
            }
            Err(e) => {
                if e.code == ErrorCode::CONFLICT {
                    status = StatusCode::CONFLICT;
                    errors.insert(
                        o.api_name().to_string(),
                        "Changed by someone else since you opened this page: reload to see their change."
                            .into(),
                    );
                } else if form_error(&e).is_some() {
                    errors.insert(o.api_name().to_string(), e.message);
                } else {
                    return error_page(&e);
                }
            }
        }
    }
    if errors.is_empty() {
        back("/setup/sharing?done=saved")
    } else {
        with_status(
            sharing_page(&s, &u, errors, Fields::new(), Fields::new(), None).await,
            status,
        )
    }
}

/// A principal from a `kind:id` choice.
fn principal(v: &str) -> Option<Value> {
    let (k, id) = v.split_once(':')?;
    ["user_id", "role_id", "role_and_subordinates_id", "group_id"]
        .contains(&k)
        .then(|| json!({ k: id }))
}

async fn create_sharing_rule(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let criteria_based = f.get("rule_type") == "criteria_based";
    let mut body = json!({
        "object": f.get("object"),
        "name": f.get("name"),
        "rule_type": if criteria_based { "criteria_based" } else { "owner_based" },
        "access_level": f.get("access_level"),
    });
    if criteria_based {
        body["criteria"] = json!({"conditions": [{
            "field": f.get("criteria_field"),
            "operator": f.get("criteria_operator"),
            "value": f.get("criteria_value"),
        }]});
    } else if let Some(r) = f.opt("from") {
        let key = if f.on("from_subordinates") {
            "share_from_role_and_subordinates_id"
        } else {
            "share_from_role_id"
        };
        body[key] = json!(r);
    }
    if let Some(p) = principal(&f.get("to")) {
        body["share_to"] = p;
    }
    let input = match serde_json::from_value::<mosaic_meta::sharing::SharingRuleInput>(body) {
        Ok(i) => i,
        Err(e) => {
            let errors = Fields::from([("access_level".to_string(), e.to_string())]);
            return with_status(
                sharing_page(&s, &u, HashMap::new(), errors, f.values.clone(), None).await,
                StatusCode::BAD_REQUEST,
            );
        }
    };
    match s.platform.add_sharing_rule(&u.caller, input).await {
        Ok(rule) => {
            let id = rule["id"].as_str().unwrap_or_default().to_string();
            audit(&s, &u, "sharing_rule.create", "sharing_rule", &id, rule).await;
            back("/setup/sharing?done=created")
        }
        Err(e) => match form_error(&e) {
            Some(st) => {
                let (mut field, msg) = placed(&e, "name");
                field = match field.as_str() {
                    "criteria" => "criteria_field".into(),
                    "share_to" => "to".into(),
                    "share_from_role_id" | "share_from_role_and_subordinates_id" => "from".into(),
                    _ => field,
                };
                with_status(
                    sharing_page(
                        &s,
                        &u,
                        HashMap::new(),
                        Fields::from([(field, msg)]),
                        f.values.clone(),
                        None,
                    )
                    .await,
                    st,
                )
            }
            None => error_page(&e),
        },
    }
}

async fn delete_sharing_rule(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match s.platform.delete_sharing_rule(&u.caller, &id).await {
        Ok(()) => {
            audit(
                &s,
                &u,
                "sharing_rule.delete",
                "sharing_rule",
                &id,
                json!({}),
            )
            .await;
            back("/setup/sharing?done=deleted")
        }
        Err(e) => error_page(&e),
    }
}

// ---------- manual shares of a record ----------

pub struct ShareLine {
    pub id: String,
    pub who: String,
    pub access: String,
}

#[derive(Template)]
#[template(path = "setup/security_shares.html")]
struct SharesPage {
    chrome: Chrome,
    object: String,
    record_id: String,
    shares: Vec<ShareLine>,
    targets: Vec<Choice>,
    error: Option<String>,
    typed_access: String,
    notice: Option<String>,
}

/// The record's owner or an administrator: the runtime decides (it
/// refuses everyone else), so this page needs a signed-in user only.
async fn sharer(s: &WebState, headers: &HeaderMap, uri: &Uri) -> Result<WebUser, Response> {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    crate::session::require_user(s, headers, &path).await
}

async fn shares_view(
    s: &WebState,
    u: &WebUser,
    object: &str,
    id: &str,
    typed: Option<&Posted>,
    error: Option<String>,
    notice: Option<String>,
) -> Response {
    let list = match s.platform.list_shares(&u.caller, object, id).await {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let t = &u.caller.tenant_id;
    // Principals by id: users, roles and groups of the tenant (the
    // runtime allowed this user to share the record).
    let users = s.platform.access.users(t).await.unwrap_or_default();
    let roles = s.platform.access.roles(t).await.unwrap_or_default();
    let groups = s.platform.access.groups(t).await.unwrap_or_default();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut targets = Vec::new();
    for x in &users {
        names.insert(x.id.clone(), format!("User: {}", x.username));
        targets.push((format!("user_id:{}", x.id), format!("User: {}", x.username)));
    }
    for r in &roles {
        names.insert(r.id.clone(), format!("Role: {}", r.label));
        targets.push((format!("role_id:{}", r.id), format!("Role: {}", r.label)));
    }
    for g in &groups {
        names.insert(g.id.clone(), format!("Group: {}", g.label));
        targets.push((format!("group_id:{}", g.id), format!("Group: {}", g.label)));
    }
    let shares = list
        .iter()
        .map(|v| {
            let who = ["user_id", "role_id", "role_and_subordinates_id", "group_id"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str))
                .map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string()))
                .unwrap_or_default();
            ShareLine {
                id: v["id"].as_str().unwrap_or_default().to_string(),
                who,
                access: v["access_level"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    let sel = typed.map(|f| f.get("to")).unwrap_or_default();
    html(&SharesPage {
        chrome: setup_chrome(s, u).await,
        object: object.to_string(),
        record_id: id.to_string(),
        shares,
        targets: choices(&targets, &sel),
        error,
        typed_access: typed.map(|f| f.get("access_level")).unwrap_or_default(),
        notice,
    })
}

async fn shares(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, id)): Path<(String, String)>,
    Query(d): Query<Done>,
) -> Response {
    let u = match sharer(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    shares_view(&s, &u, &object, &id, None, None, notice(&d)).await
}

async fn grant_share(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, id)): Path<(String, String)>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match sharer(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = u.check_csrf(f.values.get("_csrf").map(String::as_str)) {
        return r;
    }
    let mut body = match principal(&f.get("to")) {
        Some(Value::Object(m)) => m,
        _ => {
            return with_status(
                shares_view(
                    &s,
                    &u,
                    &object,
                    &id,
                    Some(&f),
                    Some("Choose whom to share with.".into()),
                    None,
                )
                .await,
                StatusCode::BAD_REQUEST,
            )
        }
    };
    body.insert("access_level".into(), json!(f.get("access_level")));
    match s.platform.grant_share(&u.caller, &object, &id, &body).await {
        Ok(share_id) => {
            audit(
                &s,
                &u,
                "share.grant",
                "record",
                &id,
                json!({"share_id": share_id, "share": body}),
            )
            .await;
            back(&format!("/setup/shares/{object}/{id}?done=saved"))
        }
        Err(e) => match form_error(&e) {
            Some(st) => with_status(
                shares_view(
                    &s,
                    &u,
                    &object,
                    &id,
                    Some(&f),
                    Some(e.message.clone()),
                    None,
                )
                .await,
                st,
            ),
            None => error_page(&e),
        },
    }
}

async fn revoke_share(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, id, share)): Path<(String, String, String)>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match sharer(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = u.check_csrf(f.values.get("_csrf").map(String::as_str)) {
        return r;
    }
    match s
        .platform
        .revoke_share(&u.caller, &object, &id, &share)
        .await
    {
        Ok(()) => {
            audit(
                &s,
                &u,
                "share.revoke",
                "record",
                &id,
                json!({"share_id": share}),
            )
            .await;
            back(&format!("/setup/shares/{object}/{id}?done=deleted"))
        }
        Err(e) => error_page(&e),
    }
}

// ---------- connected apps ----------

pub struct AppLine {
    pub id: String,
    pub name: String,
    pub client_id: String,
    pub run_as: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "setup/security_connected_apps.html")]
struct AppsPage {
    chrome: Chrome,
    apps: Vec<AppLine>,
    users: Vec<Choice>,
    errors: Fields,
    typed: Fields,
    /// At creation only: (name, client id, client secret).
    created: Option<(String, String, String)>,
    notice: Option<String>,
}

async fn apps_page(
    s: &WebState,
    u: &WebUser,
    errors: Fields,
    typed: Fields,
    created: Option<(String, String, String)>,
    notice: Option<String>,
) -> Response {
    let t = &u.caller.tenant_id;
    let rows = match s.platform.access.connected_apps(t).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let users = match user_items(s, t).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let names: HashMap<_, _> = users.iter().cloned().collect();
    html(&AppsPage {
        chrome: setup_chrome(s, u).await,
        apps: rows
            .iter()
            .map(|a| AppLine {
                id: a.id.clone(),
                name: a.name.clone(),
                client_id: a.client_id.clone(),
                run_as: names.get(&a.run_as_user_id).cloned().unwrap_or_default(),
                created: a.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            })
            .collect(),
        users: choices(
            &users,
            typed.get("run_as_user_id").map_or("", String::as_str),
        ),
        errors,
        typed,
        created,
        notice,
    })
}

async fn connected_apps(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(d): Query<Done>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    apps_page(&s, &u, Fields::new(), Fields::new(), None, notice(&d)).await
}

async fn create_connected_app(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let input = NewConnectedAppInput {
        name: f.get("name"),
        run_as_user_id: f.get("run_as_user_id"),
    };
    match s
        .platform
        .access
        .create_connected_app(&actor(&u), input)
        .await
    {
        // The secret is on this answer only: it is stored hashed.
        Ok(a) => {
            apps_page(
                &s,
                &u,
                Fields::new(),
                Fields::new(),
                Some((f.get("name"), a.client_id, a.client_secret)),
                None,
            )
            .await
        }
        Err(e) => match form_error(&e) {
            Some(st) => {
                let (field, msg) = placed(&e, "name");
                with_status(
                    apps_page(
                        &s,
                        &u,
                        Fields::from([(field, msg)]),
                        f.values.clone(),
                        None,
                        None,
                    )
                    .await,
                    st,
                )
            }
            None => error_page(&e),
        },
    }
}

async fn delete_connected_app(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(all): Form<Vec<(String, String)>>,
) -> Response {
    let f = Posted::new(all);
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match s
        .platform
        .access
        .delete_connected_app(&actor(&u), &id)
        .await
    {
        Ok(()) => back("/setup/connected-apps?done=deleted"),
        Err(e) => error_page(&e),
    }
}

// ---------- audit log ----------

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

pub struct AuditLine {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "setup/security_audit.html")]
struct AuditPage {
    chrome: Chrome,
    entries: Vec<AuditLine>,
    users: Vec<Choice>,
    action: String,
    object: String,
    from: String,
    to: String,
    errors: Fields,
    next_href: Option<String>,
}

fn parse_day(field: &str, v: &str) -> Result<Option<chrono::NaiveDate>, (String, String)> {
    if v.is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| (field.to_string(), "A date such as 2026-01-31.".to_string()))
}

/// `GET /setup/audit-log?actor=&action=&object=&from=&to=&before=`:
/// newest first, [`AUDIT_PAGE`] entries a page. `object` is the target
/// (an object's api name or a record, user, set… id); `from`/`to` are
/// days (UTC), both included.
async fn audit_log(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<AuditQuery>,
) -> Response {
    let u = match admin(&s, &headers, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let t = &u.caller.tenant_id;
    let clip = |v: &str| v.trim().chars().take(MAX_FILTER_LEN).collect::<String>();
    let (actor_f, action, object) = (clip(&q.actor), clip(&q.action), clip(&q.object));
    let mut errors = Fields::new();
    let from = parse_day("from", q.from.trim()).unwrap_or_else(|(f, m)| {
        errors.insert(f, m);
        None
    });
    let to = parse_day("to", q.to.trim()).unwrap_or_else(|(f, m)| {
        errors.insert(f, m);
        None
    });
    if let (Some(a), Some(b)) = (from, to) {
        if a > b {
            errors.insert("to".into(), "The end comes before the start.".into());
        }
    }
    let before = match q.before.trim() {
        "" => None,
        v => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.insert("before".into(), "Not a page of this log.".into());
                None
            }
        },
    };
    let users = match user_items(&s, t).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let names: HashMap<_, _> = users.iter().cloned().collect();
    let mut entries = Vec::new();
    let mut next_href = None;
    if errors.is_empty() {
        // The store filters by action, target, start and page; actor and
        // end day are applied to what it returns, reading on until a
        // page is full or the log ends (bounded by MAX_AUDIT_SCAN pages).
        let since = from
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc());
        let until = to
            .and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc());
        let mut cursor = before;
        let mut last_seen = None;
        'scan: for _ in 0..MAX_AUDIT_SCAN {
            let rows = match s
                .platform
                .access
                .audit(
                    t,
                    AuditFilter {
                        action: Some(action.clone()).filter(|a| !a.is_empty()),
                        target_id: Some(object.clone()).filter(|a| !a.is_empty()),
                        since,
                        before_seq: cursor,
                        limit: mosaic_access::admin::MAX_AUDIT_PAGE,
                    },
                )
                .await
            {
                Ok(r) => r,
                Err(e) => return error_page(&e),
            };
            let full = rows.len() == mosaic_access::admin::MAX_AUDIT_PAGE;
            for r in rows {
                cursor = Some(r.seq);
                if until.is_some_and(|u| r.entry.at >= u)
                    || (!actor_f.is_empty() && r.entry.actor_id != actor_f)
                {
                    continue;
                }
                if entries.len() == AUDIT_PAGE {
                    next_href = last_seen;
                    break 'scan;
                }
                last_seen = Some(r.seq);
                entries.push(AuditLine {
                    at: r.entry.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    actor: names
                        .get(&r.entry.actor_id)
                        .cloned()
                        .unwrap_or(r.entry.actor_id.clone()),
                    action: r.entry.action.clone(),
                    target: format!("{} {}", r.entry.target_type, r.entry.target_id),
                    detail: r.entry.detail.chars().take(300).collect(),
                });
            }
            if !full {
                break;
            }
        }
    }
    let next_href = next_href.map(|seq: i64| {
        let p = [
            ("actor", actor_f.as_str()),
            ("action", &action),
            ("object", &object),
            ("from", q.from.trim()),
            ("to", q.to.trim()),
            ("before", &seq.to_string()),
        ];
        let kept: Vec<_> = p.iter().filter(|(_, v)| !v.is_empty()).collect();
        format!(
            "/setup/audit-log?{}",
            serde_urlencoded::to_string(kept).unwrap_or_default()
        )
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    with_status(
        html(&AuditPage {
            chrome: setup_chrome(&s, &u).await,
            entries,
            users: choices(&users, &actor_f),
            action,
            object,
            from: q.from.trim().chars().take(10).collect(),
            to: q.to.trim().chars().take(10).collect(),
            errors,
            next_href,
        }),
        status,
    )
}

/// Most store pages one audit-log page reads while filtering by actor or
/// end day.
pub const MAX_AUDIT_SCAN: usize = 20;
