//! Setup: validation rules and workflow rules builders, the outbox (dead
//! letters to replay or discard, pending actions of a record) and field
//! history. Every change goes through the same metadata service the
//! metadata API's handlers call, as the signed-in user; dead letters are
//! for administrators, as in the admin API.

use super::formulas::{
    checked, choices, object_of, objects_page, posting, raw, type_label, val, Choice,
    FormulaEditor, Problems,
};
use super::{setup_chrome, setup_user, Need};
use crate::display::segment;
use crate::form::Submitted;
use crate::views::{error_page, html, not_found_page, Chrome};
use crate::WebState;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::validate::RuleInput;
use mosaic_meta::workflow::{ActionType, WorkflowInput, WorkflowRule};
use mosaic_types::MosaicError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Blank condition rows a workflow or list view form offers besides the
/// rule's own.
pub const BLANK_CONDITIONS: usize = 2;
/// Blank action slots a workflow form offers besides the rule's own.
pub const BLANK_ACTIONS: usize = 1;
/// Dead letters shown per page of the outbox.
pub const OUTBOX_PAGE: usize = 50;
/// History rows shown for a record.
pub const HISTORY_PAGE: usize = 200;

type Q = HashMap<String, String>;

fn back(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn with_notice(path: &str, notice: &str) -> String {
    format!(
        "{path}?{}",
        serde_urlencoded::to_string([("notice", notice)]).unwrap_or_default()
    )
}

/// Fields a rule may name (error location, conditions, updates): every
/// field of the object, by label and type label.
fn field_choices(o: &ObjectMeta, current: &str, blank: &str) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: blank.into(),
        selected: current.is_empty(),
    }];
    for (n, l) in [("Name", "Name"), ("OwnerId", "Owner")] {
        out.push(Choice {
            value: n.into(),
            label: l.into(),
            selected: current.eq_ignore_ascii_case(n),
        });
    }
    for f in &o.def.fields {
        out.push(Choice {
            value: f.api_name.clone(),
            label: format!("{} ({})", f.label, type_label(f.data_type)),
            selected: f.api_name.eq_ignore_ascii_case(current),
        });
    }
    out
}

// ================================================================ validation

pub struct RuleRow {
    pub name: String,
    pub edit_href: String,
    pub active: bool,
    pub message: String,
    pub location: String,
    pub formula: String,
    pub toggle_href: String,
    pub delete_href: String,
}

#[derive(Template)]
#[template(path = "setup/rules_validation_list.html")]
pub struct ValidationList {
    pub chrome: Chrome,
    pub object_label: String,
    pub new_href: String,
    pub rules: Vec<RuleRow>,
    pub version: i64,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "setup/rules_validation_form.html")]
pub struct ValidationForm {
    pub chrome: Chrome,
    pub object_label: String,
    pub title: String,
    pub action: String,
    pub list_href: String,
    pub name: String,
    pub description: String,
    pub active: bool,
    pub editor: FormulaEditor,
    pub message: String,
    pub locations: Vec<Choice>,
    pub version: i64,
    pub problems: Problems,
}

fn vr_base(o: &ObjectMeta) -> String {
    format!("/setup/validation-rules/{}", segment(o.api_name()))
}

async fn vr_home(State(s): State<WebState>, headers: HeaderMap, uri: Uri) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    objects_page(
        &s,
        &u,
        "Validation Rules",
        "Conditions that stop a save with a message. Choose an object.",
        "/setup/validation-rules",
        &|o| format!("{} rules", o.def.validation_rules.len()),
    )
    .await
}

async fn vr_list(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(object): Path<String>,
    Query(q): Query<Q>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let base = vr_base(&o);
    let rules = o
        .def
        .validation_rules
        .iter()
        .map(|r| RuleRow {
            name: r.name.clone(),
            edit_href: format!("{base}/{}", segment(&r.id)),
            active: r.active,
            message: r.error_message.clone(),
            location: r
                .error_display_field
                .clone()
                .unwrap_or_else(|| "Top of page".into()),
            formula: r.formula_expression.clone(),
            toggle_href: format!("{base}/{}/active", segment(&r.id)),
            delete_href: format!("{base}/{}/delete", segment(&r.id)),
        })
        .collect();
    html(&ValidationList {
        chrome: setup_chrome(&s, &u).await,
        object_label: o.def.label.clone(),
        new_href: format!("{base}/new"),
        rules,
        version: o.def.version,
        notice: q.get("notice").cloned(),
    })
}

async fn vr_form(
    s: &WebState,
    u: &crate::session::WebUser,
    o: &ObjectMeta,
    rule: Option<&mosaic_meta::ValidationRule>,
) -> ValidationForm {
    let base = vr_base(o);
    let (title, action) = match rule {
        Some(r) => (
            format!("Edit {}", r.name),
            format!("{base}/{}", segment(&r.id)),
        ),
        None => ("New validation rule".into(), format!("{base}/new")),
    };
    let mut editor = FormulaEditor::new(
        "formula_expression",
        "Error condition formula (the save stops when it is TRUE)",
        rule.map(|r| r.formula_expression.as_str()).unwrap_or(""),
        o.api_name(),
        "boolean",
    );
    editor.help = Some("A Checkbox formula, for example Amount__c < 0.".into());
    ValidationForm {
        chrome: setup_chrome(s, u).await,
        object_label: o.def.label.clone(),
        title,
        action,
        list_href: base,
        name: rule.map(|r| r.name.clone()).unwrap_or_default(),
        description: rule.and_then(|r| r.description.clone()).unwrap_or_default(),
        active: rule.map(|r| r.active).unwrap_or(true),
        editor,
        message: rule.map(|r| r.error_message.clone()).unwrap_or_default(),
        locations: field_choices(
            o,
            rule.and_then(|r| r.error_display_field.as_deref())
                .unwrap_or(""),
            "Top of page",
        ),
        version: o.def.version,
        problems: Problems::default(),
    }
}

async fn vr_new(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(object): Path<String>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    html(&vr_form(&s, &u, &o, None).await)
}

