//! Splits query text into tokens. Strings are validated here and decoded by
//! the parser, which knows whether it is reading a LIKE pattern.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};

use crate::ast::Span;
use crate::error::ParseError;
use crate::limits::MAX_QUERY_LEN;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Ident,
    /// Span includes the quotes.
    String,
    /// Optional sign, digits, optional fraction.
    Number,
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Comma,
    Dot,
    LParen,
    RParen,
    Colon,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Characters SOQL allows after a backslash inside a string literal.
/// (`\uXXXX` is checked separately: it needs four hex digits.)
pub(crate) const STRING_ESCAPES: &[u8] = b"'\"\\nNrRtTbBfF_%";

pub(crate) fn check_length(src: &str) -> Result<(), ParseError> {
    if src.len() > MAX_QUERY_LEN && src.chars().count() > MAX_QUERY_LEN {
        let cut = src
            .char_indices()
            .nth(MAX_QUERY_LEN)
            .map_or(src.len(), |(i, _)| i);
        return Err(ParseError::at(
            src,
            cut,
            format!("query is longer than {MAX_QUERY_LEN} characters"),
        ));
    }
    Ok(())
}

/// Tokenises `src[start..]`, reporting positions relative to the whole `src`.
pub(crate) fn tokenize(src: &str, start: usize) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = start;
    let err = |at: usize, msg: String| ParseError::at(src, at, msg);
    while i < bytes.len() {
        let b = bytes[i];
        let begin = i;
        let single = |kind: TokenKind| Token {
            kind,
            span: Span::new(begin, begin + 1),
        };
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                tokens.push(Token {
                    kind: TokenKind::Ident,
                    span: Span::new(begin, i),
                });
                continue;
            }
            b'\'' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(err(begin, "unterminated string literal".into())),
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => match bytes.get(i + 1) {
                            Some(c) if STRING_ESCAPES.contains(c) => i += 2,
                            Some(b'u')
                                if bytes
                                    .get(i + 2..i + 6)
                                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                            {
                                i += 6
                            }
                            _ => {
                                return Err(err(
                                    i,
                                    "invalid escape sequence in string literal".into(),
                                ))
                            }
                        },
                        Some(_) => i += 1,
                    }
                }
                tokens.push(Token {
                    kind: TokenKind::String,
                    span: Span::new(begin, i),
                });
                continue;
            }
            b'0'..=b'9' => {
                if let Some((kind, end)) = lex_date(src, begin)? {
                    tokens.push(Token {
                        kind,
                        span: Span::new(begin, end),
                    });
                    i = end;
                } else {
                    i = lex_number(bytes, begin);
                    tokens.push(Token {
                        kind: TokenKind::Number,
                        span: Span::new(begin, i),
                    });
                }
                continue;
            }
            b'-' | b'+' => {
                if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i = lex_number(bytes, begin + 1);
                    tokens.push(Token {
                        kind: TokenKind::Number,
                        span: Span::new(begin, i),
                    });
                    continue;
                }
                if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
                    return Err(err(begin, "comments are not supported".into()));
                }
                return Err(err(begin, format!("unexpected token: '{}'", b as char)));
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                return Err(err(begin, "comments are not supported".into()));
            }
            b',' => tokens.push(single(TokenKind::Comma)),
            b'.' => tokens.push(single(TokenKind::Dot)),
            b'(' => tokens.push(single(TokenKind::LParen)),
            b')' => tokens.push(single(TokenKind::RParen)),
            b':' => tokens.push(single(TokenKind::Colon)),
            b'=' => tokens.push(single(TokenKind::Eq)),
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                tokens.push(Token {
                    kind: TokenKind::Ne,
                    span: Span::new(begin, begin + 2),
                });
                i += 2;
                continue;
            }
            b'<' => {
                let (kind, len) = match bytes.get(i + 1) {
                    Some(b'=') => (TokenKind::Le, 2),
                    Some(b'>') => (TokenKind::Ne, 2),
                    _ => (TokenKind::Lt, 1),
                };
                tokens.push(Token {
                    kind,
                    span: Span::new(begin, begin + len),
                });
                i += len;
                continue;
            }
            b'>' => {
                let (kind, len) = if bytes.get(i + 1) == Some(&b'=') {
                    (TokenKind::Ge, 2)
                } else {
                    (TokenKind::Gt, 1)
                };
                tokens.push(Token {
                    kind,
                    span: Span::new(begin, begin + len),
                });
                i += len;
                continue;
            }
            _ => {
                let shown = src
                    .get(begin..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                return Err(err(begin, format!("unexpected token: '{shown}'")));
            }
        }
        i += 1;
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span::new(src.len(), src.len()),
    });
    Ok(tokens)
}

