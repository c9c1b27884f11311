//! The compiled form: a typed tree with field paths resolved to indices and
//! functions resolved to enum variants, ready for the interpreter.

use regex::Regex;

use crate::functions::Func;
use crate::value::FValue;

/// A `$` global the context supplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global {
    UserId,
    Username,
    OrgId,
}

/// Arithmetic with the operand types already decided by the checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Concat,
    /// Date + days.
    DatePlus,
    /// Date - days.
    DateMinus,
    /// Date - Date, in days.
    DateDiff,
    /// Datetime + fractional days.
    DtPlus,
    DtMinus,
    /// Datetime - Datetime, in fractional days.
    DtDiff,
    /// Time + milliseconds.
    TimePlus,
    TimeMinus,
    /// Time - Time, in milliseconds.
    TimeDiff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(FValue),
    /// Field by index into `Compiled::fields`; `zero`: a null reads as 0.
    Field {
        idx: usize,
        zero: bool,
    },
    Prior {
        idx: usize,
        zero: bool,
    },
    IsChanged(usize),
    Global(Global),
    Neg(Box<Node>),
    Not(Box<Node>),
    Arith {
        op: Arith,
        l: Box<Node>,
        r: Box<Node>,
        pos: u32,
    },
    /// `text`: operands are text, where null equals "".
    Cmp {
        op: Cmp,
        text: bool,
        l: Box<Node>,
        r: Box<Node>,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    If(Box<(Node, Node, Node)>),
    Case {
        subject: Box<Node>,
        text: bool,
        arms: Vec<(Node, Node)>,
        default: Box<Node>,
    },
    /// An eager call. `re` caches a regex compiled from a constant pattern.
    Call {
        func: Func,
        args: Vec<Node>,
        pos: u32,
        re: Option<Box<Regex>>,
    },
}

impl Node {
    /// Number of nodes in this subtree.
    pub(crate) fn size(&self) -> usize {
        1 + match self {
            Node::Neg(x) | Node::Not(x) => x.size(),
            Node::Arith { l, r, .. } | Node::Cmp { l, r, .. } => l.size() + r.size(),
            Node::And(v) | Node::Or(v) | Node::Call { args: v, .. } => {
                v.iter().map(Node::size).sum()
            }
            Node::If(b) => b.0.size() + b.1.size() + b.2.size(),
            Node::Case {
                subject,
                arms,
                default,
                ..
            } => {
                subject.size()
                    + default.size()
                    + arms.iter().map(|(a, b)| a.size() + b.size()).sum::<usize>()
            }
            _ => 0,
        }
    }
}
