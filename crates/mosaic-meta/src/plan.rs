//! Schema plans: several new objects — their fields, relationships,
//! validation rules and formula fields — checked together against the
//! metadata validators and the tenant's existing schema, and created all
//! or nothing.
//!
//! A plan is JSON in the metadata API's own shapes:
//! `{"objects": [{<object create body>, "validation_rules": [<rule body>…]}…]}`.
//! Lookups may point at existing objects or at other objects of the plan.
//! The metadata store has no multi-object transaction, so
//! [`MetadataService::apply_plan`] inserts the checked definitions one by
//! one and, when one insert fails, removes the ones it inserted.

use crate::formulas;
use crate::model::{ObjectDef, ObjectMeta, ValidationRule};
use crate::service::{add_field_to, decode, encode, MetadataService};
use crate::validate::{
    apply_rule, new_field, new_object, FieldInput, ObjectInput, RuleInput, MAX_OBJECTS_PER_TENANT,
    MAX_VALIDATION_RULES,
};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde_json::Value as Json;
use std::sync::Arc;

/// Most objects one plan may create.
pub const MAX_PLAN_OBJECTS: usize = 25;

/// One problem of a plan, at a JSON path such as `objects[1].fields[0].data_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub path: String,
    pub message: String,
}

fn at(path: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError {
        path: path.into(),
        message: message.into(),
    }
}

/// An error of a validator, its field names prefixed with `prefix`.
fn from_error(prefix: &str, e: MosaicError) -> PlanError {
    let path = match e.fields.first() {
        Some(f) if !f.is_empty() => format!("{prefix}.{f}"),
        _ => prefix.to_string(),
    };
    at(path, e.message)
}

/// The plan's objects, checked, with their ids, slots and lookups
/// resolved — ready to be stored.
#[derive(Debug, Clone)]
pub struct CheckedPlan {
    pub objects: Vec<ObjectDef>,
}

impl CheckedPlan {
    /// What the plan creates, counted: objects, fields, lookups,
    /// validation rules, formula fields.
    pub fn summary(&self) -> Json {
        let fields = self.objects.iter().flat_map(|o| o.fields.iter());
        let (mut n, mut lookups, mut formulas) = (0, 0, 0);
        for f in fields {
            n += 1;
            lookups += usize::from(f.data_type.is_reference());
            formulas += usize::from(f.data_type == mosaic_types::DataType::Formula);
        }
        serde_json::json!({
            "objects": self.objects.len(),
            "fields": n,
            "relationships": lookups,
            "formula_fields": formulas,
            "validation_rules": self.objects.iter().map(|o| o.validation_rules.len()).sum::<usize>(),
        })
    }
}

/// Reads one planned object: the object create body and its rules.
fn read_object(i: usize, v: &Json) -> Result<(ObjectInput, Vec<RuleInput>), PlanError> {
    let path = format!("objects[{i}]");
    let Json::Object(m) = v else {
        return Err(at(path, "a planned object is a JSON object"));
    };
    let mut m = m.clone();
    let rules = match m.remove("validation_rules") {
        None | Some(Json::Null) => Vec::new(),
        Some(r) => serde_json::from_value::<Vec<RuleInput>>(r)
            .map_err(|e| at(format!("{path}.validation_rules"), e.to_string()))?,
    };
    let input = serde_json::from_value::<ObjectInput>(Json::Object(m))
        .map_err(|e| at(path.clone(), e.to_string()))?;
    Ok((input, rules))
}

