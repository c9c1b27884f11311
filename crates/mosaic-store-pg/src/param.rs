//! A bound parameter of a statement built at run time (records, queries):
//! one value of any type the shard's columns hold, so a statement's
//! parameters fit in one `Vec`.

use chrono::{DateTime, NaiveDate, Utc};
use std::error::Error;
use tokio_postgres::types::private::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(Option<String>),
    Bool(Option<bool>),
    Int(Option<i64>),
    Date(Option<NaiveDate>),
    Time(Option<DateTime<Utc>>),
    TextArray(Vec<String>),
    Small(Option<i16>),
    Int4(Option<i32>),
    Bytes(Option<Vec<u8>>),
}

impl Param {
    pub(crate) fn text(s: impl Into<String>) -> Param {
        Param::Text(Some(s.into()))
    }

    /// The parameter as `statement()` shows it (diagnostics).
    pub(crate) fn display(&self) -> String {
        fn or_null<T>(v: &Option<T>, f: impl Fn(&T) -> String) -> String {
            v.as_ref().map_or_else(|| "NULL".to_string(), f)
        }
        match self {
            Param::Text(v) => or_null(v, |s| format!("'{s}'")),
            Param::Bool(v) => or_null(v, |b| b.to_string()),
            Param::Int(v) => or_null(v, |i| i.to_string()),
            Param::Date(v) => or_null(v, |d| format!("'{d}'")),
            Param::Time(v) => or_null(v, |t| {
                format!("'{}'", mosaic_types::value::format_datetime(t))
            }),
            Param::TextArray(v) => format!("{v:?}"),
            Param::Small(v) => or_null(v, |i| i.to_string()),
            Param::Int4(v) => or_null(v, |i| i.to_string()),
            Param::Bytes(v) => or_null(v, |b| format!("<{} bytes>", b.len())),
        }
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Param::Text(v) => v.to_sql(ty, out),
            Param::Bool(v) => v.to_sql(ty, out),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Date(v) => v.to_sql(ty, out),
            Param::Time(v) => v.to_sql(ty, out),
            Param::TextArray(v) => v.to_sql(ty, out),
            Param::Small(v) => v.to_sql(ty, out),
            Param::Int4(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Param::Text(v) => v.to_sql_checked(ty, out),
            Param::Bool(v) => v.to_sql_checked(ty, out),
            Param::Int(v) => v.to_sql_checked(ty, out),
            Param::Date(v) => v.to_sql_checked(ty, out),
            Param::Time(v) => v.to_sql_checked(ty, out),
            Param::TextArray(v) => v.to_sql_checked(ty, out),
            Param::Small(v) => v.to_sql_checked(ty, out),
            Param::Int4(v) => v.to_sql_checked(ty, out),
            Param::Bytes(v) => v.to_sql_checked(ty, out),
        }
    }
}

/// The parameters as the driver takes them.
pub(crate) fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}
