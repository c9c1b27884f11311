//! Who a session belongs to, as Salesforce's clients read it: the identity
//! URL `GET /id/{tenant_id}/{user_id}` and OpenID Connect's
//! `GET /services/oauth2/userinfo` (bearer header, or `?oauth_token=`;
//! `?format=json` is the only format). A user reads their own identity; a
//! system administrator also those of the tenant's other users; anyone
//! else gets 403. The SOAP `login` result's `userInfo` is built from the
//! same [`Who`].

use crate::data::API_VERSION;
use crate::error::ApiError;
use crate::extract::{PathParams, QueryMap};
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use chrono::Offset;
use mosaic_runtime::Caller;
use mosaic_store::{TenantRow, UserRow};
use mosaic_types::ErrorCode;
use serde_json::{json, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/oauth2/userinfo",
            Access::Session,
            "oauth.userinfo",
            "The caller's identity (OpenID Connect userinfo)",
            get(userinfo),
        )
        .query(&["oauth_token", "format"]),
        RouteSpec::new(
            Method::GET,
            "/id/{tenant_id}/{user_id}",
            Access::Session,
            "oauth.identity",
            "A user's identity (the token response's id URL): the caller's own, or any of the tenant's for an administrator",
            get(identity),
        )
        .query(&["oauth_token", "format"]),
    ]
}

/// A user, their tenant and where they work (zone, locale).
pub(crate) struct Who {
    pub tenant: TenantRow,
    pub user: UserRow,
    pub zone: chrono_tz::Tz,
    pub locale: String,
}

impl Who {
    pub async fn load(s: &AppState, tenant_id: &str, user_id: &str) -> Result<Who, ApiError> {
        let store = &s.platform.meta_store;
        let missing = || ApiError::new(ErrorCode::NOT_FOUND, "Bad_Id: no such user");
        let tenant = store.tenant(tenant_id).await?.ok_or_else(missing)?;
        let user = store.user(tenant_id, user_id).await?.ok_or_else(missing)?;
        let r = s.platform.resolved_locale(tenant_id, user_id).await?;
        Ok(Who {
            tenant,
            user,
            zone: r.zone,
            locale: r.locale,
        })
    }

    /// The name shown for the user: Mosaic users have no separate first
    /// and last name, so the username.
    pub fn display_name(&self) -> &str {
        &self.user.username
    }

    pub fn email(&self) -> &str {
        self.user.email.as_deref().unwrap_or("")
    }

    /// The zone's offset from UTC now, in milliseconds.
    pub fn utc_offset_ms(&self) -> i64 {
        let now = chrono::Utc::now().with_timezone(&self.zone);
        i64::from(now.offset().fix().local_minus_utc()) * 1000
    }

    /// The currency symbol of the locale's region (Mosaic has one currency
    /// per tenant, unnamed: the locale's).
    pub fn currency_symbol(&self) -> &'static str {
        let region = self.locale.rsplit(['_', '-']).next().unwrap_or("");
        match region {
            "US" | "CA" | "AU" | "NZ" | "SG" | "HK" | "MX" => "$",
            "GB" => "£",
            "JP" | "CN" => "¥",
            "IN" => "₹",
            "CH" => "CHF",
            "DE" | "FR" | "ES" | "IT" | "NL" | "BE" | "AT" | "IE" | "PT" | "FI" | "GR" | "LU"
            | "SK" | "SI" | "EE" | "LV" | "LT" | "MT" | "CY" | "HR" => "€",
            _ => "¤",
        }
    }

    pub fn user_type(&self) -> &'static str {
        "STANDARD"
    }

    /// The API's URLs for this user, as in Salesforce's identity response.
    pub fn urls(&self, base: &str) -> Value {
        let t = &self.tenant.id;
        let v = API_VERSION;
        let rest = format!("{base}/services/data/v{v}");
        json!({
            "enterprise": format!("{base}/services/Soap/c/{v}/{t}"),
            "metadata": format!("{base}/services/Soap/m/{v}/{t}"),
            "partner": format!("{base}/services/Soap/u/{v}/{t}"),
            "rest": format!("{rest}/"),
            "sobjects": format!("{rest}/sobjects/"),
            "search": format!("{rest}/search/"),
            "query": format!("{rest}/query/"),
            "recent": format!("{rest}/recent/"),
            "tooling_rest": format!("{rest}/tooling/"),
            "profile": format!("{base}/id/{t}/{}", self.user.id),
            "custom_domain": base,
        })
    }

    /// The identity document (`/id/{org}/{user}`).
    pub fn identity(&self, base: &str) -> Value {
        json!({
            "id": format!("{base}/id/{}/{}", self.tenant.id, self.user.id),
            "asserted_user": true,
            "user_id": self.user.id,
            "organization_id": self.tenant.id,
            "username": self.user.username,
            "nick_name": self.user.username,
            "display_name": self.display_name(),
            "email": self.email(),
            "email_verified": false,
            "timezone": self.zone.name(),
            "active": self.user.is_active,
            "user_type": self.user_type(),
            "language": self.locale,
            "locale": self.locale,
            "utcOffset": self.utc_offset_ms(),
            "urls": self.urls(base),
        })
    }
}

/// The caller from the bearer header or `?oauth_token=`.
async fn caller(s: &AppState, headers: &HeaderMap, q: &QueryMap) -> Result<Caller, ApiError> {
    if let Some(f) = q.0.get("format") {
        if !f.eq_ignore_ascii_case("json") {
            return Err(ApiError::from(mosaic_types::MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "format",
                format!(
                    "format '{}' is not offered: use format=json",
                    f.chars().take(20).collect::<String>()
                ),
            )));
        }
    }
    let token = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(raw) => raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("OAuth "))
            .or_else(|| raw.strip_prefix("bearer "))
            .unwrap_or("")
            .trim()
            .to_string(),
        None => q.0.get("oauth_token").cloned().unwrap_or_default(),
    };
    crate::auth::caller_of_token(s, &token).await
}

async fn userinfo(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let c = caller(&s, &headers, &q).await?;
    let who = Who::load(&s, &c.tenant_id, &c.user_id).await?;
    let base = &*s.instance_url;
    let mut body = who.identity(base);
    // OpenID Connect's names beside Salesforce's.
    body["sub"] = body["id"].clone();
    body["preferred_username"] = json!(who.user.username);
    body["name"] = json!(who.display_name());
    body["nickname"] = json!(who.user.username);
    body["zoneinfo"] = json!(who.zone.name());
    body["profile"] = body["urls"]["profile"].clone();
    Ok(Json(body))
}

async fn identity(
    State(s): State<AppState>,
    PathParams((tenant_id, user_id)): PathParams<(String, String)>,
    headers: HeaderMap,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let c = caller(&s, &headers, &q).await?;
    let own = c.tenant_id == tenant_id && c.user_id == user_id;
    let admin_of_tenant = c.tenant_id == tenant_id && c.perms.is_admin();
    if !own && !admin_of_tenant {
        return Err(ApiError::new(
            ErrorCode::INSUFFICIENT_ACCESS,
            "Bad_Id: a user may read only their own identity",
        ));
    }
    let who = Who::load(&s, &tenant_id, &user_id).await?;
    Ok(Json(who.identity(&s.instance_url)))
}
