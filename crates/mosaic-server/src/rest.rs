//! Salesforce REST resources beside records and queries: `limits` (what
//! Mosaic meters, under Salesforce's keys) and `recent` (the caller's
//! recently viewed records).

use crate::auth::Auth;
use crate::data::version;
use crate::error::ApiError;
use crate::extract::{PathParams, QueryMap};
use crate::render;
use crate::routes::RouteSpec;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use mosaic_cache::ratelimit::{EndpointClass, CLASSES};
use mosaic_runtime::access;
use mosaic_types::{ErrorCode, MosaicError};
use serde_json::{json, Map, Value};

pub fn routes() -> Vec<RouteSpec> {
    use crate::routes::build::*;
    let s = Access::Session;
    vec![
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/limits",
            s,
            "data.limits",
            "The organization's limits and what remains of them (Salesforce's keys)",
            get(limits),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/recent",
            s,
            "data.recent",
            "The caller's recently viewed records, newest first",
            get(recent),
        )
        .query(&["limit"]),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/search/suggestions",
            s,
            "query.search_suggestions",
            "Records whose name starts with the typed text (auto-suggest)",
            get(suggestions),
        )
        .query(&["q", "sobject", "limit"]),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/tooling",
            s,
            "tooling.resources",
            "The Tooling API's resources",
            get(tooling),
        ),
        RouteSpec::new(
            Method::GET,
            "/services/data/{version}/tooling/query",
            s,
            "tooling.query",
            "Query metadata as Tooling API records (CustomObject, CustomField)",
            get(tooling_query),
        )
        .query(&["q"]),
    ]
}

const DAY_SECS: u64 = 24 * 60 * 60;

/// `limits`: Mosaic meters API requests per second per endpoint class
/// (a token bucket); the day's maximum is what the sustained rates allow
/// in a day, the remainder that minus the requests counted since midnight
/// UTC (by the whole fleet when Redis is configured). Per-class entries follow Salesforce's naming for
/// the ones it has no key for. Storage and bulk jobs are not metered and
/// are omitted.
async fn limits(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
) -> Result<Json<Value>, ApiError> {
    version(&v)?;
    let rates = s.platform.tenant_rates(&c.tenant_id).await?;
    let per_day = |class: EndpointClass| u64::from(rates[class.index()].per_second) * DAY_SECS;
    let max: u64 = CLASSES.iter().map(|c| per_day(*c)).sum();
    let used = s.platform.cache.api_usage.today(&c.tenant_id).await;
    let mut out = Map::new();
    out.insert(
        "DailyApiRequests".into(),
        json!({"Max": max, "Remaining": max.saturating_sub(used)}),
    );
    for class in CLASSES {
        let r = rates[class.index()];
        let key = match class {
            EndpointClass::DataRead => "MosaicDataReadRequestsPerSecond",
            EndpointClass::DataWrite => "MosaicDataWriteRequestsPerSecond",
            EndpointClass::Query => "MosaicQueryRequestsPerSecond",
            EndpointClass::Metadata => "MosaicMetadataRequestsPerSecond",
            EndpointClass::Admin => "MosaicAdminRequestsPerSecond",
        };
        out.insert(key.into(), json!({"Max": r.per_second, "Burst": r.burst}));
    }
    // File storage in MB, as Salesforce names it (decision 0034).
    const MB: u64 = 1024 * 1024;
    let quota = s.platform.config.files.tenant_quota_bytes;
    let used = s.platform.file_usage(&c.tenant_id).await?;
    out.insert(
        "FileStorageMB".into(),
        json!({"Max": quota / MB, "Remaining": quota.saturating_sub(used) / MB}),
    );
    Ok(Json(Value::Object(out)))
}

/// Most records `recent` answers (Salesforce's default and maximum: 200).
const MAX_RECENT: usize = 200;

