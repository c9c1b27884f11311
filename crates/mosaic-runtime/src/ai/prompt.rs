//! The prompts: what Mosaic tells the LLM about the language, the tenant's
//! schema and the answer it wants. A prompt carries definitions (object
//! and field names, labels, types, picklist values) and the user's text —
//! never record data.

use super::client::Prompt;
use super::CheckError;
use mosaic_meta::model::ObjectMeta;
use mosaic_types::DataType;
use std::fmt::Write;
use std::sync::Arc;

/// Objects described in one natural-language query prompt; with more, the
/// first ones are described and the answer warns.
pub const MAX_PROMPT_OBJECTS: usize = 50;
/// Fields described per object (the platform's custom-field limit).
pub const MAX_PROMPT_FIELDS: usize = 500;
/// Picklist values shown per field.
pub const MAX_PICKLIST_VALUES_SHOWN: usize = 25;

/// The fields every record has, with their types.
const STANDARD_FIELDS: &str = "Id (id), Name (text), OwnerId (id of a User), CreatedById (id of a User), CreatedDate (datetime), LastModifiedById (id of a User), LastModifiedDate (datetime), IsDeleted (boolean)";

const ANSWER_FORMAT: &str =
    "Answer with exactly one JSON object and nothing else — no Markdown, no prose around it:";

/// One object's fields, one line each: API name, label, type and what the
/// type needs to be used well (lookup targets and relationship names,
/// picklist values, formula result types).
pub fn describe_object(obj: &ObjectMeta, all: &[Arc<ObjectMeta>], children: bool) -> String {
    let def = &obj.def;
    let mut out = format!("Object {} (label \"{}\")\n", def.api_name, def.label);
    let _ = writeln!(out, "  standard fields: {STANDARD_FIELDS}");
    for f in def.fields.iter().take(MAX_PROMPT_FIELDS) {
        let _ = write!(
            out,
            "  - {} (label \"{}\"): {}",
            f.api_name,
            f.label,
            f.data_type.as_str()
        );
        match f.data_type {
            DataType::Lookup | DataType::MasterDetail => {
                let target = f
                    .lookup_object_id
                    .as_deref()
                    .and_then(|id| all.iter().find(|o| o.id() == id))
                    .map_or("?", |o| o.def.api_name.as_str());
                let _ = write!(out, " to {target}");
                if let Some(r) = &f.relationship_name {
                    let _ = write!(out, "; its fields as {r}.<Field>");
                }
            }
            DataType::Picklist | DataType::MultiPicklist => {
                let values: Vec<&str> = f
                    .picklist_values
                    .iter()
                    .filter(|v| v.is_active)
                    .take(MAX_PICKLIST_VALUES_SHOWN)
                    .map(|v| v.value.as_str())
                    .collect();
                if !values.is_empty() {
                    let _ = write!(out, " with values {}", values.join(", "));
                }
            }
            DataType::Formula => {
                if let Some(t) = f.formula_return_type {
                    let _ = write!(out, " returning {}", t.as_str());
                }
            }
            _ => {}
        }
        out.push('\n');
    }
    if children {
        for other in all {
            for f in &other.def.fields {
                if f.lookup_object_id.as_deref() == Some(obj.id()) {
                    if let Some(rel) = &f.child_relationship_name {
                        let _ = writeln!(
                            out,
                            "  child relationship {rel}: {} records whose {} points here",
                            other.def.api_name, f.api_name
                        );
                    }
                }
            }
        }
    }
    out
}

