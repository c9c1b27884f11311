//! Property tests: printing round-trips through the parser, and evaluation
//! never panics on generated expressions.

use mosaic_formula::chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use mosaic_formula::{
    compile, parse, BinaryOp, Decimal, DynamicSchema, EvalContext, Expr, ExprKind, FValue, FieldKind, MapRecord,
    Options, UnaryOp, ALL_FUNCTIONS,
};
use proptest::prelude::*;

const FIELDS: &[&str] = &["Amount", "Qty", "Name", "Close", "Created", "Opens", "Active", "Stage", "Regions", "Blank"];

fn leaf(fields: bool) -> BoxedStrategy<Expr> {
    let number = (0u64..1_000_000_000, 0u32..6).prop_map(|(m, s)| ExprKind::Number(Decimal::new(m as i64, s)));
    let text = "[a-zA-Z0-9 \"'\\\\\n\t日é😀]{0,8}".prop_map(ExprKind::Text);
    let boolean = any::<bool>().prop_map(ExprKind::Boolean);
    let field = if fields {
        prop::sample::select(FIELDS).prop_map(|f| ExprKind::Field(vec![f.to_string()])).boxed()
    } else {
        prop::collection::vec("[A-Za-z_][A-Za-z0-9_]{0,6}", 1..4)
            .prop_filter("keywords are not field names", |p| {
                !matches!(p[0].to_ascii_uppercase().as_str(), "TRUE" | "FALSE" | "NULL")
            })
            .prop_map(ExprKind::Field)
            .boxed()
    };
    prop_oneof![number, text, boolean, Just(ExprKind::Null), field]
        .prop_map(|k| Expr::new(k, 0))
        .boxed()
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(vec![
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Concat,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Gt,
        BinaryOp::Le,
        BinaryOp::Ge,
        BinaryOp::And,
        BinaryOp::Or,
    ])
}

fn expr(fields: bool) -> impl Strategy<Value = Expr> {
    leaf(fields).prop_recursive(6, 64, 4, |inner| {
        let names: Vec<&'static str> = ALL_FUNCTIONS.iter().map(|f| f.name()).collect();
        prop_oneof![
            (prop::sample::select(vec![UnaryOp::Neg, UnaryOp::Not]), inner.clone())
                .prop_map(|(op, e)| Expr::new(ExprKind::Unary(op, Box::new(e)), 0)),
            (binary_op(), inner.clone(), inner.clone())
                .prop_map(|(op, l, r)| Expr::new(ExprKind::Binary(op, Box::new(l), Box::new(r)), 0)),
            (prop::sample::select(names), prop::collection::vec(inner, 0..4))
                .prop_map(|(n, args)| Expr::new(ExprKind::Call(n.to_string(), args), 0)),
        ]
    })
}

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
        .with_field("Blank", FieldKind::Number)
}

fn record() -> MapRecord {
    let mut r = MapRecord::new();
    r.set("Amount", FValue::Number(Decimal::new(123_456, 2)));
    r.set("Qty", FValue::Number(Decimal::new(-7, 0)));
    r.set("Name", FValue::Text("Acme ☃".into()));
    r.set("Close", FValue::Date(NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()));
    r.set("Created", FValue::Datetime(Utc.with_ymd_and_hms(2024, 2, 29, 23, 0, 0).unwrap()));
    r.set("Opens", FValue::Time(NaiveTime::from_hms_opt(9, 0, 0).unwrap()));
    r.set("Active", FValue::Boolean(true));
    r.set("Stage", FValue::Text("Won".into()));
    r.set("Regions", FValue::Text("East;West".into()));
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn printed_ast_reparses_to_the_same_ast(e in expr(false)) {
        let printed = e.to_string();
        let reparsed = parse(&printed);
        prop_assert!(reparsed.is_ok(), "{printed:?} failed to parse: {:?}", reparsed.err());
        prop_assert_eq!(reparsed.ok(), Some(e), "printed: {}", printed);
    }

    #[test]
    fn evaluation_never_panics(e in expr(true), zero in any::<bool>()) {
        let src = e.to_string();
        let opts = Options { treat_blanks_as_zero: zero, return_type: None };
        let ctx = EvalContext::at(Utc.with_ymd_and_hms(2024, 3, 15, 10, 30, 0).unwrap());
        if let Ok(c) = compile(&src, &schema(), &opts) {
            let _ = c.eval(&record(), &ctx);
            let _ = c.eval(&MapRecord::new(), &ctx);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(src in "[-+*/^&=<>!|(),.\"' a-zA-Z0-9$_\\\\]{0,60}") {
        let ctx = EvalContext::at(Utc.with_ymd_and_hms(2024, 3, 15, 10, 30, 0).unwrap());
        if let Ok(c) = compile(&src, &schema(), &Options::default()) {
            let _ = c.eval(&record(), &ctx);
        }
    }
}
