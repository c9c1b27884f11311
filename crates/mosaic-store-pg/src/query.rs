//! PostgreSQL implementation of [`QueryStore`]: turns a [`QueryPlan`] into
//! one parameterized statement over `object_records`, its pivot tables and
//! `record_shares`, with the semantics documented in
//! `mosaic_store::query_store` — exactly those of the SQLite generator:
//!
//! - two-valued logic: every atom is written null-safe
//!   (`x IS NULL OR x <> $n`, `x IS NOT NULL AND x < $n`);
//! - text compares through `mosaic_lower` (ICU root lower-casing, the
//!   Unicode rules of Rust's `to_lowercase`) in byte order (`COLLATE "C"`);
//! - numbers compare as their order-preserving decimal keys in byte order;
//!   `SUM` / `AVG` decode the keys to `numeric` (`mosaic_deckey_numeric`),
//!   never through floats, and the selected average is divided in Rust
//!   exactly as SQLite's aggregate does;
//! - ties in ORDER BY are broken by record id (aggregates: by the group
//!   columns, nulls first as on SQLite);
//! - the caller's sharing predicate applies to the root, inside each LEFT
//!   JOIN's condition (an invisible parent joins as null) and inside
//!   semi-join subqueries, with the owner and principal sets bound as
//!   `text[]` (`= ANY($n::text[])`), so the statement text does not depend
//!   on the caller.
//!
//! Search uses the generated `search_doc` column (`tsvector`, `simple`
//! configuration) and a `tsquery` built here from quoted lexemes: nothing of
//! the search term reaches the query parser as syntax.
//!
//! **Invariant:** every literal is a bound parameter; the only identifiers
//! spliced into SQL are flex and system column names from closed sets and
//! aliases made up here. Every row source carries `tenant_id = $n`
//! (asserted in debug builds).

use crate::param::{refs, Param};
use crate::pool::{map_pg, millis, with_client};
use crate::records::{decode, PgRecordStore};
use async_trait::async_trait;
use futures_util::StreamExt;
use mosaic_store::index_key;
use mosaic_store::multi_picklist_norm;
use mosaic_store::query_store::*;
use mosaic_store::sharing::{RowAccess, Visibility};
use mosaic_store::zone_name_ok;
use mosaic_types::{deckey, ErrorCode, MosaicError, MosaicResult, Value};
use rust_decimal::Decimal;
use std::sync::Arc;

