//! Setup: the page layout editor (sections of one or two columns, fields
//! in them, related lists, the compact layout — moved with up / down
//! buttons, a preview of the record page) and the list view editor
//! (filters with custom logic, columns, sort, row limit, visibility).
//!
//! Without script every button posts the whole layout back with the move
//! to make; the page comes back rearranged (nothing saved) until "Save".
//! Saving goes through the metadata service the layout and list view API
//! handlers call.

use super::formulas::{
    checked, choices, object_of, objects_page, posting, raw, val, Choice, Problems,
};
use super::rules::{BLANK_CONDITIONS, OPERATORS};
use super::{setup_chrome, setup_user, Need};
use crate::display::segment;
use crate::form::Submitted;
use crate::views::{html, not_found_page, status_of, Chrome};
use crate::WebState;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use mosaic_meta::layout::{
    LayoutInput, PageLayout, DERIVED_LAYOUT_ID, MAX_LAYOUT_ITEMS, MAX_RELATED_LISTS, MAX_SECTIONS,
};
use mosaic_meta::listview::{ListView, ListViewInput};
use mosaic_meta::model::ObjectMeta;
use serde_json::{json, Value};
use std::collections::HashMap;

type Q = HashMap<String, String>;

// ================================================================ layouts

#[derive(Debug, Clone, Default)]
pub struct ItemDraft {
    pub field: String,
    pub label: String,
    pub required: bool,
    pub read_only: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SectionDraft {
    pub label: String,
    pub columns: u8,
    pub items: Vec<ItemDraft>,
}

#[derive(Debug, Clone, Default)]
pub struct RelatedDraft {
    pub object: String,
    pub field: String,
    pub label: String,
    pub columns: String,
    pub sort_field: String,
    pub sort_desc: bool,
    pub page_size: String,
}

/// A layout as the editor holds it between moves.
#[derive(Debug, Clone, Default)]
pub struct LayoutDraft {
    pub name: String,
    pub is_default: bool,
    pub sections: Vec<SectionDraft>,
    pub related: Vec<RelatedDraft>,
    pub compact: String,
}

fn field_label(o: &ObjectMeta, name: &str) -> String {
    match name {
        "Name" => "Name".into(),
        "OwnerId" => "Owner".into(),
        "CreatedById" => "Created By".into(),
        "CreatedDate" => "Created Date".into(),
        "LastModifiedById" => "Last Modified By".into(),
        "LastModifiedDate" => "Last Modified Date".into(),
        _ => o
            .field(name)
            .map(|f| f.label.clone())
            .unwrap_or_else(|| name.to_string()),
    }
}

async fn draft_of(s: &WebState, tenant: &str, o: &ObjectMeta, l: &PageLayout) -> LayoutDraft {
    let mut related = Vec::new();
    for r in &l.related_lists {
        let child = s
            .platform
            .meta
            .object_by_id(tenant, &r.object_id)
            .await
            .map(|c| c.def.api_name.clone())
            .unwrap_or_else(|_| r.object_id.clone());
        related.push(RelatedDraft {
            object: child,
            field: r.field.clone(),
            label: r.label.clone(),
            columns: r.columns.join(", "),
            sort_field: r.sort_field.clone().unwrap_or_default(),
            sort_desc: r.sort_direction == mosaic_meta::layout::SortDirection::Desc,
            page_size: r.page_size.to_string(),
        });
    }
    LayoutDraft {
        name: l.name.clone(),
        is_default: l.is_default,
        sections: l
            .sections
            .iter()
            .map(|sec| SectionDraft {
                label: sec.label.clone(),
                columns: sec.columns,
                items: sec
                    .items
                    .iter()
                    .map(|i| ItemDraft {
                        field: i.field.clone(),
                        label: field_label(o, &i.field),
                        required: i.required,
                        read_only: i.read_only,
                    })
                    .collect(),
            })
            .collect(),
        related,
        compact: l.compact_fields.join(", "),
    }
}

fn typed_draft(o: &ObjectMeta, f: &Submitted) -> LayoutDraft {
    let mut d = LayoutDraft {
        name: val(f, "name"),
        is_default: checked(f, "is_default"),
        compact: val(f, "compact"),
        ..Default::default()
    };
    for i in 0..MAX_SECTIONS {
        let k = |n: &str| format!("s{i}.{n}");
        if crate::form::value(f, &k("label")).is_none() {
            break;
        }
        let mut sec = SectionDraft {
            label: raw(f, &k("label")),
            columns: if val(f, &k("columns")) == "1" { 1 } else { 2 },
            items: Vec::new(),
        };
        for j in 0..MAX_LAYOUT_ITEMS {
            let field = val(f, &format!("s{i}.i{j}.field"));
            if field.is_empty() {
                break;
            }
            sec.items.push(ItemDraft {
                label: field_label(o, &field),
                required: checked(f, &format!("s{i}.i{j}.required")),
                read_only: checked(f, &format!("s{i}.i{j}.read_only")),
                field,
            });
        }
        d.sections.push(sec);
    }
    for k in 0..MAX_RELATED_LISTS {
        let g = |n: &str| val(f, &format!("r{k}.{n}"));
        if crate::form::value(f, &format!("r{k}.object")).is_none() {
            break;
        }
        d.related.push(RelatedDraft {
            object: g("object"),
            field: g("field"),
            label: g("label"),
            columns: g("columns"),
            sort_field: g("sort_field"),
            sort_desc: g("sort_direction") == "desc",
            page_size: g("page_size"),
        });
    }
    d
}

fn swap<T>(v: &mut [T], i: usize, up: bool) {
    if up && i > 0 && i < v.len() {
        v.swap(i, i - 1);
    } else if !up && i + 1 < v.len() {
        v.swap(i, i + 1);
    }
}

/// Applies one editor button (`op`) to the draft; `f` gives the values of
/// the "add" pickers.
fn apply_op(o: &ObjectMeta, d: &mut LayoutDraft, op: &str, f: &Submitted) {
    let parts: Vec<&str> = op.split(':').collect();
    let n = |k: usize| parts.get(k).and_then(|p| p.parse::<usize>().ok());
    match (parts.first().copied(), n(1), n(2)) {
        (Some("sec-up"), Some(i), _) => swap(&mut d.sections, i, true),
        (Some("sec-down"), Some(i), _) => swap(&mut d.sections, i, false),
        (Some("sec-remove"), Some(i), _) if i < d.sections.len() => {
            d.sections.remove(i);
        }
        (Some("sec-add"), _, _) if d.sections.len() < MAX_SECTIONS => {
            d.sections.push(SectionDraft {
                label: "New section".into(),
                columns: 2,
                items: Vec::new(),
            })
        }
        (Some("item-up"), Some(i), Some(j)) => {
            if let Some(s) = d.sections.get_mut(i) {
                swap(&mut s.items, j, true)
            }
        }
        (Some("item-down"), Some(i), Some(j)) => {
            if let Some(s) = d.sections.get_mut(i) {
                swap(&mut s.items, j, false)
            }
        }
        (Some("item-remove"), Some(i), Some(j)) => {
            if let Some(s) = d.sections.get_mut(i) {
                if j < s.items.len() {
                    s.items.remove(j);
                }
            }
        }
        (Some("item-add"), Some(i), _) => {
            let field = val(f, &format!("s{i}.add"));
            if let (Some(s), false) = (d.sections.get_mut(i), field.is_empty()) {
                s.items.push(ItemDraft {
                    label: field_label(o, &field),
                    field,
                    ..Default::default()
                });
            }
        }
        (Some("rl-up"), Some(k), _) => swap(&mut d.related, k, true),
        (Some("rl-down"), Some(k), _) => swap(&mut d.related, k, false),
        (Some("rl-remove"), Some(k), _) if k < d.related.len() => {
            d.related.remove(k);
        }
        (Some("rl-add"), _, _) if d.related.len() < MAX_RELATED_LISTS => {
            let object = val(f, "rl_add");
            if !object.is_empty() {
                d.related.push(RelatedDraft {
                    object,
                    columns: "Name".into(),
                    page_size: "5".into(),
                    ..Default::default()
                });
            }
        }
        _ => {}
    }
}

fn layout_input(d: &LayoutDraft, version: Option<i64>) -> Result<LayoutInput, String> {
    let list = |t: &str| -> Vec<String> {
        t.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut related = Vec::new();
    for r in &d.related {
        let mut j = json!({"object": r.object, "columns": list(&r.columns),
            "sort_direction": if r.sort_desc { "desc" } else { "asc" }});
        for (k, v) in [
            ("field", &r.field),
            ("label", &r.label),
            ("sort_field", &r.sort_field),
        ] {
            if !v.is_empty() {
                j[k] = json!(v);
            }
        }
        if !r.page_size.is_empty() {
            j["page_size"] = json!(r.page_size.parse::<u32>().unwrap_or(0));
        }
        related.push(j);
    }
    let body = json!({
        "name": d.name,
        "is_default": d.is_default,
        "sections": d.sections.iter().map(|s| json!({
            "label": s.label, "columns": s.columns,
            "items": s.items.iter().map(|i| json!({"field": i.field, "required": i.required, "read_only": i.read_only})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "related_lists": related,
        "compact_fields": list(&d.compact),
        "version": version,
    });
    serde_json::from_value(body).map_err(|e| e.to_string())
}

pub struct LayoutLink {
    pub name: String,
    pub href: String,
    pub is_default: bool,
}

#[derive(Template)]
#[template(path = "setup/layouts_list.html")]
pub struct LayoutList {
    pub chrome: Chrome,
    pub object_label: String,
    pub layouts: Vec<LayoutLink>,
    pub lists_href: String,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "setup/layouts_editor.html")]
pub struct LayoutEditor {
    pub chrome: Chrome,
    pub object_label: String,
    pub list_href: String,
    pub action: String,
    pub draft: LayoutDraft,
    pub add_fields: Vec<Choice>,
    pub children: Vec<Choice>,
    pub version: i64,
    pub problems: Problems,
    pub notice: Option<String>,
}

fn ly_base(o: &ObjectMeta) -> String {
    format!("/setup/layouts/{}", segment(o.api_name()))
}

async fn ly_home(State(s): State<WebState>, headers: HeaderMap, uri: Uri) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    objects_page(
        &s,
        &u,
        "Page Layouts",
        "Sections, fields and related lists of record pages. Choose an object.",
        "/setup/layouts",
        &|o| format!("{} layouts", o.def.layouts.len().max(1)),
    )
    .await
}

async fn ly_list(
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
    let layouts = match s
        .platform
        .meta
        .layouts(&u.caller.tenant_id, o.api_name())
        .await
    {
        Ok(l) => l,
        Err(e) => return crate::views::error_page(&e),
    };
    let base = ly_base(&o);
    html(&LayoutList {
        chrome: setup_chrome(&s, &u).await,
        object_label: o.def.label.clone(),
        layouts: layouts
            .iter()
            .map(|l| LayoutLink {
                name: l.name.clone(),
                href: format!("{base}/{}", segment(&l.id)),
                is_default: l.is_default || l.id == DERIVED_LAYOUT_ID,
            })
            .collect(),
        lists_href: format!("/setup/list-views/{}", segment(o.api_name())),
        notice: q.get("notice").cloned(),
    })
}

async fn editor(
    s: &WebState,
    u: &crate::session::WebUser,
    o: &ObjectMeta,
    layout: &str,
    draft: LayoutDraft,
    version: i64,
) -> LayoutEditor {
    let mut add_fields = vec![Choice {
        value: String::new(),
        label: "Choose a field".into(),
        selected: true,
    }];
    for n in mosaic_meta::layout::LAYOUT_SYSTEM_FIELDS {
        add_fields.push(Choice {
            value: n.into(),
            label: field_label(o, n),
            selected: false,
        });
    }
    for f in &o.def.fields {
        add_fields.push(Choice {
            value: f.api_name.clone(),
            label: format!("{} ({})", f.label, super::formulas::type_label(f.data_type)),
            selected: false,
        });
    }
    let mut children = vec![Choice {
        value: String::new(),
        label: "Choose a child object".into(),
        selected: true,
    }];
    if let Ok(all) = s.platform.meta.objects(&u.caller.tenant_id).await {
        for c in all.iter() {
            if !mosaic_meta::layout::relationship_fields(&c.def, o.id()).is_empty() {
                children.push(Choice {
                    value: c.def.api_name.clone(),
                    label: c.def.plural_label.clone(),
                    selected: false,
                });
            }
        }
    }
    LayoutEditor {
        chrome: setup_chrome(s, u).await,
        object_label: o.def.label.clone(),
        list_href: ly_base(o),
        action: format!("{}/{}", ly_base(o), segment(layout)),
        draft,
        add_fields,
        children,
        version,
        problems: Problems::default(),
        notice: None,
    }
}

async fn ly_edit(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, layout)): Path<(String, String)>,
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
    let l = match s
        .platform
        .meta
        .layout(&u.caller.tenant_id, o.api_name(), &layout)
        .await
    {
        Ok(l) => l,
        Err(_) => return not_found_page("There is no such layout."),
    };
    let draft = draft_of(&s, &u.caller.tenant_id, &o, &l).await;
    let mut page = editor(&s, &u, &o, &l.id, draft, o.def.version).await;
    page.notice = q.get("notice").cloned();
    html(&page)
}

/// Maps an API error path of a layout onto the editor's inputs.
fn ly_place(p: &str) -> Option<String> {
    let idx =
        |prefix: &str| -> Option<usize> { p.strip_prefix(prefix)?.split(']').next()?.parse().ok() };
    if let Some(i) = idx("sections[") {
        return Some(format!("s{i}"));
    }
    if let Some(k) = idx("related_lists[") {
        return Some(format!("r{k}"));
    }
    if p.starts_with("compact_fields") {
        return Some("compact".into());
    }
    (p == "name").then(|| "name".into())
}

async fn ly_post(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, layout)): Path<(String, String)>,
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
    let mut draft = typed_draft(&o, &f);
    let version = val(&f, "version").parse::<i64>().ok();
    let op = val(&f, "_op");
    if op != "save" {
        apply_op(&o, &mut draft, &op, &f);
        let page = editor(&s, &u, &o, &layout, draft, version.unwrap_or(o.def.version)).await;
        return html(&page);
    }
    let tenant = &u.caller.tenant_id;
    let result = match layout_input(&draft, version) {
        Err(msg) => Err(mosaic_types::MosaicError::field(
            mosaic_types::ErrorCode::INVALID_INPUT,
            "name",
            msg,
        )),
        Ok(input) => {
            if layout == DERIVED_LAYOUT_ID && o.def.layouts.is_empty() {
                s.platform
                    .meta
                    .add_layout(tenant, o.api_name(), input)
                    .await
            } else {
                s.platform
                    .meta
                    .update_layout(tenant, o.api_name(), &layout, input)
                    .await
            }
        }
    };
    match result {
        Ok((_, l)) => Redirect::to(&format!(
            "{}/{}?notice=Layout%20saved.",
            ly_base(&o),
            segment(&l.id)
        ))
        .into_response(),
        Err(e) => {
            let mut page =
                editor(&s, &u, &o, &layout, draft, version.unwrap_or(o.def.version)).await;
            page.problems = Problems::from_error(&e, &ly_place);
            let status = if page.problems.conflict {
                StatusCode::CONFLICT
            } else {
                status_of(&e)
            };
            (status, html(&page)).into_response()
        }
    }
}

