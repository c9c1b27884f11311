//! Table-driven conformance suite: `tests/conformance.txt` is the spec.
//!
//! File format (one case per line, `#` comments):
//!
//! ```text
//! @reset                       clear fields, prior values and options
//! @field Amount currency 2000  declare a field (kind, value; `null` for null)
//! @field Loc__c location 1,2   a geolocation field (latitude,longitude) and
//!                              its parts Loc__Latitude__s / Loc__Longitude__s
//! @prior Amount 1500           prior value of a declared field (ISCHANGED compares)
//! @new true                    the record is being inserted
//! @blanks zero|blank           treat-blanks-as-zero option
//! @returns number              declared return type
//! @now 2024-03-15T10:30:00Z    clock for TODAY/NOW/TIMENOW
//! @tz 120                      user time-zone offset in minutes
//! EXPR => number 200           expected value: null | number N | approx N TOL |
//!                              text "..." | bool B | date D | datetime D T |
//!                              time T | error SUBSTRING [@OFFSET]
//! ```

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use mosaic_formula::{
    compile, DynamicSchema, EvalContext, FValue, FieldKind, FormulaType, MapRecord, Options,
};
use rust_decimal::Decimal;

#[derive(Default, Clone)]
struct State {
    fields: Vec<(String, FieldKind, FValue)>,
    priors: HashMap<String, FValue>,
    new: bool,
    opts: Options,
    now: Option<DateTime<Utc>>,
    tz: i32,
}

fn kind(s: &str) -> FieldKind {
    match s {
        "text" => FieldKind::Text,
        "textarea" => FieldKind::TextArea,
        "number" => FieldKind::Number,
        "currency" => FieldKind::Currency,
        "percent" => FieldKind::Percent,
        "boolean" => FieldKind::Boolean,
        "date" => FieldKind::Date,
        "datetime" => FieldKind::Datetime,
        "time" => FieldKind::Time,
        "picklist" => FieldKind::Picklist,
        "multipicklist" => FieldKind::MultiPicklist,
        "id" => FieldKind::Id,
        "email" => FieldKind::Email,
        "phone" => FieldKind::Phone,
        "url" => FieldKind::Url,
        other => panic!("unknown field kind {other}"),
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(o) => out.push(o),
                    None => {}
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        s.to_string()
    }
}

fn value_of(k: FieldKind, raw: &str) -> FValue {
    let raw = raw.trim();
    if raw == "null" {
        return FValue::Null;
    }
    match k {
        FieldKind::Number | FieldKind::Currency | FieldKind::Percent => {
            FValue::Number(raw.parse().expect("number"))
        }
        FieldKind::Boolean => FValue::Boolean(raw == "true"),
        FieldKind::Date => FValue::Date(NaiveDate::parse_from_str(raw, "%Y-%m-%d").expect("date")),
        FieldKind::Datetime => FValue::Datetime(parse_dt(raw)),
        FieldKind::Time => {
            FValue::Time(NaiveTime::parse_from_str(raw, "%H:%M:%S%.f").expect("time"))
        }
        _ => FValue::Text(unquote(raw)),
    }
}

fn parse_dt(raw: &str) -> DateTime<Utc> {
    let raw = raw.trim().trim_end_matches('Z');
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f"))
        .expect("datetime")
        .and_utc()
}

fn formula_type(s: &str) -> FormulaType {
    match s {
        "text" => FormulaType::Text,
        "number" => FormulaType::Number,
        "boolean" => FormulaType::Boolean,
        "date" => FormulaType::Date,
        "datetime" => FormulaType::Datetime,
        "time" => FormulaType::Time,
        other => panic!("unknown type {other}"),
    }
}

