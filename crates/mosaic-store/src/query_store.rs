//! The query store: runs a planned query (a [`QueryPlan`]) against a backend.
//!
//! A plan is backend-neutral: columns are system columns or flex slots, joins
//! follow lookup slots, filters carry typed [`Value`]s. Each backend turns a
//! plan into its own SQL dialect (SQLite: `sqlite_query.rs`); the planner
//! that builds plans from SOQL lives in [`crate::plan`].
//!
//! **Semantics every backend must keep** (SOQL's, two-valued): a predicate on
//! a null value is false, except `!=`, `NOT IN` and `EXCLUDES`, which are
//! true; `= null` / `!= null` test for null; `NOT` negates exactly. Text
//! compares case-insensitively (lower-cased with Rust's Unicode rules), numbers
//! exactly, ties in ORDER BY are broken by record id.

use async_trait::async_trait;
use mosaic_types::{FlexSlot, MosaicResult, Value};
use std::sync::Arc;

/// The system columns every record has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SysColumn {
    Id,
    Name,
    OwnerId,
    CreatedById,
    CreatedDate,
    LastModifiedById,
    LastModifiedDate,
    IsDeleted,
}

impl SysColumn {
    pub const ALL: [SysColumn; 8] = [
        SysColumn::Id,
        SysColumn::Name,
        SysColumn::OwnerId,
        SysColumn::CreatedById,
        SysColumn::CreatedDate,
        SysColumn::LastModifiedById,
        SysColumn::LastModifiedDate,
        SysColumn::IsDeleted,
    ];

    /// The Data API name (`Id`, `CreatedDate`, …).
    pub fn api_name(self) -> &'static str {
        match self {
            SysColumn::Id => "Id",
            SysColumn::Name => "Name",
            SysColumn::OwnerId => "OwnerId",
            SysColumn::CreatedById => "CreatedById",
            SysColumn::CreatedDate => "CreatedDate",
            SysColumn::LastModifiedById => "LastModifiedById",
            SysColumn::LastModifiedDate => "LastModifiedDate",
            SysColumn::IsDeleted => "IsDeleted",
        }
    }

    /// The physical column of the record table.
    pub fn column(self) -> &'static str {
        match self {
            SysColumn::Id => "id",
            SysColumn::Name => "name",
            SysColumn::OwnerId => "owner_id",
            SysColumn::CreatedById => "created_by",
            SysColumn::CreatedDate => "created_at",
            SysColumn::LastModifiedById => "modified_by",
            SysColumn::LastModifiedDate => "modified_at",
            SysColumn::IsDeleted => "is_deleted",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            SysColumn::Id
            | SysColumn::OwnerId
            | SysColumn::CreatedById
            | SysColumn::LastModifiedById => Kind::Id,
            SysColumn::Name => Kind::Text,
            SysColumn::CreatedDate | SysColumn::LastModifiedDate => Kind::Datetime,
            SysColumn::IsDeleted => Kind::Boolean,
        }
    }

    pub fn by_name(name: &str) -> Option<SysColumn> {
        SysColumn::ALL
            .into_iter()
            .find(|c| c.api_name().eq_ignore_ascii_case(name))
    }
}

/// A physical column: a system column or a flex slot — or a roll-up
/// summary, the plan's `rollups[i]` computed over the row's detail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Sys(SysColumn),
    Slot(FlexSlot),
    /// Only on the root row source (`source` 0).
    Rollup(u16),
}

/// A roll-up summary over the live detail records of a master-detail
/// relationship (decision 0039): COUNT (`arg` none), SUM, MIN or MAX of a
/// detail column, over the detail records meeting `filter`. Values are
/// those of a stored column of `kind` (numbers as exact decimals); COUNT
/// and SUM of no records are 0, MIN and MAX null.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupSpec {
    pub detail_object_id: String,
    /// The detail's master-detail slot (pivoted in `record_index`).
    pub link: FlexSlot,
    pub func: AggFn,
    /// A detail column (source 0 of the detail).
    pub arg: Option<ColumnRef>,
    /// Over the detail (source 0), no joins.
    pub filter: Option<Filter>,
    pub kind: Kind,
}

/// How a column's values compare and sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Record and user ids (lower-case UUID text), compared exactly.
    Id,
    /// Text compared case-insensitively.
    Text,
    /// `;`-joined multi-select picklist values.
    MultiPicklist,
    /// Exact decimals (stored as order-preserving keys).
    Number,
    Date,
    Datetime,
    Boolean,
    /// Time of day, canonical `HH:MM:SS.mmm` text.
    Time,
    /// Long text, encrypted text, locations: selectable, never filtered or sorted.
    Opaque,
}

/// Which pivot table mirrors a column (equality filters may go through it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pivot {
    Index,
    Unique,
}

/// A column of one row source: `source` 0 is the queried object, `n` is
/// `joins[n - 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColumnRef {
    pub source: usize,
    pub column: Column,
    pub kind: Kind,
    pub pivot: Option<Pivot>,
}

