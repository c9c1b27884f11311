//! Relative date literals (`TODAY`, `LAST_N_DAYS:30`, …) and their resolution
//! to concrete day ranges, following Salesforce's documented semantics.
//!
//! Resolution is two steps so this crate stays clock- and zone-free: first
//! [`resolve_date_literal`] gives local calendar days `[start, end)` for a given
//! "today"; then [`date_range_to_utc`] turns them into UTC instants in the
//! tenant's (or user's) time zone.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc, Weekday};

/// A relative date range. Quarters and years are calendar ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateLiteral {
    Yesterday,
    Today,
    Tomorrow,
    LastWeek,
    ThisWeek,
    NextWeek,
    LastMonth,
    ThisMonth,
    NextMonth,
    LastQuarter,
    ThisQuarter,
    NextQuarter,
    LastYear,
    ThisYear,
    NextYear,
    /// Today and the 90 days before it.
    Last90Days,
    /// The 90 days after today.
    Next90Days,
    /// Today and the `n` days before it (`LAST_N_DAYS:1` is yesterday and today).
    LastNDays(u32),
    /// The `n` days after today (today excluded).
    NextNDays(u32),
    /// The single day `n` days before today.
    NDaysAgo(u32),
    ThisFiscalQuarter,
    LastFiscalQuarter,
    NextFiscalQuarter,
    ThisFiscalYear,
    LastFiscalYear,
    NextFiscalYear,
    /// `LAST_N_WEEKS:n`, `NEXT_N_MONTHS:n`, `N_FISCAL_YEARS_AGO:n`, …: whole
    /// units before the current one, after it, or the single unit `n` ago.
    Units {
        rel: Relative,
        unit: DateUnit,
        n: u32,
    },
}

/// Where a `Units` literal lies relative to the current unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relative {
    /// `LAST_N_…:n`: the `n` whole units before the current one.
    Last,
    /// `NEXT_N_…:n`: the `n` whole units after the current one.
    Next,
    /// `N_…_AGO:n`: the single unit `n` units before the current one.
    Ago,
}

/// The unit of a `Units` literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateUnit {
    Week,
    Month,
    Quarter,
    Year,
    FiscalQuarter,
    FiscalYear,
}

const UNITS: [(&str, DateUnit); 6] = [
    ("WEEK", DateUnit::Week),
    ("MONTH", DateUnit::Month),
    ("QUARTER", DateUnit::Quarter),
    ("YEAR", DateUnit::Year),
    ("FISCAL_QUARTER", DateUnit::FiscalQuarter),
    ("FISCAL_YEAR", DateUnit::FiscalYear),
];

impl DateUnit {
    fn word(self) -> &'static str {
        UNITS
            .iter()
            .find(|(_, u)| *u == self)
            .map_or("", |(w, _)| w)
    }
}

/// Splits `LAST_N_WEEKS` / `NEXT_N_FISCAL_YEARS` / `N_MONTHS_AGO` into its parts.
fn units_name(name: &str) -> Option<(Relative, DateUnit)> {
    let upper = name.to_ascii_uppercase();
    let (rel, plural) = if let Some(rest) = upper.strip_prefix("LAST_N_") {
        (Relative::Last, rest)
    } else if let Some(rest) = upper.strip_prefix("NEXT_N_") {
        (Relative::Next, rest)
    } else if let Some(rest) = upper
        .strip_prefix("N_")
        .and_then(|r| r.strip_suffix("_AGO"))
    {
        (Relative::Ago, rest)
    } else {
        return None;
    };
    let singular = plural.strip_suffix('S')?;
    UNITS
        .iter()
        .find(|(w, _)| *w == singular)
        .map(|(_, u)| (rel, *u))
}

const FIXED: [(&str, DateLiteral); 23] = [
    ("YESTERDAY", DateLiteral::Yesterday),
    ("TODAY", DateLiteral::Today),
    ("TOMORROW", DateLiteral::Tomorrow),
    ("LAST_WEEK", DateLiteral::LastWeek),
    ("THIS_WEEK", DateLiteral::ThisWeek),
    ("NEXT_WEEK", DateLiteral::NextWeek),
    ("LAST_MONTH", DateLiteral::LastMonth),
    ("THIS_MONTH", DateLiteral::ThisMonth),
    ("NEXT_MONTH", DateLiteral::NextMonth),
    ("LAST_QUARTER", DateLiteral::LastQuarter),
    ("THIS_QUARTER", DateLiteral::ThisQuarter),
    ("NEXT_QUARTER", DateLiteral::NextQuarter),
    ("LAST_YEAR", DateLiteral::LastYear),
    ("THIS_YEAR", DateLiteral::ThisYear),
    ("NEXT_YEAR", DateLiteral::NextYear),
    ("LAST_90_DAYS", DateLiteral::Last90Days),
    ("NEXT_90_DAYS", DateLiteral::Next90Days),
    ("THIS_FISCAL_QUARTER", DateLiteral::ThisFiscalQuarter),
    ("LAST_FISCAL_QUARTER", DateLiteral::LastFiscalQuarter),
    ("NEXT_FISCAL_QUARTER", DateLiteral::NextFiscalQuarter),
    ("THIS_FISCAL_YEAR", DateLiteral::ThisFiscalYear),
    ("LAST_FISCAL_YEAR", DateLiteral::LastFiscalYear),
    ("NEXT_FISCAL_YEAR", DateLiteral::NextFiscalYear),
];

