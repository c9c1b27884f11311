//! Binding: SOQL names and literals resolved against a [`Schema`], producing a
//! [`QueryPlan`] and the output shape.

use super::*;
use crate::query_store::*;
use crate::sqlite_query::like_escape;
use chrono::NaiveTime;
use mosaic_soql::{
    AggregateFn, CompareOp, Condition, FieldCall, FieldFn, FieldPath, FieldsKind, ForClause,
    Grouping, Ident, InValues, LikePart, Literal, ObjectRef, Operand, OrderKey, ParseError, Query,
    ReturningObject, SelectItem, Span, WithClause,
};
use mosaic_types::{DataType, ErrorCode, FlexSlot, MosaicError, MosaicResult, Value};

/// Plans a SOQL statement. `src` is the statement text (errors point into it).
pub fn plan_query(src: &str, schema: &Schema, ctx: &PlanContext) -> MosaicResult<PlannedQuery> {
    let q = mosaic_soql::parse_query(src)
        .map_err(|e| MosaicError::new(ErrorCode::MALFORMED_QUERY, e.render(src)))?;
    Binder { src, schema, ctx }.top(&q, ctx.include_deleted)
}

/// Plans an already-parsed (possibly rewritten) statement; its spans point
/// into `src`, so errors render against the original text.
pub fn plan_parsed(
    src: &str,
    q: &Query,
    schema: &Schema,
    ctx: &PlanContext,
) -> MosaicResult<PlannedQuery> {
    Binder { src, schema, ctx }.top(q, ctx.include_deleted)
}

/// Plans one SOSL `RETURNING` object restricted to the records a search found.
pub fn plan_search_object(
    src: &str,
    schema: &Schema,
    ctx: &PlanContext,
    ro: &ReturningObject,
    ids: Vec<String>,
) -> MosaicResult<PlannedQuery> {
    let id_path = |span: Span| FieldPath {
        parts: vec![Ident {
            name: "Id".into(),
            span,
        }],
        span,
    };
    let select = if ro.fields.is_empty() {
        vec![SelectItem::Field(id_path(ro.object.span))]
    } else {
        ro.fields.iter().cloned().map(SelectItem::Field).collect()
    };
    let q = Query {
        select,
        from: ObjectRef {
            qualifier: None,
            name: ro.object.clone(),
            alias: None,
            span: ro.object.span,
        },
        scope: None,
        with: None,
        where_: ro.where_.clone(),
        group_by: Vec::new(),
        grouping: Grouping::Plain,
        having: None,
        order_by: ro.order_by.clone(),
        limit: ro.limit,
        offset: None,
        for_: None,
        span: ro.span,
    };
    let mut planned = Binder { src, schema, ctx }.top(&q, false)?;
    let hits = Filter::In {
        expr: Expr::Column(id_col(0)),
        values: ids.into_iter().map(Value::Text).collect(),
        negated: false,
    };
    planned.plan.filter = Some(match planned.plan.filter.take() {
        Some(f) => Filter::And(vec![hits, f]),
        None => hits,
    });
    Ok(planned)
}

fn id_col(source: usize) -> ColumnRef {
    ColumnRef {
        source,
        column: Column::Sys(SysColumn::Id),
        kind: Kind::Id,
        pivot: None,
    }
}

/// How values of a field type compare.
fn kind_of(t: DataType) -> Kind {
    use DataType::*;
    match t {
        Text | Textarea | Email | Phone | Url | Picklist | AutoNumber => Kind::Text,
        MultiPicklist => Kind::MultiPicklist,
        Lookup | MasterDetail => Kind::Id,
        Number | Currency | Percent => Kind::Number,
        Date => Kind::Date,
        Datetime => Kind::Datetime,
        Boolean => Kind::Boolean,
        Time => Kind::Time,
        RichText | LongText | EncryptedText | Geolocation | Formula | RollupSummary => Kind::Opaque,
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Id => "id",
        Kind::Text | Kind::MultiPicklist | Kind::Time => "string",
        Kind::Number => "number",
        Kind::Date => "date",
        Kind::Datetime => "dateTime",
        Kind::Boolean => "boolean",
        Kind::Opaque => "opaque",
    }
}

/// The user relationships every record has.
const USER_RELATIONSHIPS: [(&str, SysColumn); 3] = [
    ("Owner", SysColumn::OwnerId),
    ("CreatedBy", SysColumn::CreatedById),
    ("LastModifiedBy", SysColumn::LastModifiedById),
];

struct HopRef {
    name: String,
    object: String,
    id_col: ColumnRef,
}

enum Resolved {
    Column {
        col: ColumnRef,
        hops: Vec<HopRef>,
        name: String,
        object_id: String,
    },
    Formula {
        hops: Vec<HopRef>,
        name: String,
        object_id: String,
        id_col: ColumnRef,
    },
    User {
        hops: Vec<HopRef>,
        field: UserField,
    },
}

/// One query's row sources and select list under construction.
struct Scope<'s> {
    object: &'s SchemaObject,
    alias: Option<String>,
    joins: Vec<Join>,
    select: Vec<Expr>,
    /// Roll-up summaries filtered or sorted on (`Column::Rollup(i)`).
    rollups: Vec<RollupSpec>,
}

impl<'s> Scope<'s> {
    fn new(object: &'s SchemaObject, alias: Option<&Ident>) -> Scope<'s> {
        Scope {
            object,
            alias: alias.map(|a| a.name.clone()),
            joins: Vec::new(),
            select: Vec::new(),
            rollups: Vec::new(),
        }
    }

    fn rollup(&mut self, spec: &RollupSpec) -> ColumnRef {
        let i = match self.rollups.iter().position(|r| r == spec) {
            Some(i) => i,
            None => {
                self.rollups.push(spec.clone());
                self.rollups.len() - 1
            }
        };
        ColumnRef {
            source: 0,
            column: Column::Rollup(u16::try_from(i).unwrap_or(u16::MAX)),
            kind: spec.kind,
            pivot: None,
        }
    }

    fn join(&mut self, from: usize, via: FlexSlot, object_id: &str) -> usize {
        if let Some(i) = self
            .joins
            .iter()
            .position(|j| j.from == from && j.via == via)
        {
            return i + 1;
        }
        self.joins.push(Join {
            from,
            via,
            object_id: object_id.to_string(),
        });
        self.joins.len()
    }

    fn add(&mut self, e: Expr) -> usize {
        if let Some(i) = self.select.iter().position(|x| *x == e) {
            return i;
        }
        self.select.push(e);
        self.select.len() - 1
    }

    fn hops(&mut self, hops: Vec<HopRef>) -> Vec<Hop> {
        hops.into_iter()
            .map(|h| Hop {
                id_select: self.add(Expr::Column(h.id_col)),
                name: h.name,
                object: h.object,
            })
            .collect()
    }
}

struct Binder<'a> {
    src: &'a str,
    schema: &'a Schema,
    ctx: &'a PlanContext,
}

