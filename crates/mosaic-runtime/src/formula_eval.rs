//! Evaluation of formulas on records: formula fields on read, default
//! formulas on create, validation rules on save.
//!
//! Formulas are compiled once per object version (shared cache in
//! `mosaic-meta`). Before evaluating, every value a formula reads is
//! fetched: cross-object paths are followed hop by hop for all records of a
//! batch at once (one `get_many` per hop and object, never one per row), and
//! formula fields of related records are evaluated the same way, batched.

use crate::platform::Platform;
use crate::records::Caller;
use mosaic_formula::{EvalContext, FValue, Record};
use mosaic_meta::formulas::{default_options, field_options, validation_options};
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::FieldDef;
use mosaic_store::RecordRow;
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult, Value};
use rust_decimal::RoundingStrategy;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Deepest chain of formula fields reading formula fields on related records.
pub const MAX_FORMULA_NESTING: usize = 8;

/// A record's values by field api name (system fields included).
pub type Values = HashMap<String, Value>;

pub fn to_fvalue(v: &Value) -> FValue {
    match v {
        Value::Null | Value::Location { .. } => FValue::Null,
        Value::Text(s) => FValue::Text(s.clone()),
        Value::Number(d) => FValue::Number(*d),
        Value::Boolean(b) => FValue::Boolean(*b),
        Value::Date(d) => FValue::Date(*d),
        Value::Datetime(d) => FValue::Datetime(*d),
        Value::Time(t) => FValue::Time(*t),
    }
}

/// One part (`"Latitude"` / `"Longitude"`) of a geolocation value, as the
/// formula field `Name__Latitude__s` / `Name__Longitude__s` reads it.
fn location_fvalue(v: Option<&Value>, part: &str) -> FValue {
    match v {
        Some(Value::Location {
            latitude,
            longitude,
        }) => FValue::Number(if part == "Latitude" {
            *latitude
        } else {
            *longitude
        }),
        _ => FValue::Null,
    }
}

/// A formula result as a value of `f` (formula fields round to their scale).
pub fn from_fvalue(v: FValue, f: &FieldDef) -> Value {
    match v {
        FValue::Null => Value::Null,
        FValue::Text(s) => Value::Text(s),
        FValue::Number(d) => Value::Number(match f.scale {
            Some(s) => {
                let mut x = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
                x.rescale(s);
                x
            }
            None => d,
        }),
        FValue::Boolean(b) => Value::Boolean(b),
        FValue::Date(d) => Value::Date(d),
        FValue::Datetime(d) => Value::Datetime(d),
        FValue::Time(t) => Value::Time(t),
    }
}

/// The values a formula sees, by canonical path.
#[derive(Default)]
struct PathRecord {
    values: HashMap<Vec<String>, FValue>,
    priors: Option<HashMap<Vec<String>, FValue>>,
    is_new: bool,
}

impl Record for PathRecord {
    fn get(&self, path: &[String]) -> FValue {
        self.values.get(path).cloned().unwrap_or(FValue::Null)
    }
    fn prior(&self, path: &[String]) -> FValue {
        match &self.priors {
            Some(p) => p.get(path).cloned().unwrap_or(FValue::Null),
            None => FValue::Null,
        }
    }
    fn is_new(&self) -> bool {
        self.is_new
    }
    fn is_changed(&self, path: &[String]) -> bool {
        match &self.priors {
            Some(_) => self.prior(path) != self.get(path),
            None => false,
        }
    }
}

