//! The partner SOAP API's `login` and `logout` on
//! `POST /services/Soap/u/{version}` (and the `serverUrl` form
//! `/services/Soap/u/{version}/{tenant}`), as clients such as jsforce and
//! simple-salesforce call them. `login` runs the OAuth password grant's
//! code (the same lockout and password-expiry rules) and answers a
//! `loginResponse` whose `result` elements are unprefixed in the default
//! namespace `urn:partner.soap.sforce.com`; its `sessionId` is a bearer
//! token of the REST API. Faults are HTTP 500 as in Salesforce.
//!
//! Mosaic accounts have no security token: the password alone logs in.
//! The envelope is read with a streaming parser under limits on size and
//! depth; a DOCTYPE is refused, entities other than XML's predefined ones
//! and character references are not expanded.

use crate::identity::Who;
use crate::network::ClientInfo;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mosaic_access::GrantError;
use quick_xml::events::Event;
use quick_xml::Reader;

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![
        RouteSpec::new(
            Method::POST,
            "/services/Soap/u/{version}",
            Access::Public,
            "soap.partner",
            "Partner SOAP API: login (username, password) and logout (SessionHeader)",
            post(partner),
        )
        .body(Body::Xml),
        RouteSpec::new(
            Method::POST,
            "/services/Soap/u/{version}/{tenant}",
            Access::Public,
            "soap.partner_tenant",
            "Partner SOAP API at a login's serverUrl: login and logout",
            post(partner),
        )
        .body(Body::Xml),
    ]
}

/// Largest SOAP request read (a login envelope is a few hundred bytes).
pub const MAX_SOAP_BYTES: usize = 64 * 1024;
/// Deepest element nesting accepted.
pub const MAX_SOAP_DEPTH: usize = 16;

const PARTNER_NS: &str = "urn:partner.soap.sforce.com";
const ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Salesforce's message for every failed login (it names no reason).
pub const INVALID_LOGIN_MESSAGE: &str =
    "Invalid username, password, security token; or user locked out.";

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

fn envelope(body: &str, extra_ns: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{ENVELOPE_NS}"{extra_ns} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"#
    )
}

