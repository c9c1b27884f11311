//! SQLite implementation of [`QueryStore`]: turns a [`QueryPlan`] into one
//! parameterized statement over `object_records` and its pivot tables, plus
//! the SQL functions that keep SOQL's semantics exact (Unicode lower-casing,
//! multi-picklist tests, exact decimal SUM / AVG over deckey text).
//!
//! **Invariant:** every literal is a bound parameter; the only identifiers
//! spliced into SQL are flex and system column names from closed sets and
//! aliases this module makes up. Every statement carries `tenant_id = ?` for
//! each row source (asserted in debug builds).

use crate::query_store::*;
use crate::sharing::{RowAccess, Visibility};
use crate::sqlite::map_sql;
use crate::sqlite_meta::parse_ts;
use crate::sqlite_records::{decode, index_key, SqliteRecordStore};
use async_trait::async_trait;
use mosaic_types::value::{format_date, format_datetime};
use mosaic_types::{deckey, ErrorCode, FlexSlot, MosaicError, MosaicResult, SlotPool, Value};
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection};
use rust_decimal::Decimal;
use std::fmt::Write as _;
use std::sync::Arc;

/// A statement under construction: text and its bound parameters.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<SqlValue>,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
    fn bind(&mut self, v: SqlValue) {
        self.text.push('?');
        self.params.push(v);
    }
    fn bind_text(&mut self, s: &str) {
        self.bind(SqlValue::Text(s.to_string()));
    }
}

/// Alias of row source `source` under `prefix` (`r`, `rj1`, `s0`, `s0j2`, …).
fn alias(prefix: &str, source: usize) -> String {
    if source == 0 {
        prefix.to_string()
    } else {
        format!("{prefix}j{source}")
    }
}

fn raw_col(prefix: &str, c: &ColumnRef) -> String {
    match c.column {
        Column::Sys(s) => format!("{}.{}", alias(prefix, c.source), s.column()),
        Column::Slot(s) => format!("{}.{}", alias(prefix, c.source), s.column()),
        // A column of the root's wrapping row source (see `root_source`).
        Column::Rollup(i) => format!("{}.ru{i}", alias(prefix, c.source)),
    }
}

/// A column as compared: text lower-cased.
fn cmp_col(prefix: &str, c: &ColumnRef) -> String {
    match c.kind {
        Kind::Text => format!("mosaic_lower({})", raw_col(prefix, c)),
        Kind::MultiPicklist => format!("mosaic_mp_norm({})", raw_col(prefix, c)),
        _ => raw_col(prefix, c),
    }
}

fn agg_sql(prefix: &str, func: AggFn, arg: Option<&ColumnRef>) -> String {
    let a = arg
        .map(|c| raw_col(prefix, c))
        .unwrap_or_else(|| "*".into());
    match func {
        AggFn::Count => format!("COUNT({a})"),
        AggFn::CountDistinct => format!("COUNT(DISTINCT {a})"),
        AggFn::Sum => format!("mosaic_dec_sum({a})"),
        AggFn::Avg => format!("mosaic_dec_avg({a})"),
        AggFn::Min => format!("MIN({a})"),
        AggFn::Max => format!("MAX({a})"),
    }
}

/// A date function: evaluated by `mosaic_datefn` (in Rust, time zones with
/// their daylight saving rules). The zone is a literal (a checked
/// `chrono_tz` name) so SELECT, GROUP BY and ORDER BY spell one expression.
fn date_sql(prefix: &str, c: &DateCall) -> String {
    let zone = match &c.zone {
        Some(z) if zone_name_ok(z) => format!("'{z}'"),
        _ => "NULL".into(),
    };
    format!(
        "mosaic_datefn({}, {}, {zone}, {})",
        c.func.code(),
        raw_col(prefix, &c.arg),
        c.fiscal_start
    )
}

/// A time zone name safe to inline in SQL (as every `chrono_tz` name is).
pub fn zone_name_ok(z: &str) -> bool {
    !z.is_empty()
        && z.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '/' | '_' | '+' | '-'))
}

/// `mosaic_datefn(code, value, zone, fiscal_start)`: a date function of a
/// stored date (`YYYY-MM-DD`) or datetime (RFC 3339, UTC) text.
fn eval_datefn(
    code: i64,
    value: Option<&str>,
    zone: Option<&str>,
    fiscal_start: i64,
) -> Option<SqlValue> {
    let func = DateFn::from_code(code)?;
    let value = value?;
    let local = if value.len() == 10 {
        chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
    } else {
        let utc = parse_ts(value).ok()?;
        match zone {
            Some(z) => utc
                .with_timezone(&z.parse::<chrono_tz::Tz>().ok()?)
                .naive_local(),
            None => utc.naive_utc(),
        }
    };
    Some(match func.eval(u32::try_from(fiscal_start).ok()?, local) {
        Value::Number(d) => SqlValue::Integer(i64::try_from(d).ok()?),
        Value::Date(d) => SqlValue::Text(format_date(&d)),
        _ => return None,
    })
}

fn expr_sql(prefix: &str, e: &Expr) -> String {
    match e {
        Expr::Column(c) => cmp_col(prefix, c),
        Expr::Aggregate { func, arg } => agg_sql(prefix, *func, arg.as_ref()),
        Expr::Date(c) => date_sql(prefix, c),
        // Outside ROLLUP / CUBE every key is grouped.
        Expr::Grouping(_) => "0".into(),
    }
}

/// A group key as grouped and sorted (text as stored).
fn group_sql(prefix: &str, e: &Expr) -> String {
    match e {
        Expr::Column(c) => raw_col(prefix, c),
        e => expr_sql(prefix, e),
    }
}

