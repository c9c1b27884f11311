//! Every bound the parser enforces, as a named constant (see SPEC "Limits").

/// Longest accepted statement, in characters (Salesforce: 100,000).
pub const MAX_QUERY_LEN: usize = 100_000;
/// Most child-to-parent relationship hops in one field path
/// (`Account.Owner.Name` is 2 hops).
pub const MAX_PARENT_DEPTH: usize = 5;
/// Most parent-to-child subqueries in one SELECT list.
pub const MAX_SUBQUERIES: usize = 20;
/// Largest OFFSET; deeper paging uses keyset cursors.
pub const MAX_OFFSET: u32 = 2_000;
/// Largest LIMIT a query may state.
pub const MAX_LIMIT: u32 = 50_000_000;
/// Deepest nesting of NOT / parentheses inside one WHERE or HAVING clause.
pub const MAX_CONDITION_DEPTH: usize = 32;
/// Most semi-join / anti-join subqueries (`IN (SELECT …)`) in one WHERE clause.
pub const MAX_SEMI_JOINS: usize = 2;
/// Most values in one `IN (…)` / `INCLUDES (…)` list.
pub const MAX_IN_VALUES: usize = 10_000;
/// Largest `n` in `LAST_N_DAYS:n` and friends.
pub const MAX_DATE_LITERAL_N: u32 = 100_000;
/// Most objects in a SOSL `RETURNING` list.
pub const MAX_RETURNING_OBJECTS: usize = 20;
/// Longest SOSL search term between the braces, in characters.
pub const MAX_SEARCH_TERM_LEN: usize = 4_000;
/// Largest LIMIT a query selecting `FIELDS(ALL)` or `FIELDS(CUSTOM)` may state (Salesforce: 200).
pub const MAX_FIELDS_ALL_LIMIT: u32 = 200;
/// Most keys in `GROUP BY ROLLUP(…)` / `CUBE(…)` (Salesforce: 3).
pub const MAX_ROLLUP_FIELDS: usize = 3;
/// Deepest nesting of field functions (`FORMAT(convertCurrency(Amount))` is 2).
pub const MAX_CALL_DEPTH: usize = 3;