/// A parent row reached through a lookup slot of `from` (LEFT JOIN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub from: usize,
    pub via: FlexSlot,
    pub object_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFn {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

/// A SOQL date function (`CALENDAR_YEAR(CloseDate)`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateFn {
    CalendarYear = 0,
    CalendarQuarter,
    CalendarMonth,
    DayInMonth,
    /// 1 = Sunday … 7 = Saturday.
    DayInWeek,
    DayInYear,
    /// The date part of a datetime.
    DayOnly,
    HourInDay,
    /// Days 1–7 of the month are week 1, 8–14 week 2, …
    WeekInMonth,
    /// January 1–7 is week 1, January 8–14 week 2, …
    WeekInYear,
    FiscalYear,
    FiscalQuarter,
    FiscalMonth,
}

impl DateFn {
    pub const ALL: [DateFn; 13] = [
        DateFn::CalendarYear,
        DateFn::CalendarQuarter,
        DateFn::CalendarMonth,
        DateFn::DayInMonth,
        DateFn::DayInWeek,
        DateFn::DayInYear,
        DateFn::DayOnly,
        DateFn::HourInDay,
        DateFn::WeekInMonth,
        DateFn::WeekInYear,
        DateFn::FiscalYear,
        DateFn::FiscalQuarter,
        DateFn::FiscalMonth,
    ];
    /// A stable small number (SQLite's `mosaic_datefn` takes it).
    pub fn code(self) -> i64 {
        self as i64
    }
    pub fn from_code(code: i64) -> Option<DateFn> {
        usize::try_from(code)
            .ok()
            .and_then(|i| DateFn::ALL.get(i).copied())
    }
}

/// A date function applied to a date or datetime column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateCall {
    pub func: DateFn,
    pub arg: ColumnRef,
    /// `convertTimezone()`: the IANA zone a datetime is read in (else UTC).
    /// Only names of `chrono_tz` zones (letters, digits, `/_+-`).
    pub zone: Option<String>,
    /// First month (1–12) of the fiscal year; a fiscal year is named by the
    /// calendar year it ends in.
    pub fiscal_start: u32,
}

impl DateFn {
    /// The function's value for a local (already zone-converted) date-time,
    /// with the fiscal year starting in month `fiscal_start` (1–12).
    pub fn eval(self, fiscal_start: u32, local: chrono::NaiveDateTime) -> Value {
        use chrono::{Datelike, Timelike};
        let fiscal_start = fiscal_start.clamp(1, 12);
        let d = local.date();
        let month = d.month();
        let fiscal_month = (month + 12 - fiscal_start) % 12 + 1;
        let n = |x: u32| Value::Number(rust_decimal::Decimal::from(x));
        match self {
            DateFn::CalendarYear => Value::Number(rust_decimal::Decimal::from(d.year())),
            DateFn::CalendarQuarter => n(month.div_ceil(3)),
            DateFn::CalendarMonth => n(month),
            DateFn::DayInMonth => n(d.day()),
            DateFn::DayInWeek => n(d.weekday().num_days_from_sunday() + 1),
            DateFn::DayInYear => n(d.ordinal()),
            DateFn::DayOnly => Value::Date(d),
            DateFn::HourInDay => n(local.hour()),
            DateFn::WeekInMonth => n((d.day() - 1) / 7 + 1),
            DateFn::WeekInYear => n((d.ordinal() - 1) / 7 + 1),
            DateFn::FiscalYear => {
                let y = if fiscal_start > 1 && month >= fiscal_start {
                    d.year() + 1
                } else {
                    d.year()
                };
                Value::Number(rust_decimal::Decimal::from(y))
            }
            DateFn::FiscalQuarter => n(fiscal_month.div_ceil(3)),
            DateFn::FiscalMonth => n(fiscal_month),
        }
    }
}

impl DateCall {
    /// The kind of the function's values.
    pub fn kind(&self) -> Kind {
        if self.func == DateFn::DayOnly {
            Kind::Date
        } else {
            Kind::Number
        }
    }
}

/// Something a plan selects, filters or sorts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Column(ColumnRef),
    /// `arg` is `None` only for `COUNT()`.
    Aggregate {
        func: AggFn,
        arg: Option<ColumnRef>,
    },
    /// A date function of a column (aggregate queries: a group key).
    Date(Box<DateCall>),
    /// `GROUPING(key)` under ROLLUP / CUBE: 1 on rows where the group key
    /// (one of the plan's `group_by`) is rolled up into a subtotal, else 0.
    Grouping(Box<Expr>),
}

/// How a plan's group keys make groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupingSets {
    /// One row per distinct key combination.
    #[default]
    Plain,
    /// Plus subtotals dropping keys from the right, and a grand total.
    Rollup,
    /// Plus subtotals for every subset of the keys.
    Cube,
}

impl GroupingSets {
    /// The grouping sets over `n` keys as masks (`true`: the key is kept),
    /// most detailed first.
    pub fn sets(self, n: usize) -> Vec<Vec<bool>> {
        match self {
            GroupingSets::Plain => vec![vec![true; n]],
            GroupingSets::Rollup => (0..=n)
                .rev()
                .map(|k| (0..n).map(|i| i < k).collect())
                .collect(),
            GroupingSets::Cube => (0..(1usize << n))
                .rev()
                .map(|bits| (0..n).map(|i| bits & (1 << (n - 1 - i)) != 0).collect())
                .collect(),
        }
    }
}

