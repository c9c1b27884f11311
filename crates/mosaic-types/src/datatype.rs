//! Field data types and the flex-column pool each one is stored in.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The data type of a field, as named in the metadata API (`data_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Text,
    Textarea,
    RichText,
    LongText,
    Number,
    Currency,
    Percent,
    Date,
    Datetime,
    Time,
    Boolean,
    Picklist,
    MultiPicklist,
    Lookup,
    MasterDetail,
    Formula,
    RollupSummary,
    AutoNumber,
    Email,
    Phone,
    Url,
    EncryptedText,
    Geolocation,
}

/// The flex-column pools of the record table. Pool sizes are the number of
/// slots one object may use in that pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotPool {
    String,
    Number,
    Date,
    Datetime,
    Boolean,
    Clob,
}

impl SlotPool {
    pub const ALL: [SlotPool; 6] = [
        SlotPool::String,
        SlotPool::Number,
        SlotPool::Date,
        SlotPool::Datetime,
        SlotPool::Boolean,
        SlotPool::Clob,
    ];

    /// Slots per object in this pool (the physical column count).
    pub const fn capacity(self) -> u16 {
        match self {
            SlotPool::String => 100,
            SlotPool::Number => 50,
            SlotPool::Date => 20,
            SlotPool::Datetime => 20,
            SlotPool::Boolean => 20,
            SlotPool::Clob => 10,
        }
    }

    pub const fn column_prefix(self) -> &'static str {
        match self {
            SlotPool::String => "flex_string_",
            SlotPool::Number => "flex_number_",
            SlotPool::Date => "flex_date_",
            SlotPool::Datetime => "flex_datetime_",
            SlotPool::Boolean => "flex_boolean_",
            SlotPool::Clob => "flex_clob_",
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            SlotPool::String => "string",
            SlotPool::Number => "number",
            SlotPool::Date => "date",
            SlotPool::Datetime => "datetime",
            SlotPool::Boolean => "boolean",
            SlotPool::Clob => "clob",
        }
    }
}

impl fmt::Display for SlotPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl DataType {
    pub const ALL: [DataType; 23] = [
        DataType::Text,
        DataType::Textarea,
        DataType::RichText,
        DataType::LongText,
        DataType::Number,
        DataType::Currency,
        DataType::Percent,
        DataType::Date,
        DataType::Datetime,
        DataType::Time,
        DataType::Boolean,
        DataType::Picklist,
        DataType::MultiPicklist,
        DataType::Lookup,
        DataType::MasterDetail,
        DataType::Formula,
        DataType::RollupSummary,
        DataType::AutoNumber,
        DataType::Email,
        DataType::Phone,
        DataType::Url,
        DataType::EncryptedText,
        DataType::Geolocation,
    ];

    /// The pool a stored field of this type draws its slot from; `None` for
    /// computed types (formula, roll-up summary) which use no slot.
    pub const fn pool(self) -> Option<SlotPool> {
        use DataType::*;
        match self {
            Text | Textarea | Picklist | MultiPicklist | Lookup | MasterDetail | AutoNumber
            | Email | Phone | Url | EncryptedText | Time | Geolocation => Some(SlotPool::String),
            RichText | LongText => Some(SlotPool::Clob),
            Number | Currency | Percent => Some(SlotPool::Number),
            Date => Some(SlotPool::Date),
            Datetime => Some(SlotPool::Datetime),
            Boolean => Some(SlotPool::Boolean),
            Formula | RollupSummary => None,
        }
    }

    /// Computed on read (formula, roll-up summary): no slot, never written.
    pub const fn is_computed(self) -> bool {
        matches!(self, DataType::Formula | DataType::RollupSummary)
    }

    pub fn as_str(self) -> &'static str {
        use DataType::*;
        match self {
            Text => "text",
            Textarea => "textarea",
            RichText => "rich_text",
            LongText => "long_text",
            Number => "number",
            Currency => "currency",
            Percent => "percent",
            Date => "date",
            Datetime => "datetime",
            Time => "time",
            Boolean => "boolean",
            Picklist => "picklist",
            MultiPicklist => "multi_picklist",
            Lookup => "lookup",
            MasterDetail => "master_detail",
            Formula => "formula",
            RollupSummary => "rollup_summary",
            AutoNumber => "auto_number",
            Email => "email",
            Phone => "phone",
            Url => "url",
            EncryptedText => "encrypted_text",
            Geolocation => "geolocation",
        }
    }

    pub fn parse(s: &str) -> Option<DataType> {
        DataType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// The type name the Data API's describe reports (Salesforce's names).
    pub fn soap_type(self) -> &'static str {
        use DataType::*;
        match self {
            Text | AutoNumber => "string",
            Textarea | RichText | LongText => "textarea",
            Number => "double",
            Currency => "currency",
            Percent => "percent",
            Date => "date",
            Datetime => "datetime",
            Time => "time",
            Boolean => "boolean",
            Picklist => "picklist",
            MultiPicklist => "multipicklist",
            Lookup | MasterDetail => "reference",
            Formula => "calculated",
            RollupSummary => "summary",
            Email => "email",
            Phone => "phone",
            Url => "url",
            EncryptedText => "encryptedstring",
            Geolocation => "location",
        }
    }

    pub const fn is_reference(self) -> bool {
        matches!(self, DataType::Lookup | DataType::MasterDetail)
    }

    /// Text-like types whose equality is case-insensitive in queries and
    /// uniqueness checks, as in Salesforce.
    pub const fn is_text_like(self) -> bool {
        use DataType::*;
        matches!(
            self,
            Text | Textarea | Email | Phone | Url | Picklist | AutoNumber
        )
    }

    /// Types that may be indexed / unique / external id.
    pub const fn indexable(self) -> bool {
        use DataType::*;
        matches!(
            self,
            Text | Email
                | Phone
                | Url
                | Picklist
                | Number
                | Currency
                | Percent
                | Date
                | Datetime
                | Lookup
                | MasterDetail
                | AutoNumber
                | Boolean
                | Time
        )
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in DataType::ALL {
            assert_eq!(DataType::parse(t.as_str()), Some(t));
            let j = serde_json::to_string(&t).unwrap();
            assert_eq!(j, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(DataType::parse("varchar"), None);
    }

    #[test]
    fn computed_types_use_no_slot() {
        assert_eq!(DataType::Formula.pool(), None);
        assert_eq!(DataType::RollupSummary.pool(), None);
        assert_eq!(DataType::Currency.pool(), Some(SlotPool::Number));
    }
}