async fn vr_edit(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, rule)): Path<(String, String)>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(r) = o.def.validation_rules.iter().find(|r| r.id == rule) else {
        return not_found_page("There is no such validation rule.");
    };
    html(&vr_form(&s, &u, &o, Some(r)).await)
}

fn version_of(f: &Submitted) -> Option<i64> {
    val(f, "version").parse().ok()
}

async fn vr_save(
    s: WebState,
    headers: HeaderMap,
    uri: Uri,
    object: String,
    rule: Option<String>,
    f: Submitted,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let existing = match &rule {
        Some(id) => match o.def.validation_rules.iter().find(|r| &r.id == id) {
            Some(r) => Some(r.clone()),
            None => return not_found_page("There is no such validation rule."),
        },
        None => None,
    };
    let location = val(&f, "error_display_field");
    let description = raw(&f, "description");
    let input = RuleInput {
        name: Some(val(&f, "name")),
        formula_expression: Some(raw(&f, "formula_expression")),
        error_message: Some(raw(&f, "error_message")),
        error_display_field: Some(if location.is_empty() {
            Value::Null
        } else {
            Value::String(location.clone())
        }),
        active: Some(checked(&f, "active")),
        description: Some(description.clone()),
        version: version_of(&f),
        _id: None,
    };
    let checking = val(&f, "_op") == "check";
    let result = if checking {
        Ok(())
    } else {
        match &existing {
            Some(r) => s
                .platform
                .meta
                .update_rule(&u.caller.tenant_id, o.api_name(), &r.id, input)
                .await
                .map(|_| ()),
            None => s
                .platform
                .meta
                .add_rule(&u.caller.tenant_id, o.api_name(), input)
                .await
                .map(|_| ()),
        }
    };
    if let Err(e) = &result {
        if e.code == mosaic_types::ErrorCode::NOT_FOUND && existing.is_some() {
            return error_page(e);
        }
    }
    match result {
        Ok(()) if !checking => back(&with_notice(&vr_base(&o), "Validation rule saved.")),
        r => {
            let mut page = vr_form(&s, &u, &o, existing.as_ref()).await;
            page.name = val(&f, "name");
            page.description = description;
            page.active = checked(&f, "active");
            page.message = raw(&f, "error_message");
            page.locations = field_choices(&o, &location, "Top of page");
            page.version = version_of(&f).unwrap_or(o.def.version);
            page.editor.value = raw(&f, "formula_expression");
            let status = match &r {
                Err(e) => {
                    page.problems = Problems::from_error(e, &|p| match p {
                        "name"
                        | "formula_expression"
                        | "error_message"
                        | "error_display_field"
                        | "description" => Some(p.to_string()),
                        _ => None,
                    });
                    page.editor.field_error = page.problems.at("formula_expression");
                    crate::views::status_of(e)
                }
                Ok(()) => StatusCode::OK,
            };
            page.editor = page.editor.checked(&s, &u).await;
            let status = if page.problems.conflict {
                StatusCode::CONFLICT
            } else {
                status
            };
            (status, html(&page)).into_response()
        }
    }
}

async fn vr_create(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(object): Path<String>,
    Form(f): Form<Submitted>,
) -> Response {
    vr_save(s, headers, uri, object, None, f).await
}

async fn vr_update(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, rule)): Path<(String, String)>,
    Form(f): Form<Submitted>,
) -> Response {
    vr_save(s, headers, uri, object, Some(rule), f).await
}

/// The answer to a list page's button: back to the list with a notice,
/// or the conflict / error page.
fn list_outcome(r: Result<(), MosaicError>, base: &str, done: &str) -> Response {
    match r {
        Ok(()) => back(&with_notice(base, done)),
        Err(e) if e.code == mosaic_types::ErrorCode::CONFLICT => back(&with_notice(
            base,
            "Not saved: the object was changed by someone else meanwhile. Here is the current state; try again.",
        )),
        Err(e) => error_page(&e),
    }
}

async fn vr_toggle(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, rule)): Path<(String, String)>,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input = RuleInput {
        active: Some(checked(&f, "active")),
        version: version_of(&f),
        ..Default::default()
    };
    let r = s
        .platform
        .meta
        .update_rule(&u.caller.tenant_id, o.api_name(), &rule, input)
        .await
        .map(|_| ());
    list_outcome(r, &vr_base(&o), "Validation rule updated.")
}

async fn vr_delete(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, rule)): Path<(String, String)>,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let r = s
        .platform
        .meta
        .delete_rule(&u.caller.tenant_id, o.api_name(), &rule)
        .await;
    list_outcome(r, &vr_base(&o), "Validation rule deleted.")
}

// ================================================================ workflow

/// Every criterion operator the workflow engine supports.
pub const OPERATORS: [(&str, &str); 14] = [
    ("equals", "equals"),
    ("not_equals", "not equal to"),
    ("greater_than", "greater than"),
    ("less_than", "less than"),
    ("greater_or_equal", "greater or equal"),
    ("less_or_equal", "less or equal"),
    ("contains", "contains"),
    ("starts_with", "starts with"),
    ("in", "is one of (comma-separated)"),
    ("not_in", "is none of (comma-separated)"),
    ("is_null", "is blank (true / false)"),
    ("changed", "changed"),
    ("changed_to", "changed to"),
    ("changed_from", "changed from"),
];

const TRIGGERS: [(&str, &str); 4] = [
    ("created", "When a record is created"),
    ("updated", "When a record is edited"),
    ("created_or_updated", "When a record is created or edited"),
    ("deleted", "When a record is deleted"),
];

const RE_EVALUATIONS: [(&str, &str); 2] = [
    (
        "when_criteria_first_true",
        "Only when the criteria become true",
    ),
    ("every_time", "Every time the criteria are true"),
];

const ACTION_TYPES: [(&str, &str); 5] = [
    ("", "No action (leave empty)"),
    ("field_update", "Field update"),
    ("task_creation", "Task"),
    ("email_alert", "Email alert"),
    ("outbound_message", "Outbound message"),
];

