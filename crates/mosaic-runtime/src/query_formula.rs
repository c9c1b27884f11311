//! Filtering and sorting on formula fields of the queried object, in the
//! engine: SQL cannot see formula values (they are computed after fetch).
//!
//! The WHERE is split at its top-level AND: conjuncts without formula
//! references run in SQL, which selects the candidate ids (at most
//! [`MAX_QUERY_ROWS`]); the conjuncts with formula references are evaluated
//! here on values computed in batches, with SOQL semantics (the same the SQL
//! path has: two-valued logic, case-insensitive text, `!=` includes nulls).
//! Plain (formula-free) sub-conditions inside those conjuncts (`Score__c > 5
//! OR Name = 'x'`) are still answered by SQL, one id query each, so their
//! semantics are exactly SQL's. ORDER BY is then applied here (ties by Id),
//! then OFFSET / LIMIT, and the ordered ids go through the usual snapshot /
//! cursor / render path.

use crate::platform::Platform;
use crate::query::{batch_of, text, QueryOptions, QueryResult, MAX_QUERY_ROWS};
use crate::records::Caller;
use mosaic_soql::{
    CompareOp, Condition, FieldPath, Ident, InValues, LikePart, Literal, NullsOrder, Operand,
    OrderKey, ParseError, Query, SelectItem, SortDirection, Span,
};
use mosaic_store::plan::{plan_parsed, OutputItem, PlanContext, PlannedQuery, Schema};
use mosaic_store::query_store::Restrict;
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult, Value};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

/// Records loaded and evaluated per batch.
const EVAL_BATCH: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Date,
    Datetime,
    Boolean,
    Time,
    Opaque,
}

fn kind_of(t: Option<DataType>) -> Kind {
    use DataType::*;
    match t {
        Some(Text | Textarea | Email | Phone | Url | Picklist | AutoNumber) => Kind::Text,
        Some(Number | Currency | Percent) => Kind::Number,
        Some(Date) => Kind::Date,
        Some(Datetime) => Kind::Datetime,
        Some(Boolean) => Kind::Boolean,
        Some(Time) => Kind::Time,
        _ => Kind::Opaque,
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Text | Kind::Time => "string",
        Kind::Number => "number",
        Kind::Date => "date",
        Kind::Datetime => "dateTime",
        Kind::Boolean => "boolean",
        Kind::Opaque => "opaque",
    }
}

/// A formula field of the root object.
struct FormulaField {
    name: String,
    kind: Kind,
}

/// One test on a formula value.
enum Leaf {
    IsNull {
        negated: bool,
    },
    /// `value op literal`: `!=` includes nulls, the others exclude them.
    Cmp(CompareOp, Value),
    /// `start <= value < end` (a date literal).
    Range(Value, Value),
    Like(Vec<LikePart>),
}

/// An engine-side condition.
enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    /// A formula-free sub-condition, answered by SQL: index of its id set.
    Plain(usize),
    Test {
        field: usize,
        leaf: Leaf,
    },
}

enum Lit {
    Null,
    Value(Value),
    Range(Value, Value),
}

/// Lowering of the query for the engine path.
struct Lowering<'a> {
    src: &'a str,
    ctx: &'a PlanContext,
    alias: Option<&'a Ident>,
    formulas: &'a [FormulaField],
    /// Formula fields the engine needs (indexes into `formulas`).
    used: Vec<usize>,
    plain: Vec<Condition>,
}

