// The long fuzz run of a parser, included (`include!`) by the
// `tests/fuzz_long.rs` of mosaic-formula and mosaic-soql and started by
// `scripts/fuzz-parsers`. Random inputs from proptest strategies; a failed
// check is shrunk to a minimal input and reported.

use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::time::{Duration, Instant};

/// A char boundary of `s` near the `i`-th position.
fn boundary(s: &str, i: &Index) -> usize {
    if s.is_empty() {
        return 0;
    }
    let mut at = i.index(s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Inputs: seeds mutated (pieces replaced, deleted or inserted), two seeds
/// spliced, tokens of the language joined at random, or any text.
fn inputs(seeds: Vec<String>, tokens: Vec<&'static str>) -> BoxedStrategy<String> {
    let edit = (any::<Index>(), 0usize..4, "\\PC{0,3}", select(tokens.clone()));
    let mutated = (select(seeds.clone()), prop::collection::vec(edit, 1..6)).prop_map(
        |(mut s, edits)| {
            for (at, kind, text, token) in edits {
                let i = boundary(&s, &at);
                let j = boundary(&s[i..], &at) + i;
                match kind {
                    0 => s.replace_range(i..j, &text),
                    1 => s.replace_range(i..j, ""),
                    2 => s.insert_str(i, token),
                    _ => s.insert_str(i, &text),
                }
            }
            s
        },
    );
    let spliced = (select(seeds.clone()), select(seeds), any::<Index>(), any::<Index>())
        .prop_map(|(a, b, i, j)| format!("{}{}", &a[..boundary(&a, &i)], &b[boundary(&b, &j)..]));
    let soup = (prop::collection::vec(select(tokens), 0..40), any::<bool>())
        .prop_map(|(t, spaced)| t.join(if spaced { " " } else { "" }));
    prop_oneof![4 => mutated, 2 => spliced, 3 => soup, 1 => "\\PC{0,80}"].boxed()
}

/// Runs `check` on random inputs for `MOSAIC_FUZZ_SECONDS` (default 5)
/// and prints the figures; panics with the minimal failing input.
fn run_for_duration(name: &str, seeds: Vec<String>, tokens: Vec<&'static str>, check: fn(&str)) {
    let secs: u64 = std::env::var("MOSAIC_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let strategy = inputs(seeds, tokens);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut cases: u64 = 0;
    const ROUND: u32 = 2_000;
    while Instant::now() < deadline {
        let mut runner = TestRunner::new(Config {
            cases: ROUND,
            failure_persistence: None,
            ..Config::default()
        });
        let outcome = runner.run(&strategy, |src| {
            check(&src);
            Ok::<(), TestCaseError>(())
        });
        match outcome {
            Ok(()) => cases += u64::from(ROUND),
            Err(TestError::Fail(why, input)) => {
                panic!("fuzz {name}: crash after {cases} cases on {input:?}: {why}")
            }
            Err(e) => panic!("fuzz {name}: {e}"),
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {cases} cases in {took:.0} s ({:.0} cases/s), 0 crashes",
        cases as f64 / took.max(0.001)
    );
}