/// Values of a stored row by field name (decrypted, scaled).
pub fn row_values(p: &Platform, obj: &ObjectMeta, row: &RecordRow) -> Values {
    let mut m = Values::with_capacity(obj.def.fields.len() + 8);
    m.insert("Id".into(), Value::Text(row.id.clone()));
    m.insert(
        "Name".into(),
        row.name.clone().map(Value::Text).unwrap_or(Value::Null),
    );
    m.insert("OwnerId".into(), Value::Text(row.owner_id.clone()));
    m.insert("CreatedById".into(), Value::Text(row.created_by.clone()));
    m.insert("CreatedDate".into(), Value::Datetime(row.created_at));
    m.insert(
        "LastModifiedById".into(),
        Value::Text(row.modified_by.clone()),
    );
    m.insert("LastModifiedDate".into(), Value::Datetime(row.modified_at));
    m.insert("IsDeleted".into(), Value::Boolean(row.is_deleted));
    for f in &obj.def.fields {
        if let Some(slot) = f.slot {
            let raw = row.value(slot).cloned().unwrap_or(Value::Null);
            m.insert(f.api_name.clone(), p.readable(f, raw));
        }
    }
    m
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Platform {
    /// "Now" is the platform's clock; `TODAY()` is the date in the
    /// caller's zone at that instant.
    fn ctx<'a>(&self, c: &'a Caller) -> EvalContext<'a> {
        let now = self.config.clock.now();
        EvalContext {
            now,
            user_id: &c.user_id,
            username: &c.username,
            org_id: &c.tenant_id,
            tz_offset_minutes: crate::zones::offset_minutes(c.zone, now),
        }
    }

    /// The formula fields of `obj` needed to compute `wanted`, in an order
    /// where each comes after the same-object formula fields it reads.
    async fn formula_order(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        wanted: &[String],
    ) -> MosaicResult<Vec<FieldDef>> {
        let mut order: Vec<FieldDef> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut stack: Vec<(String, bool)> = wanted
            .iter()
            .rev()
            .map(|w| (w.to_ascii_lowercase(), false))
            .collect();
        let mut guard = 0usize;
        while let Some((name, expanded)) = stack.pop() {
            guard += 1;
            if guard > 10_000 {
                return Err(MosaicError::internal("formula dependency walk did not end"));
            }
            let Some(f) = obj
                .field(&name)
                .filter(|f| f.data_type == DataType::Formula)
            else {
                continue;
            };
            if seen.contains(&name) {
                continue;
            }
            if expanded {
                seen.insert(name);
                order.push(f.clone());
                continue;
            }
            stack.push((name.clone(), true));
            let compiled = self.compile_field(c, obj, f).await?;
            for p in compiled.referenced_fields() {
                if p.len() == 1 && !seen.contains(&p[0].to_ascii_lowercase()) {
                    stack.push((p[0].to_ascii_lowercase(), false));
                }
            }
        }
        Ok(order)
    }

    async fn compile_field(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        f: &FieldDef,
    ) -> MosaicResult<Arc<mosaic_formula::Compiled>> {
        let src = f.formula_expression.as_deref().unwrap_or("");
        self.meta
            .compiled(&c.tenant_id, obj, src, &field_options(f), false)
            .await
            .map_err(|e| mosaic_meta::formulas::formula_error(&f.api_name, src, &e))
    }

    /// Computes the formula fields named in `wanted` (others are ignored) on
    /// every record of `rows`, inserting the results into each row's values.
    pub fn compute_formulas<'a>(
        &'a self,
        c: &'a Caller,
        obj: &'a ObjectMeta,
        rows: &'a mut [Values],
        wanted: &'a [String],
        depth: usize,
    ) -> BoxFut<'a, MosaicResult<()>> {
        let span = tracing::info_span!(
            "formula.fields",
            object = %obj.api_name(),
            rows = rows.len(),
            depth
        );
        Box::pin(tracing::Instrument::instrument(
            self.compute_formulas_in_span(c, obj, rows, wanted, depth),
            span,
        ))
    }

    fn compute_formulas_in_span<'a>(
        &'a self,
        c: &'a Caller,
        obj: &'a ObjectMeta,
        rows: &'a mut [Values],
        wanted: &'a [String],
        depth: usize,
    ) -> BoxFut<'a, MosaicResult<()>> {
        Box::pin(async move {
            if rows.is_empty() || depth > MAX_FORMULA_NESTING {
                return Ok(());
            }
            let order = self.formula_order(c, obj, wanted).await?;
            // Roll-ups wanted, or read by the formulas to compute.
            let mut rollups: Vec<String> = wanted
                .iter()
                .filter(|n| {
                    obj.field(n)
                        .is_some_and(|f| f.data_type == DataType::RollupSummary)
                })
                .cloned()
                .collect();
            for f in &order {
                let compiled = self.compile_field(c, obj, f).await?;
                for p in compiled.referenced_fields() {
                    if let Some(r) = p
                        .first()
                        .filter(|_| p.len() == 1)
                        .and_then(|n| obj.field(n))
                        .filter(|r| r.data_type == DataType::RollupSummary)
                    {
                        rollups.push(r.api_name.clone());
                    }
                }
            }
            if !rollups.is_empty() {
                self.compute_rollups(c, obj, rows, &rollups).await?;
            }
            if order.is_empty() {
                return Ok(());
            }
            let ctx = self.ctx(c);
            for f in &order {
                let compiled = self.compile_field(c, obj, f).await?;
                let paths = compiled.referenced_fields().to_vec();
                let records = self.path_records(c, obj, rows, &paths, depth).await?;
                metrics::counter!("formula_evaluations_total", "kind" => "field")
                    .increment(rows.len() as u64);
                for (row, rec) in rows.iter_mut().zip(records) {
                    let v = match compiled.eval(&rec, &ctx) {
                        Ok(v) => from_fvalue(v, f),
                        Err(e) => {
                            tracing::debug!(field = %f.api_name, error = %e.message, "formula evaluation failed; value is null");
                            Value::Null
                        }
                    };
                    row.insert(f.api_name.clone(), v);
                }
            }
            Ok(())
        })
    }

    /// Builds, for every row, the values of `paths` (following lookups in
    /// batches).
    fn path_records<'a>(
        &'a self,
        c: &'a Caller,
        obj: &'a ObjectMeta,
        rows: &'a [Values],
        paths: &'a [Vec<String>],
        depth: usize,
    ) -> BoxFut<'a, MosaicResult<Vec<PathRecord>>> {
        Box::pin(async move {
            let mut out: Vec<PathRecord> = rows.iter().map(|_| PathRecord::default()).collect();
            // Group multi-hop paths by their first relationship.
            let mut by_rel: HashMap<String, Vec<Vec<String>>> = HashMap::new();
            for p in paths {
                if p.len() == 1 {
                    let part = mosaic_meta::formulas::location_part(&obj.def, &p[0]);
                    for (row, rec) in rows.iter().zip(out.iter_mut()) {
                        let v = match (row.get(&p[0]), part) {
                            (Some(v), _) => to_fvalue(v),
                            (None, Some((f, which))) => {
                                location_fvalue(row.get(&f.api_name), which)
                            }
                            (None, None) => FValue::Null,
                        };
                        rec.values.insert(p.clone(), v);
                    }
                } else {
                    by_rel
                        .entry(p[0].clone())
                        .or_default()
                        .push(p[1..].to_vec());
                }
            }
            for (rel, rests) in by_rel {
                let Some(lf) = obj
                    .def
                    .fields
                    .iter()
                    .find(|f| f.parent_relationship_name().as_deref() == Some(rel.as_str()))
                else {
                    continue;
                };
                let Some(target_id) = &lf.lookup_object_id else {
                    continue;
                };
                let target = self.meta.object_by_id(&c.tenant_id, target_id).await?;
                let ids: Vec<String> = rows
                    .iter()
                    .filter_map(|r| {
                        r.get(&lf.api_name)
                            .and_then(|v| v.as_text())
                            .map(str::to_string)
                    })
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let related_rows = self
                    .records
                    .get_many(&c.tenant_id, target.id(), &ids, &target.slots())
                    .await?;
                let mut related: Vec<Values> = related_rows
                    .iter()
                    .map(|r| row_values(self, &target, r))
                    .collect();
                let wanted_formulas: Vec<String> = rests
                    .iter()
                    .filter(|r| r.len() == 1)
                    .map(|r| r[0].clone())
                    .filter(|n| target.field(n).is_some_and(|f| f.data_type.is_computed()))
                    .collect();
                if !wanted_formulas.is_empty() {
                    self.compute_formulas(c, &target, &mut related, &wanted_formulas, depth + 1)
                        .await?;
                }
                let sub = self
                    .path_records(c, &target, &related, &rests, depth + 1)
                    .await?;
                let index: HashMap<&str, usize> = related
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| r.get("Id").and_then(|v| v.as_text()).map(|id| (id, i)))
                    .collect();
                for (row, rec) in rows.iter().zip(out.iter_mut()) {
                    let hit = row
                        .get(&lf.api_name)
                        .and_then(|v| v.as_text())
                        .and_then(|id| index.get(id))
                        .and_then(|i| sub.get(*i));
                    for rest in &rests {
                        let mut full = vec![rel.clone()];
                        full.extend(rest.iter().cloned());
                        let v = hit
                            .and_then(|s| s.values.get(rest).cloned())
                            .unwrap_or(FValue::Null);
                        rec.values.insert(full, v);
                    }
                }
            }
            Ok(out)
        })
    }

    /// Evaluates the default formula of `f` (on create).
    #[tracing::instrument(name = "formula.default", skip_all)]
    pub async fn default_from_formula(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        f: &FieldDef,
    ) -> MosaicResult<Option<Value>> {
        let Some(src) = &f.default_value_formula else {
            return Ok(None);
        };
        let compiled = self
            .meta
            .compiled(&c.tenant_id, obj, src, &default_options(f), true)
            .await
            .map_err(|e| mosaic_meta::formulas::formula_error(&f.api_name, src, &e))?;
        let v = compiled
            .eval(&PathRecord::default(), &self.ctx(c))
            .map_err(|e| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    f.api_name.clone(),
                    format!("{}: default formula failed: {}", f.api_name, e.message),
                )
            })?;
        let as_json = match &v {
            FValue::Null => return Ok(None),
            FValue::Text(s) => serde_json::Value::String(s.clone()),
            FValue::Number(d) => {
                serde_json::from_str(&d.to_string()).unwrap_or(serde_json::Value::Null)
            }
            FValue::Boolean(b) => serde_json::Value::Bool(*b),
            FValue::Date(d) => serde_json::Value::String(d.format("%Y-%m-%d").to_string()),
            FValue::Datetime(d) => serde_json::Value::String(d.to_rfc3339()),
            FValue::Time(t) => serde_json::Value::String(t.format("%H:%M:%S%.3f").to_string()),
        };
        mosaic_meta::coerce::coerce(f, &as_json).map(Some)
    }

    /// Runs the active validation rules of `obj` on a record about to be
    /// saved; returns one error per rule that fires.
    #[tracing::instrument(name = "formula.validation_rules", skip_all, fields(object = %obj.api_name()))]
    pub async fn run_validation_rules(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        new: Values,
        old: Option<Values>,
    ) -> MosaicResult<Vec<MosaicError>> {
        let rules: Vec<_> = obj
            .def
            .validation_rules
            .iter()
            .filter(|r| r.active)
            .collect();
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        // Only the formula fields the rules read are computed (each may
        // cost reads across relationships).
        let mut formula_names: Vec<String> = Vec::new();
        for r in &rules {
            let compiled = self
                .meta
                .compiled(
                    &c.tenant_id,
                    obj,
                    &r.formula_expression,
                    &validation_options(),
                    false,
                )
                .await
                .map_err(|e| {
                    mosaic_meta::formulas::formula_error(&r.name, &r.formula_expression, &e)
                })?;
            for p in compiled.referenced_fields() {
                if let Some(f) = p.first().and_then(|n| obj.field(n)) {
                    if f.data_type.is_computed() && !formula_names.contains(&f.api_name) {
                        formula_names.push(f.api_name.clone());
                    }
                }
            }
        }
        let mut rows = vec![new];
        let mut priors_rows = old.map(|o| vec![o]);
        if !formula_names.is_empty() {
            self.compute_formulas(c, obj, &mut rows, &formula_names, 0)
                .await?;
            if let Some(p) = priors_rows.as_mut() {
                self.compute_formulas(c, obj, p, &formula_names, 0).await?;
            }
        }
        let ctx = self.ctx(c);
        let mut errors = Vec::new();
        for r in rules {
            let compiled = self
                .meta
                .compiled(
                    &c.tenant_id,
                    obj,
                    &r.formula_expression,
                    &validation_options(),
                    false,
                )
                .await
                .map_err(|e| {
                    mosaic_meta::formulas::formula_error(&r.name, &r.formula_expression, &e)
                })?;
            let paths = compiled.referenced_fields().to_vec();
            let mut rec = self
                .path_records(c, obj, &rows, &paths, 0)
                .await?
                .pop()
                .unwrap_or_default();
            rec.is_new = priors_rows.is_none();
            if let Some(p) = &priors_rows {
                let prior = self
                    .path_records(c, obj, p, &paths, 0)
                    .await?
                    .pop()
                    .unwrap_or_default();
                rec.priors = Some(prior.values);
            }
            metrics::counter!("formula_evaluations_total", "kind" => "validation_rule")
                .increment(1);
            let fires = matches!(compiled.eval(&rec, &ctx), Ok(FValue::Boolean(true)));
            if fires {
                errors.push(MosaicError {
                    code: ErrorCode::FIELD_CUSTOM_VALIDATION_EXCEPTION,
                    message: r.error_message.clone(),
                    fields: r.error_display_field.iter().cloned().collect(),
                });
            }
        }
        Ok(errors)
    }
}

