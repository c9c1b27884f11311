//! The Mosaic query language: a Salesforce SOQL subset and a SOSL `FIND` subset.
//!
//! This crate turns query text into an AST and back. It is pure: no I/O, no
//! clock, no metadata. The planner (elsewhere) resolves names against object
//! metadata and translates the AST to SQL.
//!
//! **Architecture Invariant:** parsing never panics, whatever the input. Every
//! size, count and depth it accepts is bounded by a named constant in
//! [`limits`], and exceeding one is a [`ParseError`] pointing at the culprit.
//!
//! Entry points: [`parse_query`], [`parse_search`], [`resolve_date_literal`].
//! `Display` on [`Query`] / [`SearchQuery`] prints canonical text that parses
//! back to the same AST (spans aside).

pub mod ast;
pub mod date_literal;
mod display;
mod error;
mod lexer;
pub mod limits;
mod parser;
mod sosl;
mod spans;

pub use ast::*;
pub use date_literal::{
    date_range_to_utc, months_into_fiscal_year, resolve_date_literal, resolve_date_literal_fiscal,
    DateLiteral, DateRange, DateUnit, Relative,
};
pub use error::ParseError;
pub use limits::*;
pub use parser::parse_query;
pub use sosl::{parse_search, ReturningObject, SearchQuery, SearchScope, SearchTerm};
