//! Sessions of the web app: the login form (the OAuth password grant's
//! accounts, lockout and rate limits — the same access-service call), a
//! session cookie holding an access token of the shared session store
//! (revocable, expiring; HttpOnly, SameSite=Lax, Secure over TLS), logout,
//! the CSRF token every state-changing form carries (derived from the
//! session, so it needs no storage and dies with it), and the redirect to
//! the login page with a local return path when a session is missing or
//! expired.

use crate::views::{self, LoginPage, PasswordPage};
use crate::{ClientOrigin, WebState};
use axum::extract::{Form, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use mosaic_access::GrantError;
use mosaic_runtime::Caller;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The session cookie: an access token of the shared session store.
pub const SESSION_COOKIE: &str = "mosaic_sid";
/// The login form's own CSRF cookie (double submit: there is no session yet).
pub const LOGIN_CSRF_COOKIE: &str = "mosaic_login";
/// Longest return path kept through a login.
pub const MAX_RETURN_PATH_LEN: usize = 2048;
/// Domain separation of the CSRF token derived from a session token.
const CSRF_CONTEXT: &[u8] = b"mosaic-web-csrf\0";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// A signed-in user of a page request.
pub struct WebUser {
    pub caller: Caller,
    /// The user's locale (theirs, else the tenant's, else en_US); their
    /// zone is `caller.zone`.
    pub locale: String,
    /// The session's access token (the CSRF token derives from it).
    token: String,
}

impl WebUser {
    pub fn csrf(&self) -> String {
        csrf_token(&self.token)
    }

    /// Refuses a form whose CSRF token is not this session's (403 page).
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), Response> {
        let want = self.csrf();
        match submitted {
            Some(got) if constant_time_eq(got.as_bytes(), want.as_bytes()) => Ok(()),
            _ => Err(views::forbidden_page(
                "This form has expired or did not come from this app. Nothing was changed; go back, reload the page and try again.",
            )),
        }
    }
}

