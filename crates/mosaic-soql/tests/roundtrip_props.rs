//! Property tests: generated ASTs pretty-print and re-parse to the same AST;
//! arbitrary text never panics the parsers.

use chrono::{DateTime, NaiveDate};
use mosaic_soql::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

const RESERVED: &[&str] = &[
    "AND",
    "ASC",
    "BY",
    "DESC",
    "EXCLUDES",
    "FALSE",
    "FIRST",
    "FROM",
    "GROUP",
    "HAVING",
    "IN",
    "INCLUDES",
    "LAST",
    "LIKE",
    "LIMIT",
    "NOT",
    "NULL",
    "NULLS",
    "OFFSET",
    "OR",
    "ORDER",
    "SELECT",
    "TRUE",
    "WHERE",
    "WITH",
    "USING",
    "FOR",
    "UPDATE",
    "RETURNING",
    "FIND",
];

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_]{0,7}".prop_filter("reserved", |s| {
        !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
    })
}

fn ident() -> impl Strategy<Value = Ident> {
    name().prop_map(|name| Ident {
        name,
        span: Span::default(),
    })
}

fn path() -> impl Strategy<Value = FieldPath> {
    prop::collection::vec(ident(), 1..4).prop_map(|parts| FieldPath {
        parts,
        span: Span::default(),
    })
}

fn date_literal() -> impl Strategy<Value = DateLiteral> {
    prop_oneof![
        prop::sample::select(vec![
            DateLiteral::Yesterday,
            DateLiteral::Today,
            DateLiteral::Tomorrow,
            DateLiteral::LastWeek,
            DateLiteral::ThisWeek,
            DateLiteral::NextWeek,
            DateLiteral::LastMonth,
            DateLiteral::ThisMonth,
            DateLiteral::NextMonth,
            DateLiteral::LastQuarter,
            DateLiteral::ThisQuarter,
            DateLiteral::NextQuarter,
            DateLiteral::LastYear,
            DateLiteral::ThisYear,
            DateLiteral::NextYear,
            DateLiteral::Last90Days,
            DateLiteral::Next90Days,
        ]),
        (0u32..=MAX_DATE_LITERAL_N).prop_map(DateLiteral::LastNDays),
        (0u32..=MAX_DATE_LITERAL_N).prop_map(DateLiteral::NextNDays),
        (0u32..=MAX_DATE_LITERAL_N).prop_map(DateLiteral::NDaysAgo),
        prop::sample::select(vec![
            DateLiteral::ThisFiscalQuarter,
            DateLiteral::LastFiscalQuarter,
            DateLiteral::NextFiscalQuarter,
            DateLiteral::ThisFiscalYear,
            DateLiteral::LastFiscalYear,
            DateLiteral::NextFiscalYear,
        ]),
        (
            prop::sample::select(vec![Relative::Last, Relative::Next, Relative::Ago]),
            prop::sample::select(vec![
                DateUnit::Week,
                DateUnit::Month,
                DateUnit::Quarter,
                DateUnit::Year,
                DateUnit::FiscalQuarter,
                DateUnit::FiscalYear,
            ]),
            0u32..=MAX_DATE_LITERAL_N
        )
            .prop_map(|(rel, unit, n)| DateLiteral::Units { rel, unit, n }),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        (any::<i64>(), 0u32..10).prop_map(|(m, s)| Literal::Number(Decimal::new(m, s))),
        any::<String>().prop_map(Literal::String),
        "[a-z\\\\'_%\n]{0,6}".prop_map(Literal::String),
        (1i32..3_652_059).prop_map(|d| Literal::Date(
            NaiveDate::from_num_days_from_ce_opt(d).expect("in range")
        )),
        (-62_135_596_800i64..253_402_300_799, 0u32..1_000_000_000).prop_map(|(s, n)| {
            Literal::DateTime(DateTime::from_timestamp(s, n).expect("in range"))
        }),
        date_literal().prop_map(Literal::DateLiteral),
        ("[A-Z]{3}", any::<u32>(), 0u32..4).prop_map(|(code, m, s)| Literal::Currency {
            code,
            amount: Decimal::new(i64::from(m), s),
        }),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    literal().prop_map(|literal| Value {
        literal,
        span: Span::default(),
    })
}

fn like() -> impl Strategy<Value = LikePattern> {
    let part = prop_oneof![
        Just(LikePart::AnyChar),
        Just(LikePart::AnyString),
        any::<String>().prop_map(LikePart::Text),
        "[a-z_%\\\\']{1,4}".prop_map(LikePart::Text),
    ];
    prop::collection::vec(part, 0..5)
        .prop_map(|parts| LikePattern::from_parts(parts, Span::default()))
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ])
}

