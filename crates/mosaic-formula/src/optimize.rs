//! Optimizer: constant folding and short-circuiting of constant conditions,
//! plus precompiling constant REGEX patterns.

use crate::builtins::compile_regex;
use crate::error::{ErrorKind, FormulaError};
use crate::eval::Interp;
use crate::functions::Func;
use crate::node::Node;
use crate::value::{EvalContext, FValue, Record};

struct NoRecord;
impl Record for NoRecord {
    fn get(&self, _path: &[String]) -> FValue {
        FValue::Null
    }
}

fn is_const(n: &Node) -> bool {
    matches!(n, Node::Const(_))
}

fn const_true(n: &Node) -> Option<bool> {
    match n {
        Node::Const(FValue::Boolean(b)) => Some(*b),
        Node::Const(FValue::Null) => Some(false),
        _ => None,
    }
}

pub(crate) struct Optimizer<'s> {
    pub src: &'s str,
}

impl<'s> Optimizer<'s> {
    /// Evaluates a node whose inputs are all constants; keeps it when
    /// evaluation fails, so the error surfaces at run time with its position.
    fn fold(&self, node: Node) -> Node {
        let ctx = EvalContext::at(chrono::DateTime::UNIX_EPOCH);
        let mut interp = Interp {
            rec: &NoRecord,
            ctx: &ctx,
            fields: &[],
            steps: 0,
            max_steps: u64::MAX,
        };
        match interp.eval(&node) {
            Ok(v) => Node::Const(v),
            Err(_) => node,
        }
    }

    pub(crate) fn optimize(&self, node: Node) -> Result<Node, FormulaError> {
        Ok(match node {
            Node::Neg(x) => {
                let x = self.optimize(*x)?;
                let all = is_const(&x);
                let n = Node::Neg(Box::new(x));
                if all {
                    self.fold(n)
                } else {
                    n
                }
            }
            Node::Not(x) => {
                let x = self.optimize(*x)?;
                let all = is_const(&x);
                let n = Node::Not(Box::new(x));
                if all {
                    self.fold(n)
                } else {
                    n
                }
            }
            Node::Arith { op, l, r, pos } => {
                let l = self.optimize(*l)?;
                let r = self.optimize(*r)?;
                let all = is_const(&l) && is_const(&r);
                let n = Node::Arith {
                    op,
                    l: Box::new(l),
                    r: Box::new(r),
                    pos,
                };
                if all {
                    self.fold(n)
                } else {
                    n
                }
            }
            Node::Cmp { op, text, l, r } => {
                let l = self.optimize(*l)?;
                let r = self.optimize(*r)?;
                let all = is_const(&l) && is_const(&r);
                let n = Node::Cmp {
                    op,
                    text,
                    l: Box::new(l),
                    r: Box::new(r),
                };
                if all {
                    self.fold(n)
                } else {
                    n
                }
            }
            Node::And(items) | Node::Or(items) if items.is_empty() => {
                Node::Const(FValue::Boolean(true))
            }
            Node::And(items) => self.junction(items, true)?,
            Node::Or(items) => self.junction(items, false)?,
            Node::If(b) => {
                let (c, t, e) = *b;
                let c = self.optimize(c)?;
                match const_true(&c) {
                    Some(true) => self.optimize(t)?,
                    Some(false) => self.optimize(e)?,
                    None => Node::If(Box::new((c, self.optimize(t)?, self.optimize(e)?))),
                }
            }
            Node::Case {
                subject,
                text,
                arms,
                default,
            } => {
                let subject = self.optimize(*subject)?;
                let mut new_arms = Vec::with_capacity(arms.len());
                for (v, r) in arms {
                    new_arms.push((self.optimize(v)?, self.optimize(r)?));
                }
                let default = self.optimize(*default)?;
                if let Node::Const(s) = &subject {
                    if new_arms.iter().all(|(v, _)| is_const(v)) {
                        for (v, r) in new_arms {
                            if let Node::Const(cv) = &v {
                                if crate::eval::compare(crate::node::Cmp::Eq, text, s, cv) {
                                    return Ok(r);
                                }
                            }
                        }
                        return Ok(default);
                    }
                }
                Node::Case {
                    subject: Box::new(subject),
                    text,
                    arms: new_arms,
                    default: Box::new(default),
                }
            }
            Node::Call {
                func,
                args,
                pos,
                mut re,
            } => {
                let mut new_args = Vec::with_capacity(args.len());
                for a in args {
                    new_args.push(self.optimize(a)?);
                }
                if matches!(func, Func::Regex | Func::RegexReplace) && re.is_none() {
                    if let Some(Node::Const(FValue::Text(p))) = new_args.get(1) {
                        let compiled = compile_regex(p, func == Func::Regex).map_err(|m| {
                            FormulaError::at(
                                self.src,
                                usize::try_from(pos).unwrap_or(0),
                                ErrorKind::InvalidArgument,
                                format!("{}: argument 2 (regex_text): {m}", func.name()),
                            )
                        })?;
                        re = Some(Box::new(compiled));
                    }
                }
                let all = func.is_pure() && new_args.iter().all(is_const);
                let n = Node::Call {
                    func,
                    args: new_args,
                    pos,
                    re,
                };
                if all {
                    self.fold(n)
                } else {
                    n
                }
            }
            other => other,
        })
    }

    /// AND (`is_and`) or OR: drops neutral constants, stops at an absorbing one.
    fn junction(&self, items: Vec<Node>, is_and: bool) -> Result<Node, FormulaError> {
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            let item = self.optimize(item)?;
            match const_true(&item) {
                Some(b) if b == is_and => {}
                Some(_) => {
                    if kept.is_empty() {
                        return Ok(Node::Const(FValue::Boolean(!is_and)));
                    }
                    // Later operands are never evaluated; earlier ones decide
                    // only whether the constant is reached.
                    kept.push(item);
                    break;
                }
                None => kept.push(item),
            }
        }
        Ok(match kept.len() {
            0 => Node::Const(FValue::Boolean(is_and)),
            _ if is_and => Node::And(kept),
            _ => Node::Or(kept),
        })
    }
}