impl Lowering<'_> {
    fn err(&self, span: Span, code: ErrorCode, field: &str, msg: String) -> MosaicError {
        MosaicError {
            code,
            message: ParseError::at(self.src, span.start, msg).render(self.src),
            fields: vec![field.to_string()],
        }
    }

    /// The root formula field a path names (`Score__c`, `a.Score__c`).
    fn formula(&self, path: &FieldPath) -> Option<usize> {
        let name = match path.parts.as_slice() {
            [f] => f,
            [a, f] if self.alias.is_some_and(|al| a.is(&al.name)) => f,
            _ => return None,
        };
        self.formulas.iter().position(|f| name.is(&f.name))
    }

    fn operand_formula(&self, op: &Operand) -> Option<usize> {
        match op {
            Operand::Field(p) => self.formula(p),
            Operand::Aggregate(_) | Operand::Call(_) => None,
        }
    }

    fn has_ref(&self, c: &Condition) -> bool {
        match c {
            Condition::And(v) | Condition::Or(v) => v.iter().any(|c| self.has_ref(c)),
            Condition::Not(c) => self.has_ref(c),
            Condition::Compare { lhs, .. }
            | Condition::Like { lhs, .. }
            | Condition::In { lhs, .. }
            | Condition::Includes { lhs, .. } => self.operand_formula(lhs).is_some(),
        }
    }

    fn use_field(&mut self, i: usize) -> usize {
        match self.used.iter().position(|u| *u == i) {
            Some(p) => p,
            None => {
                self.used.push(i);
                self.used.len() - 1
            }
        }
    }

    fn lit(&self, kind: Kind, field: &str, v: &mosaic_soql::Value) -> MosaicResult<Lit> {
        let wrong = || {
            self.err(
                v.span,
                ErrorCode::INVALID_FIELD,
                field,
                format!(
                    "value of filter criterion for field '{field}' must be of type {}{}",
                    kind_name(kind),
                    match kind {
                        Kind::Text | Kind::Time => " and should be enclosed in quotes",
                        _ => " and should not be enclosed in quotes",
                    }
                ),
            )
        };
        let range_err = || {
            self.err(
                v.span,
                ErrorCode::INVALID_FIELD,
                field,
                "date literal out of range".into(),
            )
        };
        Ok(match (&v.literal, kind) {
            (Literal::Null, _) => Lit::Null,
            (_, Kind::Opaque) => {
                return Err(self.err(
                    v.span,
                    ErrorCode::INVALID_FIELD,
                    field,
                    format!("field '{field}' can not be filtered in a query call"),
                ))
            }
            (Literal::String(s), Kind::Text) => Lit::Value(Value::Text(s.clone())),
            (Literal::String(s), Kind::Time) => {
                let t = ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"]
                    .iter()
                    .find_map(|f| {
                        chrono::NaiveTime::parse_from_str(s.trim_end_matches('Z'), f).ok()
                    })
                    .ok_or_else(wrong)?;
                Lit::Value(Value::Time(t))
            }
            (Literal::Number(d), Kind::Number) => Lit::Value(Value::Number(*d)),
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
            _ => return Err(wrong()),
        })
    }

    /// `formula op literal`, as the planner lowers it for SQL.
    fn compare(
        &self,
        field: usize,
        kind: Kind,
        op: CompareOp,
        lit: Lit,
        span: Span,
        name: &str,
    ) -> MosaicResult<Pred> {
        if kind == Kind::Boolean && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Err(self.err(
                span,
                ErrorCode::MALFORMED_QUERY,
                name,
                format!(
                    "invalid operator on {} field '{name}': only = and != are allowed",
                    kind_name(kind)
                ),
            ));
        }
        let test = |leaf| Pred::Test { field, leaf };
        Ok(match (lit, op) {
            (Lit::Null, CompareOp::Eq) => test(Leaf::IsNull { negated: false }),
            (Lit::Null, CompareOp::Ne) => test(Leaf::IsNull { negated: true }),
            (Lit::Null, _) => {
                return Err(self.err(
                    span,
                    ErrorCode::MALFORMED_QUERY,
                    name,
                    "null can only be compared with = or !=".into(),
                ))
            }
            (Lit::Value(v), op) => test(Leaf::Cmp(op, v)),
            (Lit::Range(s, e), CompareOp::Eq) => test(Leaf::Range(s, e)),
            (Lit::Range(s, e), CompareOp::Ne) => Pred::Not(Box::new(test(Leaf::Range(s, e)))),
            (Lit::Range(s, _), CompareOp::Lt) => test(Leaf::Cmp(CompareOp::Lt, s)),
            (Lit::Range(_, e), CompareOp::Le) => test(Leaf::Cmp(CompareOp::Lt, e)),
            (Lit::Range(_, e), CompareOp::Gt) => test(Leaf::Cmp(CompareOp::Ge, e)),
            (Lit::Range(s, _), CompareOp::Ge) => test(Leaf::Cmp(CompareOp::Ge, s)),
        })
    }

    /// Lowers a condition that references formula fields.
    fn pred(&mut self, c: &Condition) -> MosaicResult<Pred> {
        if !self.has_ref(c) {
            self.plain.push(c.clone());
            return Ok(Pred::Plain(self.plain.len() - 1));
        }
        match c {
            Condition::And(v) => Ok(Pred::And(
                v.iter()
                    .map(|c| self.pred(c))
                    .collect::<MosaicResult<_>>()?,
            )),
            Condition::Or(v) => Ok(Pred::Or(
                v.iter()
                    .map(|c| self.pred(c))
                    .collect::<MosaicResult<_>>()?,
            )),
            Condition::Not(c) => Ok(Pred::Not(Box::new(self.pred(c)?))),
            Condition::Compare {
                lhs,
                op,
                value,
                span,
            } => {
                let fi = self.operand_formula(lhs).unwrap_or_default();
                let (name, kind) = (self.formulas[fi].name.clone(), self.formulas[fi].kind);
                let lit = self.lit(kind, &name, value)?;
                let field = self.use_field(fi);
                self.compare(field, kind, *op, lit, *span, &name)
            }
            Condition::Like { lhs, pattern, span } => {
                let fi = self.operand_formula(lhs).unwrap_or_default();
                let (name, kind) = (self.formulas[fi].name.clone(), self.formulas[fi].kind);
                if kind != Kind::Text {
                    return Err(self.err(
                        *span,
                        ErrorCode::INVALID_FIELD,
                        &name,
                        format!(
                            "invalid operator on field '{name}': LIKE applies to text fields only"
                        ),
                    ));
                }
                let parts = pattern
                    .parts
                    .iter()
                    .map(|p| match p {
                        LikePart::Text(t) => LikePart::Text(t.to_lowercase()),
                        other => other.clone(),
                    })
                    .collect();
                Ok(Pred::Test {
                    field: self.use_field(fi),
                    leaf: Leaf::Like(parts),
                })
            }
            Condition::In {
                lhs,
                values,
                negated,
                span,
            } => {
                let fi = self.operand_formula(lhs).unwrap_or_default();
                let (name, kind) = (self.formulas[fi].name.clone(), self.formulas[fi].kind);
                let InValues::List(list) = values else {
                    return Err(self.err(
                        *span,
                        ErrorCode::INVALID_FIELD,
                        &name,
                        format!("formula field '{name}' cannot be used with IN (SELECT …): a semi-join needs an Id or lookup field"),
                    ));
                };
                let field = self.use_field(fi);
                let mut any = Vec::new();
                for v in list {
                    let lit = self.lit(kind, &name, v)?;
                    any.push(self.compare(field, kind, CompareOp::Eq, lit, v.span, &name)?);
                }
                let any = Pred::Or(any);
                Ok(if *negated {
                    Pred::Not(Box::new(any))
                } else {
                    any
                })
            }
            Condition::Includes { lhs, span, .. } => {
                let fi = self.operand_formula(lhs).unwrap_or_default();
                let name = self.formulas[fi].name.clone();
                Err(self.err(
                    *span,
                    ErrorCode::INVALID_FIELD,
                    &name,
                    format!(
                        "INCLUDES / EXCLUDES apply to multi-select picklists only, not '{name}'"
                    ),
                ))
            }
        }
    }
}

