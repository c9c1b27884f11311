//! Random formulas through the whole pipeline (see `tests/fuzz/check.rs`):
//! `MOSAIC_FUZZ_SECONDS=600 cargo test --release -p mosaic-formula --test
//! fuzz_long -- --ignored --nocapture`, or `scripts/fuzz-parsers`.

include!("fuzz/check.rs");
include!("fuzz/driver.rs");

const TOKENS: &[&str] = &[
    "IF(",
    "AND(",
    "OR(",
    "NOT(",
    "CASE(",
    "ISBLANK(",
    "BLANKVALUE(",
    "NULLVALUE(",
    "TEXT(",
    "VALUE(",
    "LEN(",
    "LEFT(",
    "RIGHT(",
    "MID(",
    "FIND(",
    "SUBSTITUTE(",
    "UPPER(",
    "TRIM(",
    "DATE(",
    "DATEVALUE(",
    "DATETIMEVALUE(",
    "TIMEVALUE(",
    "TODAY()",
    "NOW()",
    "ADDMONTHS(",
    "YEAR(",
    "MONTH(",
    "DAY(",
    "WEEKDAY(",
    "ROUND(",
    "FLOOR(",
    "CEILING(",
    "MOD(",
    "ABS(",
    "MAX(",
    "MIN(",
    "SQRT(",
    "EXP(",
    "LN(",
    "LOG(",
    "ISPICKVAL(",
    "INCLUDES(",
    "PRIORVALUE(",
    "ISCHANGED(",
    "ISNEW()",
    "REGEX(",
    "CONTAINS(",
    "BEGINS(",
    "HYPERLINK(",
    "Amount",
    "Qty",
    "Name",
    "Close",
    "Created",
    "Opens",
    "Active",
    "Stage",
    "Regions",
    "Account.Owner.Name",
    "Blank",
    "+",
    "-",
    "*",
    "/",
    "^",
    "&",
    "=",
    "==",
    "!=",
    "<>",
    "<",
    ">",
    "<=",
    ">=",
    "&&",
    "||",
    "!",
    "(",
    ")",
    ",",
    "1",
    "0",
    "-1",
    "1.5",
    ".5",
    "1e10",
    "99999999999999999999999999",
    "9223372036854775807",
    "\"x\"",
    "'y'",
    "\"\"",
    "\"\\\"\"",
    "TRUE",
    "FALSE",
    "NULL",
    "/*",
    "*/",
    "\n",
];

fn seeds() -> Vec<String> {
    include_str!("conformance.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('@'))
        .map(|l| l.split(" => ").next().unwrap_or(l).to_string())
        .collect()
}

#[test]
#[ignore = "long run: scripts/fuzz-parsers"]
fn formulas_never_panic_and_round_trip() {
    run_for_duration("formula", seeds(), TOKENS.to_vec(), check);
}