/// A fault whose code is Salesforce's `sf:CODE` (an `ApiFault` detail).
fn sf_fault(status: StatusCode, code: &str, message: &str, detail_type: &str) -> Response {
    let (c, m) = (escape(code), escape(message));
    let body = format!(
        r#"<soapenv:Fault><faultcode>sf:{c}</faultcode><faultstring>{c}: {m}</faultstring><detail><sf:{detail_type} xsi:type="sf:{detail_type}"><sf:exceptionCode>{c}</sf:exceptionCode><sf:exceptionMessage>{m}</sf:exceptionMessage></sf:{detail_type}></detail></soapenv:Fault>"#
    );
    xml_response(
        status,
        envelope(&body, r#" xmlns:sf="urn:fault.partner.soap.sforce.com""#),
    )
}

/// A fault of the request itself (`soapenv:Client`): malformed XML, not a
/// SOAP envelope, a missing element.
fn client_fault(message: &str) -> Response {
    let body = format!(
        r#"<soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>{}</faultstring></soapenv:Fault>"#,
        escape(message)
    );
    xml_response(StatusCode::INTERNAL_SERVER_ERROR, envelope(&body, ""))
}

fn invalid_login() -> Response {
    sf_fault(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INVALID_LOGIN",
        INVALID_LOGIN_MESSAGE,
        "LoginFault",
    )
}

/// What the envelope asks for.
#[derive(Debug, Default, PartialEq)]
pub struct SoapCall {
    /// The operation: the local name of the Body's first element.
    pub operation: String,
    /// Text of the operation's direct children by local name
    /// (`username`, `password`).
    pub args: Vec<(String, String)>,
    /// `SessionHeader/sessionId` of the Header.
    pub session_id: Option<String>,
}

impl SoapCall {
    fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn local(name: &[u8]) -> String {
    let n = name.rsplit(|b| *b == b':').next().unwrap_or(name);
    String::from_utf8_lossy(n).into_owned()
}

/// Parses a SOAP 1.1 envelope: `Envelope` / `Header` / `SessionHeader` /
/// `sessionId`, `Envelope` / `Body` / operation / arguments. Errors name
/// the problem and its byte position.
pub fn parse_envelope(xml: &[u8]) -> Result<SoapCall, String> {
    if xml.len() > MAX_SOAP_BYTES {
        return Err(format!(
            "the request exceeds the SOAP limit of {MAX_SOAP_BYTES} bytes"
        ));
    }
    let text = std::str::from_utf8(xml).map_err(|e| {
        format!(
            "the request is not UTF-8 (invalid byte at position {})",
            e.valid_up_to()
        )
    })?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let mut call = SoapCall::default();
    let mut current_text = String::new();
    let mut seen_root = false;
    loop {
        let pos = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| format!("malformed XML at position {pos}: {e}"))?;
        match ev {
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(format!(
                        "malformed XML at position {pos}: the document ends before element '{open}' is closed"
                    ));
                }
                break;
            }
            Event::DocType(_) => return Err("a DOCTYPE is not allowed in a SOAP request".into()),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = local(e.name().as_ref());
                if stack.is_empty() {
                    if seen_root {
                        return Err(format!(
                            "content after the Envelope at position {pos}: only one root element is allowed"
                        ));
                    }
                    seen_root = true;
                    if name != "Envelope" {
                        return Err(format!("the root element is '{name}', not a SOAP Envelope"));
                    }
                }
                let empty = matches!(ev, Event::Empty(_));
                let depth = stack.len() + 1;
                if depth > MAX_SOAP_DEPTH {
                    return Err(format!(
                        "elements are nested deeper than {MAX_SOAP_DEPTH} levels at position {pos}"
                    ));
                }
                if depth == 3 && stack[1] == "Body" && call.operation.is_empty() {
                    call.operation = name.clone();
                }
                current_text.clear();
                if empty {
                    record(&stack, &name, String::new(), &mut call);
                } else {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let value = std::mem::take(&mut current_text);
                record(&stack, &name, value, &mut call);
            }
            Event::Text(t) => {
                if stack.is_empty() {
                    if t.iter().any(|b| !b.is_ascii_whitespace()) {
                        return Err(format!("text outside the Envelope at position {pos}"));
                    }
                    continue;
                }
                let s = t
                    .unescape()
                    .map_err(|e| format!("malformed XML at position {pos}: {e}"))?;
                current_text.push_str(&s);
            }
            Event::CData(t) => {
                current_text.push_str(&String::from_utf8_lossy(&t));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !seen_root {
        return Err("the request is empty: a SOAP Envelope is expected".into());
    }
    if call.operation.is_empty() {
        return Err("the SOAP Body names no operation".into());
    }
    Ok(call)
}

/// Keeps a closed element's text where it matters: the operation's
/// arguments and the session header.
fn record(stack: &[String], name: &str, value: String, call: &mut SoapCall) {
    let path: Vec<&str> = stack.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["Envelope", "Body", op] if *op == call.operation => {
            call.args.push((name.to_string(), value));
        }
        ["Envelope", "Header", "SessionHeader"] if name == "sessionId" => {
            call.session_id = Some(value.trim().to_string());
        }
        _ => {}
    }
}

fn is_xml(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let t = ct.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case("text/xml") || t.eq_ignore_ascii_case("application/soap+xml")
        })
        .unwrap_or(false)
}

/// `60.0`, `v60.0` or `1`.
fn api_version(raw: &str) -> Option<&str> {
    let v = raw.strip_prefix('v').unwrap_or(raw);
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    let digits =
        |s: &str, n: usize| !s.is_empty() && s.len() <= n && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major, 3) && digits(minor, 2)).then_some(v)
}