const VALUE_TYPES: [(&str, &str); 3] = [
    ("literal", "A value"),
    ("formula", "A formula's result"),
    ("null", "Blank"),
];

/// A condition row of a criteria form.
#[derive(Debug, Clone)]
pub struct CondRow {
    pub index: usize,
    pub fields: Vec<Choice>,
    pub operators: Vec<Choice>,
    pub value: String,
    pub error: Option<String>,
}

fn cond_rows(
    o: &ObjectMeta,
    rows: &[(String, String, String)],
    ops: &[(&str, &str)],
) -> Vec<CondRow> {
    rows.iter()
        .enumerate()
        .map(|(i, (field, op, value))| CondRow {
            index: i + 1,
            fields: field_choices(o, field, "—"),
            operators: choices(ops, op),
            value: value.clone(),
            error: None,
        })
        .collect()
}

fn json_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(json_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// The condition rows typed in a form (`c{i}.field` …), blank rows left out
/// of the request: (row index, field, operator, value).
fn typed_conditions(f: &Submitted, max: usize) -> Vec<(usize, String, String, String)> {
    (0..max)
        .map(|i| {
            (
                i,
                val(f, &format!("c{i}.field")),
                val(f, &format!("c{i}.operator")),
                raw(f, &format!("c{i}.value")),
            )
        })
        .collect()
}

/// A condition's JSON value from its text, as the operator takes it.
fn condition_value(op: &str, text: &str) -> Value {
    let t = text.trim();
    match op {
        "changed" => Value::Null,
        "is_null" => match t.to_ascii_lowercase().as_str() {
            "" | "true" | "yes" => Value::Bool(true),
            "false" | "no" => Value::Bool(false),
            _ => Value::String(t.to_string()),
        },
        "in" | "not_in" => Value::Array(
            t.split(',')
                .map(|p| p.trim())
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect(),
        ),
        _ if t.is_empty() => Value::Null,
        _ => Value::String(text.to_string()),
    }
}

#[derive(Debug, Clone, Default)]
pub struct ActionSlot {
    pub index: usize,
    pub id: String,
    pub types: Vec<Choice>,
    pub immediate: bool,
    pub order: String,
    pub tt_fields: Vec<Choice>,
    pub tt_offset: String,
    pub tt_days: bool,
    pub fu_fields: Vec<Choice>,
    pub fu_value_types: Vec<Choice>,
    pub fu_value: String,
    pub fu_formula: FormulaEditor,
    pub task_subject: String,
    pub task_assignee: String,
    pub task_due: String,
    pub task_priority: String,
    pub task_status: String,
    pub task_description: String,
    pub email_subject: String,
    pub email_body: String,
    pub email_recipients: String,
    pub om_url: String,
    pub om_fields: String,
    /// Whether the stored outbound message has a signing secret (never
    /// the secret itself).
    pub om_has_secret: bool,
    pub error: Option<String>,
}

fn date_field_choices(o: &ObjectMeta, current: &str) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: "—".into(),
        selected: current.is_empty(),
    }];
    for (n, l) in [
        ("CreatedDate", "Created Date"),
        ("LastModifiedDate", "Last Modified Date"),
    ] {
        out.push(Choice {
            value: n.into(),
            label: l.into(),
            selected: current.eq_ignore_ascii_case(n),
        });
    }
    for f in o.def.fields.iter().filter(|f| {
        matches!(
            f.data_type,
            mosaic_types::DataType::Date | mosaic_types::DataType::Datetime
        )
    }) {
        out.push(Choice {
            value: f.api_name.clone(),
            label: format!("{} ({})", f.label, type_label(f.data_type)),
            selected: f.api_name.eq_ignore_ascii_case(current),
        });
    }
    out
}

fn blank_slot(o: &ObjectMeta, index: usize) -> ActionSlot {
    ActionSlot {
        index,
        types: choices(&ACTION_TYPES, ""),
        immediate: true,
        tt_fields: date_field_choices(o, ""),
        tt_days: true,
        fu_fields: field_choices(o, "", "—"),
        fu_value_types: choices(&VALUE_TYPES, "literal"),
        fu_formula: FormulaEditor::new(
            &format!("a{index}.fu_formula"),
            "Formula",
            "",
            o.api_name(),
            "",
        ),
        task_assignee: "owner".into(),
        task_priority: "Normal".into(),
        task_status: "Not Started".into(),
        email_recipients: "owner".into(),
        ..Default::default()
    }
}

fn slot_of(o: &ObjectMeta, index: usize, a: &mosaic_meta::workflow::WorkflowAction) -> ActionSlot {
    let mut s = blank_slot(o, index);
    let c = &a.action_config;
    let t = |k: &str| c.get(k).map(json_text).unwrap_or_default();
    s.id = a.id.clone();
    s.types = choices(&ACTION_TYPES, a.action_type.as_str());
    s.immediate = a.is_immediate;
    s.order = a.execution_order.to_string();
    if let Some(tt) = &a.time_trigger {
        s.tt_fields = date_field_choices(o, &tt.field);
        s.tt_offset = tt.offset.to_string();
        s.tt_days = tt.unit == mosaic_meta::workflow::TimeUnit::Days;
    }
    match a.action_type {
        ActionType::FieldUpdate => {
            s.fu_fields = field_choices(o, &t("field_api_name"), "—");
            s.fu_value_types = choices(&VALUE_TYPES, &t("value_type"));
            s.fu_value = t("value");
            s.fu_formula.value = t("formula");
        }
        ActionType::TaskCreation => {
            s.task_subject = t("subject");
            s.task_assignee = t("assignee");
            s.task_due = t("due_date_offset");
            s.task_priority = t("priority");
            s.task_status = t("status");
            s.task_description = t("description");
        }
        ActionType::EmailAlert => {
            let tpl = c.get("template").cloned().unwrap_or(Value::Null);
            s.email_subject = tpl.get("subject").map(json_text).unwrap_or_default();
            s.email_body = tpl.get("body").map(json_text).unwrap_or_default();
            s.email_recipients = t("recipients");
        }
        ActionType::OutboundMessage => {
            s.om_url = t("endpoint_url");
            s.om_fields = t("fields");
            s.om_has_secret = c.get("secret").is_some_and(|v| !v.is_null());
        }
    }
    s
}

