//! Coercion of client JSON values into typed values of a field, with the
//! Salesforce-style error for every way a value can be wrong.

use crate::model::FieldDef;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult, Value};
use regex::Regex;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value as Json;
use std::str::FromStr;
use std::sync::LazyLock;

/// Longest email address accepted (Salesforce: 80).
pub const MAX_EMAIL_LEN: usize = 80;
/// Longest phone number accepted (Salesforce: 40).
pub const MAX_PHONE_LEN: usize = 40;
/// Longest URL accepted (Salesforce: 255).
pub const MAX_URL_LEN: usize = 255;
/// Longest multi-picklist value (joined) accepted.
pub const MAX_MULTI_PICKLIST_LEN: usize = 4099;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
        .expect("email regex")
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9+()\-./#* ]*(?:(?:ext\.?|x) ?[0-9]+)?$").expect("phone regex")
});
static URL_SCHEME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?i)(https?|ftp|mailto):").expect("url regex"));
static HOSTLIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+(?::[0-9]+)?(?:[/?#].*)?$").expect("host regex")
});

fn type_err(field: &FieldDef, expected: &str, got: &Json) -> MosaicError {
    let shown = match got {
        Json::String(s) => format!("'{}'", truncate_for_message(s)),
        other => truncate_for_message(&other.to_string()),
    };
    MosaicError::field(
        ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD,
        field.api_name.clone(),
        format!(
            "{}: value not of required type: {} (expected {})",
            field.api_name, shown, expected
        ),
    )
}

fn truncate_for_message(s: &str) -> String {
    if s.chars().count() > 60 {
        let t: String = s.chars().take(60).collect();
        format!("{t}…")
    } else {
        s.to_string()
    }
}

fn text_of<'a>(field: &FieldDef, v: &'a Json, expected: &str) -> MosaicResult<&'a str> {
    v.as_str().ok_or_else(|| type_err(field, expected, v))
}

fn check_len(field: &FieldDef, s: &str, max: usize) -> MosaicResult<()> {
    let n = s.chars().count();
    if n > max {
        return Err(MosaicError::field(
            ErrorCode::STRING_TOO_LONG,
            field.api_name.clone(),
            format!(
                "{}: data value too large: {} characters (max length={max})",
                field.api_name, n
            ),
        ));
    }
    Ok(())
}

/// Parses an exact decimal from a JSON number or numeric string.
pub fn parse_decimal(v: &Json) -> Option<Decimal> {
    let text = match v {
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.trim().to_string(),
        _ => return None,
    };
    if text.is_empty() {
        return None;
    }
    Decimal::from_str(&text)
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

/// Parses an ISO-8601 datetime: `Z`, `±HH:MM` or `±HHMM` offsets, or none
/// (taken as UTC); fractional seconds optional.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc());
        }
    }
    None
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

pub fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(s, f).ok())
}

/// Applies precision and scale to a number: rounds to `scale` places (half
/// away from zero, as Salesforce does on save) and rejects values with more
/// integer digits than `precision - scale`.
pub fn fit_number(field: &FieldDef, d: Decimal) -> MosaicResult<Decimal> {
    let precision = field.precision.unwrap_or(18);
    let scale = field.scale.unwrap_or(0).min(precision);
    let rounded = d.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    let int_digits = {
        let t = rounded.trunc().abs();
        if t.is_zero() {
            0
        } else {
            t.normalize().to_string().len() as u32
        }
    };
    if int_digits > precision - scale {
        return Err(MosaicError::field(
            ErrorCode::NUMBER_OUTSIDE_VALID_RANGE,
            field.api_name.clone(),
            format!(
                "{}: number outside valid range: {} (at most {} digits before the decimal point)",
                field.api_name,
                d,
                precision - scale
            ),
        ));
    }
    Ok(rounded)
}