/// Compares two values as SOQL does (text case-insensitively); `None` when
/// they are of different types.
fn cmp_values(a: &Value, b: &Value) -> Option<Ordering> {
    Some(match (a, b) {
        (Value::Text(x), Value::Text(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Number(x), Value::Number(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Datetime(x), Value::Datetime(y)) => x.cmp(y),
        (Value::Boolean(x), Value::Boolean(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        _ => return None,
    })
}

/// SQL LIKE on lower-cased text: `_` one character, `%` any run. Greedy with
/// backtracking to the last `%` only: O(text × pattern), whatever the pattern.
fn like(text: &[char], parts: &[LikePart]) -> bool {
    enum T {
        C(char),
        One,
        Many,
    }
    let mut pat = Vec::new();
    for part in parts {
        match part {
            LikePart::Text(s) => pat.extend(s.chars().map(T::C)),
            LikePart::AnyChar => pat.push(T::One),
            LikePart::AnyString => pat.push(T::Many),
        }
    }
    let (mut t, mut p) = (0, 0);
    // After the last `%`: (pattern position, text position it resumes from).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(T::C(c)) if *c == text[t] => {
                t += 1;
                p += 1;
                continue;
            }
            Some(T::One) => {
                t += 1;
                p += 1;
                continue;
            }
            Some(T::Many) => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|x| matches!(x, T::Many))
}

fn test_leaf(v: &Value, leaf: &Leaf) -> bool {
    match leaf {
        Leaf::IsNull { negated } => v.is_null() != *negated,
        Leaf::Cmp(op, lit) => {
            if v.is_null() {
                return *op == CompareOp::Ne;
            }
            let ord = cmp_values(v, lit);
            match op {
                CompareOp::Eq => ord == Some(Ordering::Equal),
                CompareOp::Ne => ord != Some(Ordering::Equal),
                CompareOp::Lt => ord == Some(Ordering::Less),
                CompareOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                CompareOp::Gt => ord == Some(Ordering::Greater),
                CompareOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            }
        }
        Leaf::Range(s, e) => {
            !v.is_null()
                && matches!(cmp_values(v, s), Some(Ordering::Greater | Ordering::Equal))
                && cmp_values(v, e) == Some(Ordering::Less)
        }
        Leaf::Like(parts) => match v {
            Value::Text(s) => {
                let chars: Vec<char> = s.to_lowercase().chars().collect();
                like(&chars, parts)
            }
            _ => false,
        },
    }
}

fn eval(p: &Pred, id: &str, values: &[Value], plain: &[HashSet<String>]) -> bool {
    match p {
        Pred::And(v) => v.iter().all(|p| eval(p, id, values, plain)),
        Pred::Or(v) => v.iter().any(|p| eval(p, id, values, plain)),
        Pred::Not(p) => !eval(p, id, values, plain),
        Pred::Plain(i) => plain.get(*i).is_some_and(|s| s.contains(id)),
        Pred::Test { field, leaf } => test_leaf(values.get(*field).unwrap_or(&Value::Null), leaf),
    }
}

/// One ORDER BY key of the engine sort.
enum SortSource {
    /// Index into the evaluated formula values.
    Formula(usize),
    /// Index into the candidate query's row, and whether text compares lower-cased.
    Column { select: usize, lower: bool },
}

struct SortSpec {
    source: SortSource,
    desc: bool,
    nulls_first: bool,
}

fn sort_cmp(a: &Value, b: &Value, lower: bool) -> Ordering {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) if lower => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        _ => cmp_values(a, b).unwrap_or(Ordering::Equal),
    }
}