async fn partner(State(s): State<AppState>, req: Request) -> Response {
    if !is_xml(&req) {
        return crate::error::ApiError::new(
            mosaic_types::ErrorCode::UNSUPPORTED_MEDIA_TYPE,
            "the SOAP API takes an XML envelope with Content-Type: text/xml",
        )
        .into_response();
    }
    let path = req.uri().path().to_string();
    let raw_version = path
        .trim_start_matches("/services/Soap/u/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let source = req
        .extensions()
        .get::<ClientInfo>()
        .map(|c| c.ip.to_string());
    let Some(version) = api_version(&raw_version).map(str::to_string) else {
        return sf_fault(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED_API_VERSION",
            &format!(
                "Invalid Api version specified on URL: '{}'",
                raw_version.chars().take(20).collect::<String>()
            ),
            "UnexpectedErrorFault",
        );
    };
    let body = match axum::body::to_bytes(req.into_body(), MAX_SOAP_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return client_fault(&format!(
                "the request exceeds the SOAP limit of {MAX_SOAP_BYTES} bytes"
            ))
        }
    };
    let call = match parse_envelope(&body) {
        Ok(c) => c,
        Err(m) => return client_fault(&m),
    };
    match call.operation.as_str() {
        "login" => login(&s, &call, &version, source.as_deref()).await,
        "logout" => logout(&s, &call).await,
        other => sf_fault(
            StatusCode::NOT_IMPLEMENTED,
            "UNSUPPORTED_API_OPERATION",
            &format!(
                "the SOAP API answers login and logout; '{}' is offered by the REST API under /services/data",
                other.chars().take(60).collect::<String>()
            ),
            "UnexpectedErrorFault",
        ),
    }
}