/// A statement under construction: text and its bound parameters.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
    /// Binds `v` and returns its placeholder number.
    fn bind(&mut self, v: Param) -> usize {
        self.params.push(v);
        let n = self.params.len();
        self.text.push_str(&format!("${n}"));
        n
    }
    fn bind_text(&mut self, s: &str) -> usize {
        self.bind(Param::text(s))
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

/// A column as compared: text lower-cased, multi-picklists normalized.
fn cmp_col(prefix: &str, c: &ColumnRef) -> String {
    match c.kind {
        Kind::Text => format!("mosaic_lower({})", raw_col(prefix, c)),
        Kind::MultiPicklist => format!("mosaic_mp_norm({})", raw_col(prefix, c)),
        _ => raw_col(prefix, c),
    }
}

/// An aggregate as filtered and sorted: SUM / AVG as exact `numeric`.
fn agg_sql(prefix: &str, func: AggFn, arg: Option<&ColumnRef>) -> String {
    let a = arg
        .map(|c| raw_col(prefix, c))
        .unwrap_or_else(|| "*".into());
    match func {
        AggFn::Count => format!("COUNT({a})"),
        AggFn::CountDistinct => format!("COUNT(DISTINCT {a})"),
        AggFn::Sum => format!("SUM(mosaic_deckey_numeric({a}))"),
        // 28 decimals: the precision of the decimals Mosaic computes with.
        AggFn::Avg => format!(
            "((SUM(mosaic_deckey_numeric({a})) + 0.0000000000000000000000000000) / COUNT({a}))"
        ),
        AggFn::Min => format!("MIN({a})"),
        AggFn::Max => format!("MAX({a})"),
    }
}

/// An aggregate as selected: SUM as exact decimal text, AVG as
/// `sum:count` (divided in Rust, as SQLite's aggregate divides).
fn agg_select_sql(prefix: &str, func: AggFn, arg: Option<&ColumnRef>) -> String {
    let a = arg
        .map(|c| raw_col(prefix, c))
        .unwrap_or_else(|| "*".into());
    match func {
        AggFn::Sum => format!("SUM(mosaic_deckey_numeric({a}))::text"),
        AggFn::Avg => {
            format!("(SUM(mosaic_deckey_numeric({a}))::text || ':' || COUNT({a})::text)")
        }
        f => agg_sql(prefix, f, arg),
    }
}

/// A date function in SQL. The zone is a literal (a checked `chrono_tz`
/// name) so SELECT, GROUP BY and ORDER BY spell one expression; datetimes
/// are read in UTC unless converted.
fn date_sql(prefix: &str, c: &DateCall) -> String {
    let col = raw_col(prefix, &c.arg);
    let local = match (c.arg.kind, &c.zone) {
        (Kind::Date, _) => format!("{col}::timestamp"),
        (_, Some(z)) if zone_name_ok(z) => format!("({col} AT TIME ZONE '{z}')"),
        _ => format!("({col} AT TIME ZONE 'UTC')"),
    };
    let part = |p: &str| format!("EXTRACT({p} FROM {local})::bigint");
    let s = c.fiscal_start.clamp(1, 12);
    match c.func {
        DateFn::CalendarYear => part("YEAR"),
        DateFn::CalendarQuarter => part("QUARTER"),
        DateFn::CalendarMonth => part("MONTH"),
        DateFn::DayInMonth => part("DAY"),
        DateFn::DayInWeek => format!("({} + 1)", part("DOW")),
        DateFn::DayInYear => part("DOY"),
        DateFn::DayOnly => format!("{local}::date"),
        DateFn::HourInDay => part("HOUR"),
        DateFn::WeekInMonth => format!("(({} - 1) / 7 + 1)", part("DAY")),
        DateFn::WeekInYear => format!("(({} - 1) / 7 + 1)", part("DOY")),
        DateFn::FiscalYear if s == 1 => part("YEAR"),
        DateFn::FiscalYear => format!(
            "({} + CASE WHEN {} >= {s} THEN 1 ELSE 0 END)",
            part("YEAR"),
            part("MONTH")
        ),
        DateFn::FiscalQuarter => format!("((({} + {}) % 12) / 3 + 1)", part("MONTH"), 12 - s),
        DateFn::FiscalMonth => format!("(({} + {}) % 12 + 1)", part("MONTH"), 12 - s),
    }
}

fn expr_sql(prefix: &str, e: &Expr) -> String {
    match e {
        Expr::Column(c) => cmp_col(prefix, c),
        Expr::Aggregate { func, arg } => agg_sql(prefix, *func, arg.as_ref()),
        Expr::Date(c) => date_sql(prefix, c),
        Expr::Grouping(k) => format!("GROUPING({})::bigint", group_sql(prefix, k)),
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

/// Binds a comparison value for expression `e` (text lower-cased as the
/// column is, numbers as keys, SUM / AVG operands as `numeric`).
fn bind_value(sql: &mut Sql, e: &Expr, v: &Value) -> MosaicResult<()> {
    if let Expr::Aggregate { func, .. } = e {
        match (func, v) {
            (AggFn::Count | AggFn::CountDistinct, Value::Number(d)) => {
                let n = d.trunc().to_string().parse::<i64>().unwrap_or(i64::MAX);
                sql.bind(Param::Int(Some(n)));
                return Ok(());
            }
            (AggFn::Sum | AggFn::Avg, Value::Number(d)) => {
                sql.bind(Param::text(d.to_string()));
                sql.push("::text::numeric");
                return Ok(());
            }
            (AggFn::Count | AggFn::CountDistinct | AggFn::Sum | AggFn::Avg, other) => {
                return Err(bad_value(Kind::Number, other))
            }
            _ => {}
        }
    }
    // Number roll-ups are `numeric` (see `Gen::rollup`).
    let numeric_rollup = matches!(
        e,
        Expr::Column(ColumnRef {
            column: Column::Rollup(_),
            kind: Kind::Number,
            ..
        })
    );
    if let (Expr::Date(_) | Expr::Grouping(_), Value::Number(d)) = (e, v) {
        sql.bind(Param::text(d.to_string()));
        sql.push("::text::numeric");
        return Ok(());
    }
    if let (true, Value::Number(d)) = (numeric_rollup, v) {
        sql.bind(Param::text(d.to_string()));
        sql.push("::text::numeric");
        return Ok(());
    }
    let lower = matches!(e, Expr::Column(_));
    let kind = e.kind();
    let p = match (kind, v) {
        (Kind::Text, Value::Text(s)) if lower => Param::text(s.to_lowercase()),
        (Kind::Id, Value::Text(s)) => Param::text(s.to_lowercase()),
        (Kind::MultiPicklist, Value::Text(s)) => Param::text(multi_picklist_norm(s)),
        (Kind::Text | Kind::Time | Kind::Opaque, Value::Text(s)) => Param::text(s.clone()),
        (Kind::Number, Value::Number(d)) => Param::text(deckey::encode(d)),
        (Kind::Date, Value::Date(d)) => Param::Date(Some(*d)),
        (Kind::Datetime, Value::Datetime(d)) => Param::Time(Some(millis(d))),
        (Kind::Boolean, Value::Boolean(b)) => Param::Bool(Some(*b)),
        (k, other) => return Err(bad_value(k, other)),
    };
    sql.bind(p);
    Ok(())
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

/// SQL generation for one statement.
struct Gen<'a> {
    tenant: &'a str,
    /// Pivot tables hold live records only: unusable for queryAll.
    pivots_usable: bool,
    sub_count: usize,
    visibility: Option<&'a Visibility>,
    access_count: usize,
}

impl Gen<'_> {
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
            match index_key(c.kind == Kind::Text, slot, v)? {
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
            sql.bind(Param::text(keys.remove(0)));
        } else {
            sql.push(" AND value = ANY(");
            sql.bind(Param::TextArray(keys));
            sql.push("::text[])");
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
                let and = matches!(f, Filter::And(_));
                if items.is_empty() {
                    sql.push(if and { "TRUE" } else { "FALSE" });
                    return Ok(());
                }
                sql.push("(");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        sql.push(if and { " AND " } else { " OR " });
                    }
                    self.filter(sql, prefix, object_id, item)?;
                }
                sql.push(")");
            }
            Filter::Not(inner) => {
                sql.push("NOT (");
                self.filter(sql, prefix, object_id, inner)?;
                sql.push(")");
            }
            Filter::IsNull { expr, negated } => {
                let x = match expr {
                    Expr::Column(c) => raw_col(prefix, c),
                    other => expr_sql(prefix, other),
                };
                sql.push(&format!(
                    "({x} IS {}NULL)",
                    if *negated { "NOT " } else { "" }
                ));
            }
            Filter::Compare { expr, op, value } => {
                if *op == CmpOp::Eq
                    && self.try_pivot(sql, prefix, object_id, expr, std::slice::from_ref(value))?
                {
                    return Ok(());
                }
                let x = expr_sql(prefix, expr);
                if *op == CmpOp::Ne {
                    sql.push(&format!("({x} IS NULL OR {x} <> "));
                } else {
                    sql.push(&format!("({x} IS NOT NULL AND {x} {} ", op_sql(*op)));
                }
                bind_value(sql, expr, value)?;
                sql.push(")");
            }
            Filter::In {
                expr,
                values,
                negated,
            } => {
                if values.is_empty() {
                    sql.push(if *negated { "TRUE" } else { "FALSE" });
                    return Ok(());
                }
                if !*negated && self.try_pivot(sql, prefix, object_id, expr, values)? {
                    return Ok(());
                }
                let x = expr_sql(prefix, expr);
                if *negated {
                    sql.push(&format!("({x} IS NULL OR {x} NOT IN ("));
                } else {
                    sql.push(&format!("({x} IS NOT NULL AND {x} IN ("));
                }
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    bind_value(sql, expr, v)?;
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
                        sql.push("FALSE");
                    }
                    sql.push(")");
                }
                if groups.is_empty() {
                    sql.push("FALSE");
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

    fn joins(&mut self, sql: &mut Sql, prefix: &str, joins: &[Join]) {
        for (i, j) in joins.iter().enumerate() {
            let a = alias(prefix, i + 1);
            let from = alias(prefix, j.from);
            sql.push(&format!(
                " LEFT JOIN object_records {a} ON {a}.tenant_id = {from}.tenant_id AND {a}.id = {from}.{} AND {a}.object_id = ",
                j.via.column()
            ));
            sql.bind_text(&j.object_id);
            sql.push(&format!(" AND {a}.is_deleted = FALSE"));
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
            RowAccess::Nothing => sql.push("FALSE"),
            RowAccess::Shared { owners, principals } => {
                let sh = format!("sh{}", self.access_count);
                self.access_count += 1;
                sql.push(&format!("({alias}.owner_id = ANY("));
                sql.bind(Param::TextArray(owners.as_ref().clone()));
                sql.push(&format!(
                    "::text[]) OR EXISTS (SELECT 1 FROM record_shares {sh} WHERE {sh}.tenant_id = "
                ));
                sql.bind_text(self.tenant);
                sql.push(&format!(
                    " AND {sh}.record_id = {alias}.id AND {sh}.principal = ANY("
                ));
                sql.bind(Param::TextArray(principals.as_ref().clone()));
                sql.push("::text[])))");
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
                sql.push(&format!(" AND {m}.is_deleted = FALSE AND "));
                self.row_access(sql, &m, parent);
                sql.push(")");
            }
        }
    }

    /// The root row source: `object_records`, or — when the plan filters or
    /// sorts on roll-up summaries — the object's rows with each roll-up as
    /// a column `ru{i}`, a correlated aggregate over the detail records
    /// found through the master-detail pivot (decision 0039). PostgreSQL
    /// pulls the subquery up, so only the roll-ups used are computed.
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

    /// `(SELECT agg FROM the live detail records of r0 [AND filter])`:
    /// numbers as exact `numeric`, dates as stored.
    fn rollup(&mut self, sql: &mut Sql, i: usize, spec: &RollupSpec) -> MosaicResult<()> {
        let x = format!("rux{i}");
        let c = format!("ruc{i}");
        sql.push("(SELECT ");
        match (spec.func, &spec.arg) {
            (AggFn::Sum, Some(a)) => sql.push(&format!(
                "COALESCE(SUM(mosaic_deckey_numeric({})), 0)",
                raw_col(&c, a)
            )),
            (AggFn::Min | AggFn::Max, Some(a)) if spec.kind == Kind::Number => sql.push(&format!(
                "mosaic_deckey_numeric({})",
                agg_sql(&c, spec.func, Some(a))
            )),
            (AggFn::Min | AggFn::Max, Some(a)) => sql.push(&agg_sql(&c, spec.func, Some(a))),
            _ => sql.push("COUNT(*)::numeric"),
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

    /// `prefix.tenant_id = $n AND prefix.object_id = $m [AND prefix.is_deleted = FALSE]`.
    fn scope(&self, sql: &mut Sql, prefix: &str, object_id: &str, include_deleted: bool) {
        sql.push(&format!("{prefix}.tenant_id = "));
        sql.bind_text(self.tenant);
        sql.push(&format!(" AND {prefix}.object_id = "));
        sql.bind_text(object_id);
        if !include_deleted {
            sql.push(&format!(" AND {prefix}.is_deleted = FALSE"));
        }
    }

    fn order_key(&self, k: &SortKey) -> String {
        let x = match &k.expr {
            Expr::Column(c) if c.kind == Kind::Text => {
                format!("mosaic_lower({})", raw_col("r", c))
            }
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

/// Builds the statement of `plan` under `restrict`; `cap` bounds the rows
/// fetched (one more than may match).
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
    };
    let mut sql = Sql::default();
    sql.push("SELECT ");
    for (i, e) in plan.select.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        match e {
            Expr::Column(c) => sql.push(&raw_col("r", c)),
            Expr::Aggregate { func, arg } => sql.push(&agg_select_sql("r", *func, arg.as_ref())),
            e @ (Expr::Date(_) | Expr::Grouping(_)) => sql.push(&expr_sql("r", e)),
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
            sql.push(" AND r.id = ANY(");
            sql.bind(Param::TextArray(ids.clone()));
            sql.push("::text[])");
        }
        Restrict::ColumnIn { column, values } => {
            sql.push(" AND ");
            let keys: Vec<Value> = values.iter().cloned().map(Value::Text).collect();
            if !g.try_pivot(
                &mut sql,
                "r",
                &plan.object_id,
                &Expr::Column(*column),
                &keys,
            )? {
                sql.push(&format!("{} = ANY(", raw_col("r", column)));
                sql.bind(Param::TextArray(values.clone()));
                sql.push("::text[])");
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
            match plan.grouping_sets {
                GroupingSets::Plain => sql.push(&cols.join(", ")),
                GroupingSets::Rollup => sql.push(&format!("ROLLUP({})", cols.join(", "))),
                GroupingSets::Cube => sql.push(&format!("CUBE({})", cols.join(", "))),
            }
        }
        if let Some(h) = &plan.having {
            sql.push(" HAVING ");
            g.filter(&mut sql, "r", &plan.object_id, h)?;
        }
    }
    if whole || matches!(restrict, Restrict::ColumnIn { .. }) {
        let mut keys: Vec<String> = plan.order_by.iter().map(|k| g.order_key(k)).collect();
        if plan.aggregate {
            // SQLite sorts nulls first in ascending order.
            // Subtotal rows after the rows they total (Salesforce's order).
            let rolled = plan.grouping_sets != GroupingSets::Plain;
            for e in &plan.group_by {
                if rolled {
                    keys.push(format!("GROUPING({}) ASC", group_sql("r", e)));
                }
                keys.push(format!("{} ASC NULLS FIRST", group_sql("r", e)));
            }
        } else {
            keys.push("r.id ASC".into());
        }
        if !keys.is_empty() {
            sql.push(" ORDER BY ");
            sql.push(&keys.join(", "));
        }
    }
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    if whole && !matches!(restrict, Restrict::ColumnIn { .. }) {
        let limit = match (plan.limit, cap) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        };
        if limit.is_some() || plan.offset > 0 {
            sql.push(" LIMIT ");
            sql.bind(Param::Int(limit.map(as_i64)));
            sql.push(" OFFSET ");
            sql.bind(Param::Int(Some(as_i64(plan.offset))));
        }
    } else if let Some(c) = cap {
        if matches!(restrict, Restrict::ColumnIn { .. }) {
            sql.push(" LIMIT ");
            sql.bind(Param::Int(Some(as_i64(c))));
        }
    }
    debug_assert!(
        sql.text.matches(".tenant_id = $").count() > g.sub_count,
        "a statement without its tenant predicate: {}",
        sql.text
    );
    Ok(sql)
}

type Fetched<T> = Result<T, tokio_postgres::Error>;

fn decode_sys(c: SysColumn, row: &tokio_postgres::Row, i: usize) -> Fetched<Value> {
    Ok(match c {
        SysColumn::CreatedDate | SysColumn::LastModifiedDate => row
            .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)?
            .map_or(Value::Null, Value::Datetime),
        SysColumn::IsDeleted => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Value::Null, Value::Boolean),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
    })
}

