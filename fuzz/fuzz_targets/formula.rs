//! Fuzzes the whole formula pipeline: parse, print/re-parse, compile against
//! a small fixed schema, evaluate. Any panic, or a printed tree that does not
//! re-parse to itself, is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../../crates/mosaic-formula/tests/fuzz/check.rs");

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        check(src);
    }
});
