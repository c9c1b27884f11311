//! Setup: the formula editor — a reusable editor (template include
//! `setup/formula_editor.html` + the `formula editor` script in `app.js`)
//! with syntax highlighting, a field picker walking relationships, the
//! function reference from `docs/formula.md`, live check (line / column
//! under the expression), evaluation against a record, the return type,
//! and an AI assist box when an LLM is configured.
//!
//! **Reusing the editor in another form** (formula fields, default
//! formulas): put a [`FormulaEditor`] in the page's view model, bind it
//! as `editor` and include the template —
//!
//! ```text
//! {% let editor = self.formula %}{% include "setup/formula_editor.html" %}
//! ```
//!
//! The form must carry the `_csrf` field. Without script the textarea is a
//! plain input and the page's own submit checks it (see
//! [`FormulaEditor::checked`]); with script the text is highlighted and
//! checked as it is typed against `POST /setup/formula/check`.
//!
//! This module also holds the small helpers the other builders of this
//! part of Setup share (errors next to inputs, the object chooser).

use super::{setup_chrome, setup_user, Need};
use crate::form::{self, Submitted};
use crate::session::WebUser;
use crate::views::{error_page, html, not_found_page, Chrome};
use crate::WebState;
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mosaic_formula::FValue;
use mosaic_meta::model::{FieldDef, ObjectMeta};
use mosaic_runtime::formula_eval::{parse_return_type, type_name};
use mosaic_types::{ErrorCode, MosaicError};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// Longest expression the editor sends on (the formula language's own
/// limit, `MAX_SOURCE_LEN`, answers anything between).
pub const MAX_EXPRESSION_CHARS: usize = 20_000;
/// Longest AI assist description.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Most relationship hops the field picker walks (the formula language's
/// `MAX_RELATIONSHIP_HOPS`).
pub const MAX_PICKER_HOPS: usize = 10;
/// Most errors listed under an expression.
pub const MAX_LISTED_ERRORS: usize = 10;

/// The return types a formula may declare, as the check takes them.
pub const RETURN_TYPES: [(&str, &str); 8] = [
    ("text", "Text"),
    ("number", "Number"),
    ("currency", "Currency"),
    ("percent", "Percent"),
    ("date", "Date"),
    ("datetime", "Date/Time"),
    ("time", "Time"),
    ("boolean", "Checkbox"),
];

// ------------------------------------------------------------ shared helpers

pub use super::type_label;

/// The label of a return type name (`currency` → Currency).
pub fn return_type_label(name: &str) -> String {
    RETURN_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, l)| l.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// A select option.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub fn choices(opts: &[(&str, &str)], current: &str) -> Vec<Choice> {
    opts.iter()
        .map(|(v, l)| Choice {
            value: v.to_string(),
            label: l.to_string(),
            selected: *v == current,
        })
        .collect()
}

/// Where an API error goes on a form: next to the input it names (API
/// field paths mapped to input names by `place`), else above the form;
/// a version conflict is its own notice.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    pub by_input: HashMap<String, String>,
    pub general: Vec<String>,
    /// The definition changed since the form was opened (409).
    pub conflict: bool,
}

impl Problems {
    pub fn from_error(e: &MosaicError, place: &dyn Fn(&str) -> Option<String>) -> Problems {
        let mut p = Problems::default();
        if e.code == ErrorCode::CONFLICT {
            p.conflict = true;
            return p;
        }
        let mut placed = false;
        for f in &e.fields {
            if let Some(input) = place(f) {
                p.by_input.entry(input).or_insert_with(|| e.message.clone());
                placed = true;
            }
        }
        if !placed {
            p.general.push(e.message.clone());
        }
        p
    }

    pub fn input(&mut self, name: &str, msg: impl Into<String>) {
        self.by_input.insert(name.to_string(), msg.into());
    }

    pub fn at(&self, input: &str) -> Option<String> {
        self.by_input.get(input).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.by_input.is_empty() && self.general.is_empty() && !self.conflict
    }
}

