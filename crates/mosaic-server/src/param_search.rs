//! `parameterizedSearch`: Salesforce's search by parameters instead of a
//! SOSL statement (`GET ?q=…&sobject=…&Account.fields=…` or a JSON body on
//! `POST`). The parameters are checked and turned into one SOSL statement
//! that runs through the same search as `search?q=FIND {…}`, so permissions,
//! limits and the `searchRecords` answer are the same.

use crate::auth::Auth;
use crate::data::version;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};
use crate::query::record_json;
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use mosaic_types::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most objects one search may name (`sobject` / `sobjects`).
pub const MAX_SEARCH_OBJECTS: usize = 20;
/// Most fields one object (or the global `fields`) may list.
pub const MAX_SEARCH_FIELDS: usize = 100;
/// Largest `overallLimit` / `defaultLimit` / per-object limit (Salesforce: 2000).
pub const MAX_SEARCH_LIMIT: u32 = 2000;
/// Longest per-object `where` condition, in bytes.
pub const MAX_WHERE_LEN: usize = 4000;

/// One object to search and what to return of it.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchObject {
    pub name: String,
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default, rename = "where")]
    pub where_: Option<String>,
}

/// The parameters, as the POST body carries them.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SearchParams {
    pub q: String,
    #[serde(default, rename = "in")]
    pub in_: Option<String>,
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub sobjects: Vec<SearchObject>,
    #[serde(default)]
    pub overall_limit: Option<u32>,
    #[serde(default)]
    pub default_limit: Option<u32>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::INVALID_INPUT, msg)
}

