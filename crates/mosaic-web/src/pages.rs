//! The page handlers: each resolves the signed-in user, asks the runtime
//! for what the page shows (as that user), and renders a template. Every
//! state-changing form checks its CSRF token before anything else runs.

use crate::display::{record_href, segment, Cell, Reader};
use crate::form::{self, Source, Submitted};
use crate::format::Locale;
use crate::session::{self, require_user, WebUser};
use crate::views::*;
use crate::WebState;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use mosaic_meta::layout::SortDirection;
use mosaic_meta::model::ObjectMeta;
use mosaic_runtime::layouts::{CallerLayout, FieldView};
use mosaic_runtime::list_views::{ListPage as RowsPage, ListRequest, PageRow, DEFAULT_PAGE_SIZE};
use mosaic_types::{ErrorCode, MosaicError};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// Recent records shown on the home page.
pub const HOME_RECENT: usize = 10;
/// History entries shown on a record page.
pub const HISTORY_ROWS: usize = 20;
/// Cookie remembering the list view chosen per object (`lv_` + object id).
const VIEW_COOKIE_PREFIX: &str = "lv_";
/// Shortest global search term.
pub const MIN_SEARCH_LEN: usize = 2;
/// Most hits per object on the search page.
pub const SEARCH_HITS_PER_OBJECT: usize = 20;

type Q = HashMap<String, String>;

/// How `user` reads values: in their locale and time zone (theirs, else
/// the tenant's, else en_US in UTC), resolved when the session was read.
fn reader(user: &WebUser) -> Reader {
    Reader {
        locale: Locale::named(&user.locale),
        zone: user.caller.zone,
    }
}

/// The caller's layout of `object` (an error page when there is none for them).
async fn layout_of(s: &WebState, u: &WebUser, object: &str) -> Result<CallerLayout, Response> {
    s.platform
        .caller_layout(&u.caller, object)
        .await
        .map_err(|e| error_page(&e))
}

/// The signed-in user of a form post whose CSRF token is theirs (else the
/// login redirect or the 403 page: nothing runs).
async fn posting_user(
    s: &WebState,
    headers: &HeaderMap,
    uri: &Uri,
    f: &Submitted,
) -> Result<WebUser, Response> {
    let u = require_user(s, headers, &path_of(uri)).await?;
    u.check_csrf(form::value(f, session::CSRF_FIELD))?;
    Ok(u)
}

fn path_of(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

pub(crate) async fn chrome(
    s: &WebState,
    u: &WebUser,
    current: Option<&str>,
    search: &str,
) -> Chrome {
    let tabs = match s.platform.meta.objects(&u.caller.tenant_id).await {
        Ok(list) => list
            .iter()
            .filter(|o| u.caller.perms.can_read_object(o.id()))
            .map(|o| Tab {
                label: o.def.plural_label.clone(),
                href: format!("/o/{}", segment(o.api_name())),
                current: current.is_some_and(|c| c.eq_ignore_ascii_case(o.api_name())),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    Chrome {
        username: u.caller.username.clone(),
        csrf: u.csrf(),
        tabs,
        search: search.to_string(),
        lang: reader(u).locale.lang,
        assets: Assets::get(),
        setup: crate::setup::Need::Customize.allows(u),
    }
}

/// Object ids → api names of the tenant (link targets of references).
async fn api_names(s: &WebState, tenant: &str) -> HashMap<String, String> {
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

fn target<'a>(f: &FieldView, names: &'a HashMap<String, String>) -> Option<&'a str> {
    f.def
        .as_ref()
        .and_then(|d| d.lookup_object_id.as_ref())
        .and_then(|id| names.get(id))
        .map(String::as_str)
}

fn rows(
    reader: &Reader,
    object: &str,
    cols: &[FieldView],
    page: &[PageRow],
    names: &HashMap<String, String>,
) -> Vec<Row> {
    page.iter()
        .map(|r| Row {
            href: record_href(object, &r.id),
            cells: cols
                .iter()
                .map(|f| reader.cell(f, r, target(f, names)))
                .collect(),
        })
        .collect()
}

/// The object (404 page when it does not exist or the user may not read it).
async fn readable(s: &WebState, u: &WebUser, object: &str) -> Result<Arc<ObjectMeta>, Response> {
    let o = s
        .platform
        .meta
        .object(&u.caller.tenant_id, object)
        .await
        .map_err(|e| error_page(&e))?;
    mosaic_runtime::access::require(&u.caller, &o, mosaic_runtime::access::ObjectOp::Read)
        .map_err(|e| error_page(&e))?;
    Ok(o)
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .copied()
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
    }
}

// ---------------------------------------------------------------- home

/// `GET /`: object tabs and recent records (the login page when signed out).
pub async fn home(State(s): State<WebState>, headers: HeaderMap, uri: Uri) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let c = &u.caller;
    let mut recent = Vec::new();
    if let Ok(list) = s
        .platform
        .recent
        .recent(&c.tenant_id, &c.user_id, HOME_RECENT)
        .await
    {
        let mut by_object: Vec<(String, Vec<String>)> = Vec::new();
        for r in &list {
            match by_object.iter_mut().find(|(o, _)| *o == r.object_id) {
                Some((_, ids)) => ids.push(r.record_id.clone()),
                None => by_object.push((r.object_id.clone(), vec![r.record_id.clone()])),
            }
        }
        let mut found: HashMap<String, (String, Arc<ObjectMeta>)> = HashMap::new();
        for (oid, ids) in by_object {
            let Ok(o) = s.platform.meta.object_by_id(&c.tenant_id, &oid).await else {
                continue;
            };
            if let Ok(names) = s.platform.record_names(c, &o, &ids).await {
                for (id, name) in names {
                    found.insert(id, (name, o.clone()));
                }
            }
        }
        for r in &list {
            if let Some((name, o)) = found.get(&r.record_id) {
                recent.push(RecentItem {
                    name: if name.is_empty() {
                        "(no name)".into()
                    } else {
                        name.clone()
                    },
                    href: record_href(o.api_name(), &r.record_id),
                    object_label: o.def.label.clone(),
                });
            }
        }
    }
    html(&HomePage {
        chrome: chrome(&s, &u, None, "").await,
        recent,
    })
}

// ---------------------------------------------------------------- lists

fn list_request(q: &Q) -> ListRequest {
    ListRequest {
        sort: q.get("sort").filter(|s| !s.is_empty()).map(|f| {
            (
                f.clone(),
                if q.get("dir").is_some_and(|d| d == "desc") {
                    SortDirection::Desc
                } else {
                    SortDirection::Asc
                },
            )
        }),
        search: q.get("q").cloned(),
        after: q.get("after").filter(|s| !s.is_empty()).cloned(),
        before: q.get("before").filter(|s| !s.is_empty()).cloned(),
        page_size: DEFAULT_PAGE_SIZE,
        offset: 0,
    }
}

fn dir_name(d: SortDirection) -> &'static str {
    match d {
        SortDirection::Asc => "asc",
        SortDirection::Desc => "desc",
    }
}