fn agg_fn() -> impl Strategy<Value = AggregateFn> {
    prop::sample::select(vec![
        AggregateFn::Count,
        AggregateFn::CountDistinct,
        AggregateFn::Sum,
        AggregateFn::Avg,
        AggregateFn::Min,
        AggregateFn::Max,
    ])
}

fn aggregate(alias: Option<Ident>) -> impl Strategy<Value = Aggregate> {
    (agg_fn(), path()).prop_map(move |(func, arg)| Aggregate {
        func,
        arg: Some(arg),
        alias: alias.clone(),
        span: Span::default(),
    })
}

fn predicate(operand: BoxedStrategy<Operand>) -> impl Strategy<Value = Condition> {
    let s = Span::default();
    prop_oneof![
        (operand.clone(), op(), value()).prop_map(move |(lhs, op, value)| Condition::Compare {
            lhs,
            op,
            value,
            span: s
        }),
        (operand.clone(), like()).prop_map(move |(lhs, pattern)| Condition::Like {
            lhs,
            pattern,
            span: s
        }),
        (
            operand.clone(),
            prop::collection::vec(value(), 1..4),
            any::<bool>()
        )
            .prop_map(move |(lhs, vs, negated)| {
                Condition::In {
                    lhs,
                    values: InValues::List(vs),
                    negated,
                    span: s,
                }
            }),
        (operand, prop::collection::vec(value(), 1..3), any::<bool>()).prop_map(
            move |(lhs, values, excludes)| {
                Condition::Includes {
                    lhs,
                    values,
                    excludes,
                    span: s,
                }
            }
        ),
    ]
}

fn condition(operand: BoxedStrategy<Operand>) -> impl Strategy<Value = Condition> {
    predicate(operand).prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Condition::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Condition::Or),
            inner.prop_map(|c| Condition::Not(Box::new(c))),
        ]
    })
}

fn field_operand() -> BoxedStrategy<Operand> {
    path().prop_map(Operand::Field).boxed()
}

fn order_key(operand: BoxedStrategy<Operand>) -> impl Strategy<Value = OrderKey> {
    (
        operand,
        prop::sample::select(vec![SortDirection::Asc, SortDirection::Desc]),
        prop::option::of(prop::sample::select(vec![
            NullsOrder::First,
            NullsOrder::Last,
        ])),
    )
        .prop_map(|(key, direction, nulls)| OrderKey {
            key,
            direction,
            nulls,
            span: Span::default(),
        })
}

fn object(alias: bool) -> impl Strategy<Value = ObjectRef> {
    (
        ident(),
        prop::option::weighted(if alias { 0.3 } else { 0.01 }, ident()),
    )
        .prop_map(|(name, alias)| ObjectRef {
            qualifier: None,
            name,
            alias,
            span: Span::default(),
        })
}

fn base_query(select: Vec<SelectItem>, from: ObjectRef) -> Query {
    Query {
        select,
        from,
        scope: None,
        with: None,
        where_: None,
        group_by: vec![],
        grouping: Grouping::Plain,
        having: None,
        order_by: vec![],
        limit: None,
        offset: None,
        for_: None,
        span: Span::default(),
    }
}