fn bad_value(kind: Kind, v: &Value) -> MosaicError {
    MosaicError::internal(format!("plan value {v:?} does not fit a {kind:?} column"))
}

/// Encodes a comparison value for an expression of `kind` (text lower-cased).
fn encode_value(e: &Expr, v: &Value) -> MosaicResult<SqlValue> {
    if let Expr::Aggregate {
        func: AggFn::Count | AggFn::CountDistinct,
        ..
    } = e
    {
        return match v {
            Value::Number(d) => Ok(d
                .trunc()
                .to_string()
                .parse::<i64>()
                .map(SqlValue::Integer)
                .unwrap_or(SqlValue::Integer(i64::MAX))),
            other => Err(bad_value(Kind::Number, other)),
        };
    }
    if let (Expr::Date(_) | Expr::Grouping(_), Value::Number(d)) = (e, v) {
        return Ok(if d.fract().is_zero() {
            i64::try_from(*d)
                .map(SqlValue::Integer)
                .unwrap_or(SqlValue::Real(f64::try_from(*d).unwrap_or(0.0)))
        } else {
            SqlValue::Real(f64::try_from(*d).unwrap_or(0.0))
        });
    }
    let lower = matches!(e, Expr::Column(_));
    let kind = e.kind();
    Ok(match (kind, v) {
        (Kind::Text, Value::Text(s)) if lower => SqlValue::Text(s.to_lowercase()),
        (Kind::Id, Value::Text(s)) => SqlValue::Text(s.to_lowercase()),
        (Kind::MultiPicklist, Value::Text(s)) => SqlValue::Text(multi_picklist_norm(s)),
        (Kind::Text | Kind::Time | Kind::Opaque, Value::Text(s)) => SqlValue::Text(s.clone()),
        (Kind::Number, Value::Number(d)) => SqlValue::Text(deckey::encode(d)),
        (Kind::Date, Value::Date(d)) => SqlValue::Text(format_date(d)),
        (Kind::Datetime, Value::Datetime(d)) => SqlValue::Text(format_datetime(d)),
        (Kind::Boolean, Value::Boolean(b)) => SqlValue::Integer(i64::from(*b)),
        (k, other) => return Err(bad_value(k, other)),
    })
}

/// Canonical form of a multi-picklist value for set equality: parts trimmed,
/// lower-cased, sorted, deduplicated, `;`-joined.
pub fn multi_picklist_norm(s: &str) -> String {
    let mut parts: Vec<String> = s
        .split(';')
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    parts.sort();
    parts.dedup();
    parts.join(";")
}

fn op_sql(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

/// SQL generation for one (sub)query scope.
struct Gen<'a> {
    tenant: &'a str,
    /// Pivot tables hold live records only: unusable for queryAll.
    pivots_usable: bool,
    sub_count: usize,
    /// The caller's sharing predicates.
    visibility: Option<&'a Visibility>,
    /// Aliases used by sharing predicates so far.
    access_count: usize,
    /// Group keys rolled up in the grouping set being generated (their
    /// value is NULL, their `GROUPING()` 1); empty outside ROLLUP / CUBE.
    rolled: Vec<Expr>,
}

