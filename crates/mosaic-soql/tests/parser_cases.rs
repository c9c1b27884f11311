//! Table-driven conformance tests: `tests/cases/*.txt` hold inputs beside the
//! expected canonical form or error. Run with `UPDATE_EXPECT=1` to rewrite the
//! expectations from the current output (then review the diff).
//!
//! File format, one case per block separated by blank lines:
//!
//! ```text
//! # comment
//! query: SELECT Name FORM Account      (or `search: FIND {…} …`)
//! error: 1:13 unexpected token: 'FORM'
//! ```
//!
//! or `ok: <canonical pretty form>`. In inputs, `⏎` stands for a newline.

use std::fs;
use std::path::PathBuf;

use mosaic_soql::{parse_query, parse_search, ParseError};

fn outcome(kind: &str, src: &str) -> String {
    fn err(e: ParseError) -> String {
        format!("error: {}:{} {}", e.line, e.column, e.message)
    }
    if kind == "search" {
        match parse_search(src) {
            Ok(q) => {
                let printed = q.to_string();
                let again = parse_search(&printed)
                    .map_err(|e| format!("reparse of {printed:?} failed: {e}"));
                assert_eq!(
                    again.map(|a| a.without_spans()),
                    Ok(q.without_spans()),
                    "round trip of {src:?}"
                );
                format!("ok: {printed}")
            }
            Err(e) => err(e),
        }
    } else {
        match parse_query(src) {
            Ok(q) => {
                let printed = q.to_string();
                let again = parse_query(&printed)
                    .map_err(|e| format!("reparse of {printed:?} failed: {e}"));
                assert_eq!(
                    again.map(|a| a.without_spans()),
                    Ok(q.without_spans()),
                    "round trip of {src:?}"
                );
                format!("ok: {printed}")
            }
            Err(e) => err(e),
        }
    }
}

fn run_file(name: &str) -> usize {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(name);
    let text = fs::read_to_string(&path).expect("case file");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut out = String::new();
    let mut failures = Vec::new();
    let mut cases = 0;
    for block in text.split("\n\n") {
        let mut input: Option<(&str, String)> = None;
        let mut expected: Option<&str> = None;
        let mut kept = Vec::new();
        for line in block.lines() {
            if let Some(q) = line.strip_prefix("query: ") {
                input = Some(("query", q.replace('⏎', "\n")));
                kept.push(line.to_string());
            } else if let Some(q) = line.strip_prefix("search: ") {
                input = Some(("search", q.replace('⏎', "\n")));
                kept.push(line.to_string());
            } else if line.starts_with("ok: ") || line.starts_with("error: ") || line == "expect:" {
                expected = Some(line);
            } else if !line.trim().is_empty() {
                kept.push(line.to_string());
            }
        }
        let mut block_out = kept.join("\n");
        if let Some((kind, src)) = input {
            cases += 1;
            let actual = outcome(kind, &src);
            if expected != Some(actual.as_str()) {
                failures.push(format!(
                    "input:    {src}\nexpected: {}\nactual:   {actual}",
                    expected.unwrap_or("<none>")
                ));
            }
            block_out.push('\n');
            block_out.push_str(&actual);
        }
        if !block_out.trim().is_empty() {
            out.push_str(block_out.trim_end());
            out.push_str("\n\n");
        }
    }
    if update {
        fs::write(&path, out.trim_end().to_string() + "\n").expect("write expectations");
    } else if !failures.is_empty() {
        panic!(
            "{} of {cases} cases in {name} differ:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    cases
}

#[test]
fn select_cases() {
    assert!(run_file("select.txt") >= 60);
}

#[test]
fn where_cases() {
    assert!(run_file("where.txt") >= 60);
}

#[test]
fn error_cases() {
    assert!(run_file("errors.txt") >= 40);
}

#[test]
fn search_cases() {
    assert!(run_file("search.txt") >= 10);
}