/// The user of a Setup form post: allowed the area, with their CSRF token
/// (checked before anything else runs).
pub async fn posting(
    s: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    f: &Submitted,
    need: Need,
) -> Result<WebUser, Response> {
    let u = setup_user(s, headers, uri, need).await?;
    u.check_csrf(form::value(f, crate::session::CSRF_FIELD))?;
    Ok(u)
}

/// An object of the tenant (the 404 page when there is none).
pub async fn object_of(s: &WebState, u: &WebUser, name: &str) -> Result<Arc<ObjectMeta>, Response> {
    s.platform
        .meta
        .object(&u.caller.tenant_id, name)
        .await
        .map_err(|e| error_page(&e))
}

/// A form value, trimmed ("" when absent).
pub fn val(f: &Submitted, name: &str) -> String {
    form::value(f, name).unwrap_or_default().trim().to_string()
}

/// A form value as typed ("" when absent).
pub fn raw(f: &Submitted, name: &str) -> String {
    form::value(f, name).unwrap_or_default().to_string()
}

pub fn checked(f: &Submitted, name: &str) -> bool {
    matches!(form::value(f, name), Some("on" | "true" | "1"))
}

/// An object as the chooser of an area lists it.
pub struct ObjectLink {
    pub label: String,
    pub api_name: String,
    pub href: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "setup/rules_objects.html")]
pub struct ObjectsPage {
    pub chrome: Chrome,
    pub title: String,
    pub intro: String,
    pub objects: Vec<ObjectLink>,
}

/// An area's first page: the tenant's objects, each linking to
/// `{base}/{object}` with a note (`note` of the object).
pub async fn objects_page(
    s: &WebState,
    u: &WebUser,
    title: &str,
    intro: &str,
    base: &str,
    note: &(dyn Fn(&ObjectMeta) -> String + Sync),
) -> Response {
    let list = match s.platform.meta.objects(&u.caller.tenant_id).await {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let objects = list
        .iter()
        .map(|o| ObjectLink {
            label: o.def.label.clone(),
            api_name: o.def.api_name.clone(),
            href: format!("{base}/{}", crate::display::segment(o.api_name())),
            note: note(o),
        })
        .collect();
    html(&ObjectsPage {
        chrome: setup_chrome(s, u).await,
        title: title.into(),
        intro: intro.into(),
        objects,
    })
}

// ------------------------------------------------------------ the editor

/// One error of a check, placed under the expression.
#[derive(Debug, Clone)]
pub struct FormulaProblem {
    pub line: u32,
    pub column: u32,
    pub message: String,
    /// The line of the expression the error is on, and a caret under its
    /// column.
    pub excerpt: String,
    pub caret: String,
}

/// The reusable formula editor of a form (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct FormulaEditor {
    pub id: String,
    pub name: String,
    pub label: String,
    pub value: String,
    /// The object the formula reads (api name; empty: none).
    pub object: String,
    /// The declared return type (`number`, …; empty: any).
    pub return_type: String,
    pub errors: Vec<FormulaProblem>,
    /// An error of the API about this input (a save refused).
    pub field_error: Option<String>,
    /// A passed check: "Valid — returns Number".
    pub ok: Option<String>,
    pub help: Option<String>,
}

impl FormulaEditor {
    pub fn new(name: &str, label: &str, value: &str, object: &str, return_type: &str) -> Self {
        FormulaEditor {
            id: format!("f-{}", name.replace(['.', '_'], "-")),
            name: name.into(),
            label: label.into(),
            value: value.into(),
            object: object.into(),
            return_type: return_type.into(),
            ..Default::default()
        }
    }

    /// The editor with the result of checking its expression (as the
    /// page's user, against its object).
    pub async fn checked(mut self, s: &WebState, u: &WebUser) -> Self {
        let r = check(s, u, &self.object, &self.value, &self.return_type).await;
        match r {
            Ok(c) => {
                self.ok = c
                    .return_type
                    .map(|t| format!("Valid — returns {}", return_type_label(&t)));
                self.errors = c.errors;
            }
            Err(msg) => self.field_error = Some(msg),
        }
        self
    }
}