fn location_part(
    field: &FieldDef,
    v: Option<&Json>,
    name: &str,
    limit: i64,
) -> MosaicResult<Decimal> {
    let d = v.and_then(parse_decimal).ok_or_else(|| {
        MosaicError::field(
            ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD,
            field.api_name.clone(),
            format!("{}: {name} must be a number", field.api_name),
        )
    })?;
    if d.abs() > Decimal::from(limit) {
        return Err(MosaicError::field(
            ErrorCode::NUMBER_OUTSIDE_VALID_RANGE,
            field.api_name.clone(),
            format!(
                "{}: {name} must be between -{limit} and {limit}",
                field.api_name
            ),
        ));
    }
    Ok(d)
}

fn picklist_match(field: &FieldDef, raw: &str) -> MosaicResult<String> {
    if let Some(p) = field
        .picklist_values
        .iter()
        .find(|p| p.value.eq_ignore_ascii_case(raw))
    {
        if p.is_active || !field.is_restricted {
            return Ok(p.value.clone());
        }
    }
    if field.is_restricted {
        return Err(MosaicError::field(
            ErrorCode::INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,
            field.api_name.clone(),
            format!(
                "{}: bad value for restricted picklist field: {}",
                field.api_name,
                truncate_for_message(raw)
            ),
        ));
    }
    Ok(raw.to_string())
}

/// Default max length of a text-like field type.
pub fn default_length(t: DataType) -> Option<u32> {
    match t {
        DataType::Text | DataType::Textarea | DataType::Picklist => Some(255),
        DataType::LongText | DataType::RichText => Some(32_768),
        DataType::EncryptedText => Some(175),
        _ => None,
    }
}