async fn recent(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let limit = match q.0.get("limit") {
        None => MAX_RECENT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_RECENT).contains(n))
            .ok_or_else(|| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "limit",
                    format!("limit must be an integer from 1 to {MAX_RECENT}"),
                )
            })?,
    };
    let rows = s
        .platform
        .recent
        .recent(&c.tenant_id, &c.user_id, limit)
        .await?;
    let objects = s.platform.meta.objects(&c.tenant_id).await?;
    let mut out = Vec::new();
    let name = vec!["Name".to_string()];
    for r in rows {
        let Some(o) = objects.iter().find(|o| o.id() == r.object_id) else {
            continue;
        };
        // A record no longer there or no longer visible is left out.
        let Ok(rec) = s
            .platform
            .get(&c, o.api_name(), &r.record_id, Some(&name))
            .await
        else {
            continue;
        };
        let full = render::record(v, &rec);
        out.push(json!({
            "attributes": {"type": o.api_name(), "url": render::sobject_url(v, o.api_name(), &r.record_id)},
            "Id": r.record_id,
            "Name": full.get("Name").cloned().unwrap_or(Value::Null),
        }));
    }
    Ok(Json(Value::Array(out)))
}

/// Most suggestions answered.
const MAX_SUGGESTIONS: usize = 10;

/// `search/suggestions?q=&sobject=[&limit=]`: records of `sobject` the
/// caller may see whose Name starts with `q` (case-insensitive), by name.
async fn suggestions(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let field = |k: &str, m: &str| MosaicError::field(ErrorCode::INVALID_INPUT, k, m.to_string());
    let text =
        q.0.get("q")
            .map(|t| t.trim())
            .filter(|t| t.chars().count() >= 2)
            .ok_or_else(|| field("q", "q is required: at least 2 characters of the name"))?;
    if text.chars().count() > 100 {
        return Err(field("q", "q is longer than 100 characters").into());
    }
    let object = q.0.get("sobject").ok_or_else(|| {
        field(
            "sobject",
            "sobject is required: the object to suggest records of",
        )
    })?;
    let limit = match q.0.get("limit") {
        None => 5,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_SUGGESTIONS).contains(n))
            .ok_or_else(|| field("limit", "limit must be an integer from 1 to 10"))?,
    };
    let o = s.platform.meta.object(&c.tenant_id, object).await?;
    access::require(&c, &o, access::ObjectOp::Read)?;
    let mut pattern = String::new();
    for ch in text.chars() {
        if matches!(ch, '\\' | '\'' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    let soql = format!(
        "SELECT Id, Name FROM {} WHERE Name LIKE '{pattern}%' ORDER BY Name LIMIT {}",
        o.api_name(),
        limit + 1
    );
    let res = s
        .platform
        .query(&c, &soql, mosaic_runtime::query::QueryOptions::default())
        .await?;
    let more = res.records.len() > limit;
    let results: Vec<Value> = res
        .records
        .iter()
        .take(limit)
        .filter_map(|r| {
            let id = r.id.as_ref()?;
            let full = crate::query::record_json(v, r);
            Some(json!({
                "attributes": {"type": o.api_name(), "url": render::sobject_url(v, o.api_name(), id)},
                "Id": id,
                "Name": full.get("Name").cloned().unwrap_or(Value::Null),
            }))
        })
        .collect();
    Ok(Json(
        json!({"autoSuggestResults": results, "hasMoreResults": more}),
    ))
}

async fn tooling(
    PathParams(v): PathParams<String>,
    Auth(_c): Auth,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    Ok(Json(
        json!({"query": format!("/services/data/{v}/tooling/query")}),
    ))
}

fn malformed(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::MALFORMED_QUERY, msg)
}

/// A Tooling API query over metadata: `SELECT fields FROM CustomObject |
/// CustomField [WHERE field = 'value' [AND …]] [LIMIT n]`.
#[derive(Debug, PartialEq)]
struct ToolingQuery {
    fields: Vec<String>,
    from: String,
    filters: Vec<(String, String)>,
    limit: Option<usize>,
}

/// Splits a query into words, `,`, `=` and quoted strings (unquoted).
fn tooling_tokens(q: &str) -> Result<Vec<(bool, String)>, ApiError> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == ',' || c == '=' {
            out.push((false, c.to_string()));
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err(malformed("unterminated string literal")),
                    Some('\\') => match chars.next() {
                        Some(x) => s.push(x),
                        None => return Err(malformed("unterminated string literal")),
                    },
                    Some('\'') => break,
                    Some(x) => s.push(x),
                }
            }
            out.push((true, s));
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            let mut s = String::new();
            while let Some(&x) = chars.peek() {
                if x.is_ascii_alphanumeric() || x == '_' || x == '.' {
                    s.push(x);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push((false, s));
        } else {
            return Err(malformed(format!("unexpected character '{c}'")));
        }
    }
    Ok(out)
}

