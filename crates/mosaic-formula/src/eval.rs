//! The interpreter: walks a compiled [`Node`] tree against a record, within a
//! step budget. Never panics; a value of an unexpected variant (a record that
//! disagrees with its schema) reads as null.

use std::cmp::Ordering;

use chrono::{NaiveTime, TimeDelta, Timelike};
use rust_decimal::prelude::*;

use crate::builtins;
use crate::error::ErrorKind;
use crate::functions::Func;
use crate::limits::MAX_STRING_LEN;
use crate::node::{Arith, Cmp, Global, Node};
use crate::value::{EvalContext, FValue, Record};

/// An evaluation error before it is placed in the source.
#[derive(Debug, Clone)]
pub(crate) struct RtError {
    pub kind: ErrorKind,
    pub message: String,
    pub pos: u32,
}

impl RtError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RtError {
            kind,
            message: message.into(),
            pos: 0,
        }
    }
}

pub(crate) type RtResult = Result<FValue, RtError>;

pub(crate) struct Interp<'a> {
    pub rec: &'a dyn Record,
    pub ctx: &'a EvalContext<'a>,
    pub fields: &'a [Vec<String>],
    pub steps: u64,
    pub max_steps: u64,
}

const MS_PER_DAY: i64 = 86_400_000;

pub(crate) fn overflow(what: &str) -> RtError {
    RtError::new(ErrorKind::Overflow, format!("number overflow in {what}"))
}

/// Rejects text longer than [`MAX_STRING_LEN`].
pub(crate) fn text_result(s: String) -> RtResult {
    if s.len() > MAX_STRING_LEN {
        return Err(RtError::new(
            ErrorKind::LimitExceeded,
            format!(
                "text result of {} bytes exceeds the limit of {MAX_STRING_LEN}",
                s.len()
            ),
        ));
    }
    Ok(FValue::Text(s))
}

fn truthy(v: &FValue) -> bool {
    matches!(v, FValue::Boolean(true))
}

fn with_pos(mut e: RtError, pos: u32) -> RtError {
    if e.pos == 0 {
        e.pos = pos;
    }
    e
}

impl<'a> Interp<'a> {
    fn field(&self, idx: usize, zero: bool, prior: bool) -> FValue {
        let Some(path) = self.fields.get(idx) else {
            return FValue::Null;
        };
        let v = if prior {
            self.rec.prior(path)
        } else {
            self.rec.get(path)
        };
        match v {
            FValue::Null if zero => FValue::Number(Decimal::ZERO),
            v => v,
        }
    }

    pub(crate) fn eval(&mut self, node: &Node) -> RtResult {
        self.steps += 1;
        if self.steps > self.max_steps {
            return Err(RtError::new(
                ErrorKind::LimitExceeded,
                format!("evaluation exceeded the budget of {} steps", self.max_steps),
            ));
        }
        match node {
            Node::Const(v) => Ok(v.clone()),
            Node::Field { idx, zero } => Ok(self.field(*idx, *zero, false)),
            Node::Prior { idx, zero } => Ok(self.field(*idx, *zero, true)),
            Node::IsChanged(idx) => {
                let changed = self
                    .fields
                    .get(*idx)
                    .is_some_and(|p| self.rec.is_changed(p));
                Ok(FValue::Boolean(changed))
            }
            Node::Global(g) => Ok(FValue::Text(
                match g {
                    Global::UserId => self.ctx.user_id,
                    Global::Username => self.ctx.username,
                    Global::OrgId => self.ctx.org_id,
                }
                .to_string(),
            )),
            Node::Neg(x) => match self.eval(x)? {
                FValue::Number(n) => Ok(FValue::Number(-n)),
                _ => Ok(FValue::Null),
            },
            Node::Not(x) => Ok(FValue::Boolean(!truthy(&self.eval(x)?))),
            Node::Arith { op, l, r, pos } => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                arith(*op, a, b).map_err(|e| with_pos(e, *pos))
            }
            Node::Cmp { op, text, l, r } => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                Ok(FValue::Boolean(compare(*op, *text, &a, &b)))
            }
            Node::And(items) => {
                for item in items {
                    if !truthy(&self.eval(item)?) {
                        return Ok(FValue::Boolean(false));
                    }
                }
                Ok(FValue::Boolean(true))
            }
            Node::Or(items) => {
                for item in items {
                    if truthy(&self.eval(item)?) {
                        return Ok(FValue::Boolean(true));
                    }
                }
                Ok(FValue::Boolean(false))
            }
            Node::If(b) => {
                if truthy(&self.eval(&b.0)?) {
                    self.eval(&b.1)
                } else {
                    self.eval(&b.2)
                }
            }
            Node::Case {
                subject,
                text,
                arms,
                default,
            } => {
                let s = self.eval(subject)?;
                for (v, r) in arms {
                    let candidate = self.eval(v)?;
                    if compare(Cmp::Eq, *text, &s, &candidate) {
                        return self.eval(r);
                    }
                }
                self.eval(default)
            }
            Node::Call {
                func: Func::IsNew, ..
            } => Ok(FValue::Boolean(self.rec.is_new())),
            Node::Call {
                func: Func::IsClone,
                ..
            } => Ok(FValue::Boolean(self.rec.is_clone())),
            Node::Call {
                func,
                args,
                pos,
                re,
            } => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.eval(a)?);
                }
                let out = builtins::call(*func, vals, self.ctx, re.as_deref())
                    .map_err(|e| with_pos(e, *pos))?;
                if let FValue::Text(s) = &out {
                    // Producing text costs in proportion to its size.
                    self.steps += (s.len() / 256) as u64;
                }
                Ok(out)
            }
        }
    }
}