/// Asks for a formula on `obj` that does what `description` says.
pub fn formula(
    obj: &ObjectMeta,
    all: &[Arc<ObjectMeta>],
    description: &str,
    return_type: Option<&str>,
) -> Prompt {
    let functions: Vec<String> = mosaic_formula::ALL_FUNCTIONS
        .iter()
        .map(|f| format!("{} ({})", f.name(), f.summary()))
        .collect();
    let system = format!(
        "You write formulas for Mosaic, a platform whose formula language is Salesforce's formula language.\n\
         Fields are referenced by API name (Amount__c); a lookup's parent fields through its relationship name (Account__r.Name, at most 10 hops). \
         Text literals are quoted. Operators: + - * / ^, & (text concatenation), = == != <> < <= > >=, && ||, !. \
         Subtracting two dates gives a number of days. Use only these functions: {}.\n\
         {ANSWER_FORMAT}\n\
         {{\"formula\": \"<the formula>\", \"explanation\": \"<one or two sentences on what it computes>\", \"confidence\": <a number from 0 to 1: how sure you are that it does what was asked>}}",
        functions.join("; ")
    );
    let mut user = describe_object(obj, all, false);
    if let Some(t) = return_type {
        let _ = writeln!(user, "\nThe formula must return: {t}");
    }
    let _ = write!(
        user,
        "\nWrite a formula on {} that computes:\n<<<\n{description}\n>>>",
        obj.def.api_name
    );
    Prompt { system, user }
}

/// Asks for a SOQL query answering `question` over the objects the caller
/// can read (`focus` first when named). Returns whether objects were left
/// out of the description.
pub fn query(
    visible: &[Arc<ObjectMeta>],
    focus: Option<&Arc<ObjectMeta>>,
    question: &str,
) -> (Prompt, bool) {
    let system = format!(
        "You write SOQL queries for Mosaic, a platform whose query language is a subset of Salesforce's SOQL.\n\
         Supported: SELECT fields, parent fields through relationship names (Account__r.Name), child subqueries through child relationship names, \
         COUNT(), COUNT(field), SUM, AVG, MIN, MAX with GROUP BY and HAVING, WHERE with AND, OR, NOT, = != < <= > >= LIKE IN NOT IN INCLUDES EXCLUDES, \
         date literals (TODAY, LAST_N_DAYS:n, THIS_MONTH, …), ORDER BY … ASC|DESC NULLS FIRST|LAST, LIMIT and OFFSET. \
         Use only the objects and fields listed. Formula fields may be selected but not used in WHERE, GROUP BY or ORDER BY. \
         Text literals are in single quotes.\n\
         {ANSWER_FORMAT}\n\
         {{\"query\": \"<one SOQL statement>\", \"explanation\": \"<one or two sentences on what it returns>\", \"confidence\": <a number from 0 to 1: how sure you are that it answers the question>}}"
    );
    let mut ordered: Vec<&Arc<ObjectMeta>> = Vec::with_capacity(visible.len());
    if let Some(f) = focus {
        ordered.push(f);
    }
    ordered.extend(
        visible
            .iter()
            .filter(|o| focus.is_none_or(|f| f.id() != o.id())),
    );
    let left_out = ordered.len() > MAX_PROMPT_OBJECTS;
    let mut user = String::from("The objects:\n");
    for o in ordered.into_iter().take(MAX_PROMPT_OBJECTS) {
        user.push_str(&describe_object(o, visible, true));
    }
    if let Some(f) = focus {
        let _ = writeln!(user, "\nQuery the object {}.", f.def.api_name);
    }
    let _ = write!(
        user,
        "\nWrite a SOQL query that answers:\n<<<\n{question}\n>>>"
    );
    (Prompt { system, user }, left_out)
}

/// The first prompt again, with the rejected proposal and what the checker
/// said of it.
pub fn repair(
    first: &Prompt,
    key: &str,
    checker: &str,
    rejected: &str,
    errors: &[CheckError],
) -> Prompt {
    let mut user = first.user.clone();
    let _ = write!(
        user,
        "\n\nYour previous answer was rejected by Mosaic's {checker}.\nRejected {key}:\n<<<\n{rejected}\n>>>\nErrors:\n"
    );
    for e in errors {
        match e.position {
            Some(p) => {
                let _ = writeln!(user, "- {} (at byte {p})", e.message);
            }
            None => {
                let _ = writeln!(user, "- {}", e.message);
            }
        }
    }
    user.push_str("Answer again with a corrected JSON object in the same format.");
    Prompt {
        system: first.system.clone(),
        user,
    }
}