/// `IN (SELECT one_field FROM X [WHERE …])`.
fn semi_join() -> impl Strategy<Value = Condition> {
    (
        path(),
        any::<bool>(),
        path(),
        object(false),
        prop::option::of(condition(field_operand())),
    )
        .prop_map(|(lhs, negated, field, from, where_)| {
            let mut q = base_query(vec![SelectItem::Field(field)], from);
            q.where_ = where_;
            Condition::In {
                lhs: Operand::Field(lhs),
                values: InValues::SubQuery(Box::new(q)),
                negated,
                span: Span::default(),
            }
        })
}

fn child_query() -> impl Strategy<Value = Query> {
    (
        prop::collection::vec(path().prop_map(SelectItem::Field), 1..3),
        object(true),
        prop::option::of(condition(field_operand())),
        prop::collection::vec(order_key(field_operand()), 0..2),
        prop::option::of(0u32..1000),
        prop::option::weighted(0.3, ident()),
    )
        .prop_map(|(select, from, where_, order_by, limit, qualifier)| {
            let mut from = from;
            from.qualifier = qualifier;
            let mut q = base_query(select, from);
            q.where_ = where_;
            q.order_by = order_by;
            q.limit = limit;
            q
        })
}

/// `toLabel(f)`, `FORMAT(f) a`, `FORMAT(convertCurrency(f)) a`, `convertCurrency(f)`.
fn field_call() -> impl Strategy<Value = SelectItem> {
    (
        path(),
        prop::sample::select(vec![
            FieldFn::ToLabel,
            FieldFn::Format,
            FieldFn::ConvertCurrency,
        ]),
        any::<bool>(),
        prop::option::of(ident()),
    )
        .prop_map(|(field, func, nest, alias)| {
            let mut arg = Operand::Field(field);
            if nest && func == FieldFn::Format {
                arg = Operand::Call(FieldCall {
                    func: FieldFn::ConvertCurrency,
                    arg: Box::new(arg),
                    span: Span::default(),
                });
            }
            SelectItem::Call {
                call: FieldCall {
                    func,
                    arg: Box::new(arg),
                    span: Span::default(),
                },
                alias: if func == FieldFn::ToLabel {
                    None
                } else {
                    alias
                },
            }
        })
}

fn type_of() -> impl Strategy<Value = SelectItem> {
    (
        ident(),
        prop::collection::vec((ident(), prop::collection::vec(path(), 1..3)), 1..3),
        prop::collection::vec(path(), 0..2),
    )
        .prop_map(|(field, whens, else_)| {
            SelectItem::TypeOf(TypeOf {
                field,
                whens: whens
                    .into_iter()
                    .map(|(object, fields)| TypeOfWhen { object, fields })
                    .collect(),
                else_,
                span: Span::default(),
            })
        })
}

fn with_clause() -> impl Strategy<Value = WithClause> {
    prop_oneof![
        Just(WithClause::SecurityEnforced(Span::default())),
        Just(WithClause::UserMode(Span::default())),
        Just(WithClause::SystemMode(Span::default())),
        (ident(), prop::collection::vec(ident(), 1..3)).prop_map(|(group, categories)| {
            WithClause::DataCategory(
                vec![DataCategoryFilter {
                    group,
                    selector: "ABOVE_OR_BELOW".into(),
                    categories,
                }],
                Span::default(),
            )
        }),
    ]
}

