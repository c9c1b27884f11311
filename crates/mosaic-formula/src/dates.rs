//! Date, datetime and time functions. Dates are proleptic Gregorian;
//! datetimes are UTC; times are times of day with millisecond precision.

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use rust_decimal::prelude::*;

use crate::builtins::{ms_of, weekday_sunday_one, Args};
use crate::convert;
use crate::eval::{time_millis, RtResult};
use crate::functions::Func;
use crate::value::{EvalContext, FValue};

pub(crate) fn handles(f: Func) -> bool {
    matches!(
        f,
        Func::Date
            | Func::DateValue
            | Func::DatetimeValue
            | Func::TimeValue
            | Func::Year
            | Func::Month
            | Func::Day
            | Func::Hour
            | Func::Minute
            | Func::Second
            | Func::Millisecond
            | Func::Weekday
            | Func::AddMonths
            | Func::IsoWeek
            | Func::IsoYear
            | Func::DayOfYear
            | Func::UnixTimestamp
            | Func::FromUnixTime
            | Func::FormatDuration
            | Func::EoMonth
            | Func::Quarter
    )
}

/// TODAY, NOW and TIMENOW.
pub(crate) fn clock(f: Func, ctx: &EvalContext) -> FValue {
    match f {
        Func::Now => FValue::Datetime(ctx.now),
        Func::TimeNow => FValue::Time(ctx.now.time()),
        _ => {
            let local = TimeDelta::try_minutes(i64::from(ctx.tz_offset_minutes))
                .and_then(|d| ctx.now.checked_add_signed(d))
                .unwrap_or(ctx.now);
            FValue::Date(local.date_naive())
        }
    }
}

fn last_day_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    first.checked_add_months(Months::new(1))?.pred_opt()
}

/// ADDMONTHS: a month end maps to the month end; otherwise the day is kept,
/// clamped to the length of the target month.
pub(crate) fn add_months(d: NaiveDate, months: i64) -> Option<NaiveDate> {
    let is_month_end = d.succ_opt().is_some_and(|n| n.month() != d.month());
    let total = i64::from(d.year())
        .checked_mul(12)?
        .checked_add(i64::from(d.month0()))?
        .checked_add(months)?;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = u32::try_from(total.rem_euclid(12)).ok()? + 1;
    let last = last_day_of_month(year, month)?;
    if is_month_end || d.day() > last.day() {
        Some(last)
    } else {
        NaiveDate::from_ymd_opt(year, month, d.day())
    }
}

fn num(n: impl Into<Decimal>) -> FValue {
    FValue::Number(n.into())
}

fn date_part(a: &Args, f: impl Fn(&NaiveDate) -> FValue) -> RtResult {
    Ok(match a.get(0) {
        FValue::Date(d) => f(d),
        _ => FValue::Null,
    })
}

fn time_part(a: &Args, f: impl Fn(&NaiveTime) -> u32) -> RtResult {
    Ok(match a.get(0) {
        FValue::Time(t) => num(f(t)),
        _ => FValue::Null,
    })
}

fn from_unix_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// `HH:MM:SS`, with `D:` in front when days are wanted.
fn duration_text(total_seconds: i64, with_days: bool) -> String {
    let sign = if total_seconds < 0 { "-" } else { "" };
    let s = total_seconds.unsigned_abs();
    let (days, rest) = if with_days {
        (s / 86_400, s % 86_400)
    } else {
        (0, s)
    };
    let (h, m, sec) = (rest / 3600, (rest % 3600) / 60, rest % 60);
    if with_days {
        format!("{sign}{days}:{h:02}:{m:02}:{sec:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{sec:02}")
    }
}

