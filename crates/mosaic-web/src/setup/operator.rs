//! The operator view: the platform operators' console in the browser —
//! degradation level and dependencies with their breakers, shards with
//! their tenants and fill, tenant moves (start, watch, roll back), hot
//! tenants, cache figures, the maintenance switch and each tenant's rate
//! limits.
//!
//! **Operators are not tenants** (decision 0037): an operator signs in at
//! `/operator/login` with `MOSAIC_OPERATOR_TOKEN` (checked and rate
//! limited like a login), and gets a cookie of its own (`mosaic_op`,
//! path `/operator`, HttpOnly, SameSite=Strict, Secure over TLS) holding
//! an expiring session signed with a key derived from the token — never
//! the token itself, so rotating the token ends every session. A tenant
//! session, whatever its role, opens nothing here (403); with no operator
//! token configured every `/operator` URL answers 404. Every form carries
//! a CSRF token derived from the operator session; every change lands in
//! the platform audit log, as the operator API's do.

use crate::session::{came_over_tls, cookie};
use crate::views::{html, not_found_page, Assets};
use crate::{ClientOrigin, WebState};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hmac::{Hmac, Mac};
use mosaic_access::operators::{OperatorLoginError, OPERATOR_SESSION_TTL};
use mosaic_cache::ratelimit::CLASSES;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// The operator session cookie (path `/operator`).
pub const OPERATOR_COOKIE: &str = "mosaic_op";
/// The operator sign-in form's CSRF cookie (double submit).
pub const OPERATOR_LOGIN_COOKIE: &str = "mosaic_op_login";
/// Longest operator token the sign-in form accepts.
pub const MAX_OPERATOR_TOKEN_LEN: usize = 512;
/// Longest maintenance message.
pub const MAX_MAINTENANCE_MESSAGE_LEN: usize = 500;
/// Most tenants listed under one shard.
pub const MAX_TENANTS_PER_SHARD_SHOWN: usize = 200;
/// The actor operator-console changes are written under in the platform
/// audit log (the operator token's authority, as over the API).
const ACTOR: &str = "token";
const SESSION_CONTEXT: &[u8] = b"mosaic-operator-session\0";
const CSRF_CONTEXT: &[u8] = b"mosaic-operator-csrf\0";

type HmacSha256 = Hmac<Sha256>;

/// This area's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/operator", get(overview))
        .route("/operator/login", get(login_page).post(login))
        .route("/operator/logout", post(logout))
        .route("/operator/maintenance", post(maintenance))
        .route("/operator/shards", get(shards))
        .route("/operator/caches", get(caches))
        .route("/operator/tenants/{tenant}", get(tenant_page))
        .route("/operator/tenants/{tenant}/rate-limits", post(rate_limits))
        .route("/operator/tenants/{tenant}/move", post(start_move))
        .route(
            "/operator/tenants/{tenant}/move/rollback",
            post(rollback_move),
        )
}

// ---------- the session ----------

fn session_key(token: &str) -> HmacSha256 {
    let mut h = Sha256::new();
    h.update(SESSION_CONTEXT);
    h.update(token.as_bytes());
    HmacSha256::new_from_slice(&h.finalize()).expect("HMAC takes any key length")
}