/// Coerces a client JSON value into a value of `field`'s type. JSON null
/// becomes [`Value::Null`] (booleans: false). Required-ness is checked by the
/// caller, which knows whether the field was present at all.
pub fn coerce(field: &FieldDef, v: &Json) -> MosaicResult<Value> {
    use DataType::*;
    if v.is_null() {
        return Ok(match field.data_type {
            Boolean => Value::Boolean(false),
            _ => Value::Null,
        });
    }
    let t = field.data_type;
    match t {
        Text | Textarea | LongText | RichText | EncryptedText => {
            let s = text_of(field, v, "text")?;
            let max = field.length.or(default_length(t)).unwrap_or(255) as usize;
            check_len(field, s, max)?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            Ok(Value::Text(s.to_string()))
        }
        Email => {
            let s = text_of(field, v, "email")?.trim();
            if s.is_empty() {
                return Ok(Value::Null);
            }
            check_len(field, s, MAX_EMAIL_LEN)?;
            if !EMAIL.is_match(s) {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_EMAIL_ADDRESS,
                    field.api_name.clone(),
                    format!(
                        "{}: invalid email address: {}",
                        field.api_name,
                        truncate_for_message(s)
                    ),
                ));
            }
            Ok(Value::Text(s.to_string()))
        }
        Phone => {
            let s = text_of(field, v, "phone")?.trim();
            if s.is_empty() {
                return Ok(Value::Null);
            }
            check_len(field, s, MAX_PHONE_LEN)?;
            if !PHONE.is_match(s) || !s.bytes().any(|b| b.is_ascii_digit()) {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD,
                    field.api_name.clone(),
                    format!(
                        "{}: invalid phone number: {}",
                        field.api_name,
                        truncate_for_message(s)
                    ),
                ));
            }
            Ok(Value::Text(s.to_string()))
        }
        Url => {
            let s = text_of(field, v, "url")?.trim();
            if s.is_empty() {
                return Ok(Value::Null);
            }
            check_len(field, s, MAX_URL_LEN)?;
            let ok = !s.chars().any(char::is_whitespace)
                && (URL_SCHEME.is_match(s) && s.len() > 7 || HOSTLIKE.is_match(s));
            if !ok {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD,
                    field.api_name.clone(),
                    format!(
                        "{}: invalid URL: {}",
                        field.api_name,
                        truncate_for_message(s)
                    ),
                ));
            }
            Ok(Value::Text(s.to_string()))
        }
        Number | Currency | Percent => {
            let d = parse_decimal(v).ok_or_else(|| type_err(field, "number", v))?;
            Ok(Value::Number(fit_number(field, d)?))
        }
        Boolean => match v {
            Json::Bool(b) => Ok(Value::Boolean(*b)),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Boolean(true)),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Boolean(false)),
            _ => Err(type_err(field, "boolean", v)),
        },
        Date => {
            let s = text_of(field, v, "date (YYYY-MM-DD)")?;
            parse_date(s)
                .map(Value::Date)
                .ok_or_else(|| type_err(field, "date (YYYY-MM-DD)", v))
        }
        Datetime => {
            let s = text_of(field, v, "datetime (ISO 8601)")?;
            parse_datetime(s)
                .map(Value::Datetime)
                .ok_or_else(|| type_err(field, "datetime (ISO 8601)", v))
        }
        Time => {
            let s = text_of(field, v, "time (HH:MM:SS.sss)")?;
            parse_time(s)
                .map(Value::Time)
                .ok_or_else(|| type_err(field, "time (HH:MM:SS.sss)", v))
        }
        Picklist => {
            let s = text_of(field, v, "picklist value")?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            check_len(field, s, 255)?;
            Ok(Value::Text(picklist_match(field, s)?))
        }
        MultiPicklist => {
            let parts: Vec<String> = match v {
                Json::String(s) => s.split(';').map(|p| p.trim().to_string()).collect(),
                Json::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(|s| s.trim().to_string())
                            .ok_or_else(|| type_err(field, "multi-picklist values", v))
                    })
                    .collect::<MosaicResult<_>>()?,
                _ => return Err(type_err(field, "multi-picklist value", v)),
            };
            let mut chosen: Vec<String> = Vec::new();
            for p in parts.iter().filter(|p| !p.is_empty()) {
                let canon = picklist_match(field, p)?;
                if !chosen.iter().any(|c| c.eq_ignore_ascii_case(&canon)) {
                    chosen.push(canon);
                }
            }
            if chosen.is_empty() {
                return Ok(Value::Null);
            }
            // Keep the definition's order, as Salesforce does.
            let order = |s: &String| {
                field
                    .picklist_values
                    .iter()
                    .position(|p| &p.value == s)
                    .unwrap_or(usize::MAX)
            };
            chosen.sort_by_key(order);
            let joined = chosen.join(";");
            check_len(field, &joined, MAX_MULTI_PICKLIST_LEN)?;
            Ok(Value::Text(joined))
        }
        Lookup | MasterDetail => {
            let s = text_of(field, v, "record id")?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            mosaic_types::id::normalize_id(s)
                .map(Value::Text)
                .ok_or_else(|| {
                    MosaicError::field(
                        ErrorCode::MALFORMED_ID,
                        field.api_name.clone(),
                        format!(
                            "{}: id value of incorrect type: {}",
                            field.api_name,
                            truncate_for_message(s)
                        ),
                    )
                })
        }
        Geolocation => {
            let obj = v
                .as_object()
                .ok_or_else(|| type_err(field, "{\"latitude\", \"longitude\"}", v))?;
            let lat = location_part(field, obj.get("latitude"), "latitude", 90)?;
            let lon = location_part(field, obj.get("longitude"), "longitude", 180)?;
            Ok(Value::Location {
                latitude: lat,
                longitude: lon,
            })
        }
        AutoNumber | Formula | RollupSummary => Err(MosaicError::field(
            ErrorCode::INVALID_FIELD_FOR_INSERT_UPDATE,
            field.api_name.clone(),
            format!("{}: field is not writeable", field.api_name),
        )),
    }
}

