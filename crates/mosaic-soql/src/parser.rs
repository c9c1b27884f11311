//! Recursive-descent parser for the SOQL subset. Grammar and limits are
//! documented in `docs/soql.md`; every recursion is depth-bounded.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::ast::*;
use crate::date_literal::DateLiteral;
use crate::error::ParseError;
use crate::lexer::{check_length, tokenize, Token, TokenKind};
use crate::limits::*;

/// Words that cannot be used as field, object or alias names.
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

pub(crate) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

/// Parses one SOQL `SELECT` statement.
pub fn parse_query(src: &str) -> Result<Query, ParseError> {
    check_length(src)?;
    let tokens = tokenize(src, 0)?;
    let mut p = Parser::new(src, tokens);
    let q = p.query(QueryKind::Top)?;
    p.expect_eof()?;
    Ok(q)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryKind {
    Top,
    /// Parent-to-child subquery in a SELECT list.
    Child,
    /// `IN (SELECT …)` in a WHERE clause.
    SemiJoin,
}

/// Where a condition appears: decides whether aggregates may be operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clause {
    Select,
    Where,
    GroupBy,
    Having,
    OrderBy,
}

pub(crate) struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// Current NOT / parenthesis nesting in the condition being parsed.
    depth: usize,
    /// Semi-joins seen in the current WHERE clause.
    semi_joins: usize,
    /// True while inside a semi-join subquery.
    in_semi_join: bool,
    /// FROM alias of the query whose clauses are being parsed.
    alias: Option<String>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, tokens: Vec<Token>) -> Parser<'a> {
        Parser {
            src,
            tokens,
            pos: 0,
            depth: 0,
            semi_joins: 0,
            in_semi_join: false,
            alias: None,
        }
    }

    // ---- token helpers -------------------------------------------------

    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[(self.pos + n).min(last)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len().saturating_sub(1) {
            self.pos += 1;
        }
        t
    }

    pub(crate) fn text(&self, span: Span) -> &'a str {
        self.src.get(span.start..span.end).unwrap_or("")
    }

    pub(crate) fn err(&self, at: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, at, msg)
    }

    pub(crate) fn unexpected(&self) -> ParseError {
        let t = self.peek();
        if t.kind == TokenKind::Eof {
            self.err(t.span.start, "unexpected token: <EOF>")
        } else {
            let shown: String = self.text(t.span).chars().take(40).collect();
            self.err(t.span.start, format!("unexpected token: '{shown}'"))
        }
    }

    pub(crate) fn at_keyword(&self, kw: &str) -> bool {
        self.keyword_at(0, kw)
    }

    fn keyword_at(&self, n: usize, kw: &str) -> bool {
        let t = self.peek_at(n);
        t.kind == TokenKind::Ident && self.text(t.span).eq_ignore_ascii_case(kw)
    }

    pub(crate) fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.at_keyword(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(crate) fn expect_keyword(&mut self, kw: &str) -> Result<Span, ParseError> {
        if self.at_keyword(kw) {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected())
        }
    }

    pub(crate) fn at(&self, kind: &TokenKind) -> bool {
        &self.peek().kind == kind
    }

    pub(crate) fn eat(&mut self, kind: &TokenKind) -> bool {
        if self.at(kind) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, kind: &TokenKind) -> Result<Span, ParseError> {
        if self.at(kind) {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected())
        }
    }

    pub(crate) fn expect_eof(&self) -> Result<(), ParseError> {
        if self.at(&TokenKind::Eof) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(0, |t| t.span.end)
    }

    // ---- names -----------------------------------------------------------

    pub(crate) fn ident(&mut self) -> Result<Ident, ParseError> {
        let t = self.peek();
        if t.kind != TokenKind::Ident || is_reserved(self.text(t.span)) {
            return Err(self.unexpected());
        }
        let t = self.bump();
        Ok(Ident {
            name: self.text(t.span).to_string(),
            span: t.span,
        })
    }

    /// True when the next token can start an alias (a non-reserved name).
    fn at_alias(&self) -> bool {
        let t = self.peek();
        t.kind == TokenKind::Ident && !is_reserved(self.text(t.span))
    }

    pub(crate) fn field_path(&mut self) -> Result<FieldPath, ParseError> {
        let first = self.ident()?;
        let mut parts = vec![first];
        while self.eat(&TokenKind::Dot) {
            parts.push(self.ident()?);
            // Bound the vector even before the hop check below.
            if parts.len() > MAX_PARENT_DEPTH + 2 {
                break;
            }
        }
        let span = match (parts.first(), parts.last()) {
            (Some(a), Some(b)) => a.span.to(b.span),
            _ => Span::default(),
        };
        let alias_prefix = match (&self.alias, parts.first()) {
            (Some(alias), Some(first)) if parts.len() > 1 && first.is(alias) => 1,
            _ => 0,
        };
        let hops = parts.len().saturating_sub(1 + alias_prefix);
        if hops > MAX_PARENT_DEPTH {
            return Err(self.err(
                span.start,
                format!("field path has more than {MAX_PARENT_DEPTH} relationship levels"),
            ));
        }
        Ok(FieldPath { parts, span })
    }

    // ---- SELECT ----------------------------------------------------------

    pub(crate) fn query(&mut self, kind: QueryKind) -> Result<Query, ParseError> {
        let start = self.expect_keyword("SELECT")?.start;
        let outer_alias = self.alias.take();
        // The FROM alias is only known after the SELECT list; peek ahead for it
        // so `a.Name` in the SELECT list counts hops correctly.
        self.alias = self.lookahead_from_alias();
        let result = self.query_body(kind, start);
        self.alias = outer_alias;
        result
    }

    /// Scans forward (without consuming) to this query's `FROM x alias`.
    fn lookahead_from_alias(&self) -> Option<String> {
        let mut depth = 0usize;
        let mut i = self.pos;
        while let Some(t) = self.tokens.get(i) {
            match t.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => {
                    if depth == 0 {
                        return None;
                    }
                    depth -= 1;
                }
                TokenKind::Eof => return None,
                TokenKind::Ident
                    if depth == 0 && self.text(t.span).eq_ignore_ascii_case("FROM") =>
                {
                    let mut at = i + 2;
                    if self
                        .tokens
                        .get(at)
                        .is_some_and(|t| t.kind == TokenKind::Dot)
                    {
                        at += 2;
                    }
                    let alias = self.tokens.get(at)?;
                    let name = self.text(alias.span);
                    return (alias.kind == TokenKind::Ident && !is_reserved(name))
                        .then(|| name.to_string());
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    fn query_body(&mut self, kind: QueryKind, start: usize) -> Result<Query, ParseError> {
        let mut select = Vec::new();
        let mut subqueries = 0usize;
        loop {
            let item = self.select_item(kind)?;
            if let SelectItem::SubQuery(q) = &item {
                subqueries += 1;
                if subqueries > MAX_SUBQUERIES {
                    return Err(self.err(
                        q.span.start,
                        format!("more than {MAX_SUBQUERIES} child subqueries"),
                    ));
                }
            }
            select.push(item);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect_keyword("FROM")?;
        let first = self.ident()?;
        let (qualifier, name) = if self.at(&TokenKind::Dot) {
            let dot = self.bump().span.start;
            if kind != QueryKind::Child {
                return Err(self.err(
                    dot,
                    "a qualified relationship name (Object.Relationship) is only allowed in a child subquery",
                ));
            }
            (Some(first), self.ident()?)
        } else {
            (None, first)
        };
        let alias = if self.at_alias() {
            Some(self.ident()?)
        } else {
            None
        };
        let from_start = qualifier.as_ref().map_or(name.span, |q| q.span);
        let from_span = alias
            .as_ref()
            .map_or(from_start.to(name.span), |a| from_start.to(a.span));
        let from = ObjectRef {
            qualifier,
            name,
            alias,
            span: from_span,
        };

        let scope = if self.at_keyword("USING") {
            let at = self.bump().span.start;
            if kind != QueryKind::Top {
                return Err(self.err(at, "USING SCOPE is only allowed in the outermost query"));
            }
            self.expect_keyword("SCOPE")?;
            Some(self.ident()?)
        } else {
            None
        };
        let where_ = if self.eat_keyword("WHERE") {
            self.semi_joins = 0;
            Some(self.condition(Clause::Where)?)
        } else {
            None
        };
        let with = if self.at_keyword("WITH") {
            Some(self.with_clause(kind)?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        let mut grouping = Grouping::Plain;
        if self.at_keyword("GROUP") {
            self.bump();
            self.expect_keyword("BY")?;
            let wrapped = if self.at_keyword("ROLLUP") && self.peek_at(1).kind == TokenKind::LParen
            {
                grouping = Grouping::Rollup;
                true
            } else if self.at_keyword("CUBE") && self.peek_at(1).kind == TokenKind::LParen {
                grouping = Grouping::Cube;
                true
            } else {
                false
            };
            if wrapped {
                self.bump();
                self.bump();
            }
            loop {
                group_by.push(self.group_key()?);
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
            if wrapped {
                self.expect(&TokenKind::RParen)?;
                if group_by.len() > MAX_ROLLUP_FIELDS {
                    let at = group_by[MAX_ROLLUP_FIELDS].span().start;
                    return Err(self.err(
                        at,
                        format!("GROUP BY ROLLUP and CUBE take at most {MAX_ROLLUP_FIELDS} fields"),
                    ));
                }
            }
        }
        let having = if self.at_keyword("HAVING") {
            let at = self.bump().span.start;
            if group_by.is_empty() {
                return Err(self.err(at, "HAVING requires GROUP BY"));
            }
            Some(self.condition(Clause::Having)?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.at_keyword("ORDER") {
            let at = self.bump().span.start;
            if kind == QueryKind::SemiJoin {
                return Err(self.err(at, "ORDER BY is not allowed in a semi-join subquery"));
            }
            self.expect_keyword("BY")?;
            loop {
                order_by.push(self.order_key()?);
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
        }
        let limit = if self.at_keyword("LIMIT") {
            let at = self.bump().span.start;
            if kind == QueryKind::SemiJoin {
                return Err(self.err(at, "LIMIT is not allowed in a semi-join subquery"));
            }
            Some(self.count_value(MAX_LIMIT, "LIMIT")?)
        } else {
            None
        };
        let offset = if self.at_keyword("OFFSET") {
            let at = self.bump().span.start;
            if kind == QueryKind::SemiJoin {
                return Err(self.err(at, "OFFSET is not allowed in a semi-join subquery"));
            }
            Some(self.count_value(MAX_OFFSET, "OFFSET")?)
        } else {
            None
        };
        let for_ = self.for_clause(kind)?;
        let query = Query {
            select,
            from,
            scope,
            with,
            where_,
            group_by,
            grouping,
            having,
            order_by,
            limit,
            offset,
            for_,
            span: Span::new(start, self.prev_end()),
        };
        self.check_select_list(&query, kind)?;
        Ok(query)
    }

    /// `WITH SECURITY_ENFORCED | USER_MODE | SYSTEM_MODE | DATA CATEGORY …`.
    fn with_clause(&mut self, kind: QueryKind) -> Result<WithClause, ParseError> {
        let at = self.bump().span;
        let t = self.peek().clone();
        let word = self.text(t.span).to_ascii_uppercase();
        if t.kind != TokenKind::Ident {
            return Err(self.unexpected());
        }
        let mode_only_top = |p: &Self, what: &str| {
            if kind == QueryKind::Top {
                Ok(())
            } else {
                Err(p.err(
                    t.span.start,
                    format!("WITH {what} is only allowed in the outermost query"),
                ))
            }
        };
        match word.as_str() {
            "SECURITY_ENFORCED" => {
                mode_only_top(self, "SECURITY_ENFORCED")?;
                self.bump();
                Ok(WithClause::SecurityEnforced(at.to(t.span)))
            }
            "USER_MODE" => {
                mode_only_top(self, "USER_MODE")?;
                self.bump();
                Ok(WithClause::UserMode(at.to(t.span)))
            }
            "SYSTEM_MODE" => {
                mode_only_top(self, "SYSTEM_MODE")?;
                self.bump();
                Ok(WithClause::SystemMode(at.to(t.span)))
            }
            "DATA" => {
                self.bump();
                self.expect_keyword("CATEGORY")?;
                let mut filters = Vec::new();
                loop {
                    let group = self.ident()?;
                    let sel = self.peek().clone();
                    let selector = self.text(sel.span).to_ascii_uppercase();
                    if sel.kind != TokenKind::Ident
                        || !["AT", "ABOVE", "BELOW", "ABOVE_OR_BELOW"].contains(&selector.as_str())
                    {
                        return Err(self.unexpected());
                    }
                    self.bump();
                    let mut categories = Vec::new();
                    if self.eat(&TokenKind::LParen) {
                        loop {
                            categories.push(self.ident()?);
                            if categories.len() > MAX_IN_VALUES {
                                return Err(self.err(sel.span.start, "too many data categories"));
                            }
                            if !self.eat(&TokenKind::Comma) {
                                break;
                            }
                        }
                        self.expect(&TokenKind::RParen)?;
                    } else {
                        categories.push(self.ident()?);
                    }
                    filters.push(DataCategoryFilter {
                        group,
                        selector,
                        categories,
                    });
                    if filters.len() > MAX_IN_VALUES {
                        return Err(self.err(at.start, "too many data category filters"));
                    }
                    if !self.eat_keyword("AND") {
                        break;
                    }
                }
                Ok(WithClause::DataCategory(
                    filters,
                    Span::new(at.start, self.prev_end()),
                ))
            }
            _ => Err(self.err(
                t.span.start,
                format!(
                    "unsupported WITH clause: '{}' (expected SECURITY_ENFORCED, USER_MODE, SYSTEM_MODE or DATA CATEGORY)",
                    self.text(t.span).chars().take(40).collect::<String>()
                ),
            )),
        }
    }

    /// `FOR VIEW`, `FOR REFERENCE`, `FOR UPDATE`, `UPDATE TRACKING`, `UPDATE VIEWSTAT`.
    fn for_clause(&mut self, kind: QueryKind) -> Result<Option<ForClause>, ParseError> {
        let at = self.peek().span;
        let clause = if self.at_keyword("FOR") {
            self.bump();
            let t = self.peek().span;
            if self.eat_keyword("VIEW") {
                ForClause::View(at.to(t))
            } else if self.eat_keyword("REFERENCE") {
                ForClause::Reference(at.to(t))
            } else if self.eat_keyword("UPDATE") {
                ForClause::Update(at.to(t))
            } else {
                return Err(self.unexpected());
            }
        } else if self.at_keyword("UPDATE") {
            self.bump();
            let t = self.peek().span;
            if self.eat_keyword("TRACKING") {
                ForClause::UpdateTracking(at.to(t))
            } else if self.eat_keyword("VIEWSTAT") {
                ForClause::UpdateViewstat(at.to(t))
            } else {
                return Err(self.unexpected());
            }
        } else {
            return Ok(None);
        };
        if kind != QueryKind::Top {
            return Err(self.err(
                at.start,
                format!(
                    "{} is only allowed in the outermost query",
                    clause.keywords()
                ),
            ));
        }
        Ok(Some(clause))
    }

    /// A GROUP BY key: a field or a date function over one.
    fn group_key(&mut self) -> Result<Operand, ParseError> {
        match self.maybe_call(Clause::GroupBy, 0)? {
            Some(Operand::Call(c)) if c.func.is_date_fn() => Ok(Operand::Call(c)),
            Some(other) => Err(self.err(
                other.span().start,
                "GROUP BY accepts fields and date functions only",
            )),
            None => Ok(Operand::Field(self.field_path()?)),
        }
    }

    /// A non-negative integer no larger than `max`.
    pub(crate) fn count_value(&mut self, max: u32, what: &str) -> Result<u32, ParseError> {
        let t = self.peek().clone();
        let text = self.text(t.span);
        if t.kind != TokenKind::Number || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.unexpected());
        }
        self.bump();
        match text.parse::<u64>() {
            Ok(n) if n <= u64::from(max) => Ok(n as u32),
            _ => Err(self.err(t.span.start, format!("{what} must be at most {max}"))),
        }
    }

    fn select_item(&mut self, kind: QueryKind) -> Result<SelectItem, ParseError> {
        if self.at(&TokenKind::LParen) && self.keyword_at(1, "SELECT") {
            let open = self.bump().span.start;
            if kind != QueryKind::Top {
                return Err(self.err(
                    open,
                    "child subqueries can only appear in the outermost SELECT",
                ));
            }
            let outer_semis = self.semi_joins;
            let mut sub = self.query(QueryKind::Child)?;
            self.semi_joins = outer_semis;
            let close = self.expect(&TokenKind::RParen)?;
            sub.span = Span::new(open, close.end);
            return Ok(SelectItem::SubQuery(Box::new(sub)));
        }
        if self.at_keyword("TYPEOF")
            && self.peek_at(1).kind == TokenKind::Ident
            && !is_reserved(self.text(self.peek_at(1).span))
        {
            return Ok(SelectItem::TypeOf(self.type_of()?));
        }
        if self.at_keyword("FIELDS") && self.peek_at(1).kind == TokenKind::LParen {
            let start = self.bump().span.start;
            self.bump();
            let t = self.peek().clone();
            let kind = match self.text(t.span).to_ascii_uppercase().as_str() {
                "ALL" if t.kind == TokenKind::Ident => FieldsKind::All,
                "STANDARD" if t.kind == TokenKind::Ident => FieldsKind::Standard,
                "CUSTOM" if t.kind == TokenKind::Ident => FieldsKind::Custom,
                _ => return Err(self.err(t.span.start, "FIELDS() takes ALL, STANDARD or CUSTOM")),
            };
            self.bump();
            let close = self.expect(&TokenKind::RParen)?;
            return Ok(SelectItem::Fields {
                kind,
                span: Span::new(start, close.end),
            });
        }
        if let Some(op) = self.maybe_call(Clause::Select, 0)? {
            let alias = if self.at_alias() {
                Some(self.ident()?)
            } else {
                None
            };
            return Ok(match op {
                Operand::Aggregate(mut agg) => {
                    if let Some(alias) = alias {
                        agg.span = agg.span.to(alias.span);
                        agg.alias = Some(alias);
                    }
                    SelectItem::Aggregate(agg)
                }
                Operand::Call(call) => SelectItem::Call { call, alias },
                Operand::Field(f) => SelectItem::Field(f),
            });
        }
        let field = self.field_path()?;
        if self.at_alias() {
            // A misspelt keyword (`Name FORM Account`) reads as an alias:
            // only take it as one when the select list goes on after it.
            let next = self.peek_at(1);
            let list_goes_on = next.kind == TokenKind::Comma
                || (next.kind == TokenKind::Ident
                    && self.text(next.span).eq_ignore_ascii_case("FROM"));
            if !list_goes_on {
                return Err(self.unexpected());
            }
            let alias = self.ident()?;
            return Ok(SelectItem::AliasedField { field, alias });
        }
        Ok(SelectItem::Field(field))
    }

    /// `TYPEOF What WHEN Account THEN Name, Phone … [ELSE Name] END`.
    fn type_of(&mut self) -> Result<TypeOf, ParseError> {
        let start = self.bump().span.start;
        let field = self.ident()?;
        let mut whens = Vec::new();
        while self.eat_keyword("WHEN") {
            // Object names may be keywords here (`WHEN Group THEN …`).
            let t = self.peek().clone();
            if t.kind != TokenKind::Ident {
                return Err(self.unexpected());
            }
            self.bump();
            let object = Ident {
                name: self.text(t.span).to_string(),
                span: t.span,
            };
            self.expect_keyword("THEN")?;
            let fields = self.type_of_fields()?;
            whens.push(TypeOfWhen { object, fields });
            if whens.len() > MAX_SUBQUERIES {
                return Err(self.err(start, format!("more than {MAX_SUBQUERIES} WHEN branches")));
            }
        }
        if whens.is_empty() {
            return Err(self.unexpected());
        }
        let else_ = if self.eat_keyword("ELSE") {
            self.type_of_fields()?
        } else {
            Vec::new()
        };
        let end = self.expect_keyword("END")?;
        Ok(TypeOf {
            field,
            whens,
            else_,
            span: Span::new(start, end.end),
        })
    }

    fn type_of_fields(&mut self) -> Result<Vec<FieldPath>, ParseError> {
        let mut fields = Vec::new();
        loop {
            fields.push(self.field_path()?);
            if fields.len() > MAX_IN_VALUES {
                return Err(self.unexpected());
            }
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        Ok(fields)
    }

    /// `FUNC(` … `)` if the next tokens are a function call: an aggregate or
    /// a field function, checked against where it appears.
    fn maybe_call(&mut self, clause: Clause, depth: usize) -> Result<Option<Operand>, ParseError> {
        let t = self.peek().clone();
        if t.kind != TokenKind::Ident || self.peek_at(1).kind != TokenKind::LParen {
            return Ok(None);
        }
        let name = self.text(t.span);
        if let Some(func) = AggregateFn::from_keyword(name) {
            if depth > 0 && clause != Clause::Select {
                return Err(self.err(
                    t.span.start,
                    format!("{} cannot be nested here", func.keyword()),
                ));
            }
            self.bump();
            self.bump();
            let arg = if func == AggregateFn::Count && self.at(&TokenKind::RParen) {
                None
            } else {
                Some(self.field_path()?)
            };
            let close = self.expect(&TokenKind::RParen)?;
            return Ok(Some(Operand::Aggregate(Aggregate {
                func,
                arg,
                alias: None,
                span: Span::new(t.span.start, close.end),
            })));
        }
        let Some(func) = FieldFn::from_keyword(name) else {
            let upper = name.to_ascii_uppercase();
            let msg = match upper.as_str() {
                "DISTANCE" | "GEOLOCATION" => {
                    "DISTANCE() and GEOLOCATION() are not supported: Mosaic has no location fields in queries".to_string()
                }
                "FIELDS" => "FIELDS() is only allowed in the SELECT list".to_string(),
                _ => format!("unknown function: '{name}'"),
            };
            return Err(self.err(t.span.start, msg));
        };
        if depth >= MAX_CALL_DEPTH {
            return Err(self.err(t.span.start, "function calls are nested too deeply"));
        }
        let placement = match (func, clause) {
            (FieldFn::Format | FieldFn::ConvertCurrency | FieldFn::Grouping, Clause::Select) => {
                None
            }
            (FieldFn::Grouping, Clause::Having | Clause::OrderBy) => None,
            (FieldFn::Format | FieldFn::ConvertCurrency | FieldFn::Grouping, _) => {
                Some("is only allowed in the SELECT list")
            }
            (FieldFn::ToLabel, Clause::GroupBy | Clause::Having) => {
                Some("is not allowed in GROUP BY or HAVING")
            }
            (FieldFn::ConvertTimezone, _) if depth == 0 => {
                Some("can only be used inside a date function")
            }
            _ => None,
        };
        if let Some(msg) = placement {
            return Err(self.err(t.span.start, format!("{}() {msg}", func.keyword())));
        }
        self.bump();
        self.bump();
        let arg_at = self.peek().span.start;
        let arg = match self.maybe_call(clause, depth + 1)? {
            Some(inner) => inner,
            None => Operand::Field(self.field_path()?),
        };
        let allowed = match (&arg, func) {
            (Operand::Field(_), _) => true,
            (Operand::Aggregate(_), FieldFn::Format) => true,
            (Operand::Call(c), FieldFn::Format) => {
                c.func == FieldFn::ConvertCurrency || c.func.is_date_fn()
            }
            (Operand::Call(c), f) if f.is_date_fn() => c.func == FieldFn::ConvertTimezone,
            _ => false,
        };
        if !allowed {
            return Err(self.err(arg_at, format!("{}() takes a field here", func.keyword())));
        }
        let close = self.expect(&TokenKind::RParen)?;
        Ok(Some(Operand::Call(FieldCall {
            func,
            arg: Box::new(arg),
            span: Span::new(t.span.start, close.end),
        })))
    }

    /// Rules about what may be selected together.
    fn check_select_list(&self, q: &Query, kind: QueryKind) -> Result<(), ParseError> {
        let count_star = q.select.iter().find_map(|s| match s {
            SelectItem::Aggregate(a) if a.func == AggregateFn::Count && a.arg.is_none() => {
                Some(a.span)
            }
            _ => None,
        });
        if let Some(span) = count_star {
            if q.select.len() > 1 || !q.group_by.is_empty() {
                return Err(self.err(
                    span.start,
                    "COUNT() must be the only element in the SELECT list",
                ));
            }
        }
        if kind == QueryKind::SemiJoin {
            match q.select.as_slice() {
                [SelectItem::Field(_)] => {}
                _ => {
                    let at = q.select.first().map_or(q.span.start, |s| s.span().start);
                    return Err(self.err(at, "a semi-join subquery must select exactly one field"));
                }
            }
        }
        for item in &q.select {
            if let SelectItem::Fields { kind: fk, span } = item {
                if *fk != FieldsKind::Standard && q.limit.is_none_or(|n| n > MAX_FIELDS_ALL_LIMIT) {
                    return Err(self.err(
                        span.start,
                        format!(
                            "The SOQL FIELDS function must have a LIMIT of at most {MAX_FIELDS_ALL_LIMIT}"
                        ),
                    ));
                }
            }
        }
        let grouped = |op: &Operand| q.group_by.iter().any(|g| g.same_expr(op));
        if q.is_aggregate() {
            for item in &q.select {
                match item {
                    SelectItem::Field(f) | SelectItem::AliasedField { field: f, .. }
                        if !grouped(&Operand::Field(f.clone())) =>
                    {
                        return Err(self.err(
                            f.span.start,
                            format!("field must be grouped or aggregated: {}", f.dotted()),
                        ));
                    }
                    SelectItem::Call { call, .. } => {
                        let ok = match call.func {
                            FieldFn::Grouping => match call.arg.as_ref() {
                                op @ Operand::Field(_) => {
                                    if q.grouping == Grouping::Plain {
                                        return Err(self.err(
                                            call.span.start,
                                            "GROUPING() requires GROUP BY ROLLUP or CUBE",
                                        ));
                                    }
                                    grouped(op)
                                }
                                _ => false,
                            },
                            _ if matches!(call.arg.as_ref(), Operand::Aggregate(_)) => true,
                            _ => {
                                grouped(&Operand::Call(call.clone()))
                                    || (!call.func.is_date_fn() && grouped(call.arg.as_ref()))
                            }
                        };
                        if !ok {
                            return Err(self.err(
                                call.span.start,
                                format!("{}() must be grouped or aggregated", call.func.keyword()),
                            ));
                        }
                    }
                    SelectItem::SubQuery(s) => {
                        return Err(self.err(
                            s.span.start,
                            "child subqueries are not allowed in aggregate queries",
                        ));
                    }
                    SelectItem::Fields { span, .. } => {
                        return Err(
                            self.err(span.start, "FIELDS() is not allowed in aggregate queries")
                        );
                    }
                    SelectItem::TypeOf(t) => {
                        return Err(
                            self.err(t.span.start, "TYPEOF is not allowed in aggregate queries")
                        );
                    }
                    _ => {}
                }
            }
        } else {
            for item in &q.select {
                match item {
                    SelectItem::AliasedField { alias, .. } => {
                        return Err(self.err(
                            alias.span.start,
                            format!(
                                "unexpected token: '{}' (field aliases are only allowed in aggregate queries)",
                                alias.name
                            ),
                        ));
                    }
                    SelectItem::Call { call, alias } => {
                        if call.func.is_date_fn() || call.func == FieldFn::Grouping {
                            return Err(self.err(
                                call.span.start,
                                format!(
                                    "{}() is only allowed in aggregate queries (GROUP BY or aggregate functions)",
                                    call.func.keyword()
                                ),
                            ));
                        }
                        if let (Some(a), FieldFn::ToLabel) = (alias, call.func) {
                            return Err(self.err(
                                a.span.start,
                                format!(
                                    "unexpected token: '{}' (toLabel() takes no alias)",
                                    a.name
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut aliases: Vec<&Ident> = Vec::new();
        for item in &q.select {
            let alias = match item {
                SelectItem::Aggregate(Aggregate { alias: Some(a), .. })
                | SelectItem::Call { alias: Some(a), .. }
                | SelectItem::AliasedField { alias: a, .. } => a,
                _ => continue,
            };
            if aliases.iter().any(|b| b.is(&alias.name)) {
                return Err(self.err(alias.span.start, format!("duplicate alias: {}", alias.name)));
            }
            aliases.push(alias);
        }
        Ok(())
    }

    pub(crate) fn order_key(&mut self) -> Result<OrderKey, ParseError> {
        let key = match self.maybe_call(Clause::OrderBy, 0)? {
            Some(op) => op,
            None => Operand::Field(self.field_path()?),
        };
        let start = key.span().start;
        let direction = if self.eat_keyword("DESC") {
            SortDirection::Desc
        } else {
            self.eat_keyword("ASC");
            SortDirection::Asc
        };
        let nulls = if self.eat_keyword("NULLS") {
            if self.eat_keyword("FIRST") {
                Some(NullsOrder::First)
            } else if self.eat_keyword("LAST") {
                Some(NullsOrder::Last)
            } else {
                return Err(self.unexpected());
            }
        } else {
            None
        };
        Ok(OrderKey {
            key,
            direction,
            nulls,
            span: Span::new(start, self.prev_end()),
        })
    }

    // ---- conditions ------------------------------------------------------

    /// `a AND b AND …` or `a OR b OR …`; mixing needs parentheses, as in SOQL.
    pub(crate) fn condition(&mut self, clause: Clause) -> Result<Condition, ParseError> {
        let first = self.unary(clause)?;
        let connective = if self.at_keyword("AND") {
            "AND"
        } else if self.at_keyword("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let other = if connective == "AND" { "OR" } else { "AND" };
        let mut items = vec![first];
        loop {
            if self.at_keyword(other) {
                let at = self.peek().span.start;
                return Err(self.err(at, "AND and OR cannot be mixed without parentheses"));
            }
            if !self.eat_keyword(connective) {
                break;
            }
            items.push(self.unary(clause)?);
        }
        Ok(if connective == "AND" {
            Condition::And(items)
        } else {
            Condition::Or(items)
        })
    }

    /// A condition in which `IN (SELECT …)` is rejected (SOSL WHERE).
    pub(crate) fn condition_without_semi_joins(
        &mut self,
        clause: Clause,
    ) -> Result<Condition, ParseError> {
        let saved = self.in_semi_join;
        self.in_semi_join = true;
        let result = self.condition(clause);
        self.in_semi_join = saved;
        result
    }

    fn unary(&mut self, clause: Clause) -> Result<Condition, ParseError> {
        if self.depth >= MAX_CONDITION_DEPTH {
            let at = self.peek().span.start;
            return Err(self.err(
                at,
                format!("conditions are nested more than {MAX_CONDITION_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        let result = self.unary_inner(clause);
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self, clause: Clause) -> Result<Condition, ParseError> {
        if self.eat_keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.unary(clause)?)));
        }
        if self.eat(&TokenKind::LParen) {
            let inner = self.condition(clause)?;
            self.expect(&TokenKind::RParen)?;
            return Ok(inner);
        }
        self.predicate(clause)
    }

    fn predicate(&mut self, clause: Clause) -> Result<Condition, ParseError> {
        let lhs = match self.maybe_call(clause, 0)? {
            Some(Operand::Aggregate(a)) if clause == Clause::Where => {
                return Err(self.err(
                    a.span.start,
                    "aggregate functions are not allowed in WHERE; use HAVING",
                ));
            }
            Some(op) => op,
            None => Operand::Field(self.field_path()?),
        };
        let start = lhs.span().start;
        let t = self.peek().clone();
        let op = match t.kind {
            TokenKind::Eq => Some(CompareOp::Eq),
            TokenKind::Ne => Some(CompareOp::Ne),
            TokenKind::Lt => Some(CompareOp::Lt),
            TokenKind::Le => Some(CompareOp::Le),
            TokenKind::Gt => Some(CompareOp::Gt),
            TokenKind::Ge => Some(CompareOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let value = self.value()?;
            return Ok(Condition::Compare {
                lhs,
                op,
                value,
                span: Span::new(start, self.prev_end()),
            });
        }
        if self.eat_keyword("LIKE") {
            let pattern = self.like_pattern()?;
            return Ok(Condition::Like {
                lhs,
                pattern,
                span: Span::new(start, self.prev_end()),
            });
        }
        if self.at_keyword("NOT") && self.keyword_at(1, "IN") {
            self.bump();
            self.bump();
            return self.in_rest(lhs, true, start, clause);
        }
        if self.eat_keyword("IN") {
            return self.in_rest(lhs, false, start, clause);
        }
        let excludes = self.at_keyword("EXCLUDES");
        if excludes || self.at_keyword("INCLUDES") {
            self.bump();
            let values = self.value_list()?;
            return Ok(Condition::Includes {
                lhs,
                values,
                excludes,
                span: Span::new(start, self.prev_end()),
            });
        }
        Err(self.unexpected())
    }

    fn in_rest(
        &mut self,
        lhs: Operand,
        negated: bool,
        start: usize,
        clause: Clause,
    ) -> Result<Condition, ParseError> {
        if self.at(&TokenKind::LParen) && self.keyword_at(1, "SELECT") {
            let open = self.bump().span.start;
            if clause != Clause::Where || self.in_semi_join {
                return Err(self.err(open, "semi-join subqueries are only allowed in a SOQL WHERE clause, and cannot be nested"));
            }
            self.semi_joins += 1;
            if self.semi_joins > MAX_SEMI_JOINS {
                return Err(self.err(
                    open,
                    format!("more than {MAX_SEMI_JOINS} semi-join subqueries in WHERE"),
                ));
            }
            let (depth, semis) = (self.depth, self.semi_joins);
            self.depth = 0;
            self.in_semi_join = true;
            let sub = self.query(QueryKind::SemiJoin);
            self.in_semi_join = false;
            self.depth = depth;
            self.semi_joins = semis;
            let mut sub = sub?;
            let close = self.expect(&TokenKind::RParen)?;
            sub.span = Span::new(open, close.end);
            let values = InValues::SubQuery(Box::new(sub));
            return Ok(Condition::In {
                lhs,
                values,
                negated,
                span: Span::new(start, self.prev_end()),
            });
        }
        let values = InValues::List(self.value_list()?);
        Ok(Condition::In {
            lhs,
            values,
            negated,
            span: Span::new(start, self.prev_end()),
        })
    }

    /// `( value, value, … )`, non-empty.
    fn value_list(&mut self) -> Result<Vec<Value>, ParseError> {
        self.expect(&TokenKind::LParen)?;
        let mut values = Vec::new();
        loop {
            if values.len() >= MAX_IN_VALUES {
                let at = self.peek().span.start;
                return Err(self.err(at, format!("more than {MAX_IN_VALUES} values in a list")));
            }
            values.push(self.value()?);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(&TokenKind::RParen)?;
        Ok(values)
    }

    // ---- values ------------------------------------------------------------

    pub(crate) fn value(&mut self) -> Result<Value, ParseError> {
        let t = self.peek().clone();
        let text = self.text(t.span);
        let literal = match &t.kind {
            TokenKind::String => {
                self.bump();
                Literal::String(decode_string(text))
            }
            TokenKind::Number => {
                self.bump();
                let digits = text.strip_prefix('+').unwrap_or(text);
                match Decimal::from_str_exact(digits).or_else(|_| Decimal::from_str(digits)) {
                    Ok(d) => Literal::Number(d),
                    Err(_) => return Err(self.err(t.span.start, "number out of range")),
                }
            }
            TokenKind::Date(d) => {
                self.bump();
                Literal::Date(*d)
            }
            TokenKind::DateTime(dt) => {
                self.bump();
                Literal::DateTime(*dt)
            }
            TokenKind::Ident if text.eq_ignore_ascii_case("NULL") => {
                self.bump();
                Literal::Null
            }
            TokenKind::Ident if text.eq_ignore_ascii_case("TRUE") => {
                self.bump();
                Literal::Bool(true)
            }
            TokenKind::Ident if text.eq_ignore_ascii_case("FALSE") => {
                self.bump();
                Literal::Bool(false)
            }
            TokenKind::Ident if currency_prefix(text).is_some() => {
                self.bump();
                let (code, digits) = currency_prefix(text).unwrap_or_default();
                let mut number = digits.to_string();
                // `USD12.50` lexes as `USD12` `.` `50`: glue adjacent pieces.
                let dot = self.peek().clone();
                let frac = self.peek_at(1).clone();
                if dot.kind == TokenKind::Dot
                    && dot.span.start == t.span.end
                    && frac.kind == TokenKind::Number
                    && frac.span.start == dot.span.end
                    && self.text(frac.span).bytes().all(|b| b.is_ascii_digit())
                {
                    number.push('.');
                    number.push_str(self.text(frac.span));
                    self.bump();
                    self.bump();
                }
                match Decimal::from_str_exact(&number) {
                    Ok(amount) => Literal::Currency {
                        code: code.to_ascii_uppercase(),
                        amount,
                    },
                    Err(_) => return Err(self.err(t.span.start, "number out of range")),
                }
            }
            TokenKind::Ident => {
                if let Some(lit) = DateLiteral::fixed(text) {
                    self.bump();
                    Literal::DateLiteral(lit)
                } else if DateLiteral::takes_n(text) {
                    self.bump();
                    self.expect(&TokenKind::Colon)?;
                    let n = self.count_value(MAX_DATE_LITERAL_N, text)?;
                    match DateLiteral::with_n(text, n) {
                        Some(lit) => Literal::DateLiteral(lit),
                        None => return Err(self.err(t.span.start, "unknown date literal")),
                    }
                } else {
                    return Err(self.unexpected());
                }
            }
            _ => return Err(self.unexpected()),
        };
        Ok(Value {
            literal,
            span: Span::new(t.span.start, self.prev_end()),
        })
    }

    fn like_pattern(&mut self) -> Result<LikePattern, ParseError> {
        let t = self.peek().clone();
        if t.kind != TokenKind::String {
            return Err(self.unexpected());
        }
        self.bump();
        Ok(decode_like(self.text(t.span), t.span))
    }
}

/// `USD5000` → `("USD", "5000")`: three ASCII letters then digits.
fn currency_prefix(text: &str) -> Option<(&str, &str)> {
    let (code, digits) = (text.get(..3)?, text.get(3..)?);
    (code.bytes().all(|b| b.is_ascii_alphabetic())
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit()))
    .then_some((code, digits))
}

/// The body of a quoted literal (quotes stripped), as chars with escape flags.
fn unescape(quoted: &str) -> Vec<(char, bool)> {
    let body = quoted.strip_prefix('\'').unwrap_or(quoted);
    let body = body.strip_suffix('\'').unwrap_or(body);
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push((c, false));
            continue;
        }
        let decoded = match chars.next() {
            Some('n' | 'N') => '\n',
            Some('r' | 'R') => '\r',
            Some('t' | 'T') => '\t',
            Some('b' | 'B') => '\u{8}',
            Some('f' | 'F') => '\u{c}',
            Some('u') => {
                // The lexer checked four hex digits follow.
                let hex: String = chars.by_ref().take(4).collect();
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}')
            }
            Some(other) => other,
            None => '\\',
        };
        out.push((decoded, true));
    }
    out
}

/// Decodes a plain string literal. `\_` and `\%` keep their backslash: they
/// only mean something inside LIKE.
pub(crate) fn decode_string(quoted: &str) -> String {
    let mut s = String::new();
    for (c, escaped) in unescape(quoted) {
        if escaped && (c == '_' || c == '%') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

fn decode_like(quoted: &str, span: Span) -> LikePattern {
    let parts = unescape(quoted)
        .into_iter()
        .map(|(c, escaped)| match (c, escaped) {
            ('_', false) => LikePart::AnyChar,
            ('%', false) => LikePart::AnyString,
            (c, _) => LikePart::Text(c.to_string()),
        });
    LikePattern::from_parts(parts, span)
}