/// What a check found.
pub struct Checked {
    pub return_type: Option<String>,
    pub errors: Vec<FormulaProblem>,
    pub referenced: Vec<String>,
}

fn excerpt(src: &str, line: u32, column: u32) -> (String, String) {
    let text = src
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .unwrap_or("");
    let shown: String = text.chars().take(200).collect();
    let pad = (column.saturating_sub(1) as usize).min(shown.chars().count());
    (shown, format!("{}^", " ".repeat(pad)))
}

/// Checks `expr` as the runtime's formula check does (the REST
/// `formula/check`): `Err` is a problem with the request itself (no such
/// object, an unknown return type).
pub async fn check(
    s: &WebState,
    u: &WebUser,
    object: &str,
    expr: &str,
    return_type: &str,
) -> Result<Checked, String> {
    if expr.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(format!(
            "A formula is at most {MAX_EXPRESSION_CHARS} characters."
        ));
    }
    let obj = if object.is_empty() {
        None
    } else {
        Some(
            s.platform
                .meta
                .object(&u.caller.tenant_id, object)
                .await
                .map_err(|e| e.message)?,
        )
    };
    let rt =
        if return_type.is_empty() {
            None
        } else {
            Some(parse_return_type(return_type).ok_or_else(|| {
                format!("'{return_type}' is not a return type a formula can have.")
            })?)
        };
    let r = s
        .platform
        .check_expression(&u.caller, obj.as_deref(), expr, rt)
        .await
        .map_err(|e| e.message)?;
    Ok(match r {
        Ok(compiled) => Checked {
            return_type: Some(compiled.return_type().name().to_ascii_lowercase()),
            errors: Vec::new(),
            referenced: compiled
                .referenced_fields()
                .iter()
                .map(|p| p.join("."))
                .collect(),
        },
        Err(errors) => Checked {
            return_type: None,
            errors: errors
                .iter()
                .take(MAX_LISTED_ERRORS)
                .map(|e| {
                    let (excerpt, caret) = excerpt(expr, e.line, e.column);
                    FormulaProblem {
                        line: e.line,
                        column: e.column,
                        message: e.message.clone(),
                        excerpt,
                        caret,
                    }
                })
                .collect(),
            referenced: Vec::new(),
        },
    })
}

/// A formula value as the editor shows it.
pub fn show_value(v: &FValue) -> String {
    match v {
        FValue::Null => "(blank)".into(),
        FValue::Text(t) => t.clone(),
        FValue::Number(d) => d.normalize().to_string(),
        FValue::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        FValue::Date(d) => d.format("%Y-%m-%d").to_string(),
        FValue::Datetime(d) => d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        FValue::Time(t) => t.format("%H:%M:%S%.3f").to_string(),
    }
}

// ------------------------------------------------------------ reference

/// One function of the reference.
pub struct FunctionDoc {
    pub name: String,
    pub signature: String,
    pub text: String,
}

pub struct FunctionGroup {
    pub label: String,
    pub functions: Vec<FunctionDoc>,
}

/// The language reference, embedded at build time.
const FORMULA_DOC: &str = include_str!("../../../../docs/formula.md");

/// The function reference: `docs/formula.md`'s "Functions" chapter split
/// by its category headings, one entry per function row.
pub static REFERENCE: LazyLock<Vec<FunctionGroup>> = LazyLock::new(|| parse_reference(FORMULA_DOC));

fn parse_reference(doc: &str) -> Vec<FunctionGroup> {
    let mut groups: Vec<FunctionGroup> = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            inside = h.starts_with("Functions");
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(h) = line.strip_prefix("### ") {
            groups.push(FunctionGroup {
                label: h.trim().to_string(),
                functions: Vec::new(),
            });
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let signature = cells[1].trim_matches('`').to_string();
        let name = signature.split('(').next().unwrap_or("").trim().to_string();
        if let Some(g) = groups.last_mut() {
            g.functions.push(FunctionDoc {
                name,
                signature,
                text: cells[2].replace('`', ""),
            });
        }
    }
    groups
}