impl Gen<'_> {
    /// An expression as compared, in the current grouping set.
    fn x(&self, prefix: &str, e: &Expr) -> String {
        if self.rolled.contains(e) {
            return "NULL".into();
        }
        if let Expr::Grouping(k) = e {
            return if self.rolled.contains(k) { "1" } else { "0" }.into();
        }
        expr_sql(prefix, e)
    }

    fn pivot_key(&self, c: &ColumnRef, v: &Value) -> MosaicResult<Option<String>> {
        let Column::Slot(slot) = c.column else {
            return Ok(None);
        };
        index_key(c.kind == Kind::Text, slot, v)
    }

    /// `prefix.id IN (SELECT record_id FROM record_index WHERE …)` for an
    /// equality / IN filter on a pivoted root column.
    fn try_pivot(
        &self,
        sql: &mut Sql,
        prefix: &str,
        object_id: &str,
        e: &Expr,
        values: &[Value],
    ) -> MosaicResult<bool> {
        let Expr::Column(c) = e else { return Ok(false) };
        let (Some(pivot), Column::Slot(slot)) = (c.pivot, c.column) else {
            return Ok(false);
        };
        if c.source != 0 || !self.pivots_usable || values.is_empty() {
            return Ok(false);
        }
        let mut keys = Vec::with_capacity(values.len());
        for v in values {
            match self.pivot_key(c, v)? {
                Some(k) => keys.push(k),
                None => return Ok(false),
            }
        }
        let table = match pivot {
            Pivot::Index => "record_index",
            Pivot::Unique => "record_unique",
        };
        sql.push(&format!(
            "{prefix}.id IN (SELECT record_id FROM {table} WHERE tenant_id = "
        ));
        sql.bind_text(self.tenant);
        sql.push(" AND object_id = ");
        sql.bind_text(object_id);
        sql.push(" AND slot = ");
        sql.bind_text(slot.column());
        if keys.len() == 1 {
            sql.push(" AND value = ");
            sql.bind(SqlValue::Text(keys.remove(0)));
        } else {
            sql.push(" AND value IN (");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(SqlValue::Text(k));
            }
            sql.push(")");
        }
        sql.push(")");
        Ok(true)
    }

    fn filter(
        &mut self,
        sql: &mut Sql,
        prefix: &str,
        object_id: &str,
        f: &Filter,
    ) -> MosaicResult<()> {
        match f {
            Filter::And(items) | Filter::Or(items) => {
                let sep = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                if items.is_empty() {
                    sql.push(if matches!(f, Filter::And(_)) {
                        "1"
                    } else {
                        "0"
                    });
                    return Ok(());
                }
                sql.push("(");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        sql.push(sep);
                    }
                    self.filter(sql, prefix, object_id, item)?;
                }
                sql.push(")");
            }
            Filter::Not(inner) => {
                sql.push("NOT ");
                sql.push("(");
                self.filter(sql, prefix, object_id, inner)?;
                sql.push(")");
            }
            Filter::IsNull { expr, negated } => {
                let x = match expr {
                    Expr::Column(c) => raw_col(prefix, c),
                    other => self.x(prefix, other),
                };
                sql.push(&format!(
                    "({x} IS {}NULL)",
                    if *negated { "NOT " } else { "" }
                ));
            }
            Filter::Compare { expr, op, value } => {
                if *op == CmpOp::Eq
                    && self.rolled.is_empty()
                    && self.try_pivot(sql, prefix, object_id, expr, std::slice::from_ref(value))?
                {
                    return Ok(());
                }
                let x = self.x(prefix, expr);
                let v = encode_value(expr, value)?;
                if *op == CmpOp::Ne {
                    sql.push(&format!("({x} IS NULL OR {x} <> "));
                } else {
                    sql.push(&format!("({x} IS NOT NULL AND {x} {} ", op_sql(*op)));
                }
                sql.bind(v);
                sql.push(")");
            }
            Filter::In {
                expr,
                values,
                negated,
            } => {
                if values.is_empty() {
                    sql.push(if *negated { "1" } else { "0" });
                    return Ok(());
                }
                if !*negated
                    && self.rolled.is_empty()
                    && self.try_pivot(sql, prefix, object_id, expr, values)?
                {
                    return Ok(());
                }
                let x = self.x(prefix, expr);
                if *negated {
                    sql.push(&format!("({x} IS NULL OR {x} NOT IN ("));
                } else {
                    sql.push(&format!("({x} IS NOT NULL AND {x} IN ("));
                }
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.bind(encode_value(expr, v)?);
                }
                sql.push("))");
            }
            Filter::Like { column, pattern } => {
                let x = cmp_col(prefix, column);
                sql.push(&format!("({x} IS NOT NULL AND {x} LIKE "));
                sql.bind_text(pattern);
                sql.push(" ESCAPE '\\')");
            }
            Filter::Includes {
                column,
                groups,
                excludes,
            } => {
                let x = raw_col(prefix, column);
                sql.push(if *excludes { "NOT (" } else { "(" });
                sql.push(&format!("{x} IS NOT NULL AND ("));
                for (gi, group) in groups.iter().enumerate() {
                    if gi > 0 {
                        sql.push(" OR ");
                    }
                    sql.push("(");
                    for (vi, v) in group.iter().enumerate() {
                        if vi > 0 {
                            sql.push(" AND ");
                        }
                        sql.push(&format!("mosaic_mp_has({x}, "));
                        sql.bind_text(&v.to_lowercase());
                        sql.push(")");
                    }
                    if group.is_empty() {
                        sql.push("0");
                    }
                    sql.push(")");
                }
                if groups.is_empty() {
                    sql.push("0");
                }
                sql.push("))");
            }
            Filter::SemiJoin {
                column,
                sub,
                negated,
            } => {
                let x = raw_col(prefix, column);
                let sp = format!("s{}", self.sub_count);
                self.sub_count += 1;
                let inner = raw_col(&sp, &sub.column);
                if *negated {
                    sql.push(&format!("({x} IS NULL OR {x} NOT IN ("));
                } else {
                    sql.push(&format!("({x} IS NOT NULL AND {x} IN ("));
                }
                sql.push(&format!("SELECT {inner} FROM object_records {sp}"));
                self.joins(sql, &sp, &sub.joins);
                sql.push(" WHERE ");
                self.scope(sql, &sp, &sub.object_id, false);
                self.access(sql, &sp, &sub.object_id);
                sql.push(&format!(" AND {inner} IS NOT NULL"));
                if let Some(f) = &sub.filter {
                    sql.push(" AND ");
                    // Pivots are keyed by the sub-object; usable (live rows only).
                    let saved = self.pivots_usable;
                    self.pivots_usable = true;
                    let r = self.filter(sql, &sp, &sub.object_id, f);
                    self.pivots_usable = saved;
                    r?;
                }
                sql.push("))");
            }
        }
        Ok(())
    }

    /// The root row source: `object_records`, or — when the plan filters or
    /// sorts on roll-up summaries — the object's rows with each roll-up as
    /// a column `ru{i}`, a correlated aggregate over the detail records
    /// found through the master-detail pivot (decision 0039).
    fn root_source(&mut self, sql: &mut Sql, plan: &QueryPlan) -> MosaicResult<()> {
        if plan.rollups.is_empty() {
            sql.push(" FROM object_records r");
            return Ok(());
        }
        sql.push(" FROM (SELECT r0.*");
        for (i, spec) in plan.rollups.iter().enumerate() {
            sql.push(", ");
            self.rollup(sql, i, spec)?;
            sql.push(&format!(" AS ru{i}"));
        }
        sql.push(" FROM object_records r0 WHERE ");
        self.scope(sql, "r0", &plan.object_id, true);
        sql.push(") r");
        Ok(())
    }

    /// `(SELECT agg FROM the live detail records of r0 [AND filter])`.
    fn rollup(&mut self, sql: &mut Sql, i: usize, spec: &RollupSpec) -> MosaicResult<()> {
        let x = format!("rux{i}");
        let c = format!("ruc{i}");
        let zero = || SqlValue::Text(deckey::encode(&Decimal::ZERO));
        sql.push("(SELECT ");
        match (spec.func, &spec.arg) {
            (AggFn::Sum, Some(a)) => {
                sql.push(&format!("COALESCE(mosaic_dec_sum({}), ", raw_col(&c, a)));
                sql.bind(zero());
                sql.push(")");
            }
            (AggFn::Min | AggFn::Max, Some(a)) => {
                sql.push(&agg_sql(&c, spec.func, Some(a)));
            }
            _ => {
                sql.push("COALESCE(mosaic_dec_sum(");
                sql.bind(SqlValue::Text(deckey::encode(&Decimal::ONE)));
                sql.push("), ");
                sql.bind(zero());
                sql.push(")");
            }
        }
        sql.push(&format!(
            " FROM record_index {x} JOIN object_records {c} ON {c}.tenant_id = {x}.tenant_id AND {c}.id = {x}.record_id WHERE {x}.tenant_id = "
        ));
        sql.bind_text(self.tenant);
        sql.push(&format!(" AND {x}.object_id = "));
        sql.bind_text(&spec.detail_object_id);
        sql.push(&format!(" AND {x}.slot = "));
        sql.bind_text(spec.link.column());
        sql.push(&format!(" AND {x}.value = r0.id AND "));
        self.scope(sql, &c, &spec.detail_object_id, false);
        if let Some(f) = &spec.filter {
            sql.push(" AND ");
            let saved = self.pivots_usable;
            self.pivots_usable = true;
            let r = self.filter(sql, &c, &spec.detail_object_id, f);
            self.pivots_usable = saved;
            r?;
        }
        sql.push(")");
        Ok(())
    }

    fn joins(&mut self, sql: &mut Sql, prefix: &str, joins: &[Join]) {
        for (i, j) in joins.iter().enumerate() {
            let a = alias(prefix, i + 1);
            let from = alias(prefix, j.from);
            sql.push(&format!(
                " LEFT JOIN object_records {a} ON {a}.tenant_id = {from}.tenant_id AND {a}.id = {from}.{} AND {a}.object_id = ",
                j.via.column()
            ));
            sql.bind_text(&j.object_id);
            sql.push(&format!(" AND {a}.is_deleted = 0"));
            // A parent the caller may not see joins as null.
            self.access(sql, &a, &j.object_id);
        }
    }

    /// ` AND <sharing predicate>` for rows of `object_id` under `alias`,
    /// when the caller's view of that object is restricted.
    fn access(&mut self, sql: &mut Sql, alias: &str, object_id: &str) {
        let Some(a) = self.visibility.and_then(|v| v.of(object_id)) else {
            return;
        };
        sql.push(" AND ");
        self.row_access(sql, alias, a);
    }

    fn row_access(&mut self, sql: &mut Sql, alias: &str, a: &RowAccess) {
        match a {
            RowAccess::Nothing => sql.push("0"),
            RowAccess::Shared { owners, principals } => {
                let sh = format!("sh{}", self.access_count);
                self.access_count += 1;
                sql.push(&format!(
                    "({alias}.owner_id IN (SELECT value FROM json_each("
                ));
                sql.bind_text(&serde_json::to_string(owners.as_slice()).unwrap_or_default());
                sql.push(&format!(
                    ")) OR EXISTS (SELECT 1 FROM record_shares {sh} WHERE {sh}.tenant_id = "
                ));
                sql.bind_text(self.tenant);
                sql.push(&format!(
                    " AND {sh}.record_id = {alias}.id AND {sh}.principal IN (SELECT value FROM json_each("
                ));
                sql.bind_text(&serde_json::to_string(principals.as_slice()).unwrap_or_default());
                sql.push("))))");
            }
            RowAccess::Parent {
                via,
                parent_object_id,
                parent,
            } => {
                let m = format!("pm{}", self.access_count);
                self.access_count += 1;
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM object_records {m} WHERE {m}.tenant_id = "
                ));
                sql.bind_text(self.tenant);
                sql.push(&format!(
                    " AND {m}.id = {alias}.{} AND {m}.object_id = ",
                    via.column()
                ));
                sql.bind_text(parent_object_id);
                sql.push(&format!(" AND {m}.is_deleted = 0 AND "));
                self.row_access(sql, &m, parent);
                sql.push(")");
            }
        }
    }

    /// `prefix.tenant_id = ? AND prefix.object_id = ? [AND prefix.is_deleted = 0]`.
    fn scope(&self, sql: &mut Sql, prefix: &str, object_id: &str, include_deleted: bool) {
        sql.push(&format!("{prefix}.tenant_id = "));
        sql.bind_text(self.tenant);
        sql.push(&format!(" AND {prefix}.object_id = "));
        sql.bind_text(object_id);
        if !include_deleted {
            sql.push(&format!(" AND {prefix}.is_deleted = 0"));
        }
    }

    fn order_key(&self, k: &SortKey) -> String {
        let x = match &k.expr {
            Expr::Column(c) if c.kind == Kind::Text => format!("mosaic_lower({})", raw_col("r", c)),
            Expr::Column(c) => raw_col("r", c),
            e => expr_sql("r", e),
        };
        format!(
            "{x} {} NULLS {}",
            if k.desc { "DESC" } else { "ASC" },
            if k.nulls_first { "FIRST" } else { "LAST" }
        )
    }
}

