//! Formulas over metadata: the schema the formula checker sees for an
//! object (fields, system fields, relationship paths), compile-time checks
//! of formula fields, default formulas and validation rules, cycle
//! detection, and the dependency analysis that protects referenced fields.

use crate::model::{FieldDef, ObjectDef, ObjectMeta};
use mosaic_formula::{
    Compiled, FieldKind, FormulaError, FormulaType, Options, ResolvedField, Schema,
};
use mosaic_types::{DataType, ErrorCode, MosaicError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Most relationship hops a formula path may take (Salesforce: 10).
pub const MAX_FORMULA_HOPS: usize = 10;

/// The formula kind of a stored or computed field (None: not usable in formulas).
pub fn field_kind(f: &FieldDef) -> Option<FieldKind> {
    use DataType::*;
    Some(match f.data_type {
        Text | AutoNumber | EncryptedText => FieldKind::Text,
        Textarea | LongText | RichText => FieldKind::TextArea,
        Number => FieldKind::Number,
        Currency => FieldKind::Currency,
        Percent => FieldKind::Percent,
        Date => FieldKind::Date,
        Datetime => FieldKind::Datetime,
        Time => FieldKind::Time,
        Boolean => FieldKind::Boolean,
        Picklist => FieldKind::Picklist,
        MultiPicklist => FieldKind::MultiPicklist,
        Lookup | MasterDetail => FieldKind::Id,
        Email => FieldKind::Email,
        Phone => FieldKind::Phone,
        Url => FieldKind::Url,
        // A roll-up's result type is kept where a formula keeps its own.
        Formula | RollupSummary => return f.formula_return_type.and_then(return_kind),
        Geolocation => FieldKind::Location,
    })
}

/// The kind a formula with this declared return type produces.
pub fn return_kind(t: DataType) -> Option<FieldKind> {
    Some(match t {
        DataType::Text => FieldKind::Text,
        DataType::Number => FieldKind::Number,
        DataType::Currency => FieldKind::Currency,
        DataType::Percent => FieldKind::Percent,
        DataType::Date => FieldKind::Date,
        DataType::Datetime => FieldKind::Datetime,
        DataType::Time => FieldKind::Time,
        DataType::Boolean => FieldKind::Boolean,
        _ => return None,
    })
}

fn system_kind(name: &str) -> Option<(&'static str, FieldKind)> {
    const SYS: [(&str, FieldKind); 8] = [
        ("Id", FieldKind::Id),
        ("Name", FieldKind::Text),
        ("OwnerId", FieldKind::Id),
        ("CreatedById", FieldKind::Id),
        ("CreatedDate", FieldKind::Datetime),
        ("LastModifiedById", FieldKind::Id),
        ("LastModifiedDate", FieldKind::Datetime),
        ("IsDeleted", FieldKind::Boolean),
    ];
    SYS.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .copied()
}

/// A geolocation field's name without its `__c` suffix: the stem of its
/// parts `Stem__Latitude__s` and `Stem__Longitude__s`, as in Salesforce.
pub fn location_base(api_name: &str) -> &str {
    api_name
        .strip_suffix("__c")
        .or_else(|| api_name.strip_suffix("__C"))
        .unwrap_or(api_name)
}

/// The geolocation field and part (`"Latitude"` / `"Longitude"`) a name
/// such as `Store__Latitude__s` reads, matched case-insensitively.
pub fn location_part<'o>(obj: &'o ObjectDef, name: &str) -> Option<(&'o FieldDef, &'static str)> {
    let lower = name.to_ascii_lowercase();
    let (stem, part) = if let Some(stem) = lower.strip_suffix("__latitude__s") {
        (stem, "Latitude")
    } else {
        (lower.strip_suffix("__longitude__s")?, "Longitude")
    };
    obj.fields
        .iter()
        .find(|f| {
            f.data_type == DataType::Geolocation
                && location_base(&f.api_name).eq_ignore_ascii_case(stem)
        })
        .map(|f| (f, part))
}

/// One resolved step of a path: the field reached and the object it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct PathTarget {
    /// (object id, field api name) of every relationship field traversed,
    /// then of the final field.
    pub fields: Vec<(String, String)>,
}

/// The schema of one object for the checker, able to follow lookups.
pub struct ObjectSchema<'a> {
    pub object: &'a ObjectDef,
    pub all: &'a [Arc<ObjectMeta>],
}