// ================================================================ list views

pub struct ViewLink {
    pub label: String,
    pub href: String,
    pub delete_href: Option<String>,
    pub note: String,
}

#[derive(Template)]
#[template(path = "setup/layouts_views.html")]
pub struct ViewList {
    pub chrome: Chrome,
    pub object_label: String,
    pub new_href: String,
    pub views: Vec<ViewLink>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "setup/layouts_view_form.html")]
pub struct ViewForm {
    pub chrome: Chrome,
    pub object_label: String,
    pub title: String,
    pub action: String,
    pub list_href: String,
    pub name: String,
    pub label: String,
    pub columns: String,
    pub column_hint: String,
    pub conditions: Vec<super::rules::CondRow>,
    pub logic: String,
    pub mine: bool,
    pub sort_fields: Vec<Choice>,
    pub sort_desc: bool,
    pub row_limit: String,
    pub only_me: bool,
    pub version: i64,
    pub problems: Problems,
}

fn lv_base(o: &ObjectMeta) -> String {
    format!("/setup/list-views/{}", segment(o.api_name()))
}

/// The operators a list view filter takes (no change operators).
fn filter_ops() -> Vec<(&'static str, &'static str)> {
    OPERATORS
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("changed"))
        .collect()
}

async fn lv_home(State(s): State<WebState>, headers: HeaderMap, uri: Uri) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    objects_page(
        &s,
        &u,
        "List Views",
        "Filters, columns and sort of list views. Choose an object.",
        "/setup/list-views",
        &|o| format!("{} list views", o.def.list_views.len()),
    )
    .await
}

