//! What the checker knows about fields: their kinds, supplied by the caller.

use std::collections::HashMap;

/// The kind of a field as the metadata layer defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    Text,
    TextArea,
    Number,
    Currency,
    Percent,
    Boolean,
    Date,
    Datetime,
    Time,
    Picklist,
    MultiPicklist,
    /// Lookup ids and the record Id.
    Id,
    Email,
    Phone,
    Url,
    /// A geolocation field. Only `DISTANCE` reads it as a whole; its parts
    /// are the Number fields `Name__Latitude__s` / `Name__Longitude__s`.
    Location,
}

/// The type of a formula expression. Currency and Percent fields are Numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormulaType {
    Text,
    Number,
    Boolean,
    Date,
    Datetime,
    Time,
    /// The type of the `NULL` literal: fits anywhere.
    Any,
}

impl FormulaType {
    /// The name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            FormulaType::Text => "Text",
            FormulaType::Number => "Number",
            FormulaType::Boolean => "Boolean",
            FormulaType::Date => "Date",
            FormulaType::Datetime => "Datetime",
            FormulaType::Time => "Time",
            FormulaType::Any => "Null",
        }
    }
}

impl FieldKind {
    /// The formula type a value of this kind has.
    pub fn formula_type(self) -> FormulaType {
        match self {
            FieldKind::Text
            | FieldKind::TextArea
            | FieldKind::Picklist
            | FieldKind::MultiPicklist
            | FieldKind::Id
            | FieldKind::Email
            | FieldKind::Phone
            | FieldKind::Url => FormulaType::Text,
            FieldKind::Number | FieldKind::Currency | FieldKind::Percent => FormulaType::Number,
            FieldKind::Boolean => FormulaType::Boolean,
            FieldKind::Date => FormulaType::Date,
            FieldKind::Datetime => FormulaType::Datetime,
            FieldKind::Time => FormulaType::Time,
            // Never a formula value: the checker refuses a location outside
            // DISTANCE before asking for its type.
            FieldKind::Location => FormulaType::Any,
        }
    }
}

/// A field the schema recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedField {
    pub kind: FieldKind,
    /// Canonical api-name path; this is what [`crate::Record::get`] receives.
    pub canonical: Vec<String>,
}

/// What the caller tells the checker about fields. `path` is the api-name
/// path as the user wrote it, e.g. `["Account", "Owner", "Name"]`;
/// case-insensitive matching is the implementor's job.
pub trait Schema {
    fn resolve(&self, path: &[&str]) -> Option<ResolvedField>;
}

/// A schema built at run time from a list of paths and kinds, matched
/// case-insensitively. Used by tests and by ad-hoc evaluation without an
/// object (see [`DynamicSchema::from_sample`]).
#[derive(Debug, Clone, Default)]
pub struct DynamicSchema {
    fields: HashMap<Vec<String>, ResolvedField>,
}

impl DynamicSchema {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field whose canonical path is `path` split on dots.
    pub fn with_field(mut self, path: &str, kind: FieldKind) -> Self {
        self.add_field(path, kind);
        self
    }

    /// Adds a field whose canonical path is `path` split on dots.
    pub fn add_field(&mut self, path: &str, kind: FieldKind) {
        let canonical: Vec<String> = path.split('.').map(str::to_string).collect();
        let key = canonical.iter().map(|s| s.to_ascii_lowercase()).collect();
        self.fields.insert(key, ResolvedField { kind, canonical });
    }

    /// Types fields from sample values, as the evaluate endpoint needs when
    /// no object is involved: text, number and boolean values give those
    /// kinds; a null gives Text (ISO dates arrive as text, too).
    pub fn from_sample<'a>(values: impl IntoIterator<Item = (&'a str, &'a crate::FValue)>) -> Self {
        let mut schema = Self::new();
        for (path, value) in values {
            let kind = match value {
                crate::FValue::Number(_) => FieldKind::Number,
                crate::FValue::Boolean(_) => FieldKind::Boolean,
                crate::FValue::Date(_) => FieldKind::Date,
                crate::FValue::Datetime(_) => FieldKind::Datetime,
                crate::FValue::Time(_) => FieldKind::Time,
                crate::FValue::Text(_) | crate::FValue::Null => FieldKind::Text,
            };
            schema.add_field(path, kind);
        }
        schema
    }
}

impl Schema for DynamicSchema {
    fn resolve(&self, path: &[&str]) -> Option<ResolvedField> {
        let key: Vec<String> = path.iter().map(|s| s.to_ascii_lowercase()).collect();
        self.fields.get(&key).cloned()
    }
}