/// Runs one case; returns a failure description.
fn run_case(state: &State, expr: &str, expected: &str) -> Result<(), String> {
    let mut schema = DynamicSchema::new();
    let mut rec = MapRecord::new();
    for (name, k, v) in &state.fields {
        schema.add_field(name, *k);
        rec.set(name, v.clone());
        if let Some(p) = state.priors.get(name) {
            rec.set_prior(name, p.clone());
        }
    }
    rec.new = state.new;
    let mut ctx = EvalContext::at(
        state
            .now
            .unwrap_or_else(|| parse_dt("2024-03-15T10:30:00Z")),
    );
    ctx.user_id = "005000000000001AAA";
    ctx.username = "ada@example.com";
    ctx.org_id = "00D000000000001EAA";
    ctx.tz_offset_minutes = state.tz;
    let result = compile(expr, &schema, &state.opts)
        .map_err(|mut errs| errs.remove(0))
        .and_then(|c| c.eval(&rec, &ctx));
    let (kind, rest) = expected.split_once(' ').unwrap_or((expected, ""));
    if kind == "error" {
        let (msg, pos) = match rest.rsplit_once(" @") {
            Some((m, p)) if p.parse::<usize>().is_ok() => (m, p.parse::<usize>().ok()),
            _ => (rest, None),
        };
        return match result {
            Err(e) if e.message.contains(msg.trim()) && pos.is_none_or(|p| p == e.position) => {
                Ok(())
            }
            Err(e) => Err(format!(
                "expected error '{msg}' at {pos:?}, got error '{}' at {}",
                e.message, e.position
            )),
            Ok(v) => Err(format!("expected error '{msg}', got value {v:?}")),
        };
    }
    let got = result.map_err(|e| format!("unexpected error: {} at {}", e.message, e.position))?;
    let ok = match (kind, &got) {
        ("null", FValue::Null) => true,
        ("number", FValue::Number(n)) => {
            *n == rest.trim().parse::<Decimal>().expect("expected number")
        }
        ("approx", FValue::Number(n)) => {
            let (want, tol) = rest.trim().split_once(' ').expect("approx N TOL");
            let want: Decimal = want.parse().expect("number");
            let tol: Decimal = tol.parse().expect("number");
            (*n - want).abs() <= tol
        }
        ("text", FValue::Text(s)) => *s == unquote(rest),
        ("text", FValue::Null) => unquote(rest).is_empty(),
        ("bool", FValue::Boolean(b)) => *b == (rest.trim() == "true"),
        ("date", FValue::Date(d)) => {
            *d == NaiveDate::parse_from_str(rest.trim(), "%Y-%m-%d").expect("date")
        }
        ("datetime", FValue::Datetime(d)) => *d == parse_dt(rest),
        ("time", FValue::Time(t)) => {
            *t == NaiveTime::parse_from_str(rest.trim(), "%H:%M:%S%.f").expect("time")
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {expected}, got {got:?}"))
    }
}

#[test]
fn conformance() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance.txt");
    let text = std::fs::read_to_string(path).expect("read conformance.txt");
    let mut state = State::default();
    let mut cases = 0;
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(directive) = trimmed.strip_prefix('@') {
            let (name, rest) = directive.split_once(' ').unwrap_or((directive, ""));
            match name {
                "reset" => state = State::default(),
                "field" => {
                    let mut parts = rest.splitn(3, ' ');
                    let fname = parts.next().expect("field name").to_string();
                    let kind_name = parts.next().expect("field kind");
                    if kind_name == "location" {
                        // A geolocation field and its two Number parts, as
                        // the metadata layer resolves them.
                        let raw = parts.next().unwrap_or("null");
                        let (lat, lon) = raw.split_once(',').unwrap_or(("null", "null"));
                        let base = fname.trim_end_matches("__c").to_string();
                        for (n, k, v) in [
                            (fname.clone(), FieldKind::Location, FValue::Null),
                            (
                                format!("{base}__Latitude__s"),
                                FieldKind::Number,
                                value_of(FieldKind::Number, lat),
                            ),
                            (
                                format!("{base}__Longitude__s"),
                                FieldKind::Number,
                                value_of(FieldKind::Number, lon),
                            ),
                        ] {
                            state.fields.retain(|(x, _, _)| *x != n);
                            state.fields.push((n, k, v));
                        }
                        continue;
                    }
                    let k = kind(kind_name);
                    let v = value_of(k, parts.next().unwrap_or("null"));
                    state.fields.retain(|(n, _, _)| *n != fname);
                    state.fields.push((fname, k, v));
                }
                "prior" => {
                    let (fname, raw) = rest.split_once(' ').expect("@prior NAME VALUE");
                    let k = state
                        .fields
                        .iter()
                        .find(|(n, _, _)| n == fname)
                        .expect("prior of declared field")
                        .1;
                    state.priors.insert(fname.to_string(), value_of(k, raw));
                }
                "new" => state.new = rest.trim() == "true",
                "blanks" => state.opts.treat_blanks_as_zero = rest.trim() == "zero",
                "returns" => state.opts.return_type = Some(formula_type(rest.trim())),
                "now" => state.now = Some(parse_dt(rest)),
                "tz" => state.tz = rest.trim().parse().expect("tz minutes"),
                other => panic!("line {line_no}: unknown directive @{other}"),
            }
            continue;
        }
        let Some((expr, expected)) = line.rsplit_once(" => ") else {
            panic!("line {line_no}: expected `EXPR => EXPECTED`");
        };
        cases += 1;
        if let Err(msg) = run_case(&state, expr.trim(), expected.trim()) {
            failures.push(format!("line {line_no}: {}\n    {msg}", expr.trim()));
        }
    }
    assert!(cases >= 400, "conformance.txt has only {cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{cases} conformance cases passed");
}
