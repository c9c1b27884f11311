//! Canonical pretty-printing: keywords upper-case, names as written, one
//! space between tokens. The output parses back to the same AST.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::*;

fn comma_list<T>(
    f: &mut Formatter<'_>,
    items: &[T],
    each: impl Fn(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        each(f, item)?;
    }
    Ok(())
}

impl Display for Ident {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Display for FieldPath {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_char('.')?;
            }
            f.write_str(&part.name)?;
        }
        Ok(())
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.func.keyword())?;
        f.write_char('(')?;
        if let Some(arg) = &self.arg {
            write!(f, "{arg}")?;
        }
        f.write_char(')')?;
        if let Some(alias) = &self.alias {
            write!(f, " {alias}")?;
        }
        Ok(())
    }
}

impl Display for Operand {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field(p) => write!(f, "{p}"),
            Operand::Aggregate(a) => write!(f, "{a}"),
            Operand::Call(c) => write!(f, "{c}"),
        }
    }
}

impl Display for FieldCall {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.func.keyword(), self.arg)
    }
}

impl Display for TypeOf {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "TYPEOF {}", self.field)?;
        for w in &self.whens {
            write!(f, " WHEN {} THEN ", w.object)?;
            comma_list(f, &w.fields, |f, p| write!(f, "{p}"))?;
        }
        if !self.else_.is_empty() {
            f.write_str(" ELSE ")?;
            comma_list(f, &self.else_, |f, p| write!(f, "{p}"))?;
        }
        f.write_str(" END")
    }
}

impl Display for SelectItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SelectItem::Field(p) => write!(f, "{p}"),
            SelectItem::Aggregate(a) => write!(f, "{a}"),
            SelectItem::SubQuery(q) => write!(f, "({q})"),
            SelectItem::AliasedField { field, alias } => write!(f, "{field} {alias}"),
            SelectItem::Call { call, alias } => {
                write!(f, "{call}")?;
                if let Some(a) = alias {
                    write!(f, " {a}")?;
                }
                Ok(())
            }
            SelectItem::Fields { kind, .. } => write!(f, "FIELDS({})", kind.keyword()),
            SelectItem::TypeOf(t) => write!(f, "{t}"),
        }
    }
}

impl Display for WithClause {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            WithClause::SecurityEnforced(_) => f.write_str("WITH SECURITY_ENFORCED"),
            WithClause::UserMode(_) => f.write_str("WITH USER_MODE"),
            WithClause::SystemMode(_) => f.write_str("WITH SYSTEM_MODE"),
            WithClause::DataCategory(filters, _) => {
                f.write_str("WITH DATA CATEGORY ")?;
                for (i, filter) in filters.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" AND ")?;
                    }
                    write!(f, "{} {} ", filter.group, filter.selector)?;
                    if let [one] = filter.categories.as_slice() {
                        write!(f, "{one}")?;
                    } else {
                        f.write_char('(')?;
                        comma_list(f, &filter.categories, |f, c| write!(f, "{c}"))?;
                        f.write_char(')')?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        comma_list(f, &self.select, |f, s| write!(f, "{s}"))?;
        f.write_str(" FROM ")?;
        if let Some(q) = &self.from.qualifier {
            write!(f, "{q}.")?;
        }
        write!(f, "{}", self.from.name)?;
        if let Some(alias) = &self.from.alias {
            write!(f, " {alias}")?;
        }
        if let Some(scope) = &self.scope {
            write!(f, " USING SCOPE {scope}")?;
        }
        if let Some(c) = &self.where_ {
            write!(f, " WHERE {c}")?;
        }
        if let Some(w) = &self.with {
            write!(f, " {w}")?;
        }
        if !self.group_by.is_empty() {
            f.write_str(" GROUP BY ")?;
            let (open, close) = match self.grouping {
                Grouping::Plain => ("", ""),
                Grouping::Rollup => ("ROLLUP(", ")"),
                Grouping::Cube => ("CUBE(", ")"),
            };
            f.write_str(open)?;
            comma_list(f, &self.group_by, |f, g| write!(f, "{g}"))?;
            f.write_str(close)?;
        }
        if let Some(c) = &self.having {
            write!(f, " HAVING {c}")?;
        }
        if !self.order_by.is_empty() {
            f.write_str(" ORDER BY ")?;
            comma_list(f, &self.order_by, |f, k| write!(f, "{k}"))?;
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        if let Some(n) = self.offset {
            write!(f, " OFFSET {n}")?;
        }
        if let Some(c) = self.for_ {
            write!(f, " {}", c.keywords())?;
        }
        Ok(())
    }
}