/// Column headers that sort (toggling the direction of the sorted one).
fn columns(page: &RowsPage, base: &str, extra: &[(&str, &str)]) -> Vec<Column> {
    page.columns
        .iter()
        .map(|f| {
            let sorted = f.name == page.sort_field;
            let sortable = f.def.as_ref().is_none_or(|d| {
                !matches!(
                    d.data_type,
                    mosaic_types::DataType::LongText
                        | mosaic_types::DataType::RichText
                        | mosaic_types::DataType::EncryptedText
                        | mosaic_types::DataType::MultiPicklist
                        | mosaic_types::DataType::Formula
                        | mosaic_types::DataType::Geolocation
                )
            });
            let next_dir = if sorted && page.sort_direction == SortDirection::Asc {
                "desc"
            } else {
                "asc"
            };
            let mut pairs: Vec<(&str, &str)> = extra.to_vec();
            pairs.push(("sort", &f.name));
            pairs.push(("dir", next_dir));
            Column {
                label: f.label.clone(),
                sort_href: sortable.then(|| format!("{base}{}", query_string(&pairs))),
                aria_sort: match (sorted, page.sort_direction) {
                    (false, _) => "none",
                    (true, SortDirection::Asc) => "ascending",
                    (true, SortDirection::Desc) => "descending",
                },
                numeric: matches!(
                    f.shown_type,
                    mosaic_types::DataType::Number
                        | mosaic_types::DataType::Currency
                        | mosaic_types::DataType::Percent
                ),
            }
        })
        .collect()
}

