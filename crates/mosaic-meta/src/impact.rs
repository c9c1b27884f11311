//! Impact analysis of destructive metadata changes — deleting or retyping
//! a field, deleting an object, changing an object's sharing model: what
//! the change would touch (records holding values, formulas, rules,
//! layouts, list views, relationships) and what refuses it until changed
//! first. A report changes nothing; Setup shows it before asking for
//! confirmation, and the metadata API answers it for `?dry_run=true`.

use crate::formulas::{self, compile_on, touched, uses_of};
use crate::model::{ObjectDef, ObjectMeta, SharingModel};
use crate::service::{decode, MetadataService};
use mosaic_types::{DataType, MosaicError, MosaicResult};
use serde::Serialize;
use std::sync::Arc;

/// A field change that may lose data or break what depends on the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldChange {
    Delete,
    /// A new data type for the field.
    Retype(DataType),
}

/// What a destructive change would affect. Every list holds readable
/// names such as `formula field Deal__c.Margin__c`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImpactReport {
    /// The change, in words: `delete field Deal__c.Amount__c`.
    pub change: String,
    /// Records holding a value of the field (field changes), or records of
    /// the object (object deletion, sharing model change).
    pub records: u64,
    /// Formula fields and default formulas reading it.
    pub formulas: Vec<String>,
    pub validation_rules: Vec<String>,
    pub workflow_rules: Vec<String>,
    pub sharing_rules: Vec<String>,
    /// Page layouts showing it (and parents' related lists through it).
    pub layouts: Vec<String>,
    pub list_views: Vec<String>,
    /// Lookups and master-details of other objects involved.
    pub relationships: Vec<String>,
    /// Why the change would be refused as things stand (empty: it may run).
    pub blockers: Vec<String>,
}

impl ImpactReport {
    /// Whether the change touches nothing but the definition itself.
    pub fn is_harmless(&self) -> bool {
        self.records == 0
            && self.formulas.is_empty()
            && self.validation_rules.is_empty()
            && self.workflow_rules.is_empty()
            && self.sharing_rules.is_empty()
            && self.layouts.is_empty()
            && self.list_views.is_empty()
            && self.relationships.is_empty()
    }

    /// Sorts and deduplicates every list (reports compare and print stably).
    fn tidy(mut self) -> ImpactReport {
        for v in [
            &mut self.formulas,
            &mut self.validation_rules,
            &mut self.workflow_rules,
            &mut self.sharing_rules,
            &mut self.layouts,
            &mut self.list_views,
            &mut self.relationships,
        ] {
            v.sort();
            v.dedup();
        }
        self
    }
}

/// Splits the labels `formulas::dependents` gives into the report's lists.
fn file_formula_uses(r: &mut ImpactReport, labels: Vec<String>) {
    for l in labels {
        if l.starts_with("validation rule") {
            r.validation_rules.push(l);
        } else if l.starts_with("workflow rule") || l.starts_with("field update of workflow rule") {
            r.workflow_rules.push(l);
        } else {
            r.formulas.push(l);
        }
    }
}

/// Own layouts and list views of `def` that name `field`.
fn own_views_of(def: &ObjectDef, field: &str, r: &mut ImpactReport) {
    let eq = |s: &str| s.eq_ignore_ascii_case(field);
    for l in &def.layouts {
        if l.sections
            .iter()
            .flat_map(|s| &s.items)
            .any(|i| eq(&i.field))
            || l.compact_fields.iter().any(|c| eq(c))
        {
            r.layouts
                .push(format!("layout {}.{}", def.api_name, l.name));
        }
    }
    for v in &def.list_views {
        let filtered = v
            .filter_criteria
            .as_ref()
            .is_some_and(|c| c.conditions.iter().any(|x| eq(&x.field)));
        if v.columns.iter().any(|c| eq(c)) || v.sort.iter().any(|k| eq(&k.field)) || filtered {
            r.list_views
                .push(format!("list view {}.{}", def.api_name, v.name));
        }
    }
}