/// An action slot from the form as typed (re-shown after an error).
fn typed_slot(o: &ObjectMeta, f: &Submitted, i: usize, stored: Option<&ActionSlot>) -> ActionSlot {
    let k = |n: &str| format!("a{i}.{n}");
    let mut s = blank_slot(o, i);
    s.id = val(f, &k("id"));
    s.types = choices(&ACTION_TYPES, &val(f, &k("type")));
    s.immediate = val(f, &k("timing")) != "timed";
    s.order = val(f, &k("order"));
    s.tt_fields = date_field_choices(o, &val(f, &k("tt_field")));
    s.tt_offset = val(f, &k("tt_offset"));
    s.tt_days = val(f, &k("tt_unit")) != "hours";
    s.fu_fields = field_choices(o, &val(f, &k("fu_field")), "—");
    s.fu_value_types = choices(&VALUE_TYPES, &val(f, &k("fu_value_type")));
    s.fu_value = raw(f, &k("fu_value"));
    s.fu_formula.value = raw(f, &k("fu_formula"));
    s.task_subject = raw(f, &k("task_subject"));
    s.task_assignee = val(f, &k("task_assignee"));
    s.task_due = val(f, &k("task_due"));
    s.task_priority = val(f, &k("task_priority"));
    s.task_status = val(f, &k("task_status"));
    s.task_description = raw(f, &k("task_description"));
    s.email_subject = raw(f, &k("email_subject"));
    s.email_body = raw(f, &k("email_body"));
    s.email_recipients = val(f, &k("email_recipients"));
    s.om_url = val(f, &k("om_url"));
    s.om_fields = val(f, &k("om_fields"));
    s.om_has_secret = stored.is_some_and(|x| x.om_has_secret);
    s
}

fn list_of(text: &str) -> Vec<Value> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| Value::String(p.to_string()))
        .collect()
}

/// The API action of slot `i` (`None`: an empty slot). A stored outbound
/// message's secret is kept unless the form sets a new one or clears it.
fn action_input(
    f: &Submitted,
    i: usize,
    stored: Option<&mosaic_meta::workflow::WorkflowAction>,
) -> Result<Option<Value>, (String, String)> {
    let k = |n: &str| format!("a{i}.{n}");
    let ty = val(f, &k("type"));
    if ty.is_empty() {
        return Ok(None);
    }
    let opt = |n: &str| {
        let v = val(f, &k(n));
        (!v.is_empty()).then_some(v)
    };
    let config = match ty.as_str() {
        "field_update" => {
            let vt = val(f, &k("fu_value_type"));
            let mut c = json!({"field_api_name": val(f, &k("fu_field")), "value_type": vt});
            match vt.as_str() {
                "formula" => c["formula"] = json!(raw(f, &k("fu_formula"))),
                "literal" => c["value"] = json!(raw(f, &k("fu_value"))),
                _ => {}
            }
            c
        }
        "task_creation" => {
            let mut c = json!({"subject": raw(f, &k("task_subject"))});
            for (n, key) in [
                ("task_assignee", "assignee"),
                ("task_priority", "priority"),
                ("task_status", "status"),
                ("task_description", "description"),
            ] {
                if let Some(v) = opt(n) {
                    c[key] = json!(v);
                }
            }
            if let Some(d) = opt("task_due") {
                match d.parse::<i64>() {
                    Ok(n) => c["due_date_offset"] = json!(n),
                    Err(_) => {
                        return Err((
                            k("task_due"),
                            "The due date offset is a whole number of days.".into(),
                        ))
                    }
                }
            }
            c
        }
        "email_alert" => json!({
            "template": {"subject": raw(f, &k("email_subject")), "body": raw(f, &k("email_body"))},
            "recipients": list_of(&val(f, &k("email_recipients"))),
        }),
        "outbound_message" => {
            let mut c = json!({"endpoint_url": val(f, &k("om_url")), "fields": list_of(&val(f, &k("om_fields")))});
            let typed = raw(f, &k("om_secret"));
            let kept = stored
                .filter(|a| a.action_type == ActionType::OutboundMessage)
                .and_then(|a| a.action_config.get("secret").cloned())
                .filter(|v| !v.is_null());
            if !typed.is_empty() {
                c["secret"] = json!(typed);
            } else if !checked(f, &k("om_secret_clear")) {
                if let Some(v) = kept {
                    c["secret"] = v;
                }
            }
            c
        }
        other => return Err((k("type"), format!("'{other}' is not an action type."))),
    };
    let mut a = Map::new();
    a.insert("action_type".into(), json!(ty));
    a.insert("action_config".into(), config);
    if let Some(o) = opt("order") {
        match o.parse::<i64>() {
            Ok(n) => {
                a.insert("execution_order".into(), json!(n));
            }
            Err(_) => return Err((k("order"), "The order is a whole number.".into())),
        }
    }
    if val(f, &k("timing")) == "timed" {
        let offset = match val(f, &k("tt_offset")).parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                return Err((
                    k("tt_offset"),
                    "The time offset is a whole number (negative: before the date).".into(),
                ))
            }
        };
        a.insert("is_immediate".into(), json!(false));
        a.insert(
            "time_trigger".into(),
            json!({
                "field": val(f, &k("tt_field")),
                "offset": offset,
                "unit": if val(f, &k("tt_unit")) == "hours" { "hours" } else { "days" },
            }),
        );
    } else {
        a.insert("is_immediate".into(), json!(true));
    }
    Ok(Some(Value::Object(a)))
}

pub struct WorkflowRow {
    pub name: String,
    pub edit_href: String,
    pub order: i64,
    pub active: bool,
    pub trigger: String,
    pub criteria: String,
    pub actions: Vec<String>,
    pub toggle_href: String,
    pub delete_href: String,
}

#[derive(Template)]
#[template(path = "setup/rules_workflow_list.html")]
pub struct WorkflowList {
    pub chrome: Chrome,
    pub object_label: String,
    pub new_href: String,
    pub rules: Vec<WorkflowRow>,
    pub version: i64,
    pub validation_count: usize,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "setup/rules_workflow_form.html")]