// ------------------------------------------------------------ field picker

/// A field of the picker.
pub struct PickField {
    pub label: String,
    pub type_label: String,
    /// What is inserted (`Account__r.Industry__c`).
    pub insert: String,
    /// Descending into a lookup's target.
    pub descend_href: Option<String>,
}

pub struct Picker {
    pub object_label: String,
    /// The relationship path walked so far (`Account__r.`), with a link
    /// back to each step.
    pub trail: Vec<(String, String)>,
    pub fields: Vec<PickField>,
    pub error: Option<String>,
}

const SYSTEM_PICKS: [(&str, &str); 5] = [
    ("Id", "Record ID"),
    ("Name", "Name"),
    ("CreatedDate", "Created Date"),
    ("LastModifiedDate", "Last Modified Date"),
    ("OwnerId", "Owner ID"),
];

/// The fields of `object` reached through `path` (relationship names
/// separated by dots), each with its insert text and, for lookups, the
/// link descending into the target object.
async fn picker(
    s: &WebState,
    u: &WebUser,
    object: &str,
    path: &str,
    keep: &(dyn Fn(&str) -> String + Sync),
) -> Picker {
    let tenant = &u.caller.tenant_id;
    let mut o = match s.platform.meta.object(tenant, object).await {
        Ok(o) => o,
        Err(e) => {
            return Picker {
                object_label: object.into(),
                trail: Vec::new(),
                fields: Vec::new(),
                error: Some(e.message),
            }
        }
    };
    let mut trail = vec![(o.def.label.clone(), keep(""))];
    let mut prefix = String::new();
    let mut error = None;
    for step in path
        .split('.')
        .filter(|p| !p.is_empty())
        .take(MAX_PICKER_HOPS)
    {
        let next = match o.def.fields.iter().find(|f| f.is_parent_relationship(step)) {
            Some(f) => match &f.lookup_object_id {
                Some(id) => s.platform.meta.object_by_id(tenant, id).await.ok(),
                None => None,
            },
            None => None,
        };
        match next {
            Some(n) => {
                prefix.push_str(step);
                prefix.push('.');
                trail.push((
                    format!("{} ({step})", n.def.label),
                    keep(prefix.trim_end_matches('.')),
                ));
                o = n;
            }
            None => {
                error = Some(format!("{} has no relationship '{step}'.", o.def.label));
                break;
            }
        }
    }
    let mut fields: Vec<PickField> = SYSTEM_PICKS
        .iter()
        .map(|(n, l)| PickField {
            label: l.to_string(),
            type_label: if *n == "CreatedDate" || *n == "LastModifiedDate" {
                "Date/Time".into()
            } else {
                "Text".into()
            },
            insert: format!("{prefix}{n}"),
            descend_href: None,
        })
        .collect();
    let hops = prefix.matches('.').count();
    for f in &o.def.fields {
        fields.push(pick(f, &prefix, hops, keep));
    }
    Picker {
        object_label: o.def.label.clone(),
        trail,
        fields,
        error,
    }
}

fn pick(
    f: &FieldDef,
    prefix: &str,
    hops: usize,
    keep: &(dyn Fn(&str) -> String + Sync),
) -> PickField {
    let descend_href = match (f.parent_relationship_name(), hops < MAX_PICKER_HOPS) {
        (Some(rel), true) => Some(keep(&format!("{prefix}{rel}"))),
        _ => None,
    };
    PickField {
        label: f.label.clone(),
        type_label: type_label(f.data_type).into(),
        insert: format!("{prefix}{}", f.api_name),
        descend_href,
    }
}

// ------------------------------------------------------------ the page

