//! Conversions between values and text: TEXT(), VALUE(), DATEVALUE() and
//! friends share these.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;

use crate::value::FValue;

/// A number as TEXT() renders it: plain digits, no exponent, no trailing
/// fractional zeros.
pub(crate) fn number_text(n: &Decimal) -> String {
    let n = n.normalize();
    if n.is_zero() {
        return "0".to_string();
    }
    n.to_string()
}

pub(crate) fn date_text(d: &NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn datetime_text(d: &DateTime<Utc>) -> String {
    d.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

pub(crate) fn time_text(t: &NaiveTime) -> String {
    t.format("%H:%M:%S%.3fZ").to_string()
}

/// TEXT() of any value; null is empty text.
pub(crate) fn to_text(v: &FValue) -> String {
    match v {
        FValue::Null => String::new(),
        FValue::Text(s) => s.clone(),
        FValue::Number(n) => number_text(n),
        FValue::Boolean(true) => "true".to_string(),
        FValue::Boolean(false) => "false".to_string(),
        FValue::Date(d) => date_text(d),
        FValue::Datetime(d) => datetime_text(d),
        FValue::Time(t) => time_text(t),
    }
}

/// VALUE(): optional sign, digits, optional fraction; surrounding spaces
/// allowed. Anything else is not a number.
pub(crate) fn parse_number(s: &str) -> Option<Decimal> {
    let t = s.trim();
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if body.is_empty() || body == "." {
        return None;
    }
    let mut dots = 0;
    for c in body.chars() {
        match c {
            '0'..='9' => {}
            '.' => dots += 1,
            _ => return None,
        }
    }
    if dots > 1 {
        return None;
    }
    let unsigned = body.strip_suffix('.').unwrap_or(body);
    let unsigned = if unsigned.starts_with('.') {
        format!("0{unsigned}")
    } else {
        unsigned.to_string()
    };
    let n: Decimal = unsigned.parse().ok()?;
    Some(if t.starts_with('-') { -n } else { n })
}

/// `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// `YYYY-MM-DD HH:MM:SS` (also with `T`, fractional seconds, a trailing `Z`,
/// or a date alone for midnight), always GMT.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let t = s.trim();
    let t = t.strip_suffix('Z').unwrap_or(t);
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(dt.and_utc());
        }
    }
    parse_date(t)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc())
}

/// `HH:MM:SS.MS`, `HH:MM:SS` or `HH:MM`, optionally with a trailing `Z`.
pub(crate) fn parse_time(s: &str) -> Option<NaiveTime> {
    let t = s.trim();
    let t = t.strip_suffix('Z').unwrap_or(t);
    for fmt in ["%H:%M:%S%.f", "%H:%M"] {
        if let Ok(tm) = NaiveTime::parse_from_str(t, fmt) {
            return Some(tm);
        }
    }
    None
}
