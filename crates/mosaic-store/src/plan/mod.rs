//! The SOQL planner: resolves a parsed `mosaic_soql::Query` against object
//! metadata (passed in as the plain structs of this module, so the planner
//! needs no metadata service and no I/O) and produces a backend-neutral
//! [`QueryPlan`] plus the shape the runtime renders results in.
//!
//! **Architecture Invariant:** planning is pure and total: any input either
//! plans or fails with a `MosaicError` (MALFORMED_QUERY, INVALID_FIELD,
//! INVALID_TYPE); it never panics. The `soql_plan` fuzz target checks this
//! and that every plan's SQL prepares.

mod bind;

use crate::query_store::{ColumnRef, QueryPlan};
use chrono::{NaiveDate, Weekday};
use mosaic_types::{DataType, FlexSlot};

pub use bind::{plan_parsed, plan_query, plan_search_object};

/// One field of an object, as the planner needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaField {
    pub api_name: String,
    pub data_type: DataType,
    /// `None` for computed fields (formula, roll-up).
    pub slot: Option<FlexSlot>,
    /// Mirrored in `record_index` (indexed, external id, lookups).
    pub indexed: bool,
    /// Mirrored in `record_unique`.
    pub unique: bool,
    pub lookup_object_id: Option<String>,
    /// Child → parent name (`Account__r`).
    pub relationship_name: Option<String>,
    /// Parent → children name (`Contacts__r`).
    pub child_relationship_name: Option<String>,
    /// A roll-up summary field: how it is computed (filter and sort).
    pub rollup: Option<crate::query_store::RollupSpec>,
}

/// One object.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaObject {
    pub id: String,
    pub api_name: String,
    pub fields: Vec<SchemaField>,
}

impl SchemaObject {
    pub fn field(&self, name: &str) -> Option<&SchemaField> {
        self.fields
            .iter()
            .find(|f| f.api_name.eq_ignore_ascii_case(name))
    }
}

/// Every object of a tenant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    pub objects: Vec<SchemaObject>,
}

impl Schema {
    pub fn by_name(&self, name: &str) -> Option<&SchemaObject> {
        self.objects
            .iter()
            .find(|o| o.api_name.eq_ignore_ascii_case(name))
    }
    pub fn by_id(&self, id: &str) -> Option<&SchemaObject> {
        self.objects.iter().find(|o| o.id == id)
    }
}

/// What a query is planned against besides metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanContext {
    /// "Today" in the caller's time zone (date literals).
    pub today: NaiveDate,
    /// The caller's zone (the user's, else the tenant's, else UTC): date
    /// literals on datetime fields become UTC instants in it, daylight
    /// saving included.
    pub zone: chrono_tz::Tz,
    pub week_start: Weekday,
    /// queryAll: deleted records too.
    pub include_deleted: bool,
    /// First month (1–12) of the tenant's fiscal year (fiscal date literals).
    pub fiscal_start_month: u32,
    /// The caller's user id (`USING SCOPE mine`); `None` outside a user session.
    pub user_id: Option<String>,
}

/// The users a relationship path may end in (`Owner`, `CreatedBy`, …);
/// resolved after fetch, in one batch per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserField {
    Id,
    Name,
    Username,
    Email,
    IsActive,
}

impl UserField {
    pub fn by_name(name: &str) -> Option<UserField> {
        [
            ("Id", UserField::Id),
            ("Name", UserField::Name),
            ("Username", UserField::Username),
            ("Email", UserField::Email),
            ("IsActive", UserField::IsActive),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, f)| f)
    }
    pub fn api_name(self) -> &'static str {
        match self {
            UserField::Id => "Id",
            UserField::Name => "Name",
            UserField::Username => "Username",
            UserField::Email => "Email",
            UserField::IsActive => "IsActive",
        }
    }
}

/// One relationship hop of an output path.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    /// Relationship name as defined (`Account__r`, `Owner`).
    pub name: String,
    /// Target object api name, or `User`.
    pub object: String,
    /// Index in the plan's select list of the target's id (null = no parent).
    pub id_select: usize,
}

/// How one SELECT item is rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputItem {
    /// A stored or system field, possibly through parents.
    Field {
        hops: Vec<Hop>,
        /// Canonical field name (`Name`, `Amount__c`).
        name: String,
        /// Object id owning the field (to find its definition when rendering).
        object_id: String,
        select: usize,
    },
    /// A formula field: computed after fetch (hook for the formula engine).
    Formula {
        hops: Vec<Hop>,
        name: String,
        object_id: String,
        /// Select index of the owning record's id.
        id_select: usize,
    },
    /// A field of a user reached through `Owner` / `CreatedBy` / `LastModifiedBy`:
    /// the last hop's `id_select` is the user id.
    User { hops: Vec<Hop>, field: UserField },
    /// A child relationship subquery.
    Child(Box<ChildPlan>),
    /// An aggregate query column (group field or aggregate).
    Aggregate { name: String, select: usize },
}

/// A parent → children subquery: run once per page for all its parents.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildPlan {
    /// Relationship name as defined (`Contacts__r`).
    pub name: String,
    pub object_api_name: String,
    pub plan: QueryPlan,
    /// The child's lookup column pointing at the parent (also in `plan.select`).
    pub link: ColumnRef,
    pub link_select: usize,
    pub items: Vec<OutputItem>,
    /// Per parent.
    pub limit: Option<u64>,
    pub offset: u64,
}

/// A planned SOQL statement.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedQuery {
    pub object_id: String,
    pub object_api_name: String,
    pub plan: QueryPlan,
    pub items: Vec<OutputItem>,
    /// `SELECT COUNT() …`: the result is a size, not rows.
    pub count_only: bool,
    /// `FOR VIEW` / `FOR REFERENCE`: the records returned go on the
    /// caller's recently viewed list.
    pub marks_recent: bool,
}