impl Platform {
    /// Evaluates `src` (compiled with `opts`, cached) on a record about to
    /// be saved, with `old` its values before the save (ISCHANGED,
    /// PRIORVALUE, ISNEW). `new` and `old` carry formula fields already.
    pub(crate) async fn eval_on_save(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        label: &str,
        src: &str,
        opts: &mosaic_formula::Options,
        (new, old): (&Values, Option<&Values>),
    ) -> MosaicResult<FValue> {
        let compiled = self
            .meta
            .compiled(&c.tenant_id, obj, src, opts, false)
            .await
            .map_err(|e| mosaic_meta::formulas::formula_error(label, src, &e))?;
        let paths = compiled.referenced_fields().to_vec();
        let rows = [new.clone()];
        let mut rec = self
            .path_records(c, obj, &rows, &paths, 0)
            .await?
            .pop()
            .unwrap_or_default();
        rec.is_new = old.is_none();
        if let Some(o) = old {
            let prior = self
                .path_records(c, obj, std::slice::from_ref(o), &paths, 0)
                .await?
                .pop()
                .unwrap_or_default();
            rec.priors = Some(prior.values);
        }
        metrics::counter!("formula_evaluations_total", "kind" => "workflow").increment(1);
        compiled.eval(&rec, &self.ctx(c)).map_err(|e| {
            MosaicError::new(
                ErrorCode::INVALID_INPUT,
                format!("{label}: the formula failed: {}", e.message),
            )
        })
    }
}