pub(crate) fn call(f: Func, a: &Args) -> RtResult {
    Ok(match f {
        Func::Date => match (a.int(0), a.int(1), a.int(2)) {
            (Some(y), Some(m), Some(d)) => {
                let ymd = (i32::try_from(y), u32::try_from(m), u32::try_from(d));
                match ymd {
                    (Ok(y), Ok(m), Ok(d)) => {
                        NaiveDate::from_ymd_opt(y, m, d).map_or(FValue::Null, FValue::Date)
                    }
                    _ => FValue::Null,
                }
            }
            _ => FValue::Null,
        },
        Func::DateValue => match a.get(0) {
            FValue::Datetime(dt) => FValue::Date(dt.date_naive()),
            FValue::Date(d) => FValue::Date(*d),
            FValue::Text(s) => convert::parse_date(s)
                .or_else(|| convert::parse_datetime(s).map(|d| d.date_naive()))
                .map_or(FValue::Null, FValue::Date),
            _ => FValue::Null,
        },
        Func::DatetimeValue => match a.get(0) {
            FValue::Date(d) => d
                .and_hms_opt(0, 0, 0)
                .map_or(FValue::Null, |dt| FValue::Datetime(dt.and_utc())),
            FValue::Datetime(d) => FValue::Datetime(*d),
            FValue::Text(s) => convert::parse_datetime(s).map_or(FValue::Null, FValue::Datetime),
            _ => FValue::Null,
        },
        Func::TimeValue => match a.get(0) {
            FValue::Datetime(d) => FValue::Time(d.time()),
            FValue::Time(t) => FValue::Time(*t),
            FValue::Text(s) => convert::parse_time(s).map_or(FValue::Null, FValue::Time),
            _ => FValue::Null,
        },
        Func::Year => return date_part(a, |d| num(d.year())),
        Func::Month => return date_part(a, |d| num(d.month())),
        Func::Day => return date_part(a, |d| num(d.day())),
        Func::Weekday => return date_part(a, |d| num(weekday_sunday_one(d))),
        Func::DayOfYear => return date_part(a, |d| num(d.ordinal())),
        Func::IsoWeek => return date_part(a, |d| num(d.iso_week().week())),
        Func::IsoYear => return date_part(a, |d| num(d.iso_week().year())),
        Func::Quarter => return date_part(a, |d| num(d.month0() / 3 + 1)),
        Func::Hour => return time_part(a, |t| t.hour()),
        Func::Minute => return time_part(a, |t| t.minute()),
        Func::Second => return time_part(a, |t| t.second()),
        Func::Millisecond => return time_part(a, ms_of),
        Func::AddMonths => match (a.get(0), a.int(1)) {
            (FValue::Date(d), Some(m)) => add_months(*d, m).map_or(FValue::Null, FValue::Date),
            _ => FValue::Null,
        },
        Func::EoMonth => {
            let months = if a.len() > 1 { a.int(1) } else { Some(0) };
            match (a.get(0), months) {
                (FValue::Date(d), Some(m)) => d
                    .with_day(1)
                    .and_then(|first| add_months(first, m))
                    .and_then(|t| last_day_of_month(t.year(), t.month()))
                    .map_or(FValue::Null, FValue::Date),
                _ => FValue::Null,
            }
        }
        Func::UnixTimestamp => match a.get(0) {
            FValue::Date(d) => d
                .and_hms_opt(0, 0, 0)
                .map_or(FValue::Null, |dt| num(dt.and_utc().timestamp())),
            FValue::Datetime(d) => num(d.timestamp()),
            FValue::Time(t) => num(t.num_seconds_from_midnight()),
            _ => FValue::Null,
        },
        Func::FromUnixTime => match a.num(0) {
            Some(secs) => secs
                .checked_mul(Decimal::from(1000))
                .and_then(|ms| i64::try_from(ms.floor()).ok())
                .and_then(from_unix_millis)
                .map_or(FValue::Null, FValue::Datetime),
            None => FValue::Null,
        },
        Func::FormatDuration => match (a.get(0), a.get(1)) {
            (FValue::Number(n), second) => match i64::try_from(n.trunc()) {
                Ok(secs) => {
                    FValue::Text(duration_text(secs, matches!(second, FValue::Boolean(true))))
                }
                Err(_) => FValue::Null,
            },
            (FValue::Datetime(x), FValue::Datetime(y)) => FValue::Text(duration_text(
                y.signed_duration_since(*x).num_seconds().abs(),
                true,
            )),
            (FValue::Time(x), FValue::Time(y)) => FValue::Text(duration_text(
                ((time_millis(y) - time_millis(x)) / 1000).abs(),
                false,
            )),
            _ => FValue::Null,
        },
        _ => FValue::Null,
    })
}
