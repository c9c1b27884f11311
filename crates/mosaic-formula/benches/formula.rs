//! Benchmarks: evaluating a typical formula and compiling a ~1 KB one.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mosaic_formula::chrono::{TimeZone, Utc};
use mosaic_formula::{
    compile, DynamicSchema, EvalContext, FValue, FieldKind, MapRecord, Options, Record,
};

/// A record with one field, answering without hashing: what a runtime record
/// backed by slot indices looks like.
struct AmountRecord(FValue);
impl Record for AmountRecord {
    fn get(&self, _path: &[String]) -> FValue {
        self.0.clone()
    }
}

fn schema() -> DynamicSchema {
    DynamicSchema::new()
        .with_field("Amount", FieldKind::Currency)
        .with_field("Discount", FieldKind::Percent)
        .with_field("Name", FieldKind::Text)
        .with_field("Stage", FieldKind::Picklist)
        .with_field("Close", FieldKind::Date)
        .with_field("Account.Owner.Name", FieldKind::Text)
}

fn kilobyte_formula() -> String {
    let piece = "IF(AND(Amount > 1000, ISPICKVAL(Stage, \"Closed Won\")), ROUND(Amount * (1 - Discount / 100), 2), \
                 CASE(MONTH(Close), 1, 0.5, 2, 0.25, 0)) + LEN(UPPER(Account.Owner.Name & Name)) ";
    let mut parts = Vec::new();
    let mut len = 0;
    while len < 1000 {
        parts.push(piece.trim());
        len += piece.len() + 3;
    }
    parts.join(" + ")
}

fn benches(c: &mut Criterion) {
    let schema = schema();
    let opts = Options::default();
    let ctx = EvalContext::at(Utc.with_ymd_and_hms(2024, 3, 15, 10, 30, 0).unwrap());
    let compiled = compile("IF(Amount > 1000, Amount * 0.1, 0)", &schema, &opts).unwrap();
    let rec = AmountRecord(FValue::Number(2500.into()));
    c.bench_function("eval IF(Amount > 1000, Amount * 0.1, 0)", |b| {
        b.iter(|| compiled.eval(black_box(&rec), &ctx).unwrap())
    });
    let mut map = MapRecord::new();
    map.set("Amount", FValue::Number(2500.into()));
    c.bench_function("eval IF(...) via MapRecord", |b| {
        b.iter(|| compiled.eval(black_box(&map), &ctx).unwrap())
    });
    let src = kilobyte_formula();
    assert!(src.len() >= 1000, "{}", src.len());
    c.bench_function(&format!("parse {}-byte formula", src.len()), |b| {
        b.iter(|| mosaic_formula::parse(black_box(&src)).unwrap())
    });
    c.bench_function(&format!("compile {}-byte formula", src.len()), |b| {
        b.iter(|| compile(black_box(&src), &schema, &opts).unwrap())
    });
}

criterion_group!(formula, benches);
criterion_main!(formula);