async fn login(s: &AppState, call: &SoapCall, version: &str, source: Option<&str>) -> Response {
    let (Some(user), Some(pass)) = (call.arg("username"), call.arg("password")) else {
        return client_fault("login needs the elements username and password");
    };
    let granted = s
        .platform
        .access
        .password_grant(user.trim(), pass, source)
        .await;
    let g = match granted {
        Ok(g) => g,
        Err(GrantError::InvalidGrant) | Err(GrantError::InvalidClient) => return invalid_login(),
        Err(GrantError::TooManyAttempts { retry_after_secs }) => {
            let mut r = invalid_login();
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        // The credentials were right, but no session is given before the
        // password is changed (the OAuth endpoint's rule).
        Err(GrantError::PasswordExpired) => {
            return sf_fault(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
                "The users password has expired, you must call SetPassword before attempting any other API operations: POST /services/auth/v1/password/expired",
                "ApiFault",
            )
        }
        Err(GrantError::Internal(e)) => {
            tracing::error!(error = %e.message, "SOAP login failed");
            return sf_fault(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred; retry the login",
                "UnexpectedErrorFault",
            );
        }
    };
    // The refresh token a password grant issues has no place in a SOAP
    // login: revoke it at once.
    if let Some(r) = &g.refresh_token {
        if let Err(e) = s.platform.access.revoke_token(r).await {
            tracing::warn!(error = %e.message, "the SOAP login's refresh token was not revoked");
        }
    }
    let who = match Who::load(s, &g.tenant_id, &g.user_id).await {
        Ok(w) => w,
        Err(_) => {
            return sf_fault(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred; retry the login",
                "UnexpectedErrorFault",
            )
        }
    };
    let base = &*s.instance_url;
    let t = escape(&g.tenant_id);
    let u = escape(&g.user_id);
    let v = escape(version);
    let el = |name: &str, value: &str| format!("<{name}>{}</{name}>", escape(value));
    let user_info = [
        el("accessibilityMode", "false"),
        el("currencySymbol", who.currency_symbol()),
        el("orgDefaultCurrencyLocale", &who.locale),
        el("orgDisallowHtmlAttachments", "false"),
        el("orgHasPersonAccounts", "false"),
        el("organizationId", &g.tenant_id),
        el("organizationMultiCurrency", "false"),
        el("organizationName", &who.tenant.name),
        el("profileId", &who.user.profile),
        match &who.user.role_id {
            Some(r) => el("roleId", r),
            None => r#"<roleId xsi:nil="true"/>"#.to_string(),
        },
        el(
            "sessionSecondsValid",
            &s.platform.config.token_ttl.as_secs().to_string(),
        ),
        el("userEmail", who.email()),
        el("userFullName", who.display_name()),
        el("userId", &g.user_id),
        el("userLanguage", &who.locale),
        el("userLocale", &who.locale),
        el("userName", &who.user.username),
        el("userTimeZone", who.zone.name()),
        el("userType", "Standard"),
        el("userUiSkin", "Theme3"),
    ]
    .concat();
    let result = format!(
        "<loginResponse><result><metadataServerUrl>{m}/services/Soap/m/{v}/{t}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox><serverUrl>{m}/services/Soap/u/{v}/{t}</serverUrl><sessionId>{sid}</sessionId><userId>{u}</userId><userInfo>{user_info}</userInfo></result></loginResponse>",
        m = escape(base),
        sid = escape(&g.access_token),
    );
    xml_response(
        StatusCode::OK,
        envelope(&result, &format!(r#" xmlns="{PARTNER_NS}""#)),
    )
}

async fn logout(s: &AppState, call: &SoapCall) -> Response {
    let invalid = || {
        sf_fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INVALID_SESSION_ID",
            "Invalid Session ID found in SessionHeader: Illegal Session",
            "UnexpectedErrorFault",
        )
    };
    let Some(sid) = call.session_id.as_deref().filter(|t| !t.is_empty()) else {
        return invalid();
    };
    if s.platform.auth.resolve(sid).await.is_err() {
        return invalid();
    }
    if let Err(e) = s.platform.access.revoke_token(sid).await {
        tracing::error!(error = %e.message, "SOAP logout failed");
        return sf_fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred; retry the logout",
            "UnexpectedErrorFault",
        );
    }
    xml_response(
        StatusCode::OK,
        envelope("<logoutResponse/>", &format!(r#" xmlns="{PARTNER_NS}""#)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
<env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>a@b.test</n1:username><n1:password>p&amp;w&lt;d</n1:password></n1:login></env:Body></env:Envelope>"#;

    #[test]
    fn login_envelope() {
        let c = parse_envelope(LOGIN.as_bytes()).unwrap();
        assert_eq!(c.operation, "login");
        assert_eq!(c.arg("username"), Some("a@b.test"));
        assert_eq!(c.arg("password"), Some("p&w<d"));
    }

    #[test]
    fn logout_session_header() {
        let x = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header><SessionHeader><sessionId>mos_x</sessionId></SessionHeader></soapenv:Header><soapenv:Body><logout/></soapenv:Body></soapenv:Envelope>"#;
        let c = parse_envelope(x.as_bytes()).unwrap();
        assert_eq!(c.operation, "logout");
        assert_eq!(c.session_id.as_deref(), Some("mos_x"));
    }

    #[test]
    fn malformed_inputs_name_the_problem() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "empty"),
            (b"<Envelope><b></Envelope>", "malformed XML"),
            (b"<Envelope><Body></Body></Envelope>", "no operation"),
            (b"<root/>", "not a SOAP Envelope"),
            (
                b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><Envelope/>",
                "DOCTYPE",
            ),
            (b"<Envelope/><Envelope/>", "one root"),
            (
                b"<Envelope><Body><login>&bogus;</login></Body></Envelope>",
                "malformed XML",
            ),
        ];
        for (x, want) in cases {
            let e = parse_envelope(x).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(x));
        }
        let deep = format!(
            "<Envelope>{}{}</Envelope>",
            "<a>".repeat(40),
            "</a>".repeat(40)
        );
        assert!(parse_envelope(deep.as_bytes())
            .unwrap_err()
            .contains("deeper"));
        let big = vec![b' '; MAX_SOAP_BYTES + 1];
        assert!(parse_envelope(&big).unwrap_err().contains("limit"));
    }

    #[test]
    fn versions() {
        assert_eq!(api_version("60.0"), Some("60.0"));
        assert_eq!(api_version("v60.0"), Some("60.0"));
        assert_eq!(api_version("abc"), None);
        assert_eq!(api_version("60.0.1"), None);
    }
}
