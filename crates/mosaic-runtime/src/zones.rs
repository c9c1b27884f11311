//! Tenants' and users' time zones and locales.
//!
//! A tenant has a default zone and locale; a user may have their own. The
//! zone a caller works in is the user's, else the tenant's, else UTC; it
//! decides `TODAY()`, SOQL date literals (`TODAY`, `THIS_MONTH`, …) and the
//! web app's date-time display. Auto numbers' `{YYYY}`/`{MM}`/`{DD}` use
//! the tenant's zone (a record's number must not depend on who saved it).
//! Zones are IANA names with daylight saving through `chrono-tz`.

use crate::platform::Platform;
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use mosaic_store::access_store::AuditEntry;
use mosaic_store::settings::LocaleRow;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::time::Duration;

/// The locale of a tenant or user that set none.
pub const DEFAULT_LOCALE: &str = "en_US";
/// The zone of a tenant or user that set none.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// How long a resolved zone is reused before the database is asked again
/// (changes made through this instance apply at once).
pub const ZONE_CACHE_TTL: Duration = Duration::from_secs(30);

/// A tenant's or user's stored settings (`None`: not set, falls back).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocaleSettings {
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    /// The tenant's only: first month (1–12) of the fiscal year.
    pub fiscal_year_start_month: Option<u32>,
}

impl LocaleSettings {
    pub fn to_json(&self) -> Json {
        let mut j = json!({"time_zone": self.time_zone, "locale": self.locale});
        if let Some(m) = self.fiscal_year_start_month {
            j["fiscal_year_start_month"] = json!(m);
        }
        j
    }
}

/// The fiscal year of a tenant that set none starts in January.
pub const DEFAULT_FISCAL_YEAR_START_MONTH: u32 = 1;

/// What a caller works in: the effective zone and locale.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub zone: Tz,
    pub locale: String,
    /// The tenant's fiscal year start month (1–12).
    pub fiscal_start_month: u32,
}

/// A change of settings: an absent key keeps the value, `null` clears it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocaleInput {
    #[serde(default, deserialize_with = "nullable")]
    pub time_zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub locale: Option<Option<String>>,
    /// The organization only: 1–12, `null` back to January.
    #[serde(default, deserialize_with = "nullable_month")]
    pub fiscal_year_start_month: Option<Option<i64>>,
}

fn nullable_month<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl LocaleInput {
    pub fn is_empty(&self) -> bool {
        self.time_zone.is_none() && self.locale.is_none() && self.fiscal_year_start_month.is_none()
    }

    /// Takes `time_zone` and `locale` out of a JSON object body (the admin
    /// APIs share their bodies with other inputs).
    pub fn take_from(body: &mut Json) -> MosaicResult<LocaleInput> {
        let mut input = LocaleInput::default();
        let Some(map) = body.as_object_mut() else {
            return Ok(input);
        };
        for key in ["time_zone", "locale"] {
            let Some(v) = map.remove(key) else { continue };
            let value = match v {
                Json::Null => None,
                Json::String(s) => Some(s),
                _ => {
                    return Err(MosaicError::field(
                        ErrorCode::INVALID_INPUT,
                        key,
                        format!("{key} must be a string or null"),
                    ))
                }
            };
            if key == "time_zone" {
                input.time_zone = Some(value);
            } else {
                input.locale = Some(value);
            }
        }
        Ok(input)
    }
}

