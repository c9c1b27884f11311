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
