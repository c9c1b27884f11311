//! Record forms: the right control per field type from the caller's
//! layout, filled from a record, a new record's defaults or what the user
//! typed (kept on errors); and the submitted form read back into the
//! record body the runtime takes, numbers and datetimes read in the user's
//! locale and zone. Read-only fields are never read from a submission.

use crate::display::Reader;
use crate::views::{FormSection, Input, Opt};
use chrono::{NaiveDateTime, TimeZone, Utc};
use mosaic_runtime::layouts::{CallerLayout, FieldView};
use mosaic_runtime::list_views::PageRow;
use mosaic_types::{DataType, Value};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// A submitted form: every (name, value) pair, repeated names kept.
pub type Submitted = Vec<(String, String)>;

/// Suffix of a lookup's visible name input.
pub const LOOKUP_NAME_SUFFIX: &str = "__name";

/// The values of a submitted field, in order.
pub fn values<'a>(form: &'a Submitted, name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The last value of a submitted field.
pub fn value<'a>(form: &'a Submitted, name: &str) -> Option<&'a str> {
    values(form, name).last().copied()
}

fn control(f: &FieldView) -> &'static str {
    if f.read_only {
        return "readonly";
    }
    match f.data_type() {
        DataType::Textarea | DataType::LongText | DataType::RichText => "textarea",
        DataType::Number | DataType::Currency | DataType::Percent => "number",
        DataType::Date => "date",
        DataType::Datetime => "datetime-local",
        DataType::Time => "time",
        DataType::Boolean => "checkbox",
        DataType::Picklist => "select",
        DataType::MultiPicklist => "multiselect",
        DataType::Lookup | DataType::MasterDetail => "lookup",
        DataType::Email => "email",
        DataType::Url => "url",
        DataType::Phone => "tel",
        DataType::EncryptedText => "password",
        DataType::Geolocation
        | DataType::Formula
        | DataType::AutoNumber
        | DataType::RollupSummary => "readonly",
        DataType::Text => "text",
    }
}