/// Checks a plan against `existing` (the tenant's objects): every object,
/// field and rule through the validators the metadata API runs, names
/// against the existing schema and each other, slot pools, and every
/// formula of the tenant with the plan's objects added. All problems are
/// returned, not just the first.
pub fn check_plan(
    existing: &[Arc<ObjectMeta>],
    plan: &Json,
) -> Result<CheckedPlan, Vec<PlanError>> {
    let objects = match plan.get("objects") {
        Some(Json::Array(a)) if !a.is_empty() => a,
        _ => return Err(vec![at("objects", "a plan has a non-empty objects array")]),
    };
    if let Some(k) = plan
        .as_object()
        .and_then(|m| m.keys().find(|k| *k != "objects"))
    {
        return Err(vec![at(
            k.as_str(),
            format!("unknown member '{k}' of a plan"),
        )]);
    }
    if objects.len() > MAX_PLAN_OBJECTS {
        return Err(vec![at(
            "objects",
            format!("a plan creates at most {MAX_PLAN_OBJECTS} objects"),
        )]);
    }
    if existing.len() + objects.len() > MAX_OBJECTS_PER_TENANT {
        return Err(vec![at(
            "objects",
            format!(
                "the tenant has {} objects; with {} more it would pass the limit of {MAX_OBJECTS_PER_TENANT}",
                existing.len(),
                objects.len()
            ),
        )]);
    }
    let mut errors = Vec::new();
    // First the objects themselves, so that lookups can name any of them.
    let mut drafts: Vec<(usize, ObjectDef, Vec<FieldInput>, Vec<RuleInput>)> = Vec::new();
    for (i, v) in objects.iter().enumerate() {
        let (mut input, rules) = match read_object(i, v) {
            Ok(x) => x,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let fields = input.fields.take().unwrap_or_default();
        let def = match new_object(&input) {
            Ok(d) => d,
            Err(e) => {
                errors.push(from_error(&format!("objects[{i}]"), e));
                continue;
            }
        };
        if let Some(o) = existing
            .iter()
            .find(|o| o.def.api_name.eq_ignore_ascii_case(&def.api_name))
        {
            errors.push(at(
                format!("objects[{i}].api_name"),
                format!("an object named '{}' already exists", o.def.api_name),
            ));
            continue;
        }
        if drafts
            .iter()
            .any(|(_, d, _, _)| d.api_name.eq_ignore_ascii_case(&def.api_name))
        {
            errors.push(at(
                format!("objects[{i}].api_name"),
                format!("the plan names the object '{}' twice", def.api_name),
            ));
            continue;
        }
        drafts.push((i, def, fields, rules));
    }
    let names: Vec<(String, String)> = existing
        .iter()
        .map(|o| (o.def.id.clone(), o.def.api_name.clone()))
        .chain(
            drafts
                .iter()
                .map(|(_, d, _, _)| (d.id.clone(), d.api_name.clone())),
        )
        .collect();
    let resolve = |n: &str| {
        names
            .iter()
            .find(|(_, a)| a.eq_ignore_ascii_case(n))
            .cloned()
    };
    let mut checked = Vec::with_capacity(drafts.len());
    for (i, mut def, fields, rules) in drafts {
        for (j, fi) in fields.into_iter().enumerate() {
            let prefix = format!("objects[{i}].fields[{j}]");
            match new_field(fi, &resolve).and_then(|mut f| add_field_to(&mut def, &mut f)) {
                Ok(()) => {}
                Err(e) => errors.push(from_error(&prefix, e)),
            }
        }
        if rules.len() > MAX_VALIDATION_RULES {
            errors.push(at(
                format!("objects[{i}].validation_rules"),
                format!("an object may have at most {MAX_VALIDATION_RULES} validation rules"),
            ));
        }
        for (j, ri) in rules.into_iter().enumerate() {
            let mut rule = ValidationRule::blank();
            match apply_rule(&def, &mut rule, ri) {
                Ok(()) => def.validation_rules.push(rule),
                Err(e) => errors.push(from_error(
                    &format!("objects[{i}].validation_rules[{j}]"),
                    e,
                )),
            }
        }
        checked.push((i, def));
    }
    // Every formula of the tenant, with the plan's objects beside the
    // existing ones (formula fields, defaults and rules of the plan read
    // each other's fields through the plan's lookups).
    let mut all: Vec<Arc<ObjectMeta>> = existing.to_vec();
    all.extend(
        checked
            .iter()
            .map(|(_, d)| Arc::new(ObjectMeta::new(d.clone()))),
    );
    if checked
        .iter()
        .any(|(_, d)| !formulas::uses_of(d).is_empty())
    {
        if let Err(e) = formulas::check_all(&all) {
            // The message names the formula (`Object.Field` or the rule).
            let owner = checked
                .iter()
                .find(|(_, d)| e.message.contains(&d.api_name))
                .map_or_else(|| "objects".to_string(), |(i, _)| format!("objects[{i}]"));
            errors.push(at(owner, e.message));
        }
    }
    if errors.is_empty() {
        Ok(CheckedPlan {
            objects: checked.into_iter().map(|(_, d)| d).collect(),
        })
    } else {
        Err(errors)
    }
}

/// A refused plan as one error naming every path.
pub fn plan_refused(errors: &[PlanError]) -> MosaicError {
    let mut e = MosaicError::new(
        ErrorCode::INVALID_INPUT,
        format!(
            "the plan was not applied: {}",
            errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    );
    e.fields = errors.iter().map(|e| e.path.clone()).collect();
    e
}

impl MetadataService {
    /// The tenant's objects straight from the store (a plan is checked
    /// against what is, not a cached copy).
    pub async fn objects_fresh(&self, tenant: &str) -> MosaicResult<Vec<Arc<ObjectMeta>>> {
        self.meta_store()
            .list_objects(tenant)
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    /// Checks a plan against the tenant's schema as it is now.
    pub async fn check_plan(
        &self,
        tenant: &str,
        plan: &Json,
    ) -> MosaicResult<Result<CheckedPlan, Vec<PlanError>>> {
        let existing = self.objects_fresh(tenant).await?;
        Ok(check_plan(&existing, plan))
    }

    /// Checks the plan again and creates its objects, all or nothing: when
    /// an insert fails (a clash that appeared since the check, the store
    /// failing), the objects created so far are removed and the error
    /// returned.
    pub async fn apply_plan(
        &self,
        tenant: &str,
        plan: &Json,
    ) -> MosaicResult<Vec<Arc<ObjectMeta>>> {
        let checked = self
            .check_plan(tenant, plan)
            .await?
            .map_err(|errors| plan_refused(&errors))?;
        let mut created: Vec<&ObjectDef> = Vec::new();
        let mut failure = None;
        for def in &checked.objects {
            match encode(def, tenant) {
                Ok(row) => match self.meta_store().insert_object(row).await {
                    Ok(()) => created.push(def),
                    Err(e) => {
                        failure = Some((def, e));
                        break;
                    }
                },
                Err(e) => {
                    failure = Some((def, e));
                    break;
                }
            }
        }
        if let Some((def, e)) = failure {
            for d in created.iter().rev() {
                if let Err(undo) = self.meta_store().delete_object(tenant, &d.id).await {
                    tracing::error!(tenant, object = %d.api_name, error = %undo.message,
                        "a partly applied schema plan could not be undone");
                }
            }
            self.objects_changed(tenant).await;
            let mut e = e;
            e.message = format!(
                "the plan was not applied (creating {} failed; the {} object(s) created before it were removed): {}",
                def.api_name,
                created.len(),
                e.message
            );
            return Err(e);
        }
        self.objects_changed(tenant).await;
        Ok(checked
            .objects
            .into_iter()
            .map(|d| Arc::new(ObjectMeta::new(d)))
            .collect())
    }
}
