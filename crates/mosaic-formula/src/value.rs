//! Values at evaluation time, and what the interpreter asks of the caller.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;

/// A formula value. Text is never distinguished from blank text: functions
/// treat `Null` where text is expected as `""`, as Salesforce does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FValue {
    Null,
    Text(String),
    Number(Decimal),
    Boolean(bool),
    Date(NaiveDate),
    Datetime(DateTime<Utc>),
    Time(NaiveTime),
}

impl FValue {
    pub fn is_null(&self) -> bool {
        matches!(self, FValue::Null)
    }

    /// Null or empty text.
    pub fn is_blank(&self) -> bool {
        match self {
            FValue::Null => true,
            FValue::Text(s) => s.is_empty(),
            _ => false,
        }
    }
}

impl fmt::Display for FValue {
    /// Renders as `TEXT()` would.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::convert::to_text(self))
    }
}

/// The record a formula is evaluated against.
pub trait Record {
    /// Current value at a canonical path (from [`crate::ResolvedField`]).
    fn get(&self, path: &[String]) -> FValue;
    /// Value before the update being evaluated (PRIORVALUE).
    fn prior(&self, _path: &[String]) -> FValue {
        FValue::Null
    }
    /// True while inserting (ISNEW).
    fn is_new(&self) -> bool {
        false
    }
    /// True when the update changes the field (ISCHANGED).
    fn is_changed(&self, _path: &[String]) -> bool {
        false
    }
    /// True when the record is being cloned (ISCLONE).
    fn is_clone(&self) -> bool {
        false
    }
}

/// Who and when the formula is evaluated for.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    pub now: DateTime<Utc>,
    pub user_id: &'a str,
    pub username: &'a str,
    pub org_id: &'a str,
    /// The user's offset from UTC in minutes; TODAY() is the date there.
    pub tz_offset_minutes: i32,
}

impl<'a> EvalContext<'a> {
    /// A context at `now` in UTC with empty identities.
    pub fn at(now: DateTime<Utc>) -> Self {
        EvalContext {
            now,
            user_id: "",
            username: "",
            org_id: "",
            tz_offset_minutes: 0,
        }
    }
}

/// A record kept in memory: values (and prior values) by canonical path.
/// Handy for tests and for the ad-hoc evaluate endpoint.
#[derive(Debug, Clone, Default)]
pub struct MapRecord {
    pub values: HashMap<Vec<String>, FValue>,
    pub priors: HashMap<Vec<String>, FValue>,
    pub new: bool,
    pub clone: bool,
}

impl MapRecord {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value at `path` (dot-separated canonical path).
    pub fn set(&mut self, path: &str, value: FValue) {
        self.values.insert(split_path(path), value);
    }

    /// Sets the prior value at `path` (dot-separated canonical path).
    pub fn set_prior(&mut self, path: &str, value: FValue) {
        self.priors.insert(split_path(path), value);
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

impl Record for MapRecord {
    fn get(&self, path: &[String]) -> FValue {
        self.values.get(path).cloned().unwrap_or(FValue::Null)
    }
    fn prior(&self, path: &[String]) -> FValue {
        self.priors
            .get(path)
            .cloned()
            .unwrap_or_else(|| self.get(path))
    }
    fn is_new(&self) -> bool {
        self.new
    }
    fn is_changed(&self, path: &[String]) -> bool {
        if self.new {
            return false;
        }
        match self.priors.get(path) {
            Some(prior) => *prior != self.get(path),
            None => false,
        }
    }
    fn is_clone(&self) -> bool {
        self.clone
    }
}
