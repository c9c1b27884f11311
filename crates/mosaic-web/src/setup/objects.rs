//! Setup's Object Manager: objects and their fields, every option the
//! metadata API takes, the flex-pool usage of each object, and dry runs —
//! deleting a field or an object, or changing a sharing model, first shows
//! the runtime's impact report and runs only on a second, confirmed POST.
//!
//! Every change goes through `platform.meta` exactly as the metadata API's
//! handlers call it; edits carry the definition's version, so a change made
//! meanwhile is refused (409) and shown with a reload choice, never
//! overwritten.

use super::{setup_chrome, setup_user, type_label, Need};
use crate::display::segment;
use crate::form::{self, Submitted};
use crate::session::CSRF_FIELD;
use crate::views::{error_page, html, Chrome, Input, Opt};
use crate::WebState;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use mosaic_meta::impact::{FieldChange, ImpactReport};
use mosaic_meta::model::{FieldDef, ObjectMeta, SharingModel};
use mosaic_meta::pools::pool_usage;
use mosaic_meta::validate::{FieldInput, ObjectInput};
use mosaic_types::{DataType, ErrorCode, MosaicError};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

/// Blank rows offered below a picklist's values for new ones.
pub const NEW_PICKLIST_ROWS: usize = 3;
/// Most picklist rows read back from one form (the API's own limit).
const MAX_PICKLIST_ROWS: usize = mosaic_meta::validate::MAX_PICKLIST_VALUES;
/// The hidden field confirming a dry-run change.
const CONFIRM_FIELD: &str = "_confirm";
/// The hidden field carrying the definition's version.
const VERSION_FIELD: &str = "_version";

type Q = HashMap<String, String>;

/// Types a new field may take (roll-up summaries are not implemented).
fn creatable_types() -> impl Iterator<Item = DataType> {
    DataType::ALL
        .into_iter()
        .filter(|t| *t != DataType::RollupSummary)
}

/// Formula return types the metadata API takes.
const FORMULA_RETURN_TYPES: [DataType; 8] = [
    DataType::Text,
    DataType::Number,
    DataType::Currency,
    DataType::Percent,
    DataType::Date,
    DataType::Datetime,
    DataType::Time,
    DataType::Boolean,
];

const SHARING_MODELS: [(SharingModel, &str, &str); 4] = [
    (SharingModel::Private, "private", "Private"),
    (SharingModel::PublicRead, "public_read", "Public Read Only"),
    (
        SharingModel::PublicReadWrite,
        "public_read_write",
        "Public Read/Write",
    ),
    (
        SharingModel::ControlledByParent,
        "controlled_by_parent",
        "Controlled by Parent",
    ),
];

fn sharing_label(m: SharingModel) -> &'static str {
    SHARING_MODELS
        .iter()
        .find(|x| x.0 == m)
        .map(|x| x.2)
        .unwrap_or("")
}

fn sharing_key(m: SharingModel) -> &'static str {
    SHARING_MODELS
        .iter()
        .find(|x| x.0 == m)
        .map(|x| x.1)
        .unwrap_or("")
}

// ---------------------------------------------------------------- views

/// An object as the list shows it.
pub struct ObjectRow {
    pub label: String,
    pub api_name: String,
    pub href: String,
    pub fields: usize,
    /// "12 of 220 slots used".
    pub pools: String,
}

#[derive(Template)]
#[template(path = "setup/objects_list.html")]
pub struct ListPage {
    pub chrome: Chrome,
    pub rows: Vec<ObjectRow>,
    pub notice: Option<String>,
}

pub struct FieldRow {
    pub label: String,
    pub api_name: String,
    pub type_label: String,
    pub detail: String,
    pub href: String,
    pub delete_href: String,
}

pub struct PoolRow {
    pub pool: String,
    pub used: u16,
    pub pending: u16,
    pub free: u16,
    pub capacity: u16,
}

#[derive(Template)]
#[template(path = "setup/objects_detail.html")]
pub struct DetailPage {
    pub chrome: Chrome,
    pub label: String,
    pub api_name: String,
    pub base: String,
    pub facts: Vec<(String, String)>,
    pub fields: Vec<FieldRow>,
    pub pools: Vec<PoolRow>,
    pub notice: Option<String>,
}

/// A fieldset of a Setup form.
pub struct Group {
    pub legend: String,
    pub inputs: Vec<Input>,
}

/// A picklist value row of the field form.
pub struct PicklistRow {
    pub index: usize,
    pub value: String,
    pub label: String,
    pub order: String,
    pub active: bool,
    pub default: bool,
}

#[derive(Template)]
#[template(path = "setup/objects_form.html")]
pub struct FormPage {
    pub chrome: Chrome,
    pub title: String,
    pub intro: String,
    pub action: String,
    /// `post`, or `get` for the type chooser.
    pub method: &'static str,
    pub submit: String,
    pub cancel_href: String,
    pub groups: Vec<Group>,
    pub picklist: Option<Vec<PicklistRow>>,
    pub hidden: Vec<(String, String)>,
    pub errors: Vec<String>,
    /// Someone changed the definition since the form was opened.
    pub conflict: Option<String>,
    pub reload_href: String,
}

pub struct ImpactList {
    pub title: &'static str,
    pub items: Vec<String>,
}

#[derive(Template)]
#[template(path = "setup/objects_impact.html")]
pub struct ImpactPage {
    pub chrome: Chrome,
    pub title: String,
    pub change: String,
    pub records: u64,
    pub records_label: &'static str,
    pub lists: Vec<ImpactList>,
    pub blockers: Vec<String>,
    pub action: String,
    pub confirm: String,
    pub cancel_href: String,
    /// The submitted form carried through the confirmation.
    pub carried: Vec<(String, String)>,
    pub errors: Vec<String>,
}

// ---------------------------------------------------------------- helpers

fn base_href(object: &str) -> String {
    format!("/setup/objects/{}", segment(object))
}

fn field_href(object: &str, field: &str) -> String {
    format!("{}/fields/{}", base_href(object), segment(field))
}

fn text(name: &str, label: &str, value: &str) -> Input {
    Input {
        name: name.into(),
        id: format!("f-{}", name.replace('.', "-")),
        label: label.into(),
        kind: "text",
        value: value.into(),
        ..Input::default()
    }
}

