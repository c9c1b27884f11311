//! Function implementations, dispatched on [`Func`]. Arguments arrive
//! evaluated and type-checked; a null or an unexpected variant yields null
//! (text arguments read null as "").

use chrono::{Datelike, Timelike};
use regex::{Regex, RegexBuilder};
use rust_decimal::prelude::*;

use crate::convert;
use crate::error::ErrorKind;
use crate::eval::{text_result, RtError, RtResult};
use crate::functions::Func;
use crate::limits::{MAX_REGEX_SIZE, MAX_STRING_LEN};
use crate::value::{EvalContext, FValue};
use crate::{dates, math, text};

pub(crate) struct Args(pub Vec<FValue>);

impl Args {
    pub(crate) fn get(&self, i: usize) -> &FValue {
        self.0.get(i).unwrap_or(&FValue::Null)
    }
    pub(crate) fn num(&self, i: usize) -> Option<Decimal> {
        match self.get(i) {
            FValue::Number(n) => Some(*n),
            _ => None,
        }
    }
    /// Integer part of a number argument, saturating at the i64 range.
    pub(crate) fn int(&self, i: usize) -> Option<i64> {
        self.num(i).map(|n| {
            let t = n.trunc();
            i64::try_from(t).unwrap_or(if t.is_sign_negative() {
                i64::MIN
            } else {
                i64::MAX
            })
        })
    }
    pub(crate) fn text(&self, i: usize) -> &str {
        match self.get(i) {
            FValue::Text(s) => s,
            _ => "",
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Compiles a REGEX pattern to match whole strings, with a size bound.
pub(crate) fn compile_regex(pattern: &str, whole: bool) -> Result<Regex, String> {
    let full = if whole {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_string()
    };
    RegexBuilder::new(&full)
        .size_limit(MAX_REGEX_SIZE)
        .dfa_size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| {
            format!(
                "invalid regular expression: {}",
                e.to_string().lines().last().unwrap_or("")
            )
        })
}

fn bool_v(b: bool) -> RtResult {
    Ok(FValue::Boolean(b))
}

fn num_v(n: Option<Decimal>) -> RtResult {
    Ok(n.map_or(FValue::Null, FValue::Number))
}

pub(crate) fn call(
    func: Func,
    args: Vec<FValue>,
    ctx: &EvalContext,
    re: Option<&Regex>,
) -> RtResult {
    let a = Args(args);
    match func {
        // Logical functions with lazy semantics are separate nodes; these
        // are the eager ones.
        Func::IsBlank => bool_v(a.get(0).is_blank()),
        Func::IsNull => bool_v(a.get(0).is_null()),
        Func::BlankValue => Ok(if a.get(0).is_blank() {
            a.get(1).clone()
        } else {
            a.get(0).clone()
        }),
        Func::NullValue => Ok(if a.get(0).is_null() {
            a.get(1).clone()
        } else {
            a.get(0).clone()
        }),
        Func::Coalesce => Ok(a
            .0
            .iter()
            .find(|v| !v.is_blank())
            .cloned()
            .unwrap_or(FValue::Null)),
        Func::IsNumber => bool_v(convert::parse_number(a.text(0)).is_some()),
        Func::IsPickval => bool_v(a.text(0) == a.text(1)),
        Func::Includes => {
            let want = a.text(1);
            bool_v(!want.is_empty() && a.text(0).split(';').any(|v| v.trim() == want))
        }
        Func::IsNew | Func::IsClone | Func::IsChanged | Func::PriorValue => Ok(FValue::Null),
        Func::If | Func::Case | Func::And | Func::Or | Func::Not => Ok(FValue::Null),
        Func::Text => text_result(convert::to_text(a.get(0))),
        Func::Value => num_v(convert::parse_number(a.text(0))),
        Func::Regex | Func::RegexReplace => {
            let owned;
            let re = match re {
                Some(r) => r,
                None => {
                    owned = compile_regex(a.text(1), func == Func::Regex).map_err(|m| {
                        RtError::new(ErrorKind::InvalidArgument, format!("{}: {m}", func.name()))
                    })?;
                    &owned
                }
            };
            if func == Func::Regex {
                bool_v(re.is_match(a.text(0)))
            } else {
                text::regex_replace(re, a.text(0), a.text(2))
            }
        }
        Func::Today | Func::Now | Func::TimeNow => Ok(dates::clock(func, ctx)),
        f if math::handles(f) => math::call(f, &a),
        f if dates::handles(f) => dates::call(f, &a),
        f => text::call(f, &a),
    }
}

/// Checks a planned text size before building it.
pub(crate) fn check_len(bytes: usize) -> Result<(), RtError> {
    if bytes > MAX_STRING_LEN {
        return Err(RtError::new(
            ErrorKind::LimitExceeded,
            format!("text result of {bytes} bytes exceeds the limit of {MAX_STRING_LEN}"),
        ));
    }
    Ok(())
}

/// Day/second accessors shared by date functions.
pub(crate) fn weekday_sunday_one(d: &chrono::NaiveDate) -> u32 {
    d.weekday().num_days_from_sunday() + 1
}

pub(crate) fn ms_of(t: &chrono::NaiveTime) -> u32 {
    t.nanosecond() / 1_000_000
}
