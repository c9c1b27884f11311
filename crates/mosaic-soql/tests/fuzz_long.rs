//! Random SOQL and SOSL through the parsers (see `tests/fuzz/check.rs`):
//! `MOSAIC_FUZZ_SECONDS=600 cargo test --release -p mosaic-soql --test
//! fuzz_long -- --ignored --nocapture`, or `scripts/fuzz-parsers`.

include!("fuzz/check.rs");
// The driver is shared with mosaic-formula's long run.
include!("../../mosaic-formula/tests/fuzz/driver.rs");

const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "NOT IN",
    "LIKE",
    "INCLUDES",
    "EXCLUDES",
    "GROUP BY",
    "HAVING",
    "ORDER BY",
    "ASC",
    "DESC",
    "NULLS FIRST",
    "NULLS LAST",
    "LIMIT",
    "OFFSET",
    "COUNT()",
    "COUNT(Id)",
    "COUNT_DISTINCT(",
    "SUM(",
    "MAX(",
    "MIN(",
    "AVG(",
    "CALENDAR_YEAR(",
    "TYPEOF",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "USING SCOPE",
    "WITH",
    "FOR UPDATE",
    "FOR VIEW",
    "ALL ROWS",
    "FIND",
    "IN ALL FIELDS",
    "IN NAME FIELDS",
    "RETURNING",
    "Id",
    "Name",
    "Account",
    "Account.Name",
    "Account.Owner.Name",
    "Contact",
    "Contacts",
    "(",
    ")",
    ",",
    ".",
    "=",
    "!=",
    "<>",
    "<",
    ">",
    "<=",
    ">=",
    "'x'",
    "'a%'",
    "''",
    "'\\''",
    "'\\n'",
    "1",
    "1.5",
    "-3",
    "1e3",
    "99999999999999999999999999999",
    "2024-01-31",
    "2024-02-30",
    "2024-01-31T10:00:00Z",
    "2024-01-31T10:00:00+05:30",
    "TODAY",
    "YESTERDAY",
    "LAST_N_DAYS:3",
    "NEXT_N_MONTHS:99999999999",
    "LAST_N_DAYS:-1",
    "THIS_YEAR",
    "null",
    "true",
    "false",
    ":bind",
    "{",
    "}",
    "*",
    "\"",
    "\n",
];

fn seeds() -> Vec<String> {
    let cases = [
        include_str!("cases/select.txt"),
        include_str!("cases/where.txt"),
        include_str!("cases/search.txt"),
        include_str!("cases/errors.txt"),
    ];
    cases
        .iter()
        .flat_map(|c| c.lines())
        .filter_map(|l| {
            l.strip_prefix("query: ")
                .or_else(|| l.strip_prefix("search: "))
        })
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "long run: scripts/fuzz-parsers"]
fn soql_and_sosl_never_panic_and_round_trip() {
    run_for_duration("soql", seeds(), TOKENS.to_vec(), check);
}