fn area(name: &str, label: &str, value: &str) -> Input {
    Input {
        kind: "textarea",
        ..text(name, label, value)
    }
}

fn check(name: &str, label: &str, on: bool) -> Input {
    Input {
        kind: "checkbox",
        checked: on,
        ..text(name, label, "")
    }
}

fn select(name: &str, label: &str, options: Vec<(String, String)>, chosen: &str) -> Input {
    Input {
        kind: "select",
        options: options
            .into_iter()
            .map(|(value, label)| Opt {
                selected: value == chosen,
                value,
                label,
            })
            .collect(),
        ..text(name, label, chosen)
    }
}

fn help(mut i: Input, h: &str) -> Input {
    i.help = Some(h.into());
    i
}

fn required(mut i: Input) -> Input {
    i.required = true;
    i
}

/// Puts the submitted values back into the inputs (what the user typed is
/// kept on errors).
fn refill(groups: &mut [Group], f: &Submitted) {
    for i in groups.iter_mut().flat_map(|g| g.inputs.iter_mut()) {
        match i.kind {
            "checkbox" => i.checked = form::value(f, &i.name) == Some("1"),
            _ => {
                if let Some(v) = form::value(f, &i.name) {
                    i.value = v.to_string();
                    for o in &mut i.options {
                        o.selected = o.value == v;
                    }
                }
            }
        }
    }
}

/// Errors placed next to the input they name; the rest are listed on top.
/// A 409 becomes the conflict banner.
struct Placed {
    general: Vec<String>,
    conflict: Option<String>,
}

fn place(groups: &mut [Group], errors: &[(String, String)], e: Option<&MosaicError>) -> Placed {
    let mut general = Vec::new();
    let mut conflict = None;
    let mut all: Vec<(String, String)> = errors.to_vec();
    if let Some(e) = e {
        if e.code == ErrorCode::CONFLICT {
            conflict = Some(format!(
                "This definition was changed by someone else since you opened the form; nothing was saved. {}",
                e.message
            ));
        } else {
            all.push((
                e.fields.first().cloned().unwrap_or_default(),
                e.message.clone(),
            ));
        }
    }
    for (name, msg) in all {
        let name = name.strip_prefix("fields[0].").unwrap_or(&name).to_string();
        // The name field's checks name their own key (`auto_number_format`).
        let nested = format!("name_field.{name}");
        let exact = groups
            .iter()
            .flat_map(|g| g.inputs.iter())
            .any(|i| i.name == name);
        let target = groups
            .iter_mut()
            .flat_map(|g| g.inputs.iter_mut())
            .find(|i| i.name == name || (!exact && i.name == nested));
        match target {
            Some(i) => {
                i.error = Some(msg.clone());
            }
            None => general.push(msg),
        }
    }
    if let Some(i) = groups
        .iter_mut()
        .flat_map(|g| g.inputs.iter_mut())
        .find(|i| i.error.is_some())
    {
        i.autofocus = true;
    }
    Placed { general, conflict }
}

fn carried(f: &Submitted) -> Vec<(String, String)> {
    f.iter()
        .filter(|(k, _)| k != CSRF_FIELD && k != CONFIRM_FIELD)
        .cloned()
        .collect()
}

fn confirmed(f: &Submitted) -> bool {
    form::value(f, CONFIRM_FIELD) == Some("1")
}

/// A whole number typed into `name` (blank: none); a bad one is an error
/// placed next to it.
fn number<T: std::str::FromStr>(
    f: &Submitted,
    name: &str,
    errors: &mut Vec<(String, String)>,
) -> Option<T> {
    let v = form::value(f, name).unwrap_or("").trim();
    if v.is_empty() {
        return None;
    }
    match v.parse::<T>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push((name.into(), format!("'{v}' is not a whole number")));
            None
        }
    }
}

fn version_of(f: &Submitted) -> Option<i64> {
    form::value(f, VERSION_FIELD).and_then(|v| v.parse().ok())
}

fn opt_text(f: &Submitted, name: &str) -> Option<String> {
    form::value(f, name).map(|v| v.trim().to_string())
}

fn on(f: &Submitted, name: &str) -> bool {
    form::value(f, name) == Some("1")
}

async fn object_of(s: &WebState, tenant: &str, object: &str) -> Result<Arc<ObjectMeta>, Response> {
    s.platform
        .meta
        .object(tenant, object)
        .await
        .map_err(|e| error_page(&e))
}

/// After a committed change: cached record decisions are dropped (a
/// sharing model or master-detail may have changed) and the change is
/// written to the audit log in the shape the metadata API records it
/// (`metadata.create|update|delete`, target `object` / `field` and its
/// name path, detail `{"method","path"}` with the API's path).
async fn changed(
    s: &WebState,
    u: &crate::session::WebUser,
    method: &str,
    object: &str,
    field: Option<&str>,
) {
    let tenant = &u.caller.tenant_id;
    s.platform.sharing_changed(tenant);
    let (target_type, target_id) = match field {
        Some(f) => ("field", format!("{object}/{f}")),
        None => ("object", object.to_string()),
    };
    let path = match field {
        Some(f) => format!("/services/metadata/v1/objects/{object}/fields/{f}"),
        None => format!("/services/metadata/v1/objects/{object}"),
    };
    let entry = mosaic_store::access_store::AuditEntry {
        tenant_id: tenant.clone(),
        actor_id: u.caller.user_id.clone(),
        action: format!(
            "metadata.{}",
            match method {
                "POST" => "create",
                "DELETE" => "delete",
                _ => "update",
            }
        ),
        target_type: target_type.into(),
        target_id,
        detail: json!({"method": method, "path": path, "via": "setup"}).to_string(),
        at: chrono::Utc::now(),
    };
    if let Err(e) = s.platform.access.store().append_audit(entry).await {
        tracing::warn!(error = %e.message, "audit entry for a Setup change was not written");
    }
}