fn decode_column(c: &ColumnRef, row: &tokio_postgres::Row, i: usize) -> Fetched<Value> {
    match c.column {
        Column::Sys(s) => decode_sys(s, row, i),
        Column::Slot(slot) => decode(row, i, slot),
        // Roll-ups are filtered and sorted on, never selected.
        Column::Rollup(_) => Ok(Value::Null),
    }
}

fn overflow() -> MosaicError {
    MosaicError::internal("numeric overflow in SUM/AVG")
}

/// An exact decimal from `numeric` text, normalized as a decimal key
/// round trip on SQLite leaves it.
fn decimal_of(s: &str) -> MosaicResult<Decimal> {
    Decimal::from_str_exact(s)
        .map(|d| d.normalize())
        .map_err(|_| overflow())
}

fn decode_expr(e: &Expr, row: &tokio_postgres::Row, i: usize) -> MosaicResult<Value> {
    let pg = |e: tokio_postgres::Error| map_pg(&e);
    Ok(match e {
        Expr::Column(c) => decode_column(c, row, i).map_err(pg)?,
        Expr::Aggregate {
            func: AggFn::Count | AggFn::CountDistinct,
            ..
        } => row
            .try_get::<_, Option<i64>>(i)
            .map_err(pg)?
            .map_or(Value::Null, |n| Value::Number(Decimal::from(n))),
        Expr::Aggregate {
            func: AggFn::Sum, ..
        } => match row.try_get::<_, Option<String>>(i).map_err(pg)? {
            Some(s) => Value::Number(decimal_of(&s)?),
            None => Value::Null,
        },
        Expr::Aggregate {
            func: AggFn::Avg, ..
        } => match row.try_get::<_, Option<String>>(i).map_err(pg)? {
            Some(s) => {
                let (sum, n) = s.split_once(':').ok_or_else(overflow)?;
                let sum = decimal_of(sum)?;
                let n: u64 = n.parse().map_err(|_| overflow())?;
                if n == 0 {
                    Value::Null
                } else {
                    let avg = sum.checked_div(Decimal::from(n)).unwrap_or(Decimal::ZERO);
                    // As SQLite: through the decimal key, which normalizes.
                    Value::Number(deckey::decode(&deckey::encode(&avg)).unwrap_or(avg))
                }
            }
            None => Value::Null,
        },
        Expr::Aggregate { arg: Some(c), .. } => decode_column(c, row, i).map_err(pg)?,
        Expr::Aggregate { arg: None, .. } => Value::Null,
        Expr::Date(c) if c.func == DateFn::DayOnly => row
            .try_get::<_, Option<chrono::NaiveDate>>(i)
            .map_err(pg)?
            .map_or(Value::Null, Value::Date),
        Expr::Date(_) | Expr::Grouping(_) => row
            .try_get::<_, Option<i64>>(i)
            .map_err(pg)?
            .map_or(Value::Null, |n| Value::Number(Decimal::from(n))),
    })
}