/// `GET /o/{object}`: a list view with sorting, quick search and keyset paging.
pub async fn list(
    State(s): State<WebState>,
    Path(object): Path<String>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let o = match readable(&s, &u, &object).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let c = &u.caller;
    let views = s.platform.meta.list_views(&o, &c.user_id);
    let cookie_name = format!("{VIEW_COOKIE_PREFIX}{}", o.id().replace('-', ""));
    let chosen = q
        .get("view")
        .cloned()
        .or_else(|| session::cookie(&headers, &cookie_name).map(str::to_string))
        .unwrap_or_else(|| mosaic_meta::listview::ALL_VIEW_ID.to_string());
    let view = views
        .iter()
        .find(|v| v.id == chosen || v.name.eq_ignore_ascii_case(&chosen))
        .unwrap_or(&views[0])
        .clone();
    let req = list_request(&q);
    let reader = reader(&u);
    let names = api_names(&s, &c.tenant_id).await;
    let base = format!("/o/{}", segment(o.api_name()));
    let search = q.get("q").cloned().unwrap_or_default();
    let (page, error) = match s.platform.list_view_page(c, &o, &view, &req).await {
        Ok(p) => (p, None),
        Err(e) if e.code == ErrorCode::UNKNOWN_EXCEPTION => return error_page(&e),
        Err(e) => {
            let empty = ListRequest {
                page_size: DEFAULT_PAGE_SIZE,
                ..ListRequest::default()
            };
            match s.platform.list_view_page(c, &o, &view, &empty).await {
                Ok(p) => (p, Some(e.message)),
                Err(e2) => return error_page(&e2),
            }
        }
    };
    let dir = dir_name(page.sort_direction);
    let keep: Vec<(&str, &str)> = vec![("view", &view.id), ("q", &search)];
    let sorted: Vec<(&str, &str)> = vec![
        ("view", &view.id),
        ("q", &search),
        ("sort", &page.sort_field),
        ("dir", dir),
    ];
    let count = if q.get("count").is_some_and(|c| c == "1") {
        s.platform
            .list_view_count(c, &o, &view, Some(&search))
            .await
            .ok()
    } else {
        None
    };
    let next_href = page.next.as_ref().map(|cur| {
        let mut p = sorted.clone();
        p.push(("after", cur));
        format!("{base}{}", query_string(&p))
    });
    let prev_href = page.prev.as_ref().map(|cur| {
        let mut p = sorted.clone();
        p.push(("before", cur));
        format!("{base}{}", query_string(&p))
    });
    let mut count_pairs = keep.clone();
    count_pairs.push(("count", "1"));
    let notice = q.get("notice").and_then(|n| match n.as_str() {
        "deleted" => Some("The record was deleted.".to_string()),
        _ => None,
    });
    let page_view = ListPage {
        chrome: chrome(&s, &u, Some(o.api_name()), "").await,
        title: view.label.clone(),
        views: views
            .iter()
            .map(|v| ViewOption {
                id: v.id.clone(),
                label: v.label.clone(),
                selected: v.id == view.id,
            })
            .collect(),
        columns: columns(&page, &base, &keep),
        rows: rows(&reader, o.api_name(), &page.columns, &page.rows, &names),
        next_href,
        prev_href,
        search: search.clone(),
        count_url: format!("{base}/count{}", query_string(&keep)),
        count,
        new_href: c.perms.object(o.id()).create.then(|| format!("{base}/new")),
        notice,
        error,
        parent: None,
    };
    let mut res = html(&page_view);
    if q.contains_key("view") {
        if let Ok(v) = header::HeaderValue::from_str(&format!(
            "{cookie_name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000",
            segment(&view.id)
        )) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// `GET /o/{object}/count`: the record count of a list view, as JSON for
/// the page's script (which loads it after the first rows are shown), or
/// the list page with the count for a browser without script.
pub async fn count(
    State(s): State<WebState>,
    Path(object): Path<String>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if !wants_json {
        let mut pairs: Vec<(&str, &str)> =
            q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.push(("count", "1"));
        return Redirect::to(&format!("/o/{}{}", segment(&object), query_string(&pairs)))
            .into_response();
    }
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "signed out"})),
            )
                .into_response()
        }
    };
    let Ok(o) = readable(&s, &u, &object).await else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "not found"})),
        )
            .into_response();
    };
    let view_id = q.get("view").cloned().unwrap_or_else(|| "all".into());
    let view = match s.platform.meta.list_view(&o, &view_id, &u.caller.user_id) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": e.message})),
            )
                .into_response()
        }
    };
    match s
        .platform
        .list_view_count(&u.caller, &o, &view, q.get("q").map(String::as_str))
        .await
    {
        Ok(n) => axum::Json(json!({"count": n})).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": e.message})),
        )
            .into_response(),
    }
}

// ---------------------------------------------------------------- record pages

fn history_text(f: Option<&FieldView>, reader: &Reader, raw: &Option<String>) -> String {
    let Some(t) = raw else { return String::new() };
    let v: serde_json::Value = serde_json::from_str(t).unwrap_or(serde_json::Value::Null);
    match (f, &v) {
        (_, serde_json::Value::Null) => String::new(),
        (Some(f), _) if f.shown_type == mosaic_types::DataType::EncryptedText => {
            crate::display::masked("secret")
        }
        (Some(f), _) => match mosaic_meta::coerce::coerce(
            f.def
                .as_ref()
                .unwrap_or(&mosaic_meta::model::probe_field(&f.name)),
            &v,
        ) {
            Ok(val) => reader.value(f, &val).text,
            Err(_) => v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
        },
        (None, _) => v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
    }
}

/// Remembers that the user viewed a record (in the background: the page
/// does not wait for the write).
fn touch_recent(s: &WebState, u: &WebUser, object_id: &str, id: &str) {
    let recent = s.platform.recent.clone();
    let (t, usr, o, r) = (
        u.caller.tenant_id.clone(),
        u.caller.user_id.clone(),
        object_id.to_string(),
        id.to_string(),
    );
    tokio::spawn(async move {
        if let Err(e) = recent
            .touch_recent(&t, &usr, &o, &r, chrono::Utc::now())
            .await
        {
            tracing::debug!(error = %e.message, "a recent record was not remembered");
        }
    });
}