pub struct WorkflowForm {
    pub chrome: Chrome,
    pub object_label: String,
    pub title: String,
    pub action: String,
    pub list_href: String,
    pub name: String,
    pub description: String,
    pub triggers: Vec<Choice>,
    pub re_evaluations: Vec<Choice>,
    pub order: String,
    pub active: bool,
    pub criteria_kind: String,
    pub conditions: Vec<CondRow>,
    pub logic: String,
    pub editor: FormulaEditor,
    pub slots: Vec<ActionSlot>,
    pub version: i64,
    pub problems: Problems,
}

fn wf_base(o: &ObjectMeta) -> String {
    format!("/setup/workflow-rules/{}", segment(o.api_name()))
}

fn label_of(opts: &[(&str, &str)], v: &str) -> String {
    opts.iter()
        .find(|(k, _)| *k == v)
        .map(|(_, l)| l.to_string())
        .unwrap_or_else(|| v.to_string())
}

fn describe_rule(r: &WorkflowRule) -> (String, Vec<String>) {
    let criteria = if let Some(fx) = &r.formula {
        format!("Formula: {fx}")
    } else if let Some(c) = &r.filter_criteria {
        let conds: Vec<String> = c
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let op = serde_json::to_value(c.operator)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                format!(
                    "{}. {} {} {}",
                    i + 1,
                    c.field,
                    label_of(&OPERATORS, &op),
                    json_text(&c.value)
                )
            })
            .collect();
        format!("{} — logic: {}", conds.join("; "), c.logic)
    } else {
        "Always".into()
    };
    let actions = r
        .actions
        .iter()
        .map(|a| {
            let when = match &a.time_trigger {
                None => "immediately".to_string(),
                Some(t) => format!(
                    "{} {} {} {}",
                    t.offset.abs(),
                    if t.unit == mosaic_meta::workflow::TimeUnit::Days {
                        "days"
                    } else {
                        "hours"
                    },
                    if t.offset < 0 { "before" } else { "after" },
                    t.field
                ),
            };
            let what = match a.action_type {
                ActionType::FieldUpdate => format!(
                    "Field update of {}",
                    json_text(
                        a.action_config
                            .get("field_api_name")
                            .unwrap_or(&Value::Null)
                    )
                ),
                ActionType::TaskCreation => format!(
                    "Task “{}”",
                    json_text(a.action_config.get("subject").unwrap_or(&Value::Null))
                ),
                ActionType::EmailAlert => "Email alert".to_string(),
                ActionType::OutboundMessage => format!(
                    "Outbound message to {}",
                    json_text(a.action_config.get("endpoint_url").unwrap_or(&Value::Null))
                ),
            };
            format!("{}. {what}, {when}", a.execution_order)
        })
        .collect();
    (criteria, actions)
}

async fn wf_home(State(s): State<WebState>, headers: HeaderMap, uri: Uri) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    objects_page(
        &s,
        &u,
        "Workflow Rules",
        "Criteria and actions run when records are saved. Choose an object.",
        "/setup/workflow-rules",
        &|o| format!("{} rules", o.def.workflow_rules.len()),
    )
    .await
}