fn limit_exceeded(max: usize) -> MosaicError {
    MosaicError::new(
        ErrorCode::LIMIT_EXCEEDED,
        format!("the query matches more than {max} rows; add a filter or a LIMIT"),
    )
}

/// The `tsquery` for a SOSL term, built from quoted lexemes: words
/// lower-cased (the document is), a trailing `*` kept as a prefix match
/// (`:*`), `"phrases"` as `<->` chains, `AND` / `OR` / `AND NOT` as `&`,
/// `|`, `& !` (adjacent words: `&`); `?` and other punctuation separate
/// words — the same reading of the term as SQLite's `fts_query`. `None`
/// when the term has no word.
pub fn ts_query(term: &str) -> Option<String> {
    enum Tok {
        Term(String),
        Op(&'static str),
    }
    let quote = |w: &str| {
        format!(
            "'{}'",
            w.to_lowercase().replace('\\', "\\\\").replace('\'', "''")
        )
    };
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
            let words: Vec<String> = words_of(&phrase).iter().map(|w| quote(w)).collect();
            match words.len() {
                0 => {}
                1 => toks.push(Tok::Term(words[0].clone())),
                _ => toks.push(Tok::Term(format!("({})", words.join(" <-> ")))),
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
                            t.push_str(":*");
                        }
                        t
                    })
                    .collect();
                match group.len() {
                    0 => {}
                    1 => toks.push(Tok::Term(group[0].clone())),
                    _ => toks.push(Tok::Term(format!("({})", group.join(" & ")))),
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut pending: Option<&'static str> = None;
    for t in toks {
        match t {
            Tok::Term(s) => {
                if out.is_empty() {
                    out.push(s);
                } else {
                    match pending {
                        Some("OR") => out.push(format!("| {s}")),
                        Some("NOT") => out.push(format!("& !{s}")),
                        _ => out.push(format!("& {s}")),
                    }
                }
                pending = None;
            }
            Tok::Op("AND") if pending == Some("NOT") => {}
            Tok::Op(op) => pending = Some(op),
        }
    }
    (!out.is_empty()).then(|| out.join(" "))
}

