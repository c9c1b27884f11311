//! Numbers, currency, percentages, dates and times as a user reads them:
//! one place that knows the conventions of a handful of locales (en_US,
//! en_GB, de_DE, fr_FR, es_ES, ja_JP; anything else falls back to en_US)
//! and shows datetimes in the user's time zone. Exact decimals throughout:
//! a value is grouped and punctuated, never rounded through a float.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

/// The locale users get when none is set.
pub const DEFAULT_LOCALE: &str = "en_US";
/// The currency amounts are in until tenants choose one.
pub const DEFAULT_CURRENCY: &str = "USD";

/// Where a currency symbol goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SymbolAt {
    /// `$1,234.56`
    Before,
    /// `1.234,56 €` (separated by a no-break space)
    After,
}

/// How one locale writes numbers, dates and times.
#[derive(Debug, Clone, Copy)]
pub struct Locale {
    pub code: &'static str,
    decimal: char,
    group: &'static str,
    /// Integer digits below which no group separator is written
    /// (CLDR's minimum grouping digits: Spanish writes `1234` but `12.345`).
    min_grouping: usize,
    symbol_at: SymbolAt,
    percent_space: &'static str,
    date: &'static str,
    time: &'static str,
    /// BCP 47 tag for `<html lang>`.
    pub lang: &'static str,
}

const NBSP: &str = "\u{a0}";
const NNBSP: &str = "\u{202f}";

pub const LOCALES: [Locale; 6] = [
    Locale {
        code: "en_US",
        decimal: '.',
        group: ",",
        min_grouping: 1,
        symbol_at: SymbolAt::Before,
        percent_space: "",
        date: "%-m/%-d/%Y",
        time: "%-I:%M %p",
        lang: "en-US",
    },
    Locale {
        code: "en_GB",
        decimal: '.',
        group: ",",
        min_grouping: 1,
        symbol_at: SymbolAt::Before,
        percent_space: "",
        date: "%d/%m/%Y",
        time: "%H:%M",
        lang: "en-GB",
    },
    Locale {
        code: "de_DE",
        decimal: ',',
        group: ".",
        min_grouping: 1,
        symbol_at: SymbolAt::After,
        percent_space: NBSP,
        date: "%d.%m.%Y",
        time: "%H:%M",
        lang: "de-DE",
    },
    Locale {
        code: "fr_FR",
        decimal: ',',
        group: NNBSP,
        min_grouping: 1,
        symbol_at: SymbolAt::After,
        percent_space: NNBSP,
        date: "%d/%m/%Y",
        time: "%H:%M",
        lang: "fr-FR",
    },
    Locale {
        code: "es_ES",
        decimal: ',',
        group: ".",
        min_grouping: 2,
        symbol_at: SymbolAt::After,
        percent_space: NBSP,
        date: "%-d/%-m/%Y",
        time: "%H:%M",
        lang: "es-ES",
    },
    Locale {
        code: "ja_JP",
        decimal: '.',
        group: ",",
        min_grouping: 1,
        symbol_at: SymbolAt::Before,
        percent_space: "",
        date: "%Y/%m/%d",
        time: "%H:%M",
        lang: "ja-JP",
    },
];

impl Locale {
    /// The locale named `code` (`de_DE`, `de-DE`), else en_US.
    pub fn named(code: &str) -> Locale {
        let code = code.replace('-', "_");
        LOCALES
            .iter()
            .find(|l| l.code.eq_ignore_ascii_case(&code))
            .copied()
            .unwrap_or(LOCALES[0])
    }