/// `GET /r/{object}/{id}`: the record page from the layout.
pub async fn record(
    State(s): State<WebState>,
    Path((object, id)): Path<(String, String)>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let c = &u.caller;
    let layout = match s.platform.caller_layout(c, &object).await {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let o = layout.object.clone();
    let mut fields: Vec<FieldView> = layout.fields().cloned().collect();
    for h in &layout.highlights {
        if !fields.iter().any(|f| f.name == h.name) {
            fields.push(h.clone());
        }
    }
    let row = match s.platform.page_record(c, &o, &id, &fields).await {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    touch_recent(&s, &u, o.id(), &row.id);
    let reader = reader(&u);
    let names = api_names(&s, &c.tenant_id).await;
    let item = |f: &FieldView| Item {
        label: f.label.clone(),
        cell: reader.cell(f, &row, target(f, &names)),
    };
    let mut related = Vec::new();
    for r in &layout.related {
        let req = ListRequest {
            page_size: r.page_size as usize,
            ..ListRequest::default()
        };
        let page = s
            .platform
            .related_page(
                c,
                &r.child,
                &r.field,
                &row.id,
                r.columns.clone(),
                (r.sort_field.clone(), r.sort_direction),
                &req,
            )
            .await;
        let Ok(page) = page else { continue };
        let back = record_href(o.api_name(), &row.id);
        related.push(RelatedBlock {
            label: r.label.clone(),
            columns: page
                .columns
                .iter()
                .map(|f| Column {
                    label: f.label.clone(),
                    sort_href: None,
                    aria_sort: "none",
                    numeric: false,
                })
                .collect(),
            rows: rows(
                &reader,
                r.child.api_name(),
                &page.columns,
                &page.rows,
                &names,
            ),
            new_href: r.can_create.then(|| {
                format!(
                    "/o/{}/new{}",
                    segment(r.child.api_name()),
                    query_string(&[
                        (r.field.as_str(), row.id.as_str()),
                        ("_back", back.as_str())
                    ])
                )
            }),
            all_href: format!(
                "{back}/related/{}/{}",
                segment(r.child.api_name()),
                segment(&r.field)
            ),
            more: page.next.is_some(),
        });
    }
    let history = if o.def.enable_history {
        let by_name: HashMap<&str, &FieldView> =
            fields.iter().map(|f| (f.name.as_str(), f)).collect();
        let rows = s
            .platform
            .field_history(c, o.api_name(), &row.id, HISTORY_ROWS)
            .await
            .unwrap_or_default();
        let mut users: HashMap<String, String> = HashMap::new();
        for r in &rows {
            if !users.contains_key(&r.changed_by) {
                let name = s
                    .platform
                    .meta_store
                    .user(&c.tenant_id, &r.changed_by)
                    .await
                    .ok()
                    .flatten()
                    .map(|u| u.username)
                    .unwrap_or_default();
                users.insert(r.changed_by.clone(), name);
            }
        }
        Some(
            rows.iter()
                .map(|h| {
                    let f = by_name.get(h.field.as_str()).copied();
                    HistoryItem {
                        when: reader.locale.datetime(&h.changed_at, reader.zone),
                        field: f
                            .map(|f| f.label.clone())
                            .or_else(|| o.field(&h.field).map(|d| d.label.clone()))
                            .unwrap_or_else(|| h.field.clone()),
                        old: history_text(f, &reader, &h.old_value),
                        new: history_text(f, &reader, &h.new_value),
                        by: users.get(&h.changed_by).cloned().unwrap_or_default(),
                    }
                })
                .collect(),
        )
    } else {
        None
    };
    let base = record_href(o.api_name(), &row.id);
    let title = match row.value("Name") {
        mosaic_types::Value::Text(t) if !t.is_empty() => t.clone(),
        _ => format!("{} {}", o.def.label, row.id),
    };
    let notice = match q.get("notice").map(String::as_str) {
        Some("saved") => Some("Saved.".to_string()),
        Some("created") => Some(format!("{} created.", o.def.label)),
        _ => None,
    };
    html(&RecordPage {
        chrome: chrome(&s, &u, Some(o.api_name()), "").await,
        object_label: o.def.plural_label.clone(),
        list_href: format!("/o/{}", segment(o.api_name())),
        title,
        highlights: layout
            .highlights
            .iter()
            .filter(|f| f.name != "Name")
            .map(item)
            .collect(),
        sections: layout
            .sections
            .iter()
            .map(|sec| DetailSection {
                label: sec.label.clone(),
                columns: sec.columns,
                items: sec.items.iter().map(item).collect(),
            })
            .collect(),
        related,
        history,
        edit_href: layout.can_edit.then(|| format!("{base}/edit")),
        delete_href: layout.can_delete.then(|| format!("{base}/delete")),
        notice,
        share_href: crate::setup::share_href(c, &o, &row.id, row.value("OwnerId")),
    })
}

/// `GET /r/{object}/{id}/related/{child}/{field}`: a related list, paged.
pub async fn related(
    State(s): State<WebState>,
    Path((object, id, child, field)): Path<(String, String, String, String)>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let c = &u.caller;
    let layout = match s.platform.caller_layout(c, &object).await {
        Ok(l) => l,
        Err(e) => return error_page(&e),
    };
    let Some(r) = layout.related.iter().find(|r| {
        r.child.api_name().eq_ignore_ascii_case(&child) && r.field.eq_ignore_ascii_case(&field)
    }) else {
        return not_found_page("This record page has no such related list.");
    };
    let name_field: Vec<FieldView> =
        mosaic_runtime::layouts::columns(c, &layout.object, &["Name".to_string()]);
    let parent = match s
        .platform
        .page_record(c, &layout.object, &id, &name_field)
        .await
    {
        Ok(p) => p,
        Err(e) => return error_page(&e),
    };
    let mut req = list_request(&q);
    req.search = None;
    let sort = req
        .sort
        .clone()
        .unwrap_or((r.sort_field.clone(), r.sort_direction));
    let page = match s
        .platform
        .related_page(
            c,
            &r.child,
            &r.field,
            &parent.id,
            r.columns.clone(),
            sort,
            &req,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return error_page(&e),
    };
    let reader = reader(&u);
    let names = api_names(&s, &c.tenant_id).await;
    let parent_href = record_href(layout.object.api_name(), &parent.id);
    let base = format!(
        "{parent_href}/related/{}/{}",
        segment(r.child.api_name()),
        segment(&r.field)
    );
    let dir = dir_name(page.sort_direction);
    let sorted: Vec<(&str, &str)> = vec![("sort", &page.sort_field), ("dir", dir)];
    let with = |k: &'static str, cur: &String| {
        let mut p = sorted.clone();
        p.push((k, cur.as_str()));
        format!("{base}{}", query_string(&p))
    };
    let parent_name = match parent.value("Name") {
        mosaic_types::Value::Text(t) => t.clone(),
        _ => parent.id.clone(),
    };
    html(&ListPage {
        chrome: chrome(&s, &u, Some(layout.object.api_name()), "").await,
        title: r.label.clone(),
        views: Vec::new(),
        columns: columns(&page, &base, &[]),
        rows: rows(
            &reader,
            r.child.api_name(),
            &page.columns,
            &page.rows,
            &names,
        ),
        next_href: page.next.as_ref().map(|c| with("after", c)),
        prev_href: page.prev.as_ref().map(|c| with("before", c)),
        search: String::new(),
        count_url: String::new(),
        count: None,
        new_href: r.can_create.then(|| {
            format!(
                "/o/{}/new{}",
                segment(r.child.api_name()),
                query_string(&[
                    (r.field.as_str(), parent.id.as_str()),
                    ("_back", parent_href.as_str())
                ])
            )
        }),
        notice: None,
        error: None,
        parent: Some((parent_name, parent_href.clone())),
    })
}

// ---------------------------------------------------------------- forms

/// Errors of a save, by field (shown next to it) and general (on top).
fn split_errors(
    errs: &[MosaicError],
    layout: &CallerLayout,
) -> (HashMap<String, String>, Vec<String>) {
    let mut by_field: HashMap<String, String> = HashMap::new();
    let mut general = Vec::new();
    for e in errs {
        let mut placed = false;
        for f in &e.fields {
            if let Some(fv) = layout.fields().find(|x| x.name.eq_ignore_ascii_case(f)) {
                let msg = if e.code == ErrorCode::REQUIRED_FIELD_MISSING {
                    "This field is required.".to_string()
                } else {
                    e.message.clone()
                };
                by_field
                    .entry(fv.name.clone())
                    .and_modify(|m| {
                        m.push(' ');
                        m.push_str(&msg);
                    })
                    .or_insert(msg);
                placed = true;
            }
        }
        if !placed {
            general.push(e.message.clone());
        }
    }
    (by_field, general)
}

/// Lookups typed by name, resolved to ids where exactly one record has it.
async fn resolve_typed(
    s: &WebState,
    u: &WebUser,
    layout: &CallerLayout,
    f: &Submitted,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (field, target, name) in form::typed_lookups(layout, f) {
        let Ok(o) = s
            .platform
            .meta
            .object_by_id(&u.caller.tenant_id, &target)
            .await
        else {
            continue;
        };
        if let Ok(hits) = s
            .platform
            .lookup_candidates(&u.caller, o.api_name(), &name)
            .await
        {
            let exact: Vec<&(String, String)> = hits
                .iter()
                .filter(|(_, n)| n.eq_ignore_ascii_case(&name))
                .collect();
            if let [one] = exact.as_slice() {
                out.insert(field, one.0.clone());
            }
        }
    }
    out
}

/// Layout-required fields left blank (the runtime checks the field's own
/// required flag; a layout may require more).
fn layout_required_missing(
    layout: &CallerLayout,
    body: &serde_json::Map<String, serde_json::Value>,
) -> HashMap<String, String> {
    layout
        .fields()
        .filter(|f| f.required && !f.read_only)
        .filter(|f| match body.get(&f.name) {
            None | Some(serde_json::Value::Null) => {
                f.data_type() != mosaic_types::DataType::EncryptedText
                    || !body.contains_key(&f.name)
            }
            Some(serde_json::Value::String(s)) => s.trim().is_empty(),
            _ => false,
        })
        .filter(|f| f.data_type() != mosaic_types::DataType::Boolean)
        .map(|f| (f.name.clone(), "This field is required.".to_string()))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn form_page(
    s: &WebState,
    u: &WebUser,
    layout: &CallerLayout,
    title: String,
    action: String,
    source: Source<'_>,
    errors: HashMap<String, String>,
    general: Vec<String>,
    version: String,
    cancel_href: String,
    conflict: Option<(String, HashMap<String, String>, String)>,
    keep: Vec<(String, String)>,
    status: StatusCode,
) -> Response {
    let reader = reader(u);
    let (conflict, theirs, theirs_href) = match conflict {
        Some((m, t, h)) => (Some(m), t, h),
        None => (None, HashMap::new(), String::new()),
    };
    let page = FormPage {
        chrome: chrome(s, u, Some(layout.object.api_name()), "").await,
        title,
        action,
        sections: form::sections(layout, &reader, &source, &errors, &theirs),
        errors: general,
        version,
        cancel_href,
        conflict,
        theirs_href,
        keep,
    };
    (status, html(&page)).into_response()
}

fn version_text(row: &PageRow) -> String {
    row.modified()
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `GET /o/{object}/new`: the create form (values in the URL prefill it,
/// e.g. the parent of a related list's "New").
pub async fn new_form(
    State(s): State<WebState>,
    Path(object): Path<String>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let layout = match layout_of(&s, &u, &object).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    if !layout.can_create {
        return forbidden_page("You may not create these records.");
    }
    let mut given = q.clone();
    let mut keep = Vec::new();
    // A prefilled lookup shows its record's name.
    for f in layout
        .object
        .def
        .fields
        .iter()
        .filter(|f| f.data_type.is_reference())
    {
        let Some(id) = q.get(&f.api_name) else {
            continue;
        };
        let on_layout = layout
            .fields()
            .any(|x| x.name == f.api_name && !x.read_only);
        if !on_layout {
            keep.push((f.api_name.clone(), id.clone()));
        }
        if let Some(t) = &f.lookup_object_id {
            if let Ok(o) = s.platform.meta.object_by_id(&u.caller.tenant_id, t).await {
                if let Ok(n) = s
                    .platform
                    .record_names(&u.caller, &o, std::slice::from_ref(id))
                    .await
                {
                    if let Some(name) = n.get(id) {
                        given.insert(
                            format!("{}{}", f.api_name, form::LOOKUP_NAME_SUFFIX),
                            name.clone(),
                        );
                    }
                }
            }
        }
    }
    let back = q
        .get("_back")
        .and_then(|b| session::local_path(b))
        .map(str::to_string);
    if let Some(b) = &back {
        keep.push(("_back".into(), b.clone()));
    }
    let o = layout.object.clone();
    form_page(
        &s,
        &u,
        &layout,
        format!("New {}", o.def.label),
        format!("/o/{}/new", segment(o.api_name())),
        Source::New(&given),
        HashMap::new(),
        Vec::new(),
        String::new(),
        back.unwrap_or_else(|| format!("/o/{}", segment(o.api_name()))),
        None,
        keep,
        StatusCode::OK,
    )
    .await
}

/// Hidden values a create form carries besides its controls.
fn kept_values(form: &Submitted, layout: &CallerLayout) -> Vec<(String, String)> {
    form.iter()
        .filter(|(k, _)| {
            k == "_back"
                || layout.object.field(k).is_some_and(|f| {
                    f.data_type.is_reference()
                        && !layout.fields().any(|x| &x.name == k && !x.read_only)
                })
        })
        .cloned()
        .collect()
}

/// `POST /o/{object}/new`: creates the record, or shows the form again
/// with every error next to its field and the input kept.
pub async fn create(
    State(s): State<WebState>,
    Path(object): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting_user(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let layout = match layout_of(&s, &u, &object).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    if !layout.can_create {
        return forbidden_page("You may not create these records.");
    }
    let reader = reader(&u);
    let resolved = resolve_typed(&s, &u, &layout, &f).await;
    let (mut body, mut errors) = form::body(&layout, &reader, &f, true, &resolved);
    let keep = kept_values(&f, &layout);
    for (k, v) in &keep {
        if k != "_back" && !body.contains_key(k) {
            body.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
    }
    errors.extend(layout_required_missing(&layout, &body));
    let o = layout.object.clone();
    let back = form::value(&f, "_back")
        .and_then(session::local_path)
        .map(str::to_string);
    let result = if errors.is_empty() {
        s.platform
            .create(&u.caller, o.api_name(), &body)
            .await
            .map_err(|e| e.0)
    } else {
        Err(Vec::new())
    };
    match result {
        Ok(id) => Redirect::to(&format!(
            "{}?notice=created",
            record_href(o.api_name(), &id)
        ))
        .into_response(),
        Err(errs) => {
            let (mut by_field, general) = split_errors(&errs, &layout);
            for (k, v) in errors {
                by_field.entry(k).or_insert(v);
            }
            form_page(
                &s,
                &u,
                &layout,
                format!("New {}", o.def.label),
                format!("/o/{}/new", segment(o.api_name())),
                Source::Submitted(&f),
                by_field,
                general,
                String::new(),
                back.unwrap_or_else(|| format!("/o/{}", segment(o.api_name()))),
                None,
                keep,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// `GET /r/{object}/{id}/edit`: the edit form, carrying the version it was read at.
pub async fn edit_form(
    State(s): State<WebState>,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let layout = match layout_of(&s, &u, &object).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let fields: Vec<FieldView> = layout.fields().cloned().collect();
    let row = match s
        .platform
        .page_record(&u.caller, &layout.object, &id, &fields)
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    if !layout.can_edit {
        return forbidden_page("You may not edit this record.");
    }
    let o = layout.object.clone();
    let back = record_href(o.api_name(), &row.id);
    form_page(
        &s,
        &u,
        &layout,
        format!("Edit {}", title_of(&row, &o)),
        format!("{back}/edit"),
        Source::Record(&row),
        HashMap::new(),
        Vec::new(),
        version_text(&row),
        back,
        None,
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

fn title_of(row: &PageRow, o: &ObjectMeta) -> String {
    match row.value("Name") {
        mosaic_types::Value::Text(t) if !t.is_empty() => t.clone(),
        _ => o.def.label.clone(),
    }
}

/// `POST /r/{object}/{id}/edit`: saves unless the record changed since
/// the form was opened (then the form says so: keep mine / take theirs).
pub async fn update(
    State(s): State<WebState>,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting_user(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let layout = match layout_of(&s, &u, &object).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let o = layout.object.clone();
    let fields: Vec<FieldView> = layout.fields().cloned().collect();
    // The record must be readable (else a 404 page, whatever was posted).
    if let Err(e) = s.platform.page_record(&u.caller, &o, &id, &fields).await {
        return error_page(&e);
    }
    let since = form::value(&f, "_version")
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .map(|d| d.with_timezone(&chrono::Utc));
    let reader = reader(&u);
    let resolved = resolve_typed(&s, &u, &layout, &f).await;
    let (body, mut errors) = form::body(&layout, &reader, &f, false, &resolved);
    errors.extend(layout_required_missing(&layout, &body));
    let result = if errors.is_empty() {
        s.platform
            .update_unmodified_since(&u.caller, o.api_name(), &id, &body, since)
            .await
            .map_err(|e| e.0)
    } else {
        Err(Vec::new())
    };
    let back = record_href(o.api_name(), &id);
    match result {
        Ok(()) => Redirect::to(&format!("{back}?notice=saved")).into_response(),
        Err(errs) if errs.first().is_some_and(|e| e.code == ErrorCode::CONFLICT) => {
            // Someone saved meanwhile: show theirs beside mine.
            let current = match s.platform.page_record(&u.caller, &o, &id, &fields).await {
                Ok(r) => r,
                Err(e) => return error_page(&e),
            };
            let mine = form::body(&layout, &reader, &f, false, &resolved).0;
            let theirs_body = form::body(
                &layout,
                &reader,
                &form_of_record(&layout, &reader, &current),
                false,
                &HashMap::new(),
            )
            .0;
            let mut theirs = HashMap::new();
            for fv in layout.fields() {
                if mine.get(&fv.name) != theirs_body.get(&fv.name)
                    && theirs_body.contains_key(&fv.name)
                {
                    let cell = reader.cell(fv, &current, None);
                    theirs.insert(
                        fv.name.clone(),
                        if cell.text.is_empty() {
                            "(blank)".into()
                        } else {
                            cell.text
                        },
                    );
                }
            }
            let who = current
                .names
                .get("LastModifiedById")
                .cloned()
                .unwrap_or_else(|| "another user".into());
            let when = current
                .modified()
                .map(|d| reader.locale.datetime(&d, reader.zone))
                .unwrap_or_default();
            form_page(
                &s,
                &u,
                &layout,
                format!("Edit {}", title_of(&current, &o)),
                format!("{back}/edit"),
                Source::Submitted(&f),
                HashMap::new(),
                Vec::new(),
                version_text(&current),
                back.clone(),
                Some((
                    format!("{who} saved this record at {when}, after you opened it. Nothing of yours was saved yet."),
                    theirs,
                    format!("{back}/edit"),
                )),
                Vec::new(),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(errs) => {
            let (mut by_field, general) = split_errors(&errs, &layout);
            for (k, v) in errors {
                by_field.entry(k).or_insert(v);
            }
            form_page(
                &s,
                &u,
                &layout,
                format!("Edit {}", o.def.label),
                format!("{back}/edit"),
                Source::Submitted(&f),
                by_field,
                general,
                since
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default(),
                back.clone(),
                None,
                Vec::new(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// A stored record as the form it would submit (to compare with mine).
fn form_of_record(layout: &CallerLayout, reader: &Reader, row: &PageRow) -> Submitted {
    let sections = form::sections(
        layout,
        reader,
        &Source::Record(row),
        &HashMap::new(),
        &HashMap::new(),
    );
    let mut out = Vec::new();
    for s in sections {
        for i in s.inputs {
            match i.kind {
                "checkbox" => out.push((
                    i.name.clone(),
                    if i.checked { "1".into() } else { "0".into() },
                )),
                "select" | "multiselect" => {
                    for o in i.options.iter().filter(|o| o.selected) {
                        out.push((i.name.clone(), o.value.clone()));
                    }
                }
                "readonly" => {}
                _ => out.push((i.name.clone(), i.value.clone())),
            }
        }
    }
    out
}

/// `GET /r/{object}/{id}/delete`: asks to confirm.
pub async fn delete_confirm(
    State(s): State<WebState>,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let layout = match layout_of(&s, &u, &object).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let name: Vec<FieldView> =
        mosaic_runtime::layouts::columns(&u.caller, &layout.object, &["Name".to_string()]);
    let row = match s
        .platform
        .page_record(&u.caller, &layout.object, &id, &name)
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    if !layout.can_delete {
        return forbidden_page("You may not delete this record.");
    }
    let o = layout.object.clone();
    let back = record_href(o.api_name(), &row.id);
    html(&DeletePage {
        chrome: chrome(&s, &u, Some(o.api_name()), "").await,
        title: title_of(&row, &o),
        object_label: o.def.label.clone(),
        action: format!("{back}/delete"),
        cancel_href: back,
    })
}

/// `POST /r/{object}/{id}/delete`: deletes and returns to the list.
pub async fn delete(
    State(s): State<WebState>,
    Path((object, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<Submitted>,
) -> Response {
    let u = match posting_user(&s, &headers, &uri, &f).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match s.platform.delete(&u.caller, &object, &id).await {
        Ok(()) => Redirect::to(&format!("/o/{}?notice=deleted", segment(&object))).into_response(),
        Err(e) => error_page(&e),
    }
}

// ---------------------------------------------------------------- search and lookups

/// A search term reduced to words SOSL takes literally.
fn search_words(term: &str) -> String {
    term.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '@' | '.' | '_' | '-' | '\'') {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\'', "\\'")
}

/// `GET /search?q=`: global search across the objects the user may read.
pub async fn search(
    State(s): State<WebState>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let c = &u.caller;
    let term = q.get("q").map(|t| t.trim().to_string()).unwrap_or_default();
    let words = search_words(&term);
    let mut groups = Vec::new();
    let mut error = None;
    if words.chars().count() >= MIN_SEARCH_LEN {
        let objects = s
            .platform
            .meta
            .objects(&c.tenant_id)
            .await
            .map(|l| l.to_vec())
            .unwrap_or_default();
        let readable: Vec<_> = objects
            .iter()
            .filter(|o| c.perms.can_read_object(o.id()))
            .collect();
        if !readable.is_empty() {
            let returning = readable
                .iter()
                .map(|o| format!("{}(Id, Name LIMIT {SEARCH_HITS_PER_OBJECT})", o.api_name()))
                .collect::<Vec<_>>()
                .join(", ");
            let sosl = format!("FIND {{{words}}} IN ALL FIELDS RETURNING {returning}");
            match s.platform.search(c, &sosl).await {
                Ok(hits) => {
                    for o in &readable {
                        let rows: Vec<Row> = hits
                            .iter()
                            .filter(|h| h.object == o.api_name())
                            .filter_map(|h| {
                                let name = h.fields.iter().find_map(|(n, v)| match v {
                                    mosaic_runtime::query::QueryValue::Value(
                                        mosaic_types::Value::Text(t),
                                    ) if n == "Name" => Some(t.clone()),
                                    _ => None,
                                });
                                Some(Row {
                                    href: record_href(o.api_name(), h.id.as_ref()?),
                                    cells: vec![Cell {
                                        text: name.unwrap_or_default(),
                                        href: None,
                                        numeric: false,
                                    }],
                                })
                            })
                            .collect();
                        if !rows.is_empty() {
                            groups.push(SearchGroup {
                                label: o.def.plural_label.clone(),
                                hits: rows,
                            });
                        }
                    }
                }
                Err(e) => error = Some(e.message),
            }
        }
    } else if !term.is_empty() {
        error = Some(format!("Type at least {MIN_SEARCH_LEN} letters or digits."));
    }
    html(&SearchPage {
        chrome: chrome(&s, &u, None, &term).await,
        term,
        groups,
        error,
    })
}

/// `GET /lookup/{object}?q=`: type-ahead candidates as JSON
/// (`[{"id", "name"}]`), for the signed-in user only.
pub async fn lookup(
    State(s): State<WebState>,
    Path(object): Path<String>,
    Query(q): Query<Q>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let u = match require_user(&s, &headers, &path_of(&uri)).await {
        Ok(u) => u,
        Err(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "signed out"})),
            )
                .into_response()
        }
    };
    // The target may be named by id (form controls carry the object id).
    let name = match s
        .platform
        .meta
        .object_by_id(&u.caller.tenant_id, &object)
        .await
    {
        Ok(o) => o.api_name().to_string(),
        Err(_) => object,
    };
    let term = q.get("q").cloned().unwrap_or_default();
    match s.platform.lookup_candidates(&u.caller, &name, &term).await {
        Ok(hits) => axum::Json(
            hits.into_iter()
                .map(|(id, name)| json!({"id": id, "name": name}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => (
            crate::views::status_of(&e),
            axum::Json(json!({"error": e.message})),
        )
            .into_response(),
    }
}