#[derive(Template)]
#[template(path = "setup/formula_page.html")]
pub struct FormulaPage {
    pub chrome: Chrome,
    pub objects: Vec<Choice>,
    pub object: String,
    pub return_types: Vec<Choice>,
    pub editor: FormulaEditor,
    pub record_id: String,
    pub record_error: Option<String>,
    pub value: Option<(String, String)>,
    pub referenced: Vec<String>,
    pub picker: Option<Picker>,
    pub reference: &'static [FunctionGroup],
    /// The AI assist box (an LLM is configured).
    pub ai: bool,
    pub description: String,
    pub ai_error: Option<String>,
    pub ai_explanation: Option<String>,
    pub general: Vec<String>,
}

struct State0 {
    object: String,
    expression: String,
    return_type: String,
    record_id: String,
    path: String,
}

async fn page(s: &WebState, u: &WebUser, st: &State0) -> FormulaPage {
    let objects = match s.platform.meta.objects(&u.caller.tenant_id).await {
        Ok(l) => l
            .iter()
            .map(|o| Choice {
                value: o.def.api_name.clone(),
                label: o.def.label.clone(),
                selected: o.def.api_name.eq_ignore_ascii_case(&st.object),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut rts = vec![("", "Any")];
    rts.extend(RETURN_TYPES);
    let q = |path: &str| {
        let pairs = [
            ("object", st.object.as_str()),
            ("expression", st.expression.as_str()),
            ("return_type", st.return_type.as_str()),
            ("path", path),
        ];
        let kept: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
        format!(
            "/setup/formula?{}#picker",
            serde_urlencoded::to_string(kept).unwrap_or_default()
        )
    };
    let picker = if st.object.is_empty() {
        None
    } else {
        Some(picker(s, u, &st.object, &st.path, &q).await)
    };
    FormulaPage {
        chrome: setup_chrome(s, u).await,
        objects,
        object: st.object.clone(),
        return_types: choices(&rts, &st.return_type),
        editor: FormulaEditor::new(
            "expression",
            "Formula",
            &st.expression,
            &st.object,
            &st.return_type,
        ),
        record_id: st.record_id.clone(),
        record_error: None,
        value: None,
        referenced: Vec::new(),
        picker,
        reference: &REFERENCE,
        ai: s.platform.llm.is_some(),
        description: String::new(),
        ai_error: None,
        ai_explanation: None,
        general: Vec::new(),
    }
}

/// `GET /setup/formula`: the editor (`?object=&expression=&return_type=&path=`).
async fn formula_home(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let g = |k: &str| q.get(k).cloned().unwrap_or_default();
    let st = State0 {
        object: g("object"),
        expression: g("expression").chars().take(MAX_EXPRESSION_CHARS).collect(),
        return_type: g("return_type"),
        record_id: g("record_id"),
        path: g("path"),
    };
    let mut p = page(&s, &u, &st).await;
    if !st.object.is_empty() && p.objects.iter().all(|o| !o.selected) {
        return not_found_page("There is no such object.");
    }
    if !st.expression.is_empty() {
        p.editor = p.editor.checked(&s, &u).await;
    }
    html(&p)
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

/// `POST /setup/formula/check`: checks (and with `_op=evaluate`,
/// evaluates against `record_id`) the posted expression — JSON for the
/// editor's script (`Accept: application/json`), else the editor page
/// with the results under the expression.
async fn check_post(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let st = State0 {
        object: val(&f, "object"),
        expression: raw(&f, "expression"),
        return_type: val(&f, "return_type"),
        record_id: val(&f, "record_id"),
        path: String::new(),
    };
    let evaluate = val(&f, "_op") == "evaluate";
    let checked = check(&s, &u, &st.object, &st.expression, &st.return_type).await;
    if wants_json(&headers) {
        return match checked {
            Ok(c) => Json(json!({
                "ok": c.errors.is_empty(),
                "return_type": c.return_type,
                "return_type_label": c.return_type.as_deref().map(return_type_label),
                "referenced_fields": c.referenced,
                "errors": c.errors.iter().map(|e| json!({
                    "message": e.message, "line": e.line, "column": e.column,
                    "excerpt": e.excerpt, "caret": e.caret,
                })).collect::<Vec<_>>(),
            }))
            .into_response(),
            Err(msg) => (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"ok": false, "message": msg, "errors": []})),
            )
                .into_response(),
        };
    }
    let mut p = page(&s, &u, &st).await;
    match checked {
        Ok(c) => {
            p.editor.ok = c
                .return_type
                .as_deref()
                .map(|t| format!("Valid — returns {}", return_type_label(t)));
            p.editor.errors = c.errors;
            p.referenced = c.referenced;
        }
        Err(msg) => p.editor.field_error = Some(msg),
    }
    if evaluate && p.editor.errors.is_empty() && p.editor.field_error.is_none() {
        if st.record_id.is_empty() {
            p.record_error =
                Some("Enter the id of a record to evaluate the formula against.".into());
        } else if st.object.is_empty() {
            p.record_error = Some("Choose the object of the record first.".into());
        } else {
            let obj = s
                .platform
                .meta
                .object(&u.caller.tenant_id, &st.object)
                .await
                .ok();
            match s
                .platform
                .evaluate_expression(&u.caller, obj, &st.expression, None, Some(&st.record_id))
                .await
            {
                Ok(v) => p.value = Some((show_value(&v), return_type_label(type_name(&v)))),
                Err(e) => p.record_error = Some(e.message),
            }
        }
    }
    html(&p)
}

/// `POST /setup/formula/generate`: the AI assist — a formula for a
/// description, checked by the runtime, put in the editor (never saved).
async fn generate_post(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let st = State0 {
        object: val(&f, "object"),
        expression: raw(&f, "expression"),
        return_type: val(&f, "return_type"),
        record_id: String::new(),
        path: String::new(),
    };
    let description = raw(&f, "description");
    let mut p = page(&s, &u, &st).await;
    p.description = description.clone();
    if description.trim().is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
        p.ai_error = Some(format!(
            "Describe the formula in 1 to {MAX_DESCRIPTION_CHARS} characters."
        ));
        return html(&p);
    }
    let req = mosaic_runtime::ai::FormulaRequest {
        object: (!st.object.is_empty()).then(|| st.object.clone()),
        description: Some(description),
        return_type: (!st.return_type.is_empty()).then(|| st.return_type.clone()),
    };
    match s
        .platform
        .generate_formula(&u.caller, req, &mosaic_runtime::ai::Progress::default())
        .await
    {
        Ok(sug) => {
            if let Some(t) = sug.value.as_str() {
                p.editor.value = t.to_string();
                p.editor = p.editor.checked(&s, &u).await;
            } else {
                p.ai_error = Some(
                    "The assistant gave no usable formula; try describing it differently.".into(),
                );
            }
            p.ai_explanation = Some(sug.explanation);
        }
        Err(e) => p.ai_error = Some(e.message),
    }
    html(&p)
}

/// This area's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/setup/formula", get(formula_home))
        .route("/setup/formula/check", post(check_post))
        .route("/setup/formula/generate", post(generate_post))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_has_every_category_and_function_text() {
        let r = &*REFERENCE;
        let labels: Vec<&str> = r.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(
            labels,
            ["Logical", "Text", "Math", "Location", "Date and time"]
        );
        let iff = r[0].functions.iter().find(|f| f.name == "IF").unwrap();
        assert!(iff.text.contains("value_if_true"));
        let n: usize = r.iter().map(|g| g.functions.len()).sum();
        assert!(n >= 100, "{n} functions");
    }

    #[test]
    fn excerpts_put_the_caret_under_the_column() {
        let (line, caret) = excerpt("1 +\nAmount__c ++ 2", 2, 12);
        assert_eq!(line, "Amount__c ++ 2");
        assert_eq!(caret, "           ^");
    }
}
