//! The conformance corpus (`tests/corpus/soql.txt`, written from Salesforce's
//! SOQL and SOSL reference): every case parses or is refused as expected, and
//! every accepted statement prints and re-parses to the same AST, twice over
//! (print → parse → print is a fixed point).

use std::path::PathBuf;

use mosaic_soql::{parse_query, parse_search};

/// One corpus case.
struct Case {
    search: bool,
    text: String,
    expect: String,
}

fn cases() -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/soql.txt");
    let text = std::fs::read_to_string(path).expect("corpus file");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut case: Option<Case> = None;
        for line in block.lines() {
            if let Some(q) = line.strip_prefix("query: ") {
                case = Some(Case {
                    search: false,
                    text: q.to_string(),
                    expect: String::new(),
                });
            } else if let Some(q) = line.strip_prefix("search: ") {
                case = Some(Case {
                    search: true,
                    text: q.to_string(),
                    expect: String::new(),
                });
            } else if let (Some(e), Some(c)) = (line.strip_prefix("expect: "), case.as_mut()) {
                c.expect = e.to_string();
            }
        }
        if let Some(c) = case {
            assert!(!c.expect.is_empty(), "case without expect: {}", c.text);
            out.push(c);
        }
    }
    out
}

/// Parses, prints, re-parses and re-prints; `Err` is the parse error.
fn round_trip(c: &Case) -> Result<(), String> {
    if c.search {
        let q = parse_search(&c.text).map_err(|e| e.to_string())?;
        let printed = q.to_string();
        let again = parse_search(&printed)
            .unwrap_or_else(|e| panic!("reparse of {printed:?} (from {:?}): {e}", c.text));
        assert_eq!(again.without_spans(), q.without_spans(), "{}", c.text);
        assert_eq!(again.to_string(), printed, "{}", c.text);
    } else {
        let q = parse_query(&c.text).map_err(|e| e.to_string())?;
        let printed = q.to_string();
        let again = parse_query(&printed)
            .unwrap_or_else(|e| panic!("reparse of {printed:?} (from {:?}): {e}", c.text));
        assert_eq!(again.without_spans(), q.without_spans(), "{}", c.text);
        assert_eq!(again.to_string(), printed, "{}", c.text);
    }
    Ok(())
}

#[test]
fn corpus_parses_and_round_trips() {
    let cases = cases();
    let mut failures = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for c in &cases {
        match (round_trip(c), c.expect.as_str()) {
            (Ok(()), "parse") => {
                failures.push(format!("parsed, expected a parse error: {}", c.text))
            }
            (Ok(()), _) => accepted += 1,
            (Err(_), "parse") => refused += 1,
            (Err(e), _) => failures.push(format!("{}\n  → {e}", c.text)),
        }
    }
    println!(
        "corpus: {} cases, {accepted} parsed and round-tripped, {refused} refused as expected",
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 300, "the corpus has {} cases", cases.len());
}