fn parse_tooling(q: &str) -> Result<ToolingQuery, ApiError> {
    let toks = tooling_tokens(q)?;
    let word = |i: usize| toks.get(i).filter(|t| !t.0).map(|t| t.1.as_str());
    let is = |i: usize, kw: &str| word(i).is_some_and(|w| w.eq_ignore_ascii_case(kw));
    if !is(0, "SELECT") {
        return Err(malformed("a query starts with SELECT"));
    }
    let mut i = 1;
    let mut fields = Vec::new();
    loop {
        let f = word(i)
            .filter(|w| *w != "," && *w != "=")
            .ok_or_else(|| malformed("a field name is expected after SELECT or ','"))?;
        fields.push(f.to_string());
        i += 1;
        if word(i) == Some(",") {
            i += 1;
        } else {
            break;
        }
    }
    if !is(i, "FROM") {
        return Err(malformed(format!(
            "unexpected token '{}': FROM is expected",
            word(i).unwrap_or("end of query")
        )));
    }
    let from = word(i + 1)
        .ok_or_else(|| malformed("an object name is expected after FROM"))?
        .to_string();
    i += 2;
    let mut filters = Vec::new();
    if is(i, "WHERE") {
        i += 1;
        loop {
            let f = word(i).ok_or_else(|| malformed("a field is expected in WHERE"))?;
            if word(i + 1) != Some("=") {
                return Err(malformed("the Tooling API's metadata queries take field = 'value' conditions joined by AND"));
            }
            let v = toks
                .get(i + 2)
                .filter(|t| t.0)
                .ok_or_else(|| malformed(format!("a quoted value is expected after {f} =")))?;
            filters.push((f.to_string(), v.1.clone()));
            i += 3;
            if is(i, "AND") {
                i += 1;
            } else {
                break;
            }
        }
    }
    let mut limit = None;
    if is(i, "LIMIT") {
        limit = Some(
            word(i + 1)
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| malformed("LIMIT takes a non-negative integer"))?,
        );
        i += 2;
    }
    if let Some(t) = toks.get(i) {
        return Err(malformed(format!("unexpected token '{}'", t.1)));
    }
    Ok(ToolingQuery {
        fields,
        from,
        filters,
        limit,
    })
}

fn developer_name(api_name: &str) -> &str {
    api_name.strip_suffix("__c").unwrap_or(api_name)
}