/// Builds the statement of `plan` under `restrict`.
fn build(
    tenant: &str,
    plan: &QueryPlan,
    restrict: &Restrict,
    cap: Option<u64>,
) -> MosaicResult<Sql> {
    let mut g = Gen {
        tenant,
        pivots_usable: !plan.include_deleted,
        sub_count: 0,
        visibility: plan.visibility.as_deref(),
        access_count: 0,
        rolled: Vec::new(),
    };
    if plan.aggregate && plan.grouping_sets != GroupingSets::Plain {
        return build_sets(&mut g, plan, restrict, cap);
    }
    let mut sql = Sql::default();
    sql.push("SELECT ");
    for (i, e) in plan.select.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        match e {
            Expr::Column(c) => sql.push(&raw_col("r", c)),
            e => sql.push(&expr_sql("r", e)),
        }
    }
    g.root_source(&mut sql, plan)?;
    g.joins(&mut sql, "r", &plan.joins);
    sql.push(" WHERE ");
    g.scope(&mut sql, "r", &plan.object_id, plan.include_deleted);
    g.access(&mut sql, "r", &plan.object_id);
    let mut whole = true;
    match restrict {
        Restrict::None => {}
        Restrict::Ids(ids) => {
            whole = false;
            sql.push(" AND r.id IN (");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind_text(id);
            }
            if ids.is_empty() {
                sql.push("NULL");
            }
            sql.push(")");
        }
        Restrict::ColumnIn { column, values } => {
            sql.push(" AND ");
            let keys: Vec<Value> = values.iter().cloned().map(Value::Text).collect();
            if g.try_pivot(
                &mut sql,
                "r",
                &plan.object_id,
                &Expr::Column(*column),
                &keys,
            )? {
                // through record_index
            } else {
                sql.push(&format!("{} IN (", raw_col("r", column)));
                for (i, id) in values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.bind_text(id);
                }
                if values.is_empty() {
                    sql.push("NULL");
                }
                sql.push(")");
            }
        }
    }
    if whole {
        if let Some(f) = &plan.filter {
            sql.push(" AND ");
            g.filter(&mut sql, "r", &plan.object_id, f)?;
        }
    }
    if plan.aggregate {
        if !plan.group_by.is_empty() {
            sql.push(" GROUP BY ");
            let cols: Vec<String> = plan.group_by.iter().map(|e| group_sql("r", e)).collect();
            sql.push(&cols.join(", "));
        }
        if let Some(h) = &plan.having {
            sql.push(" HAVING ");
            g.filter(&mut sql, "r", &plan.object_id, h)?;
        }
    }
    if whole || matches!(restrict, Restrict::ColumnIn { .. }) {
        let mut keys: Vec<String> = plan.order_by.iter().map(|k| g.order_key(k)).collect();
        if plan.aggregate {
            keys.extend(
                plan.group_by
                    .iter()
                    .map(|e| format!("{} ASC", group_sql("r", e))),
            );
        } else {
            keys.push("r.id ASC".into());
        }
        if !keys.is_empty() {
            sql.push(" ORDER BY ");
            sql.push(&keys.join(", "));
        }
    }
    if whole && !matches!(restrict, Restrict::ColumnIn { .. }) {
        let limit = match (plan.limit, cap) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        };
        if limit.is_some() || plan.offset > 0 {
            sql.push(" LIMIT ");
            sql.bind(SqlValue::Integer(
                limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
            ));
            sql.push(" OFFSET ");
            sql.bind(SqlValue::Integer(i64::try_from(plan.offset).unwrap_or(0)));
        }
    } else if let Some(c) = cap {
        if matches!(restrict, Restrict::ColumnIn { .. }) {
            sql.push(" LIMIT ");
            sql.bind(SqlValue::Integer(i64::try_from(c).unwrap_or(i64::MAX)));
        }
    }
    debug_assert!(
        sql.text.matches(".tenant_id = ?").count() > g.sub_count,
        "a statement without its tenant predicate: {}",
        sql.text
    );
    Ok(sql)
}

