//! Date literal resolution at month, quarter and year boundaries and on leap
//! days, plus conversion to UTC bounds in real time zones.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc, Weekday};
use mosaic_soql::date_literal::{local_today, start_of_day_utc};
use mosaic_soql::{
    date_range_to_utc, parse_query, resolve_date_literal, Condition, DateLiteral, DateRange,
    Literal,
};

/// Parses the literal through the query parser, so the table also checks spelling.
fn literal(text: &str) -> DateLiteral {
    let q = parse_query(&format!("SELECT Id FROM X WHERE D = {text}")).expect("parses");
    match q.where_ {
        Some(Condition::Compare { value, .. }) => match value.literal {
            Literal::DateLiteral(l) => l,
            other => panic!("{text} parsed as {other:?}"),
        },
        other => panic!("{text} parsed as {other:?}"),
    }
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// (today, week start, literal, first day, first day after)
const CASES: &[(&str, Weekday, &str, &str, &str)] = &[
    // New Year's Day 2024, a Monday.
    (
        "2024-01-01",
        Weekday::Sun,
        "YESTERDAY",
        "2023-12-31",
        "2024-01-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "TODAY",
        "2024-01-01",
        "2024-01-02",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "TOMORROW",
        "2024-01-02",
        "2024-01-03",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "THIS_WEEK",
        "2023-12-31",
        "2024-01-07",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "LAST_WEEK",
        "2023-12-24",
        "2023-12-31",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "NEXT_WEEK",
        "2024-01-07",
        "2024-01-14",
    ),
    (
        "2024-01-01",
        Weekday::Mon,
        "THIS_WEEK",
        "2024-01-01",
        "2024-01-08",
    ),
    (
        "2024-01-01",
        Weekday::Mon,
        "LAST_WEEK",
        "2023-12-25",
        "2024-01-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "LAST_MONTH",
        "2023-12-01",
        "2024-01-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "THIS_MONTH",
        "2024-01-01",
        "2024-02-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "NEXT_MONTH",
        "2024-02-01",
        "2024-03-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "LAST_QUARTER",
        "2023-10-01",
        "2024-01-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "THIS_QUARTER",
        "2024-01-01",
        "2024-04-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "NEXT_QUARTER",
        "2024-04-01",
        "2024-07-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "LAST_YEAR",
        "2023-01-01",
        "2024-01-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "THIS_YEAR",
        "2024-01-01",
        "2025-01-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "NEXT_YEAR",
        "2025-01-01",
        "2026-01-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "LAST_N_DAYS:0",
        "2024-01-01",
        "2024-01-02",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "LAST_N_DAYS:1",
        "2023-12-31",
        "2024-01-02",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "NEXT_N_DAYS:1",
        "2024-01-02",
        "2024-01-03",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "NEXT_N_DAYS:0",
        "2024-01-02",
        "2024-01-02",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "N_DAYS_AGO:1",
        "2023-12-31",
        "2024-01-01",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "LAST_90_DAYS",
        "2023-10-03",
        "2024-01-02",
    ),
    (
        "2024-01-01",
        Weekday::Sun,
        "NEXT_90_DAYS",
        "2024-01-02",
        "2024-04-01",
    ),
    // Leap day 2024, a Thursday.
    (
        "2024-02-29",
        Weekday::Sun,
        "YESTERDAY",
        "2024-02-28",
        "2024-02-29",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "TOMORROW",
        "2024-03-01",
        "2024-03-02",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "THIS_WEEK",
        "2024-02-25",
        "2024-03-03",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "LAST_MONTH",
        "2024-01-01",
        "2024-02-01",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "THIS_MONTH",
        "2024-02-01",
        "2024-03-01",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "NEXT_MONTH",
        "2024-03-01",
        "2024-04-01",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "THIS_QUARTER",
        "2024-01-01",
        "2024-04-01",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "LAST_YEAR",
        "2023-01-01",
        "2024-01-01",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "NEXT_YEAR",
        "2025-01-01",
        "2026-01-01",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "LAST_N_DAYS:365",
        "2023-03-01",
        "2024-03-01",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "N_DAYS_AGO:366",
        "2023-02-28",
        "2023-03-01",
    ),
    (
        "2024-02-29",
        Weekday::Sun,
        "NEXT_N_DAYS:366",
        "2024-03-01",
        "2025-03-02",
    ),
    // New Year's Eve 2023, a Sunday: the week starts today.
    (
        "2023-12-31",
        Weekday::Sun,
        "THIS_WEEK",
        "2023-12-31",
        "2024-01-07",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "LAST_WEEK",
        "2023-12-24",
        "2023-12-31",
    ),
    (
        "2023-12-31",
        Weekday::Mon,
        "THIS_WEEK",
        "2023-12-25",
        "2024-01-01",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "TOMORROW",
        "2024-01-01",
        "2024-01-02",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "NEXT_MONTH",
        "2024-01-01",
        "2024-02-01",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "LAST_QUARTER",
        "2023-07-01",
        "2023-10-01",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "THIS_QUARTER",
        "2023-10-01",
        "2024-01-01",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "NEXT_QUARTER",
        "2024-01-01",
        "2024-04-01",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "THIS_YEAR",
        "2023-01-01",
        "2024-01-01",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "NEXT_YEAR",
        "2024-01-01",
        "2025-01-01",
    ),
    (
        "2023-12-31",
        Weekday::Sun,
        "NEXT_N_DAYS:2",
        "2024-01-01",
        "2024-01-03",
    ),
    // Quarter edges.
    (
        "2024-03-31",
        Weekday::Sun,
        "LAST_MONTH",
        "2024-02-01",
        "2024-03-01",
    ),
    (
        "2024-03-31",
        Weekday::Sun,
        "LAST_QUARTER",
        "2023-10-01",
        "2024-01-01",
    ),
    (
        "2024-03-31",
        Weekday::Sun,
        "THIS_QUARTER",
        "2024-01-01",
        "2024-04-01",
    ),
    (
        "2024-03-31",
        Weekday::Sun,
        "NEXT_QUARTER",
        "2024-04-01",
        "2024-07-01",
    ),
    (
        "2024-04-01",
        Weekday::Sun,
        "YESTERDAY",
        "2024-03-31",
        "2024-04-01",
    ),
    (
        "2024-04-01",
        Weekday::Sun,
        "THIS_WEEK",
        "2024-03-31",
        "2024-04-07",
    ),
    (
        "2024-04-01",
        Weekday::Sun,
        "LAST_QUARTER",
        "2024-01-01",
        "2024-04-01",
    ),
    (
        "2024-04-01",
        Weekday::Sun,
        "THIS_QUARTER",
        "2024-04-01",
        "2024-07-01",
    ),
    (
        "2024-07-15",
        Weekday::Sun,
        "LAST_QUARTER",
        "2024-04-01",
        "2024-07-01",
    ),
    (
        "2024-07-15",
        Weekday::Sun,
        "THIS_QUARTER",
        "2024-07-01",
        "2024-10-01",
    ),
    (
        "2024-07-15",
        Weekday::Sun,
        "NEXT_QUARTER",
        "2024-10-01",
        "2025-01-01",
    ),
    (
        "2024-11-15",
        Weekday::Sun,
        "THIS_QUARTER",
        "2024-10-01",
        "2025-01-01",
    ),
    (
        "2024-11-15",
        Weekday::Sun,
        "NEXT_QUARTER",
        "2025-01-01",
        "2025-04-01",
    ),
    // Non-leap February, a Saturday.
    (
        "2025-03-01",
        Weekday::Sun,
        "YESTERDAY",
        "2025-02-28",
        "2025-03-01",
    ),
    (
        "2025-03-01",
        Weekday::Sun,
        "LAST_MONTH",
        "2025-02-01",
        "2025-03-01",
    ),
    (
        "2025-03-01",
        Weekday::Sun,
        "THIS_WEEK",
        "2025-02-23",
        "2025-03-02",
    ),
    (
        "2025-03-01",
        Weekday::Sat,
        "THIS_WEEK",
        "2025-03-01",
        "2025-03-08",
    ),
    (
        "2025-03-01",
        Weekday::Sat,
        "NEXT_WEEK",
        "2025-03-08",
        "2025-03-15",
    ),
];

#[test]
fn date_literal_table() {
    let mut failures = Vec::new();
    for (today, week_start, text, start, end) in CASES {
        let got = resolve_date_literal(literal(text), day(today), *week_start);
        let want = DateRange {
            start: day(start),
            end_exclusive: day(end),
        };
        if got != Some(want) {
            failures.push(format!(
                "{text} on {today} (week from {week_start:?}): want {want:?}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_literal_resolves_to_a_nonempty_range_except_next_zero_days() {
    let today = day("2024-02-29");
    for text in [
        "YESTERDAY",
        "TODAY",
        "TOMORROW",
        "LAST_WEEK",
        "THIS_WEEK",
        "NEXT_WEEK",
        "LAST_MONTH",
        "THIS_MONTH",
        "NEXT_MONTH",
        "LAST_QUARTER",
        "THIS_QUARTER",
        "NEXT_QUARTER",
        "LAST_YEAR",
        "THIS_YEAR",
        "NEXT_YEAR",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
        "LAST_N_DAYS:3",
        "NEXT_N_DAYS:3",
        "N_DAYS_AGO:3",
    ] {
        let r = resolve_date_literal(literal(text), today, Weekday::Sun).expect("in range");
        assert!(r.start < r.end_exclusive, "{text}: {r:?}");
        assert_eq!(literal(text).to_soql(), text);
    }
}

#[test]
fn resolution_at_the_edge_of_the_calendar_is_none_not_a_panic() {
    assert_eq!(
        resolve_date_literal(DateLiteral::Tomorrow, NaiveDate::MAX, Weekday::Sun),
        None
    );
    assert_eq!(
        resolve_date_literal(DateLiteral::NextYear, NaiveDate::MAX, Weekday::Sun),
        None
    );
    assert_eq!(
        resolve_date_literal(
            DateLiteral::LastNDays(100_000),
            NaiveDate::MIN,
            Weekday::Sun
        ),
        None
    );
    assert_eq!(
        resolve_date_literal(DateLiteral::LastWeek, NaiveDate::MIN, Weekday::Sun),
        None
    );
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

#[test]
fn ranges_convert_to_utc_in_the_tenant_zone() {
    let ny = chrono_tz::America::New_York;
    let today =
        resolve_date_literal(DateLiteral::Today, day("2024-01-01"), Weekday::Sun).expect("range");
    assert_eq!(
        date_range_to_utc(today, &ny),
        Some((utc("2024-01-01T05:00:00Z"), utc("2024-01-02T05:00:00Z")))
    );

    // The spring-forward day is 23 hours long.
    let dst =
        resolve_date_literal(DateLiteral::Today, day("2024-03-10"), Weekday::Sun).expect("range");
    assert_eq!(
        date_range_to_utc(dst, &ny),
        Some((utc("2024-03-10T05:00:00Z"), utc("2024-03-11T04:00:00Z")))
    );

    let plus_one = FixedOffset::east_opt(3600).expect("offset");
    assert_eq!(
        date_range_to_utc(today, &plus_one),
        Some((utc("2023-12-31T23:00:00Z"), utc("2024-01-01T23:00:00Z")))
    );
    assert_eq!(
        date_range_to_utc(today, &Utc),
        Some((utc("2024-01-01T00:00:00Z"), utc("2024-01-02T00:00:00Z")))
    );
}

#[test]
fn a_day_whose_midnight_does_not_exist_starts_when_the_gap_ends() {
    // Brazil started DST at local midnight on 2018-11-04: 00:00 jumped to 01:00 (-02:00).
    let sp = chrono_tz::America::Sao_Paulo;
    assert_eq!(
        start_of_day_utc(day("2018-11-04"), &sp),
        Some(utc("2018-11-04T03:00:00Z"))
    );
    assert_eq!(
        start_of_day_utc(day("2018-11-03"), &sp),
        Some(utc("2018-11-03T03:00:00Z"))
    );
}

#[test]
fn today_is_the_local_calendar_day() {
    let tokyo = chrono_tz::Asia::Tokyo;
    assert_eq!(
        local_today(utc("2024-01-31T20:00:00Z"), &tokyo),
        day("2024-02-01")
    );
    assert_eq!(
        local_today(
            utc("2024-01-31T20:00:00Z"),
            &chrono_tz::America::Los_Angeles
        ),
        day("2024-01-31")
    );
}

/// (today, fiscal start month, literal, first day, first day after); weeks start on Sunday.
const UNIT_CASES: &[(&str, u32, &str, &str, &str)] = &[
    // Thursday 2024-02-01; the week began Sunday 2024-01-28.
    (
        "2024-02-01",
        1,
        "LAST_N_WEEKS:2",
        "2024-01-14",
        "2024-01-28",
    ),
    (
        "2024-02-01",
        1,
        "NEXT_N_WEEKS:1",
        "2024-02-04",
        "2024-02-11",
    ),
    ("2024-02-01", 1, "N_WEEKS_AGO:1", "2024-01-21", "2024-01-28"),
    (
        "2024-02-01",
        1,
        "LAST_N_MONTHS:12",
        "2023-02-01",
        "2024-02-01",
    ),
    (
        "2024-02-01",
        1,
        "NEXT_N_MONTHS:2",
        "2024-03-01",
        "2024-05-01",
    ),
    (
        "2024-02-01",
        1,
        "N_MONTHS_AGO:13",
        "2023-01-01",
        "2023-02-01",
    ),
    (
        "2024-02-01",
        1,
        "LAST_N_QUARTERS:1",
        "2023-10-01",
        "2024-01-01",
    ),
    (
        "2024-02-01",
        1,
        "NEXT_N_QUARTERS:4",
        "2024-04-01",
        "2025-04-01",
    ),
    (
        "2024-02-01",
        1,
        "N_QUARTERS_AGO:4",
        "2023-01-01",
        "2023-04-01",
    ),
    (
        "2024-02-01",
        1,
        "LAST_N_YEARS:2",
        "2022-01-01",
        "2024-01-01",
    ),
    (
        "2024-02-01",
        1,
        "NEXT_N_YEARS:1",
        "2025-01-01",
        "2026-01-01",
    ),
    ("2024-02-01", 1, "N_YEARS_AGO:1", "2023-01-01", "2024-01-01"),
    // A January fiscal year is the calendar year.
    (
        "2024-02-01",
        1,
        "THIS_FISCAL_QUARTER",
        "2024-01-01",
        "2024-04-01",
    ),
    (
        "2024-02-01",
        1,
        "THIS_FISCAL_YEAR",
        "2024-01-01",
        "2025-01-01",
    ),
    // A fiscal year starting in April: FY quarters are Apr–Jun, Jul–Sep, Oct–Dec, Jan–Mar.
    (
        "2024-02-01",
        4,
        "THIS_FISCAL_YEAR",
        "2023-04-01",
        "2024-04-01",
    ),
    (
        "2024-02-01",
        4,
        "LAST_FISCAL_YEAR",
        "2022-04-01",
        "2023-04-01",
    ),
    (
        "2024-02-01",
        4,
        "NEXT_FISCAL_YEAR",
        "2024-04-01",
        "2025-04-01",
    ),
    (
        "2024-02-01",
        4,
        "THIS_FISCAL_QUARTER",
        "2024-01-01",
        "2024-04-01",
    ),
    (
        "2024-02-01",
        4,
        "LAST_FISCAL_QUARTER",
        "2023-10-01",
        "2024-01-01",
    ),
    (
        "2024-02-01",
        4,
        "NEXT_FISCAL_QUARTER",
        "2024-04-01",
        "2024-07-01",
    ),
    (
        "2024-02-01",
        4,
        "LAST_N_FISCAL_QUARTERS:2",
        "2023-07-01",
        "2024-01-01",
    ),
    (
        "2024-02-01",
        4,
        "NEXT_N_FISCAL_QUARTERS:2",
        "2024-04-01",
        "2024-10-01",
    ),
    (
        "2024-02-01",
        4,
        "N_FISCAL_QUARTERS_AGO:4",
        "2023-01-01",
        "2023-04-01",
    ),
    (
        "2024-02-01",
        4,
        "LAST_N_FISCAL_YEARS:2",
        "2021-04-01",
        "2023-04-01",
    ),
    (
        "2024-02-01",
        4,
        "NEXT_N_FISCAL_YEARS:1",
        "2024-04-01",
        "2025-04-01",
    ),
    (
        "2024-02-01",
        4,
        "N_FISCAL_YEARS_AGO:1",
        "2022-04-01",
        "2023-04-01",
    ),
    // On the fiscal year's first day, and with an October start.
    (
        "2024-04-01",
        4,
        "THIS_FISCAL_YEAR",
        "2024-04-01",
        "2025-04-01",
    ),
    (
        "2024-09-30",
        10,
        "THIS_FISCAL_QUARTER",
        "2024-07-01",
        "2024-10-01",
    ),
    (
        "2024-10-01",
        10,
        "THIS_FISCAL_QUARTER",
        "2024-10-01",
        "2025-01-01",
    ),
    (
        "2024-10-01",
        10,
        "LAST_FISCAL_YEAR",
        "2023-10-01",
        "2024-10-01",
    ),
];

#[test]
fn unit_and_fiscal_literals_resolve_to_whole_units() {
    for (today, start, text, from, to) in UNIT_CASES {
        let got = mosaic_soql::resolve_date_literal_fiscal(
            literal(text),
            day(today),
            Weekday::Sun,
            *start,
        );
        assert_eq!(
            got,
            Some(DateRange {
                start: day(from),
                end_exclusive: day(to),
            }),
            "{text} on {today} (fiscal start {start})"
        );
        assert_eq!(literal(text).to_soql(), *text, "canonical spelling");
    }
}