/// Layouts of other objects whose related lists go through, or show, a
/// field of `child` (all fields of it when `field` is `None`).
fn related_lists_of(
    all: &[Arc<ObjectMeta>],
    child: &ObjectDef,
    field: Option<&str>,
    r: &mut ImpactReport,
) {
    for o in all {
        for l in &o.def.layouts {
            for rl in l.related_lists.iter().filter(|rl| rl.object_id == child.id) {
                let hit = match field {
                    None => true,
                    Some(f) => {
                        rl.field.eq_ignore_ascii_case(f)
                            || rl.columns.iter().any(|c| c.eq_ignore_ascii_case(f))
                    }
                };
                if hit {
                    r.layouts.push(format!(
                        "related list {} on layout {}.{}",
                        rl.label, o.def.api_name, l.name
                    ));
                }
            }
        }
    }
}

fn field_missing(object: &str, field: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: object '{object}' has no field '{}'",
        field.chars().take(80).collect::<String>()
    ))
}

impl MetadataService {
    /// Every object of the tenant straight from the store (an analysis must
    /// not be based on a cached copy).
    async fn fresh_all(&self, tenant: &str) -> MosaicResult<Vec<Arc<ObjectMeta>>> {
        let rows = self.meta_store().list_objects(tenant).await?;
        rows.iter().map(decode).collect()
    }

