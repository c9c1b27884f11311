//! What the planner sees: literal decoding, LIKE parts, spans, output names,
//! limits, and the rendered error text.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use mosaic_soql::*;
use rust_decimal::Decimal;

fn where_of(src: &str) -> Condition {
    parse_query(src).expect("parses").where_.expect("has WHERE")
}

fn value_of(literal_text: &str) -> Literal {
    match where_of(&format!("SELECT Id FROM X WHERE F = {literal_text}")) {
        Condition::Compare { value, .. } => value.literal,
        other => panic!("not a comparison: {other:?}"),
    }
}

#[test]
fn string_escapes_decode_and_backslash_wildcards_stay_literal_outside_like() {
    assert_eq!(value_of(r"'it\'s'"), Literal::String("it's".into()));
    assert_eq!(value_of(r#"'\"q\"'"#), Literal::String("\"q\"".into()));
    assert_eq!(value_of(r"'a\\b'"), Literal::String("a\\b".into()));
    assert_eq!(
        value_of(r"'\n\r\t\b\f'"),
        Literal::String("\n\r\t\u{8}\u{c}".into())
    );
    assert_eq!(value_of(r"'a\_b\%'"), Literal::String("a\\_b\\%".into()));
    assert_eq!(
        value_of(r"'\' OR 1=1 --'"),
        Literal::String("' OR 1=1 --".into())
    );
}

#[test]
fn like_patterns_separate_wildcards_from_escaped_text() {
    let Condition::Like { pattern, .. } =
        where_of(r"SELECT Id FROM X WHERE Name LIKE 'a\_b\%c%_\\'")
    else {
        panic!("not LIKE");
    };
    assert_eq!(
        pattern.parts,
        vec![
            LikePart::Text("a_b%c".into()),
            LikePart::AnyString,
            LikePart::AnyChar,
            LikePart::Text("\\".into())
        ]
    );
}

#[test]
fn numbers_are_exact_decimals_and_datetimes_are_utc() {
    assert_eq!(
        value_of("0.1"),
        Literal::Number(Decimal::from_str("0.1").expect("decimal"))
    );
    assert_eq!(value_of("-12.50"), Literal::Number(Decimal::new(-1250, 2)));
    let want: DateTime<Utc> = DateTime::parse_from_rfc3339("2024-01-31T09:00:00Z")
        .expect("instant")
        .with_timezone(&Utc);
    assert_eq!(
        value_of("2024-01-31T10:00:00+01:00"),
        Literal::DateTime(want)
    );
    assert_eq!(
        value_of("LAST_N_DAYS:30"),
        Literal::DateLiteral(DateLiteral::LastNDays(30))
    );
    assert_eq!(
        value_of("n_days_ago:2"),
        Literal::DateLiteral(DateLiteral::NDaysAgo(2))
    );
}

#[test]
fn parenthesised_groups_stay_separate_nodes() {
    let c = where_of("SELECT Id FROM X WHERE A = 1 AND (B = 2 AND C = 3)");
    let Condition::And(items) = c else {
        panic!("not AND")
    };
    assert_eq!(items.len(), 2);
    assert!(matches!(&items[1], Condition::And(inner) if inner.len() == 2));
}

#[test]
fn semi_joins_carry_their_subquery() {
    let c = where_of("SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact)");
    let Condition::In {
        values: InValues::SubQuery(q),
        negated: true,
        ..
    } = c
    else {
        panic!("not an anti-join")
    };
    assert!(q.from.name.is("contact"));
}

#[test]
fn spans_point_at_fields_objects_and_values() {
    let src = "SELECT Account.Name FROM Contact c WHERE Amount >= 10.5";
    let q = parse_query(src).expect("parses");
    let SelectItem::Field(f) = &q.select[0] else {
        panic!("not a field")
    };
    assert_eq!(&src[f.span.start..f.span.end], "Account.Name");
    assert_eq!(
        &src[q.from.name.span.start..q.from.name.span.end],
        "Contact"
    );
    assert_eq!(&src[q.from.span.start..q.from.span.end], "Contact c");
    let Some(Condition::Compare {
        lhs, value, span, ..
    }) = &q.where_
    else {
        panic!("not a comparison")
    };
    assert_eq!(&src[lhs.span().start..lhs.span().end], "Amount");
    assert_eq!(&src[value.span.start..value.span.end], "10.5");
    assert_eq!(&src[span.start..span.end], "Amount >= 10.5");
    assert_eq!((q.span.start, q.span.end), (0, src.len()));
}

#[test]
fn output_names_number_only_unaliased_aggregates() {
    let q = parse_query(
        "SELECT Industry, SUM(Amount), COUNT(Id) n, MAX(CloseDate), Owner.Name FROM Opportunity GROUP BY Industry, Owner.Name",
    )
    .expect("parses");
    assert_eq!(
        q.output_names(),
        ["Industry", "expr0", "n", "expr1", "Owner.Name"]
    );
    assert!(q.is_aggregate());
    assert!(!q.is_count_only());
    let q = parse_query("SELECT Id, (SELECT Id FROM Contacts) FROM Account").expect("parses");
    assert_eq!(q.output_names(), ["Id", "Contacts"]);
    assert!(parse_query("select count() from Account")
        .expect("parses")
        .is_count_only());
}

#[test]
fn default_null_ordering_follows_direction() {
    let q = parse_query("SELECT Id FROM X ORDER BY A, B DESC, C DESC NULLS FIRST").expect("parses");
    let nulls: Vec<_> = q.order_by.iter().map(OrderKey::effective_nulls).collect();
    assert_eq!(
        nulls,
        [NullsOrder::First, NullsOrder::Last, NullsOrder::First]
    );
}

#[test]
fn errors_render_with_a_caret_under_the_culprit() {
    let src = "SELECT Name FORM Account";
    let e = parse_query(src).expect_err("malformed");
    assert_eq!((e.position, e.line, e.column), (12, 1, 13));
    assert_eq!(
        e.render(src),
        "unexpected token: 'FORM' at line 1, column 13\nSELECT Name FORM Account\n            ^"
    );
    let src = "SELECT Name\nFROM Account\nWHERE Name = 'ä' AND >";
    let e = parse_query(src).expect_err("malformed");
    assert_eq!(e.render(src), "unexpected token: '>' at line 3, column 22\nWHERE Name = 'ä' AND >\n                     ^");
}

#[test]
fn long_lines_are_cut_around_the_caret() {
    let src = format!("SELECT {} FORM Account", "A".repeat(500));
    let e = parse_query(&src).expect_err("malformed");
    let rendered = e.render(&src);
    let lines: Vec<&str> = rendered.lines().collect();
    assert_eq!(lines[0], "unexpected token: 'FORM' at line 1, column 509");
    assert!(
        lines[1].starts_with("...") && lines[1].len() < 140,
        "{}",
        lines[1]
    );
    assert_eq!(lines[2].find('^'), lines[1].find("FORM"));
}

#[test]
fn query_length_is_limited_in_characters() {
    let head = "SELECT Id FROM X WHERE N = '";
    let fill = MAX_QUERY_LEN - head.len() - 1;
    let ok = format!("{head}{}'", "é".repeat(fill));
    assert_eq!(ok.chars().count(), MAX_QUERY_LEN);
    assert!(parse_query(&ok).is_ok());
    let too_long = format!("{head}{}'", "é".repeat(fill + 1));
    let e = parse_query(&too_long).expect_err("too long");
    assert_eq!(
        e.message,
        format!("query is longer than {MAX_QUERY_LEN} characters")
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let ok = format!(
        "SELECT Id FROM X WHERE {}A = 1{}",
        "(".repeat(MAX_CONDITION_DEPTH - 1),
        ")".repeat(MAX_CONDITION_DEPTH - 1)
    );
    assert!(parse_query(&ok).is_ok());
    let deep = format!(
        "SELECT Id FROM X WHERE {}A = 1{}",
        "(".repeat(MAX_CONDITION_DEPTH),
        ")".repeat(MAX_CONDITION_DEPTH)
    );
    let e = parse_query(&deep).expect_err("too deep");
    assert!(e.message.contains("nested"), "{}", e.message);
    let nots = format!("SELECT Id FROM X WHERE {}A = 1", "NOT ".repeat(20_000));
    assert!(parse_query(&nots).is_err());
    let parens = format!("SELECT Id FROM X WHERE {}", "(".repeat(90_000));
    assert!(parse_query(&parens).is_err());
}

#[test]
fn search_terms_keep_their_raw_text() {
    let q = parse_search(
        r#"FIND {"Acme Corp" OR a\}b*} IN NAME FIELDS RETURNING Account(Name LIMIT 3)"#,
    )
    .expect("parses");
    assert_eq!(q.term.raw, r#""Acme Corp" OR a\}b*"#);
    assert_eq!(q.scope, SearchScope::NameFields);
    assert_eq!(q.returning[0].limit, Some(3));
}