#[async_trait]
impl QueryStore for PgRecordStore {
    async fn query(
        &self,
        tenant_id: &str,
        plan: Arc<QueryPlan>,
        restrict: Restrict,
        keep: usize,
        max_rows: usize,
    ) -> MosaicResult<QueryRows> {
        let cap = u64::try_from(max_rows)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let sql = build(tenant_id, &plan, &restrict, Some(cap))?;
        let mut client = self.pool().client().await?;
        let pg = |e: tokio_postgres::Error| map_pg(&e);
        // Streamed: of the rows past `keep` only the id is decoded.
        let stream = client
            .query_raw(sql.text.as_str(), refs(&sql.params))
            .await
            .map_err(pg)?;
        let mut stream = std::pin::pin!(stream);
        let mut out = QueryRows::default();
        while let Some(row) = stream.next().await {
            let row = row.map_err(pg)?;
            out.total += 1;
            if out.total > max_rows {
                return Err(limit_exceeded(max_rows));
            }
            if out.rows.len() < keep {
                let mut vals = Vec::with_capacity(plan.select.len());
                for (i, e) in plan.select.iter().enumerate() {
                    vals.push(decode_expr(e, &row, i)?);
                }
                out.rows.push(vals);
            } else {
                out.rest_ids.push(row.try_get::<_, String>(0).map_err(pg)?);
            }
        }
        // Every row read: the connection goes back to the pool. (Left
        // early, the statement is cancelled with the connection.)
        client.settle();
        Ok(out)
    }

