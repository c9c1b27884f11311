// The formula fuzz check, included (`include!`) by its callers.

use mosaic_formula::chrono::{TimeZone, Utc};
use mosaic_formula::{
    compile, parse, DynamicSchema, EvalContext, FValue, FieldKind, FormulaType, MapRecord, Options,
};

fn schema() -> DynamicSchema {
    DynamicSchema::new()
        .with_field("Amount", FieldKind::Currency)
        .with_field("Qty", FieldKind::Number)
        .with_field("Name", FieldKind::Text)
        .with_field("Close", FieldKind::Date)
        .with_field("Created", FieldKind::Datetime)
        .with_field("Opens", FieldKind::Time)
        .with_field("Active", FieldKind::Boolean)
        .with_field("Stage", FieldKind::Picklist)
        .with_field("Regions", FieldKind::MultiPicklist)
        .with_field("Account.Owner.Name", FieldKind::Text)
        .with_field("Blank", FieldKind::Number)
}

fn record() -> MapRecord {
    let mut r = MapRecord::new();
    r.set(
        "Amount",
        FValue::Number(mosaic_formula::Decimal::new(123_456, 2)),
    );
    r.set("Qty", FValue::Number(mosaic_formula::Decimal::new(7, 0)));
    r.set("Name", FValue::Text("Acme ☃ Corp".into()));
    r.set(
        "Close",
        FValue::Date(mosaic_formula::chrono::NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()),
    );
    r.set(
        "Created",
        FValue::Datetime(Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap()),
    );
    r.set(
        "Opens",
        FValue::Time(mosaic_formula::chrono::NaiveTime::from_hms_milli_opt(9, 0, 0, 5).unwrap()),
    );
    r.set("Active", FValue::Boolean(true));
    r.set("Stage", FValue::Text("Closed Won".into()));
    r.set("Regions", FValue::Text("East;West".into()));
    r.set("Account.Owner.Name", FValue::Text("Hank".into()));
    r.set_prior("Amount", FValue::Number(mosaic_formula::Decimal::ONE));
    r
}

/// Checks one input of the formula pipeline: parse, print/re-parse,
/// compile against a small fixed schema (both blank modes), evaluate
/// against a filled and an empty record. Panics on a failed check.
/// Shared by the libFuzzer target (`fuzz/fuzz_targets/formula.rs`) and the
/// long run of `tests/fuzz_long.rs`.
pub fn check(src: &str) {
    if let Ok(expr) = parse(src) {
        let printed = expr.to_string();
        let reparsed = parse(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(expr, reparsed, "round trip changed the tree: {printed:?}");
    }
    let schema = schema();
    let rec = record();
    let ctx = EvalContext::at(Utc.with_ymd_and_hms(2024, 3, 15, 10, 30, 0).unwrap());
    for zero in [false, true] {
        let opts = Options {
            treat_blanks_as_zero: zero,
            return_type: None,
        };
        if let Ok(c) = compile(src, &schema, &opts) {
            let _ = c.eval(&rec, &ctx);
            let _ = c.eval(&MapRecord::new(), &ctx);
            let _: FormulaType = c.return_type();
        }
    }
}
