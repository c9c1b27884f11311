//! The one error type of this crate: a message anchored at a byte offset.

use std::fmt;

/// A syntax or limit error, pointing at the offending place in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Human text, Salesforce-like (`unexpected token: 'FORM'`).
    pub message: String,
    /// Byte offset into the source.
    pub position: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// How many characters of the offending line are shown on either side of the caret.
const EXCERPT_HALF_WIDTH: usize = 60;

impl ParseError {
    /// Builds an error at `position` (clamped to the source and to a char boundary).
    pub fn at(src: &str, position: usize, message: impl Into<String>) -> ParseError {
        let mut position = position.min(src.len());
        while !src.is_char_boundary(position) {
            position -= 1;
        }
        let before = &src[..position];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = src[line_start..position].chars().count() + 1;
        ParseError {
            message: message.into(),
            position,
            line,
            column,
        }
    }

    /// Renders the message, location and a caret under the offending column:
    ///
    /// ```text
    /// unexpected token: 'FORM' at line 1, column 13
    /// SELECT Name FORM Account
    ///             ^
    /// ```
    pub fn render(&self, src: &str) -> String {
        let mut out = format!(
            "{} at line {}, column {}",
            self.message, self.line, self.column
        );
        let Some(line_text) = src.split('\n').nth(self.line.saturating_sub(1)) else {
            return out;
        };
        let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
        let chars: Vec<char> = line_text.chars().collect();
        let caret_index = self.column.saturating_sub(1).min(chars.len());
        let from = caret_index.saturating_sub(EXCERPT_HALF_WIDTH);
        let to = (caret_index + EXCERPT_HALF_WIDTH).min(chars.len());
        let mut excerpt = String::new();
        let mut caret = String::new();
        if from > 0 {
            excerpt.push_str("...");
            caret.push_str("   ");
        }
        for (i, c) in chars[from..to].iter().enumerate() {
            let c = if c.is_control() && *c != '\t' {
                ' '
            } else {
                *c
            };
            excerpt.push(c);
            if from + i < caret_index {
                caret.push(if c == '\t' { '\t' } else { ' ' });
            }
        }
        if to < chars.len() {
            excerpt.push_str("...");
        }
        caret.push('^');
        out.push('\n');
        out.push_str(&excerpt);
        out.push('\n');
        out.push_str(&caret);
        out
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for ParseError {}