/// Literals that take `:n`.
const WITH_N: [&str; 3] = ["LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"];

impl DateLiteral {
    /// A literal without `:n`, by case-insensitive name.
    pub fn fixed(name: &str) -> Option<DateLiteral> {
        FIXED
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// True if `name` is a literal that needs `:n`.
    pub fn takes_n(name: &str) -> bool {
        WITH_N.iter().any(|k| k.eq_ignore_ascii_case(name)) || units_name(name).is_some()
    }

    /// A literal with `:n`, by case-insensitive name.
    pub fn with_n(name: &str, n: u32) -> Option<DateLiteral> {
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "LAST_N_DAYS" => Some(DateLiteral::LastNDays(n)),
            "NEXT_N_DAYS" => Some(DateLiteral::NextNDays(n)),
            "N_DAYS_AGO" => Some(DateLiteral::NDaysAgo(n)),
            _ => units_name(name).map(|(rel, unit)| DateLiteral::Units { rel, unit, n }),
        }
    }

    /// The canonical source spelling, e.g. `LAST_N_DAYS:7`.
    pub fn to_soql(self) -> String {
        match self {
            DateLiteral::LastNDays(n) => format!("LAST_N_DAYS:{n}"),
            DateLiteral::NextNDays(n) => format!("NEXT_N_DAYS:{n}"),
            DateLiteral::NDaysAgo(n) => format!("N_DAYS_AGO:{n}"),
            DateLiteral::Units { rel, unit, n } => match rel {
                Relative::Last => format!("LAST_N_{}S:{n}", unit.word()),
                Relative::Next => format!("NEXT_N_{}S:{n}", unit.word()),
                Relative::Ago => format!("N_{}S_AGO:{n}", unit.word()),
            },
            fixed => FIXED
                .iter()
                .find(|(_, v)| *v == fixed)
                .map_or_else(String::new, |(k, _)| (*k).to_string()),
        }
    }
}

/// Local calendar days `[start, end_exclusive)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateRange {
    pub start: NaiveDate,
    pub end_exclusive: NaiveDate,
}

fn add_days(d: NaiveDate, n: i64) -> Option<NaiveDate> {
    d.checked_add_signed(Duration::try_days(n)?)
}

fn first_of_month(year: i32, month0: i64) -> Option<NaiveDate> {
    // month0 may be outside 0..12; normalise into the year.
    let y = i64::from(year) + month0.div_euclid(12);
    let m = month0.rem_euclid(12) + 1;
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, u32::try_from(m).ok()?, 1)
}

/// `months` whole months starting at the month `offset` months from today's.
fn month_span(today: NaiveDate, offset: i64, months: i64) -> Option<DateRange> {
    let m0 = i64::from(today.month0()) + offset;
    Some(DateRange {
        start: first_of_month(today.year(), m0)?,
        end_exclusive: first_of_month(today.year(), m0 + months)?,
    })
}

fn days(start: NaiveDate, count: i64) -> Option<DateRange> {
    Some(DateRange {
        start,
        end_exclusive: add_days(start, count)?,
    })
}

/// Resolves a date literal to local days, for the given local `today` and the
/// locale's first day of the week (`Weekday::Sun` for en_US, Salesforce's default).
/// Fiscal literals use a fiscal year starting in January; see
/// [`resolve_date_literal_fiscal`].
///
/// Returns `None` only when the range would leave chrono's date range.
pub fn resolve_date_literal(
    lit: DateLiteral,
    today: NaiveDate,
    week_start: Weekday,
) -> Option<DateRange> {
    resolve_date_literal_fiscal(lit, today, week_start, 1)
}

/// Months from today's month back to the first month of its fiscal year,
/// for a fiscal year starting in `fiscal_start_month` (1–12; out of range is January).
pub fn months_into_fiscal_year(today: NaiveDate, fiscal_start_month: u32) -> i64 {
    let start0 = i64::from(fiscal_start_month.clamp(1, 12) - 1);
    (i64::from(today.month0()) - start0).rem_euclid(12)
}