impl Expr {
    /// The kind of the expression's values.
    pub fn kind(&self) -> Kind {
        match self {
            Expr::Column(c) => c.kind,
            Expr::Aggregate {
                func: AggFn::Count | AggFn::CountDistinct | AggFn::Sum | AggFn::Avg,
                ..
            } => Kind::Number,
            Expr::Aggregate { arg, .. } => arg.map_or(Kind::Number, |a| a.kind),
            Expr::Date(c) => c.kind(),
            Expr::Grouping(_) => Kind::Number,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A WHERE / HAVING condition over typed values. Values are never
/// `Value::Null` (null tests are [`Filter::IsNull`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    IsNull {
        expr: Expr,
        negated: bool,
    },
    Compare {
        expr: Expr,
        op: CmpOp,
        value: Value,
    },
    In {
        expr: Expr,
        values: Vec<Value>,
        negated: bool,
    },
    /// A SQL LIKE pattern (`%`, `_`, escape `\`), already lower-cased.
    Like {
        column: ColumnRef,
        pattern: String,
    },
    /// Multi-picklist INCLUDES / EXCLUDES: any group whose every (lower-cased)
    /// value the record has.
    Includes {
        column: ColumnRef,
        groups: Vec<Vec<String>>,
        excludes: bool,
    },
    /// `column [NOT] IN (SELECT …)`.
    SemiJoin {
        column: ColumnRef,
        sub: Box<SubSelect>,
        negated: bool,
    },
}

/// The inside of a semi-/anti-join: one id-valued column of another object.
#[derive(Debug, Clone, PartialEq)]
pub struct SubSelect {
    pub object_id: String,
    pub joins: Vec<Join>,
    pub column: ColumnRef,
    pub filter: Option<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

/// A planned query over one object.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    pub object_id: String,
    pub joins: Vec<Join>,
    /// What each result row holds, in order. For a non-aggregate plan the
    /// first entry is the root record's `Id`.
    pub select: Vec<Expr>,
    pub filter: Option<Filter>,
    /// Group keys: columns or date functions.
    pub group_by: Vec<Expr>,
    /// ROLLUP / CUBE subtotals over `group_by`.
    pub grouping_sets: GroupingSets,
    pub having: Option<Filter>,
    pub order_by: Vec<SortKey>,
    pub limit: Option<u64>,
    pub offset: u64,
    /// queryAll: deleted records match too.
    pub include_deleted: bool,
    pub aggregate: bool,
    /// The caller's sharing predicates, applied to every row source of a
    /// listed object (`None`: everything visible).
    pub visibility: Option<Arc<crate::sharing::Visibility>>,
    /// Roll-up summaries the plan filters or sorts on (`Column::Rollup(i)`).
    pub rollups: Vec<RollupSpec>,
}

/// Narrows a run of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Restrict {
    /// The plan as it is.
    None,
    /// Exactly these root records (a later page of a snapshot): the plan's
    /// filter, order, limit and offset are not applied.
    Ids(Vec<String>),
    /// The plan, further restricted to rows whose root `column` is one of
    /// `values` (child subqueries: the lookup to the parents of a page).
    /// Limit and offset are not applied.
    ColumnIn {
        column: ColumnRef,
        values: Vec<String>,
    },
}

/// Rows of a run: the first `keep` rows with every selected value; of the
/// rest only the root ids (non-aggregate plans).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryRows {
    pub rows: Vec<Vec<Value>>,
    pub rest_ids: Vec<String>,
    /// Every matching row, kept or not.
    pub total: usize,
}

/// One full-text hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub object_id: String,
    pub record_id: String,
}

#[async_trait]
pub trait QueryStore: Send + Sync {
    /// Runs `plan`. At most `max_rows` rows may match; more is `LIMIT_EXCEEDED`.
    async fn query(
        &self,
        tenant_id: &str,
        plan: Arc<QueryPlan>,
        restrict: Restrict,
        keep: usize,
        max_rows: usize,
    ) -> MosaicResult<QueryRows>;

    /// The backend's statement and its parameters for `plan` (diagnostics, tests).
    fn statement(&self, tenant_id: &str, plan: &QueryPlan) -> MosaicResult<(String, Vec<String>)>;

    /// The backend's query plan for `plan` (SQLite: `EXPLAIN QUERY PLAN` details).
    async fn explain(&self, tenant_id: &str, plan: Arc<QueryPlan>) -> MosaicResult<Vec<String>>;

    /// Full-text search over the text fields of live records of `object_ids`.
    /// `term` is a SOSL term: words (all must match), `"phrases"`, `*` suffix wildcards.
    /// Records `visibility` hides are never hits.
    async fn search(
        &self,
        tenant_id: &str,
        term: &str,
        object_ids: &[String],
        limit: usize,
        visibility: Option<Arc<crate::sharing::Visibility>>,
    ) -> MosaicResult<Vec<SearchHit>>;
}