/// A typed literal: a value, null, or a date literal's range `[start, end)`.
enum Lit {
    Null,
    Value(Value),
    Range(Value, Value),
}

impl<'a> Binder<'a> {
    fn err(&self, span: Span, code: ErrorCode, field: Option<&str>, msg: String) -> MosaicError {
        MosaicError {
            code,
            message: ParseError::at(self.src, span.start, msg).render(self.src),
            fields: field.map(|f| vec![f.to_string()]).unwrap_or_default(),
        }
    }

    fn invalid_field(&self, span: Span, msg: String, field: &str) -> MosaicError {
        self.err(span, ErrorCode::INVALID_FIELD, Some(field), msg)
    }

    fn object(&self, name: &Ident) -> MosaicResult<&'a SchemaObject> {
        self.schema.by_name(&name.name).ok_or_else(|| {
            self.err(
                name.span,
                ErrorCode::INVALID_TYPE,
                None,
                format!(
                    "sObject type '{}' is not supported",
                    name.name.chars().take(80).collect::<String>()
                ),
            )
        })
    }

    // ---- names -----------------------------------------------------------

    fn resolve(&self, scope: &mut Scope<'a>, path: &FieldPath) -> MosaicResult<Resolved> {
        let mut parts: &[Ident] = &path.parts;
        if parts.len() > 1 {
            let first = &parts[0];
            let is_alias = scope.alias.as_deref().is_some_and(|a| first.is(a));
            let is_self = scope.alias.is_none()
                && first.is(&scope.object.api_name)
                && !scope
                    .object
                    .fields
                    .iter()
                    .any(|f| f.relationship_name.as_deref().is_some_and(|r| first.is(r)));
            if is_alias || is_self {
                parts = &parts[1..];
            }
        }
        let Some((last, hops_parts)) = parts.split_last() else {
            return Err(self.invalid_field(path.span, "empty field path".into(), ""));
        };
        let mut source = 0usize;
        let mut obj: &'a SchemaObject = scope.object;
        let mut hops = Vec::new();
        for (i, part) in hops_parts.iter().enumerate() {
            if let Some((name, col)) = USER_RELATIONSHIPS.iter().find(|(n, _)| part.is(n)) {
                hops.push(HopRef {
                    name: (*name).to_string(),
                    object: "User".into(),
                    id_col: ColumnRef {
                        source,
                        column: Column::Sys(*col),
                        kind: Kind::Id,
                        pivot: None,
                    },
                });
                if i + 1 != hops_parts.len() {
                    return Err(self.invalid_field(
                        hops_parts[i + 1].span,
                        format!(
                            "relationships of User ('{}.{}') are not supported",
                            name,
                            hops_parts[i + 1].name
                        ),
                        &path.dotted(),
                    ));
                }
                let field = UserField::by_name(&last.name).ok_or_else(|| {
                    self.invalid_field(
                        last.span,
                        format!(
                            "No such column '{}' on entity 'User' (queryable: Id, Name, Username, Email, IsActive)",
                            last.name
                        ),
                        &last.name,
                    )
                })?;
                return Ok(Resolved::User { hops, field });
            }
            let f = obj
                .fields
                .iter()
                .find(|f| {
                    f.lookup_object_id.is_some()
                        && f.slot.is_some()
                        && f.relationship_name.as_deref().is_some_and(|r| part.is(r))
                })
                .ok_or_else(|| {
                    self.invalid_field(
                        part.span,
                        format!(
                            "Didn't understand relationship '{}' in field path on entity '{}'. Use the relationship name (e.g. Account__r), not the field name",
                            part.name, obj.api_name
                        ),
                        &path.dotted(),
                    )
                })?;
            let target_id = f.lookup_object_id.as_deref().unwrap_or_default();
            let target = self.schema.by_id(target_id).ok_or_else(|| {
                self.invalid_field(
                    part.span,
                    format!(
                        "the target of relationship '{}' no longer exists",
                        part.name
                    ),
                    &path.dotted(),
                )
            })?;
            let slot = f
                .slot
                .ok_or_else(|| MosaicError::internal("lookup without slot"))?;
            let j = scope.join(source, slot, &target.id);
            hops.push(HopRef {
                name: f.relationship_name.clone().unwrap_or_default(),
                object: target.api_name.clone(),
                id_col: id_col(j),
            });
            source = j;
            obj = target;
        }
        if let Some(sys) = SysColumn::by_name(&last.name) {
            return Ok(Resolved::Column {
                col: ColumnRef {
                    source,
                    column: Column::Sys(sys),
                    kind: sys.kind(),
                    pivot: None,
                },
                hops,
                name: sys.api_name().to_string(),
                object_id: obj.id.clone(),
            });
        }
        let f = obj.field(&last.name).ok_or_else(|| {
            self.invalid_field(
                last.span,
                format!(
                    "No such column '{}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name",
                    last.name.chars().take(80).collect::<String>(),
                    obj.api_name
                ),
                &last.name.chars().take(80).collect::<String>(),
            )
        })?;
        match f.slot {
            None => Ok(Resolved::Formula {
                hops,
                name: f.api_name.clone(),
                object_id: obj.id.clone(),
                id_col: id_col(source),
            }),
            Some(slot) => Ok(Resolved::Column {
                col: ColumnRef {
                    source,
                    column: Column::Slot(slot),
                    kind: kind_of(f.data_type),
                    pivot: if f.unique {
                        Some(Pivot::Unique)
                    } else if f.indexed {
                        Some(Pivot::Index)
                    } else {
                        None
                    },
                },
                hops,
                name: f.api_name.clone(),
                object_id: obj.id.clone(),
            }),
        }
    }

    /// A path used to filter, group or sort: must be a stored column.
    fn column(
        &self,
        scope: &mut Scope<'a>,
        path: &FieldPath,
        what: &str,
    ) -> MosaicResult<ColumnRef> {
        match self.resolve(scope, path)? {
            Resolved::Column { col, .. } => Ok(col),
            Resolved::Formula {
                hops,
                name,
                object_id,
                ..
            } if self
                .schema
                .by_id(&object_id)
                .and_then(|o| o.field(&name))
                .is_some_and(|f| f.rollup.is_some()) =>
            {
                let spec = self
                    .schema
                    .by_id(&object_id)
                    .and_then(|o| o.field(&name))
                    .and_then(|f| f.rollup.clone())
                    .ok_or_else(|| MosaicError::internal("roll-up vanished"))?;
                if !hops.is_empty() || !matches!(what, "filter" | "sort") {
                    return Err(self.invalid_field(
                        path.span,
                        format!("roll-up summary field '{name}' can be used to filter and sort on the queried object only, not to {what}"),
                        &name,
                    ));
                }
                Ok(scope.rollup(&spec))
            }
            Resolved::Formula { name, .. } => Err(self.invalid_field(
                path.span,
                format!("formula field '{name}' cannot be used to {what} yet (formula fields are computed after fetch)"),
                &name,
            )),
            Resolved::User { .. } => Err(self.invalid_field(
                path.span,
                format!(
                    "'{}': fields of Owner / CreatedBy / LastModifiedBy cannot be used to {what} yet; use OwnerId / CreatedById / LastModifiedById",
                    path.dotted()
                ),
                &path.dotted(),
            )),
        }
    }

    fn filterable(&self, path: &FieldPath, col: &ColumnRef, what: &str) -> MosaicResult<()> {
        if col.kind == Kind::Opaque {
            return Err(self.invalid_field(
                path.span,
                format!(
                    "field '{}' can not be used to {what} in a query call",
                    path.dotted()
                ),
                &path.dotted(),
            ));
        }
        Ok(())
    }

    // ---- literals ----------------------------------------------------------

    fn lit(&self, kind: Kind, field: &str, v: &mosaic_soql::Value) -> MosaicResult<Lit> {
        let wrong = || {
            self.invalid_field(
                v.span,
                format!(
                    "value of filter criterion for field '{field}' must be of type {}{}",
                    kind_name(kind),
                    match kind {
                        Kind::Text | Kind::MultiPicklist | Kind::Time | Kind::Id =>
                            " and should be enclosed in quotes",
                        _ => " and should not be enclosed in quotes",
                    }
                ),
                field,
            )
        };
        let range_err = || self.invalid_field(v.span, "date literal out of range".into(), field);
        Ok(match (&v.literal, kind) {
            (Literal::Null, _) => Lit::Null,
            (Literal::String(s), Kind::Text | Kind::MultiPicklist) => {
                Lit::Value(Value::Text(s.clone()))
            }
            (Literal::String(s), Kind::Id) => Lit::Value(Value::Text(s.to_lowercase())),
            (Literal::String(s), Kind::Time) => {
                let t = ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"]
                    .iter()
                    .find_map(|f| NaiveTime::parse_from_str(s.trim_end_matches('Z'), f).ok())
                    .ok_or_else(wrong)?;
                Lit::Value(Value::Text(mosaic_types::value::format_time(&t)))
            }
            (Literal::Number(d), Kind::Number) => Lit::Value(Value::Number(*d)),
            // One currency until multi-currency exists: the code is accepted as written.
            (Literal::Currency { amount, .. }, Kind::Number) => Lit::Value(Value::Number(*amount)),
            (Literal::Bool(b), Kind::Boolean) => Lit::Value(Value::Boolean(*b)),
            (Literal::Date(d), Kind::Date) => Lit::Value(Value::Date(*d)),
            (Literal::DateTime(d), Kind::Datetime) => Lit::Value(Value::Datetime(*d)),
            (Literal::DateLiteral(l), Kind::Date | Kind::Datetime) => {
                let range = mosaic_soql::resolve_date_literal_fiscal(
                    *l,
                    self.ctx.today,
                    self.ctx.week_start,
                    self.ctx.fiscal_start_month,
                )
                .ok_or_else(range_err)?;
                if kind == Kind::Date {
                    Lit::Range(Value::Date(range.start), Value::Date(range.end_exclusive))
                } else {
                    let (s, e) = mosaic_soql::date_range_to_utc(range, &self.ctx.zone)
                        .ok_or_else(range_err)?;
                    Lit::Range(Value::Datetime(s), Value::Datetime(e))
                }
            }
            (_, Kind::Opaque) => {
                return Err(self.invalid_field(
                    v.span,
                    format!("field '{field}' can not be filtered in a query call"),
                    field,
                ))
            }
            _ => return Err(wrong()),
        })
    }

    /// `expr op literal` with SOQL null and date-literal semantics.
    fn compare(
        &self,
        expr: Expr,
        op: CompareOp,
        lit: Lit,
        span: Span,
        field: &str,
    ) -> MosaicResult<Filter> {
        let kind = expr.kind();
        if matches!(kind, Kind::Boolean | Kind::MultiPicklist)
            && !matches!(op, CompareOp::Eq | CompareOp::Ne)
        {
            return Err(self.err(
                span,
                ErrorCode::MALFORMED_QUERY,
                Some(field),
                format!(
                    "invalid operator on {} field '{field}': only = and != are allowed",
                    kind_name(kind)
                ),
            ));
        }
        let cmp = |op: CmpOp, value: Value| Filter::Compare {
            expr: expr.clone(),
            op,
            value,
        };
        Ok(match (lit, op) {
            (Lit::Null, CompareOp::Eq) => Filter::IsNull {
                expr,
                negated: false,
            },
            (Lit::Null, CompareOp::Ne) => Filter::IsNull {
                expr,
                negated: true,
            },
            (Lit::Null, _) => {
                return Err(self.err(
                    span,
                    ErrorCode::MALFORMED_QUERY,
                    Some(field),
                    "null can only be compared with = or !=".into(),
                ))
            }
            (Lit::Value(v), op) => cmp(cmp_op(op), v),
            (Lit::Range(s, e), CompareOp::Eq) => {
                Filter::And(vec![cmp(CmpOp::Ge, s), cmp(CmpOp::Lt, e)])
            }
            (Lit::Range(s, e), CompareOp::Ne) => Filter::Not(Box::new(Filter::And(vec![
                cmp(CmpOp::Ge, s),
                cmp(CmpOp::Lt, e),
            ]))),
            (Lit::Range(s, _), CompareOp::Lt) => cmp(CmpOp::Lt, s),
            (Lit::Range(_, e), CompareOp::Le) => cmp(CmpOp::Lt, e),
            (Lit::Range(_, e), CompareOp::Gt) => cmp(CmpOp::Ge, e),
            (Lit::Range(s, _), CompareOp::Ge) => cmp(CmpOp::Ge, s),
        })
    }

    // ---- conditions --------------------------------------------------------

    fn condition(
        &self,
        scope: &mut Scope<'a>,
        c: &Condition,
        having: Option<&[Expr]>,
    ) -> MosaicResult<Filter> {
        match c {
            Condition::And(items) => Ok(Filter::And(
                items
                    .iter()
                    .map(|i| self.condition(scope, i, having))
                    .collect::<MosaicResult<_>>()?,
            )),
            Condition::Or(items) => Ok(Filter::Or(
                items
                    .iter()
                    .map(|i| self.condition(scope, i, having))
                    .collect::<MosaicResult<_>>()?,
            )),
            Condition::Not(inner) => {
                Ok(Filter::Not(Box::new(self.condition(scope, inner, having)?)))
            }
            Condition::Compare {
                lhs,
                op,
                value,
                span,
            } => {
                let (expr, kind, name) = self.operand(scope, lhs, having)?;
                let lit = self.lit(kind, &name, value)?;
                self.compare(expr, *op, lit, *span, &name)
            }
            Condition::Like { lhs, pattern, span } => {
                let (expr, kind, name) = self.operand(scope, lhs, having)?;
                let Expr::Column(column) = expr else {
                    return Err(self.err(
                        *span,
                        ErrorCode::MALFORMED_QUERY,
                        None,
                        "LIKE applies to fields only".into(),
                    ));
                };
                if kind != Kind::Text {
                    return Err(self.invalid_field(
                        *span,
                        format!(
                            "invalid operator on field '{name}': LIKE applies to text fields only"
                        ),
                        &name,
                    ));
                }
                let mut p = String::new();
                for part in &pattern.parts {
                    match part {
                        LikePart::Text(t) => like_escape(&mut p, &t.to_lowercase()),
                        LikePart::AnyChar => p.push('_'),
                        LikePart::AnyString => p.push('%'),
                    }
                }
                Ok(Filter::Like { column, pattern: p })
            }
            Condition::In {
                lhs,
                values,
                negated,
                span,
            } => match values {
                InValues::List(list) => {
                    let (expr, kind, name) = self.operand(scope, lhs, having)?;
                    let mut plain = Vec::new();
                    let mut alts = Vec::new();
                    let mut has_null = false;
                    for v in list {
                        match self.lit(kind, &name, v)? {
                            Lit::Null => has_null = true,
                            Lit::Value(v) => plain.push(v),
                            r @ Lit::Range(..) => alts.push(self.compare(
                                expr.clone(),
                                CompareOp::Eq,
                                r,
                                v.span,
                                &name,
                            )?),
                        }
                    }
                    if !has_null && alts.is_empty() {
                        return Ok(Filter::In {
                            expr,
                            values: plain,
                            negated: *negated,
                        });
                    }
                    if !plain.is_empty() {
                        alts.push(Filter::In {
                            expr: expr.clone(),
                            values: plain,
                            negated: false,
                        });
                    }
                    if has_null {
                        alts.push(Filter::IsNull {
                            expr,
                            negated: false,
                        });
                    }
                    let any = if alts.len() == 1 {
                        alts.remove(0)
                    } else {
                        Filter::Or(alts)
                    };
                    Ok(if *negated {
                        Filter::Not(Box::new(any))
                    } else {
                        any
                    })
                }
                InValues::SubQuery(sub) => {
                    let Operand::Field(path) = lhs else {
                        return Err(self.err(
                            *span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "a semi-join needs a field on the left".into(),
                        ));
                    };
                    let column = self.column(scope, path, "filter")?;
                    if column.kind != Kind::Id {
                        return Err(self.invalid_field(
                            path.span,
                            format!(
                                "'{}' must be an Id or lookup field to use IN (SELECT …)",
                                path.dotted()
                            ),
                            &path.dotted(),
                        ));
                    }
                    Ok(Filter::SemiJoin {
                        column,
                        sub: Box::new(self.semi_join(sub)?),
                        negated: *negated,
                    })
                }
            },
            Condition::Includes {
                lhs,
                values,
                excludes,
                span,
            } => {
                let (expr, kind, name) = self.operand(scope, lhs, having)?;
                let Expr::Column(column) = expr else {
                    return Err(self.err(
                        *span,
                        ErrorCode::MALFORMED_QUERY,
                        None,
                        "INCLUDES applies to fields only".into(),
                    ));
                };
                if kind != Kind::MultiPicklist {
                    return Err(self.invalid_field(
                        *span,
                        format!("INCLUDES / EXCLUDES apply to multi-select picklists only, not '{name}'"),
                        &name,
                    ));
                }
                let mut groups = Vec::new();
                for v in values {
                    match &v.literal {
                        Literal::String(s) => groups.push(
                            s.split(';')
                                .map(|p| p.trim().to_lowercase())
                                .filter(|p| !p.is_empty())
                                .collect::<Vec<_>>(),
                        ),
                        _ => {
                            return Err(self.invalid_field(
                                v.span,
                                format!(
                                "values of INCLUDES / EXCLUDES on '{name}' must be quoted strings"
                            ),
                                &name,
                            ))
                        }
                    }
                }
                Ok(Filter::Includes {
                    column,
                    groups,
                    excludes: *excludes,
                })
            }
        }
    }

    /// The left side of a predicate: a field (in HAVING, a grouped one) or,
    /// in HAVING, an aggregate. Returns the expression, its kind and a name.
    fn operand(
        &self,
        scope: &mut Scope<'a>,
        op: &Operand,
        having: Option<&[Expr]>,
    ) -> MosaicResult<(Expr, Kind, String)> {
        match op {
            Operand::Field(path) => {
                let col = self.column(scope, path, "filter")?;
                self.filterable(path, &col, "filter")?;
                if let Some(groups) = having {
                    if !groups.contains(&Expr::Column(col)) {
                        return Err(self.err(
                            path.span,
                            ErrorCode::MALFORMED_QUERY,
                            Some(&path.dotted()),
                            format!(
                                "field '{}' in HAVING must be grouped or aggregated",
                                path.dotted()
                            ),
                        ));
                    }
                }
                Ok((Expr::Column(col), col.kind, path.dotted()))
            }
            Operand::Aggregate(a) => {
                let e = self.aggregate(scope, a)?;
                let kind = match &e {
                    Expr::Aggregate {
                        func: AggFn::Min | AggFn::Max,
                        arg: Some(c),
                    } => c.kind,
                    _ => Kind::Number,
                };
                Ok((e, kind, a.func.keyword().to_string()))
            }
            Operand::Call(c) => {
                let (e, name) = self.grouped_call(scope, c, having, "HAVING")?;
                let kind = e.kind();
                Ok((e, kind, name))
            }
        }
    }

    fn aggregate(&self, scope: &mut Scope<'a>, a: &mosaic_soql::Aggregate) -> MosaicResult<Expr> {
        let func = match a.func {
            AggregateFn::Count => AggFn::Count,
            AggregateFn::CountDistinct => AggFn::CountDistinct,
            AggregateFn::Sum => AggFn::Sum,
            AggregateFn::Avg => AggFn::Avg,
            AggregateFn::Min => AggFn::Min,
            AggregateFn::Max => AggFn::Max,
        };
        let Some(path) = &a.arg else {
            return Ok(Expr::Aggregate { func, arg: None });
        };
        let col = self.column(scope, path, "aggregate")?;
        let ok = match func {
            AggFn::Count => true,
            AggFn::CountDistinct => col.kind != Kind::Opaque,
            AggFn::Sum | AggFn::Avg => col.kind == Kind::Number,
            AggFn::Min | AggFn::Max => {
                !matches!(col.kind, Kind::Opaque | Kind::Boolean | Kind::MultiPicklist)
            }
        };
        if !ok {
            return Err(self.invalid_field(
                path.span,
                format!(
                    "field '{}' does not support aggregate operator {}",
                    path.dotted(),
                    a.func.keyword()
                ),
                &path.dotted(),
            ));
        }
        Ok(Expr::Aggregate {
            func,
            arg: Some(col),
        })
    }

    fn semi_join(&self, sub: &Query) -> MosaicResult<SubSelect> {
        let obj = self.object(&sub.from.name)?;
        let mut scope = Scope::new(obj, sub.from.alias.as_ref());
        let path = match sub.select.as_slice() {
            [SelectItem::Field(p)] => p,
            _ => {
                return Err(self.err(
                    sub.span,
                    ErrorCode::MALFORMED_QUERY,
                    None,
                    "a semi-join selects exactly one Id or lookup field".into(),
                ))
            }
        };
        let column = self.column(&mut scope, path, "select in a semi-join")?;
        if column.kind != Kind::Id {
            return Err(self.invalid_field(
                path.span,
                format!(
                    "a semi-join must select an Id or lookup field, not '{}'",
                    path.dotted()
                ),
                &path.dotted(),
            ));
        }
        let filter = match &sub.where_ {
            Some(c) => Some(self.condition(&mut scope, c, None)?),
            None => None,
        };
        if !scope.rollups.is_empty() {
            return Err(self.invalid_field(
                path.span,
                "roll-up summary fields cannot be used inside a semi-join".into(),
                &path.dotted(),
            ));
        }
        Ok(SubSelect {
            object_id: obj.id.clone(),
            joins: scope.joins,
            column,
            filter,
        })
    }

    fn order(
        &self,
        scope: &mut Scope<'a>,
        q: &Query,
        groups: Option<&[Expr]>,
    ) -> MosaicResult<Vec<SortKey>> {
        let mut keys = Vec::new();
        for k in &q.order_by {
            let expr = match &k.key {
                Operand::Field(path) => {
                    let col = self.column(scope, path, "sort")?;
                    if matches!(col.kind, Kind::Opaque | Kind::MultiPicklist) {
                        return Err(self.invalid_field(
                            path.span,
                            format!(
                                "field '{}' can not be sorted in a query call",
                                path.dotted()
                            ),
                            &path.dotted(),
                        ));
                    }
                    if let Some(g) = groups {
                        if !g.contains(&Expr::Column(col)) {
                            return Err(self.err(
                                path.span,
                                ErrorCode::MALFORMED_QUERY,
                                Some(&path.dotted()),
                                format!(
                                    "ORDER BY field '{}' must be grouped or aggregated",
                                    path.dotted()
                                ),
                            ));
                        }
                    }
                    Expr::Column(col)
                }
                Operand::Aggregate(a) => {
                    if groups.is_none() {
                        return Err(self.err(
                            a.span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "ORDER BY an aggregate needs an aggregate query".into(),
                        ));
                    }
                    self.aggregate(scope, a)?
                }
                Operand::Call(c) => self.grouped_call(scope, c, groups, "ORDER BY")?.0,
            };
            keys.push(SortKey {
                expr,
                desc: k.direction == mosaic_soql::SortDirection::Desc,
                nulls_first: k.effective_nulls() == mosaic_soql::NullsOrder::First,
            });
        }
        Ok(keys)
    }

    // ---- statements ----------------------------------------------------------

    fn top(&self, q: &Query, include_deleted: bool) -> MosaicResult<PlannedQuery> {
        let obj = self.object(&q.from.name)?;
        let normalized = self.normalize(q, obj, true)?;
        let q = &normalized;
        let mut scope = Scope::new(obj, q.from.alias.as_ref());
        let names = q.output_names();
        let mut items = Vec::new();
        let aggregate = q.is_aggregate();
        let mut group_by = Vec::new();
        if aggregate {
            for g in &q.group_by {
                let g = match g {
                    Operand::Field(p) => p,
                    Operand::Call(c) => {
                        let (e, _) = self.date_call(&mut scope, c)?;
                        group_by.push(e);
                        continue;
                    }
                    Operand::Aggregate(a) => {
                        return Err(self.err(
                            a.span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "GROUP BY accepts fields and date functions only".into(),
                        ))
                    }
                };
                let col = self.column(&mut scope, g, "group")?;
                if matches!(col.kind, Kind::Opaque | Kind::MultiPicklist) {
                    return Err(self.invalid_field(
                        g.span,
                        format!("field '{}' can not be grouped in a query call", g.dotted()),
                        &g.dotted(),
                    ));
                }
                group_by.push(Expr::Column(col));
            }
            for (item, out_name) in q.select.iter().zip(&names) {
                match item {
                    SelectItem::Field(p) => {
                        let col = self.column(&mut scope, p, "group")?;
                        let name = match self.resolve(&mut scope, p)? {
                            Resolved::Column { name, .. } => name,
                            _ => out_name.clone(),
                        };
                        let select = scope.add(Expr::Column(col));
                        items.push(OutputItem::Aggregate { name, select });
                    }
                    SelectItem::AliasedField { field, .. } => {
                        let col = self.column(&mut scope, field, "group")?;
                        let select = scope.add(Expr::Column(col));
                        items.push(OutputItem::Aggregate {
                            name: out_name.clone(),
                            select,
                        });
                    }
                    SelectItem::Call { call, .. } => {
                        let (e, _) =
                            self.grouped_call(&mut scope, call, Some(&group_by), "SELECT item")?;
                        let select = scope.add(e);
                        items.push(OutputItem::Aggregate {
                            name: out_name.clone(),
                            select,
                        });
                    }
                    SelectItem::Fields { span, .. } => {
                        return Err(self.err(
                            *span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "FIELDS() is not allowed in aggregate queries".into(),
                        ))
                    }
                    SelectItem::TypeOf(t) => {
                        return Err(self.err(
                            t.span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "TYPEOF is not allowed in aggregate queries".into(),
                        ))
                    }
                    SelectItem::Aggregate(a) => {
                        let e = self.aggregate(&mut scope, a)?;
                        let select = scope.add(e);
                        items.push(OutputItem::Aggregate {
                            name: out_name.clone(),
                            select,
                        });
                    }
                    SelectItem::SubQuery(s) => {
                        return Err(self.err(
                            s.span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "child subqueries are not allowed in aggregate queries".into(),
                        ))
                    }
                }
            }
        } else {
            scope.add(Expr::Column(id_col(0)));
            for item in &q.select {
                match item {
                    SelectItem::Field(p) => items.push(self.output_field(&mut scope, p)?),
                    SelectItem::SubQuery(sub) => {
                        items.push(OutputItem::Child(Box::new(self.child(obj, sub)?)))
                    }
                    SelectItem::Aggregate(a) => {
                        return Err(self.err(
                            a.span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "aggregate in a non-aggregate query".into(),
                        ))
                    }
                    SelectItem::Call { call, .. } if call.func.is_date_fn() => {
                        return Err(self.err(
                            call.span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            format!(
                                "{}() can be selected in aggregate queries only: group by it (GROUP BY {})",
                                call.func.keyword(),
                                call.func.keyword()
                            ),
                        ))
                    }
                    other => {
                        return Err(self.err(
                            other.span(),
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "only fields, child subqueries and field functions can be selected in a non-aggregate query".into(),
                        ))
                    }
                }
            }
        }
        let filter = match &q.where_ {
            Some(c) => Some(self.condition(&mut scope, c, None)?),
            None => None,
        };
        let having = match &q.having {
            Some(c) => Some(self.condition(&mut scope, c, Some(&group_by))?),
            None => None,
        };
        let order_by = self.order(&mut scope, q, aggregate.then_some(group_by.as_slice()))?;
        Ok(PlannedQuery {
            object_id: obj.id.clone(),
            object_api_name: obj.api_name.clone(),
            count_only: q.is_count_only(),
            marks_recent: matches!(q.for_, Some(ForClause::View(_) | ForClause::Reference(_))),
            items,
            plan: QueryPlan {
                object_id: obj.id.clone(),
                joins: scope.joins,
                select: scope.select,
                filter,
                group_by,
                grouping_sets: match q.grouping {
                    Grouping::Plain => GroupingSets::Plain,
                    Grouping::Rollup => GroupingSets::Rollup,
                    Grouping::Cube => GroupingSets::Cube,
                },
                having,
                order_by,
                limit: q.limit.map(u64::from),
                offset: q.offset.map_or(0, u64::from),
                include_deleted,
                aggregate,
                visibility: None,
                rollups: scope.rollups,
            },
        })
    }

    fn output_field(&self, scope: &mut Scope<'a>, p: &FieldPath) -> MosaicResult<OutputItem> {
        Ok(match self.resolve(scope, p)? {
            Resolved::Column {
                col,
                hops,
                name,
                object_id,
            } => {
                let hops = scope.hops(hops);
                OutputItem::Field {
                    hops,
                    name,
                    object_id,
                    select: scope.add(Expr::Column(col)),
                }
            }
            Resolved::Formula {
                hops,
                name,
                object_id,
                id_col,
            } => {
                let hops = scope.hops(hops);
                OutputItem::Formula {
                    hops,
                    name,
                    object_id,
                    id_select: scope.add(Expr::Column(id_col)),
                }
            }
            Resolved::User { hops, field } => OutputItem::User {
                hops: scope.hops(hops),
                field,
            },
        })
    }

    /// A date function call (`CALENDAR_YEAR(CloseDate)`,
    /// `HOUR_IN_DAY(convertTimezone(CreatedDate))`) on a stored date or
    /// datetime column. Returns the expression and the call's text.
    fn date_call(&self, scope: &mut Scope<'a>, c: &FieldCall) -> MosaicResult<(Expr, String)> {
        let func = match c.func {
            FieldFn::CalendarYear => DateFn::CalendarYear,
            FieldFn::CalendarQuarter => DateFn::CalendarQuarter,
            FieldFn::CalendarMonth => DateFn::CalendarMonth,
            FieldFn::DayInMonth => DateFn::DayInMonth,
            FieldFn::DayInWeek => DateFn::DayInWeek,
            FieldFn::DayInYear => DateFn::DayInYear,
            FieldFn::DayOnly => DateFn::DayOnly,
            FieldFn::HourInDay => DateFn::HourInDay,
            FieldFn::WeekInMonth => DateFn::WeekInMonth,
            FieldFn::WeekInYear => DateFn::WeekInYear,
            FieldFn::FiscalYear => DateFn::FiscalYear,
            FieldFn::FiscalQuarter => DateFn::FiscalQuarter,
            FieldFn::FiscalMonth => DateFn::FiscalMonth,
            other => {
                return Err(self.err(
                    c.span,
                    ErrorCode::MALFORMED_QUERY,
                    None,
                    format!(
                        "{}() can only be used around a date function's field or in SELECT",
                        other.keyword()
                    ),
                ))
            }
        };
        let (path, converted) = match c.arg.as_ref() {
            Operand::Field(p) => (p, false),
            Operand::Call(inner) if inner.func == FieldFn::ConvertTimezone => {
                match inner.arg.as_ref() {
                    Operand::Field(p) => (p, true),
                    other => {
                        return Err(self.err(
                            other.span(),
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "convertTimezone() takes a datetime field".into(),
                        ))
                    }
                }
            }
            other => {
                return Err(self.err(
                    other.span(),
                    ErrorCode::MALFORMED_QUERY,
                    None,
                    format!(
                        "{}() takes a date or datetime field, optionally in convertTimezone()",
                        c.func.keyword()
                    ),
                ))
            }
        };
        let col = self.column(scope, path, "use in a date function")?;
        let datetime_only = matches!(func, DateFn::DayOnly | DateFn::HourInDay) || converted;
        let ok = match col.kind {
            Kind::Datetime => true,
            Kind::Date => !datetime_only,
            _ => false,
        };
        if !ok {
            let wanted = if datetime_only {
                "a datetime field"
            } else {
                "a date or datetime field"
            };
            return Err(self.invalid_field(
                path.span,
                format!(
                    "{}() needs {wanted}; '{}' is of type {}",
                    if converted && !matches!(func, DateFn::DayOnly | DateFn::HourInDay) {
                        "convertTimezone"
                    } else {
                        c.func.keyword()
                    },
                    path.dotted(),
                    kind_name(col.kind)
                ),
                &path.dotted(),
            ));
        }
        let zone = converted.then(|| self.ctx.zone.name().to_string());
        Ok((
            Expr::Date(Box::new(DateCall {
                func,
                arg: col,
                zone,
                fiscal_start: self.ctx.fiscal_start_month.clamp(1, 12),
            })),
            format!("{}({})", c.func.keyword(), path.dotted()),
        ))
    }

    /// A date function used to filter, sort or group in an aggregate query
    /// must be one of the GROUP BY keys.
    fn grouped_call(
        &self,
        scope: &mut Scope<'a>,
        c: &FieldCall,
        groups: Option<&[Expr]>,
        what: &str,
    ) -> MosaicResult<(Expr, String)> {
        if c.func == FieldFn::Grouping {
            let key = match c.arg.as_ref() {
                Operand::Field(p) => Expr::Column(self.column(scope, p, "group")?),
                other => {
                    return Err(self.err(
                        other.span(),
                        ErrorCode::MALFORMED_QUERY,
                        None,
                        "GROUPING() takes a GROUP BY ROLLUP / CUBE key".into(),
                    ))
                }
            };
            if !groups.is_some_and(|g| g.contains(&key)) {
                return Err(self.err(
                    c.span,
                    ErrorCode::MALFORMED_QUERY,
                    None,
                    "GROUPING() takes a GROUP BY ROLLUP / CUBE key".into(),
                ));
            }
            return Ok((Expr::Grouping(Box::new(key)), "GROUPING".into()));
        }
        let (e, name) = self.date_call(scope, c)?;
        if let Some(g) = groups {
            if !g.contains(&e) {
                return Err(self.err(
                    c.span,
                    ErrorCode::MALFORMED_QUERY,
                    None,
                    format!("{what} '{name}' must be grouped or aggregated"),
                ));
            }
        }
        Ok((e, name))
    }

    /// Rewrites what maps onto the core grammar and refuses what Mosaic
    /// cannot answer, with Salesforce's error: FIELDS() expanded against
    /// `obj`, identity functions (`toLabel`, `convertCurrency`, `FORMAT`)
    /// unwrapped, `USING SCOPE mine` turned into an owner filter, FOR / WITH
    /// clauses checked.
    fn normalize(&self, q: &Query, obj: &SchemaObject, top: bool) -> MosaicResult<Query> {
        let mut q = q.clone();
        match q.for_ {
            Some(ForClause::Update(span)) => {
                return Err(self.err(
                    span,
                    ErrorCode::MALFORMED_QUERY,
                    None,
                    "FOR UPDATE not allowed in this context: record locking is only available in Apex, not through the API".into(),
                ))
            }
            Some(f @ (ForClause::UpdateTracking(_) | ForClause::UpdateViewstat(_))) => {
                return Err(self.err(
                    f.span(),
                    ErrorCode::MALFORMED_QUERY,
                    None,
                    format!(
                        "{} is only supported on Knowledge articles (KnowledgeArticleVersion), which Mosaic does not have",
                        f.keywords()
                    ),
                ))
            }
            _ => {}
        }
        if let Some(WithClause::DataCategory(_, span)) = &q.with {
            return Err(self.err(
                *span,
                ErrorCode::MALFORMED_QUERY,
                None,
                "WITH DATA CATEGORY is only supported on Knowledge articles and questions, which Mosaic does not have".into(),
            ));
        }
        if let Some(scope) = q.scope.take() {
            match scope.name.to_ascii_lowercase().as_str() {
                "everything" => {}
                "mine" if top => {
                    let Some(user) = &self.ctx.user_id else {
                        return Err(self.err(
                            scope.span,
                            ErrorCode::MALFORMED_QUERY,
                            None,
                            "USING SCOPE mine needs a signed-in user".into(),
                        ));
                    };
                    let owner = Condition::Compare {
                        lhs: Operand::Field(FieldPath {
                            parts: vec![Ident {
                                name: "OwnerId".into(),
                                span: scope.span,
                            }],
                            span: scope.span,
                        }),
                        op: CompareOp::Eq,
                        value: mosaic_soql::Value {
                            literal: Literal::String(user.clone()),
                            span: scope.span,
                        },
                        span: scope.span,
                    };
                    q.where_ = Some(match q.where_.take() {
                        None => owner,
                        Some(Condition::And(mut items)) => {
                            items.push(owner);
                            Condition::And(items)
                        }
                        Some(other) => Condition::And(vec![other, owner]),
                    });
                }
                other => {
                    let why = match other {
                        "delegated" => " (Mosaic has no delegated activities)",
                        "team" => " (Mosaic has no account or opportunity teams)",
                        "my_territory" | "my_team_territory" => {
                            " (Mosaic has no territory management)"
                        }
                        "mine_and_my_groups" => " (Mosaic has no queues)",
                        "scopingrule" => " (Mosaic has no scoping rules)",
                        _ => "",
                    };
                    return Err(self.err(
                        scope.span,
                        ErrorCode::MALFORMED_QUERY,
                        None,
                        format!(
                            "Invalid scope:{} for {}{why}; supported scopes are everything and mine",
                            scope.name, obj.api_name
                        ),
                    ));
                }
            }
        }
        let aggregate = q.is_aggregate();
        let mut select = Vec::with_capacity(q.select.len());
        for item in std::mem::take(&mut q.select) {
            match item {
                SelectItem::Fields { kind, span } => {
                    let path = |name: &str| {
                        SelectItem::Field(FieldPath {
                            parts: vec![Ident {
                                name: name.to_string(),
                                span,
                            }],
                            span,
                        })
                    };
                    if kind != FieldsKind::Custom {
                        select.extend(SysColumn::ALL.iter().map(|c| path(c.api_name())));
                    }
                    if kind != FieldsKind::Standard {
                        select.extend(obj.fields.iter().map(|f| path(&f.api_name)));
                    }
                }
                SelectItem::TypeOf(t) => {
                    let polymorphic_hint = if obj.fields.iter().any(|f| {
                        f.relationship_name
                            .as_deref()
                            .is_some_and(|r| t.field.is(r))
                    }) || USER_RELATIONSHIPS
                        .iter()
                        .any(|(r, _)| t.field.is(r))
                    {
                        format!(
                            "TYPEOF is only allowed on a polymorphic relationship; '{}' on {} always points at one object type (Mosaic has no polymorphic lookups)",
                            t.field.name, obj.api_name
                        )
                    } else {
                        format!(
                            "Didn't understand relationship '{}' in field path: no relationship of {} has that name",
                            t.field.name, obj.api_name
                        )
                    };
                    return Err(self.invalid_field(t.field.span, polymorphic_hint, &t.field.name));
                }
                SelectItem::Call { call, alias } => match unwrap_identity(&call) {
                    Some(Operand::Field(f)) => select.push(match alias {
                        Some(alias) if aggregate => SelectItem::AliasedField { field: f, alias },
                        _ => SelectItem::Field(f),
                    }),
                    Some(Operand::Aggregate(mut a)) => {
                        a.alias = alias;
                        select.push(SelectItem::Aggregate(a));
                    }
                    _ => select.push(SelectItem::Call { call, alias }),
                },
                other => select.push(other),
            }
        }
        q.select = select;
        if let Some(c) = q.where_.as_mut() {
            unwrap_condition(c);
        }
        if let Some(c) = q.having.as_mut() {
            unwrap_condition(c);
        }
        q.order_by
            .iter_mut()
            .for_each(|k: &mut OrderKey| unwrap_operand(&mut k.key));
        Ok(q)
    }

    fn child(&self, parent: &'a SchemaObject, sub: &Query) -> MosaicResult<ChildPlan> {
        let name = &sub.from.name;
        let mut found: Vec<(&'a SchemaObject, &'a SchemaField)> = Vec::new();
        for o in &self.schema.objects {
            for f in &o.fields {
                if f.lookup_object_id.as_deref() == Some(parent.id.as_str()) && f.slot.is_some() {
                    found.push((o, f));
                }
            }
        }
        let by_rel: Vec<_> = found
            .iter()
            .filter(|(_, f)| {
                f.child_relationship_name
                    .as_deref()
                    .is_some_and(|r| name.is(r))
            })
            .collect();
        let chosen = match by_rel.as_slice() {
            [one] => Some(**one),
            _ => {
                // Without a child relationship name: the child object's name,
                // when exactly one of its lookups points at the parent.
                let by_obj: Vec<_> = found
                    .iter()
                    .filter(|(o, f)| f.child_relationship_name.is_none() && name.is(&o.api_name))
                    .collect();
                match by_obj.as_slice() {
                    [one] => Some(**one),
                    _ => None,
                }
            }
        };
        let (obj, link_field) = chosen.ok_or_else(|| {
            self.err(
                name.span,
                ErrorCode::INVALID_TYPE,
                None,
                format!(
                    "Didn't understand relationship '{}' in FROM part of query call: no child relationship of '{}' has that name",
                    name.name, parent.api_name
                ),
            )
        })?;
        let slot = link_field
            .slot
            .ok_or_else(|| MosaicError::internal("lookup without slot"))?;
        if let Some(qualifier) = &sub.from.qualifier {
            if !qualifier.is(&parent.api_name) {
                return Err(self.err(
                    qualifier.span,
                    ErrorCode::INVALID_TYPE,
                    None,
                    format!(
                        "Didn't understand relationship '{}.{}' in FROM part of query call: the outer query is on '{}'",
                        qualifier.name, name.name, parent.api_name
                    ),
                ));
            }
        }
        let normalized = self.normalize(sub, obj, false)?;
        let sub = &normalized;
        let mut scope = Scope::new(obj, sub.from.alias.as_ref());
        scope.add(Expr::Column(id_col(0)));
        let link = ColumnRef {
            source: 0,
            column: Column::Slot(slot),
            kind: Kind::Id,
            pivot: Some(Pivot::Index),
        };
        let link_select = scope.add(Expr::Column(link));
        let mut items = Vec::new();
        for item in &sub.select {
            match item {
                SelectItem::Field(p) => items.push(self.output_field(&mut scope, p)?),
                other => {
                    return Err(self.err(
                        other.span(),
                        ErrorCode::MALFORMED_QUERY,
                        None,
                        "a child subquery selects fields only".into(),
                    ))
                }
            }
        }
        if !sub.group_by.is_empty() || sub.having.is_some() {
            return Err(self.err(
                sub.span,
                ErrorCode::MALFORMED_QUERY,
                None,
                "GROUP BY is not allowed in a child subquery".into(),
            ));
        }
        let filter = match &sub.where_ {
            Some(c) => Some(self.condition(&mut scope, c, None)?),
            None => None,
        };
        let order_by = self.order(&mut scope, sub, None)?;
        Ok(ChildPlan {
            name: link_field
                .child_relationship_name
                .clone()
                .unwrap_or_else(|| obj.api_name.clone()),
            object_api_name: obj.api_name.clone(),
            plan: QueryPlan {
                object_id: obj.id.clone(),
                joins: scope.joins,
                select: scope.select,
                filter,
                group_by: Vec::new(),
                grouping_sets: GroupingSets::Plain,
                having: None,
                order_by,
                limit: None,
                offset: 0,
                include_deleted: false,
                aggregate: false,
                visibility: None,
                rollups: scope.rollups,
            },
            link,
            link_select,
            items,
            limit: sub.limit.map(u64::from),
            offset: sub.offset.map_or(0, u64::from),
        })
    }
}