fn plain_query() -> impl Strategy<Value = Query> {
    let item = prop_oneof![
        8 => path().prop_map(SelectItem::Field),
        2 => child_query().prop_map(|q| SelectItem::SubQuery(Box::new(q))),
        2 => field_call(),
        1 => type_of(),
        1 => Just(SelectItem::Fields { kind: FieldsKind::Standard, span: Span::default() }),
    ];
    (
        prop::collection::vec(item, 1..4),
        object(true),
        prop::option::of(condition(field_operand())),
        prop::collection::vec(semi_join(), 0..=MAX_SEMI_JOINS),
        prop::collection::vec(order_key(field_operand()), 0..3),
        prop::option::of(0u32..=MAX_LIMIT),
        prop::option::of(0u32..=MAX_OFFSET),
        (
            prop::option::of(ident()),
            prop::option::of(with_clause()),
            prop::option::of(prop::sample::select(vec![
                ForClause::View(Span::default()),
                ForClause::Reference(Span::default()),
                ForClause::Update(Span::default()),
                ForClause::UpdateTracking(Span::default()),
                ForClause::UpdateViewstat(Span::default()),
            ])),
        ),
    )
        .prop_map(
            |(select, from, where_, semis, order_by, limit, offset, (scope, with, for_))| {
                let mut q = base_query(select, from);
                q.scope = scope;
                q.with = with;
                q.for_ = for_;
                q.where_ = match (where_, semis.is_empty()) {
                    (w, true) => w,
                    (None, false) if semis.len() == 1 => semis.into_iter().next(),
                    (None, false) => Some(Condition::And(semis)),
                    (Some(w), false) => {
                        Some(Condition::And(std::iter::once(w).chain(semis).collect()))
                    }
                };
                q.order_by = order_by;
                q.limit = limit;
                q.offset = offset;
                q
            },
        )
}

fn date_fn() -> impl Strategy<Value = FieldFn> {
    prop::sample::select(vec![
        FieldFn::CalendarMonth,
        FieldFn::CalendarQuarter,
        FieldFn::CalendarYear,
        FieldFn::DayInMonth,
        FieldFn::DayInWeek,
        FieldFn::DayInYear,
        FieldFn::DayOnly,
        FieldFn::FiscalMonth,
        FieldFn::FiscalQuarter,
        FieldFn::FiscalYear,
        FieldFn::HourInDay,
        FieldFn::WeekInMonth,
        FieldFn::WeekInYear,
    ])
}

/// A GROUP BY key: a field, or a date function (maybe over convertTimezone).
fn group_key() -> impl Strategy<Value = Operand> {
    prop_oneof![
        3 => path().prop_map(Operand::Field),
        1 => (date_fn(), path(), any::<bool>()).prop_map(|(func, p, tz)| {
            let mut arg = Operand::Field(p);
            if tz {
                arg = Operand::Call(FieldCall {
                    func: FieldFn::ConvertTimezone,
                    arg: Box::new(arg),
                    span: Span::default(),
                });
            }
            Operand::Call(FieldCall { func, arg: Box::new(arg), span: Span::default() })
        }),
    ]
}

fn grouped_query() -> impl Strategy<Value = Query> {
    (
        prop::collection::vec(group_key(), 1..3),
        prop::collection::vec((aggregate(None), prop::option::of(ident())), 1..3),
        prop::sample::select(vec![Grouping::Plain, Grouping::Rollup, Grouping::Cube]),
    )
        .prop_flat_map(|(groups, aggs, grouping)| {
            let mut select: Vec<SelectItem> = groups
                .iter()
                .cloned()
                .map(|g| match g {
                    Operand::Call(call) => SelectItem::Call { call, alias: None },
                    Operand::Field(f) => SelectItem::Field(f),
                    Operand::Aggregate(a) => SelectItem::Aggregate(a),
                })
                .collect();
            if grouping != Grouping::Plain {
                if let Some(Operand::Field(f)) = groups.first() {
                    select.push(SelectItem::Call {
                        call: FieldCall {
                            func: FieldFn::Grouping,
                            arg: Box::new(Operand::Field(f.clone())),
                            span: Span::default(),
                        },
                        alias: None,
                    });
                }
            }
            let mut seen: Vec<String> = Vec::new();
            for (mut agg, alias) in aggs {
                if let Some(a) = alias {
                    if !seen.iter().any(|s| s.eq_ignore_ascii_case(&a.name)) {
                        seen.push(a.name.clone());
                        agg.alias = Some(a);
                    }
                }
                select.push(SelectItem::Aggregate(agg));
            }
            let operand = prop_oneof![
                prop::sample::select(groups.clone()),
                aggregate(None).prop_map(Operand::Aggregate),
            ]
            .boxed();
            (
                Just(select),
                Just(groups),
                Just(grouping),
                object(true),
                prop::option::of(condition(field_operand())),
                prop::option::of(condition(operand.clone())),
                prop::collection::vec(order_key(operand), 0..3),
            )
        })
        .prop_map(
            |(select, group_by, grouping, from, where_, having, order_by)| {
                let mut q = base_query(select, from);
                q.where_ = where_;
                q.group_by = group_by;
                q.grouping = grouping;
                q.having = having;
                q.order_by = order_by;
                q
            },
        )
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![3 => plain_query(), 1 => grouped_query()]
}

