//! Roll-up summary values (decision 0039): a roll-up field's definition as
//! the store's [`RollupSpec`] (the planner filters and sorts on it in SQL),
//! and its values for a batch of master records — one grouped aggregate
//! query over the detail object per roll-up field, never one per record.
//!
//! Roll-ups count every live detail record, whoever the caller is (as
//! Salesforce's do): sharing hides master records, not the totals on them.
//! Detail records in the recycle bin do not count; undeleted, they do again.

use crate::formula_eval::Values;
use crate::platform::Platform;
use crate::records::Caller;
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::rollup::{filter_json, filter_values, FilterOperation, SummaryOperation};
use mosaic_meta::FieldDef;
use mosaic_store::query_store::{
    AggFn, CmpOp, Column, ColumnRef, Expr, Filter, GroupingSets, Kind, QueryPlan, Restrict,
    RollupSpec,
};
use mosaic_types::{DataType, MosaicResult, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Most master records whose roll-ups one aggregate query computes.
pub const ROLLUP_BATCH: usize = 500;

/// How values of a field type compare in a plan.
fn kind_of(t: DataType) -> Kind {
    use DataType::*;
    match t {
        Number | Currency | Percent => Kind::Number,
        Date => Kind::Date,
        Datetime => Kind::Datetime,
        Boolean => Kind::Boolean,
        Time => Kind::Time,
        Lookup | MasterDetail => Kind::Id,
        MultiPicklist => Kind::MultiPicklist,
        _ => Kind::Text,
    }
}

fn col(f: &FieldDef) -> Option<ColumnRef> {
    Some(ColumnRef {
        source: 0,
        column: Column::Slot(f.slot?),
        kind: kind_of(f.data_type),
        pivot: None,
    })
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.to_lowercase().chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// One filter criterion as a plan filter over the detail (`None` when the
/// detail no longer has the field — the metadata API refuses to delete it).
fn criterion(detail: &ObjectMeta, item: &mosaic_meta::rollup::FilterItem) -> Option<Filter> {
    let f = detail.field(&item.field)?;
    let c = col(f)?;
    let value = |v: &str| -> Option<Value> {
        mosaic_meta::coerce::coerce(f, &filter_json(f.data_type, v))
            .ok()
            .filter(|v| !matches!(v, Value::Null))
    };
    let is_null = |negated| Filter::IsNull {
        expr: Expr::Column(c),
        negated,
    };
    Some(match item.operation {
        FilterOperation::Equals | FilterOperation::NotEqual => {
            let raw = filter_values(item);
            let blank = raw.iter().any(|v| v.is_empty());
            let values: Vec<Value> = raw
                .iter()
                .filter(|v| !v.is_empty())
                .filter_map(|v| value(v))
                .collect();
            let mut any = Vec::new();
            if blank {
                any.push(is_null(false));
            }
            if !values.is_empty() {
                any.push(Filter::In {
                    expr: Expr::Column(c),
                    values,
                    negated: false,
                });
            }
            let eq = Filter::Or(any);
            if item.operation == FilterOperation::Equals {
                eq
            } else {
                Filter::Not(Box::new(eq))
            }
        }
        FilterOperation::Contains | FilterOperation::StartsWith => {
            let v = like_escape(&item.value);
            Filter::Like {
                column: c,
                pattern: if item.operation == FilterOperation::Contains {
                    format!("%{v}%")
                } else {
                    format!("{v}%")
                },
            }
        }
        op => {
            let Some(v) = value(&item.value) else {
                // Comparing with blank: nothing is less or greater.
                return Some(Filter::Or(Vec::new()));
            };
            Filter::Compare {
                expr: Expr::Column(c),
                op: match op {
                    FilterOperation::LessThan => CmpOp::Lt,
                    FilterOperation::GreaterThan => CmpOp::Gt,
                    FilterOperation::LessOrEqual => CmpOp::Le,
                    _ => CmpOp::Ge,
                },
                value: v,
            }
        }
    })
}

/// The store's spec of roll-up field `f`, against the tenant's `objects`.
pub fn spec_of(objects: &[Arc<ObjectMeta>], f: &FieldDef) -> Option<RollupSpec> {
    let r = f.rollup.as_ref()?;
    let detail_id = r.summarized_object_id.as_deref()?;
    let detail = objects.iter().find(|o| o.def.id == detail_id)?;
    let field_of = |path: &str| {
        let name = path.rsplit('.').next().unwrap_or(path);
        detail.field(name)
    };
    let link = field_of(&r.summary_foreign_key)?.slot?;
    let (func, arg) = match r.summary_operation {
        SummaryOperation::Count => (AggFn::Count, None),
        op => {
            let c = col(field_of(r.summarized_field.as_deref()?)?)?;
            let func = match op {
                SummaryOperation::Sum => AggFn::Sum,
                SummaryOperation::Min => AggFn::Min,
                _ => AggFn::Max,
            };
            (func, Some(c))
        }
    };
    let items: Vec<Filter> = r
        .summary_filter_items
        .iter()
        .map(|i| criterion(detail, i))
        .collect::<Option<Vec<_>>>()?;
    Some(RollupSpec {
        detail_object_id: detail.def.id.clone(),
        link,
        func,
        arg,
        filter: (!items.is_empty()).then_some(Filter::And(items)),
        kind: kind_of(f.formula_return_type.unwrap_or(DataType::Number)),
    })
}

/// A roll-up's value over no detail records: 0 for count and sum.
fn empty_value(spec: &RollupSpec, f: &FieldDef) -> Value {
    match spec.func {
        AggFn::Count | AggFn::Sum => scaled(Value::Number(rust_decimal::Decimal::ZERO), f),
        _ => Value::Null,
    }
}

fn scaled(v: Value, f: &FieldDef) -> Value {
    match (v, f.scale) {
        (Value::Number(mut d), Some(s)) => {
            d.rescale(s);
            Value::Number(d)
        }
        (v, _) => v,
    }
}

impl Platform {
    /// Computes the roll-up summary fields `names` (others are ignored) of
    /// every record of `rows` (by its `Id`), inserting the values.
    pub async fn compute_rollups(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        rows: &mut [Values],
        names: &[String],
    ) -> MosaicResult<()> {
        let fields: Vec<&FieldDef> = obj
            .def
            .fields
            .iter()
            .filter(|f| {
                f.data_type == DataType::RollupSummary
                    && names.iter().any(|n| n.eq_ignore_ascii_case(&f.api_name))
            })
            .collect();
        if fields.is_empty() || rows.is_empty() {
            return Ok(());
        }
        let objects = self.meta.objects(&c.tenant_id).await?;
        for f in fields {
            let Some(spec) = spec_of(&objects, f) else {
                for row in rows.iter_mut() {
                    row.insert(f.api_name.clone(), Value::Null);
                }
                continue;
            };
            let ids: Vec<String> = rows
                .iter()
                .filter_map(|r| r.get("Id").and_then(|v| v.as_text()).map(str::to_string))
                .collect();
            let mut found: HashMap<String, Value> = HashMap::new();
            for chunk in ids.chunks(ROLLUP_BATCH) {
                found.extend(self.rollup_batch(c, &spec, chunk).await?);
            }
            for row in rows.iter_mut() {
                let v = row
                    .get("Id")
                    .and_then(|v| v.as_text())
                    .and_then(|id| found.get(id).cloned())
                    .map(|v| scaled(v, f))
                    // No detail record (or a record not saved yet).
                    .unwrap_or_else(|| empty_value(&spec, f));
                row.insert(f.api_name.clone(), v);
            }
        }
        Ok(())
    }

    /// `SELECT link, agg FROM detail WHERE link IN ids AND filter GROUP BY link`.
    async fn rollup_batch(
        &self,
        c: &Caller,
        spec: &RollupSpec,
        ids: &[String],
    ) -> MosaicResult<HashMap<String, Value>> {
        let link = ColumnRef {
            source: 0,
            column: Column::Slot(spec.link),
            kind: Kind::Id,
            pivot: Some(mosaic_store::query_store::Pivot::Index),
        };
        let mut filter = vec![Filter::In {
            expr: Expr::Column(link),
            values: ids.iter().cloned().map(Value::Text).collect(),
            negated: false,
        }];
        filter.extend(spec.filter.clone());
        let plan = QueryPlan {
            object_id: spec.detail_object_id.clone(),
            joins: Vec::new(),
            select: vec![
                Expr::Column(link),
                Expr::Aggregate {
                    func: spec.func,
                    arg: spec.arg,
                },
            ],
            filter: Some(Filter::And(filter)),
            group_by: vec![Expr::Column(link)],
            grouping_sets: GroupingSets::Plain,
            having: None,
            order_by: Vec::new(),
            limit: None,
            offset: 0,
            include_deleted: false,
            aggregate: true,
            visibility: None,
            rollups: Vec::new(),
        };
        let rows = self
            .queries
            .store()
            .query(
                &c.tenant_id,
                Arc::new(plan),
                Restrict::None,
                usize::MAX,
                ids.len() + 1,
            )
            .await?;
        Ok(rows
            .rows
            .into_iter()
            .filter_map(|mut r| {
                let v = r.pop()?;
                let id = r.pop()?.as_text()?.to_string();
                Some((id, v))
            })
            .collect())
    }
}