async fn objects_by_id(s: &WebState, tenant: &str) -> HashMap<String, String> {
    s.platform
        .meta
        .objects(tenant)
        .await
        .map(|l| {
            l.iter()
                .map(|o| (o.def.id.clone(), o.def.api_name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- object list and page

async fn list(
    State(s): State<WebState>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let objects = match s.platform.meta.objects(&u.caller.tenant_id).await {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let mut rows: Vec<ObjectRow> = objects
        .iter()
        .map(|o| {
            let usage = pool_usage(&o.def);
            let used: u32 = usage.iter().map(|p| u32::from(p.used + p.pending)).sum();
            let cap: u32 = usage.iter().map(|p| u32::from(p.capacity)).sum();
            let fullest = usage
                .iter()
                .max_by_key(|p| u32::from(p.used + p.pending) * 1000 / u32::from(p.capacity))
                .filter(|p| p.used + p.pending > 0);
            ObjectRow {
                label: o.def.label.clone(),
                api_name: o.def.api_name.clone(),
                href: base_href(o.api_name()),
                fields: o.def.fields.len(),
                pools: match fullest {
                    Some(p) => format!(
                        "{used} of {cap} slots used; fullest: {} {}/{}",
                        p.pool,
                        p.used + p.pending,
                        p.capacity
                    ),
                    None => format!("{used} of {cap} slots used"),
                },
            }
        })
        .collect();
    rows.sort_by_key(|r| r.label.to_lowercase());
    html(&ListPage {
        chrome: setup_chrome(&s, &u).await,
        rows,
        notice: notice(&q),
    })
}

fn notice(q: &Q) -> Option<String> {
    q.get("notice").and_then(|n| {
        Some(
            match n.as_str() {
                "created" => "Created.",
                "saved" => "Saved.",
                "deleted" => "Deleted.",
                _ => return None,
            }
            .to_string(),
        )
    })
}

fn field_detail(f: &FieldDef, names: &HashMap<String, String>) -> String {
    let mut d = Vec::new();
    if let Some(l) = f.length {
        d.push(format!("length {l}"));
    }
    if let (Some(p), Some(sc)) = (f.precision, f.scale) {
        d.push(format!("{p}, {sc}"));
    }
    if let Some(t) = f.lookup_object_id.as_ref().and_then(|id| names.get(id)) {
        d.push(format!("→ {t}"));
    }
    if let Some(rt) = f.formula_return_type {
        d.push(format!("returns {}", type_label(rt)));
    }
    if f.is_required {
        d.push("required".into());
    }
    if f.is_unique {
        d.push("unique".into());
    }
    if f.is_external_id {
        d.push("external id".into());
    }
    if f.is_indexed {
        d.push("indexed".into());
    }
    d.join(" · ")
}

async fn detail(
    State(s): State<WebState>,
    Path(object): Path<String>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u.caller.tenant_id, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let names = objects_by_id(&s, &u.caller.tenant_id).await;
    let d = &o.def;
    let nf = &d.name_field;
    let mut facts = vec![
        ("Plural label".to_string(), d.plural_label.clone()),
        (
            "Sharing model".into(),
            sharing_label(d.sharing_model).into(),
        ),
        (
            "Field history".into(),
            if d.enable_history {
                "Tracked"
            } else {
                "Not tracked"
            }
            .into(),
        ),
        (
            "Name field".into(),
            match &nf.auto_number_format {
                Some(fmt) if nf.data_type == DataType::AutoNumber => {
                    format!(
                        "{} (Auto Number {fmt}, from {})",
                        nf.label, nf.auto_number_start
                    )
                }
                _ => format!("{} (Text, {} characters)", nf.label, nf.length),
            },
        ),
        ("Version".into(), d.version.to_string()),
    ];
    if let Some(desc) = &d.description {
        facts.push(("Description".into(), desc.clone()));
    }
    let fields = d
        .fields
        .iter()
        .map(|f| FieldRow {
            label: f.label.clone(),
            api_name: f.api_name.clone(),
            type_label: type_label(f.data_type).into(),
            detail: field_detail(f, &names),
            href: field_href(&d.api_name, &f.api_name),
            delete_href: format!("{}/delete", field_href(&d.api_name, &f.api_name)),
        })
        .collect();
    let pools = pool_usage(d)
        .into_iter()
        .map(|p| PoolRow {
            pool: p.pool.to_string(),
            used: p.used,
            pending: p.pending,
            free: p.free,
            capacity: p.capacity,
        })
        .collect();
    html(&DetailPage {
        chrome: setup_chrome(&s, &u).await,
        label: d.label.clone(),
        api_name: d.api_name.clone(),
        base: base_href(&d.api_name),
        facts,
        fields,
        pools,
        notice: notice(&q),
    })
}

// ---------------------------------------------------------------- object forms

fn object_groups(o: Option<&ObjectMeta>) -> Vec<Group> {
    let d = o.map(|o| &o.def);
    let nf = d.map(|d| &d.name_field);
    let mut basics = vec![
        required(text(
            "label",
            "Label",
            d.map(|d| d.label.as_str()).unwrap_or(""),
        )),
        required(text(
            "plural_label",
            "Plural label",
            d.map(|d| d.plural_label.as_str()).unwrap_or(""),
        )),
    ];
    if d.is_none() {
        basics.push(required(help(
            text("api_name", "API name", ""),
            "Letters, digits and single underscores, ending in __c, e.g. Invoice__c.",
        )));
    }
    basics.push(area(
        "description",
        "Description",
        d.and_then(|d| d.description.as_deref()).unwrap_or(""),
    ));
    let model = d.map(|d| d.sharing_model).unwrap_or_default();
    let settings = vec![
        select(
            "sharing_model",
            "Sharing model",
            SHARING_MODELS
                .iter()
                .map(|(_, k, l)| (k.to_string(), l.to_string()))
                .collect(),
            sharing_key(model),
        ),
        check(
            "enable_history",
            "Track field history",
            d.is_some_and(|d| d.enable_history),
        ),
    ];
    let name = vec![
        text(
            "name_field.label",
            "Name field label",
            nf.map(|n| n.label.as_str()).unwrap_or("Name"),
        ),
        select(
            "name_field.data_type",
            "Name field type",
            vec![
                ("text".into(), "Text".into()),
                ("auto_number".into(), "Auto Number".into()),
            ],
            if nf.is_some_and(|n| n.data_type == DataType::AutoNumber) {
                "auto_number"
            } else {
                "text"
            },
        ),
        help(
            text(
                "name_field.auto_number_format",
                "Auto number format",
                nf.and_then(|n| n.auto_number_format.as_deref())
                    .unwrap_or(""),
            ),
            "For Auto Number: one counter token, e.g. INV-{0000}; {YYYY} {MM} {DD} allowed.",
        ),
        text(
            "name_field.auto_number_start",
            "Auto number starts at",
            &nf.map(|n| n.auto_number_start.to_string())
                .unwrap_or_else(|| "1".into()),
        ),
    ];
    vec![
        Group {
            legend: "Object".into(),
            inputs: basics,
        },
        Group {
            legend: "Sharing and history".into(),
            inputs: settings,
        },
        Group {
            legend: "Record name".into(),
            inputs: name,
        },
    ]
}

/// The metadata API's object body from the submitted form.
fn object_input(f: &Submitted, create: bool) -> Result<ObjectInput, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let mut body = Map::new();
    for k in ["label", "plural_label", "description"] {
        if let Some(v) = opt_text(f, k) {
            body.insert(k.into(), json!(v));
        }
    }
    if create {
        body.insert(
            "api_name".into(),
            json!(opt_text(f, "api_name").unwrap_or_default()),
        );
    }
    if let Some(m) = form::value(f, "sharing_model") {
        body.insert("sharing_model".into(), json!(m));
    }
    body.insert("enable_history".into(), json!(on(f, "enable_history")));
    let mut nf = Map::new();
    if let Some(l) = opt_text(f, "name_field.label") {
        nf.insert("label".into(), json!(l));
    }
    let t = form::value(f, "name_field.data_type").unwrap_or("text");
    nf.insert("data_type".into(), json!(t));
    if t == "auto_number" {
        if let Some(fmt) = opt_text(f, "name_field.auto_number_format").filter(|s| !s.is_empty()) {
            nf.insert("auto_number_format".into(), json!(fmt));
        }
        if let Some(n) = number::<i64>(f, "name_field.auto_number_start", &mut errors) {
            nf.insert("auto_number_start".into(), json!(n));
        }
    }
    body.insert("name_field".into(), Json::Object(nf));
    if let Some(v) = version_of(f) {
        body.insert("version".into(), json!(v));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    serde_json::from_value(Json::Object(body)).map_err(|e| vec![(String::new(), e.to_string())])
}

#[allow(clippy::too_many_arguments)]
fn object_form(
    chrome: Chrome,
    o: Option<&ObjectMeta>,
    f: Option<&Submitted>,
    errors: &[(String, String)],
    e: Option<&MosaicError>,
) -> Response {
    let mut groups = object_groups(o);
    if let Some(f) = f {
        refill(&mut groups, f);
    }
    let placed = place(&mut groups, errors, e);
    let (title, action, cancel, hidden) = match o {
        Some(o) => (
            format!("Edit {}", o.def.label),
            format!("{}/edit", base_href(o.api_name())),
            base_href(o.api_name()),
            vec![(VERSION_FIELD.to_string(), o.def.version.to_string())],
        ),
        None => (
            "New object".to_string(),
            "/setup/objects/new".to_string(),
            "/setup/objects".to_string(),
            vec![],
        ),
    };
    let page = FormPage {
        chrome,
        title,
        intro: String::new(),
        reload_href: o
            .map(|o| format!("{}/edit", base_href(o.api_name())))
            .unwrap_or_default(),
        action,
        method: "post",
        submit: "Save".into(),
        cancel_href: cancel,
        groups,
        picklist: None,
        hidden,
        errors: placed.general,
        conflict: placed.conflict,
    };
    let status = if errors.is_empty() && e.is_none() {
        axum::http::StatusCode::OK
    } else if e.is_some_and(|e| e.code == ErrorCode::CONFLICT) {
        axum::http::StatusCode::CONFLICT
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, html(&page)).into_response()
}

async fn new_object_form(State(s): State<WebState>, headers: HeaderMap, uri: Uri) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    object_form(setup_chrome(&s, &u).await, None, None, &[], None)
}

/// The Setup user of a form post whose CSRF token is theirs.
async fn posting(
    s: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    f: &Submitted,
) -> Result<crate::session::WebUser, Response> {
    let u = setup_user(s, headers, uri, Need::Customize).await?;
    u.check_csrf(form::value(f, CSRF_FIELD))?;
    Ok(u)
}

async fn create_object(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let input = match object_input(&f, true) {
        Ok(i) => i,
        Err(errs) => return object_form(setup_chrome(&s, &u).await, None, Some(&f), &errs, None),
    };
    match s
        .platform
        .meta
        .create_object(&u.caller.tenant_id, input)
        .await
    {
        Ok(o) => {
            changed(&s, &u, "POST", o.api_name(), None).await;
            Redirect::to(&format!("{}?notice=created", base_href(o.api_name()))).into_response()
        }
        Err(e) => object_form(setup_chrome(&s, &u).await, None, Some(&f), &[], Some(&e)),
    }
}

async fn edit_object_form(
    State(s): State<WebState>,
    Path(object): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u.caller.tenant_id, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    object_form(setup_chrome(&s, &u).await, Some(&o), None, &[], None)
}

async fn update_object(
    State(s): State<WebState>,
    Path(object): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let tenant = u.caller.tenant_id.clone();
    let o = match object_of(&s, &tenant, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let input = match object_input(&f, false) {
        Ok(i) => i,
        Err(errs) => {
            return object_form(setup_chrome(&s, &u).await, Some(&o), Some(&f), &errs, None)
        }
    };
    // A sharing model change is shown with its impact first.
    if let Some(to) = input.sharing_model.filter(|m| *m != o.def.sharing_model) {
        if !confirmed(&f) {
            return match s
                .platform
                .meta
                .sharing_model_impact(&tenant, o.api_name(), to)
                .await
            {
                Ok(r) => impact_page(
                    setup_chrome(&s, &u).await,
                    &r,
                    format!("Change sharing of {}", o.def.label),
                    format!("{}/edit", base_href(o.api_name())),
                    format!("Change to {}", sharing_label(to)),
                    base_href(o.api_name()),
                    carried(&f),
                    None,
                ),
                Err(e) => error_page(&e),
            };
        }
    }
    match s
        .platform
        .meta
        .update_object(&tenant, o.api_name(), input)
        .await
    {
        Ok(n) => {
            changed(&s, &u, "PATCH", o.api_name(), None).await;
            Redirect::to(&format!("{}?notice=saved", base_href(n.api_name()))).into_response()
        }
        Err(e) => object_form(
            setup_chrome(&s, &u).await,
            Some(&o),
            Some(&f),
            &[],
            Some(&e),
        ),
    }
}

// ---------------------------------------------------------------- dry runs

#[allow(clippy::too_many_arguments)]
fn impact_page(
    chrome: Chrome,
    r: &ImpactReport,
    title: String,
    action: String,
    confirm: String,
    cancel_href: String,
    carried: Vec<(String, String)>,
    e: Option<&MosaicError>,
) -> Response {
    let lists = [
        ("Formulas", &r.formulas),
        ("Validation rules", &r.validation_rules),
        ("Workflow rules", &r.workflow_rules),
        ("Sharing rules", &r.sharing_rules),
        ("Page layouts and related lists", &r.layouts),
        ("List views", &r.list_views),
        ("Relationships", &r.relationships),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(t, v)| ImpactList {
        title: t,
        items: v.clone(),
    })
    .collect();
    let page = ImpactPage {
        chrome,
        title,
        change: r.change.clone(),
        records: r.records,
        records_label: if r.change.contains(" field ") {
            "records hold a value in this field"
        } else {
            "records of this object"
        },
        lists,
        blockers: r.blockers.clone(),
        action,
        confirm,
        cancel_href,
        carried,
        errors: e.map(|e| vec![e.message.clone()]).unwrap_or_default(),
    };
    let status = match e {
        Some(e) if e.code == ErrorCode::CONFLICT => axum::http::StatusCode::CONFLICT,
        Some(_) => axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        None => axum::http::StatusCode::OK,
    };
    (status, html(&page)).into_response()
}

async fn delete_object_confirm(
    State(s): State<WebState>,
    Path(object): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    delete_object_report(&s, &u, &object, None).await
}

async fn delete_object_report(
    s: &WebState,
    u: &crate::session::WebUser,
    object: &str,
    e: Option<&MosaicError>,
) -> Response {
    match s
        .platform
        .meta
        .object_impact(&u.caller.tenant_id, object)
        .await
    {
        Ok(r) => impact_page(
            setup_chrome(s, u).await,
            &r,
            format!("Delete {object}"),
            format!("{}/delete", base_href(object)),
            "Delete the object and its records".into(),
            base_href(object),
            vec![],
            e,
        ),
        Err(e) => error_page(&e),
    }
}

async fn delete_object(
    State(s): State<WebState>,
    Path(object): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !confirmed(&f) {
        return delete_object_report(&s, &u, &object, None).await;
    }
    match s
        .platform
        .meta
        .delete_object(&u.caller.tenant_id, &object)
        .await
    {
        Ok(()) => {
            changed(&s, &u, "DELETE", &object, None).await;
            Redirect::to("/setup/objects?notice=deleted").into_response()
        }
        Err(e) => delete_object_report(&s, &u, &object, Some(&e)).await,
    }
}

async fn delete_field_confirm(
    State(s): State<WebState>,
    Path((object, field)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    delete_field_report(&s, &u, &object, &field, None, None).await
}

async fn delete_field_report(
    s: &WebState,
    u: &crate::session::WebUser,
    object: &str,
    field: &str,
    version: Option<i64>,
    e: Option<&MosaicError>,
) -> Response {
    let tenant = &u.caller.tenant_id;
    let o = match object_of(s, tenant, object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match s
        .platform
        .meta
        .field_impact(tenant, object, field, FieldChange::Delete)
        .await
    {
        Ok(r) => impact_page(
            setup_chrome(s, u).await,
            &r,
            format!("Delete field {field}"),
            format!("{}/delete", field_href(object, field)),
            "Delete the field and its data".into(),
            base_href(object),
            vec![(
                VERSION_FIELD.into(),
                version.unwrap_or(o.def.version).to_string(),
            )],
            e,
        ),
        Err(e) => error_page(&e),
    }
}

async fn delete_field(
    State(s): State<WebState>,
    Path((object, field)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !confirmed(&f) {
        return delete_field_report(&s, &u, &object, &field, None, None).await;
    }
    match s
        .platform
        .meta
        .delete_field(&u.caller.tenant_id, &object, &field, version_of(&f))
        .await
    {
        Ok(o) => {
            changed(&s, &u, "DELETE", o.api_name(), Some(&field)).await;
            Redirect::to(&format!("{}?notice=deleted", base_href(o.api_name()))).into_response()
        }
        Err(e) if e.code == ErrorCode::NOT_FOUND => error_page(&e),
        // The report as it stands now, with the refusal (a 409 offers the
        // current version to confirm against).
        Err(e) => delete_field_report(&s, &u, &object, &field, None, Some(&e)).await,
    }
}

// ---------------------------------------------------------------- field forms

/// Which options of the metadata API apply to a type.
struct Applies {
    length: bool,
    numeric: bool,
    index: bool,
    defaults: bool,
    picklist: bool,
    reference: bool,
    formula: bool,
    auto_number: bool,
    required: bool,
}

fn applies(t: DataType) -> Applies {
    use DataType::*;
    Applies {
        length: matches!(t, Text | Textarea | LongText | RichText | EncryptedText),
        numeric: matches!(t, Number | Currency | Percent | Formula),
        index: t.indexable(),
        defaults: !matches!(
            t,
            Formula | AutoNumber | RollupSummary | Lookup | MasterDetail | Geolocation
        ),
        picklist: matches!(t, Picklist | MultiPicklist),
        reference: t.is_reference(),
        formula: t == Formula,
        auto_number: t == AutoNumber,
        required: !matches!(
            t,
            Formula | AutoNumber | RollupSummary | MasterDetail | Boolean
        ),
    }
}

fn field_groups(
    t: DataType,
    f: Option<&FieldDef>,
    targets: &[(String, String)],
    names: &HashMap<String, String>,
) -> Vec<Group> {
    let a = applies(t);
    let s = |x: Option<&str>| x.unwrap_or("").to_string();
    let mut basics = vec![required(text(
        "label",
        "Label",
        &s(f.map(|f| f.label.as_str())),
    ))];
    basics.push(required(help(
        text("api_name", "API name", &s(f.map(|f| f.api_name.as_str()))),
        "Letters, digits and single underscores, ending in __c, e.g. Amount__c.",
    )));
    basics.push(text(
        "help_text",
        "Help text",
        &s(f.and_then(|f| f.help_text.as_deref())),
    ));
    basics.push(area(
        "description",
        "Description",
        &s(f.and_then(|f| f.description.as_deref())),
    ));
    let mut opts = Vec::new();
    if a.length {
        opts.push(text(
            "length",
            "Length",
            &f.and_then(|f| f.length)
                .map(|l| l.to_string())
                .unwrap_or_default(),
        ));
    }
    if a.formula {
        opts.push(required(select(
            "formula_return_type",
            "Formula return type",
            FORMULA_RETURN_TYPES
                .iter()
                .map(|t| (t.as_str().to_string(), type_label(*t).to_string()))
                .collect(),
            f.and_then(|f| f.formula_return_type)
                .map(|t| t.as_str())
                .unwrap_or("text"),
        )));
        opts.push(required(area(
            "formula_expression",
            "Formula",
            &s(f.and_then(|f| f.formula_expression.as_deref())),
        )));
        opts.push(check(
            "formula_blank_as_zero",
            "Treat blank fields as zeroes",
            f.is_some_and(|f| f.formula_blank_as_zero),
        ));
    }
    if a.numeric {
        let n = |x: Option<u32>| x.map(|v| v.to_string()).unwrap_or_default();
        opts.push(help(
            text("precision", "Precision", &n(f.and_then(|f| f.precision))),
            "Total digits, 1 to 18 (formulas: for number, currency and percent results).",
        ));
        opts.push(text("scale", "Decimal places", &n(f.and_then(|f| f.scale))));
    }
    if a.reference {
        let current = f
            .and_then(|f| f.lookup_object_id.as_ref())
            .and_then(|id| names.get(id))
            .cloned();
        match current {
            Some(t) => opts.push(Input {
                kind: "readonly",
                ..text("lookup_object", "Related to", &t)
            }),
            None => opts.push(required(select(
                "lookup_object",
                "Related to",
                targets.to_vec(),
                "",
            ))),
        }
        opts.push(help(
            text(
                "relationship_name",
                "Child relationship name",
                &s(f.and_then(|f| f.relationship_name.as_deref())),
            ),
            "How the parent reaches these records, e.g. Line_Items__r (blank: derived).",
        ));
    }
    if a.auto_number {
        opts.push(required(help(
            text(
                "auto_number_format",
                "Display format",
                &s(f.and_then(|f| f.auto_number_format.as_deref())),
            ),
            "One counter token, e.g. INV-{0000}; {YYYY} {MM} {DD} allowed.",
        )));
        opts.push(text(
            "auto_number_start",
            "Starting number",
            &f.and_then(|f| f.auto_number_start)
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ));
    }
    if a.required {
        opts.push(check(
            "is_required",
            "Required",
            f.is_some_and(|f| f.is_required),
        ));
    }
    if a.index {
        opts.push(check("is_unique", "Unique", f.is_some_and(|f| f.is_unique)));
        opts.push(check(
            "is_external_id",
            "External ID",
            f.is_some_and(|f| f.is_external_id),
        ));
        opts.push(check(
            "is_indexed",
            "Indexed",
            f.is_some_and(|f| f.is_indexed),
        ));
    }
    if a.picklist {
        opts.push(check(
            "is_restricted",
            "Restrict to these values",
            f.is_some_and(|f| f.is_restricted),
        ));
    }
    if a.defaults {
        let dv = f
            .and_then(|f| f.default_value.as_ref())
            .map(|v| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        opts.push(help(
            text("default_value", "Default value", &dv),
            if t == DataType::Boolean {
                "true or false."
            } else {
                "Used when a new record leaves the field blank."
            },
        ));
        if mosaic_meta::formulas::field_kind(&mosaic_meta::model::FieldDef {
            data_type: t,
            ..mosaic_meta::model::probe_field("x")
        })
        .is_some()
        {
            opts.push(help(
                text(
                    "default_value_formula",
                    "Default value formula",
                    &s(f.and_then(|f| f.default_value_formula.as_deref())),
                ),
                "A formula giving the default, e.g. TODAY() + 30.",
            ));
        }
    }
    vec![
        Group {
            legend: format!("{} field", type_label(t)),
            inputs: basics,
        },
        Group {
            legend: "Options".into(),
            inputs: opts,
        },
    ]
}

fn picklist_rows(f: Option<&FieldDef>, submitted: Option<&Submitted>) -> Vec<PicklistRow> {
    if let Some(form) = submitted {
        let n = form::value(form, "pv_rows")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_PICKLIST_ROWS);
        return (0..n)
            .map(|i| PicklistRow {
                index: i,
                value: form::value(form, &format!("pv{i}_value"))
                    .unwrap_or("")
                    .into(),
                label: form::value(form, &format!("pv{i}_label"))
                    .unwrap_or("")
                    .into(),
                order: form::value(form, &format!("pv{i}_order"))
                    .unwrap_or("")
                    .into(),
                active: on(form, &format!("pv{i}_active")),
                default: form::value(form, "pv_default") == Some(&i.to_string()),
            })
            .collect();
    }
    let existing = f.map(|f| f.picklist_values.as_slice()).unwrap_or(&[]);
    let mut rows: Vec<PicklistRow> = existing
        .iter()
        .enumerate()
        .map(|(i, p)| PicklistRow {
            index: i,
            value: p.value.clone(),
            label: p.label.clone(),
            order: ((i + 1) * 10).to_string(),
            active: p.is_active,
            default: p.is_default,
        })
        .collect();
    for j in 0..NEW_PICKLIST_ROWS {
        let i = existing.len() + j;
        rows.push(PicklistRow {
            index: i,
            value: String::new(),
            label: String::new(),
            order: ((i + 1) * 10).to_string(),
            active: true,
            default: false,
        });
    }
    rows
}

/// The metadata API's field body from the submitted form (`t`: the type).
fn field_input(
    f: &Submitted,
    t: DataType,
    create: bool,
) -> Result<FieldInput, Vec<(String, String)>> {
    let a = applies(t);
    let mut errors = Vec::new();
    let mut body = Map::new();
    for k in ["label", "api_name", "help_text", "description"] {
        if let Some(v) = opt_text(f, k) {
            body.insert(k.into(), json!(v));
        }
    }
    if create {
        body.insert("data_type".into(), json!(t.as_str()));
    }
    if a.length {
        if let Some(n) = number::<u32>(f, "length", &mut errors) {
            body.insert("length".into(), json!(n));
        }
    }
    if a.formula {
        for k in ["formula_return_type", "formula_expression"] {
            if let Some(v) = form::value(f, k) {
                body.insert(k.into(), json!(v));
            }
        }
        body.insert(
            "formula_blank_as_zero".into(),
            json!(on(f, "formula_blank_as_zero")),
        );
    }
    let numeric_formula = t == DataType::Formula
        && matches!(
            form::value(f, "formula_return_type"),
            Some("number" | "currency" | "percent")
        );
    if a.numeric && (t != DataType::Formula || numeric_formula) {
        for k in ["precision", "scale"] {
            if let Some(n) = number::<u32>(f, k, &mut errors) {
                body.insert(k.into(), json!(n));
            }
        }
    }
    if a.reference {
        if create {
            if let Some(v) = form::value(f, "lookup_object").filter(|v| !v.is_empty()) {
                body.insert("lookup_object".into(), json!(v));
            }
        }
        if let Some(v) = opt_text(f, "relationship_name").filter(|v| !v.is_empty()) {
            body.insert("relationship_name".into(), json!(v));
        }
    }
    if a.auto_number {
        if let Some(v) = opt_text(f, "auto_number_format") {
            body.insert("auto_number_format".into(), json!(v));
        }
        if let Some(n) = number::<i64>(f, "auto_number_start", &mut errors) {
            body.insert("auto_number_start".into(), json!(n));
        }
    }
    if a.required {
        body.insert("is_required".into(), json!(on(f, "is_required")));
    }
    if a.index {
        for k in ["is_unique", "is_external_id", "is_indexed"] {
            body.insert(k.into(), json!(on(f, k)));
        }
    }
    if a.picklist {
        body.insert("is_restricted".into(), json!(on(f, "is_restricted")));
        let rows = picklist_rows(None, Some(f));
        let mut values: Vec<(i64, usize, Json)> = Vec::new();
        for r in rows.iter().filter(|r| !r.value.trim().is_empty()) {
            let order = if r.order.trim().is_empty() {
                (r.index as i64 + 1) * 10
            } else {
                match r.order.trim().parse::<i64>() {
                    Ok(n) => n,
                    Err(_) => {
                        errors.push((
                            "picklist_values".into(),
                            format!("the order of '{}' must be a whole number", r.value.trim()),
                        ));
                        continue;
                    }
                }
            };
            let label = r.label.trim();
            values.push((
                order,
                r.index,
                json!({
                    "value": r.value.trim(),
                    "label": if label.is_empty() { r.value.trim() } else { label },
                    "is_active": r.active,
                    "is_default": r.default,
                }),
            ));
        }
        values.sort_by_key(|(o, i, _)| (*o, *i));
        let list: Vec<Json> = values
            .into_iter()
            .enumerate()
            .map(|(i, (_, _, mut v))| {
                v["sort_order"] = json!(i);
                v
            })
            .collect();
        body.insert("picklist_values".into(), Json::Array(list));
    }
    if a.defaults {
        let dv = form::value(f, "default_value").unwrap_or("").trim();
        body.insert(
            "default_value".into(),
            if dv.is_empty() { Json::Null } else { json!(dv) },
        );
        if let Some(v) = opt_text(f, "default_value_formula") {
            body.insert("default_value_formula".into(), json!(v));
        }
    }
    if let Some(v) = version_of(f) {
        body.insert("version".into(), json!(v));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    serde_json::from_value(Json::Object(body)).map_err(|e| vec![(String::new(), e.to_string())])
}

struct FieldFormCtx<'a> {
    o: &'a ObjectMeta,
    t: DataType,
    field: Option<&'a FieldDef>,
    targets: Vec<(String, String)>,
    names: HashMap<String, String>,
}

fn field_form(
    chrome: Chrome,
    c: &FieldFormCtx<'_>,
    submitted: Option<&Submitted>,
    errors: &[(String, String)],
    e: Option<&MosaicError>,
) -> Response {
    let mut groups = field_groups(c.t, c.field, &c.targets, &c.names);
    if let Some(f) = submitted {
        refill(&mut groups, f);
    }
    let picklist = applies(c.t)
        .picklist
        .then(|| picklist_rows(c.field, submitted));
    if picklist.is_some() {
        // Picklist errors show above the values table.
        groups[1].inputs.push(Input {
            kind: "hidden-error",
            ..text("picklist_values", "Picklist values", "")
        });
    }
    let mut placed = place(&mut groups, errors, e);
    let pick_error = groups[1]
        .inputs
        .iter()
        .find(|i| i.name == "picklist_values")
        .and_then(|i| i.error.clone());
    groups[1].inputs.retain(|i| i.kind != "hidden-error");
    if let Some(pe) = pick_error {
        placed.general.insert(0, format!("Picklist values: {pe}"));
    }
    let base = base_href(c.o.api_name());
    let (title, action) = match c.field {
        Some(f) => (
            format!("Edit field {}", f.label),
            field_href(c.o.api_name(), &f.api_name),
        ),
        None => (
            format!("New {} field on {}", type_label(c.t), c.o.def.label),
            format!("{base}/fields/new?type={}", c.t.as_str()),
        ),
    };
    let mut hidden = vec![(VERSION_FIELD.to_string(), c.o.def.version.to_string())];
    if let Some(rows) = &picklist {
        hidden.push(("pv_rows".into(), rows.len().to_string()));
    }
    let page = FormPage {
        chrome,
        title,
        intro: format!("Type: {}", type_label(c.t)),
        reload_href: action.clone(),
        action,
        method: "post",
        submit: "Save".into(),
        cancel_href: base,
        groups,
        picklist,
        hidden,
        errors: placed.general,
        conflict: placed.conflict,
    };
    let status = if errors.is_empty() && e.is_none() {
        axum::http::StatusCode::OK
    } else if e.is_some_and(|e| e.code == ErrorCode::CONFLICT) {
        axum::http::StatusCode::CONFLICT
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, html(&page)).into_response()
}

async fn targets(s: &WebState, tenant: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = s
        .platform
        .meta
        .objects(tenant)
        .await
        .map(|l| {
            l.iter()
                .map(|o| {
                    (
                        o.def.api_name.clone(),
                        format!("{} ({})", o.def.label, o.def.api_name),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|(_, l)| l.to_lowercase());
    v
}

fn chosen_type(q: &Q) -> Result<Option<DataType>, String> {
    match q.get("type").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(t) => DataType::parse(t)
            .filter(|t| creatable_types().any(|c| c == *t))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "'{}' is not a field type; choose one of the list",
                    t.chars().take(40).collect::<String>()
                )
            }),
    }
}

fn type_chooser(chrome: Chrome, o: &ObjectMeta, error: Option<String>) -> Response {
    let mut input = required(select(
        "type",
        "Field type",
        creatable_types()
            .map(|t| (t.as_str().to_string(), type_label(t).to_string()))
            .collect(),
        "text",
    ));
    let bad = error.is_some();
    input.error = error;
    input.autofocus = bad;
    let page = FormPage {
        chrome,
        title: format!("New field on {}", o.def.label),
        intro: "Choose the field's type first; the next page shows the options that apply to it."
            .into(),
        action: format!("{}/fields/new", base_href(o.api_name())),
        method: "get",
        submit: "Next".into(),
        cancel_href: base_href(o.api_name()),
        groups: vec![Group {
            legend: "Type".into(),
            inputs: vec![input],
        }],
        picklist: None,
        hidden: vec![],
        errors: vec![],
        conflict: None,
        reload_href: String::new(),
    };
    let status = if bad {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    (status, html(&page)).into_response()
}

async fn new_field_form(
    State(s): State<WebState>,
    Path(object): Path<String>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let tenant = u.caller.tenant_id.clone();
    let o = match object_of(&s, &tenant, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let t = match chosen_type(&q) {
        Ok(Some(t)) => t,
        Ok(None) => return type_chooser(setup_chrome(&s, &u).await, &o, None),
        Err(msg) => return type_chooser(setup_chrome(&s, &u).await, &o, Some(msg)),
    };
    let c = FieldFormCtx {
        o: &o,
        t,
        field: None,
        targets: targets(&s, &tenant).await,
        names: objects_by_id(&s, &tenant).await,
    };
    field_form(setup_chrome(&s, &u).await, &c, None, &[], None)
}

async fn create_field(
    State(s): State<WebState>,
    Path(object): Path<String>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let tenant = u.caller.tenant_id.clone();
    let o = match object_of(&s, &tenant, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let t = match chosen_type(&q) {
        Ok(Some(t)) => t,
        Ok(None) => return type_chooser(setup_chrome(&s, &u).await, &o, None),
        Err(msg) => return type_chooser(setup_chrome(&s, &u).await, &o, Some(msg)),
    };
    let c = FieldFormCtx {
        o: &o,
        t,
        field: None,
        targets: targets(&s, &tenant).await,
        names: objects_by_id(&s, &tenant).await,
    };
    let input = match field_input(&f, t, true) {
        Ok(i) => i,
        Err(errs) => return field_form(setup_chrome(&s, &u).await, &c, Some(&f), &errs, None),
    };
    match s
        .platform
        .meta
        .add_field(&tenant, o.api_name(), input)
        .await
    {
        Ok((m, nf)) => {
            changed(&s, &u, "POST", m.api_name(), Some(&nf.api_name)).await;
            Redirect::to(&format!("{}?notice=created", base_href(m.api_name()))).into_response()
        }
        Err(e) => field_form(setup_chrome(&s, &u).await, &c, Some(&f), &[], Some(&e)),
    }
}

async fn edit_field_form(
    State(s): State<WebState>,
    Path((object, field)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let tenant = u.caller.tenant_id.clone();
    let o = match object_of(&s, &tenant, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(fd) = o.field(&field).cloned() else {
        return crate::views::not_found_page("This object has no such field.");
    };
    let c = FieldFormCtx {
        o: &o,
        t: fd.data_type,
        field: Some(&fd),
        targets: vec![],
        names: objects_by_id(&s, &tenant).await,
    };
    field_form(setup_chrome(&s, &u).await, &c, None, &[], None)
}

async fn update_field(
    State(s): State<WebState>,
    Path((object, field)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let tenant = u.caller.tenant_id.clone();
    let o = match object_of(&s, &tenant, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(fd) = o.field(&field).cloned() else {
        return crate::views::not_found_page("This object has no such field.");
    };
    let c = FieldFormCtx {
        o: &o,
        t: fd.data_type,
        field: Some(&fd),
        targets: vec![],
        names: objects_by_id(&s, &tenant).await,
    };
    let input = match field_input(&f, fd.data_type, false) {
        Ok(i) => i,
        Err(errs) => return field_form(setup_chrome(&s, &u).await, &c, Some(&f), &errs, None),
    };
    match s
        .platform
        .meta
        .update_field(&tenant, o.api_name(), &fd.api_name, input)
        .await
    {
        Ok((m, nf)) => {
            changed(&s, &u, "PATCH", m.api_name(), Some(&nf.api_name)).await;
            Redirect::to(&format!("{}?notice=saved", base_href(m.api_name()))).into_response()
        }
        Err(e) => field_form(setup_chrome(&s, &u).await, &c, Some(&f), &[], Some(&e)),
    }
}

/// This area's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/setup/objects", get(list))
        .route(
            "/setup/objects/new",
            get(new_object_form).post(create_object),
        )
        .route("/setup/objects/{object}", get(detail))
        .route(
            "/setup/objects/{object}/edit",
            get(edit_object_form).post(update_object),
        )
        .route(
            "/setup/objects/{object}/delete",
            get(delete_object_confirm).post(delete_object),
        )
        .route(
            "/setup/objects/{object}/fields/new",
            get(new_field_form).post(create_field),
        )
        .route(
            "/setup/objects/{object}/fields/{field}",
            get(edit_field_form).post(update_field),
        )
        .route(
            "/setup/objects/{object}/fields/{field}/delete",
            get(delete_field_confirm).post(delete_field),
        )
}