/// Equality and ordering with Salesforce's blank rules: in text comparisons
/// null equals ""; otherwise null equals only null and orders with nothing.
pub(crate) fn compare(op: Cmp, text: bool, a: &FValue, b: &FValue) -> bool {
    let ord: Option<Ordering> = if text {
        let x = match a {
            FValue::Text(s) => s.as_str(),
            _ => "",
        };
        let y = match b {
            FValue::Text(s) => s.as_str(),
            _ => "",
        };
        Some(x.cmp(y))
    } else {
        match (a, b) {
            (FValue::Null, FValue::Null) => {
                return match op {
                    Cmp::Eq => true,
                    Cmp::Ne => false,
                    _ => false,
                }
            }
            (FValue::Null, _) | (_, FValue::Null) => return op == Cmp::Ne,
            (FValue::Number(x), FValue::Number(y)) => Some(x.cmp(y)),
            (FValue::Text(x), FValue::Text(y)) => Some(x.cmp(y)),
            (FValue::Boolean(x), FValue::Boolean(y)) => Some(x.cmp(y)),
            (FValue::Date(x), FValue::Date(y)) => Some(x.cmp(y)),
            (FValue::Datetime(x), FValue::Datetime(y)) => Some(x.cmp(y)),
            (FValue::Time(x), FValue::Time(y)) => Some(x.cmp(y)),
            _ => None,
        }
    };
    let Some(ord) = ord else { return op == Cmp::Ne };
    match op {
        Cmp::Eq => ord == Ordering::Equal,
        Cmp::Ne => ord != Ordering::Equal,
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Ge => ord != Ordering::Less,
    }
}

/// Whole days in a number (truncated toward zero), if representable.
fn whole_days(n: &Decimal) -> Option<TimeDelta> {
    let days = i64::try_from(n.trunc()).ok()?;
    TimeDelta::try_days(days)
}

/// Milliseconds in a number of fractional days, rounded to the nearest.
fn day_fraction(n: &Decimal) -> Option<TimeDelta> {
    let ms = n.checked_mul(Decimal::from(MS_PER_DAY))?.round();
    TimeDelta::try_milliseconds(i64::try_from(ms).ok()?)
}

fn time_ms(t: &NaiveTime) -> i64 {
    i64::from(t.num_seconds_from_midnight()) * 1000 + i64::from(t.nanosecond() / 1_000_000)
}

/// Time of day `ms` milliseconds after midnight, wrapping around the day.
pub(crate) fn time_from_ms(ms: i64) -> Option<NaiveTime> {
    let ms = ms.rem_euclid(MS_PER_DAY);
    let secs = u32::try_from(ms / 1000).ok()?;
    let nanos = u32::try_from(ms % 1000).ok()? * 1_000_000;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
}