async fn lv_list(
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
    let base = lv_base(&o);
    let views = s
        .platform
        .meta
        .list_views(&o, &u.caller.user_id)
        .iter()
        .map(|v| {
            let built_in = v.id == mosaic_meta::listview::ALL_VIEW_ID;
            ViewLink {
                label: v.label.clone(),
                href: if built_in {
                    format!("/o/{}", segment(o.api_name()))
                } else {
                    format!("{base}/{}", segment(&v.id))
                },
                delete_href: (!built_in).then(|| format!("{base}/{}/delete", segment(&v.id))),
                note: if built_in {
                    "built in".into()
                } else if v.visibility == mosaic_meta::listview::Visibility::Me {
                    "only its creator".into()
                } else {
                    "everyone".into()
                },
            }
        })
        .collect();
    html(&ViewList {
        chrome: setup_chrome(&s, &u).await,
        object_label: o.def.label.clone(),
        new_href: format!("{base}/new"),
        views,
        notice: q.get("notice").cloned(),
    })
}

fn sort_choices(o: &ObjectMeta, current: &str) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: "Default".into(),
        selected: current.is_empty(),
    }];
    for n in mosaic_meta::layout::LAYOUT_SYSTEM_FIELDS {
        out.push(Choice {
            value: n.into(),
            label: field_label(o, n),
            selected: current.eq_ignore_ascii_case(n),
        });
    }
    for f in &o.def.fields {
        out.push(Choice {
            value: f.api_name.clone(),
            label: f.label.clone(),
            selected: f.api_name.eq_ignore_ascii_case(current),
        });
    }
    out
}

