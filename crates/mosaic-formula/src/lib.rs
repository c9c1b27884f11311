//! The Mosaic formula language: Salesforce-compatible formulas, compiled
//! once and evaluated many times.
//!
//! Pipeline: [`parse`] (lexer and Pratt parser, errors with byte offset and
//! line/column) → type check against a caller-supplied [`Schema`] →
//! optimizer (constant folding, short-circuits) → [`Compiled`] tree →
//! interpreter with a step budget ([`Compiled::eval`]).
//!
//! **Architecture invariant:** the crate is pure. No I/O, no global state,
//! no clock reads (the caller passes `now` in [`EvalContext`]), and no panics
//! on any input: every limit in [`limits`] turns into a [`FormulaError`].

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod ast;
mod builtins;
mod checker;
mod convert;
mod dates;
mod error;
mod eval;
mod functions;
mod lexer;
pub mod limits;
mod math;
mod node;
mod optimize;
mod parser;
mod schema;
mod text;
mod value;

pub use ast::{BinaryOp, Expr, ExprKind, UnaryOp};
pub use chrono;
pub use error::{line_col, ErrorKind, FormulaError};
pub use functions::{Func, ALL_FUNCTIONS};
pub use parser::parse;
pub use rust_decimal::Decimal;
pub use schema::{DynamicSchema, FieldKind, FormulaType, ResolvedField, Schema};
pub use value::{EvalContext, FValue, MapRecord, Record};

use limits::MAX_EVAL_STEPS;

/// How a formula is compiled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Salesforce's "Treat blank fields as zeroes": null number fields read
    /// as 0. (Null text always reads as "".)
    pub treat_blanks_as_zero: bool,
    /// The type the formula field declares; a mismatch is a compile error.
    pub return_type: Option<FormulaType>,
}

/// A checked, optimized formula. Cheap to share: `Send + Sync + 'static`.
#[derive(Debug, Clone)]
pub struct Compiled {
    root: node::Node,
    return_type: FormulaType,
    /// Canonical paths in the order the compiled tree indexes them.
    fields: Vec<Vec<String>>,
    /// The same paths, sorted and deduplicated.
    referenced: Vec<Vec<String>>,
    source: Box<str>,
}

/// Parses, checks and optimizes `src`.
pub fn compile(
    src: &str,
    schema: &dyn Schema,
    opts: &Options,
) -> Result<Compiled, Vec<FormulaError>> {
    let expr = parse(src).map_err(|e| vec![e])?;
    compile_expr(src, &expr, schema, opts).map_err(|e| vec![e])
}

fn compile_expr(
    src: &str,
    expr: &Expr,
    schema: &dyn Schema,
    opts: &Options,
) -> Result<Compiled, FormulaError> {
    let checked = checker::check(src, expr, schema, opts)?;
    let root = optimize::Optimizer { src }.optimize(checked.root)?;
    let mut referenced = checked.fields.clone();
    referenced.sort();
    referenced.dedup();
    Ok(Compiled {
        root,
        return_type: checked.ty.formula_type(),
        fields: checked.fields,
        referenced,
        source: src.into(),
    })
}

impl Compiled {
    /// The type of the formula's value.
    pub fn return_type(&self) -> FormulaType {
        self.return_type
    }

    /// Canonical paths of every field the formula reads, sorted, deduplicated.
    pub fn referenced_fields(&self) -> &[Vec<String>] {
        &self.referenced
    }

    /// Number of nodes after optimization (what [`limits::MAX_COMPILED_SIZE`] bounds).
    pub fn size(&self) -> usize {
        self.root.size()
    }

    /// The source the formula was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against a record within [`MAX_EVAL_STEPS`].
    pub fn eval(&self, rec: &dyn Record, ctx: &EvalContext) -> Result<FValue, FormulaError> {
        self.eval_with_budget(rec, ctx, MAX_EVAL_STEPS)
    }

    /// Evaluates with an explicit step budget.
    pub fn eval_with_budget(
        &self,
        rec: &dyn Record,
        ctx: &EvalContext,
        max_steps: u64,
    ) -> Result<FValue, FormulaError> {
        let mut interp = eval::Interp {
            rec,
            ctx,
            fields: &self.fields,
            steps: 0,
            max_steps,
        };
        interp.eval(&self.root).map_err(|e| {
            FormulaError::at(
                &self.source,
                usize::try_from(e.pos).unwrap_or(0),
                e.kind,
                e.message,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_is_send_sync_static() {
        fn assert_bounds<T: Send + Sync + 'static>() {}
        assert_bounds::<Compiled>();
    }
}
