//! A field's value as a page shows it: text formatted for the user's
//! locale and zone, references as links to the referenced record, URLs as
//! links only for http, https and mailto, encrypted text masked. The
//! result is plain text and a URL; templates escape both.

use crate::format::{Locale, DEFAULT_CURRENCY};
use chrono_tz::Tz;
use mosaic_meta::FieldDef;
use mosaic_runtime::layouts::FieldView;
use mosaic_runtime::list_views::PageRow;
use mosaic_types::{DataType, Value};

/// Characters of an encrypted value left visible.
const ENCRYPTED_VISIBLE: usize = 4;
const MASK: char = '•';

/// How a user reads values: locale and time zone.
#[derive(Debug, Clone, Copy)]
pub struct Reader {
    pub locale: Locale,
    pub zone: Tz,
}

/// One displayed value.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub text: String,
    /// A link target, when the value is one.
    pub href: Option<String>,
    /// Numbers are right-aligned.
    pub numeric: bool,
}

/// Percent-encodes one path segment.
pub fn segment(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .replace('+', "%20")
}

/// The page of a record.
pub fn record_href(object: &str, id: &str) -> String {
    format!("/r/{}/{}", segment(object), segment(id))
}

/// Whether a URL may be a link: http, https and mailto only.
pub fn safe_link(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:"))
        && !url.chars().any(|c| c.is_control())
}

fn picklist_label(f: &FieldDef, value: &str) -> String {
    f.picklist_values
        .iter()
        .find(|p| p.value == value)
        .map(|p| p.label.clone())
        .unwrap_or_else(|| value.to_string())
}

/// The masked form of an encrypted value: bullets and the last characters.
pub fn masked(s: &str) -> String {
    let n = s.chars().count();
    let keep = if n > ENCRYPTED_VISIBLE * 2 {
        ENCRYPTED_VISIBLE
    } else {
        0
    };
    let mut out: String = std::iter::repeat_n(MASK, n.saturating_sub(keep).clamp(4, 12)).collect();
    out.extend(s.chars().skip(n - keep));
    out
}

impl Reader {
    /// A value of field `f` in `row` (`target` is the api name of the
    /// object a reference points at).
    pub fn cell(&self, f: &FieldView, row: &PageRow, target: Option<&str>) -> Cell {
        let v = row.value(&f.name);
        if v.is_null() {
            return Cell::default();
        }
        if f.is_reference() {
            let id = match v {
                Value::Text(s) => s.clone(),
                _ => String::new(),
            };
            let name = row.names.get(&f.name).cloned();
            let href = match (target, &name) {
                (Some(t), Some(_)) => Some(record_href(t, &id)),
                _ => None,
            };
            return Cell {
                text: name.unwrap_or(id),
                href,
                numeric: false,
            };
        }
        self.value(f, v)
    }

    /// A value of a field's type, without references resolved.
    pub fn value(&self, f: &FieldView, v: &Value) -> Cell {
        let text = |s: String| Cell {
            text: s,
            href: None,
            numeric: false,
        };
        let number = |s: String| Cell {
            text: s,
            href: None,
            numeric: true,
        };
        let def = f.def.as_ref();
        match (f.shown_type, v) {
            (_, Value::Null) => Cell::default(),
            (DataType::EncryptedText, Value::Text(s)) => text(masked(s)),
            (DataType::Url, Value::Text(s)) => Cell {
                href: safe_link(s).then(|| s.clone()),
                text: s.clone(),
                numeric: false,
            },
            (DataType::Email, Value::Text(s)) => Cell {
                href: (!s.contains(['<', '>', '"', '\'', '\n'])).then(|| format!("mailto:{s}")),
                text: s.clone(),
                numeric: false,
            },
            (DataType::Picklist, Value::Text(s)) => text(
                def.map(|d| picklist_label(d, s))
                    .unwrap_or_else(|| s.clone()),
            ),
            (DataType::MultiPicklist, Value::Text(s)) => text(
                s.split(';')
                    .map(|x| {
                        def.map(|d| picklist_label(d, x))
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            (DataType::Currency, Value::Number(d)) => number(self.locale.currency(
                d,
                DEFAULT_CURRENCY,
                def.and_then(|f| f.scale),
            )),
            (DataType::Percent, Value::Number(d)) => number(self.locale.percent(d)),
            (_, Value::Number(d)) => number(self.locale.number(d)),
            (_, Value::Boolean(b)) => text(if *b { "Yes" } else { "No" }.into()),
            (_, Value::Date(d)) => text(self.locale.date(d)),
            (_, Value::Datetime(d)) => text(self.locale.datetime(d, self.zone)),
            (_, Value::Time(t)) => text(self.locale.time(t)),
            (
                _,
                Value::Location {
                    latitude,
                    longitude,
                },
            ) => text(format!(
                "{}, {}",
                self.locale.number(latitude),
                self.locale.number(longitude)
            )),
            (_, Value::Text(s)) => text(s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_and_mail_urls_are_links() {
        for ok in ["http://x.test", "HTTPS://x.test/a?b", "mailto:a@b.test"] {
            assert!(safe_link(ok), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            " javascript:x",
            "data:text/html,x",
            "vbscript:x",
            "//x.test",
            "http://x\n.test",
        ] {
            assert!(!safe_link(bad), "{bad}");
        }
    }

    #[test]
    fn encrypted_values_are_masked() {
        assert_eq!(masked("4111111111111111"), "••••••••••••1111");
        assert_eq!(masked("abc"), "••••");
        assert!(!masked("secret-value").contains("secret"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("a b/c?"), "a%20b%2Fc%3F");
    }
}