fn id_path(span: Span) -> FieldPath {
    FieldPath {
        parts: vec![Ident {
            name: "Id".into(),
            span,
        }],
        span,
    }
}

fn and_of(mut conds: Vec<Condition>) -> Option<Condition> {
    match conds.len() {
        0 => None,
        1 => conds.pop(),
        _ => Some(Condition::And(conds)),
    }
}

impl Platform {
    /// Runs `q` with engine-side formula filters / sorts; `None` when its
    /// WHERE and ORDER BY reference no formula field of the queried object
    /// (the plain SQL path then runs).
    pub(crate) async fn query_formula_path(
        &self,
        c: &Caller,
        soql: &str,
        opts: QueryOptions,
        schema: &Schema,
        ctx: &PlanContext,
    ) -> MosaicResult<Option<QueryResult>> {
        let Ok(q) = mosaic_soql::parse_query(soql) else {
            return Ok(None);
        };
        let Some(root) = schema.by_name(&q.from.name.name) else {
            return Ok(None);
        };
        // Cheap check first, from the schema: any formula field referenced?
        let mut formulas: Vec<FormulaField> = root
            .fields
            .iter()
            .filter(|f| f.data_type == DataType::Formula)
            .map(|f| FormulaField {
                name: f.api_name.clone(),
                kind: Kind::Opaque,
            })
            .collect();
        if formulas.is_empty() {
            return Ok(None);
        }
        let conjuncts: Vec<Condition> = match &q.where_ {
            Some(Condition::And(v)) => v.clone(),
            Some(c) => vec![c.clone()],
            None => Vec::new(),
        };
        let refs = |formulas: &[FormulaField]| {
            let low = Lowering {
                src: soql,
                ctx,
                alias: q.from.alias.as_ref(),
                formulas,
                used: Vec::new(),
                plain: Vec::new(),
            };
            let where_ref = conjuncts.iter().any(|c| low.has_ref(c));
            let order_ref = q
                .order_by
                .iter()
                .find_map(|k| low.operand_formula(&k.key).map(|i| (i, k.span)));
            (where_ref, order_ref)
        };
        let (where_ref, order_ref) = refs(&formulas);
        if !where_ref && order_ref.is_none() {
            return Ok(None);
        }
        // Return types come from the full definitions.
        let obj = self.meta.object_by_id(&c.tenant_id, &root.id).await?;
        for f in &mut formulas {
            f.kind = kind_of(obj.field(&f.name).and_then(|d| d.formula_return_type));
        }
        let mut low = Lowering {
            src: soql,
            ctx,
            alias: q.from.alias.as_ref(),
            formulas: &formulas,
            used: Vec::new(),
            plain: Vec::new(),
        };
        if q.is_aggregate() {
            let span = order_ref
                .map(|(_, s)| s)
                .unwrap_or_else(|| q.where_.as_ref().map(condition_span).unwrap_or(q.from.span));
            let name = order_ref
                .map(|(i, _)| formulas[i].name.clone())
                .unwrap_or_default();
            return Err(low.err(
                span,
                ErrorCode::INVALID_FIELD,
                &name,
                "formula fields cannot be used to filter or sort an aggregate query (COUNT(), GROUP BY): formula fields are filtered and sorted after fetch, in non-aggregate queries only".into(),
            ));
        }
        // Split the WHERE.
        let mut pushed = Vec::new();
        let mut engine = Vec::new();
        for cj in conjuncts {
            if low.has_ref(&cj) {
                engine.push(low.pred(&cj)?);
            } else {
                pushed.push(cj);
            }
        }
        // Sort keys: formulas here, stored fields selected by the candidate query.
        let mut cand_select = vec![SelectItem::Field(id_path(q.from.span))];
        let mut plain_order: Vec<OrderKey> = Vec::new();
        let mut sorts = Vec::new();
        for k in &q.order_by {
            let source = match low.operand_formula(&k.key) {
                Some(fi) => {
                    if formulas[fi].kind == Kind::Opaque {
                        return Err(low.err(
                            k.span,
                            ErrorCode::INVALID_FIELD,
                            &formulas[fi].name,
                            format!(
                                "field '{}' can not be sorted in a query call",
                                formulas[fi].name
                            ),
                        ));
                    }
                    SortSource::Formula(low.use_field(fi))
                }
                None => {
                    let Operand::Field(p) = &k.key else {
                        // The planner reports an aggregate in ORDER BY.
                        plain_order.push(k.clone());
                        continue;
                    };
                    cand_select.push(SelectItem::Field(p.clone()));
                    plain_order.push(k.clone());
                    SortSource::Column {
                        select: cand_select.len() - 1,
                        lower: false,
                    }
                }
            };
            sorts.push(SortSpec {
                source,
                desc: k.direction == SortDirection::Desc,
                nulls_first: k.effective_nulls() == NullsOrder::First,
            });
        }
        let base =
            |select: Vec<SelectItem>, where_: Option<Condition>, order: Vec<OrderKey>| Query {
                select,
                from: q.from.clone(),
                scope: q.scope.clone(),
                with: q.with.clone(),
                where_,
                group_by: Vec::new(),
                grouping: mosaic_soql::Grouping::Plain,
                having: None,
                order_by: order,
                limit: None,
                offset: None,
                for_: q.for_,
                span: q.span,
            };
        // The render plan: the SELECT list, rows fetched by id.
        let render = Arc::new(plan_parsed(soql, &render_query(&q), schema, ctx)?);
        // The candidate query (validates the pushed conjuncts and plain sort keys).
        let cand = plan_parsed(
            soql,
            &base(cand_select, and_of(pushed.clone()), plain_order),
            schema,
            ctx,
        )?;
        // Text sort keys compare lower-cased, as the SQL path does.
        let mut selects = Vec::new();
        for (i, item) in cand.items.iter().enumerate() {
            let (sel, lower) = match item {
                OutputItem::Field {
                    select,
                    name,
                    object_id,
                    ..
                } => {
                    let lower = name.eq_ignore_ascii_case("Name")
                        || schema
                            .by_id(object_id)
                            .and_then(|o| o.field(name))
                            .is_some_and(|f| kind_of(Some(f.data_type)) == Kind::Text);
                    (*select, lower)
                }
                _ => (usize::MAX, false),
            };
            if i > 0 {
                selects.push((sel, lower));
            }
        }
        let mut col_no = 0;
        for s in &mut sorts {
            if let SortSource::Column { select, lower } = &mut s.source {
                (*select, *lower) = selects.get(col_no).copied().unwrap_or((usize::MAX, false));
                col_no += 1;
            }
        }
        let mut cand_plan = cand.plan.clone();
        cand_plan.order_by.clear();
        let limit_msg = |e: MosaicError| {
            if e.code == ErrorCode::LIMIT_EXCEEDED {
                MosaicError::new(
                    ErrorCode::LIMIT_EXCEEDED,
                    format!("filters and sorts on formula fields are applied after fetch, to at most {MAX_QUERY_ROWS} rows selected by the other conditions; this query's other conditions match more: add a selective filter on stored fields"),
                )
            } else {
                e
            }
        };
        let candidates = self
            .run_plan(
                c,
                &cand_plan,
                Restrict::None,
                MAX_QUERY_ROWS,
                MAX_QUERY_ROWS,
            )
            .await
            .map_err(limit_msg)?;
        // Formula-free sub-conditions of the engine conjuncts: one id query each.
        let mut plain_sets = Vec::new();
        for cond in low.plain.clone() {
            let mut all = pushed.clone();
            all.push(cond);
            let p = plan_parsed(
                soql,
                &base(
                    vec![SelectItem::Field(id_path(q.from.span))],
                    and_of(all),
                    Vec::new(),
                ),
                schema,
                ctx,
            )?;
            let rows = self
                .run_plan(c, &p.plan, Restrict::None, 0, MAX_QUERY_ROWS)
                .await
                .map_err(limit_msg)?;
            plain_sets.push(rows.rest_ids.into_iter().collect::<HashSet<String>>());
        }
        // Evaluate formulas in batches, filter.
        let names: Vec<String> = low.used.iter().map(|i| formulas[*i].name.clone()).collect();
        let mut kept: Vec<(String, Vec<Value>, Vec<Value>)> = Vec::new();
        for chunk in candidates.rows.chunks(EVAL_BATCH) {
            let ids: Vec<String> = chunk
                .iter()
                .filter_map(|r| r.first().and_then(text).map(str::to_string))
                .collect();
            let computed = self.formula_values(c, &obj, &ids, &names).await?;
            for row in chunk {
                let Some(id) = row.first().and_then(text) else {
                    continue;
                };
                let vals = computed
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| vec![Value::Null; names.len()]);
                if engine.iter().all(|p| eval(p, id, &vals, &plain_sets)) {
                    kept.push((id.to_string(), vals, row.clone()));
                }
            }
        }
        // Sort: every key, then Id.
        kept.sort_by(|a, b| {
            for s in &sorts {
                let (x, y, lower) = match s.source {
                    SortSource::Formula(i) => (&a.1[i], &b.1[i], true),
                    SortSource::Column { select, lower } => (
                        a.2.get(select).unwrap_or(&Value::Null),
                        b.2.get(select).unwrap_or(&Value::Null),
                        lower,
                    ),
                };
                let ord = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if s.nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if s.nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, false) => {
                        let o = sort_cmp(x, y, lower);
                        if s.desc {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            a.0.cmp(&b.0)
        });
        let offset = q.offset.map_or(0, |o| o as usize);
        let limit = q.limit.map_or(usize::MAX, |l| l as usize);
        let ids: Vec<String> = kept
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|k| k.0)
            .collect();
        let batch = batch_of(&opts);
        let origin = crate::query::CursorOrigin {
            soql: soql.to_string(),
            include_deleted: opts.include_deleted,
            chosen_by_engine: true,
        };
        self.snapshot_result(c, render, origin, ids, batch)
            .await
            .map(Some)
    }
}