fn limit_of(name: &str, raw: &str) -> Result<u32, ApiError> {
    raw.trim()
        .parse::<u32>()
        .map_err(|_| bad(format!("{name}: expected a whole number, found '{raw}'")))
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl SearchParams {
    /// Reads the GET form: `q`, `in`, `fields`, `overallLimit`,
    /// `defaultLimit`, `sobject` (repeated or comma-separated) and per
    /// object `{Object}.fields`, `{Object}.limit`, `{Object}.where`.
    pub fn from_query(pairs: &[(String, String)]) -> Result<SearchParams, ApiError> {
        let mut p = SearchParams::default();
        let mut q = None;
        for (k, v) in pairs {
            match k.as_str() {
                "q" => q = Some(v.clone()),
                "in" => p.in_ = Some(v.clone()),
                "fields" => p.fields = list(v),
                "overallLimit" => p.overall_limit = Some(limit_of(k, v)?),
                "defaultLimit" => p.default_limit = Some(limit_of(k, v)?),
                "sobject" => {
                    for name in list(v) {
                        if !p
                            .sobjects
                            .iter()
                            .any(|o| o.name.eq_ignore_ascii_case(&name))
                        {
                            p.sobjects.push(SearchObject {
                                name,
                                ..SearchObject::default()
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        for (k, v) in pairs {
            let Some((obj, what)) = k.rsplit_once('.') else {
                if ![
                    "q",
                    "in",
                    "fields",
                    "overallLimit",
                    "defaultLimit",
                    "sobject",
                ]
                .contains(&k.as_str())
                {
                    return Err(bad(format!("unknown parameter '{k}'")));
                }
                continue;
            };
            let Some(o) = p
                .sobjects
                .iter_mut()
                .find(|o| o.name.eq_ignore_ascii_case(obj))
            else {
                return Err(bad(format!(
                    "parameter '{k}' names {obj}, which is not one of the sobject parameters"
                )));
            };
            match what {
                "fields" => o.fields = list(v),
                "limit" => o.limit = Some(limit_of(k, v)?),
                "where" => o.where_ = Some(v.clone()),
                _ => return Err(bad(format!("unknown parameter '{k}'"))),
            }
        }
        p.q = q.ok_or_else(|| bad("q: a search string is required"))?;
        Ok(p)
    }

    /// The SOSL statement these parameters mean.
    pub fn to_sosl(&self) -> Result<String, ApiError> {
        let term = self.q.trim();
        if term.is_empty() {
            return Err(bad("q: a search string is required"));
        }
        let mut sosl = String::from("FIND {");
        for ch in term.chars() {
            if matches!(ch, '{' | '}' | '\\') {
                sosl.push('\\');
            }
            sosl.push(ch);
        }
        sosl.push('}');
        if let Some(scope) = &self.in_ {
            let kw = match scope.to_ascii_uppercase().as_str() {
                "ALL" => "ALL",
                "NAME" => "NAME",
                "EMAIL" => "EMAIL",
                "PHONE" => "PHONE",
                // The sidebar searches name fields (Salesforce's definition).
                "SIDEBAR" => "NAME",
                _ => {
                    return Err(bad(format!(
                        "in: expected ALL, NAME, EMAIL, PHONE or SIDEBAR, found '{scope}'"
                    )))
                }
            };
            sosl.push_str(&format!(" IN {kw} FIELDS"));
        }
        if self.sobjects.len() > MAX_SEARCH_OBJECTS {
            return Err(bad(format!(
                "sobjects: at most {MAX_SEARCH_OBJECTS} objects, found {}",
                self.sobjects.len()
            )));
        }
        check_fields("fields", &self.fields)?;
        let default_limit = self
            .default_limit
            .map(|l| check_limit("defaultLimit", l))
            .transpose()?;
        let mut returning = Vec::with_capacity(self.sobjects.len());
        for o in &self.sobjects {
            if !is_name(&o.name) {
                return Err(bad(format!("sobjects: '{}' is not an object name", o.name)));
            }
            let fields = if o.fields.is_empty() {
                &self.fields
            } else {
                &o.fields
            };
            check_fields(&format!("{}.fields", o.name), fields)?;
            let mut inner = fields.join(", ");
            if let Some(w) = &o.where_ {
                if w.len() > MAX_WHERE_LEN || w.trim().is_empty() {
                    return Err(bad(format!(
                        "{}.where: a condition of 1 to {MAX_WHERE_LEN} bytes is required",
                        o.name
                    )));
                }
                if inner.is_empty() {
                    inner.push_str("Id");
                }
                inner.push_str(&format!(" WHERE {w}"));
            }
            let limit = match o.limit {
                Some(l) => Some(check_limit(&format!("{}.limit", o.name), l)?),
                None => default_limit,
            };
            if let Some(l) = limit {
                if inner.is_empty() {
                    inner.push_str("Id");
                }
                inner.push_str(&format!(" LIMIT {l}"));
            }
            returning.push(if inner.is_empty() {
                o.name.clone()
            } else {
                format!("{}({inner})", o.name)
            });
        }
        if !returning.is_empty() {
            sosl.push_str(" RETURNING ");
            sosl.push_str(&returning.join(", "));
        }
        if let Some(l) = self.overall_limit {
            sosl.push_str(&format!(" LIMIT {}", check_limit("overallLimit", l)?));
        }
        Ok(sosl)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !s.starts_with('.')
        && !s.ends_with('.')
}

fn check_fields(what: &str, fields: &[String]) -> Result<(), ApiError> {
    if fields.len() > MAX_SEARCH_FIELDS {
        return Err(bad(format!(
            "{what}: at most {MAX_SEARCH_FIELDS} fields, found {}",
            fields.len()
        )));
    }
    match fields.iter().find(|f| !is_name(f)) {
        Some(f) => Err(bad(format!("{what}: '{f}' is not a field name"))),
        None => Ok(()),
    }
}

fn check_limit(what: &str, l: u32) -> Result<u32, ApiError> {
    if l == 0 || l > MAX_SEARCH_LIMIT {
        return Err(bad(format!(
            "{what}: expected 1 to {MAX_SEARCH_LIMIT}, found {l}"
        )));
    }
    Ok(l)
}

async fn run(
    s: &AppState,
    c: &mosaic_runtime::Caller,
    v: &str,
    p: &SearchParams,
) -> Result<Json<Value>, ApiError> {
    let sosl = p.to_sosl()?;
    let records = s.platform.search(c, &sosl).await?;
    Ok(Json(json!({
        "searchRecords": records.iter().map(|r| record_json(v, r)).collect::<Vec<_>>(),
    })))
}

pub async fn get_search(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| bad(format!("malformed query string: {e}")))?;
    let p = SearchParams::from_query(&pairs)?;
    run(&s, &c, v, &p).await
}

pub async fn post_search(
    State(s): State<AppState>,
    PathParams(v): PathParams<String>,
    Auth(c): Auth,
    JsonBody(p): JsonBody<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    let v = version(&v)?;
    run(&s, &c, v, &p).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    #[test]
    fn get_parameters_become_one_sosl_statement() {
        let p = SearchParams::from_query(&pairs(
            "q=Acme&sobject=Account&Account.fields=Id,Name&Account.limit=10&sobject=Contact&fields=Id&in=NAME&overallLimit=50",
        ))
        .unwrap();
        assert_eq!(
            p.to_sosl().unwrap(),
            "FIND {Acme} IN NAME FIELDS RETURNING Account(Id, Name LIMIT 10), Contact(Id) LIMIT 50"
        );
    }

    #[test]
    fn braces_in_the_search_string_cannot_end_the_term() {
        let p = SearchParams::from_query(&pairs("q=a%7D+RETURNING+User")).unwrap();
        assert_eq!(p.to_sosl().unwrap(), "FIND {a\\} RETURNING User}");
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (q, want) in [
            ("sobject=Account", "q:"),
            ("q=a&overallLimit=0", "overallLimit"),
            ("q=a&overallLimit=x", "overallLimit"),
            ("q=a&in=EVERYWHERE", "in:"),
            ("q=a&Account.fields=Id", "Account.fields"),
            (
                "q=a&sobject=Account&Account.fields=Id;DROP",
                "Account.fields",
            ),
            ("q=a&what=1", "what"),
        ] {
            let err = SearchParams::from_query(&pairs(q)).and_then(|p| p.to_sosl());
            let msg = format!("{:?}", err.expect_err(q));
            assert!(msg.contains(want), "{q}: {msg}");
        }
    }
}