impl Display for OrderKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        if self.direction == SortDirection::Desc {
            f.write_str(" DESC")?;
        }
        match self.nulls {
            Some(NullsOrder::First) => f.write_str(" NULLS FIRST"),
            Some(NullsOrder::Last) => f.write_str(" NULLS LAST"),
            None => Ok(()),
        }
    }
}

/// Writes a child of AND / OR / NOT, parenthesised when it is itself a connective.
fn nested(f: &mut Formatter<'_>, c: &Condition) -> fmt::Result {
    match c {
        Condition::And(_) | Condition::Or(_) => write!(f, "({c})"),
        _ => write!(f, "{c}"),
    }
}

impl Display for Condition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Condition::And(items) | Condition::Or(items) => {
                let sep = if matches!(self, Condition::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    nested(f, item)?;
                }
                Ok(())
            }
            Condition::Not(inner) => {
                f.write_str("NOT ")?;
                nested(f, inner)
            }
            Condition::Compare { lhs, op, value, .. } => write!(f, "{lhs} {} {value}", op.symbol()),
            Condition::Like { lhs, pattern, .. } => write!(f, "{lhs} LIKE {pattern}"),
            Condition::In {
                lhs,
                values,
                negated,
                ..
            } => {
                write!(f, "{lhs} {}IN (", if *negated { "NOT " } else { "" })?;
                match values {
                    InValues::List(vs) => comma_list(f, vs, |f, v| write!(f, "{v}"))?,
                    InValues::SubQuery(q) => write!(f, "{q}")?,
                }
                f.write_char(')')
            }
            Condition::Includes {
                lhs,
                values,
                excludes,
                ..
            } => {
                write!(
                    f,
                    "{lhs} {} (",
                    if *excludes { "EXCLUDES" } else { "INCLUDES" }
                )?;
                comma_list(f, values, |f, v| write!(f, "{v}"))?;
                f.write_char(')')
            }
        }
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.literal)
    }
}

/// Writes `c` as it must appear inside a quoted literal.
fn escape_char(f: &mut Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\'' => f.write_str("\\'"),
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\u{8}' => f.write_str("\\b"),
        '\u{c}' => f.write_str("\\f"),
        c => f.write_char(c),
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Number(d) => write!(f, "{d}"),
            Literal::String(s) => {
                f.write_char('\'')?;
                for c in s.chars() {
                    escape_char(f, c)?;
                }
                f.write_char('\'')
            }
            Literal::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Literal::DateTime(dt) => write!(f, "{}", dt.format("%Y-%m-%dT%H:%M:%S%.fZ")),
            Literal::DateLiteral(lit) => f.write_str(&lit.to_soql()),
            Literal::Currency { code, amount } => write!(f, "{code}{amount}"),
        }
    }
}

impl Display for LikePattern {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('\'')?;
        for part in &self.parts {
            match part {
                LikePart::AnyChar => f.write_char('_')?,
                LikePart::AnyString => f.write_char('%')?,
                LikePart::Text(t) => {
                    for c in t.chars() {
                        match c {
                            '_' => f.write_str("\\_")?,
                            '%' => f.write_str("\\%")?,
                            c => escape_char(f, c)?,
                        }
                    }
                }
            }
        }
        f.write_char('\'')
    }
}
