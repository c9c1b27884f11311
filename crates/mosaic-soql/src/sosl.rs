//! The SOSL subset: `FIND {term} [IN … FIELDS] [RETURNING Obj(f, … [WHERE …]
//! [ORDER BY …] [LIMIT n]), …] [LIMIT n]`.
//!
//! The search term is kept as written between the braces; interpreting its
//! operators (`AND`, `OR`, `*`, `?`, quotes) is the search engine's job.

use std::fmt::{self, Display, Formatter};

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{check_length, tokenize, TokenKind};
use crate::limits::*;
use crate::parser::{Clause, Parser};

/// A parsed `FIND` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub term: SearchTerm,
    pub scope: SearchScope,
    /// Empty means "every searchable object".
    pub returning: Vec<ReturningObject>,
    pub limit: Option<u32>,
    pub span: Span,
}

/// The text between `{` and `}`, escapes untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    pub raw: String,
    pub span: Span,
}

/// `IN … FIELDS`; `AllFields` when omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SearchScope {
    #[default]
    AllFields,
    NameFields,
    EmailFields,
    PhoneFields,
}

impl SearchScope {
    pub fn keyword(self) -> &'static str {
        match self {
            SearchScope::AllFields => "ALL",
            SearchScope::NameFields => "NAME",
            SearchScope::EmailFields => "EMAIL",
            SearchScope::PhoneFields => "PHONE",
        }
    }
}

/// `Account(Name, Phone WHERE … ORDER BY … LIMIT 5)` or a bare `Contact`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturningObject {
    pub object: Ident,
    /// Empty means the object's default (Id).
    pub fields: Vec<FieldPath>,
    pub where_: Option<Condition>,
    pub order_by: Vec<OrderKey>,
    pub limit: Option<u32>,
    pub span: Span,
}

/// Parses one SOSL `FIND` statement.
pub fn parse_search(src: &str) -> Result<SearchQuery, ParseError> {
    check_length(src)?;
    let lead = src.len() - src.trim_start_matches([' ', '\t', '\r', '\n']).len();
    let rest = src.get(lead..).unwrap_or("");
    let is_find = rest
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("FIND"))
        && !rest
            .as_bytes()
            .get(4)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if !is_find {
        return Err(ParseError::at(src, lead, "expected FIND"));
    }
    let after_find = lead + 4;
    let open = after_find
        + (src.len() - after_find - src.get(after_find..).unwrap_or("").trim_start().len());
    if src.as_bytes().get(open) != Some(&b'{') {
        return Err(ParseError::at(
            src,
            open,
            "expected '{' to start the search term",
        ));
    }
    let bytes = src.as_bytes();
    let mut i = open + 1;
    let close = loop {
        match bytes.get(i) {
            None => return Err(ParseError::at(src, open, "unterminated search term")),
            Some(b'\\') => i += 2,
            Some(b'}') => break i,
            Some(_) => i += 1,
        }
    };
    let raw = src.get(open + 1..close).unwrap_or("");
    if raw.trim().is_empty() {
        return Err(ParseError::at(src, open, "empty search term"));
    }
    if raw.chars().count() > MAX_SEARCH_TERM_LEN {
        return Err(ParseError::at(
            src,
            open,
            format!("search term is longer than {MAX_SEARCH_TERM_LEN} characters"),
        ));
    }
    let term = SearchTerm {
        raw: raw.to_string(),
        span: Span::new(open, close + 1),
    };

    let tokens = tokenize(src, close + 1)?;
    let mut p = Parser::new(src, tokens);
    let mut scope = SearchScope::AllFields;
    if p.eat_keyword("IN") {
        scope = if p.eat_keyword("ALL") {
            SearchScope::AllFields
        } else if p.eat_keyword("NAME") {
            SearchScope::NameFields
        } else if p.eat_keyword("EMAIL") {
            SearchScope::EmailFields
        } else if p.eat_keyword("PHONE") {
            SearchScope::PhoneFields
        } else {
            return Err(p.unexpected());
        };
        p.expect_keyword("FIELDS")?;
    }
    let mut returning = Vec::new();
    if p.eat_keyword("RETURNING") {
        loop {
            let obj = returning_object(&mut p)?;
            if returning.len() >= MAX_RETURNING_OBJECTS {
                return Err(p.err(
                    obj.span.start,
                    format!("more than {MAX_RETURNING_OBJECTS} RETURNING objects"),
                ));
            }
            returning.push(obj);
            if !p.eat(&TokenKind::Comma) {
                break;
            }
        }
    }
    let limit = if p.eat_keyword("LIMIT") {
        Some(p.count_value(MAX_LIMIT, "LIMIT")?)
    } else {
        None
    };
    p.expect_eof()?;
    let end = src.trim_end_matches([' ', '\t', '\r', '\n']).len();
    Ok(SearchQuery {
        term,
        scope,
        returning,
        limit,
        span: Span::new(lead, end.max(lead)),
    })
}

fn returning_object(p: &mut Parser<'_>) -> Result<ReturningObject, ParseError> {
    let object = p.ident()?;
    let start = object.span.start;
    let mut obj = ReturningObject {
        object,
        fields: Vec::new(),
        where_: None,
        order_by: Vec::new(),
        limit: None,
        span: Span::default(),
    };
    let mut end = obj.object.span.end;
    if p.eat(&TokenKind::LParen) {
        loop {
            obj.fields.push(p.field_path()?);
            if !p.eat(&TokenKind::Comma) {
                break;
            }
        }
        if p.eat_keyword("WHERE") {
            obj.where_ = Some(p.condition_without_semi_joins(Clause::Where)?);
        }
        if p.eat_keyword("ORDER") {
            p.expect_keyword("BY")?;
            loop {
                obj.order_by.push(p.order_key()?);
                if !p.eat(&TokenKind::Comma) {
                    break;
                }
            }
        }
        if p.eat_keyword("LIMIT") {
            obj.limit = Some(p.count_value(MAX_LIMIT, "LIMIT")?);
        }
        end = p.expect(&TokenKind::RParen)?.end;
    }
    obj.span = Span::new(start, end);
    Ok(obj)
}

impl Display for SearchQuery {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "FIND {{{}}}", self.term.raw)?;
        if self.scope != SearchScope::AllFields {
            write!(f, " IN {} FIELDS", self.scope.keyword())?;
        }
        if !self.returning.is_empty() {
            f.write_str(" RETURNING ")?;
            for (i, obj) in self.returning.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{obj}")?;
            }
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        Ok(())
    }
}

impl Display for ReturningObject {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.object)?;
        if self.fields.is_empty() {
            return Ok(());
        }
        f.write_str("(")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{field}")?;
        }
        if let Some(c) = &self.where_ {
            write!(f, " WHERE {c}")?;
        }
        if !self.order_by.is_empty() {
            f.write_str(" ORDER BY ")?;
            for (i, k) in self.order_by.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}")?;
            }
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        f.write_str(")")
    }
}