/// A new signed session value: `v1.<expiry>.<nonce>.<signature>`.
fn mint_session(token: &str, now: i64) -> String {
    let nonce: [u8; 16] = rand::random();
    let body = format!(
        "v1.{}.{}",
        now + OPERATOR_SESSION_TTL.as_secs() as i64,
        hex::encode(nonce)
    );
    let mut mac = session_key(token);
    mac.update(body.as_bytes());
    format!("{body}.{}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether a session value was signed with `token`'s key and has not
/// expired.
fn session_valid(token: &str, value: &str, now: i64) -> bool {
    let Some((body, sig)) = value.rsplit_once('.') else {
        return false;
    };
    let mut parts = body.split('.');
    let (Some("v1"), Some(exp), Some(_nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let mut mac = session_key(token);
    mac.update(body.as_bytes());
    mac.verify_slice(&sig).is_ok() && exp.parse::<i64>().is_ok_and(|e| e > now)
}

fn csrf_of(session: &str) -> String {
    let mut h = Sha256::new();
    h.update(CSRF_CONTEXT);
    h.update(session.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn op_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/operator; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A signed-in operator of a request.
struct OperatorUser {
    csrf: String,
}

impl OperatorUser {
    fn check_csrf(&self, submitted: &str) -> Result<(), Response> {
        if same(submitted, &self.csrf) {
            Ok(())
        } else {
            Err(refusal(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console. Nothing was changed; reload the page and try again.",
            ))
        }
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (
        status,
        html(&OperatorRefusal {
            assets: Assets::get(),
            status: status.as_u16(),
            message: message.to_string(),
        }),
    )
        .into_response()
}

/// The configured operator token, or the 404 page (the view does not
/// exist without one).
fn configured(s: &WebState) -> Result<&str, Response> {
    s.operator_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| not_found_page("There is no such page."))
}

/// The operator of a request: 404 without an operator token configured,
/// else 403 (with a sign-in link) without a valid operator session. A
/// tenant's session cookie is not looked at.
fn operator(s: &WebState, headers: &HeaderMap) -> Result<OperatorUser, Response> {
    let token = configured(s)?;
    let now = chrono::Utc::now().timestamp();
    match cookie(headers, OPERATOR_COOKIE) {
        Some(v) if session_valid(token, v, now) => Ok(OperatorUser { csrf: csrf_of(v) }),
        _ => Err(refusal(
            StatusCode::FORBIDDEN,
            "The operator view is for platform operators. Sign in with the operator token.",
        )),
    }
}

// ---------- templates ----------

#[derive(Template)]
#[template(path = "setup/operator_refusal.html")]
struct OperatorRefusal {
    assets: Assets,
    status: u16,
    message: String,
}

#[derive(Template)]
#[template(path = "setup/operator_login.html")]
struct LoginPage {
    assets: Assets,
    csrf: String,
    error: Option<String>,
}

struct Dependency {
    name: String,
    state: &'static str,
    breaker: String,
    latency_ms: String,
    error: String,
}

struct Hot {
    tenant_id: String,
    shard: String,
    requests: u64,
    share: String,
}

#[derive(Template)]
#[template(path = "setup/operator_overview.html")]
struct OverviewPage {
    assets: Assets,
    csrf: String,
    level: u8,
    level_name: &'static str,
    maintenance: bool,
    maintenance_message: String,
    maintenance_by: String,
    message_error: Option<String>,
    dependencies: Vec<Dependency>,
    hot: Vec<Hot>,
    hot_window_secs: u64,
    notice: Option<String>,
}

struct ShardView {
    id: String,
    group: String,
    status: String,
    up: bool,
    tenants: String,
    records: String,
    fill: String,
    tenant_ids: Vec<(String, String)>,
    more: bool,
}

#[derive(Template)]
#[template(path = "setup/operator_shards.html")]
struct ShardsPage {
    assets: Assets,
    csrf: String,
    shards: Vec<ShardView>,
    advice: Vec<(String, String)>,
}

struct CacheRow {
    cache: String,
    layer: String,
    entries: String,
    hits: u64,
    misses: u64,
    hit_rate: String,
    evictions: u64,
    loads: u64,
    mean_load_ms: String,
}

#[derive(Template)]
#[template(path = "setup/operator_caches.html")]
struct CachesPage {
    assets: Assets,
    csrf: String,
    caches: Vec<CacheRow>,
    tier: Vec<(String, String)>,
}

struct LimitRow {
    class: &'static str,
    per_second: String,
    burst: String,
    effective: String,
    overridden: bool,
    error: Option<String>,
}

struct MoveView {
    to: String,
    phase: String,
    rows_copied: u64,
    rows_total: u64,
    error: String,
    report: String,
}

#[derive(Template)]
#[template(path = "setup/operator_tenant.html")]
struct TenantPage {
    assets: Assets,
    csrf: String,
    tenant_id: String,
    name: String,
    subdomain: String,
    shard: String,
    shard_names: Vec<String>,
    limits_enabled: bool,
    limits: Vec<LimitRow>,
    limits_error: Option<String>,
    moving: Option<MoveView>,
    move_to: String,
    move_error: Option<String>,
    notice: Option<String>,
}

// ---------- sign-in ----------

async fn login_page(
    State(s): State<WebState>,
    origin: Option<Extension<ClientOrigin>>,
) -> Response {
    if let Err(r) = configured(&s) {
        return r;
    }
    render_login(came_over_tls(origin.as_deref()), None, StatusCode::OK)
}

fn render_login(secure: bool, error: Option<&str>, status: StatusCode) -> Response {
    let nonce: [u8; 16] = rand::random();
    let csrf = hex::encode(nonce);
    let mut res = (
        status,
        html(&LoginPage {
            assets: Assets::get(),
            csrf: csrf.clone(),
            error: error.map(str::to_string),
        }),
    )
        .into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        op_cookie(OPERATOR_LOGIN_COOKIE, &csrf, None, secure),
    );
    res
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

async fn login(
    State(s): State<WebState>,
    origin: Option<Extension<ClientOrigin>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let expected = match configured(&s) {
        Ok(t) => t.to_string(),
        Err(r) => return r,
    };
    let secure = came_over_tls(origin.as_deref());
    let want = cookie(&headers, OPERATOR_LOGIN_COOKIE).unwrap_or_default();
    if want.is_empty() || !same(want, &f.csrf) {
        return render_login(
            secure,
            Some("Your sign-in form expired. Please sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let given = f.token.trim();
    if given.is_empty() || given.len() > MAX_OPERATOR_TOKEN_LEN {
        return render_login(
            secure,
            Some("Enter the operator token (MOSAIC_OPERATOR_TOKEN)."),
            StatusCode::BAD_REQUEST,
        );
    }
    let source = origin.map(|o| o.ip.to_string());
    match s
        .platform
        .operators
        .check_token(given, &expected, source.as_deref())
        .await
    {
        Ok(()) => {
            let detail = json!({"address": source, "via": "operator view"});
            audit(&s, "operator.login", "session", detail).await;
            let now = chrono::Utc::now().timestamp();
            let mut res = Redirect::to("/operator").into_response();
            let h = res.headers_mut();
            h.append(
                header::SET_COOKIE,
                op_cookie(
                    OPERATOR_COOKIE,
                    &mint_session(&expected, now),
                    Some(OPERATOR_SESSION_TTL.as_secs() as i64),
                    secure,
                ),
            );
            h.append(
                header::SET_COOKIE,
                op_cookie(OPERATOR_LOGIN_COOKIE, "", Some(0), secure),
            );
            res
        }
        Err(OperatorLoginError::Invalid) => render_login(
            secure,
            Some("That is not the operator token."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(OperatorLoginError::TooManyAttempts { retry_after_secs }) => {
            let mut res = render_login(
                secure,
                Some(&format!(
                    "Too many failed sign-ins. Try again in {} minute(s).",
                    (retry_after_secs + 59) / 60
                )),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Err(OperatorLoginError::Internal(e)) => crate::views::error_page(&e),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

async fn logout(
    State(s): State<WebState>,
    origin: Option<Extension<ClientOrigin>>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = op.check_csrf(&f.csrf) {
        return r;
    }
    let mut res = Redirect::to("/operator/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        op_cookie(
            OPERATOR_COOKIE,
            "",
            Some(0),
            came_over_tls(origin.as_deref()),
        ),
    );
    res
}

async fn audit(s: &WebState, action: &str, target: &str, detail: Value) {
    if let Err(e) = s
        .platform
        .operators
        .audit(ACTOR, action, target, detail)
        .await
    {
        tracing::warn!(error = %e.message, "platform audit entry was not written");
    }
}

// ---------- overview and maintenance ----------

#[derive(Deserialize, Default)]
struct NoticeQuery {
    #[serde(default)]
    done: Option<String>,
}

fn notice_of(done: Option<&str>) -> Option<String> {
    Some(
        match done? {
            "maintenance-on" => "Maintenance is on: every tenant request is refused.",
            "maintenance-off" => "Maintenance is off.",
            "limits" => "The rate limits were saved.",
            "move" => "The move started; this page shows its progress.",
            "rollback" => "The tenant was moved back to its old shard.",
            _ => return None,
        }
        .to_string(),
    )
}

async fn overview_page(
    s: &WebState,
    op: &OperatorUser,
    message: Option<(String, String)>,
    notice: Option<String>,
) -> Response {
    let p = &s.platform;
    let deps = p.probe_dependencies().await;
    let probed =
        mosaic_runtime::health::DegradationLevel::from_dependencies(p.maintenance().enabled, &deps);
    let level = probed.max(p.degradation_level());
    let m = p.maintenance();
    let hot = match p.hot_tenants().await {
        Ok(list) => list
            .into_iter()
            .map(|h| Hot {
                tenant_id: h.tenant_id,
                shard: h.shard_id,
                requests: h.requests,
                share: format!("{:.1} %", h.share * 100.0),
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e.message, "hot tenants not read");
            Vec::new()
        }
    };
    let (typed, message_error) = match message {
        Some((t, e)) => (t, Some(e)),
        None => (m.message.clone().unwrap_or_default(), None),
    };
    html(&OverviewPage {
        assets: Assets::get(),
        csrf: op.csrf.clone(),
        level: level.level(),
        level_name: level.name(),
        maintenance: m.enabled,
        maintenance_message: typed,
        maintenance_by: m
            .updated_by
            .clone()
            .map(|b| {
                let at = m
                    .updated_at
                    .map(|t| t.format(" at %Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default();
                format!("{b}{at}")
            })
            .unwrap_or_default(),
        message_error,
        dependencies: deps
            .iter()
            .map(|d| Dependency {
                name: d.name.clone(),
                state: if d.up { "up" } else { "down" },
                breaker: d.breaker.map(|b| b.name()).unwrap_or("—").to_string(),
                latency_ms: format!("{:.1}", d.latency.as_secs_f64() * 1000.0),
                error: d.error.clone().unwrap_or_default(),
            })
            .collect(),
        hot,
        hot_window_secs: p.hot.window().as_secs(),
        notice,
    })
}

async fn overview(
    State(s): State<WebState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<NoticeQuery>,
) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    overview_page(&s, &op, None, notice_of(q.done.as_deref())).await
}

#[derive(Deserialize)]
struct MaintenanceForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    enabled: String,
    #[serde(default)]
    message: String,
}

async fn maintenance(
    State(s): State<WebState>,
    headers: HeaderMap,
    Form(f): Form<MaintenanceForm>,
) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = op.check_csrf(&f.csrf) {
        return r;
    }
    let enabled = match f.enabled.as_str() {
        "1" | "on" | "true" => true,
        "0" | "off" | "false" => false,
        _ => return refusal(StatusCode::BAD_REQUEST, "enabled: choose on or off."),
    };
    let message = f.message.trim().to_string();
    if message.chars().count() > MAX_MAINTENANCE_MESSAGE_LEN {
        let mut res = overview_page(
            &s,
            &op,
            Some((
                f.message.clone(),
                format!("At most {MAX_MAINTENANCE_MESSAGE_LEN} characters."),
            )),
            None,
        )
        .await;
        *res.status_mut() = StatusCode::BAD_REQUEST;
        return res;
    }
    let message = (!message.is_empty()).then_some(message);
    match s
        .platform
        .set_maintenance(enabled, message.clone(), ACTOR)
        .await
    {
        Ok(_) => {
            audit(
                &s,
                "operator.maintenance.switch",
                crate::setup::operator::MAINTENANCE_TARGET,
                json!({"enabled": enabled, "message": message, "via": "operator view"}),
            )
            .await;
            Redirect::to(if enabled {
                "/operator?done=maintenance-on"
            } else {
                "/operator?done=maintenance-off"
            })
            .into_response()
        }
        Err(e) => {
            let mut res = overview_page(&s, &op, Some((f.message.clone(), e.message)), None).await;
            *res.status_mut() = StatusCode::BAD_REQUEST;
            res
        }
    }
}

/// The target the maintenance switch's audit entries name (the API's path).
pub const MAINTENANCE_TARGET: &str = "/services/admin/v1/maintenance";

// ---------- shards ----------

async fn shards(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let p = &s.platform;
    let rows = match p.shards.directory().shards().await {
        Ok(r) => r,
        Err(e) => return crate::views::error_page(&e),
    };
    let placements = p.shards.directory().placements().await.unwrap_or_default();
    let mut by_shard: HashMap<String, Vec<String>> = HashMap::new();
    for pl in placements {
        by_shard.entry(pl.shard_id).or_default().push(pl.tenant_id);
    }
    let mut load = HashMap::new();
    let mut list = Vec::new();
    for sh in p.shards().await {
        let row = rows.iter().find(|r| r.id == sh.name);
        load.insert(
            sh.name.clone(),
            mosaic_store::shards::Load {
                tenants: sh.tenants.unwrap_or(0),
                records: sh.records.unwrap_or(0),
            },
        );
        let fill = match (row.and_then(|r| r.max_tenants), sh.tenants) {
            (Some(max), Some(n)) if max > 0 => format!("{} % of {max} tenants", n * 100 / max),
            _ => "no limit".into(),
        };
        let mut ids = by_shard.remove(&sh.name).unwrap_or_default();
        ids.sort();
        let more = ids.len() > MAX_TENANTS_PER_SHARD_SHOWN;
        ids.truncate(MAX_TENANTS_PER_SHARD_SHOWN);
        let mut tenant_ids = Vec::with_capacity(ids.len());
        for id in ids {
            let name = p
                .meta_store
                .tenant(&id)
                .await
                .ok()
                .flatten()
                .map(|t| t.name)
                .unwrap_or_default();
            tenant_ids.push((id, name));
        }
        list.push(ShardView {
            id: sh.name.clone(),
            group: row.map_or("built-in", |r| r.group.as_str()).to_string(),
            status: row.map_or("active", |r| r.status.as_str()).to_string(),
            up: sh.up,
            tenants: sh.tenants.map(|n| n.to_string()).unwrap_or("—".into()),
            records: sh.records.map(|n| n.to_string()).unwrap_or("—".into()),
            fill,
            tenant_ids,
            more,
        });
    }
    let advice = mosaic_store::shards::nearly_full(&rows, &load);
    html(&ShardsPage {
        assets: Assets::get(),
        csrf: op.csrf,
        shards: list,
        advice,
    })
}

// ---------- caches ----------

fn ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| "—".into())
}

async fn caches(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let p = &s.platform;
    let caches = p
        .cache_figures()
        .into_iter()
        .map(|c| {
            let f = c.figures;
            CacheRow {
                cache: c.cache.to_string(),
                layer: c.layer.to_string(),
                entries: c.entries.map(|n| n.to_string()).unwrap_or("—".into()),
                hits: f.hits,
                misses: f.misses,
                hit_rate: ratio(f.hit_rate()),
                evictions: f.evictions,
                loads: f.loads,
                mean_load_ms: f
                    .mean_load()
                    .map(|d| format!("{:.2}", d.as_secs_f64() * 1000.0))
                    .unwrap_or("—".into()),
            }
        })
        .collect();
    let tier = match p.cache_tier_figures() {
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect(),
        _ => Vec::new(),
    };
    html(&CachesPage {
        assets: Assets::get(),
        csrf: op.csrf,
        caches,
        tier,
    })
}

// ---------- a tenant: rate limits and moves ----------

/// A tenant id from a URL, or the 404 page.
fn tenant_id(raw: &str) -> Result<String, Response> {
    mosaic_types::id::normalize_id(raw).ok_or_else(|| not_found_page("There is no such tenant."))
}

/// The rate-limit form as typed (per class: per second, burst), and the
/// error (field, message) it got.
type TypedLimits = (BTreeMap<String, (String, String)>, Option<(String, String)>);

struct TenantInput {
    limits: Option<TypedLimits>,
    move_to: Option<(String, String)>,
    notice: Option<String>,
}

async fn render_tenant(
    s: &WebState,
    op: &OperatorUser,
    tenant: &str,
    input: TenantInput,
) -> Response {
    let p = &s.platform;
    let row = match p.meta_store.tenant(tenant).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found_page("There is no such tenant."),
        Err(e) => return crate::views::error_page(&e),
    };
    let overrides = match p.rate_overrides(tenant).await {
        Ok(o) => o,
        Err(e) => return crate::views::error_page(&e),
    };
    let rates = match p.tenant_rates(tenant).await {
        Ok(r) => r,
        Err(e) => return crate::views::error_page(&e),
    };
    let (typed, limits_error) = match input.limits {
        Some((t, e)) => (Some(t), e),
        None => (None, None),
    };
    let limits = CLASSES
        .iter()
        .map(|c| {
            let r = rates[c.index()];
            let o = overrides.0.get(c);
            let (per_second, burst) = match typed.as_ref().and_then(|t| t.get(c.name())) {
                Some((a, b)) => (a.clone(), b.clone()),
                None => (
                    o.map(|r| r.per_second.to_string()).unwrap_or_default(),
                    o.map(|r| r.burst.to_string()).unwrap_or_default(),
                ),
            };
            let error = limits_error
                .as_ref()
                .filter(|(f, _)| f == c.name() || f.starts_with(&format!("{}.", c.name())))
                .map(|(_, m)| m.clone());
            LimitRow {
                class: c.name(),
                per_second,
                burst,
                effective: format!("{} / s, burst {}", r.per_second, r.burst),
                overridden: o.is_some(),
                error,
            }
        })
        .collect();
    let shard = p
        .shards
        .directory()
        .placement(tenant)
        .await
        .ok()
        .flatten()
        .map(|pl| pl.shard_id)
        .unwrap_or_else(|| mosaic_store::shards::LOCAL_SHARD.to_string());
    let shard_names = p
        .shards
        .directory()
        .shards()
        .await
        .map(|rows| rows.into_iter().map(|r| r.id).collect())
        .unwrap_or_default();
    let moving = p.moves.get(tenant).map(|m| MoveView {
        to: m.to,
        phase: m.phase,
        rows_copied: m.rows_copied,
        rows_total: m.rows_total,
        error: m.error.unwrap_or_default(),
        report: m
            .report
            .map(|r| serde_json::to_string(&r).unwrap_or_default())
            .unwrap_or_default(),
    });
    let (move_to, move_error) = match input.move_to {
        Some((t, e)) => (t, Some(e)),
        None => (String::new(), None),
    };
    html(&TenantPage {
        assets: Assets::get(),
        csrf: op.csrf.clone(),
        tenant_id: tenant.to_string(),
        name: row.name,
        subdomain: row.subdomain,
        shard,
        shard_names,
        limits_enabled: p.cache.rate_limits_enabled,
        limits,
        limits_error: limits_error.map(|(_, m)| m),
        moving,
        move_to,
        move_error,
        notice: input.notice,
    })
}

async fn tenant_page(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    axum::extract::Query(q): axum::extract::Query<NoticeQuery>,
) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let tenant = match tenant_id(&raw) {
        Ok(t) => t,
        Err(r) => return r,
    };
    render_tenant(
        &s,
        &op,
        &tenant,
        TenantInput {
            limits: None,
            move_to: None,
            notice: notice_of(q.done.as_deref()),
        },
    )
    .await
}

/// The rate-limit form: `<class>.per_second` and `<class>.burst` for each
/// endpoint class; a class left blank keeps the tier's rate.
async fn rate_limits(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let form: HashMap<String, String> = f.into_iter().collect();
    if let Err(r) = op.check_csrf(form.get("_csrf").map(String::as_str).unwrap_or("")) {
        return r;
    }
    let tenant = match tenant_id(&raw) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut typed = BTreeMap::new();
    let mut body = Map::new();
    for c in CLASSES.iter() {
        let get = |k: &str| {
            form.get(&format!("{}.{k}", c.name()))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let (per, burst) = (get("per_second"), get("burst"));
        typed.insert(c.name().to_string(), (per.clone(), burst.clone()));
        if per.is_empty() && burst.is_empty() {
            continue;
        }
        let num = |v: &str| -> Value {
            v.parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(v.to_string()))
        };
        let mut o = Map::new();
        o.insert("per_second".into(), num(&per));
        if !burst.is_empty() {
            o.insert("burst".into(), num(&burst));
        }
        body.insert(c.name().to_string(), Value::Object(o));
    }
    let body = Value::Object(body);
    let result = match mosaic_runtime::cache::RateOverrides::parse(&body) {
        Ok(o) => s.platform.set_rate_overrides(&tenant, &o).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            audit(
                &s,
                "operator.rate_limits.set",
                &format!("/services/admin/v1/tenants/{tenant}/rate-limits"),
                json!({"limits": body, "via": "operator view"}),
            )
            .await;
            Redirect::to(&format!("/operator/tenants/{tenant}?done=limits")).into_response()
        }
        Err(e) if e.code == mosaic_types::ErrorCode::NOT_FOUND => {
            not_found_page("There is no such tenant.")
        }
        Err(e) => {
            let field = e.fields.first().cloned().unwrap_or_default();
            let mut res = render_tenant(
                &s,
                &op,
                &tenant,
                TenantInput {
                    limits: Some((typed, Some((field, e.message)))),
                    move_to: None,
                    notice: None,
                },
            )
            .await;
            *res.status_mut() = StatusCode::BAD_REQUEST;
            res
        }
    }
}

#[derive(Deserialize)]
struct MoveForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cleanup: Option<String>,
}

async fn start_move(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(f): Form<MoveForm>,
) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = op.check_csrf(&f.csrf) {
        return r;
    }
    let tenant = match tenant_id(&raw) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let cleanup = f.cleanup.as_deref() == Some("1");
    match s.platform.start_move(&tenant, &f.to, cleanup).await {
        Ok(()) => {
            audit(
                &s,
                "operator.moves.start",
                &format!("/services/admin/v1/tenants/{tenant}/move"),
                json!({"to": f.to.trim(), "cleanup": cleanup, "via": "operator view"}),
            )
            .await;
            Redirect::to(&format!("/operator/tenants/{tenant}?done=move")).into_response()
        }
        Err(e) if e.code == mosaic_types::ErrorCode::NOT_FOUND => {
            not_found_page("There is no such tenant.")
        }
        Err(e) => {
            let mut res = render_tenant(
                &s,
                &op,
                &tenant,
                TenantInput {
                    limits: None,
                    move_to: Some((f.to.clone(), e.message)),
                    notice: None,
                },
            )
            .await;
            *res.status_mut() = if e.code == mosaic_types::ErrorCode::CONFLICT {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            res
        }
    }
}

async fn rollback_move(
    State(s): State<WebState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let op = match operator(&s, &headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if let Err(r) = op.check_csrf(&f.csrf) {
        return r;
    }
    let tenant = match tenant_id(&raw) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match s.platform.rollback_move(&tenant).await {
        Ok(report) => {
            audit(
                &s,
                "operator.moves.rollback",
                &format!("/services/admin/v1/tenants/{tenant}/move/rollback"),
                json!({"report": report, "via": "operator view"}),
            )
            .await;
            Redirect::to(&format!("/operator/tenants/{tenant}?done=rollback")).into_response()
        }
        Err(e) => {
            let mut res = render_tenant(
                &s,
                &op,
                &tenant,
                TenantInput {
                    limits: None,
                    move_to: Some((String::new(), e.message)),
                    notice: None,
                },
            )
            .await;
            *res.status_mut() = StatusCode::BAD_REQUEST;
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed_with_the_token_and_expire() {
        let v = mint_session("op-token", 1_000);
        assert!(!v.contains("op-token"));
        assert!(session_valid("op-token", &v, 1_000));
        assert!(!session_valid("other-token", &v, 1_000));
        let later = 1_000 + OPERATOR_SESSION_TTL.as_secs() as i64;
        assert!(!session_valid("op-token", &v, later));
        let forged = v.replacen("v1.", "v1.9", 1);
        assert!(!session_valid("op-token", &forged, 1_000));
        assert!(!session_valid("op-token", "garbage", 1_000));
        assert_ne!(csrf_of(&v), csrf_of(&mint_session("op-token", 1_000)));
    }
}
