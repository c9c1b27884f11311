//! Text functions. Positions and lengths count characters, not bytes.

use regex::Regex;
use rust_decimal::Decimal;

use crate::builtins::{check_len, Args};
use crate::eval::{text_result, RtResult};
use crate::functions::Func;
use crate::value::FValue;

fn count(n: Option<i64>) -> Option<usize> {
    n.map(|v| usize::try_from(v.max(0)).unwrap_or(usize::MAX))
}

fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

fn is_blank_char(c: char) -> bool {
    c == ' ' || c == '\t'
}

pub(crate) fn regex_replace(re: &Regex, text: &str, rep: &str) -> RtResult {
    // Bound the output before building it.
    let matches = re.find_iter(text).take(MAX_MATCHES + 1).count();
    let refs = rep.matches('$').count();
    // Matches do not overlap, so all `$` expansions together add at most
    // refs * text.len().
    let bound = text
        .len()
        .saturating_add(matches.saturating_mul(rep.len()))
        .saturating_add(refs.saturating_mul(text.len()));
    check_len(bound)?;
    text_result(re.replace_all(text, rep).into_owned())
}

const MAX_MATCHES: usize = 100_000;

fn pad(a: &Args, left: bool) -> RtResult {
    let s = a.text(0);
    let Some(len) = count(a.int(1)) else {
        return Ok(FValue::Null);
    };
    let pad = if a.len() > 2 { a.text(2) } else { " " };
    let have = s.chars().count();
    if len <= have {
        return Ok(FValue::Text(first_chars(s, len).to_string()));
    }
    if pad.is_empty() {
        return Ok(FValue::Text(s.to_string()));
    }
    check_len(len.saturating_mul(4))?;
    let fill: String = pad.chars().cycle().take(len - have).collect();
    // Salesforce omits leading (LPAD) and ending (RPAD) blank spaces: padding
    // with blanks, the default, leaves the text as it is.
    Ok(FValue::Text(if left {
        (fill + s).trim_start_matches(' ').to_string()
    } else {
        (s.to_string() + &fill).trim_end_matches(' ').to_string()
    }))
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_alnum = false;
    for c in s.chars() {
        if prev_alnum {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_alnum = c.is_alphanumeric();
    }
    out
}

/// The 18-character form of a 15-character id: three checksum characters,
/// one per 5-character chunk, encoding which characters are upper case.
pub(crate) fn case_safe_id(id: &str) -> String {
    if id.len() != 15 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return id.to_string();
    }
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut out = id.to_string();
    for chunk in id.as_bytes().chunks(5) {
        let mut bits = 0usize;
        for (i, b) in chunk.iter().enumerate() {
            if b.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(char::from(ALPHABET.get(bits).copied().unwrap_or(b'A')));
    }
    out
}

fn html_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn js_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            c => out.push(c),
        }
    }
    out
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn find(a: &Args) -> RtResult {
    let needle = a.text(0);
    let hay = a.text(1);
    let start = if a.len() > 2 {
        match a.int(2) {
            Some(s) => s,
            None => return Ok(FValue::Null),
        }
    } else {
        1
    };
    if needle.is_empty() || start < 1 {
        return Ok(FValue::Number(Decimal::ZERO));
    }
    let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
    let Some((byte_start, _)) = hay.char_indices().nth(skip) else {
        return Ok(FValue::Number(Decimal::ZERO));
    };
    let rest = hay.get(byte_start..).unwrap_or("");
    Ok(FValue::Number(match rest.find(needle) {
        Some(b) => {
            let chars_before = rest.get(..b).map_or(0, |p| p.chars().count());
            Decimal::from(skip + chars_before + 1)
        }
        None => Decimal::ZERO,
    }))
}

fn substitute(a: &Args) -> RtResult {
    let (s, old, new) = (a.text(0), a.text(1), a.text(2));
    if old.is_empty() {
        return Ok(FValue::Text(s.to_string()));
    }
    if new.len() > old.len() {
        let n = s.matches(old).count();
        check_len(
            s.len()
                .saturating_add(n.saturating_mul(new.len() - old.len())),
        )?;
    }
    Ok(FValue::Text(s.replace(old, new)))
}