/// Reinterprets a value read from a slot by the field's type: string-pool
/// slots hold times and locations as text.
pub fn from_stored(field: &FieldDef, v: Value) -> Value {
    match (field.data_type, v) {
        // Checkboxes are never null: records written before the field existed
        // (or before its slot was reused) read false, as new ones do.
        (DataType::Boolean, Value::Null) => Value::Boolean(false),
        (DataType::Time, Value::Text(s)) => parse_time(&s).map(Value::Time).unwrap_or(Value::Null),
        (DataType::Geolocation, Value::Text(s)) => {
            let mut it = s.splitn(2, ',');
            match (
                it.next().and_then(|x| Decimal::from_str(x).ok()),
                it.next().and_then(|x| Decimal::from_str(x).ok()),
            ) {
                (Some(latitude), Some(longitude)) => Value::Location {
                    latitude,
                    longitude,
                },
                _ => Value::Null,
            }
        }
        (_, v) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(t: DataType) -> FieldDef {
        FieldDef {
            id: "f".into(),
            data_type: t,
            length: None,
            precision: Some(5),
            scale: Some(2),
            ..crate::model::probe_field("F__c")
        }
    }

    #[test]
    fn numbers_are_exact_rounded_and_ranged() {
        let f = field(DataType::Currency);
        let v: Json = serde_json::from_str("123.455").unwrap();
        assert_eq!(
            coerce(&f, &v).unwrap(),
            Value::Number(Decimal::from_str("123.46").unwrap())
        );
        let v: Json = serde_json::from_str("-0.005").unwrap();
        assert_eq!(
            coerce(&f, &v).unwrap(),
            Value::Number(Decimal::from_str("-0.01").unwrap())
        );
        let e = coerce(&f, &json!(1000)).unwrap_err();
        assert_eq!(e.code, ErrorCode::NUMBER_OUTSIDE_VALID_RANGE);
        assert_eq!(
            coerce(&f, &json!("12.5")).unwrap(),
            Value::Number(Decimal::from_str("12.50").unwrap())
        );
        assert_eq!(
            coerce(&f, &json!(true)).unwrap_err().code,
            ErrorCode::INVALID_TYPE_ON_FIELD_IN_RECORD
        );
    }

    #[test]
    fn datetimes_in_every_offset_form() {
        let f = field(DataType::Datetime);
        for s in [
            "2024-02-29T10:00:00Z",
            "2024-02-29T11:00:00+01:00",
            "2024-02-29T11:00:00.000+0100",
            "2024-02-29T10:00:00",
        ] {
            let Value::Datetime(d) = coerce(&f, &json!(s)).unwrap() else {
                panic!()
            };
            assert_eq!(d.to_rfc3339(), "2024-02-29T10:00:00+00:00", "{s}");
        }
        assert!(coerce(&f, &json!("2023-02-29T10:00:00Z")).is_err());
        assert!(coerce(&field(DataType::Date), &json!("2023-02-29")).is_err());
        assert!(coerce(&field(DataType::Date), &json!("2024-02-29")).is_ok());
    }

    #[test]
    fn formats() {
        let e = field(DataType::Email);
        assert!(coerce(&e, &json!("a.b+c@example.co.uk")).is_ok());
        assert_eq!(
            coerce(&e, &json!("nope@")).unwrap_err().code,
            ErrorCode::INVALID_EMAIL_ADDRESS
        );
        let p = field(DataType::Phone);
        assert!(coerce(&p, &json!("+1 (415) 555-0100 ext 12")).is_ok());
        assert!(coerce(&p, &json!("call me")).is_err());
        let u = field(DataType::Url);
        assert!(coerce(&u, &json!("https://example.com/x?y=1")).is_ok());
        assert!(coerce(&u, &json!("example.com")).is_ok());
        assert!(coerce(&u, &json!("not a url")).is_err());
        assert!(coerce(&u, &json!("javascript:alert(1)")).is_err());
    }
}
