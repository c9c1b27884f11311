//! Fuzzes the SOQL and SOSL parsers: no input may panic, every error must
//! render, and every accepted query must pretty-print to text that parses
//! back to the same AST.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../../crates/mosaic-soql/tests/fuzz/check.rs");

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        check(src);
    }
});