pub(crate) fn call(f: Func, a: &Args) -> RtResult {
    let s = a.text(0);
    let t = |v: String| Ok(FValue::Text(v));
    match f {
        Func::Len => Ok(FValue::Number(Decimal::from(s.chars().count()))),
        Func::Left => match count(a.int(1)) {
            Some(n) => t(first_chars(s, n).to_string()),
            None => Ok(FValue::Null),
        },
        Func::Right => match count(a.int(1)) {
            Some(n) => {
                let total = s.chars().count();
                t(s.chars().skip(total.saturating_sub(n)).collect())
            }
            None => Ok(FValue::Null),
        },
        Func::Mid => match (a.int(1), count(a.int(2))) {
            (Some(start), Some(n)) => {
                let skip = usize::try_from(start.max(1) - 1).unwrap_or(usize::MAX);
                t(s.chars().skip(skip).take(n).collect())
            }
            _ => Ok(FValue::Null),
        },
        Func::Find => find(a),
        Func::Substitute => substitute(a),
        Func::Upper => text_result(s.to_uppercase()),
        Func::Lower => text_result(s.to_lowercase()),
        Func::Trim => t(s.trim_matches(is_blank_char).to_string()),
        Func::Ltrim => t(s.trim_start_matches(is_blank_char).to_string()),
        Func::Rtrim => t(s.trim_end_matches(is_blank_char).to_string()),
        Func::Lpad => pad(a, true),
        Func::Rpad => pad(a, false),
        Func::Contains => Ok(FValue::Boolean(s.contains(a.text(1)))),
        Func::Begins => Ok(FValue::Boolean(s.starts_with(a.text(1)))),
        Func::Ends => Ok(FValue::Boolean(s.ends_with(a.text(1)))),
        Func::Hyperlink => {
            let target = if a.len() > 2 {
                format!(" target=\"{}\"", html_encode(a.text(2)))
            } else {
                String::new()
            };
            text_result(format!(
                "<a href=\"{}\"{target}>{}</a>",
                html_encode(s),
                html_encode(a.text(1))
            ))
        }
        Func::Br => t("<br>".to_string()),
        Func::Image => {
            let mut out = format!(
                "<img src=\"{}\" alt=\"{}\"",
                html_encode(s),
                html_encode(a.text(1))
            );
            if let Some(h) = a.num(2) {
                out.push_str(&format!(" height=\"{}\"", crate::convert::number_text(&h)));
            }
            if let Some(w) = a.num(3) {
                out.push_str(&format!(" width=\"{}\"", crate::convert::number_text(&w)));
            }
            out.push_str(" border=\"0\"/>");
            text_result(out)
        }
        Func::CaseSafeId => t(case_safe_id(s)),
        Func::Initcap => text_result(initcap(s)),
        Func::Reverse => t(s.chars().rev().collect()),
        Func::Ascii => Ok(s.chars().next().map_or(FValue::Null, |c| {
            FValue::Number(Decimal::from(u32::from(c)))
        })),
        Func::Unichar => Ok(a
            .int(0)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(char::from_u32)
            .map_or(FValue::Null, |c| FValue::Text(c.to_string()))),
        Func::HtmlEncode => text_result(html_encode(s)),
        Func::JsEncode => text_result(js_encode(s)),
        Func::JsInHtmlEncode => text_result(html_encode(&js_encode(s))),
        Func::UrlEncode => text_result(url_encode(s)),
        Func::Concat => {
            let total: usize = (0..a.len()).map(|i| a.text(i).len()).sum();
            check_len(total)?;
            t((0..a.len()).map(|i| a.text(i)).collect())
        }
        Func::Rept => match count(a.int(1)) {
            Some(n) => {
                check_len(s.len().saturating_mul(n))?;
                t(s.repeat(n))
            }
            None => Ok(FValue::Null),
        },
        _ => Ok(FValue::Null),
    }
}
