//! The rows pages show: list views, related lists, a record with its
//! layout's fields, lookup candidates and record counts — each one SOQL
//! statement run through [`Platform::query`] with the caller, so
//! field-level security and sharing are applied exactly as for the API
//! (inside the SQL), and referenced records' names come in the same
//! statement (`Account__r.Name`, `Owner.Name`), never one query per row.
//!
//! Lists page by keyset: the sort field and the record id of the last (or
//! first) row shown make an opaque cursor, and the next page is the rows
//! after it — no OFFSET, so page 1,000 costs what page 1 does.

use crate::layouts::{columns, field_view, FieldView};
use crate::platform::Platform;
use crate::query::{QueryOptions, QueryRecord, QueryValue};
use crate::records::Caller;
use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use mosaic_meta::layout::SortDirection;
use mosaic_meta::listview::{FilterScope, ListView};
use mosaic_meta::model::ObjectMeta;
use mosaic_meta::workflow::{coerce_for, parse_logic, rule_field, Criteria, Logic, Operator};
use mosaic_soql::Literal;
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult, Value};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// Rows of one list page unless asked otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 25;
/// Most rows of one list page.
pub const MAX_PAGE_SIZE: usize = 200;
/// Largest SOQL OFFSET a first page may skip (deeper pages use cursors).
pub const MAX_OFFSET: usize = mosaic_soql::MAX_OFFSET as usize;
/// Most lookup candidates returned for a type-ahead.
pub const MAX_LOOKUP_CANDIDATES: usize = 10;
/// Longest quick-search or type-ahead term considered.
pub const MAX_SEARCH_TERM_LEN: usize = 100;
/// Longest cursor accepted.
const MAX_CURSOR_LEN: usize = 1024;
const CURSOR_SEPARATOR: char = '\u{1f}';
const NULL_MARK: &str = "\u{0}";

/// One row a page shows.
#[derive(Debug, Clone, Default)]
pub struct PageRow {
    pub id: String,
    /// Field values by canonical api name.
    pub values: HashMap<String, Value>,
    /// Names of referenced records by the referencing field's api name.
    pub names: HashMap<String, String>,
}

impl PageRow {
    pub fn value(&self, field: &str) -> &Value {
        self.values.get(field).unwrap_or(&Value::Null)
    }

    /// The record's `LastModifiedDate` (a save's version).
    pub fn modified(&self) -> Option<DateTime<Utc>> {
        match self.values.get("LastModifiedDate") {
            Some(Value::Datetime(d)) => Some(*d),
            _ => None,
        }
    }
}

/// What a list page asks for.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Overrides the view's sort (a column the caller sees).
    pub sort: Option<(String, SortDirection)>,
    /// Quick search over the text columns.
    pub search: Option<String>,
    /// Rows after this cursor (next page).
    pub after: Option<String>,
    /// Rows before this cursor (previous page).
    pub before: Option<String>,
    pub page_size: usize,
    /// Rows skipped on the first page (SOQL OFFSET, for the Data API's
    /// `offset`; at most [`mosaic_soql::MAX_OFFSET`]).
    pub offset: usize,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub columns: Vec<FieldView>,
    pub rows: Vec<PageRow>,
    /// Cursor of the next page, when there is one.
    pub next: Option<String>,
    /// Cursor of the previous page, when there is one.
    pub prev: Option<String>,
    pub sort_field: String,
    pub sort_direction: SortDirection,
}

fn bad(field: &str, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

fn string_lit(s: &str) -> String {
    Literal::String(s.to_string()).to_string()
}

/// A value as a SOQL literal, or `None` for values lists cannot compare.
fn literal(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".into(),
        Value::Text(s) => string_lit(s),
        Value::Number(d) => d.normalize().to_string(),
        Value::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Datetime(d) => d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Value::Time(_) | Value::Location { .. } => return None,
    })
}

/// Escapes LIKE's wildcards in a search term and quotes it as `%term%`.
fn like_contains(term: &str) -> String {
    let mut s = String::with_capacity(term.len() + 2);
    s.push('%');
    for ch in term.chars() {
        if ch == '%' || ch == '_' {
            s.push('\\');
        }
        s.push(ch);
    }
    s.push('%');
    // `\%` and `\_` survive the literal's own escaping as LIKE escapes.
    string_lit(&s)
        .replace("\\\\%", "\\%")
        .replace("\\\\_", "\\_")
}