/// Exponentiation with exact integer powers; fractional powers of negative
/// numbers and 0 to a negative power are null.
pub(crate) fn power(base: Decimal, exp: Decimal) -> RtResult {
    let e = exp.normalize();
    if e.scale() == 0 {
        let Ok(k) = i64::try_from(e) else {
            return Err(overflow("'^'"));
        };
        if base.is_zero() && k < 0 {
            return Ok(FValue::Null);
        }
        if base.is_zero() || base == Decimal::ONE {
            return Ok(FValue::Number(if k == 0 { Decimal::ONE } else { base }));
        }
        return base
            .checked_powi(k)
            .map(FValue::Number)
            .ok_or_else(|| overflow("'^'"));
    }
    if base.is_sign_negative() {
        return Ok(FValue::Null);
    }
    if base.is_zero() {
        return Ok(FValue::Number(Decimal::ZERO));
    }
    base.checked_powd(e)
        .map(FValue::Number)
        .ok_or_else(|| overflow("'^'"))
}

fn text_of(v: FValue) -> String {
    match v {
        FValue::Text(s) => s,
        _ => String::new(),
    }
}

pub(crate) fn arith(op: Arith, a: FValue, b: FValue) -> RtResult {
    use FValue::*;
    if op == Arith::Concat {
        let mut s = text_of(a);
        let t = text_of(b);
        if s.len() + t.len() > MAX_STRING_LEN {
            return text_result(s + &t);
        }
        s.push_str(&t);
        return Ok(Text(s));
    }
    let out = match (op, a, b) {
        (Arith::Add, Number(x), Number(y)) => {
            Number(x.checked_add(y).ok_or_else(|| overflow("'+'"))?)
        }
        (Arith::Sub, Number(x), Number(y)) => {
            Number(x.checked_sub(y).ok_or_else(|| overflow("'-'"))?)
        }
        (Arith::Mul, Number(x), Number(y)) => {
            Number(x.checked_mul(y).ok_or_else(|| overflow("'*'"))?)
        }
        (Arith::Div, Number(x), Number(y)) => {
            if y.is_zero() {
                Null
            } else {
                Number(x.checked_div(y).ok_or_else(|| overflow("'/'"))?)
            }
        }
        (Arith::Pow, Number(x), Number(y)) => return power(x, y),
        (Arith::DatePlus, Date(d), Number(n)) => whole_days(&n)
            .and_then(|t| d.checked_add_signed(t))
            .map_or(Null, Date),
        (Arith::DateMinus, Date(d), Number(n)) => whole_days(&n)
            .and_then(|t| d.checked_sub_signed(t))
            .map_or(Null, Date),
        (Arith::DateDiff, Date(x), Date(y)) => Number(Decimal::from((x - y).num_days())),
        (Arith::DtPlus, Datetime(d), Number(n)) => day_fraction(&n)
            .and_then(|t| d.checked_add_signed(t))
            .map_or(Null, Datetime),
        (Arith::DtMinus, Datetime(d), Number(n)) => day_fraction(&n)
            .and_then(|t| d.checked_sub_signed(t))
            .map_or(Null, Datetime),
        (Arith::DtDiff, Datetime(x), Datetime(y)) => {
            let ms = x.signed_duration_since(y).num_milliseconds();
            Number(
                Decimal::from(ms)
                    .checked_div(Decimal::from(MS_PER_DAY))
                    .unwrap_or_default(),
            )
        }
        (Arith::TimePlus, Time(t), Number(n)) => {
            let ms = i64::try_from(n.trunc())
                .map(|v| v.rem_euclid(MS_PER_DAY))
                .unwrap_or(0);
            time_from_ms(time_ms(&t) + ms).map_or(Null, Time)
        }
        (Arith::TimeMinus, Time(t), Number(n)) => {
            let ms = i64::try_from(n.trunc())
                .map(|v| v.rem_euclid(MS_PER_DAY))
                .unwrap_or(0);
            time_from_ms(time_ms(&t) - ms).map_or(Null, Time)
        }
        (Arith::TimeDiff, Time(x), Time(y)) => Number(Decimal::from(time_ms(&x) - time_ms(&y))),
        _ => Null,
    };
    Ok(out)
}

pub(crate) fn time_millis(t: &NaiveTime) -> i64 {
    time_ms(t)
}