async fn wf_list(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(object): Path<String>,
    Query(q): Query<Q>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let base = wf_base(&o);
    // Stored in execution order: the order the engine applies them in.
    let rules = o
        .def
        .workflow_rules
        .iter()
        .map(|r| {
            let (criteria, actions) = describe_rule(r);
            let trigger = serde_json::to_value(r.trigger_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            WorkflowRow {
                name: r.name.clone(),
                edit_href: format!("{base}/{}", segment(&r.id)),
                order: r.execution_order,
                active: r.is_active,
                trigger: label_of(&TRIGGERS, &trigger),
                criteria,
                actions,
                toggle_href: format!("{base}/{}/active", segment(&r.id)),
                delete_href: format!("{base}/{}/delete", segment(&r.id)),
            }
        })
        .collect();
    html(&WorkflowList {
        chrome: setup_chrome(&s, &u).await,
        object_label: o.def.label.clone(),
        new_href: format!("{base}/new"),
        rules,
        version: o.def.version,
        validation_count: o.def.validation_rules.iter().filter(|r| r.active).count(),
        notice: q.get("notice").cloned(),
    })
}

async fn wf_form(
    s: &WebState,
    u: &crate::session::WebUser,
    o: &ObjectMeta,
    rule: Option<&WorkflowRule>,
) -> WorkflowForm {
    let base = wf_base(o);
    let (title, action) = match rule {
        Some(r) => (
            format!("Edit {}", r.name),
            format!("{base}/{}", segment(&r.id)),
        ),
        None => ("New workflow rule".into(), format!("{base}/new")),
    };
    let enum_text = |v: Value| v.as_str().unwrap_or_default().to_string();
    let mut rows: Vec<(String, String, String)> = rule
        .and_then(|r| r.filter_criteria.as_ref())
        .map(|c| {
            c.conditions
                .iter()
                .map(|c| {
                    (
                        c.field.clone(),
                        enum_text(serde_json::to_value(c.operator).unwrap_or_default()),
                        json_text(&c.value),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    rows.extend((0..BLANK_CONDITIONS).map(|_| (String::new(), "equals".into(), String::new())));
    let mut slots: Vec<ActionSlot> = rule
        .map(|r| {
            r.actions
                .iter()
                .enumerate()
                .map(|(i, a)| slot_of(o, i, a))
                .collect()
        })
        .unwrap_or_default();
    let n = slots.len();
    slots.extend((n..n + BLANK_ACTIONS).map(|i| blank_slot(o, i)));
    let criteria_kind = match rule {
        Some(r) if r.formula.is_some() => "formula",
        Some(r) if r.filter_criteria.is_none() => "none",
        _ => "conditions",
    };
    WorkflowForm {
        chrome: setup_chrome(s, u).await,
        object_label: o.def.label.clone(),
        title,
        action,
        list_href: base,
        name: rule.map(|r| r.name.clone()).unwrap_or_default(),
        description: rule.and_then(|r| r.description.clone()).unwrap_or_default(),
        triggers: choices(
            &TRIGGERS,
            &rule
                .map(|r| enum_text(serde_json::to_value(r.trigger_type).unwrap_or_default()))
                .unwrap_or_else(|| "created_or_updated".into()),
        ),
        re_evaluations: choices(
            &RE_EVALUATIONS,
            &rule
                .map(|r| enum_text(serde_json::to_value(r.re_evaluation).unwrap_or_default()))
                .unwrap_or_else(|| "when_criteria_first_true".into()),
        ),
        order: rule
            .map(|r| r.execution_order.to_string())
            .unwrap_or_default(),
        active: rule.map(|r| r.is_active).unwrap_or(true),
        criteria_kind: criteria_kind.into(),
        conditions: cond_rows(o, &rows, &OPERATORS),
        logic: rule
            .and_then(|r| r.filter_criteria.as_ref())
            .map(|c| c.logic.clone())
            .unwrap_or_else(|| "AND".into()),
        editor: FormulaEditor::new(
            "formula",
            "Criteria formula (the rule runs when it is TRUE)",
            rule.and_then(|r| r.formula.as_deref()).unwrap_or(""),
            o.api_name(),
            "boolean",
        ),
        slots,
        version: o.def.version,
        problems: Problems::default(),
    }
}

async fn wf_new(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(object): Path<String>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    html(&wf_form(&s, &u, &o, None).await)
}

async fn wf_edit(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, rule)): Path<(String, String)>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(r) = o.def.workflow_rules.iter().find(|r| r.id == rule) else {
        return not_found_page("There is no such workflow rule.");
    };
    html(&wf_form(&s, &u, &o, Some(r)).await)
}

/// Form rows past which nothing is read (the rule's own limits are lower).
const MAX_FORM_ROWS: usize = mosaic_meta::workflow::MAX_CONDITIONS + BLANK_CONDITIONS;
const MAX_FORM_ACTIONS: usize = mosaic_meta::workflow::MAX_ACTIONS_PER_RULE + BLANK_ACTIONS;

/// Maps an API error path of a workflow rule onto the form's inputs.
fn wf_place(p: &str, conds: &[usize], acts: &[usize]) -> Option<String> {
    let index_after = |prefix: &str| -> Option<(usize, String)> {
        let rest = p.strip_prefix(prefix)?;
        let (n, tail) = rest.split_once(']')?;
        Some((n.parse().ok()?, tail.trim_start_matches('.').to_string()))
    };
    if let Some((i, tail)) = index_after("filter_criteria.conditions[") {
        let row = *conds.get(i)?;
        let input = match tail.as_str() {
            "field" | "operator" | "value" => tail,
            _ => "value".into(),
        };
        return Some(format!("c{row}.{input}"));
    }
    if let Some((i, _)) = index_after("actions[") {
        return Some(format!("a{}", acts.get(i)?));
    }
    match p {
        "filter_criteria.logic" | "filter_criteria" => Some("logic".into()),
        "formula" | "name" | "description" | "trigger_type" | "re_evaluation"
        | "execution_order" | "actions" => Some(p.to_string()),
        _ => None,
    }
}

async fn wf_save(
    s: WebState,
    headers: HeaderMap,
    uri: Uri,
    object: String,
    rule: Option<String>,
    f: Submitted,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let existing = match &rule {
        Some(id) => match o.def.workflow_rules.iter().find(|r| &r.id == id) {
            Some(r) => Some(r.clone()),
            None => return not_found_page("There is no such workflow rule."),
        },
        None => None,
    };
    let mut problems = Problems::default();
    // Conditions.
    let typed = typed_conditions(&f, MAX_FORM_ROWS);
    let mut sent_rows = Vec::new();
    let mut conditions = Vec::new();
    for (i, field, op, value) in &typed {
        if field.is_empty() {
            continue;
        }
        sent_rows.push(*i);
        let mut c = json!({"field": field, "operator": op});
        let v = condition_value(op, value);
        if !v.is_null() {
            c["value"] = v;
        }
        conditions.push(c);
    }
    let kind = val(&f, "criteria_kind");
    let logic = val(&f, "logic");
    // Actions.
    let mut sent_slots = Vec::new();
    let mut actions = Vec::new();
    for i in 0..MAX_FORM_ACTIONS {
        if crate::form::value(&f, &format!("a{i}.type")).is_none() {
            break;
        }
        let id = val(&f, &format!("a{i}.id"));
        let stored = existing
            .as_ref()
            .and_then(|r| r.actions.iter().find(|a| !id.is_empty() && a.id == id));
        match action_input(&f, i, stored) {
            Ok(Some(a)) => {
                sent_slots.push(i);
                actions.push(a);
            }
            Ok(None) => {}
            Err((input, msg)) => problems.input(&input, msg),
        }
    }
    let mut body = json!({
        "name": val(&f, "name"),
        "description": raw(&f, "description"),
        "trigger_type": val(&f, "trigger_type"),
        "re_evaluation": val(&f, "re_evaluation"),
        "is_active": checked(&f, "is_active"),
        "actions": actions,
    });
    match kind.as_str() {
        "formula" => {
            body["formula"] = json!(raw(&f, "formula"));
            body["filter_criteria"] = Value::Null;
        }
        "none" => {
            body["formula"] = Value::Null;
            body["filter_criteria"] = Value::Null;
        }
        _ => {
            body["formula"] = Value::Null;
            body["filter_criteria"] = json!({"logic": if logic.is_empty() { "AND".to_string() } else { logic.clone() }, "conditions": conditions});
        }
    }
    let order = val(&f, "execution_order");
    if !order.is_empty() {
        match order.parse::<i64>() {
            Ok(n) => body["execution_order"] = json!(n),
            Err(_) => problems.input("execution_order", "The order is a whole number."),
        }
    }
    if let Some(v) = version_of(&f) {
        body["version"] = json!(v);
    }
    let result: Result<(), MosaicError> = if !problems.is_empty() {
        Ok(())
    } else {
        match serde_json::from_value::<WorkflowInput>(body) {
            Err(e) => Err(MosaicError::field(
                mosaic_types::ErrorCode::INVALID_INPUT,
                "trigger_type",
                format!("Choose a trigger and an evaluation: {e}"),
            )),
            Ok(input) => {
                let tasks = input
                    .actions
                    .as_ref()
                    .is_some_and(|a| a.iter().any(|a| a.action_type == ActionType::TaskCreation));
                let ensured = if tasks {
                    s.platform.ensure_task_object(&u.caller.tenant_id).await
                } else {
                    Ok(())
                };
                match ensured {
                    Err(e) => Err(e),
                    Ok(()) => match &existing {
                        Some(r) => s
                            .platform
                            .meta
                            .update_workflow(&u.caller.tenant_id, o.api_name(), &r.id, input)
                            .await
                            .map(|_| ()),
                        None => s
                            .platform
                            .meta
                            .add_workflow(&u.caller.tenant_id, o.api_name(), input)
                            .await
                            .map(|_| ()),
                    },
                }
            }
        }
    };
    if result.is_ok() && problems.is_empty() {
        return back(&with_notice(&wf_base(&o), "Workflow rule saved."));
    }
    let status = match &result {
        Err(e) => {
            problems = Problems::from_error(e, &|p| wf_place(p, &sent_rows, &sent_slots));
            if problems.conflict {
                StatusCode::CONFLICT
            } else {
                crate::views::status_of(e)
            }
        }
        Ok(()) => StatusCode::BAD_REQUEST,
    };
    // The form again, as typed, with each error next to its input.
    let mut page = wf_form(&s, &u, &o, existing.as_ref()).await;
    page.name = val(&f, "name");
    page.description = raw(&f, "description");
    page.triggers = choices(&TRIGGERS, &val(&f, "trigger_type"));
    page.re_evaluations = choices(&RE_EVALUATIONS, &val(&f, "re_evaluation"));
    page.order = order;
    page.active = checked(&f, "is_active");
    page.criteria_kind = if kind.is_empty() {
        "conditions".into()
    } else {
        kind
    };
    page.logic = logic;
    let mut rows: Vec<(String, String, String)> = typed
        .iter()
        .filter(|(_, field, _, value)| !field.is_empty() || !value.is_empty())
        .map(|(_, a, b, c)| (a.clone(), b.clone(), c.clone()))
        .collect();
    let kept_rows: Vec<usize> = typed
        .iter()
        .filter(|(_, field, _, value)| !field.is_empty() || !value.is_empty())
        .map(|(i, ..)| *i)
        .collect();
    rows.extend((0..BLANK_CONDITIONS).map(|_| (String::new(), "equals".into(), String::new())));
    page.conditions = cond_rows(&o, &rows, &OPERATORS);
    for (pos, row) in page.conditions.iter_mut().enumerate() {
        let orig = kept_rows.get(pos).copied();
        row.error = orig.and_then(|i| {
            ["field", "operator", "value"]
                .iter()
                .find_map(|k| problems.at(&format!("c{i}.{k}")))
        });
    }
    page.editor.value = raw(&f, "formula");
    page.editor.field_error = problems.at("formula");
    let stored_slots = page.slots.clone();
    let mut slots = Vec::new();
    for i in 0..MAX_FORM_ACTIONS {
        if crate::form::value(&f, &format!("a{i}.type")).is_none() {
            break;
        }
        let id = val(&f, &format!("a{i}.id"));
        let stored = stored_slots.iter().find(|x| !id.is_empty() && x.id == id);
        let mut slot = typed_slot(&o, &f, i, stored);
        slot.error = problems.at(&format!("a{i}")).or_else(|| {
            problems
                .by_input
                .iter()
                .find(|(k, _)| k.starts_with(&format!("a{i}.")))
                .map(|(_, v)| v.clone())
        });
        slots.push(slot);
    }
    page.slots = slots;
    page.version = version_of(&f).unwrap_or(o.def.version);
    page.problems = problems;
    (status, html(&page)).into_response()
}

async fn wf_create(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(object): Path<String>,
    Form(f): Form<Submitted>,
) -> Response {
    wf_save(s, headers, uri, object, None, f).await
}

async fn wf_update(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, rule)): Path<(String, String)>,
    Form(f): Form<Submitted>,
) -> Response {
    wf_save(s, headers, uri, object, Some(rule), f).await
}

async fn wf_toggle(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, rule)): Path<(String, String)>,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input = WorkflowInput {
        is_active: Some(checked(&f, "active")),
        version: version_of(&f),
        ..Default::default()
    };
    let r = s
        .platform
        .meta
        .update_workflow(&u.caller.tenant_id, o.api_name(), &rule, input)
        .await
        .map(|_| ());
    list_outcome(r, &wf_base(&o), "Workflow rule updated.")
}

