//! Fuzzes the SOQL and SOSL parsers: no input may panic, every error must
//! render, and every accepted query must pretty-print to text that parses
//! back to the same AST.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
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
});