/// The wire name of a formula value's type.
pub fn type_name(v: &FValue) -> &'static str {
    match v {
        FValue::Null => "null",
        FValue::Text(_) => "text",
        FValue::Number(_) => "number",
        FValue::Boolean(_) => "boolean",
        FValue::Date(_) => "date",
        FValue::Datetime(_) => "datetime",
        FValue::Time(_) => "time",
    }
}

/// A declared return type name → the formula type it requires.
pub fn parse_return_type(name: &str) -> Option<mosaic_formula::FormulaType> {
    DataType::parse(name)
        .and_then(mosaic_meta::formulas::return_kind)
        .map(|k| k.formula_type())
}

impl Platform {
    /// Compiles an ad-hoc expression (the editor's check), against an
    /// object's schema or, without one, against no fields.
    pub async fn check_expression(
        &self,
        c: &Caller,
        obj: Option<&ObjectMeta>,
        src: &str,
        return_type: Option<mosaic_formula::FormulaType>,
    ) -> MosaicResult<Result<Arc<mosaic_formula::Compiled>, Vec<mosaic_formula::FormulaError>>>
    {
        let opts = mosaic_formula::Options {
            treat_blanks_as_zero: false,
            return_type,
        };
        Ok(match obj {
            Some(o) => self.meta.compiled(&c.tenant_id, o, src, &opts, false).await,
            None => {
                mosaic_formula::compile(src, &mosaic_meta::formulas::NoFields, &opts).map(Arc::new)
            }
        })
    }