async fn wf_delete(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, rule)): Path<(String, String)>,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let r = s
        .platform
        .meta
        .delete_workflow(&u.caller.tenant_id, o.api_name(), &rule)
        .await;
    list_outcome(r, &wf_base(&o), "Workflow rule deleted.")
}

// ================================================================ outbox

pub struct EntryRow {
    pub id: String,
    pub kind: String,
    pub record: String,
    pub attempts: u32,
    pub error: String,
    pub when: String,
    pub replay_href: String,
    pub discard_href: String,
}

pub struct HistoryRow {
    pub when: String,
    pub field: String,
    pub old: String,
    pub new: String,
    pub by: String,
}

#[derive(Template)]
#[template(path = "setup/rules_outbox.html")]
pub struct OutboxPage {
    pub chrome: Chrome,
    pub dead: Vec<EntryRow>,
    pub next_href: Option<String>,
    pub record_id: String,
    pub pending: Option<Vec<EntryRow>>,
    pub record_error: Option<String>,
    pub objects: Vec<Choice>,
    pub history_record: String,
    pub history: Option<Vec<HistoryRow>>,
    pub history_error: Option<String>,
    pub notice: Option<String>,
}

fn entry_row(e: &mosaic_store::OutboxEntry) -> EntryRow {
    let kind = match e.kind.as_str() {
        "outbound_message" => "Outbound message",
        "email_alert" => "Email alert",
        "time_trigger" => "Time-based actions",
        other => other,
    };
    EntryRow {
        id: e.id.clone(),
        kind: kind.into(),
        record: e.record_id.clone(),
        attempts: e.attempts,
        error: e.last_error.clone().unwrap_or_default(),
        when: e.updated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        replay_href: format!("/setup/outbox/{}/replay", segment(&e.id)),
        discard_href: format!("/setup/outbox/{}/discard", segment(&e.id)),
    }
}