    /// A decimal with grouped integer digits and this locale's decimal mark.
    pub fn number(&self, d: &Decimal) -> String {
        let s = d.to_string();
        let (neg, s) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.as_str()),
        };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let mut out = String::with_capacity(s.len() + 8);
        if neg {
            out.push('-');
        }
        let digits = int.len();
        let grouped = digits > 3 && digits >= 3 + self.min_grouping;
        for (i, ch) in int.chars().enumerate() {
            if grouped && i > 0 && (digits - i) % 3 == 0 {
                out.push_str(self.group);
            }
            out.push(ch);
        }
        if !frac.is_empty() {
            out.push(self.decimal);
            out.push_str(frac);
        }
        out
    }

    /// An amount of `currency` (ISO 4217) with `scale` decimals shown.
    pub fn currency(&self, d: &Decimal, currency: &str, scale: Option<u32>) -> String {
        let digits = match currency {
            "JPY" | "KRW" => 0,
            _ => scale.unwrap_or(2),
        };
        let mut v =
            d.round_dp_with_strategy(digits, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        v.rescale(digits);
        let symbol = match currency {
            "USD" => "$",
            "EUR" => "€",
            "GBP" => "£",
            "JPY" => "¥",
            other => other,
        };
        let n = self.number(&v.abs());
        let sign = if v.is_sign_negative() && !v.is_zero() {
            "-"
        } else {
            ""
        };
        match self.symbol_at {
            SymbolAt::Before => format!("{sign}{symbol}{n}"),
            SymbolAt::After => format!("{sign}{n}{NBSP}{symbol}"),
        }
    }

    /// A percentage (the stored value is already in percent: 12.5 → 12.5 %).
    pub fn percent(&self, d: &Decimal) -> String {
        format!("{}{}%", self.number(d), self.percent_space)
    }

    pub fn date(&self, d: &NaiveDate) -> String {
        d.format(self.date).to_string()
    }

    pub fn time(&self, t: &NaiveTime) -> String {
        t.format(self.time).to_string()
    }

    /// A UTC instant in `zone`, as date and time.
    pub fn datetime(&self, d: &DateTime<Utc>, zone: Tz) -> String {
        let local = d.with_timezone(&zone);
        format!("{} {}", local.format(self.date), local.format(self.time))
    }

    /// A number typed by a user of this locale as a plain decimal string
    /// (`1.234,5` → `1234.5` for de_DE), or the input unchanged when it
    /// is not a number in this locale (the runtime then names the field).
    pub fn parse_number(&self, input: &str) -> String {
        let t: String = input
            .trim()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '\u{a0}' && *c != '\u{202f}')
            .collect();
        let t = t.trim_end_matches('%');
        let grouping = self.group.trim();
        let without_groups = if grouping.is_empty() {
            t.to_string()
        } else {
            t.replace(grouping, "")
        };
        let normalized = without_groups.replace(self.decimal, ".");
        if normalized.parse::<Decimal>().is_ok() {
            normalized
        } else {
            input.trim().to_string()
        }
    }
}

/// A time zone by IANA name, else UTC.
pub fn zone(name: &str) -> Tz {
    name.parse::<Tz>().unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn numbers_and_currency_per_locale() {
        let cases = [
            ("en_US", "$1,234,567.50", "12.5%", "1,234.5"),
            ("en_GB", "$1,234,567.50", "12.5%", "1,234.5"),
            ("de_DE", "1.234.567,50\u{a0}$", "12,5\u{a0}%", "1.234,5"),
            (
                "fr_FR",
                "1\u{202f}234\u{202f}567,50\u{a0}$",
                "12,5\u{202f}%",
                "1\u{202f}234,5",
            ),
            ("es_ES", "1.234.567,50\u{a0}$", "12,5\u{a0}%", "1234,5"),
            ("ja_JP", "$1,234,567.50", "12.5%", "1,234.5"),
            ("xx_XX", "$1,234,567.50", "12.5%", "1,234.5"),
        ];
        for (code, money, pct, num) in cases {
            let l = Locale::named(code);
            assert_eq!(l.currency(&d("1234567.5"), "USD", Some(2)), money, "{code}");
            assert_eq!(l.percent(&d("12.5")), pct, "{code}");
            assert_eq!(l.number(&d("1234.5")), num, "{code}");
        }
        assert_eq!(
            Locale::named("ja_JP").currency(&d("1234.5"), "JPY", Some(2)),
            "¥1,235"
        );
        assert_eq!(
            Locale::named("en_US").currency(&d("-3"), "USD", None),
            "-$3.00"
        );
        assert_eq!(Locale::named("es_ES").number(&d("12345")), "12.345");
    }

    #[test]
    fn dates_and_times_in_the_users_zone() {
        let at = DateTime::parse_from_rfc3339("2024-03-31T00:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Locale::named("en_US").datetime(&at, zone("America/Los_Angeles")),
            "3/30/2024 5:30 PM"
        );
        assert_eq!(
            Locale::named("de_DE").datetime(&at, zone("Europe/Berlin")),
            "31.03.2024 01:30"
        );
        assert_eq!(
            Locale::named("ja_JP").datetime(&at, zone("Asia/Tokyo")),
            "2024/03/31 09:30"
        );
        assert_eq!(
            Locale::named("en_GB").datetime(&at, zone("nowhere")),
            "31/03/2024 00:30"
        );
        let day = NaiveDate::from_ymd_opt(2024, 1, 5).unwrap();
        assert_eq!(Locale::named("en_US").date(&day), "1/5/2024");
        assert_eq!(Locale::named("fr_FR").date(&day), "05/01/2024");
    }

    #[test]
    fn typed_numbers_are_read_in_the_users_locale() {
        assert_eq!(Locale::named("de_DE").parse_number("1.234,5"), "1234.5");
        assert_eq!(Locale::named("en_US").parse_number(" 1,234.5 "), "1234.5");
        assert_eq!(Locale::named("fr_FR").parse_number("1 234,5"), "1234.5");
        assert_eq!(Locale::named("en_US").parse_number("abc"), "abc");
    }
}
