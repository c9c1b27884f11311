//! The one error type of the crate: every failure carries a byte offset and a
//! line/column into the formula source.

use std::fmt;

/// What went wrong, coarsely; the message says precisely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text is not a formula (bad token, missing parenthesis, ...).
    Syntax,
    /// A field path the schema does not know, or an unknown `$` global.
    UnknownField,
    /// A function name that is not in the catalog.
    UnknownFunction,
    /// Wrong number of arguments.
    Arity,
    /// An operand or argument of the wrong type.
    Type,
    /// A limit from [`crate::limits`] was exceeded.
    LimitExceeded,
    /// A number left the range of exact decimals during evaluation.
    Overflow,
    /// A function got an argument it cannot work with (e.g. a bad regex).
    InvalidArgument,
}

/// A compile-time or evaluation-time error with its position in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormulaError {
    /// Human-readable; names the function and argument where one is involved.
    pub message: String,
    /// Byte offset into the source.
    pub position: usize,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Category of the error.
    pub kind: ErrorKind,
}

impl FormulaError {
    /// Builds an error at `position` of `src`, computing line and column.
    pub fn at(src: &str, position: usize, kind: ErrorKind, message: impl Into<String>) -> Self {
        let (line, column) = line_col(src, position);
        FormulaError {
            message: message.into(),
            position,
            line,
            column,
            kind,
        }
    }
}

/// 1-based line and column (in characters) of byte offset `pos` in `src`.
/// Offsets past the end or inside a character are clamped, never a panic.
pub fn line_col(src: &str, pos: usize) -> (u32, u32) {
    let mut line: u32 = 1;
    let mut col: u32 = 1;
    for (i, c) in src.char_indices() {
        if i >= pos {
            break;
        }
        if c == '\n' {
            line = line.saturating_add(1);
            col = 1;
        } else {
            col = col.saturating_add(1);
        }
    }
    (line, col)
}

impl fmt::Display for FormulaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (line {}, column {})",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for FormulaError {}