/// An IANA zone name (`Europe/Paris`, `UTC`); anything else is a 400
/// naming `field`.
pub fn parse_zone(field: &str, name: &str) -> MosaicResult<Tz> {
    name.trim().parse::<Tz>().map_err(|_| {
        MosaicError::field(
            ErrorCode::INVALID_INPUT,
            field,
            format!(
                "{field}: '{}' is not an IANA time zone name (e.g. 'Europe/Paris', 'America/New_York', 'UTC')",
                name.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// A locale as `language_COUNTRY` (`en_US`, `de_DE`): two or three
/// lower-case letters, `_`, two upper-case letters.
pub fn check_locale(field: &str, code: &str) -> MosaicResult<()> {
    let ok = code.split_once('_').is_some_and(|(l, c)| {
        (2..=3).contains(&l.len())
            && l.chars().all(|ch| ch.is_ascii_lowercase())
            && c.len() == 2
            && c.chars().all(|ch| ch.is_ascii_uppercase())
    });
    if ok {
        Ok(())
    } else {
        Err(MosaicError::field(
            ErrorCode::INVALID_INPUT,
            field,
            format!(
                "{field}: '{}' is not a locale such as 'en_US' or 'de_DE'",
                code.chars().take(64).collect::<String>()
            ),
        ))
    }
}

/// The offset of `zone` from UTC at `at`, in minutes.
pub fn offset_minutes(zone: Tz, at: DateTime<Utc>) -> i32 {
    zone.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
        / 60
}

fn pick(rows: &[LocaleRow], user_id: &str) -> (LocaleSettings, LocaleSettings) {
    let of = |uid: &str| {
        rows.iter()
            .find(|r| r.user_id == uid)
            .map(|r| LocaleSettings {
                time_zone: r.time_zone.clone(),
                locale: r.locale.clone(),
                fiscal_year_start_month: r.fiscal_year_start_month,
            })
            .unwrap_or_default()
    };
    (
        of(""),
        if user_id.is_empty() {
            LocaleSettings::default()
        } else {
            of(user_id)
        },
    )
}

impl Platform {
    /// The zone and locale `user_id` of `tenant_id` works in (theirs,
    /// else the tenant's, else UTC / en_US). An empty `user_id` gives the
    /// tenant's.
    pub async fn resolved_locale(&self, tenant_id: &str, user_id: &str) -> MosaicResult<Resolved> {
        let key = (tenant_id.to_string(), user_id.to_string());
        if let Some(r) = self.zones.get(&key) {
            return Ok(r);
        }
        let rows = self.settings.locales(tenant_id, user_id).await?;
        let (tenant, user) = pick(&rows, user_id);
        // Stored names were checked when set; an unknown one (a zone
        // dropped from a later tz database) falls back rather than fail.
        let zone = user
            .time_zone
            .or(tenant.time_zone)
            .and_then(|z| z.parse::<Tz>().ok())
            .unwrap_or(Tz::UTC);
        let locale = user
            .locale
            .or(tenant.locale)
            .unwrap_or_else(|| DEFAULT_LOCALE.to_string());
        let fiscal_start_month = tenant
            .fiscal_year_start_month
            .filter(|m| (1..=12).contains(m))
            .unwrap_or(DEFAULT_FISCAL_YEAR_START_MONTH);
        let r = Resolved {
            zone,
            locale,
            fiscal_start_month,
        };
        self.zones.insert(key, r.clone());
        Ok(r)
    }

    /// The zone `user_id` of `tenant_id` works in.
    pub async fn zone_of(&self, tenant_id: &str, user_id: &str) -> MosaicResult<Tz> {
        Ok(self.resolved_locale(tenant_id, user_id).await?.zone)
    }

    /// The stored settings of the tenant (`user_id` `None`) or of a user.
    pub async fn locale_settings(
        &self,
        tenant_id: &str,
        user_id: Option<&str>,
    ) -> MosaicResult<LocaleSettings> {
        let uid = user_id.unwrap_or("");
        let rows = self.settings.locales(tenant_id, uid).await?;
        let (tenant, user) = pick(&rows, uid);
        Ok(if user_id.is_some() { user } else { tenant })
    }

    /// Applies `input` to the tenant's (`user_id` `None`) or a user's
    /// settings, audit-logged as done by `actor_id`; an unknown zone or
    /// malformed locale is a 400 naming `time_zone` / `locale`.
    pub async fn set_locale_settings(
        &self,
        actor_id: &str,
        tenant_id: &str,
        user_id: Option<&str>,
        input: &LocaleInput,
    ) -> MosaicResult<LocaleSettings> {
        if let Some(Some(z)) = &input.time_zone {
            parse_zone("time_zone", z)?;
        }
        if let Some(Some(l)) = &input.locale {
            check_locale("locale", l)?;
        }
        let fiscal = match input.fiscal_year_start_month {
            Some(_) if user_id.is_some() => {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "fiscal_year_start_month",
                    "fiscal_year_start_month is an organization setting, not a user's",
                ))
            }
            Some(Some(m)) if !(1..=12).contains(&m) => {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "fiscal_year_start_month",
                    format!("fiscal_year_start_month must be a month number from 1 to 12, not {m}"),
                ))
            }
            Some(m) => Some(m.and_then(|m| u32::try_from(m).ok())),
            None => None,
        };
        let mut cur = self.locale_settings(tenant_id, user_id).await?;
        if input.is_empty() {
            return Ok(cur);
        }
        if let Some(z) = &input.time_zone {
            cur.time_zone = z.as_ref().map(|z| {
                z.trim()
                    .parse::<Tz>()
                    .map(|t| t.name().to_string())
                    .unwrap_or_else(|_| z.clone())
            });
        }
        if let Some(l) = &input.locale {
            cur.locale = l.clone();
        }
        if let Some(m) = fiscal {
            cur.fiscal_year_start_month = m;
        }
        self.settings
            .put_locale(LocaleRow {
                tenant_id: tenant_id.to_string(),
                user_id: user_id.unwrap_or("").to_string(),
                time_zone: cur.time_zone.clone(),
                locale: cur.locale.clone(),
                fiscal_year_start_month: cur.fiscal_year_start_month,
                updated_at: Utc::now(),
            })
            .await?;
        match user_id {
            Some(u) => self
                .zones
                .invalidate(&(tenant_id.to_string(), u.to_string())),
            // Every user of the tenant may fall back to it.
            None => self.zones.invalidate_all(),
        }
        let (action, target_type, target_id) = match user_id {
            Some(u) => ("user.locale", "user", u),
            None => ("organization.locale", "organization", tenant_id),
        };
        self.access
            .store()
            .append_audit(AuditEntry {
                tenant_id: tenant_id.to_string(),
                actor_id: actor_id.to_string(),
                action: action.into(),
                target_type: target_type.into(),
                target_id: target_id.to_string(),
                detail: cur.to_json().to_string(),
                at: Utc::now(),
            })
            .await?;
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_locales_are_checked() {
        assert_eq!(
            parse_zone("time_zone", "Europe/Paris").unwrap(),
            Tz::Europe__Paris
        );
        let e = parse_zone("time_zone", "Mars/Olympus").unwrap_err();
        assert_eq!(e.fields, vec!["time_zone".to_string()]);
        assert!(check_locale("locale", "en_US").is_ok());
        assert!(check_locale("locale", "fil_PH").is_ok());
        assert!(check_locale("locale", "english").is_err());
        assert!(check_locale("locale", "en-us").is_err());
    }

    #[test]
    fn offsets_follow_daylight_saving() {
        let ny = Tz::America__New_York;
        let winter = "2024-03-10T06:00:00Z".parse().unwrap();
        let summer = "2024-03-10T08:00:00Z".parse().unwrap();
        assert_eq!(offset_minutes(ny, winter), -300);
        assert_eq!(offset_minutes(ny, summer), -240);
        assert_eq!(offset_minutes(Tz::Pacific__Kiritimati, winter), 14 * 60);
    }
}