    fn statement(&self, tenant_id: &str, plan: &QueryPlan) -> MosaicResult<(String, Vec<String>)> {
        let sql = build(tenant_id, plan, &Restrict::None, None)?;
        Ok((sql.text, sql.params.iter().map(Param::display).collect()))
    }

    async fn explain(&self, tenant_id: &str, plan: Arc<QueryPlan>) -> MosaicResult<Vec<String>> {
        let sql = build(tenant_id, &plan, &Restrict::None, None)?;
        let text = format!("EXPLAIN {}", sql.text);
        with_client!(self.pool(), |c| {
            let rows = c.query(text.as_str(), &refs(&sql.params)).await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn search(
        &self,
        tenant_id: &str,
        term: &str,
        object_ids: &[String],
        limit: usize,
        visibility: Option<Arc<Visibility>>,
    ) -> MosaicResult<Vec<SearchHit>> {
        let Some(q) = ts_query(term) else {
            return Ok(Vec::new());
        };
        if object_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::default();
        sql.push("SELECT r.object_id, r.id FROM object_records r WHERE r.tenant_id = ");
        sql.bind_text(tenant_id);
        sql.push(" AND r.search_doc @@ ");
        let q_at = sql.bind(Param::text(q));
        sql.push("::text::tsquery AND r.is_deleted = FALSE AND r.object_id = ANY(");
        sql.bind(Param::TextArray(object_ids.to_vec()));
        sql.push("::text[])");
        let mut g = Gen {
            tenant: tenant_id,
            pivots_usable: false,
            sub_count: 0,
            visibility: visibility.as_deref(),
            access_count: 0,
        };
        for o in object_ids {
            if g.visibility.and_then(|v| v.of(o)).is_some() {
                sql.push(" AND (r.object_id <> ");
                sql.bind_text(o);
                sql.push(" OR (TRUE");
                g.access(&mut sql, "r", o);
                sql.push("))");
            }
        }
        sql.push(&format!(
            " ORDER BY ts_rank(r.search_doc, ${q_at}::text::tsquery) DESC, r.id LIMIT "
        ));
        sql.bind(Param::Int(Some(i64::try_from(limit).unwrap_or(i64::MAX))));
        with_client!(self.pool(), |c| {
            let rows = c.query(sql.text.as_str(), &refs(&sql.params)).await?;
            Ok(rows
                .iter()
                .map(|r| {
                    Ok(SearchHit {
                        object_id: r.try_get(0)?,
                        record_id: r.try_get(1)?,
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ts_query;

    #[test]
    fn search_terms_become_quoted_lexemes() {
        assert_eq!(ts_query("Acme"), Some("'acme'".into()));
        assert_eq!(ts_query("acm*"), Some("'acm':*".into()));
        assert_eq!(ts_query("big cat"), Some("'big' & 'cat'".into()));
        assert_eq!(ts_query("\"Big Cat\""), Some("('big' <-> 'cat')".into()));
        assert_eq!(ts_query("a OR b"), Some("'a' | 'b'".into()));
        assert_eq!(ts_query("a AND NOT b"), Some("'a' & !'b'".into()));
        assert_eq!(ts_query("foo-bar"), Some("('foo' & 'bar')".into()));
        assert_eq!(ts_query("x' | !y:*"), Some("'x' & 'y':*".into()));
        assert_eq!(ts_query("O'Brien"), Some("('o' & 'brien')".into()));
        assert_eq!(ts_query("  ?! "), None);
        assert_eq!(ts_query("NOT"), None);
    }
}
