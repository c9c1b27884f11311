//! Typed field values as the runtime sees them (after coercion from JSON and
//! after decoding from storage).

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    /// Exact decimal for number, currency and percent fields.
    Number(Decimal),
    Boolean(bool),
    Date(NaiveDate),
    /// Always UTC.
    Datetime(DateTime<Utc>),
    Time(NaiveTime),
    Location {
        latitude: Decimal,
        longitude: Decimal,
    },
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Canonical wire text of a datetime: RFC 3339, UTC, millisecond precision,
/// fixed width so that text order equals time order.
pub fn format_datetime(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Canonical text of a time of day (`HH:MM:SS.mmm`).
pub fn format_time(t: &NaiveTime) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

/// Canonical text of a date (`YYYY-MM-DD`).
pub fn format_date(d: &NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Salesforce's datetime wire format: `2024-01-31T10:00:00.000+0000`.
pub fn sf_datetime(d: &DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// An exact decimal as a JSON number with its digits intact.
pub fn number(d: &Decimal) -> serde_json::Value {
    serde_json::from_str::<serde_json::Number>(&d.to_string())
        .map(serde_json::Value::Number)
        .unwrap_or_else(|_| serde_json::Value::String(d.to_string()))
}

/// A value as the Data API writes it in JSON.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match v {
        Value::Null => Json::Null,
        Value::Text(s) => Json::String(s.clone()),
        Value::Number(d) => number(d),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Date(d) => Json::String(format_date(d)),
        Value::Datetime(d) => Json::String(sf_datetime(d)),
        Value::Time(t) => Json::String(format!("{}Z", format_time(t))),
        Value::Location {
            latitude,
            longitude,
        } => serde_json::json!({"latitude": number(latitude), "longitude": number(longitude)}),
    }
}