/// ROLLUP / CUBE: SQLite has no grouping sets, so each set is one SELECT
/// grouped by the keys it keeps (the others NULL, their `GROUPING()` 1),
/// joined by UNION ALL and sorted outside through hidden trailing columns:
/// the ORDER BY keys, then per group key its `GROUPING()` and its value
/// (subtotal rows after the rows they total, as Salesforce and
/// PostgreSQL's plan order them).
fn build_sets(
    g: &mut Gen<'_>,
    plan: &QueryPlan,
    restrict: &Restrict,
    cap: Option<u64>,
) -> MosaicResult<Sql> {
    if !matches!(restrict, Restrict::None) {
        return Err(MosaicError::internal(
            "ROLLUP / CUBE results are read whole, never restricted",
        ));
    }
    let mut sql = Sql::default();
    sql.push("SELECT * FROM (");
    for (b, mask) in plan
        .grouping_sets
        .sets(plan.group_by.len())
        .iter()
        .enumerate()
    {
        if b > 0 {
            sql.push(" UNION ALL ");
        }
        let rolled: Vec<Expr> = plan
            .group_by
            .iter()
            .zip(mask)
            .filter(|(_, keep)| !**keep)
            .map(|(e, _)| e.clone())
            .collect();
        g.rolled = rolled;
        let mut cols: Vec<String> = plan
            .select
            .iter()
            .map(|e| match e {
                Expr::Column(c) if !g.rolled.contains(e) => raw_col("r", c),
                e => g.x("r", e),
            })
            .collect();
        for k in &plan.order_by {
            cols.push(match &k.expr {
                Expr::Column(c) if c.kind == Kind::Text && !g.rolled.contains(&k.expr) => {
                    format!("mosaic_lower({})", raw_col("r", c))
                }
                Expr::Column(c) if !g.rolled.contains(&k.expr) => raw_col("r", c),
                e => g.x("r", e),
            });
        }
        for e in &plan.group_by {
            let rolled = g.rolled.contains(e);
            cols.push(if rolled { "1" } else { "0" }.into());
            cols.push(if rolled {
                "NULL".into()
            } else {
                group_sql("r", e)
            });
        }
        sql.push("SELECT ");
        sql.push(&cols.join(", "));
        g.rolled = Vec::new();
        g.root_source(&mut sql, plan)?;
        g.joins(&mut sql, "r", &plan.joins);
        sql.push(" WHERE ");
        g.scope(&mut sql, "r", &plan.object_id, plan.include_deleted);
        g.access(&mut sql, "r", &plan.object_id);
        if let Some(f) = &plan.filter {
            sql.push(" AND ");
            g.filter(&mut sql, "r", &plan.object_id, f)?;
        }
        let kept: Vec<String> = plan
            .group_by
            .iter()
            .zip(mask)
            .filter(|(_, keep)| **keep)
            .map(|(e, _)| group_sql("r", e))
            .collect();
        if !kept.is_empty() {
            sql.push(" GROUP BY ");
            sql.push(&kept.join(", "));
        }
        if let Some(h) = &plan.having {
            g.rolled = plan
                .group_by
                .iter()
                .zip(mask)
                .filter(|(_, keep)| !**keep)
                .map(|(e, _)| e.clone())
                .collect();
            sql.push(" HAVING ");
            g.filter(&mut sql, "r", &plan.object_id, h)?;
            g.rolled = Vec::new();
        }
    }
    sql.push(")");
    let n = plan.select.len();
    let mut keys: Vec<String> = plan
        .order_by
        .iter()
        .enumerate()
        .map(|(j, k)| {
            format!(
                "{} {} NULLS {}",
                n + 1 + j,
                if k.desc { "DESC" } else { "ASC" },
                if k.nulls_first { "FIRST" } else { "LAST" }
            )
        })
        .collect();
    let base = n + plan.order_by.len();
    for i in 0..plan.group_by.len() {
        keys.push(format!("{} ASC", base + 1 + 2 * i));
        keys.push(format!("{} ASC NULLS FIRST", base + 2 + 2 * i));
    }
    if !keys.is_empty() {
        sql.push(" ORDER BY ");
        sql.push(&keys.join(", "));
    }
    let limit = match (plan.limit, cap) {
        (Some(l), Some(c)) => Some(l.min(c)),
        (l, c) => l.or(c),
    };
    if limit.is_some() || plan.offset > 0 {
        sql.push(" LIMIT ");
        sql.bind(SqlValue::Integer(
            limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
        ));
        sql.push(" OFFSET ");
        sql.bind(SqlValue::Integer(i64::try_from(plan.offset).unwrap_or(0)));
    }
    Ok(sql)
}

