//! Turns formula source into tokens, each with its byte offset.

use rust_decimal::Decimal;

use crate::error::{ErrorKind, FormulaError};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(Decimal),
    Str(String),
    /// An identifier; may start with `$` (globals such as `$User`).
    Ident(String),
    Dot,
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Amp,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    AndAnd,
    OrOr,
    Bang,
    Eof,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Number(n) => format!("number {n}"),
            Tok::Str(_) => "text literal".to_string(),
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Eof => "end of formula".to_string(),
            Tok::Dot => "'.'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Plus => "'+'".into(),
            Tok::Minus => "'-'".into(),
            Tok::Star => "'*'".into(),
            Tok::Slash => "'/'".into(),
            Tok::Caret => "'^'".into(),
            Tok::Amp => "'&'".into(),
            Tok::Eq => "'='".into(),
            Tok::Ne => "'<>'".into(),
            Tok::Lt => "'<'".into(),
            Tok::Gt => "'>'".into(),
            Tok::Le => "'<='".into(),
            Tok::Ge => "'>='".into(),
            Tok::AndAnd => "'&&'".into(),
            Tok::OrOr => "'||'".into(),
            Tok::Bang => "'!'".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// Splits `src` into tokens; the last one is always `Eof`.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, FormulaError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    let err = |pos: usize, msg: String| FormulaError::at(src, pos, ErrorKind::Syntax, msg);
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                match src.get(i + 2..).and_then(|rest| rest.find("*/")) {
                    Some(end) => i = i + 2 + end + 2,
                    None => return Err(err(start, "unterminated comment".into())),
                }
                continue;
            }
            // `.5` is a number, but not right after a name (`Account.1`).
            b'0'..=b'9' | b'.'
                if c != b'.'
                    || (bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                        && !matches!(
                            out.last(),
                            Some(Token {
                                tok: Tok::Ident(_) | Tok::RParen | Tok::Number(_),
                                ..
                            })
                        )) =>
            {
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i < bytes.len() && bytes[i] == b'.' {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let text = src.get(start..i).unwrap_or("");
                let n = parse_number_literal(text).ok_or_else(|| {
                    err(start, format!("number {text} is too large or too precise"))
                })?;
                out.push(Token {
                    tok: Tok::Number(n),
                    pos: start,
                });
                continue;
            }
            b'"' | b'\'' => {
                let (s, next) = lex_string(src, i, c)?;
                out.push(Token {
                    tok: Tok::Str(s),
                    pos: start,
                });
                i = next;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let name = src.get(start..i).unwrap_or("").to_string();
                if name == "$" {
                    return Err(err(
                        start,
                        "'$' must be followed by a name such as $User".into(),
                    ));
                }
                out.push(Token {
                    tok: Tok::Ident(name),
                    pos: start,
                });
                continue;
            }
            _ => {}
        }
        let next = bytes.get(i + 1).copied();
        let (tok, len) = match (c, next) {
            (b'=', Some(b'=')) => (Tok::Eq, 2),
            (b'=', _) => (Tok::Eq, 1),
            (b'!', Some(b'=')) => (Tok::Ne, 2),
            (b'!', _) => (Tok::Bang, 1),
            (b'<', Some(b'>')) => (Tok::Ne, 2),
            (b'<', Some(b'=')) => (Tok::Le, 2),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', Some(b'=')) => (Tok::Ge, 2),
            (b'>', _) => (Tok::Gt, 1),
            (b'&', Some(b'&')) => (Tok::AndAnd, 2),
            (b'&', _) => (Tok::Amp, 1),
            (b'|', Some(b'|')) => (Tok::OrOr, 2),
            (b'.', _) => (Tok::Dot, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'+', _) => (Tok::Plus, 1),
            (b'-', _) => (Tok::Minus, 1),
            (b'*', _) => (Tok::Star, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'^', _) => (Tok::Caret, 1),
            _ => {
                let ch = src
                    .get(start..)
                    .and_then(|r| r.chars().next())
                    .unwrap_or('?');
                return Err(err(start, format!("unexpected character '{ch}'")));
            }
        };
        out.push(Token { tok, pos: start });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}

fn parse_number_literal(text: &str) -> Option<Decimal> {
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    // Digits beyond Decimal's 28 places round; integers too large are errors.
    trimmed.parse::<Decimal>().ok()
}

/// Lexes a string literal starting at the quote at `start`; returns the
/// unescaped text and the offset after the closing quote.
fn lex_string(src: &str, start: usize, quote: u8) -> Result<(String, usize), FormulaError> {
    let mut out = String::new();
    let rest = src.get(start + 1..).unwrap_or("");
    let mut chars = rest.char_indices();
    while let Some((off, c)) = chars.next() {
        let at = start + 1 + off;
        if c == quote as char {
            return Ok((out, at + 1));
        }
        if c == '\\' {
            let Some((_, e)) = chars.next() else { break };
            let un = match e {
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'b' => '\u{8}',
                'f' => '\u{c}',
                '"' => '"',
                '\'' => '\'',
                '\\' => '\\',
                _ => {
                    return Err(FormulaError::at(
                        src,
                        at,
                        ErrorKind::Syntax,
                        format!("invalid escape sequence '\\{e}'"),
                    ))
                }
            };
            out.push(un);
        } else {
            out.push(c);
        }
    }
    Err(FormulaError::at(
        src,
        start,
        ErrorKind::Syntax,
        "unterminated text literal",
    ))
}