/// Where a form's values come from.
pub enum Source<'a> {
    /// A stored record (edit).
    Record(&'a PageRow),
    /// What the user submitted (kept on errors).
    Submitted(&'a Submitted),
    /// A new record: defaults, and values given in the URL.
    New(&'a HashMap<String, String>),
}

/// The value of a record's field as a form control holds it.
fn input_text(reader: &Reader, f: &FieldView, v: &Value) -> String {
    match (f.data_type(), v) {
        (_, Value::Null) => String::new(),
        (DataType::EncryptedText, _) => String::new(),
        (_, Value::Number(d)) => reader.locale.number(d),
        (_, Value::Date(d)) => d.format("%Y-%m-%d").to_string(),
        (_, Value::Datetime(d)) => d
            .with_timezone(&reader.zone)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        (_, Value::Time(t)) => t.format("%H:%M").to_string(),
        (_, Value::Boolean(b)) => b.to_string(),
        (_, Value::Text(s)) => s.clone(),
        (_, other) => reader.value(f, other).text,
    }
}

/// The form's sections with their controls.
pub fn sections(
    layout: &CallerLayout,
    reader: &Reader,
    source: &Source<'_>,
    errors: &HashMap<String, String>,
    theirs: &HashMap<String, String>,
) -> Vec<FormSection> {
    let mut first_error = true;
    layout
        .sections
        .iter()
        .map(|s| FormSection {
            label: s.label.clone(),
            columns: s.columns,
            inputs: s
                .items
                .iter()
                .filter(|f| {
                    !(matches!(source, Source::New(_))
                        && f.read_only
                        && f.def.is_none()
                        && f.name != "Name")
                })
                .map(|f| {
                    let mut i = input(f, reader, source);
                    if let Some(e) = errors.get(&f.name) {
                        i.error = Some(e.clone());
                        i.autofocus = first_error;
                        first_error = false;
                    }
                    i.theirs = theirs.get(&f.name).cloned();
                    i
                })
                .collect(),
        })
        .collect()
}

fn input(f: &FieldView, reader: &Reader, source: &Source<'_>) -> Input {
    let kind = control(f);
    let def = f.def.as_ref();
    let mut i = Input {
        name: f.name.clone(),
        id: format!("f-{}", f.name),
        label: f.label.clone(),
        kind,
        required: f.required,
        maxlength: def
            .filter(|d| d.data_type.is_text_like() || d.data_type == DataType::EncryptedText)
            .and_then(|d| d.length)
            .or_else(|| (f.name == "Name").then_some(255)),
        help: def.and_then(|d| d.help_text.clone()),
        lookup_object: String::new(),
        ..Input::default()
    };
    let (raw, name_text): (Vec<String>, String) = match source {
        Source::Record(row) => {
            let v = row.value(&f.name);
            let text = if kind == "readonly" {
                match v {
                    Value::Null => String::new(),
                    other if f.is_reference() => row
                        .names
                        .get(&f.name)
                        .cloned()
                        .unwrap_or_else(|| input_text(reader, f, other)),
                    other => reader.value(f, other).text,
                }
            } else {
                input_text(reader, f, v)
            };
            let list = if f.data_type() == DataType::MultiPicklist {
                text.split(';').map(str::to_string).collect()
            } else {
                vec![text]
            };
            (list, row.names.get(&f.name).cloned().unwrap_or_default())
        }
        Source::Submitted(form) => (
            values(form, &f.name)
                .iter()
                .map(|s| s.to_string())
                .collect(),
            value(form, &format!("{}{LOOKUP_NAME_SUFFIX}", f.name))
                .unwrap_or_default()
                .to_string(),
        ),
        Source::New(given) => {
            let given_v = given.get(&f.name).cloned();
            let default: Vec<String> = match (given_v, def) {
                (Some(v), _) => vec![v],
                (None, Some(d)) if !d.picklist_values.is_empty() => d
                    .picklist_values
                    .iter()
                    .filter(|p| p.is_default && p.is_active)
                    .map(|p| p.value.clone())
                    .collect(),
                (None, Some(d)) => d
                    .default_value
                    .as_ref()
                    .map(|v| match v {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .into_iter()
                    .collect(),
                _ => Vec::new(),
            };
            (
                default,
                given
                    .get(&format!("{}{LOOKUP_NAME_SUFFIX}", f.name))
                    .cloned()
                    .unwrap_or_default(),
            )
        }
    };
    let last = raw.last().cloned().unwrap_or_default();
    match kind {
        "checkbox" => {
            i.checked = raw.iter().any(|v| v == "1" || v == "true");
        }
        "select" | "multiselect" => {
            let chosen: Vec<&str> = raw
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(d) = def {
                i.options = d
                    .picklist_values
                    .iter()
                    .filter(|p| p.is_active || chosen.contains(&p.value.as_str()))
                    .map(|p| Opt {
                        value: p.value.clone(),
                        label: p.label.clone(),
                        selected: chosen.contains(&p.value.as_str()),
                    })
                    .collect();
            }
            // A stored value no longer in the list stays choosable.
            for c in &chosen {
                if !i.options.iter().any(|o| o.value == *c) {
                    i.options.push(Opt {
                        value: c.to_string(),
                        label: c.to_string(),
                        selected: true,
                    });
                }
            }
        }
        "lookup" => {
            i.value = last;
            i.lookup_name = name_text;
            i.lookup_object = def
                .and_then(|d| d.lookup_object_id.clone())
                .unwrap_or_default();
        }
        "password" => {
            i.placeholder = "Unchanged unless you type a new value".into();
        }
        _ => i.value = last,
    }
    i
}

/// A submitted form read into a record body for the runtime, with the
/// fields whose input is unusable (a lookup name matching no record)
/// reported by name. `resolve` finds a record id by exact name for a
/// lookup typed without the type-ahead (target object id, name).
pub fn body(
    layout: &CallerLayout,
    reader: &Reader,
    form: &Submitted,
    creating: bool,
    resolved: &HashMap<String, String>,
) -> (Map<String, Json>, HashMap<String, String>) {
    let mut out = Map::new();
    let mut errors = HashMap::new();
    for f in layout.fields().filter(|f| control(f) != "readonly") {
        let vals = values(form, &f.name);
        let last = vals.last().map(|s| s.trim()).unwrap_or("");
        let v: Json = match f.data_type() {
            DataType::Boolean => Json::Bool(vals.contains(&"1")),
            DataType::MultiPicklist => {
                let chosen: Vec<&str> = vals.iter().copied().filter(|s| !s.is_empty()).collect();
                if chosen.is_empty() {
                    Json::Null
                } else {
                    Json::String(chosen.join(";"))
                }
            }
            _ if last.is_empty() => {
                if f.data_type() == DataType::EncryptedText && !creating {
                    continue; // unchanged
                }
                if f.is_reference() {
                    let typed = value(form, &format!("{}{LOOKUP_NAME_SUFFIX}", f.name))
                        .unwrap_or_default()
                        .trim();
                    if !typed.is_empty() {
                        match resolved.get(&f.name) {
                            Some(id) => {
                                out.insert(f.name.clone(), Json::String(id.clone()));
                            }
                            None => {
                                errors.insert(
                                    f.name.clone(),
                                    format!("No single record is named “{typed}”; pick one of the suggestions."),
                                );
                            }
                        }
                        continue;
                    }
                }
                if !vals.is_empty() || !creating {
                    Json::Null
                } else {
                    continue;
                }
            }
            DataType::Number | DataType::Currency | DataType::Percent => {
                let n = reader.locale.parse_number(last);
                serde_json::from_str::<serde_json::Number>(&n)
                    .map(Json::Number)
                    .unwrap_or(Json::String(last.to_string()))
            }
            DataType::Datetime => match NaiveDateTime::parse_from_str(last, "%Y-%m-%dT%H:%M")
                .or_else(|_| NaiveDateTime::parse_from_str(last, "%Y-%m-%dT%H:%M:%S"))
            {
                Ok(local) => match reader.zone.from_local_datetime(&local).earliest() {
                    Some(t) => Json::String(
                        t.with_timezone(&Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    ),
                    None => Json::String(last.to_string()),
                },
                Err(_) => Json::String(last.to_string()),
            },
            _ => Json::String(last.to_string()),
        };
        out.insert(f.name.clone(), v);
    }
    (out, errors)
}

/// Lookups typed by name (no id chosen): (field, target object id, name).
pub fn typed_lookups(layout: &CallerLayout, form: &Submitted) -> Vec<(String, String, String)> {
    layout
        .fields()
        .filter(|f| !f.read_only && f.is_reference())
        .filter(|f| value(form, &f.name).is_none_or(|v| v.trim().is_empty()))
        .filter_map(|f| {
            let typed = value(form, &format!("{}{LOOKUP_NAME_SUFFIX}", f.name))?.trim();
            let target = f.def.as_ref()?.lookup_object_id.clone()?;
            (!typed.is_empty()).then(|| (f.name.clone(), target, typed.to_string()))
        })
        .collect()
}
