//! Every bound the formula engine enforces, as a named constant.
//!
//! Each limit is at least as generous as Salesforce's documented one. Hitting
//! a limit is never a panic: it is a [`crate::FormulaError`] with
//! [`crate::ErrorKind::LimitExceeded`] and a position.

/// Longest accepted formula source, in characters. Salesforce allows 3,900.
pub const MAX_SOURCE_LEN: usize = 5_000;

/// Deepest accepted expression tree (and deepest parser recursion). Bounds
/// every recursive pass (checker, optimizer, interpreter, printer) so none can
/// overflow a 2 MiB thread stack.
pub const MAX_NESTING_DEPTH: usize = 128;

/// Largest compiled formula, in nodes (Salesforce's limit is 15,000 bytes of
/// generated SQL; a node is the closest equivalent we have).
pub const MAX_COMPILED_SIZE: usize = 10_000;

/// Interpreter steps (one per node visited, plus one per 256 bytes of text a
/// function produces) before evaluation is abandoned.
pub const MAX_EVAL_STEPS: u64 = 100_000;

/// Longest text value, in bytes, that any operator or function may produce.
pub const MAX_STRING_LEN: usize = 131_072;

/// Most lookup hops in a field path (`A.B.C` has two hops).
pub const MAX_RELATIONSHIP_HOPS: usize = 10;

/// Most arguments to a single function call.
pub const MAX_ARGUMENTS: usize = 1_000;

/// Largest compiled regular expression (bytes of program), for REGEX.
pub const MAX_REGEX_SIZE: usize = 1 << 20;