/// Token soup: mostly SOQL words and punctuation, so the parser gets deep.
fn soqlish() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "INCLUDES",
        "(",
        ")",
        ",",
        ".",
        "=",
        "!=",
        "<",
        ">=",
        "'x'",
        "'\\''",
        "1",
        "-2.5",
        "2024-02-29",
        "2024-01-01T00:00:00Z",
        "TODAY",
        "LAST_N_DAYS",
        ":",
        "5",
        "COUNT",
        "SUM",
        "GROUP",
        "BY",
        "HAVING",
        "ORDER",
        "DESC",
        "NULLS",
        "LAST",
        "LIMIT",
        "OFFSET",
        "Name",
        "a",
        "Account",
        "NULL",
        "TRUE",
        "{",
        "}",
        "FIND",
        "RETURNING",
        "FIELDS",
        "ALL",
        "\n",
        "'",
        "\\",
        ";",
        "*",
        "--",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|ts| ts.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pretty_printed_queries_parse_back_to_the_same_ast(q in query()) {
        let text = q.to_string();
        let parsed = parse_query(&text).map_err(|e| TestCaseError::fail(format!("{}\n{text}", e.render(&text))))?;
        prop_assert_eq!(parsed.without_spans(), q.without_spans(), "text: {}", text);
        // Printing is a fixed point.
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = parse_query(&s).map_err(|e| e.render(&s));
        let _ = parse_search(&s).map_err(|e| e.render(&s));
    }

    #[test]
    fn token_soup_never_panics_and_accepted_input_round_trips(s in soqlish()) {
        if let Ok(q) = parse_query(&s) {
            let again = parse_query(&q.to_string()).expect("pretty form parses");
            prop_assert_eq!(again.without_spans(), q.without_spans());
        } else if let Err(e) = parse_query(&s) {
            prop_assert!(e.position <= s.len());
            let _ = e.render(&s);
        }
        let _ = parse_search(&s);
    }

    #[test]
    fn search_queries_round_trip(term in "[A-Za-z0-9*? ]{0,10}[A-Za-z]", objs in prop::collection::vec((ident(), prop::collection::vec(path(), 0..3), prop::option::of(condition(field_operand())), prop::option::of(0u32..100)), 0..3), limit in prop::option::of(0u32..100)) {
        let returning: Vec<_> = objs.into_iter().map(|(object, fields, where_, lim)| {
            let has_fields = !fields.is_empty();
            ReturningObject {
                object,
                fields,
                where_: where_.filter(|_| has_fields),
                order_by: vec![],
                limit: lim.filter(|_| has_fields),
                span: Span::default(),
            }
        }).collect();
        let q = SearchQuery { term: SearchTerm { raw: term, span: Span::default() }, scope: SearchScope::NameFields, returning, limit, span: Span::default() };
        let text = q.to_string();
        let parsed = parse_search(&text).map_err(|e| TestCaseError::fail(format!("{}\n{text}", e.render(&text))))?;
        prop_assert_eq!(parsed.without_spans(), q.without_spans());
    }
}