/// `toLabel(f)`, `convertCurrency(f)`, `FORMAT(f)`, `FORMAT(MIN(f))`,
/// `FORMAT(convertCurrency(f))`: what they apply to. Labels are the stored
/// values, Mosaic has one currency, and values are already formatted as
/// record reads format them. `None` for anything else (date functions, …).
fn unwrap_identity(c: &FieldCall) -> Option<Operand> {
    if !matches!(
        c.func,
        FieldFn::ToLabel | FieldFn::ConvertCurrency | FieldFn::Format
    ) {
        return None;
    }
    match c.arg.as_ref() {
        Operand::Call(inner) => unwrap_identity(inner),
        other => Some(other.clone()),
    }
}

fn unwrap_operand(op: &mut Operand) {
    if let Operand::Call(c) = op {
        if let Some(inner) = unwrap_identity(c) {
            *op = inner;
        }
    }
}

fn unwrap_condition(c: &mut Condition) {
    match c {
        Condition::And(items) | Condition::Or(items) => items.iter_mut().for_each(unwrap_condition),
        Condition::Not(inner) => unwrap_condition(inner),
        Condition::Compare { lhs, .. }
        | Condition::Like { lhs, .. }
        | Condition::In { lhs, .. }
        | Condition::Includes { lhs, .. } => unwrap_operand(lhs),
    }
}

fn cmp_op(op: CompareOp) -> CmpOp {
    match op {
        CompareOp::Eq => CmpOp::Eq,
        CompareOp::Ne => CmpOp::Ne,
        CompareOp::Lt => CmpOp::Lt,
        CompareOp::Le => CmpOp::Le,
        CompareOp::Gt => CmpOp::Gt,
        CompareOp::Ge => CmpOp::Ge,
    }
}