/// [`resolve_date_literal`] with the tenant's fiscal year start month (1–12).
/// Fiscal years are standard ones: twelve calendar months from the start month.
pub fn resolve_date_literal_fiscal(
    lit: DateLiteral,
    today: NaiveDate,
    week_start: Weekday,
    fiscal_start_month: u32,
) -> Option<DateRange> {
    let into_fy = months_into_fiscal_year(today, fiscal_start_month);
    let fq_offset = -(into_fy % 3);
    let fy_offset = -into_fy;
    let since_week_start = (i64::from(today.weekday().num_days_from_monday())
        - i64::from(week_start.num_days_from_monday()))
    .rem_euclid(7);
    let week = add_days(today, -since_week_start)?;
    let quarter_offset = -i64::from(today.month0() % 3);
    match lit {
        DateLiteral::Yesterday => days(add_days(today, -1)?, 1),
        DateLiteral::Today => days(today, 1),
        DateLiteral::Tomorrow => days(add_days(today, 1)?, 1),
        DateLiteral::LastWeek => days(add_days(week, -7)?, 7),
        DateLiteral::ThisWeek => days(week, 7),
        DateLiteral::NextWeek => days(add_days(week, 7)?, 7),
        DateLiteral::LastMonth => month_span(today, -1, 1),
        DateLiteral::ThisMonth => month_span(today, 0, 1),
        DateLiteral::NextMonth => month_span(today, 1, 1),
        DateLiteral::LastQuarter => month_span(today, quarter_offset - 3, 3),
        DateLiteral::ThisQuarter => month_span(today, quarter_offset, 3),
        DateLiteral::NextQuarter => month_span(today, quarter_offset + 3, 3),
        DateLiteral::LastYear => month_span(today, -i64::from(today.month0()) - 12, 12),
        DateLiteral::ThisYear => month_span(today, -i64::from(today.month0()), 12),
        DateLiteral::NextYear => month_span(today, -i64::from(today.month0()) + 12, 12),
        DateLiteral::Last90Days => {
            resolve_date_literal(DateLiteral::LastNDays(90), today, week_start)
        }
        DateLiteral::Next90Days => {
            resolve_date_literal(DateLiteral::NextNDays(90), today, week_start)
        }
        DateLiteral::LastNDays(n) => Some(DateRange {
            start: add_days(today, -i64::from(n))?,
            end_exclusive: add_days(today, 1)?,
        }),
        DateLiteral::NextNDays(n) => days(add_days(today, 1)?, i64::from(n)),
        DateLiteral::NDaysAgo(n) => days(add_days(today, -i64::from(n))?, 1),
        DateLiteral::ThisFiscalQuarter => month_span(today, fq_offset, 3),
        DateLiteral::LastFiscalQuarter => month_span(today, fq_offset - 3, 3),
        DateLiteral::NextFiscalQuarter => month_span(today, fq_offset + 3, 3),
        DateLiteral::ThisFiscalYear => month_span(today, fy_offset, 12),
        DateLiteral::LastFiscalYear => month_span(today, fy_offset - 12, 12),
        DateLiteral::NextFiscalYear => month_span(today, fy_offset + 12, 12),
        DateLiteral::Units { rel, unit, n } => {
            let n = i64::from(n);
            if unit == DateUnit::Week {
                return match rel {
                    Relative::Last => days(add_days(week, -7 * n)?, 7 * n),
                    Relative::Next => days(add_days(week, 7)?, 7 * n),
                    Relative::Ago => days(add_days(week, -7 * n)?, 7),
                };
            }
            let (start, len) = match unit {
                DateUnit::Month => (0, 1),
                DateUnit::Quarter => (quarter_offset, 3),
                DateUnit::Year => (-i64::from(today.month0()), 12),
                DateUnit::FiscalQuarter => (fq_offset, 3),
                DateUnit::FiscalYear | DateUnit::Week => (fy_offset, 12),
            };
            match rel {
                Relative::Last => month_span(today, start - n * len, n * len),
                Relative::Next => month_span(today, start + len, n * len),
                Relative::Ago => month_span(today, start - n * len, len),
            }
        }
    }
}

/// The first instant of local day `day` in `tz`, as UTC. When local midnight
/// does not exist (a DST gap at midnight) the day starts when the gap ends;
/// when it is ambiguous, at the earlier instant.
pub fn start_of_day_utc<Tz: TimeZone>(day: NaiveDate, tz: &Tz) -> Option<DateTime<Utc>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    // Gaps are at most a few hours; probe minute by minute up to a day.
    for minutes in 0..(24 * 60) {
        let local = midnight.checked_add_signed(Duration::try_minutes(minutes)?)?;
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earliest, _) => return Some(earliest.with_timezone(&Utc)),
            LocalResult::None => {}
        }
    }
    None
}

/// Turns local days into UTC instants `[start, end)` in the time zone `tz`
/// (a `chrono_tz::Tz`, a `FixedOffset`, or `Utc`).
pub fn date_range_to_utc<Tz: TimeZone>(
    range: DateRange,
    tz: &Tz,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((
        start_of_day_utc(range.start, tz)?,
        start_of_day_utc(range.end_exclusive, tz)?,
    ))
}

/// The local calendar day of instant `now` in `tz` — the "today" to resolve against.
pub fn local_today<Tz: TimeZone>(now: DateTime<Utc>, tz: &Tz) -> NaiveDate {
    now.with_timezone(tz).date_naive()
}
