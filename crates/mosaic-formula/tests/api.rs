//! Behaviour of the public API beyond single expressions: limits, positions
//! across lines, referenced fields, budgets.

use mosaic_formula::chrono::{TimeZone, Utc};
use mosaic_formula::limits::{MAX_NESTING_DEPTH, MAX_SOURCE_LEN};
use mosaic_formula::{
    compile, parse, DynamicSchema, ErrorKind, EvalContext, FValue, FieldKind, FormulaType,
    MapRecord, Options,
};

fn ctx() -> EvalContext<'static> {
    EvalContext::at(Utc.with_ymd_and_hms(2024, 3, 15, 10, 30, 0).unwrap())
}

fn schema() -> DynamicSchema {
    DynamicSchema::new()
        .with_field("Amount", FieldKind::Currency)
        .with_field("Name", FieldKind::Text)
        .with_field("Account.Owner.Name", FieldKind::Text)
}

#[test]
fn errors_report_line_and_column_across_lines() {
    let err = parse("IF(\n  Amount > 1,\n  Amount *,\n  0)").unwrap_err();
    assert_eq!((err.line, err.column), (3, 11), "{err}");
    assert_eq!(err.position, 28);
    let errs = compile("1 +\n  Missing", &schema(), &Options::default()).unwrap_err();
    assert_eq!(errs[0].kind, ErrorKind::UnknownField);
    assert_eq!((errs[0].line, errs[0].column), (2, 3));
}

#[test]
fn columns_count_characters_not_bytes() {
    let err = compile("\"日本\" & Missing", &schema(), &Options::default()).unwrap_err();
    assert_eq!(err[0].position, 11);
    assert_eq!(err[0].column, 8);
}

#[test]
fn source_longer_than_the_limit_is_rejected() {
    let src = "1".repeat(MAX_SOURCE_LEN + 1);
    let err = parse(&src).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded);
    // Exactly at the limit is fine (a long sum of ones, under the depth limit).
    let ok = format!("\"{}\"", "x".repeat(MAX_SOURCE_LEN - 2));
    assert!(parse(&ok).is_ok());
}

#[test]
fn nesting_beyond_the_limit_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse(&deep[..]).is_err());
    let chain = vec!["1"; MAX_NESTING_DEPTH + 5].join(" + ");
    let err = parse(&chain).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded);
    let negs = format!("{}1", "-".repeat(4_000));
    assert_eq!(parse(&negs).unwrap_err().kind, ErrorKind::LimitExceeded);
    let ok = vec!["1"; MAX_NESTING_DEPTH / 2].join(" + ");
    assert!(parse(&ok).is_ok());
}

#[test]
fn referenced_fields_are_canonical_sorted_and_deduplicated() {
    let c = compile(
        "LEN(name) + amount + Amount + LEN(account.owner.name)",
        &schema(),
        &Options::default(),
    )
    .unwrap();
    let want: Vec<Vec<String>> = vec![
        vec!["Account".into(), "Owner".into(), "Name".into()],
        vec!["Amount".into()],
        vec!["Name".into()],
    ];
    assert_eq!(c.referenced_fields(), &want[..]);
    assert_eq!(c.return_type(), FormulaType::Number);
}

#[test]
fn constant_subexpressions_are_folded() {
    let c = compile(
        "IF(1 + 1 = 2, Amount * (2 * 3), Amount / 0)",
        &schema(),
        &Options::default(),
    )
    .unwrap();
    // IF folded away; 2 * 3 folded into one constant: Amount * 6.
    assert_eq!(c.size(), 3);
    let mut rec = MapRecord::new();
    rec.set("Amount", FValue::Number(7.into()));
    assert_eq!(c.eval(&rec, &ctx()).unwrap(), FValue::Number(42.into()));
}

#[test]
fn step_budget_stops_evaluation() {
    let src = vec!["Amount"; 60].join(" + ");
    let c = compile(&src, &schema(), &Options::default()).unwrap();
    let rec = MapRecord::new();
    let err = c.eval_with_budget(&rec, &ctx(), 10).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded);
    assert!(c.eval(&rec, &ctx()).is_ok());
}

#[test]
fn runtime_errors_carry_positions() {
    let c = compile("1 + REPT(Name, 1000000)", &schema(), &Options::default());
    // Type error: REPT returns text.
    assert!(c.is_err());
    let c = compile("LEN(REPT(Name, 1000000))", &schema(), &Options::default()).unwrap();
    let mut rec = MapRecord::new();
    rec.set("Name", FValue::Text("abc".into()));
    let err = c.eval(&rec, &ctx()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded);
    assert_eq!(err.position, 4);
}

#[test]
fn a_record_that_disagrees_with_its_schema_reads_as_null() {
    let c = compile("Amount + 1", &schema(), &Options::default()).unwrap();
    let mut rec = MapRecord::new();
    rec.set("Amount", FValue::Text("not a number".into()));
    assert_eq!(c.eval(&rec, &ctx()).unwrap(), FValue::Null);
}

#[test]
fn dynamic_schema_types_fields_from_sample_values() {
    let amount = FValue::Number(5.into());
    let name = FValue::Text("x".into());
    let schema = DynamicSchema::from_sample([("Amount", &amount), ("Name", &name)]);
    let c = compile("Amount * 2 & \"\"", &schema, &Options::default());
    assert!(c.is_err());
    let c = compile("TEXT(Amount * 2) & Name", &schema, &Options::default()).unwrap();
    let mut rec = MapRecord::new();
    rec.set("Amount", amount);
    rec.set("Name", name);
    assert_eq!(c.eval(&rec, &ctx()).unwrap(), FValue::Text("10x".into()));
}

#[test]
fn the_deepest_accepted_formula_runs_on_a_two_megabyte_stack() {
    // Tokio's worker threads have 2 MiB stacks; the depth limit must fit.
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let mut src = String::from("Amount");
            // Each IF adds one level; each argument list one more.
            for _ in 0..(MAX_NESTING_DEPTH / 2 - 1) {
                src = format!("IF(Amount > 0, {src} + 1, 0)");
            }
            let c = compile(&src, &schema(), &Options::default()).expect("compiles");
            let mut rec = MapRecord::new();
            rec.set("Amount", FValue::Number(1.into()));
            let v = c.eval(&rec, &ctx()).expect("evaluates");
            let printed = parse(&src).expect("parses").to_string();
            assert!(parse(&printed).is_ok());
            v
        })
        .unwrap();
    assert_eq!(
        handle.join().unwrap(),
        FValue::Number((MAX_NESTING_DEPTH as i64 / 2).into())
    );
}