fn history_text(v: &Option<String>) -> String {
    v.as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .map(|v| json_text(&v))
        .unwrap_or_default()
}

/// `GET /setup/outbox`: dead letters (`?before=` pages), the pending
/// actions of a record (`?record_id=`), a record's field history
/// (`?object=&history_record=`).
async fn outbox(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<Q>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Admin).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let tenant = &u.caller.tenant_id;
    let before = q
        .get("before")
        .map(String::as_str)
        .filter(|b| !b.is_empty());
    let dead = match s
        .platform
        .automation
        .dead_letters(tenant, OUTBOX_PAGE, before)
        .await
    {
        Ok(d) => d,
        Err(e) => return error_page(&e),
    };
    let next_href = (dead.len() == OUTBOX_PAGE)
        .then(|| {
            dead.last()
                .map(|e| format!("/setup/outbox?before={}", segment(&e.id)))
        })
        .flatten();
    let g = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let record_id = g("record_id");
    let (mut pending, mut record_error) = (None, None);
    if !record_id.is_empty() {
        match s
            .platform
            .automation
            .pending_for_record(tenant, &record_id)
            .await
        {
            Ok(p) => pending = Some(p.iter().map(entry_row).collect()),
            Err(e) => record_error = Some(e.message),
        }
    }
    let object = g("object");
    let history_record = g("history_record");
    let (mut history, mut history_error) = (None, None);
    if !history_record.is_empty() {
        if object.is_empty() {
            history_error = Some("Choose the record's object.".into());
        } else {
            match s
                .platform
                .field_history(&u.caller, &object, &history_record, HISTORY_PAGE)
                .await
            {
                Ok(rows) => {
                    let mut names: HashMap<String, String> = HashMap::new();
                    for r in &rows {
                        if !names.contains_key(&r.changed_by) {
                            let n = s
                                .platform
                                .meta_store
                                .user(tenant, &r.changed_by)
                                .await
                                .ok()
                                .flatten()
                                .map(|u| u.username)
                                .unwrap_or_else(|| r.changed_by.clone());
                            names.insert(r.changed_by.clone(), n);
                        }
                    }
                    history = Some(
                        rows.iter()
                            .map(|r| HistoryRow {
                                when: r.changed_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                                field: r.field.clone(),
                                old: history_text(&r.old_value),
                                new: history_text(&r.new_value),
                                by: names.get(&r.changed_by).cloned().unwrap_or_default(),
                            })
                            .collect(),
                    )
                }
                Err(e) => history_error = Some(e.message),
            }
        }
    }
    let objects = match s.platform.meta.objects(tenant).await {
        Ok(l) => l
            .iter()
            .filter(|o| o.def.enable_history)
            .map(|o| Choice {
                value: o.def.api_name.clone(),
                label: o.def.label.clone(),
                selected: o.def.api_name.eq_ignore_ascii_case(&object),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    html(&OutboxPage {
        chrome: setup_chrome(&s, &u).await,
        dead: dead.iter().map(entry_row).collect(),
        next_href,
        record_id,
        pending,
        record_error,
        objects,
        history_record,
        history,
        history_error,
        notice: q.get("notice").cloned(),
    })
}

async fn replay(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Admin).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.platform.config.clock.now();
    match s
        .platform
        .automation
        .replay(&u.caller.tenant_id, &id, now)
        .await
    {
        Ok(true) => {
            s.platform.wake_outbox();
            back(&with_notice(
                "/setup/outbox",
                "Dead letter queued for delivery again.",
            ))
        }
        Ok(false) => not_found_page(
            "There is no such dead letter (it may have been replayed or discarded already).",
        ),
        Err(e) => error_page(&e),
    }
}

async fn discard(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f, Need::Admin).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match s
        .platform
        .automation
        .discard(&u.caller.tenant_id, &id)
        .await
    {
        Ok(true) => back(&with_notice("/setup/outbox", "Dead letter discarded.")),
        Ok(false) => not_found_page(
            "There is no such dead letter (it may have been replayed or discarded already).",
        ),
        Err(e) => error_page(&e),
    }
}

/// This area's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/setup/validation-rules", get(vr_home))
        .route("/setup/validation-rules/{object}", get(vr_list))
        .route(
            "/setup/validation-rules/{object}/new",
            get(vr_new).post(vr_create),
        )
        .route(
            "/setup/validation-rules/{object}/{rule}",
            get(vr_edit).post(vr_update),
        )
        .route(
            "/setup/validation-rules/{object}/{rule}/active",
            post(vr_toggle),
        )
        .route(
            "/setup/validation-rules/{object}/{rule}/delete",
            post(vr_delete),
        )
        .route("/setup/workflow-rules", get(wf_home))
        .route("/setup/workflow-rules/{object}", get(wf_list))
        .route(
            "/setup/workflow-rules/{object}/new",
            get(wf_new).post(wf_create),
        )
        .route(
            "/setup/workflow-rules/{object}/{rule}",
            get(wf_edit).post(wf_update),
        )
        .route(
            "/setup/workflow-rules/{object}/{rule}/active",
            post(wf_toggle),
        )
        .route(
            "/setup/workflow-rules/{object}/{rule}/delete",
            post(wf_delete),
        )
        .route("/setup/outbox", get(outbox))
        .route("/setup/outbox/{id}/replay", post(replay))
        .route("/setup/outbox/{id}/discard", post(discard))
}