fn decode_sys(c: SysColumn, v: SqlValue) -> Value {
    match (c, v) {
        (_, SqlValue::Null) => Value::Null,
        (SysColumn::CreatedDate | SysColumn::LastModifiedDate, SqlValue::Text(s)) => {
            parse_ts(&s).map(Value::Datetime).unwrap_or(Value::Null)
        }
        (SysColumn::IsDeleted, SqlValue::Integer(i)) => Value::Boolean(i != 0),
        (_, SqlValue::Text(s)) => Value::Text(s),
        (_, SqlValue::Integer(i)) => Value::Text(i.to_string()),
        _ => Value::Null,
    }
}

fn decode_column(c: &ColumnRef, v: SqlValue) -> Value {
    match c.column {
        Column::Sys(s) => decode_sys(s, v),
        Column::Slot(slot) => decode(slot, v),
        Column::Rollup(_) => match (c.kind, v) {
            (Kind::Number, SqlValue::Text(s)) => {
                deckey::decode(&s).map(Value::Number).unwrap_or(Value::Null)
            }
            (Kind::Date, SqlValue::Text(s)) => chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .map(Value::Date)
                .unwrap_or(Value::Null),
            (Kind::Datetime, SqlValue::Text(s)) => {
                parse_ts(&s).map(Value::Datetime).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        },
    }
}

fn decode_expr(e: &Expr, v: SqlValue) -> Value {
    match e {
        Expr::Column(c) => decode_column(c, v),
        Expr::Aggregate {
            func: AggFn::Count | AggFn::CountDistinct,
            ..
        } => match v {
            SqlValue::Integer(i) => Value::Number(Decimal::from(i)),
            _ => Value::Null,
        },
        Expr::Aggregate {
            func: AggFn::Sum | AggFn::Avg,
            ..
        } => match v {
            SqlValue::Text(s) => deckey::decode(&s).map(Value::Number).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Expr::Aggregate { arg: Some(c), .. } => decode_column(c, v),
        Expr::Aggregate { arg: None, .. } => Value::Null,
        Expr::Date(_) | Expr::Grouping(_) => match v {
            SqlValue::Integer(i) => Value::Number(Decimal::from(i)),
            SqlValue::Text(s) => chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                .map(Value::Date)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
    }
}

fn limit_exceeded(max: usize) -> MosaicError {
    MosaicError::new(
        ErrorCode::LIMIT_EXCEEDED,
        format!("the query matches more than {max} rows; add a filter or a LIMIT"),
    )
}

fn run(
    conn: &Connection,
    tenant: &str,
    plan: &QueryPlan,
    restrict: &Restrict,
    keep: usize,
    max_rows: usize,
) -> MosaicResult<QueryRows> {
    let cap = u64::try_from(max_rows)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let sql = build(tenant, plan, restrict, Some(cap))?;
    let mut st = conn.prepare_cached(&sql.text).map_err(map_sql)?;
    let mut rows = st
        .query(params_from_iter(sql.params.iter()))
        .map_err(map_sql)?;
    let mut out = QueryRows::default();
    while let Some(row) = rows.next().map_err(map_sql)? {
        out.total += 1;
        if out.total > max_rows {
            return Err(limit_exceeded(max_rows));
        }
        if out.rows.len() < keep {
            let mut vals = Vec::with_capacity(plan.select.len());
            for (i, e) in plan.select.iter().enumerate() {
                vals.push(decode_expr(e, row.get::<_, SqlValue>(i).map_err(map_sql)?));
            }
            out.rows.push(vals);
        } else {
            out.rest_ids.push(row.get::<_, String>(0).map_err(map_sql)?);
        }
    }
    Ok(out)
}

/// The FTS5 query for a SOSL term: every word quoted (so no FTS syntax from
/// input survives), a trailing `*` kept as a prefix wildcard, `"phrases"`
/// kept, `AND` / `OR` / `AND NOT` kept as operators (adjacent words: AND);
/// `?` wildcards and other punctuation separate words.
pub fn fts_query(term: &str) -> Option<String> {
    enum Tok {
        Term(String),
        Op(&'static str),
    }
    let quote = |w: &str| format!("\"{}\"", w.replace('"', "\"\""));
    let words_of = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut toks = Vec::new();
    let mut chars = term.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut phrase = String::new();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                phrase.push(c);
            }
            let words = words_of(&phrase);
            if !words.is_empty() {
                toks.push(Tok::Term(quote(&words.join(" "))));
            }
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '"' {
                break;
            }
            word.push(c);
            chars.next();
        }
        match word.as_str() {
            "AND" => toks.push(Tok::Op("AND")),
            "OR" => toks.push(Tok::Op("OR")),
            "NOT" => toks.push(Tok::Op("NOT")),
            _ => {
                let prefix = word.ends_with('*');
                let pieces = words_of(&word);
                let n = pieces.len();
                let group: Vec<String> = pieces
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let mut t = quote(p);
                        if prefix && i + 1 == n {
                            t.push('*');
                        }
                        t
                    })
                    .collect();
                match group.len() {
                    0 => {}
                    1 => toks.push(Tok::Term(group[0].clone())),
                    _ => toks.push(Tok::Term(format!("({})", group.join(" AND ")))),
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut pending: Option<&'static str> = None;
    for t in toks {
        match t {
            Tok::Term(s) => {
                if !out.is_empty() {
                    out.push(pending.unwrap_or("AND").to_string());
                }
                pending = None;
                out.push(s);
            }
            Tok::Op("AND") if pending == Some("NOT") => {}
            Tok::Op(op) => pending = Some(op),
        }
    }
    (!out.is_empty()).then(|| out.join(" "))
}

#[async_trait]
impl QueryStore for SqliteRecordStore {
    async fn query(
        &self,
        tenant_id: &str,
        plan: Arc<QueryPlan>,
        restrict: Restrict,
        keep: usize,
        max_rows: usize,
    ) -> MosaicResult<QueryRows> {
        let tenant = tenant_id.to_string();
        self.db()
            .read(move |conn| run(conn, &tenant, &plan, &restrict, keep, max_rows))
            .await
    }

    fn statement(&self, tenant_id: &str, plan: &QueryPlan) -> MosaicResult<(String, Vec<String>)> {
        let sql = build(tenant_id, plan, &Restrict::None, None)?;
        let params = sql
            .params
            .iter()
            .map(|p| match p {
                SqlValue::Null => "NULL".to_string(),
                SqlValue::Integer(i) => i.to_string(),
                SqlValue::Real(f) => f.to_string(),
                SqlValue::Text(s) => format!("'{s}'"),
                SqlValue::Blob(_) => "<blob>".to_string(),
            })
            .collect();
        Ok((sql.text, params))
    }

    async fn explain(&self, tenant_id: &str, plan: Arc<QueryPlan>) -> MosaicResult<Vec<String>> {
        let tenant = tenant_id.to_string();
        self.db()
            .read(move |conn| {
                let sql = build(&tenant, &plan, &Restrict::None, None)?;
                let mut st = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
                    .map_err(map_sql)?;
                let rows = st
                    .query_map(params_from_iter(sql.params.iter()), |r| {
                        r.get::<_, String>(3)
                    })
                    .map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sql)
            })
            .await
    }

    async fn search(
        &self,
        tenant_id: &str,
        term: &str,
        object_ids: &[String],
        limit: usize,
        visibility: Option<Arc<Visibility>>,
    ) -> MosaicResult<Vec<SearchHit>> {
        let Some(q) = fts_query(term) else {
            return Ok(Vec::new());
        };
        if object_ids.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = tenant_id.to_string();
        let objects = object_ids.to_vec();
        self.db()
            .read(move |conn| {
                let mut sql = Sql::default();
                sql.push("SELECT r.object_id, r.id FROM record_search s JOIN object_records r ON r.rowid = s.rowid WHERE record_search MATCH ");
                sql.bind(SqlValue::Text(q));
                sql.push(" AND r.tenant_id = ");
                sql.bind_text(&tenant);
                sql.push(" AND r.is_deleted = 0 AND r.object_id IN (");
                for (i, o) in objects.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.bind_text(o);
                }
                sql.push(")");
                let mut g = Gen {
                    tenant: &tenant,
                    pivots_usable: false,
                    sub_count: 0,
                    visibility: visibility.as_deref(),
                    access_count: 0,
                    rolled: Vec::new(),
                };
                for o in &objects {
                    if g.visibility.and_then(|v| v.of(o)).is_some() {
                        sql.push(" AND (r.object_id != ");
                        sql.bind_text(o);
                        sql.push(" OR (1");
                        g.access(&mut sql, "r", o);
                        sql.push("))");
                    }
                }
                sql.push(" ORDER BY s.rank, r.id LIMIT ");
                sql.bind(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
                let mut st = conn.prepare_cached(&sql.text).map_err(map_sql)?;
                let rows = st
                    .query_map(params_from_iter(sql.params.iter()), |r| {
                        Ok(SearchHit {
                            object_id: r.get(0)?,
                            record_id: r.get(1)?,
                        })
                    })
                    .map_err(map_sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("fts5") => {
                        MosaicError::new(ErrorCode::MALFORMED_QUERY, format!("search term not understood: {m}"))
                    }
                    e => map_sql(e),
                })
            })
            .await
    }
}

/// The SQL expression that builds a record's search document from its row
/// (Name and every text-pool column).
pub(crate) fn search_body_sql() -> String {
    let mut cols = vec!["name".to_string()];
    cols.extend(
        FlexSlot::all()
            .filter(|s| matches!(s.pool, SlotPool::String | SlotPool::Clob))
            .map(|s| s.column().to_string()),
    );
    format!("concat_ws(' ', {})", cols.join(", "))
}

/// Rewrites the search document of one record (after insert / update).
pub(crate) fn index_search(conn: &Connection, tenant: &str, id: &str) -> MosaicResult<()> {
    unindex_search(conn, tenant, id)?;
    let sql = format!(
        "INSERT INTO record_search (rowid, body) SELECT rowid, {} FROM object_records WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0",
        search_body_sql()
    );
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.execute([tenant, id]))
        .map_err(map_sql)?;
    Ok(())
}