/// Digits, then optionally `.` and digits. `at` points at the first digit.
fn lex_number(bytes: &[u8], at: usize) -> usize {
    let mut i = at;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    i
}

fn digits(bytes: &[u8], at: usize, n: usize) -> Option<u32> {
    let slice = bytes.get(at..at + n)?;
    if !slice.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        slice
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')),
    )
}

/// `YYYY-MM-DD` optionally followed by `Thh:mm:ss[.fff](Z|±hh:mm|±hhmm)`.
/// Returns `None` when the text does not look like a date at all.
fn lex_date(src: &str, at: usize) -> Result<Option<(TokenKind, usize)>, ParseError> {
    let b = src.as_bytes();
    let shape = digits(b, at, 4).is_some()
        && b.get(at + 4) == Some(&b'-')
        && digits(b, at + 5, 2).is_some()
        && b.get(at + 7) == Some(&b'-')
        && digits(b, at + 8, 2).is_some();
    if !shape {
        return Ok(None);
    }
    let (y, m, d) = (digits(b, at, 4), digits(b, at + 5, 2), digits(b, at + 8, 2));
    let date = match (y, m, d) {
        (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d),
        _ => None,
    };
    let Some(date) = date else {
        return Err(ParseError::at(src, at, "invalid date"));
    };
    let mut i = at + 10;
    if !(matches!(b.get(i), Some(b'T' | b't')) && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
        return Ok(Some((TokenKind::Date(date), i)));
    }
    let bad = |msg: &str| Err(ParseError::at(src, at, msg.to_string()));
    let time_shape = b.get(i + 3) == Some(&b':') && b.get(i + 6) == Some(&b':');
    let (Some(hh), Some(mm), Some(ss)) = (
        digits(b, i + 1, 2),
        digits(b, i + 4, 2),
        digits(b, i + 7, 2),
    ) else {
        return bad("invalid datetime");
    };
    if !time_shape {
        return bad("invalid datetime");
    }
    i += 9;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let n = j - frac_start;
        if n == 0 || n > 9 {
            return bad("invalid datetime fraction");
        }
        let frac = digits(b, frac_start, n).unwrap_or(0);
        nanos = frac * 10u32.pow((9 - n) as u32);
        i = j;
    }
    let Some(time) = NaiveTime::from_hms_nano_opt(hh, mm, ss, nanos) else {
        return bad("invalid datetime");
    };
    let offset_secs: i32 = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            // `+hh:mm` as Salesforce documents, or `+hhmm` as Mosaic prints.
            let colon = b.get(i + 3) == Some(&b':');
            let minutes_at = if colon { i + 4 } else { i + 3 };
            let (Some(oh), Some(om)) = (digits(b, i + 1, 2), digits(b, minutes_at, 2)) else {
                return bad("invalid datetime offset");
            };
            if oh > 23 || om > 59 {
                return bad("invalid datetime offset");
            }
            i = minutes_at + 2;
            let secs = (oh * 3600 + om * 60) as i32;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return bad("datetime needs a time zone: Z or +hh:mm / -hh:mm"),
    };
    let naive = date.and_time(time);
    let utc = FixedOffset::east_opt(offset_secs)
        .and_then(|off| off.from_local_datetime(&naive).single())
        .map(|dt| dt.with_timezone(&Utc));
    match utc {
        Some(dt) => Ok(Some((TokenKind::DateTime(dt), i))),
        None => bad("invalid datetime"),
    }
}