    /// What deleting or retyping `field` of `object` would affect.
    pub async fn field_impact(
        &self,
        tenant: &str,
        object: &str,
        field: &str,
        change: FieldChange,
    ) -> MosaicResult<ImpactReport> {
        let cur = self.fresh(tenant, object).await?;
        let def = &cur.def;
        let f = cur
            .field(field)
            .cloned()
            .ok_or_else(|| field_missing(&def.api_name, field))?;
        let all = self.fresh_all(tenant).await?;
        let mut r = ImpactReport {
            change: match change {
                FieldChange::Delete => format!("delete field {}.{}", def.api_name, f.api_name),
                FieldChange::Retype(t) => format!(
                    "change the type of field {}.{} from {} to {}",
                    def.api_name, f.api_name, f.data_type, t
                ),
            },
            ..ImpactReport::default()
        };
        if let Some(slot) = f.slot {
            r.records = self
                .record_store()
                .count_filled(tenant, &def.id, slot)
                .await?;
        }
        // What refuses a delete or rename (as `check_no_dependents`).
        let mut deps = formulas::dependents(&all, &def.id, &f.api_name);
        let workflow = crate::workflow::rules_using(def, &f.api_name);
        let sharing: Vec<String> = crate::sharing::sharing_rules_using(def, &f.api_name)
            .into_iter()
            .map(|n| format!("sharing rule {}.{n}", def.api_name))
            .collect();
        file_formula_uses(&mut r, deps.clone());
        r.workflow_rules.extend(workflow.iter().cloned());
        r.sharing_rules.extend(sharing.iter().cloned());
        deps.extend(workflow);
        deps.extend(sharing);
        deps.sort();
        deps.dedup();
        if !deps.is_empty() {
            r.blockers.push(format!(
                "it is used by {}; change those first",
                deps.join(", ")
            ));
        }
        for v in def.validation_rules.iter().filter(|v| {
            v.error_display_field
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(&f.api_name))
        }) {
            let label = format!("validation rule {}.{}", def.api_name, v.name);
            r.blockers
                .push(format!("{label} shows its errors on this field"));
            r.validation_rules.push(label);
        }
        own_views_of(def, &f.api_name, &mut r);
        if f.data_type.is_reference() {
            if let Some(parent) = all
                .iter()
                .find(|o| Some(o.def.id.as_str()) == f.lookup_object_id.as_deref())
            {
                r.relationships.push(format!(
                    "{}.{} ({}) → {}",
                    def.api_name, f.api_name, f.data_type, parent.def.api_name
                ));
            }
        }
        related_lists_of(&all, def, Some(&f.api_name), &mut r);
        if f.data_type == DataType::MasterDetail
            && def.sharing_model == SharingModel::ControlledByParent
            && def
                .fields
                .iter()
                .filter(|x| x.data_type == DataType::MasterDetail)
                .count()
                == 1
        {
            r.blockers.push(format!(
                "{}'s sharing is controlled by its parent through this field; change its sharing model first",
                def.api_name
            ));
        }
        if let FieldChange::Retype(t) = change {
            if t != f.data_type {
                r.blockers.push(
                    "changing a field's data type is not supported: create a new field and copy the data"
                        .into(),
                );
            }
        }
        Ok(r.tidy())
    }

    /// What deleting `object` would affect: its records, what other
    /// objects hold that reads it, and what goes with it.
    pub async fn object_impact(&self, tenant: &str, object: &str) -> MosaicResult<ImpactReport> {
        let cur = self.fresh(tenant, object).await?;
        let def = &cur.def;
        let all = self.fresh_all(tenant).await?;
        let mut r = ImpactReport {
            change: format!("delete object {} and its records", def.api_name),
            records: self.record_store().count(tenant, &def.id).await?,
            ..ImpactReport::default()
        };
        // Formulas of other objects reaching into this one.
        for o in all.iter().filter(|o| o.def.id != def.id) {
            for u in uses_of(&o.def) {
                if let Ok(c) = compile_on(&o.def, &all, &u.source, &u.options, u.is_default) {
                    if touched(&o.def, &all, &c)
                        .iter()
                        .any(|(id, _)| *id == def.id)
                    {
                        file_formula_uses(&mut r, vec![u.label.clone()]);
                    }
                }
            }
            for f in o
                .def
                .fields
                .iter()
                .filter(|f| f.lookup_object_id.as_deref() == Some(def.id.as_str()))
            {
                let rel = format!(
                    "{}.{} ({}) points at {}",
                    o.def.api_name, f.api_name, f.data_type, def.api_name
                );
                r.blockers.push(format!("{rel}; delete that field first"));
                r.relationships.push(rel);
            }
        }
        // What goes with the object.
        for u in uses_of(def) {
            file_formula_uses(&mut r, vec![u.label]);
        }
        for w in &def.workflow_rules {
            r.workflow_rules
                .push(format!("workflow rule {}.{}", def.api_name, w.name));
        }
        for s in &def.sharing_rules {
            r.sharing_rules
                .push(format!("sharing rule {}.{}", def.api_name, s.name));
        }
        for l in &def.layouts {
            r.layouts
                .push(format!("layout {}.{}", def.api_name, l.name));
        }
        for v in &def.list_views {
            r.list_views
                .push(format!("list view {}.{}", def.api_name, v.name));
        }
        for f in def.fields.iter().filter(|f| f.data_type.is_reference()) {
            if let Some(p) = all
                .iter()
                .find(|o| Some(o.def.id.as_str()) == f.lookup_object_id.as_deref())
                .filter(|p| p.def.id != def.id)
            {
                r.relationships.push(format!(
                    "{}.{} ({}) → {}",
                    def.api_name, f.api_name, f.data_type, p.def.api_name
                ));
            }
        }
        related_lists_of(&all, def, None, &mut r);
        Ok(r.tidy())
    }

    /// What changing `object`'s sharing model to `to` would affect: who
    /// sees its records, its sharing rules, children whose access follows.
    pub async fn sharing_model_impact(
        &self,
        tenant: &str,
        object: &str,
        to: SharingModel,
    ) -> MosaicResult<ImpactReport> {
        let cur = self.fresh(tenant, object).await?;
        let def = &cur.def;
        let all = self.fresh_all(tenant).await?;
        let name = |m: SharingModel| {
            serde_json::to_value(m)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let mut r = ImpactReport {
            change: format!(
                "change the sharing model of {} from {} to {}",
                def.api_name,
                name(def.sharing_model),
                name(to)
            ),
            records: self.record_store().count(tenant, &def.id).await?,
            ..ImpactReport::default()
        };
        for s in &def.sharing_rules {
            r.sharing_rules
                .push(format!("sharing rule {}.{}", def.api_name, s.name));
        }
        for o in all.iter().filter(|o| {
            o.def.id != def.id && o.def.sharing_model == SharingModel::ControlledByParent
        }) {
            for f in o.def.fields.iter().filter(|f| {
                f.data_type == DataType::MasterDetail
                    && f.lookup_object_id.as_deref() == Some(def.id.as_str())
            }) {
                r.relationships.push(format!(
                    "{} records follow their {} through {}.{}",
                    o.def.api_name, def.api_name, o.def.api_name, f.api_name
                ));
            }
        }
        if to == SharingModel::ControlledByParent {
            if !def
                .fields
                .iter()
                .any(|f| f.data_type == DataType::MasterDetail)
            {
                r.blockers
                    .push("controlled_by_parent needs a master_detail field".into());
            }
            if !def.sharing_rules.is_empty() {
                r.blockers.push(format!(
                    "{} has sharing rules; delete them before sharing its records through their master record",
                    def.api_name
                ));
            }
        }
        Ok(r.tidy())
    }
}