fn condition_span(c: &Condition) -> Span {
    match c {
        Condition::And(v) | Condition::Or(v) => v
            .iter()
            .map(condition_span)
            .reduce(|a, b| a.to(b))
            .unwrap_or_default(),
        Condition::Not(c) => condition_span(c),
        Condition::Compare { span, .. }
        | Condition::Like { span, .. }
        | Condition::In { span, .. }
        | Condition::Includes { span, .. } => *span,
    }
}

/// `q` with its SELECT list alone: rows chosen in the engine are fetched
/// by id with it, and rendered in the engine's order.
fn render_query(q: &Query) -> Query {
    Query {
        select: q.select.clone(),
        from: q.from.clone(),
        scope: q.scope.clone(),
        with: q.with.clone(),
        where_: None,
        group_by: Vec::new(),
        grouping: mosaic_soql::Grouping::Plain,
        having: None,
        order_by: Vec::new(),
        limit: None,
        offset: None,
        for_: q.for_,
        span: q.span,
    }
}

/// The render plan of `soql` (see [`render_query`]): how another instance
/// fetches the next batches of a cursor whose ids the engine chose.
pub(crate) fn render_plan(
    soql: &str,
    schema: &Schema,
    ctx: &PlanContext,
) -> MosaicResult<PlannedQuery> {
    let q = mosaic_soql::parse_query(soql)
        .map_err(|e| MosaicError::new(ErrorCode::MALFORMED_QUERY, format!("query cursor: {e}")))?;
    plan_parsed(soql, &render_query(&q), schema, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> Vec<LikePart> {
        s.chars()
            .map(|c| match c {
                '%' => LikePart::AnyString,
                '_' => LikePart::AnyChar,
                c => LikePart::Text(c.to_string()),
            })
            .collect()
    }

    #[test]
    fn like_matches_sql() {
        let m = |t: &str, p: &str| like(&t.chars().collect::<Vec<_>>(), &pat(p));
        assert!(m("gold", "g%"));
        assert!(m("gold", "%ld"));
        assert!(m("gold", "g__d"));
        assert!(!m("gold", "g_d"));
        assert!(m("", "%"));
        assert!(!m("", "_"));
        assert!(m("a%b", "a%b"));
        assert!(m("abcabd", "%abd"));
        assert!(m("mississippi", "%iss%ppi"));
        assert!(!m("mississippi", "%iss%ppx"));
        assert!(m("ab", "a%%b"));
        let long: Vec<char> = "a".repeat(2000).chars().collect();
        assert!(!like(&long, &pat(&format!("{}b", "%a".repeat(30)))));
    }
}