/// Drops the search document of one record (soft delete).
pub(crate) fn unindex_search(conn: &Connection, tenant: &str, id: &str) -> MosaicResult<()> {
    conn.prepare_cached(
        "DELETE FROM record_search WHERE rowid = (SELECT rowid FROM object_records WHERE tenant_id = ?1 AND id = ?2)",
    )
    .and_then(|mut st| st.execute([tenant, id]))
    .map_err(map_sql)?;
    Ok(())
}

// ---- SQL functions -----------------------------------------------------------

fn text_arg(ctx: &Context<'_>, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        _ => None,
    }
}

/// Exact decimal SUM over deckey text; NULL when no non-null input.
struct DecSum {
    avg: bool,
}

impl Aggregate<(Decimal, u64), Option<String>> for DecSum {
    fn init(&self, _ctx: &mut Context<'_>) -> rusqlite::Result<(Decimal, u64)> {
        Ok((Decimal::ZERO, 0))
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut (Decimal, u64)) -> rusqlite::Result<()> {
        let Some(key) = text_arg(ctx, 0) else {
            return Ok(());
        };
        let d = deckey::decode(&key).ok_or_else(|| {
            rusqlite::Error::UserFunctionError(format!("not a number key: {key}").into())
        })?;
        acc.0 = acc.0.checked_add(d).ok_or_else(|| {
            rusqlite::Error::UserFunctionError("numeric overflow in SUM/AVG".into())
        })?;
        acc.1 += 1;
        Ok(())
    }