    /// Evaluates an ad-hoc expression on a stored record, on values given
    /// for an object's fields, or on untyped values (typed from their JSON).
    pub async fn evaluate_expression(
        &self,
        c: &Caller,
        obj: Option<Arc<ObjectMeta>>,
        src: &str,
        record: Option<&serde_json::Map<String, serde_json::Value>>,
        record_id: Option<&str>,
    ) -> Result<FValue, MosaicError> {
        let compile_err = |e: Vec<mosaic_formula::FormulaError>| {
            let first = e.into_iter().next();
            MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "expression",
                first
                    .map(|x| {
                        format!(
                            "{} (line {}, column {}, position {})",
                            x.message, x.line, x.column, x.position
                        )
                    })
                    .unwrap_or_else(|| "invalid formula".into()),
            )
        };
        let ctx = self.ctx(c);
        let Some(obj) = obj else {
            let mut rec = mosaic_formula::MapRecord::new();
            let mut vals: Vec<(String, FValue)> = Vec::new();
            for (k, v) in record.into_iter().flatten() {
                let fv = match v {
                    serde_json::Value::Null => FValue::Null,
                    serde_json::Value::Bool(b) => FValue::Boolean(*b),
                    serde_json::Value::Number(n) => n
                        .to_string()
                        .parse::<rust_decimal::Decimal>()
                        .ok()
                        .or_else(|| rust_decimal::Decimal::from_scientific(&n.to_string()).ok())
                        .map(FValue::Number)
                        .ok_or_else(|| {
                            MosaicError::field(
                                ErrorCode::INVALID_INPUT,
                                format!("record.{k}"),
                                "number out of range",
                            )
                        })?,
                    serde_json::Value::String(s) => FValue::Text(s.clone()),
                    _ => {
                        return Err(MosaicError::field(
                            ErrorCode::INVALID_INPUT,
                            format!("record.{k}"),
                            "record values are text, numbers, booleans or null",
                        ))
                    }
                };
                vals.push((k.clone(), fv));
            }
            let schema = mosaic_formula::DynamicSchema::from_sample(
                vals.iter().map(|(k, v)| (k.as_str(), v)),
            );
            for (k, v) in &vals {
                rec.set(k, v.clone());
            }
            let compiled =
                mosaic_formula::compile(src, &schema, &Default::default()).map_err(compile_err)?;
            return compiled.eval(&rec, &ctx).map_err(|e| {
                MosaicError::field(ErrorCode::INVALID_INPUT, "expression", e.message)
            });
        };
        let compiled = self
            .meta
            .compiled(&c.tenant_id, &obj, src, &Default::default(), false)
            .await
            .map_err(compile_err)?;
        let mut values = match record_id {
            Some(id) => {
                let id = crate::records::parse_record_id(id)?;
                let row = self
                    .records
                    .get(&c.tenant_id, obj.id(), &id, &obj.slots())
                    .await?
                    .filter(|r| !r.is_deleted)
                    .ok_or_else(|| {
                        MosaicError::not_found(format!(
                            "The requested resource does not exist: no record with id '{id}'"
                        ))
                    })?;
                row_values(self, &obj, &row)
            }
            None => Values::new(),
        };
        for (k, v) in record.into_iter().flatten() {
            if let Some(f) = obj.field(k) {
                values.insert(f.api_name.clone(), mosaic_meta::coerce::coerce(f, v)?);
            } else if k.eq_ignore_ascii_case("Name") {
                values.insert(
                    "Name".into(),
                    v.as_str()
                        .map(|s| Value::Text(s.to_string()))
                        .unwrap_or(Value::Null),
                );
            } else {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_FIELD,
                    k.clone(),
                    format!("No such column '{k}' on sobject of type {}", obj.api_name()),
                ));
            }
        }
        let mut rows = vec![values];
        let formula_names: Vec<String> = obj
            .def
            .fields
            .iter()
            .filter(|f| f.data_type == DataType::Formula)
            .map(|f| f.api_name.clone())
            .collect();
        self.compute_formulas(c, &obj, &mut rows, &formula_names, 0)
            .await?;
        let paths = compiled.referenced_fields().to_vec();
        let rec = self
            .path_records(c, &obj, &rows, &paths, 0)
            .await?
            .pop()
            .unwrap_or_default();
        compiled
            .eval(&rec, &ctx)
            .map_err(|e| MosaicError::field(ErrorCode::INVALID_INPUT, "expression", e.message))
    }
}