/// The CSRF token of a session: a hash of its token, which only the
/// session's cookie (HttpOnly) holds.
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(CSRF_CONTEXT);
    h.update(session_token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request came over HTTPS (this server's TLS, or a trusted
/// proxy's `X-Forwarded-Proto`), as the server's gate resolved it.
pub fn came_over_tls(origin: Option<&ClientOrigin>) -> bool {
    origin.is_some_and(|o| o.https)
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A return path is kept only when it is a local path of this site: no
/// scheme, no host, no `//` or `/\` (which browsers read as a host).
pub fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= MAX_RETURN_PATH_LEN
        && !next.chars().any(|c| c.is_control() || c == '\\');
    ok.then_some(next)
}

/// The login page's URL returning to `path_and_query` afterwards.
pub fn login_url(path_and_query: &str) -> String {
    match local_path(path_and_query) {
        Some(p) if p != "/" => format!(
            "/login?{}",
            serde_urlencoded::to_string([("next", p)]).unwrap_or_default()
        ),
        _ => "/login".into(),
    }
}

/// The signed-in user, or the redirect to the login page (with this
/// request's path to come back to).
pub async fn require_user(
    s: &WebState,
    req_headers: &HeaderMap,
    path_and_query: &str,
) -> Result<WebUser, Response> {
    let to_login = || Redirect::to(&login_url(path_and_query)).into_response();
    let Some(token) = cookie(req_headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Err(to_login());
    };
    let session = match s.platform.auth.resolve(token).await {
        Ok(sess) => sess,
        Err(e) if e.code == mosaic_types::ErrorCode::INVALID_SESSION_ID => return Err(to_login()),
        Err(e) => return Err(views::error_page(&e)),
    };
    let perms = match s
        .platform
        .access
        .snapshot(&session.tenant_id, &session.user_id)
        .await
    {
        Ok(p) => p,
        Err(e) => return Err(views::error_page(&e)),
    };
    if !perms.is_active() {
        return Err(to_login());
    }
    let settings = match s
        .platform
        .resolved_locale(&session.tenant_id, &session.user_id)
        .await
    {
        Ok(r) => r,
        Err(e) => return Err(views::error_page(&e)),
    };
    Ok(WebUser {
        caller: Caller {
            tenant_id: session.tenant_id.clone(),
            user_id: session.user_id.clone(),
            username: session.username.clone(),
            perms,
            zone: settings.zone,
        },
        locale: settings.locale,
        token: token.to_string(),
    })
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

fn random_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// `GET /login`: the form, with a fresh login CSRF cookie.
pub async fn login_page(
    origin: Option<Extension<ClientOrigin>>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    render_login(
        came_over_tls(origin.as_deref()),
        q.next.as_deref(),
        None,
        "",
        StatusCode::OK,
    )
}

fn render_login(
    secure: bool,
    next: Option<&str>,
    error: Option<&str>,
    username: &str,
    status: StatusCode,
) -> Response {
    with_login_csrf(secure, status, |csrf| {
        views::html(&LoginPage {
            next: next.and_then(local_path).unwrap_or("/").to_string(),
            error: error.map(str::to_string),
            username: username.to_string(),
            csrf,
            assets: views::Assets::get(),
        })
    })
}

/// A page of the sign-in flow with a fresh login CSRF token: `page` gets
/// the token for its form, the answer sets it as the cookie.
fn with_login_csrf(
    secure: bool,
    status: StatusCode,
    page: impl FnOnce(String) -> Response,
) -> Response {
    let token = random_token();
    let mut res = (status, page(token.clone())).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, &token, None, secure),
    );
    res
}

/// Whether a sign-in form carries the CSRF token of its cookie (double
/// submit: there is no session yet).
fn login_csrf_ok(headers: &HeaderMap, submitted: &str) -> bool {
    let expected = cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    !expected.is_empty() && constant_time_eq(expected.as_bytes(), submitted.as_bytes())
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// `POST /login`: the password grant; on success a session cookie and a
/// redirect to the (local) return path.
pub async fn login(
    State(s): State<WebState>,
    origin: Option<Extension<ClientOrigin>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let secure = came_over_tls(origin.as_deref());
    if !login_csrf_ok(&headers, &f.csrf) {
        return render_login(
            secure,
            Some(&f.next),
            Some("Your sign-in form expired. Please sign in again."),
            &f.username,
            StatusCode::FORBIDDEN,
        );
    }
    // The client's address behind trusted proxies: the per-address login
    // limit counts it.
    let source = origin.map(|o| o.ip.to_string());
    match s
        .platform
        .access
        .password_grant(&f.username, &f.password, source.as_deref())
        .await
    {
        Ok(g) => signed_in(&s, g, &f.next, secure).await,
        Err(GrantError::InvalidGrant) => render_login(
            secure,
            Some(&f.next),
            Some("That username and password do not match an active account."),
            &f.username,
            StatusCode::UNAUTHORIZED,
        ),
        Err(GrantError::TooManyAttempts { retry_after_secs }) => {
            too_many_attempts(secure, &f.next, &f.username, retry_after_secs)
        }
        Err(GrantError::PasswordExpired) => {
            render_password_change(secure, &f.next, None, &f.username, StatusCode::OK)
        }
        Err(GrantError::InvalidClient) => render_login(
            secure,
            Some(&f.next),
            Some("That username and password do not match an active account."),
            &f.username,
            StatusCode::UNAUTHORIZED,
        ),
        Err(GrantError::Internal(e)) => views::error_page(&e),
    }
}

/// The login form again, locked for `retry_after_secs` (with `Retry-After`).
fn too_many_attempts(secure: bool, next: &str, username: &str, retry_after_secs: i64) -> Response {
    let mut res = render_login(
        secure,
        Some(next),
        Some(&format!(
            "Too many failed sign-ins. Try again in {} minute(s).",
            (retry_after_secs + 59) / 60
        )),
        username,
        StatusCode::TOO_MANY_REQUESTS,
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// A granted login: the session cookie, and a redirect to the (local)
/// return path.
async fn signed_in(s: &WebState, g: mosaic_access::Granted, next: &str, secure: bool) -> Response {
    // The web session needs no refresh token: revoke the one the grant
    // minted so it can never be used.
    if let Some(r) = &g.refresh_token {
        let _ = s.platform.access.revoke_token(r).await;
    }
    let _ = s.platform.meta.warm(&g.tenant_id).await;
    let next = local_path(next).unwrap_or("/");
    let mut res = Redirect::to(next).into_response();
    let ttl = s.platform.config.token_ttl.as_secs() as i64;
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &g.access_token, Some(ttl), secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, "", Some(0), secure),
    );
    res
}

/// The password-change form after a `PASSWORD_EXPIRED` login, with a
/// fresh login CSRF cookie.
fn render_password_change(
    secure: bool,
    next: &str,
    error: Option<&str>,
    username: &str,
    status: StatusCode,
) -> Response {
    with_login_csrf(secure, status, |csrf| {
        views::html(&PasswordPage {
            next: local_path(next).unwrap_or("/").to_string(),
            error: error.map(str::to_string),
            username: username.to_string(),
            csrf,
            assets: views::Assets::get(),
        })
    })
}

#[derive(Deserialize)]
pub struct PasswordChangeForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    next: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// `POST /password/expired`: changes a password an administrator reset
/// (the access service's check, limits and policy), then signs in with
/// the new one.
pub async fn change_expired_password(
    State(s): State<WebState>,
    origin: Option<Extension<ClientOrigin>>,
    headers: HeaderMap,
    Form(f): Form<PasswordChangeForm>,
) -> Response {
    use mosaic_access::accounts::{ExpiredPasswordChangeInput, PasswordChangeError};
    let secure = came_over_tls(origin.as_deref());
    if !login_csrf_ok(&headers, &f.csrf) {
        return render_login(
            secure,
            Some(&f.next),
            Some("Your sign-in form expired. Please sign in again."),
            &f.username,
            StatusCode::FORBIDDEN,
        );
    }
    let source = origin.map(|o| o.ip.to_string());
    let input = ExpiredPasswordChangeInput {
        username: f.username.clone(),
        current_password: f.current_password,
        new_password: f.new_password.clone(),
    };
    match s
        .platform
        .access
        .change_expired_password(&input, source.as_deref())
        .await
    {
        Ok(()) => match s
            .platform
            .access
            .password_grant(&f.username, &f.new_password, source.as_deref())
            .await
        {
            Ok(g) => signed_in(&s, g, &f.next, secure).await,
            Err(_) => render_login(
                secure,
                Some(&f.next),
                Some("Your password was changed. Please sign in with it."),
                &f.username,
                StatusCode::OK,
            ),
        },
        Err(PasswordChangeError::WrongPassword) => render_login(
            secure,
            Some(&f.next),
            Some("That username and password do not match an active account."),
            &f.username,
            StatusCode::UNAUTHORIZED,
        ),
        Err(PasswordChangeError::TooManyAttempts { retry_after_secs }) => {
            too_many_attempts(secure, &f.next, &f.username, retry_after_secs)
        }
        Err(PasswordChangeError::Invalid(e))
            if e.code == mosaic_types::ErrorCode::INVALID_INPUT =>
        {
            render_password_change(
                secure,
                &f.next,
                Some(&e.message),
                &f.username,
                StatusCode::BAD_REQUEST,
            )
        }
        Err(PasswordChangeError::Invalid(e)) => views::error_page(&e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default, rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /logout`: revokes the session (every instance refuses it at once)
/// and clears the cookie.
pub async fn logout(State(s): State<WebState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let secure = came_over_tls(parts.extensions.get::<ClientOrigin>());
    let path = parts.uri.path().to_string();
    let user = match require_user(&s, &parts.headers, &path).await {
        Ok(u) => u,
        Err(_) => return Redirect::to("/login").into_response(),
    };
    let form: CsrfForm = match axum::body::to_bytes(body, 64 * 1024)
        .await
        .ok()
        .and_then(|b| serde_urlencoded::from_bytes(&b).ok())
    {
        Some(f) => f,
        None => CsrfForm { csrf: None },
    };
    if let Err(r) = user.check_csrf(form.csrf.as_deref()) {
        return r;
    }
    let _ = s.platform.auth.revoke(&user.token).await;
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), secure),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_return_paths() {
        for ok in ["/", "/o/Deal__c?view=all", "/r/Deal__c/123"] {
            assert_eq!(local_path(ok), Some(ok));
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "o/Deal__c",
            "/\nSet-Cookie: x",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
        assert_eq!(login_url("//evil.example"), "/login");
        assert_eq!(login_url("/o/X"), "/login?next=%2Fo%2FX");
    }

    #[test]
    fn csrf_tokens_are_per_session_and_compared_whole() {
        assert_ne!(csrf_token("mos_a"), csrf_token("mos_b"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