async fn tooling_query(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    q: QueryMap,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let text = q.0.get("q").ok_or_else(|| {
        MosaicError::field(
            ErrorCode::INVALID_INPUT,
            "q",
            "q is required: a Tooling API query",
        )
    })?;
    let tq = parse_tooling(text)?;
    let kind = if tq.from.eq_ignore_ascii_case("CustomObject") {
        "CustomObject"
    } else if tq.from.eq_ignore_ascii_case("CustomField") {
        "CustomField"
    } else {
        return Err(ApiError::new(
            ErrorCode::INVALID_TYPE,
            format!(
                "sObject type '{}' is not supported. Mosaic's Tooling API queries CustomObject and CustomField.",
                tq.from.chars().take(80).collect::<String>()
            ),
        ));
    };
    let allowed: &[&str] = if kind == "CustomObject" {
        &[
            "Id",
            "DeveloperName",
            "NamespacePrefix",
            "Description",
            "ExternalName",
        ]
    } else {
        &[
            "Id",
            "DeveloperName",
            "NamespacePrefix",
            "Description",
            "TableEnumOrId",
            "DataType",
            "Length",
            "Precision",
            "Scale",
        ]
    };
    let canon = |f: &str| -> Result<&'static str, ApiError> {
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(f))
            .copied()
            .ok_or_else(|| {
                ApiError::from(MosaicError::field(
                    ErrorCode::INVALID_FIELD,
                    f.chars().take(80).collect::<String>(),
                    format!(
                        "No such column '{}' on entity '{kind}'",
                        f.chars().take(80).collect::<String>()
                    ),
                ))
            })
    };
    let fields: Vec<&str> = tq
        .fields
        .iter()
        .map(|f| canon(f))
        .collect::<Result<_, _>>()?;
    let filters: Vec<(&str, &str)> = tq
        .filters
        .iter()
        .map(|(f, val)| Ok((canon(f)?, val.as_str())))
        .collect::<Result<_, ApiError>>()?;
    // Definitions the caller may see, as rows of field → value.
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    for o in s.platform.meta.objects(&c.tenant_id).await?.iter() {
        if !c.perms.can_read_object(o.id()) {
            continue;
        }
        let d = &o.def;
        if kind == "CustomObject" {
            let mut m = Map::new();
            m.insert("Id".into(), json!(d.id));
            m.insert("DeveloperName".into(), json!(developer_name(&d.api_name)));
            m.insert("NamespacePrefix".into(), Value::Null);
            m.insert("Description".into(), json!(d.description));
            m.insert("ExternalName".into(), Value::Null);
            m.insert("_table".into(), json!(d.api_name));
            rows.push(m);
            continue;
        }
        for f in &d.fields {
            if !access::can_read_field(&c, f) {
                continue;
            }
            let mut m = Map::new();
            m.insert("Id".into(), json!(f.id));
            m.insert("DeveloperName".into(), json!(developer_name(&f.api_name)));
            m.insert("NamespacePrefix".into(), Value::Null);
            m.insert("Description".into(), json!(f.description));
            m.insert("TableEnumOrId".into(), json!(d.id));
            m.insert("DataType".into(), json!(f.data_type.soap_type()));
            m.insert("Length".into(), json!(f.length));
            m.insert("Precision".into(), json!(f.precision));
            m.insert("Scale".into(), json!(f.scale));
            m.insert("_table".into(), json!(d.api_name));
            rows.push(m);
        }
    }
    let matches = |m: &Map<String, Value>, f: &str, want: &str| -> bool {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let hit = text(m.get(f)).is_some_and(|t| t.eq_ignore_ascii_case(want));
        // TableEnumOrId also matches the object's API name.
        hit || (f == "TableEnumOrId"
            && text(m.get("_table")).is_some_and(|t| t.eq_ignore_ascii_case(want)))
    };
    let mut records: Vec<Value> = rows
        .into_iter()
        .filter(|m| filters.iter().all(|(f, want)| matches(m, f, want)))
        .map(|m| {
            let id = m.get("Id").and_then(Value::as_str).unwrap_or("").to_string();
            let mut r = Map::new();
            r.insert(
                "attributes".into(),
                json!({"type": kind, "url": format!("/services/data/{v}/tooling/sobjects/{kind}/{id}")}),
            );
            for f in &fields {
                r.insert(f.to_string(), m.get(*f).cloned().unwrap_or(Value::Null));
            }
            Value::Object(r)
        })
        .collect();
    if let Some(n) = tq.limit {
        records.truncate(n);
    }
    Ok(Json(json!({
        "size": records.len(),
        "totalSize": records.len(),
        "done": true,
        "queryLocator": null,
        "entityTypeName": kind,
        "records": records,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tooling_queries() {
        let q = parse_tooling("SELECT Id, DeveloperName FROM CustomField WHERE TableEnumOrId = 'Deal__c' AND DeveloperName = 'It\\'s' LIMIT 5").unwrap();
        assert_eq!(q.fields, ["Id", "DeveloperName"]);
        assert_eq!(q.from, "CustomField");
        assert_eq!(
            q.filters,
            [
                ("TableEnumOrId".to_string(), "Deal__c".to_string()),
                ("DeveloperName".to_string(), "It's".to_string())
            ]
        );
        assert_eq!(q.limit, Some(5));
        for bad in [
            "",
            "SELECT",
            "SELECT Id",
            "SELECT Id FROM",
            "SELECT Id FROM X WHERE A > 'b'",
            "SELECT Id FROM X LIMIT x",
            "SELECT Id FROM X 'y'",
            "SELECT Id FROM X WHERE A = 'b",
        ] {
            assert!(parse_tooling(bad).is_err(), "{bad}");
        }
    }
}
