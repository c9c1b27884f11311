//! Property tests: printing round-trips through the parser, and evaluation
//! never panics on generated expressions.

use mosaic_formula::chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use mosaic_formula::{
    compile, parse, BinaryOp, Decimal, DynamicSchema, EvalContext, Expr, ExprKind, FValue,
    FieldKind, MapRecord, Options, UnaryOp, ALL_FUNCTIONS,
};
use mosaic_formula::{ErrorKind, FormulaType};
use proptest::prelude::*;

const FIELDS: &[&str] = &[
    "Amount", "Qty", "Name", "Close", "Created", "Opens", "Active", "Stage", "Regions", "Blank",
];

fn leaf(fields: bool) -> BoxedStrategy<Expr> {
    let number = (0u64..1_000_000_000, 0u32..6)
        .prop_map(|(m, s)| ExprKind::Number(Decimal::new(m as i64, s)));
    let text = "[a-zA-Z0-9 \"'\\\\\n\t日é😀]{0,8}".prop_map(ExprKind::Text);
    let boolean = any::<bool>().prop_map(ExprKind::Boolean);
    let field = if fields {
        prop::sample::select(FIELDS)
            .prop_map(|f| ExprKind::Field(vec![f.to_string()]))
            .boxed()
    } else {
        prop::collection::vec("[A-Za-z_][A-Za-z0-9_]{0,6}", 1..4)
            .prop_filter("keywords are not field names", |p| {
                !matches!(
                    p[0].to_ascii_uppercase().as_str(),
                    "TRUE" | "FALSE" | "NULL"
                )
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
            (
                prop::sample::select(vec![UnaryOp::Neg, UnaryOp::Not]),
                inner.clone()
            )
                .prop_map(|(op, e)| Expr::new(ExprKind::Unary(op, Box::new(e)), 0)),
            (binary_op(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::new(
                ExprKind::Binary(op, Box::new(l), Box::new(r)),
                0
            )),
            (
                prop::sample::select(names),
                prop::collection::vec(inner, 0..4)
            )
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
    r.set(
        "Close",
        FValue::Date(NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()),
    );
    r.set(
        "Created",
        FValue::Datetime(Utc.with_ymd_and_hms(2024, 2, 29, 23, 0, 0).unwrap()),
    );
    r.set(
        "Opens",
        FValue::Time(NaiveTime::from_hms_opt(9, 0, 0).unwrap()),
    );
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

/// Builds a well-typed formula of type `ty` from a stream of choices.
struct Gen<'a> {
    choices: &'a [u32],
    at: usize,
}

impl Gen<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let c = self.choices.get(self.at).copied().unwrap_or(0) as usize;
        self.at += 1;
        c % n
    }

    fn of(&mut self, ty: char, depth: u32) -> String {
        let leaf = depth == 0 || self.at >= self.choices.len();
        match ty {
            'N' => {
                let leaves = [
                    "0",
                    "1",
                    "2.5",
                    "1000",
                    "Amount",
                    "Qty",
                    "Blank",
                    "NULL",
                    "-3",
                    "0.000001",
                    "79228162514264337593543950335",
                ];
                if leaf {
                    return leaves[self.pick(leaves.len())].to_string();
                }
                let d = depth - 1;
                match self.pick(30) {
                    0 => format!("({} + {})", self.of('N', d), self.of('N', d)),
                    1 => format!("({} - {})", self.of('N', d), self.of('N', d)),
                    2 => format!("({} * {})", self.of('N', d), self.of('N', d)),
                    3 => format!("({} / {})", self.of('N', d), self.of('N', d)),
                    4 => format!("({} ^ {})", self.of('N', d), self.of('N', d)),
                    5 => format!("ROUND({}, {})", self.of('N', d), self.of('N', d)),
                    6 => format!("MOD({}, {})", self.of('N', d), self.of('N', d)),
                    7 => format!("SQRT({})", self.of('N', d)),
                    8 => format!("LN({})", self.of('N', d)),
                    9 => format!("EXP({})", self.of('N', d)),
                    10 => format!("POWER({}, {})", self.of('N', d), self.of('N', d)),
                    11 => format!(
                        "MAX({}, {}, {})",
                        self.of('N', d),
                        self.of('N', d),
                        self.of('N', d)
                    ),
                    12 => format!("LEN({})", self.of('T', d)),
                    13 => format!(
                        "FIND({}, {}, {})",
                        self.of('T', d),
                        self.of('T', d),
                        self.of('N', d)
                    ),
                    14 => format!("VALUE({})", self.of('T', d)),
                    15 => format!(
                        "IF({}, {}, {})",
                        self.of('B', d),
                        self.of('N', d),
                        self.of('N', d)
                    ),
                    16 => format!(
                        "CASE({}, {}, {}, {})",
                        self.of('N', d),
                        self.of('N', d),
                        self.of('N', d),
                        self.of('N', d)
                    ),
                    17 => format!("YEAR({})", self.of('D', d)),
                    18 => format!("({} - {})", self.of('D', d), self.of('D', d)),
                    19 => format!("TRUNC({}, {})", self.of('N', d), self.of('N', d)),
                    20 => format!("CEILING({})", self.of('N', d)),
                    21 => format!("TAN({})", self.of('N', d)),
                    22 => format!("ATAN2({}, {})", self.of('N', d), self.of('N', d)),
                    23 => format!("UNIXTIMESTAMP({})", self.of('D', d)),
                    24 => format!("-{}", self.of('N', d)),
                    25 => format!("LOG({})", self.of('N', d)),
                    26 => format!("SIN({})", self.of('N', d)),
                    27 => format!("ASIN({})", self.of('N', d)),
                    28 => format!("BLANKVALUE({}, {})", self.of('N', d), self.of('N', d)),
                    _ => format!("PRIORVALUE(Amount) + {}", self.of('N', d)),
                }
            }
            'T' => {
                let leaves = [
                    "\"abc\"",
                    "Name",
                    "\"\"",
                    "\"日本 é😀\"",
                    "\"a;b\"",
                    "TEXT(Stage)",
                    "$User.Id",
                    "NULL",
                ];
                if leaf {
                    return leaves[self.pick(leaves.len())].to_string();
                }
                let d = depth - 1;
                match self.pick(22) {
                    0 => format!("({} & {})", self.of('T', d), self.of('T', d)),
                    1 => format!("LEFT({}, {})", self.of('T', d), self.of('N', d)),
                    2 => format!("RIGHT({}, {})", self.of('T', d), self.of('N', d)),
                    3 => format!(
                        "MID({}, {}, {})",
                        self.of('T', d),
                        self.of('N', d),
                        self.of('N', d)
                    ),
                    4 => format!(
                        "SUBSTITUTE({}, {}, {})",
                        self.of('T', d),
                        self.of('T', d),
                        self.of('T', d)
                    ),
                    5 => format!("UPPER({})", self.of('T', d)),
                    6 => format!(
                        "LPAD({}, {}, {})",
                        self.of('T', d),
                        self.of('N', d),
                        self.of('T', d)
                    ),
                    7 => format!("RPAD({}, {})", self.of('T', d), self.of('N', d)),
                    8 => format!("TEXT({})", self.of('N', d)),
                    9 => format!("TEXT({})", self.of('D', d)),
                    10 => format!("REPT({}, {})", self.of('T', d), self.of('N', d)),
                    11 => format!("INITCAP({})", self.of('T', d)),
                    12 => format!("REVERSE({})", self.of('T', d)),
                    13 => format!(
                        "IF({}, {}, {})",
                        self.of('B', d),
                        self.of('T', d),
                        self.of('T', d)
                    ),
                    14 => format!("CASESAFEID({})", self.of('T', d)),
                    15 => format!("JSINHTMLENCODE({})", self.of('T', d)),
                    16 => format!("URLENCODE({})", self.of('T', d)),
                    17 => format!(
                        "REGEXREPLACE({}, \"[a-z]+\", {})",
                        self.of('T', d),
                        self.of('T', d)
                    ),
                    18 => format!("FORMATDURATION({})", self.of('N', d)),
                    19 => format!("UNICHAR({})", self.of('N', d)),
                    20 => format!("HYPERLINK({}, {})", self.of('T', d), self.of('T', d)),
                    _ => format!("TRIM({})", self.of('T', d)),
                }
            }
            'B' => {
                let leaves = [
                    "TRUE",
                    "FALSE",
                    "Active",
                    "ISNEW()",
                    "ISCHANGED(Amount)",
                    "NULL",
                ];
                if leaf {
                    return leaves[self.pick(leaves.len())].to_string();
                }
                let d = depth - 1;
                match self.pick(14) {
                    0 => format!("({} > {})", self.of('N', d), self.of('N', d)),
                    1 => format!("({} = {})", self.of('T', d), self.of('T', d)),
                    2 => format!("AND({}, {})", self.of('B', d), self.of('B', d)),
                    3 => format!("({} || {})", self.of('B', d), self.of('B', d)),
                    4 => format!("NOT({})", self.of('B', d)),
                    5 => format!("ISBLANK({})", self.of('N', d)),
                    6 => format!("CONTAINS({}, {})", self.of('T', d), self.of('T', d)),
                    7 => format!("BEGINS({}, {})", self.of('T', d), self.of('T', d)),
                    8 => format!("REGEX({}, {})", self.of('T', d), self.of('T', d)),
                    9 => format!("ISPICKVAL(Stage, {})", self.of('T', d)),
                    10 => format!("INCLUDES(Regions, {})", self.of('T', d)),
                    11 => format!("ISNUMBER({})", self.of('T', d)),
                    12 => format!("({} <= {})", self.of('D', d), self.of('D', d)),
                    _ => format!("!{}", self.of('B', d)),
                }
            }
            _ => {
                let leaves = [
                    "Close",
                    "TODAY()",
                    "DATE(2024, 2, 29)",
                    "DATEVALUE(Created)",
                    "BLANKVALUE(NULL, Close)",
                ];
                if leaf {
                    return leaves[self.pick(leaves.len())].to_string();
                }
                let d = depth - 1;
                match self.pick(7) {
                    0 => format!(
                        "DATE({}, {}, {})",
                        self.of('N', d),
                        self.of('N', d),
                        self.of('N', d)
                    ),
                    1 => format!("ADDMONTHS({}, {})", self.of('D', d), self.of('N', d)),
                    2 => format!("({} + {})", self.of('D', d), self.of('N', d)),
                    3 => format!("DATEVALUE({})", self.of('T', d)),
                    4 => format!("EOMONTH({}, {})", self.of('D', d), self.of('N', d)),
                    5 => format!(
                        "IF({}, {}, {})",
                        self.of('B', d),
                        self.of('D', d),
                        self.of('D', d)
                    ),
                    _ => format!("({} - {})", self.of('D', d), self.of('N', d)),
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Well-typed formulas compile to the expected type and evaluate to a
    /// value of that type, or to one of the documented evaluation errors.
    #[test]
    fn well_typed_formulas_compile_and_evaluate(
        ty in prop::sample::select(vec!['N', 'T', 'B', 'D']),
        choices in prop::collection::vec(any::<u32>(), 1..120),
        zero in any::<bool>(),
    ) {
        let src = Gen { choices: &choices, at: 0 }.of(ty, 5);
        let opts = Options { treat_blanks_as_zero: zero, return_type: None };
        let compiled = compile(&src, &schema(), &opts);
        // Constant folding runs constant sub-expressions at compile time, so
        // the documented evaluation errors (e.g. an invalid constant REGEX
        // pattern) may surface here instead of at evaluation.
        if let Err(errors) = &compiled {
            let evaluation_error = errors.iter().all(|e| {
                matches!(e.kind, ErrorKind::Overflow | ErrorKind::LimitExceeded | ErrorKind::InvalidArgument)
            });
            prop_assert!(evaluation_error, "{src}: {errors:?}");
            return Ok(());
        }
        let c = compiled.unwrap();
        let want = match ty { 'N' => FormulaType::Number, 'T' => FormulaType::Text, 'B' => FormulaType::Boolean, _ => FormulaType::Date };
        prop_assert!(c.return_type() == want || c.return_type() == FormulaType::Any, "{src}: {:?}", c.return_type());
        let ctx = EvalContext::at(Utc.with_ymd_and_hms(2024, 3, 15, 10, 30, 0).unwrap());
        for rec in [record(), MapRecord::new()] {
            match c.eval(&rec, &ctx) {
                Ok(v) => {
                    let fits = matches!(
                        (&v, ty),
                        (FValue::Null, _) | (FValue::Number(_), 'N') | (FValue::Text(_), 'T') | (FValue::Boolean(_), 'B') | (FValue::Date(_), 'D')
                    );
                    prop_assert!(fits, "{src} gave {v:?}");
                }
                Err(e) => prop_assert!(
                    matches!(e.kind, ErrorKind::Overflow | ErrorKind::LimitExceeded | ErrorKind::InvalidArgument),
                    "{src}: unexpected {e:?}"
                ),
            }
        }
    }
}