fn like_prefix(term: &str) -> String {
    let lit = like_contains(term);
    // '%term%' → 'term%'
    format!("'{}", &lit[2..])
}

/// The value of `field` in a row as cursor text (`NULL_MARK` for null).
fn cursor_text(v: &Value) -> String {
    match v {
        Value::Null => NULL_MARK.into(),
        Value::Text(s) => s.clone(),
        Value::Number(d) => d.normalize().to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Datetime(d) => d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Value::Time(_) | Value::Location { .. } => NULL_MARK.into(),
    }
}

fn encode_cursor(sort_value: &Value, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}{CURSOR_SEPARATOR}{id}", cursor_text(sort_value)))
}

/// Decodes a cursor into the sort value (typed by the sort field, so a
/// tampered cursor can only ever be a literal) and the record id.
fn decode_cursor(cursor: &str, sort_type: DataType) -> MosaicResult<(Value, String)> {
    let bad_cursor = || {
        bad(
            "cursor",
            "the page cursor is not valid; open the list again",
        )
    };
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad_cursor());
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad_cursor)?;
    let (v, id) = raw.rsplit_once(CURSOR_SEPARATOR).ok_or_else(bad_cursor)?;
    let id = mosaic_types::id::normalize_id(id).ok_or_else(bad_cursor)?;
    if v == NULL_MARK {
        return Ok((Value::Null, id));
    }
    let value = match sort_type {
        DataType::Number | DataType::Currency | DataType::Percent => {
            Value::Number(v.parse::<Decimal>().map_err(|_| bad_cursor())?)
        }
        DataType::Boolean => Value::Boolean(v.parse::<bool>().map_err(|_| bad_cursor())?),
        DataType::Date => {
            Value::Date(NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad_cursor())?)
        }
        DataType::Datetime => Value::Datetime(
            DateTime::parse_from_rfc3339(v)
                .map_err(|_| bad_cursor())?
                .with_timezone(&Utc),
        ),
        _ => Value::Text(v.to_string()),
    };
    Ok((value, id))
}

/// A list's quick search: the term (cut to [`MAX_SEARCH_TERM_LEN`]) in
/// Name or any shown text column, or `None` without a term.
fn search_condition(cols: &[FieldView], term: Option<&str>) -> Option<String> {
    let term: String = term?.trim().chars().take(MAX_SEARCH_TERM_LEN).collect();
    if term.is_empty() {
        return None;
    }
    let like = like_contains(&term);
    let mut ors: Vec<String> = cols
        .iter()
        .filter(|f| {
            f.shown_type.is_text_like()
                && f.def
                    .as_ref()
                    .is_none_or(|d| d.data_type != DataType::Formula)
                && !f.is_reference()
        })
        .map(|f| format!("{} LIKE {like}", f.name))
        .collect();
    if !ors.iter().any(|o| o.starts_with("Name ")) {
        ors.push(format!("Name LIKE {like}"));
    }
    Some(format!("({})", ors.join(" OR ")))
}

/// The condition selecting rows after (v, id) in `dir` order (nulls first
/// ascending, last descending, as Salesforce sorts).
fn after_condition(field: &str, dir: SortDirection, v: &Value, id: &str) -> MosaicResult<String> {
    let id = string_lit(id);
    let lit = literal(v).ok_or_else(|| bad("cursor", "this column cannot page a list"))?;
    Ok(match (dir, v.is_null()) {
        (SortDirection::Asc, false) => {
            format!("({field} > {lit} OR ({field} = {lit} AND Id > {id}))")
        }
        (SortDirection::Asc, true) => {
            format!("(({field} = null AND Id > {id}) OR {field} != null)")
        }
        (SortDirection::Desc, false) => {
            format!("({field} < {lit} OR ({field} = {lit} AND Id < {id}) OR {field} = null)")
        }
        (SortDirection::Desc, true) => format!("({field} = null AND Id < {id})"),
    })
}

