// The SOQL/SOSL fuzz check, included (`include!`) by its callers.

/// Checks one input of the SOQL and SOSL parsers: no panic, every error
/// renders, every accepted query pretty-prints to text that parses back
/// to the same AST. Shared by the libFuzzer target
/// (`fuzz/fuzz_targets/soql.rs`) and the long run of `tests/fuzz_long.rs`.
pub fn check(src: &str) {
    match mosaic_soql::parse_query(src) {
        Ok(q) => {
            let printed = q.to_string();
            let again = mosaic_soql::parse_query(&printed)
                .unwrap_or_else(|e| panic!("pretty form does not parse: {printed:?}: {e}"));
            assert_eq!(
                q.without_spans(),
                again.without_spans(),
                "round trip changed {printed:?}"
            );
            let _ = q.output_names();
        }
        Err(e) => {
            let _ = e.render(src);
        }
    }
    match mosaic_soql::parse_search(src) {
        Ok(q) => {
            let printed = q.to_string();
            let again = mosaic_soql::parse_search(&printed)
                .unwrap_or_else(|e| panic!("pretty form does not parse: {printed:?}: {e}"));
            assert_eq!(
                q.without_spans(),
                again.without_spans(),
                "round trip changed {printed:?}"
            );
        }
        Err(e) => {
            let _ = e.render(src);
        }
    }
}