async fn view_form(
    s: &WebState,
    u: &crate::session::WebUser,
    o: &ObjectMeta,
    v: Option<&ListView>,
) -> ViewForm {
    let base = lv_base(o);
    let mut rows: Vec<(String, String, String)> = v
        .and_then(|v| v.filter_criteria.as_ref())
        .map(|c| {
            c.conditions
                .iter()
                .map(|c| {
                    (
                        c.field.clone(),
                        serde_json::to_value(c.operator)
                            .ok()
                            .and_then(|x| x.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        match &c.value {
                            Value::String(t) => t.clone(),
                            Value::Null => String::new(),
                            Value::Array(a) => a
                                .iter()
                                .map(|x| {
                                    x.as_str()
                                        .map(str::to_string)
                                        .unwrap_or_else(|| x.to_string())
                                })
                                .collect::<Vec<_>>()
                                .join(", "),
                            other => other.to_string(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    rows.extend((0..BLANK_CONDITIONS).map(|_| (String::new(), "equals".into(), String::new())));
    let ops = filter_ops();
    let conditions = rows
        .iter()
        .enumerate()
        .map(|(i, (field, op, value))| super::rules::CondRow {
            index: i + 1,
            fields: sort_choices(o, field),
            operators: choices(&ops, op),
            value: value.clone(),
            error: None,
        })
        .collect();
    let mut hint: Vec<String> = vec!["Name".into()];
    hint.extend(o.def.fields.iter().map(|f| f.api_name.clone()));
    ViewForm {
        chrome: setup_chrome(s, u).await,
        object_label: o.def.label.clone(),
        title: v
            .map(|v| format!("Edit {}", v.label))
            .unwrap_or_else(|| "New list view".into()),
        action: match v {
            Some(v) => format!("{base}/{}", segment(&v.id)),
            None => format!("{base}/new"),
        },
        list_href: base,
        name: v.map(|v| v.name.clone()).unwrap_or_default(),
        label: v.map(|v| v.label.clone()).unwrap_or_default(),
        columns: v
            .map(|v| v.columns.join(", "))
            .unwrap_or_else(|| "Name".into()),
        column_hint: hint.join(", "),
        conditions,
        logic: v
            .and_then(|v| v.filter_criteria.as_ref())
            .map(|c| c.logic.clone())
            .unwrap_or_else(|| "AND".into()),
        mine: v.is_some_and(|v| v.filter_scope == mosaic_meta::listview::FilterScope::Mine),
        sort_fields: sort_choices(
            o,
            v.and_then(|v| v.sort.first())
                .map(|k| k.field.as_str())
                .unwrap_or(""),
        ),
        sort_desc: v
            .and_then(|v| v.sort.first())
            .is_some_and(|k| k.direction == mosaic_meta::layout::SortDirection::Desc),
        row_limit: v
            .and_then(|v| v.row_limit)
            .map(|n| n.to_string())
            .unwrap_or_default(),
        only_me: v.is_some_and(|v| v.visibility == mosaic_meta::listview::Visibility::Me),
        version: o.def.version,
        problems: Problems::default(),
    }
}

async fn lv_new(
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
    html(&view_form(&s, &u, &o, None).await)
}

async fn lv_edit(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, view)): Path<(String, String)>,
) -> Response {
    let u = match setup_user(&s, &headers, &uri, Need::Customize).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match object_of(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match s.platform.meta.list_view(&o, &view, &u.caller.user_id) {
        Ok(v) if v.id != mosaic_meta::listview::ALL_VIEW_ID => {
            html(&view_form(&s, &u, &o, Some(&v)).await)
        }
        _ => not_found_page("There is no such list view."),
    }
}

fn lv_place(p: &str, rows: &[usize]) -> Option<String> {
    if let Some(rest) = p.strip_prefix("filter_criteria.conditions[") {
        let (n, _) = rest.split_once(']')?;
        return Some(format!("c{}", rows.get(n.parse::<usize>().ok()?)?));
    }
    match p {
        "filter_criteria.logic" | "filter_criteria" => Some("logic".into()),
        "name" | "label" | "row_limit" => Some(p.to_string()),
        _ if p.starts_with("columns") => Some("columns".into()),
        _ if p.starts_with("sort") => Some("sort".into()),
        _ => None,
    }
}

async fn lv_save(
    s: WebState,
    headers: HeaderMap,
    uri: Uri,
    object: String,
    view: Option<String>,
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
    let existing = match &view {
        Some(id) => match s.platform.meta.list_view(&o, id, &u.caller.user_id) {
            Ok(v) => Some(v),
            Err(_) => return not_found_page("There is no such list view."),
        },
        None => None,
    };
    let max_rows = mosaic_meta::workflow::MAX_CONDITIONS + BLANK_CONDITIONS;
    let mut sent_rows = Vec::new();
    let mut conds = Vec::new();
    for i in 0..max_rows {
        let field = val(&f, &format!("c{i}.field"));
        if crate::form::value(&f, &format!("c{i}.field")).is_none() {
            break;
        }
        if field.is_empty() {
            continue;
        }
        let op = val(&f, &format!("c{i}.operator"));
        let text = raw(&f, &format!("c{i}.value"));
        let mut c = json!({"field": field, "operator": op});
        let v = match op.as_str() {
            "is_null" => json!(!matches!(text.trim(), "false" | "no")),
            _ if text.trim().is_empty() => Value::Null,
            _ => json!(text),
        };
        if !v.is_null() {
            c["value"] = v;
        }
        sent_rows.push(i);
        conds.push(c);
    }
    let logic = val(&f, "logic");
    let mut body = json!({
        "name": val(&f, "name"),
        "label": val(&f, "label"),
        "columns": val(&f, "columns").split(',').map(str::trim).filter(|c| !c.is_empty()).collect::<Vec<_>>(),
        "filter_criteria": if conds.is_empty() { Value::Null } else { json!({"logic": if logic.is_empty() { "AND".to_string() } else { logic.clone() }, "conditions": conds}) },
        "filter_scope": if checked(&f, "mine") { "mine" } else { "everything" },
        "visibility": if checked(&f, "only_me") { "me" } else { "everyone" },
        "sort": match val(&f, "sort_field").as_str() {
            "" => json!([]),
            field => json!([{"field": field, "direction": if val(&f, "sort_direction") == "desc" { "desc" } else { "asc" }}]),
        },
    });
    let limit = val(&f, "row_limit");
    body["row_limit"] = match limit.parse::<i64>() {
        _ if limit.is_empty() => Value::Null,
        Ok(n) => json!(n),
        Err(_) => json!(limit),
    };
    if let Ok(v) = val(&f, "version").parse::<i64>() {
        body["version"] = json!(v);
    }
    let tenant = &u.caller.tenant_id;
    let result = match serde_json::from_value::<ListViewInput>(body) {
        Err(e) => Err(mosaic_types::MosaicError::field(
            mosaic_types::ErrorCode::INVALID_INPUT,
            "name",
            e.to_string(),
        )),
        Ok(input) => match &existing {
            Some(v) => s
                .platform
                .meta
                .update_list_view(tenant, o.api_name(), &v.id, &u.caller.user_id, input)
                .await
                .map(|_| ()),
            None => s
                .platform
                .meta
                .add_list_view(tenant, o.api_name(), &u.caller.user_id, input)
                .await
                .map(|_| ()),
        },
    };
    match result {
        Ok(()) => {
            Redirect::to(&format!("{}?notice=List%20view%20saved.", lv_base(&o))).into_response()
        }
        Err(e) => {
            let mut page = view_form(&s, &u, &o, existing.as_ref()).await;
            page.problems = Problems::from_error(&e, &|p| lv_place(p, &sent_rows));
            page.name = val(&f, "name");
            page.label = val(&f, "label");
            page.columns = val(&f, "columns");
            page.logic = logic;
            page.mine = checked(&f, "mine");
            page.only_me = checked(&f, "only_me");
            page.sort_fields = sort_choices(&o, &val(&f, "sort_field"));
            page.sort_desc = val(&f, "sort_direction") == "desc";
            page.row_limit = limit;
            let ops = filter_ops();
            let mut rows = Vec::new();
            for i in 0..max_rows {
                if crate::form::value(&f, &format!("c{i}.field")).is_none() {
                    break;
                }
                rows.push(super::rules::CondRow {
                    index: i + 1,
                    fields: sort_choices(&o, &val(&f, &format!("c{i}.field"))),
                    operators: choices(&ops, &val(&f, &format!("c{i}.operator"))),
                    value: raw(&f, &format!("c{i}.value")),
                    error: page.problems.at(&format!("c{i}")),
                });
            }
            page.conditions = rows;
            let status = if page.problems.conflict {
                StatusCode::CONFLICT
            } else {
                status_of(&e)
            };
            (status, html(&page)).into_response()
        }
    }
}

async fn lv_create(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path(object): Path<String>,
    Form(f): Form<Submitted>,
) -> Response {
    lv_save(s, headers, uri, object, None, f).await
}

async fn lv_update(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, view)): Path<(String, String)>,
    Form(f): Form<Submitted>,
) -> Response {
    lv_save(s, headers, uri, object, Some(view), f).await
}

async fn lv_delete(
    State(s): State<WebState>,
    headers: HeaderMap,
    uri: Uri,
    Path((object, view)): Path<(String, String)>,
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
    match s
        .platform
        .meta
        .delete_list_view(&u.caller.tenant_id, o.api_name(), &view, &u.caller.user_id)
        .await
    {
        Ok(()) => {
            Redirect::to(&format!("{}?notice=List%20view%20deleted.", lv_base(&o))).into_response()
        }
        Err(e) => crate::views::error_page(&e),
    }
}

/// This area's routes.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/setup/layouts", get(ly_home))
        .route("/setup/layouts/{object}", get(ly_list))
        .route(
            "/setup/layouts/{object}/{layout}",
            get(ly_edit).post(ly_post),
        )
        .route("/setup/list-views", get(lv_home))
        .route("/setup/list-views/{object}", get(lv_list))
        .route(
            "/setup/list-views/{object}/new",
            get(lv_new).post(lv_create),
        )
        .route(
            "/setup/list-views/{object}/{view}",
            get(lv_edit).post(lv_update),
        )
        .route("/setup/list-views/{object}/{view}/delete", post(lv_delete))
}