    fn finalize(
        &self,
        _ctx: &mut Context<'_>,
        acc: Option<(Decimal, u64)>,
    ) -> rusqlite::Result<Option<String>> {
        Ok(match acc {
            Some((sum, n)) if n > 0 => {
                let v = if self.avg {
                    sum.checked_div(Decimal::from(n)).unwrap_or(Decimal::ZERO)
                } else {
                    sum
                };
                Some(deckey::encode(&v))
            }
            _ => None,
        })
    }
}

/// Registers Mosaic's SQL functions on a connection (every connection of a
/// record shard, reader or writer).
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("mosaic_lower", 1, flags, |ctx| {
        Ok(text_arg(ctx, 0).map(|s| s.to_lowercase()))
    })?;
    conn.create_scalar_function("mosaic_mp_norm", 1, flags, |ctx| {
        Ok(text_arg(ctx, 0).map(|s| multi_picklist_norm(&s)))
    })?;
    conn.create_scalar_function("mosaic_mp_has", 2, flags, |ctx| {
        let (Some(v), Some(term)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(false);
        };
        Ok(v.split(';').any(|p| p.trim().to_lowercase() == term))
    })?;
    conn.create_scalar_function("mosaic_datefn", 4, flags, |ctx| {
        let code: i64 = ctx.get(0)?;
        let fiscal: i64 = ctx.get(3)?;
        Ok(eval_datefn(
            code,
            text_arg(ctx, 1).as_deref(),
            text_arg(ctx, 2).as_deref(),
            fiscal,
        )
        .unwrap_or(SqlValue::Null))
    })?;
    conn.create_aggregate_function("mosaic_dec_sum", 1, flags, DecSum { avg: false })?;
    conn.create_aggregate_function("mosaic_dec_avg", 1, flags, DecSum { avg: true })?;
    Ok(())
}

/// Appends `s` to a LIKE pattern with `%`, `_` and `\` escaped by `\`.
pub fn like_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        let _ = write!(out, "{c}");
    }
}

thread_local! {
    static CHECK_DB: Result<Connection, String> = (|| {
        let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
        register_functions(&conn).map_err(|e| e.to_string())?;
        conn.execute_batch(&crate::sqlite_records::record_schema())
            .map_err(|e| e.to_string())?;
        Ok(conn)
    })();
}

/// Prepares the statement of `plan` on an empty in-memory shard and checks
/// its parameter count: a planner bug that builds invalid SQL fails here
/// (fuzzing and tests), never with a user's query.
pub fn check_statement(plan: &QueryPlan, restrict: &Restrict) -> MosaicResult<()> {
    let sql = build("tenant", plan, restrict, Some(50_001))?;
    CHECK_DB.with(|db| {
        let conn = db.as_ref().map_err(|e| MosaicError::internal(e.clone()))?;
        let st = conn.prepare(&sql.text).map_err(|e| {
            MosaicError::internal(format!("invalid SQL from the planner: {e}: {}", sql.text))
        })?;
        if st.parameter_count() != sql.params.len() {
            return Err(MosaicError::internal(format!(
                "statement has {} parameters, {} bound: {}",
                st.parameter_count(),
                sql.params.len(),
                sql.text
            )));
        }
        Ok(())
    })
}
