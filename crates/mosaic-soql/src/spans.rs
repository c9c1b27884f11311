//! Span erasure, so ASTs can be compared for meaning (round-trip tests).

use crate::ast::*;
use crate::sosl::{ReturningObject, SearchQuery};

/// Resets every span in a tree to `Span::default()`.
trait ClearSpans {
    fn clear_spans(&mut self);
}

impl ClearSpans for Ident {
    fn clear_spans(&mut self) {
        self.span = Span::default();
    }
}

impl ClearSpans for FieldPath {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        self.parts.iter_mut().for_each(ClearSpans::clear_spans);
    }
}

impl ClearSpans for Aggregate {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        if let Some(a) = &mut self.arg {
            a.clear_spans();
        }
        if let Some(a) = &mut self.alias {
            a.clear_spans();
        }
    }
}

impl ClearSpans for Operand {
    fn clear_spans(&mut self) {
        match self {
            Operand::Field(f) => f.clear_spans(),
            Operand::Aggregate(a) => a.clear_spans(),
            Operand::Call(c) => c.clear_spans(),
        }
    }
}

impl ClearSpans for FieldCall {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        self.arg.clear_spans();
    }
}

impl ClearSpans for TypeOf {
    fn clear_spans(&mut self) {
        self.span = Span::default();
        self.field.clear_spans();
        for w in &mut self.whens {
            w.object.clear_spans();
            w.fields.iter_mut().for_each(ClearSpans::clear_spans);
        }
        self.else_.iter_mut().for_each(ClearSpans::clear_spans);
    }
}

impl ClearSpans for WithClause {
    fn clear_spans(&mut self) {
        match self {
            WithClause::SecurityEnforced(s)
            | WithClause::UserMode(s)
            | WithClause::SystemMode(s) => *s = Span::default(),
            WithClause::DataCategory(filters, s) => {
                *s = Span::default();
                for filter in filters {
                    filter.group.clear_spans();
                    filter
                        .categories
                        .iter_mut()
                        .for_each(ClearSpans::clear_spans);
                }
            }
        }
    }
}

impl ClearSpans for ForClause {
    fn clear_spans(&mut self) {
        *self = match *self {
            ForClause::View(_) => ForClause::View(Span::default()),
            ForClause::Reference(_) => ForClause::Reference(Span::default()),
            ForClause::Update(_) => ForClause::Update(Span::default()),
            ForClause::UpdateTracking(_) => ForClause::UpdateTracking(Span::default()),
            ForClause::UpdateViewstat(_) => ForClause::UpdateViewstat(Span::default()),
        };
    }
}

impl ClearSpans for Value {
    fn clear_spans(&mut self) {
        self.span = Span::default();
    }
}

impl ClearSpans for Condition {
    fn clear_spans(&mut self) {
        match self {
            Condition::And(items) | Condition::Or(items) => {
                items.iter_mut().for_each(ClearSpans::clear_spans)
            }
            Condition::Not(inner) => inner.clear_spans(),
            Condition::Compare {
                lhs, value, span, ..
            } => {
                lhs.clear_spans();
                value.clear_spans();
                *span = Span::default();
            }
            Condition::Like { lhs, pattern, span } => {
                lhs.clear_spans();
                pattern.span = Span::default();
                *span = Span::default();
            }
            Condition::In {
                lhs, values, span, ..
            } => {
                lhs.clear_spans();
                match values {
                    InValues::List(vs) => vs.iter_mut().for_each(ClearSpans::clear_spans),
                    InValues::SubQuery(q) => q.clear_spans(),
                }
                *span = Span::default();
            }
            Condition::Includes {
                lhs, values, span, ..
            } => {
                lhs.clear_spans();
                values.iter_mut().for_each(ClearSpans::clear_spans);
                *span = Span::default();
            }
        }
    }
}

impl ClearSpans for OrderKey {
    fn clear_spans(&mut self) {
        self.key.clear_spans();
        self.span = Span::default();
    }
}

impl ClearSpans for Query {
    fn clear_spans(&mut self) {
        for item in &mut self.select {
            match item {
                SelectItem::Field(f) => f.clear_spans(),
                SelectItem::Aggregate(a) => a.clear_spans(),
                SelectItem::SubQuery(q) => q.clear_spans(),
                SelectItem::AliasedField { field, alias } => {
                    field.clear_spans();
                    alias.clear_spans();
                }
                SelectItem::Call { call, alias } => {
                    call.clear_spans();
                    if let Some(a) = alias {
                        a.clear_spans();
                    }
                }
                SelectItem::Fields { span, .. } => *span = Span::default(),
                SelectItem::TypeOf(t) => t.clear_spans(),
            }
        }
        if let Some(q) = &mut self.from.qualifier {
            q.clear_spans();
        }
        if let Some(s) = &mut self.scope {
            s.clear_spans();
        }
        if let Some(w) = &mut self.with {
            w.clear_spans();
        }
        if let Some(c) = &mut self.for_ {
            c.clear_spans();
        }
        self.from.name.clear_spans();
        if let Some(a) = &mut self.from.alias {
            a.clear_spans();
        }
        self.from.span = Span::default();
        if let Some(c) = &mut self.where_ {
            c.clear_spans();
        }
        self.group_by.iter_mut().for_each(ClearSpans::clear_spans);
        if let Some(c) = &mut self.having {
            c.clear_spans();
        }
        self.order_by.iter_mut().for_each(ClearSpans::clear_spans);
        self.span = Span::default();
    }
}

impl ClearSpans for ReturningObject {
    fn clear_spans(&mut self) {
        self.object.clear_spans();
        self.fields.iter_mut().for_each(ClearSpans::clear_spans);
        if let Some(c) = &mut self.where_ {
            c.clear_spans();
        }
        self.order_by.iter_mut().for_each(ClearSpans::clear_spans);
        self.span = Span::default();
    }
}

impl Query {
    /// A copy with every span zeroed: equal results mean equal meaning.
    pub fn without_spans(&self) -> Query {
        let mut q = self.clone();
        q.clear_spans();
        q
    }
}

impl SearchQuery {
    /// A copy with every span zeroed.
    pub fn without_spans(&self) -> SearchQuery {
        let mut q = self.clone();
        q.term.span = Span::default();
        q.returning.iter_mut().for_each(ClearSpans::clear_spans);
        q.span = Span::default();
        q
    }
}