fn order_by(field: &str, dir: SortDirection) -> String {
    match dir {
        SortDirection::Asc => format!("{field} ASC NULLS FIRST, Id ASC"),
        SortDirection::Desc => format!("{field} DESC NULLS LAST, Id DESC"),
    }
}

fn reverse(dir: SortDirection) -> SortDirection {
    match dir {
        SortDirection::Asc => SortDirection::Desc,
        SortDirection::Desc => SortDirection::Asc,
    }
}

/// A list view's filter as a SOQL condition.
pub fn filter_soql(obj: &ObjectMeta, criteria: &Criteria) -> MosaicResult<String> {
    let n = criteria.conditions.len();
    let logic = parse_logic(&criteria.logic, n)?;
    let mut conds = Vec::with_capacity(n);
    for (i, c) in criteria.conditions.iter().enumerate() {
        let at = format!("filter_criteria.conditions[{i}]");
        let field = rule_field(&obj.def, &c.field)
            .ok_or_else(|| bad(&at, format!("no field '{}'", c.field)))?;
        let name = field.name().to_string();
        let lit = |v: &serde_json::Value| -> MosaicResult<String> {
            let v = coerce_for(&field, v).map_err(|e| bad(&at, e.message))?;
            literal(&v).ok_or_else(|| bad(&at, "this value cannot filter a list"))
        };
        let list = |v: &serde_json::Value| -> MosaicResult<String> {
            let items: Vec<serde_json::Value> = match v {
                serde_json::Value::Array(a) => a.clone(),
                serde_json::Value::String(s) => s
                    .split(',')
                    .map(|p| serde_json::Value::String(p.trim().to_string()))
                    .collect(),
                other => vec![other.clone()],
            };
            Ok(items
                .iter()
                .map(lit)
                .collect::<MosaicResult<Vec<_>>>()?
                .join(", "))
        };
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        conds.push(match c.operator {
            Operator::Equals => format!("{name} = {}", lit(&c.value)?),
            Operator::NotEquals => format!("{name} != {}", lit(&c.value)?),
            Operator::GreaterThan => format!("{name} > {}", lit(&c.value)?),
            Operator::LessThan => format!("{name} < {}", lit(&c.value)?),
            Operator::GreaterOrEqual => format!("{name} >= {}", lit(&c.value)?),
            Operator::LessOrEqual => format!("{name} <= {}", lit(&c.value)?),
            Operator::Contains => format!("{name} LIKE {}", like_contains(&text(&c.value))),
            Operator::StartsWith => format!("{name} LIKE {}", like_prefix(&text(&c.value))),
            Operator::In => format!("{name} IN ({})", list(&c.value)?),
            Operator::NotIn => format!("{name} NOT IN ({})", list(&c.value)?),
            Operator::IsNull => {
                if c.value.as_bool() == Some(false) {
                    format!("{name} != null")
                } else {
                    format!("{name} = null")
                }
            }
            Operator::Changed | Operator::ChangedTo | Operator::ChangedFrom => {
                return Err(bad(&at, "changed operators do not filter lists"))
            }
        });
    }
    fn render(l: &Logic, conds: &[String]) -> String {
        match l {
            Logic::Cond(i) => format!("({})", conds[*i]),
            Logic::Not(x) => format!("(NOT {})", render(x, conds)),
            Logic::And(xs) => format!(
                "({})",
                xs.iter()
                    .map(|x| render(x, conds))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            Logic::Or(xs) => format!(
                "({})",
                xs.iter()
                    .map(|x| render(x, conds))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
        }
    }
    Ok(render(&logic, &conds))
}

/// The SELECT list for `cols`: Id, Name, LastModifiedDate, the columns,
/// and the names of the records they reference.
fn select_list(c: &Caller, obj: &ObjectMeta, cols: &[FieldView]) -> Vec<String> {
    let mut out: Vec<String> = vec!["Id".into(), "Name".into(), "LastModifiedDate".into()];
    for f in cols {
        if !out.contains(&f.name) {
            out.push(f.name.clone());
        }
        if let Some(path) = f.name_path() {
            // A referenced object the caller cannot read is not joined.
            let readable = f
                .def
                .as_ref()
                .and_then(|d| d.lookup_object_id.as_ref())
                .is_none_or(|t| c.perms.can_read_object(t));
            if readable && !out.contains(&path) {
                out.push(path);
            }
        }
    }
    let _ = obj;
    out
}

/// Converts a query record into a page row (`cols` say which relationship
/// names belong to which field).
fn page_row(r: &QueryRecord, cols: &[FieldView]) -> PageRow {
    let mut row = PageRow {
        id: r.id.clone().unwrap_or_default(),
        ..PageRow::default()
    };
    for (k, v) in &r.fields {
        match v {
            QueryValue::Value(v) => {
                row.values.insert(k.clone(), v.clone());
            }
            QueryValue::Record(Some(parent)) => {
                let owner = cols.iter().find(|f| {
                    f.name_path()
                        .is_some_and(|p| p.split('.').next() == Some(k.as_str()))
                });
                if let Some(f) = owner {
                    let name = parent.fields.iter().find_map(|(n, v)| match v {
                        QueryValue::Value(Value::Text(s)) if n == "Name" => Some(s.clone()),
                        _ => None,
                    });
                    if let Some(name) = name {
                        row.names.insert(f.name.clone(), name);
                    }
                }
            }
            _ => {}
        }
    }
    row
}

impl Platform {
    /// One page of a list of `obj`'s records: `cols` shown, `conditions`
    /// ANDed, sorted by (sort field, Id), keyset-paged by `req`.
    #[allow(clippy::too_many_arguments)]
    async fn keyset_page(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        cols: Vec<FieldView>,
        mut conditions: Vec<String>,
        sort: (String, SortDirection),
        limit_total: Option<u32>,
        req: &ListRequest,
    ) -> MosaicResult<ListPage> {
        let size = req.page_size.clamp(1, MAX_PAGE_SIZE);
        let (sort_field, dir) = sort;
        let sort_view = field_view(c, obj, &sort_field, false, true)
            .ok_or_else(|| bad("sort", format!("'{sort_field}' cannot sort this list")))?;
        conditions.extend(search_condition(&cols, req.search.as_deref()));
        let backwards = req.before.is_some() && req.after.is_none();
        let cursor = if backwards { &req.before } else { &req.after };
        let walk = if backwards { reverse(dir) } else { dir };
        if let Some(cur) = cursor {
            let (v, id) = decode_cursor(cur, sort_view.shown_type)?;
            conditions.push(after_condition(&sort_field, walk, &v, &id)?);
        }
        let fetch = match limit_total {
            // A view's row limit caps the whole list, not each page.
            Some(l) if cursor.is_none() => size.min(l as usize),
            _ => size,
        };
        let mut soql = format!(
            "SELECT {} FROM {}",
            select_list(c, obj, &cols).join(", "),
            obj.api_name()
        );
        if !conditions.is_empty() {
            soql.push_str(" WHERE ");
            soql.push_str(&conditions.join(" AND "));
        }
        soql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            order_by(&sort_field, walk),
            fetch + 1
        ));
        if req.offset > 0 && cursor.is_none() {
            soql.push_str(&format!(" OFFSET {}", req.offset));
        }
        let result = self.query(c, &soql, QueryOptions::default()).await?;
        let mut rows: Vec<PageRow> = result.records.iter().map(|r| page_row(r, &cols)).collect();
        let more = rows.len() > fetch;
        rows.truncate(fetch);
        if backwards {
            rows.reverse();
        }
        let cursor_of = |r: &PageRow| encode_cursor(r.value(&sort_field), &r.id);
        let (next, prev) = if backwards {
            (
                rows.last().map(cursor_of),
                if more {
                    rows.first().map(cursor_of)
                } else {
                    None
                },
            )
        } else {
            (
                if more && limit_total.is_none() {
                    rows.last().map(cursor_of)
                } else {
                    None
                },
                if req.after.is_some() {
                    rows.first().map(cursor_of)
                } else {
                    None
                },
            )
        };
        Ok(ListPage {
            columns: cols,
            rows,
            next,
            prev,
            sort_field,
            sort_direction: dir,
        })
    }

    /// The conditions of a list view for `c` (filters and scope).
    fn view_conditions(c: &Caller, obj: &ObjectMeta, view: &ListView) -> MosaicResult<Vec<String>> {
        let mut out = Vec::new();
        if let Some(f) = &view.filter_criteria {
            out.push(filter_soql(obj, f)?);
        }
        if view.filter_scope == FilterScope::Mine {
            out.push(format!("OwnerId = {}", string_lit(&c.user_id)));
        }
        Ok(out)
    }

    /// One page of a list view.
    #[tracing::instrument(name = "pages.list_view", skip_all)]
    pub async fn list_view_page(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        view: &ListView,
        req: &ListRequest,
    ) -> MosaicResult<ListPage> {
        let cols = columns(c, obj, &view.columns);
        let sort = match &req.sort {
            Some((f, d)) => {
                let name = mosaic_meta::layout::column_name(&obj.def, f)
                    .filter(|n| mosaic_meta::listview::sortable(&obj.def, n))
                    .filter(|n| n == "Name" || cols.iter().any(|c| &c.name == n))
                    .ok_or_else(|| {
                        bad(
                            "sort",
                            format!(
                                "'{}' is not a sortable column of this list",
                                f.chars().take(80).collect::<String>()
                            ),
                        )
                    })?;
                (name, *d)
            }
            None => view
                .sort
                .first()
                .map(|k| (k.field.clone(), k.direction))
                .unwrap_or_else(|| ("Name".into(), SortDirection::Asc)),
        };
        let conditions = Self::view_conditions(c, obj, view)?;
        self.keyset_page(c, obj, cols, conditions, sort, view.row_limit, req)
            .await
    }

    /// How many records a list view (with its quick search) selects, as
    /// the caller may see them.
    #[tracing::instrument(name = "pages.list_view_count", skip_all)]
    pub async fn list_view_count(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        view: &ListView,
        search: Option<&str>,
    ) -> MosaicResult<usize> {
        let cols = columns(c, obj, &view.columns);
        let mut conditions = Self::view_conditions(c, obj, view)?;
        conditions.extend(search_condition(&cols, search));
        let mut soql = format!("SELECT COUNT() FROM {}", obj.api_name());
        if !conditions.is_empty() {
            soql.push_str(" WHERE ");
            soql.push_str(&conditions.join(" AND "));
        }
        let n = self
            .query(c, &soql, QueryOptions::default())
            .await?
            .total_size;
        Ok(view.row_limit.map_or(n, |l| n.min(l as usize)))
    }

    /// One page of the children of `parent_id` through `child.field`.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(name = "pages.related", skip_all)]
    pub async fn related_page(
        &self,
        c: &Caller,
        child: &ObjectMeta,
        field: &str,
        parent_id: &str,
        cols: Vec<FieldView>,
        sort: (String, SortDirection),
        req: &ListRequest,
    ) -> MosaicResult<ListPage> {
        let parent_id = crate::records::parse_record_id(parent_id)?;
        let f = child
            .field(field)
            .filter(|f| f.data_type.is_reference())
            .ok_or_else(|| bad("field", format!("'{field}' is not a relationship field")))?;
        let conditions = vec![format!("{} = {}", f.api_name, string_lit(&parent_id))];
        self.keyset_page(c, child, cols, conditions, sort, None, req)
            .await
    }

    /// One record with the fields `fields` (those the caller may read) and
    /// the names of the records they reference; NOT_FOUND when it does not
    /// exist or is not shared with the caller.
    #[tracing::instrument(name = "pages.record", skip_all)]
    pub async fn page_record(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        id: &str,
        fields: &[FieldView],
    ) -> MosaicResult<PageRow> {
        let id = crate::records::parse_record_id(id)?;
        let mut cols: Vec<FieldView> = fields.to_vec();
        for sys in ["OwnerId", "CreatedById", "LastModifiedById"] {
            if !cols.iter().any(|f| f.name == sys) {
                if let Some(v) = field_view(c, obj, sys, false, true) {
                    cols.push(v);
                }
            }
        }
        let soql = format!(
            "SELECT {} FROM {} WHERE Id = {}",
            select_list(c, obj, &cols).join(", "),
            obj.api_name(),
            string_lit(&id)
        );
        let result = self.query(c, &soql, QueryOptions::default()).await?;
        result
            .records
            .first()
            .map(|r| page_row(r, &cols))
            .ok_or_else(|| {
                MosaicError::not_found(format!(
                    "The requested resource does not exist: no record with id '{id}'"
                ))
            })
    }

    /// Records of `object` whose name starts with (or contains) `term`,
    /// for a lookup's type-ahead: (id, name), at most
    /// [`MAX_LOOKUP_CANDIDATES`], as the caller may see them.
    #[tracing::instrument(name = "pages.lookup", skip_all)]
    pub async fn lookup_candidates(
        &self,
        c: &Caller,
        object: &str,
        term: &str,
    ) -> MosaicResult<Vec<(String, String)>> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, crate::access::ObjectOp::Read)?;
        let term: String = term.trim().chars().take(MAX_SEARCH_TERM_LEN).collect();
        let mut soql = format!("SELECT Id, Name FROM {}", obj.api_name());
        if !term.is_empty() {
            soql.push_str(&format!(" WHERE Name LIKE {}", like_contains(&term)));
        }
        soql.push_str(&format!(" ORDER BY Name ASC LIMIT {MAX_LOOKUP_CANDIDATES}"));
        let result = self.query(c, &soql, QueryOptions::default()).await?;
        Ok(result
            .records
            .iter()
            .filter_map(|r| {
                let name = r.fields.iter().find_map(|(n, v)| match v {
                    QueryValue::Value(Value::Text(s)) if n == "Name" => Some(s.clone()),
                    _ => None,
                });
                Some((r.id.clone()?, name.unwrap_or_default()))
            })
            .collect())
    }

    /// The names of records of `obj` by id, as the caller may see them
    /// (ids the caller cannot see are absent).
    pub async fn record_names(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        ids: &[String],
    ) -> MosaicResult<HashMap<String, String>> {
        if ids.is_empty() || !c.perms.can_read_object(obj.id()) {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = ids
            .iter()
            .filter_map(|i| mosaic_types::id::normalize_id(i))
            .map(|i| string_lit(&i))
            .collect();
        if list.is_empty() {
            return Ok(HashMap::new());
        }
        let soql = format!(
            "SELECT Id, Name FROM {} WHERE Id IN ({})",
            obj.api_name(),
            list.join(", ")
        );
        let result = self.query(c, &soql, QueryOptions::default()).await?;
        Ok(result
            .records
            .iter()
            .filter_map(|r| {
                let name = r.fields.iter().find_map(|(n, v)| match v {
                    QueryValue::Value(Value::Text(s)) if n == "Name" => Some(s.clone()),
                    _ => None,
                });
                Some((r.id.clone()?, name.unwrap_or_default()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let c = encode_cursor(
            &Value::Text("O'Brien".into()),
            "0190a1b2-0000-7000-8000-000000000001",
        );
        let (v, id) = decode_cursor(&c, DataType::Text).unwrap();
        assert_eq!(v, Value::Text("O'Brien".into()));
        assert_eq!(id, "0190a1b2-0000-7000-8000-000000000001");
        // A number cursor whose value is not a number is refused, not spliced.
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("1 OR Name != null\u{1f}0190a1b2-0000-7000-8000-000000000001");
        assert!(decode_cursor(&forged, DataType::Number).is_err());
        assert!(decode_cursor("not base64!", DataType::Text).is_err());
    }

    #[test]
    fn search_terms_are_literals_with_escaped_wildcards() {
        assert_eq!(like_contains("50%_x'"), "'%50\\%\\_x\\'%'");
        assert_eq!(like_prefix("ab"), "'ab%'");
    }

    #[test]
    fn keyset_conditions_follow_the_null_order() {
        let id = "0190a1b2-0000-7000-8000-000000000001";
        let a = after_condition("Amount__c", SortDirection::Asc, &Value::Null, id).unwrap();
        assert!(a.contains("Amount__c != null"));
        let d = after_condition(
            "Amount__c",
            SortDirection::Desc,
            &Value::Number(1.into()),
            id,
        )
        .unwrap();
        assert!(d.contains("Amount__c = null"));
    }
}
