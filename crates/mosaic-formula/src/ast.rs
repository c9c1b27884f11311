//! The syntax tree `parse` produces, and a printer whose output re-parses to
//! the same tree.

use std::fmt;

use rust_decimal::Decimal;

/// A parsed expression. `pos` is the byte offset of the construct (the
/// operator for binary expressions, the name for calls). Equality ignores
/// positions: two trees are equal when they have the same shape and values.
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub pos: usize,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A non-negative number literal (`-` is a unary operator).
    Number(Decimal),
    Text(String),
    Boolean(bool),
    Null,
    /// A field path as written, e.g. `["Account", "Name"]` or `["$User", "Id"]`.
    Field(Vec<String>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// Function call; the name is upper-cased.
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Concat,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    And,
    Or,
}

/// Binding power of unary operators: tighter than `*` but looser than `^`,
/// so `-2^2` is `-(2^2)`.
pub(crate) const UNARY_BP: u8 = 7;
const ATOM_BP: u8 = 10;

impl BinaryOp {
    /// Left binding power; all binary operators are left-associative.
    pub(crate) fn bp(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq | BinaryOp::Ne => 3,
            BinaryOp::Lt | BinaryOp::Gt | BinaryOp::Le | BinaryOp::Ge => 4,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Concat => 5,
            BinaryOp::Mul | BinaryOp::Div => 6,
            BinaryOp::Pow => 8,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Pow => "^",
            BinaryOp::Concat => "&",
            BinaryOp::Eq => "=",
            BinaryOp::Ne => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::Gt => ">",
            BinaryOp::Le => "<=",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }
}

impl Expr {
    pub fn new(kind: ExprKind, pos: usize) -> Self {
        Expr { kind, pos }
    }

    /// Byte offset where the expression's text starts (its leftmost token,
    /// not counting an enclosing parenthesis).
    pub fn start(&self) -> usize {
        let mut e = self;
        while let ExprKind::Binary(_, l, _) = &e.kind {
            e = l;
        }
        e.pos
    }

    /// Precedence as seen by a parent deciding on parentheses.
    fn bp(&self) -> u8 {
        match &self.kind {
            ExprKind::Binary(op, _, _) => op.bp(),
            ExprKind::Unary(_, _) => UNARY_BP,
            _ => ATOM_BP,
        }
    }
}

fn write_text_literal(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("\"")
}

fn write_child(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Number(n) => {
                if n.is_sign_negative() && !n.is_zero() {
                    write!(f, "(0 - {})", n.abs())
                } else {
                    write!(f, "{}", n.abs())
                }
            }
            ExprKind::Text(s) => write_text_literal(f, s),
            ExprKind::Boolean(true) => f.write_str("TRUE"),
            ExprKind::Boolean(false) => f.write_str("FALSE"),
            ExprKind::Null => f.write_str("NULL"),
            ExprKind::Field(path) => f.write_str(&path.join(".")),
            ExprKind::Unary(op, inner) => {
                f.write_str(match op {
                    UnaryOp::Neg => "-",
                    UnaryOp::Not => "!",
                })?;
                // The operand of a prefix operator binds at UNARY_BP, so only
                // looser binary operators need parentheses.
                let parens = matches!(&inner.kind, ExprKind::Binary(o, _, _) if o.bp() <= UNARY_BP);
                write_child(f, inner, parens)
            }
            ExprKind::Binary(op, l, r) => {
                let p = op.bp();
                // A prefix operator on the left would swallow a tighter
                // operator (`-a ^ b` is `-(a ^ b)`).
                let left_parens =
                    l.bp() < p || (matches!(l.kind, ExprKind::Unary(..)) && p >= UNARY_BP);
                write_child(f, l, left_parens)?;
                write!(f, " {} ", op.symbol())?;
                write_child(f, r, r.bp() <= p)
            }
            ExprKind::Call(name, args) => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}