impl ObjectSchema<'_> {
    fn find(&self, id: &str) -> Option<&ObjectDef> {
        if self.object.id == id {
            return Some(self.object);
        }
        self.all.iter().find(|o| o.def.id == id).map(|o| &o.def)
    }

    /// Resolves a path to its kind, canonical names and the fields it touches.
    pub fn walk(&self, path: &[&str]) -> Option<(ResolvedField, PathTarget)> {
        let (last, hops) = path.split_last()?;
        if hops.len() > MAX_FORMULA_HOPS {
            return None;
        }
        let mut obj = self.object;
        let mut canonical = Vec::with_capacity(path.len());
        let mut touched = Vec::with_capacity(path.len());
        for hop in hops {
            let f = obj.fields.iter().find(|f| f.is_parent_relationship(hop))?;
            canonical.push(f.parent_relationship_name()?);
            touched.push((obj.id.clone(), f.api_name.clone()));
            obj = self.find(f.lookup_object_id.as_deref()?)?;
        }
        let (name, kind, field) = match obj
            .fields
            .iter()
            .find(|f| f.api_name.eq_ignore_ascii_case(last))
        {
            Some(f) => (f.api_name.clone(), field_kind(f)?, f.api_name.clone()),
            None => match location_part(obj, last) {
                Some((f, part)) => (
                    format!("{}__{part}__s", location_base(&f.api_name)),
                    FieldKind::Number,
                    f.api_name.clone(),
                ),
                None => {
                    let (n, k) = system_kind(last)?;
                    (n.to_string(), k, n.to_string())
                }
            },
        };
        canonical.push(name);
        touched.push((obj.id.clone(), field));
        Some((
            ResolvedField { kind, canonical },
            PathTarget { fields: touched },
        ))
    }
}

impl Schema for ObjectSchema<'_> {
    fn resolve(&self, path: &[&str]) -> Option<ResolvedField> {
        self.walk(path).map(|(r, _)| r)
    }
}

/// A schema with no fields (default formulas see only globals and functions).
pub struct NoFields;

impl Schema for NoFields {
    fn resolve(&self, _path: &[&str]) -> Option<ResolvedField> {
        None
    }
}

/// Renders formula errors as one domain error on `field`.
pub fn formula_error(field: &str, src: &str, errors: &[FormulaError]) -> MosaicError {
    let first = errors.first();
    let msg = first
        .map(|e| {
            format!(
                "{field}: {} (line {}, column {})",
                e.message, e.line, e.column
            )
        })
        .unwrap_or_else(|| format!("{field}: invalid formula"));
    let _ = src;
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

/// Options for a formula field's expression.
pub fn field_options(f: &FieldDef) -> Options {
    Options {
        treat_blanks_as_zero: f.formula_blank_as_zero,
        return_type: f
            .formula_return_type
            .and_then(return_kind)
            .map(|k| k.formula_type()),
    }
}

/// Options for a default formula of field `f` (its result must fit the field).
pub fn default_options(f: &FieldDef) -> Options {
    Options {
        treat_blanks_as_zero: false,
        return_type: field_kind(f).map(|k| k.formula_type()),
    }
}

pub fn validation_options() -> Options {
    Options {
        treat_blanks_as_zero: false,
        return_type: Some(FormulaType::Boolean),
    }
}

/// Every formula of a tenant that reads fields: its owner and label.
#[derive(Debug, Clone)]
pub struct FormulaUse {
    pub object_id: String,
    pub label: String,
    pub source: String,
    pub options: Options,
    /// Formula field api name when the use is a formula field.
    pub formula_field: Option<String>,
    pub is_default: bool,
}

/// All formula uses on an object definition.
pub fn uses_of(def: &ObjectDef) -> Vec<FormulaUse> {
    let mut out = Vec::new();
    for f in &def.fields {
        if let (DataType::Formula, Some(src)) = (f.data_type, &f.formula_expression) {
            out.push(FormulaUse {
                object_id: def.id.clone(),
                label: format!("formula field {}.{}", def.api_name, f.api_name),
                source: src.clone(),
                options: field_options(f),
                formula_field: Some(f.api_name.clone()),
                is_default: false,
            });
        }
        if let Some(src) = &f.default_value_formula {
            out.push(FormulaUse {
                object_id: def.id.clone(),
                label: format!("default formula of {}.{}", def.api_name, f.api_name),
                source: src.clone(),
                options: default_options(f),
                formula_field: None,
                is_default: true,
            });
        }
    }
    for r in &def.workflow_rules {
        if let Some(src) = &r.formula {
            out.push(FormulaUse {
                object_id: def.id.clone(),
                label: format!("workflow rule {}.{}", def.api_name, r.name),
                source: src.clone(),
                options: validation_options(),
                formula_field: None,
                is_default: false,
            });
        }
        for a in &r.actions {
            if let Ok(crate::workflow::ActionConfig::FieldUpdate(fu)) = a.config() {
                let Some(src) = fu
                    .formula
                    .filter(|_| fu.value_type == crate::workflow::ValueType::Formula)
                else {
                    continue;
                };
                let target = def.fields.iter().find(|f| f.api_name == fu.field_api_name);
                out.push(FormulaUse {
                    object_id: def.id.clone(),
                    label: format!(
                        "field update of workflow rule {}.{} ({})",
                        def.api_name, r.name, fu.field_api_name
                    ),
                    source: src,
                    options: match target {
                        Some(f) => default_options(f),
                        None => Options {
                            treat_blanks_as_zero: false,
                            return_type: Some(FormulaType::Text),
                        },
                    },
                    formula_field: None,
                    is_default: false,
                });
            }
        }
    }
    for r in &def.validation_rules {
        out.push(FormulaUse {
            object_id: def.id.clone(),
            label: format!("validation rule {}.{}", def.api_name, r.name),
            source: r.formula_expression.clone(),
            options: validation_options(),
            formula_field: None,
            is_default: false,
        });
    }
    out
}

/// Compiles `src` in the context of `def` (with `all` the tenant's objects).
pub fn compile_on(
    def: &ObjectDef,
    all: &[Arc<ObjectMeta>],
    src: &str,
    opts: &Options,
    is_default: bool,
) -> Result<Compiled, Vec<FormulaError>> {
    if is_default {
        mosaic_formula::compile(src, &NoFields, opts)
    } else {
        mosaic_formula::compile(src, &ObjectSchema { object: def, all }, opts)
    }
}

/// The (object id, field) pairs a compiled formula on `def` reads, including
/// the relationship fields it traverses.
pub fn touched(def: &ObjectDef, all: &[Arc<ObjectMeta>], c: &Compiled) -> Vec<(String, String)> {
    let schema = ObjectSchema { object: def, all };
    let mut out = Vec::new();
    for p in c.referenced_fields() {
        let parts: Vec<&str> = p.iter().map(String::as_str).collect();
        if let Some((_, t)) = schema.walk(&parts) {
            out.extend(t.fields);
        }
    }
    out
}

/// Checks every formula of the tenant (after a proposed change, `defs` holds
/// the new definitions): each compiles, and formula fields form no cycle.
/// The error names the offending formula or the cycle.
pub fn check_all(defs: &[Arc<ObjectMeta>]) -> Result<(), MosaicError> {
    let mut edges: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for o in defs {
        names.insert(o.def.id.clone(), o.def.api_name.clone());
        for u in uses_of(&o.def) {
            let compiled =
                compile_on(&o.def, defs, &u.source, &u.options, u.is_default).map_err(|e| {
                    let first = e.first();
                    MosaicError::field(
                        ErrorCode::INVALID_INPUT,
                        "formula_expression",
                        format!(
                            "{}: {}{}",
                            u.label,
                            first.map(|x| x.message.clone()).unwrap_or_default(),
                            first
                                .map(|x| format!(" (line {}, column {})", x.line, x.column))
                                .unwrap_or_default()
                        ),
                    )
                })?;
            if let Some(ff) = &u.formula_field {
                let key = (o.def.id.clone(), ff.to_ascii_lowercase());
                let deps = touched(&o.def, defs, &compiled)
                    .into_iter()
                    .map(|(obj, f)| (obj, f.to_ascii_lowercase()))
                    .collect();
                edges.insert(key, deps);
            }
        }
    }
    // Depth-first search for a cycle among formula fields.
    let mut state: HashMap<(String, String), u8> = HashMap::new();
    let mut stack: Vec<(String, String)> = Vec::new();
    fn visit(
        n: &(String, String),
        edges: &HashMap<(String, String), Vec<(String, String)>>,
        state: &mut HashMap<(String, String), u8>,
        stack: &mut Vec<(String, String)>,
    ) -> Option<Vec<(String, String)>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = stack.iter().position(|x| x == n).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(n.clone());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        if let Some(next) = edges.get(n) {
            for m in next {
                if edges.contains_key(m) {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut keys: Vec<_> = edges.keys().cloned().collect();
    keys.sort();
    for k in keys {
        if let Some(cycle) = visit(&k, &edges, &mut state, &mut stack) {
            let field_name = |(o, f): &(String, String)| {
                let obj = defs.iter().find(|d| &d.def.id == o);
                let fname = obj
                    .and_then(|d| {
                        d.def
                            .fields
                            .iter()
                            .find(|x| x.api_name.eq_ignore_ascii_case(f))
                    })
                    .map(|x| x.api_name.clone())
                    .unwrap_or_else(|| f.clone());
                format!("{}.{}", names.get(o).cloned().unwrap_or_default(), fname)
            };
            let text: Vec<String> = cycle.iter().map(field_name).collect();
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "formula_expression",
                format!("formula fields form a cycle: {}", text.join(" → ")),
            ));
        }
    }
    Ok(())
}

/// Labels of the formulas that read `field` of object `object_id` (directly
/// or as a relationship hop).
pub fn dependents(defs: &[Arc<ObjectMeta>], object_id: &str, field: &str) -> Vec<String> {
    let mut out = HashSet::new();
    for o in defs {
        for u in uses_of(&o.def) {
            if u.object_id == object_id
                && u.formula_field
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(field))
            {
                continue;
            }
            if let Ok(c) = compile_on(&o.def, defs, &u.source, &u.options, u.is_default) {
                if touched(&o.def, defs, &c)
                    .iter()
                    .any(|(obj, f)| obj == object_id && f.eq_ignore_ascii_case(field))
                {
                    out.insert(u.label.clone());
                }
            }
        }
    }
    let mut v: Vec<String> = out.into_iter().collect();
    v.sort();
    v
}
