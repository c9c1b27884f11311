//! The query AST. Every node an error can point at carries a [`Span`].
//!
//! Identifiers keep the spelling the user wrote; comparisons between them are
//! case-insensitive (use [`Ident::is`] / [`FieldPath::same_path`]).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::date_literal::DateLiteral;

/// Byte range `[start, end)` into the query source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// A name as written (`Account`, `Owner`, `Amount__c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl Ident {
    /// Case-insensitive name comparison, as SOQL compares names.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// `Name`, `Account.Owner.Name`: zero or more relationship hops then a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// Never empty.
    pub parts: Vec<Ident>,
    pub span: Span,
}

impl FieldPath {
    /// The dotted path as written.
    pub fn dotted(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
    /// Case-insensitive path equality.
    pub fn same_path(&self, other: &FieldPath) -> bool {
        self.parts.len() == other.parts.len()
            && self
                .parts
                .iter()
                .zip(&other.parts)
                .all(|(a, b)| a.name.eq_ignore_ascii_case(&b.name))
    }
}

/// A whole `SELECT` statement (top level, child subquery or semi-join).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: ObjectRef,
    pub where_: Option<Condition>,
    /// `USING SCOPE mine`: the scope name as written.
    pub scope: Option<Ident>,
    /// `WITH SECURITY_ENFORCED`, `WITH USER_MODE`, …
    pub with: Option<WithClause>,
    /// GROUP BY keys: fields or date functions.
    pub group_by: Vec<Operand>,
    /// Plain `GROUP BY`, `GROUP BY ROLLUP(…)` or `GROUP BY CUBE(…)`.
    pub grouping: Grouping,
    pub having: Option<Condition>,
    pub order_by: Vec<OrderKey>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// `FOR VIEW`, `FOR REFERENCE`, `FOR UPDATE`, `UPDATE TRACKING`, …
    pub for_: Option<ForClause>,
    pub span: Span,
}

/// How GROUP BY keys form groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Grouping {
    #[default]
    Plain,
    Rollup,
    Cube,
}

/// The `WITH` clause of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WithClause {
    /// `WITH SECURITY_ENFORCED`: field-level security errors instead of stripping.
    SecurityEnforced(Span),
    /// `WITH USER_MODE`: the caller's permissions, enforced.
    UserMode(Span),
    /// `WITH SYSTEM_MODE`: the default.
    SystemMode(Span),
    /// `WITH DATA CATEGORY Group__c AT (a__c, b__c) AND …`.
    DataCategory(Vec<DataCategoryFilter>, Span),
}

impl WithClause {
    pub fn span(&self) -> Span {
        match self {
            WithClause::SecurityEnforced(s)
            | WithClause::UserMode(s)
            | WithClause::SystemMode(s)
            | WithClause::DataCategory(_, s) => *s,
        }
    }
}

/// One `Group__c AT|ABOVE|BELOW|ABOVE_OR_BELOW (cat, …)` data category filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCategoryFilter {
    pub group: Ident,
    /// `AT`, `ABOVE`, `BELOW` or `ABOVE_OR_BELOW`, upper-cased.
    pub selector: String,
    pub categories: Vec<Ident>,
}

/// The trailing `FOR …` / `UPDATE …` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForClause {
    View(Span),
    Reference(Span),
    Update(Span),
    UpdateTracking(Span),
    UpdateViewstat(Span),
}

impl ForClause {
    pub fn span(self) -> Span {
        match self {
            ForClause::View(s)
            | ForClause::Reference(s)
            | ForClause::Update(s)
            | ForClause::UpdateTracking(s)
            | ForClause::UpdateViewstat(s) => s,
        }
    }
    pub fn keywords(self) -> &'static str {
        match self {
            ForClause::View(_) => "FOR VIEW",
            ForClause::Reference(_) => "FOR REFERENCE",
            ForClause::Update(_) => "FOR UPDATE",
            ForClause::UpdateTracking(_) => "UPDATE TRACKING",
            ForClause::UpdateViewstat(_) => "UPDATE VIEWSTAT",
        }
    }
}

/// `FROM Account` or `FROM Account a`. In a child subquery the name is the
/// child relationship name (`Contacts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `Account` in a qualified child relationship `FROM Account.Contacts`.
    pub qualifier: Option<Ident>,
    pub name: Ident,
    pub alias: Option<Ident>,
    pub span: Span,
}

/// One entry of the SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(FieldPath),
    Aggregate(Aggregate),
    /// Parent-to-child subquery, `(SELECT LastName FROM Contacts)`.
    SubQuery(Box<Query>),
    /// A field with an alias (aggregate queries), `Name n`.
    AliasedField {
        field: FieldPath,
        alias: Ident,
    },
    /// A function over a field: `toLabel(Status)`, `FORMAT(Amount) amt`,
    /// `CALENDAR_YEAR(CreatedDate)`, `GROUPING(Name) grp`.
    Call {
        call: FieldCall,
        alias: Option<Ident>,
    },
    /// `FIELDS(ALL)`, `FIELDS(STANDARD)`, `FIELDS(CUSTOM)`.
    Fields {
        kind: FieldsKind,
        span: Span,
    },
    /// `TYPEOF What WHEN Account THEN Name … ELSE Name END`.
    TypeOf(TypeOf),
}

/// The argument of `FIELDS(…)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldsKind {
    All,
    Standard,
    Custom,
}

impl FieldsKind {
    pub fn keyword(self) -> &'static str {
        match self {
            FieldsKind::All => "ALL",
            FieldsKind::Standard => "STANDARD",
            FieldsKind::Custom => "CUSTOM",
        }
    }
}

/// `TYPEOF field WHEN Type THEN fields … [ELSE fields] END`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeOf {
    /// The polymorphic relationship (`What`, `Owner`).
    pub field: Ident,
    pub whens: Vec<TypeOfWhen>,
    pub else_: Vec<FieldPath>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeOfWhen {
    pub object: Ident,
    pub fields: Vec<FieldPath>,
}

/// The field functions (everything callable that is not an aggregate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldFn {
    CalendarMonth,
    CalendarQuarter,
    CalendarYear,
    DayInMonth,
    DayInWeek,
    DayInYear,
    DayOnly,
    FiscalMonth,
    FiscalQuarter,
    FiscalYear,
    HourInDay,
    WeekInMonth,
    WeekInYear,
    ConvertTimezone,
    ConvertCurrency,
    ToLabel,
    Format,
    Grouping,
}

const FIELD_FNS: [(&str, FieldFn); 18] = [
    ("CALENDAR_MONTH", FieldFn::CalendarMonth),
    ("CALENDAR_QUARTER", FieldFn::CalendarQuarter),
    ("CALENDAR_YEAR", FieldFn::CalendarYear),
    ("DAY_IN_MONTH", FieldFn::DayInMonth),
    ("DAY_IN_WEEK", FieldFn::DayInWeek),
    ("DAY_IN_YEAR", FieldFn::DayInYear),
    ("DAY_ONLY", FieldFn::DayOnly),
    ("FISCAL_MONTH", FieldFn::FiscalMonth),
    ("FISCAL_QUARTER", FieldFn::FiscalQuarter),
    ("FISCAL_YEAR", FieldFn::FiscalYear),
    ("HOUR_IN_DAY", FieldFn::HourInDay),
    ("WEEK_IN_MONTH", FieldFn::WeekInMonth),
    ("WEEK_IN_YEAR", FieldFn::WeekInYear),
    ("convertTimezone", FieldFn::ConvertTimezone),
    ("convertCurrency", FieldFn::ConvertCurrency),
    ("toLabel", FieldFn::ToLabel),
    ("FORMAT", FieldFn::Format),
    ("GROUPING", FieldFn::Grouping),
];

impl FieldFn {
    /// The canonical spelling (Salesforce's documentation case).
    pub fn keyword(self) -> &'static str {
        FIELD_FNS
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(k, _)| k)
    }
    pub fn from_keyword(word: &str) -> Option<FieldFn> {
        FIELD_FNS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|(_, f)| *f)
    }
    /// The date functions (`CALENDAR_YEAR` … `WEEK_IN_YEAR`, fiscal ones).
    pub fn is_date_fn(self) -> bool {
        !matches!(
            self,
            FieldFn::ConvertTimezone
                | FieldFn::ConvertCurrency
                | FieldFn::ToLabel
                | FieldFn::Format
                | FieldFn::Grouping
        )
    }
}

/// `FUNC(arg)`; the argument is a field, an aggregate (`FORMAT(MIN(d))`) or
/// another call (`CALENDAR_YEAR(convertTimezone(CreatedDate))`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCall {
    pub func: FieldFn,
    pub arg: Box<Operand>,
    pub span: Span,
}

impl FieldCall {
    /// The innermost field the call applies to.
    pub fn field(&self) -> Option<&FieldPath> {
        match self.arg.as_ref() {
            Operand::Field(f) => Some(f),
            Operand::Aggregate(a) => a.arg.as_ref(),
            Operand::Call(c) => c.field(),
        }
    }
}

/// The aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFn {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggregateFn {
    pub fn keyword(self) -> &'static str {
        match self {
            AggregateFn::Count => "COUNT",
            AggregateFn::CountDistinct => "COUNT_DISTINCT",
            AggregateFn::Sum => "SUM",
            AggregateFn::Avg => "AVG",
            AggregateFn::Min => "MIN",
            AggregateFn::Max => "MAX",
        }
    }
    pub(crate) fn from_keyword(word: &str) -> Option<AggregateFn> {
        [
            AggregateFn::Count,
            AggregateFn::CountDistinct,
            AggregateFn::Sum,
            AggregateFn::Avg,
            AggregateFn::Min,
            AggregateFn::Max,
        ]
        .into_iter()
        .find(|f| f.keyword().eq_ignore_ascii_case(word))
    }
}

/// `COUNT()`, `COUNT(Id)`, `SUM(Amount) total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub func: AggregateFn,
    /// `None` only for `COUNT()`.
    pub arg: Option<FieldPath>,
    /// Only meaningful in the SELECT list.
    pub alias: Option<Ident>,
    pub span: Span,
}

impl Aggregate {
    /// Same function over the same field, ignoring alias and case.
    pub fn same_call(&self, other: &Aggregate) -> bool {
        self.func == other.func
            && match (&self.arg, &other.arg) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_path(b),
                _ => false,
            }
    }
}

/// The left side of a condition or an ORDER BY key: a field, or (HAVING and
/// grouped ORDER BY only) an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Field(FieldPath),
    Aggregate(Aggregate),
    /// A field function (`CALENDAR_YEAR(CloseDate)`, `toLabel(Status)`).
    Call(FieldCall),
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Field(f) => f.span,
            Operand::Aggregate(a) => a.span,
            Operand::Call(c) => c.span,
        }
    }
    /// Same expression, ignoring spans, aliases and case.
    pub fn same_expr(&self, other: &Operand) -> bool {
        match (self, other) {
            (Operand::Field(a), Operand::Field(b)) => a.same_path(b),
            (Operand::Aggregate(a), Operand::Aggregate(b)) => a.same_call(b),
            (Operand::Call(a), Operand::Call(b)) => a.func == b.func && a.arg.same_expr(&b.arg),
            _ => false,
        }
    }
}

/// A WHERE / HAVING condition. `And` / `Or` hold two or more children;
/// a parenthesised group nested in the same connective stays a separate node.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    /// `field op value` for `= != < <= > >=`.
    Compare {
        lhs: Operand,
        op: CompareOp,
        value: Value,
        span: Span,
    },
    /// `field LIKE 'pattern'`.
    Like {
        lhs: Operand,
        pattern: LikePattern,
        span: Span,
    },
    /// `field [NOT] IN (…)`.
    In {
        lhs: Operand,
        values: InValues,
        negated: bool,
        span: Span,
    },
    /// `field INCLUDES ('a;b', 'c')` / `EXCLUDES (…)` on multi-select picklists.
    Includes {
        lhs: Operand,
        values: Vec<Value>,
        excludes: bool,
        span: Span,
    },
}

/// Comparison operators. `<>` parses as `Ne`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// The right side of `IN`.
#[derive(Debug, Clone, PartialEq)]
pub enum InValues {
    List(Vec<Value>),
    /// Semi-join (`IN`) or anti-join (`NOT IN`): selects exactly one field.
    SubQuery(Box<Query>),
}

/// A literal with its place in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub literal: Literal,
    pub span: Span,
}

/// Literal values.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    /// Exact decimal, as written (`1.50` keeps its scale).
    Number(Decimal),
    /// Decoded string. Outside LIKE, `\_` and `\%` have no special meaning and
    /// stay as the two characters backslash + `_` / `%`.
    String(String),
    Date(NaiveDate),
    /// Normalised to UTC; the source may have used an offset.
    DateTime(DateTime<Utc>),
    /// `TODAY`, `LAST_N_DAYS:30`, …; resolve with [`crate::resolve_date_literal`].
    DateLiteral(DateLiteral),
    /// A currency-prefixed number, `USD5000`, `EUR12.50` (ISO code upper-cased).
    Currency {
        code: String,
        amount: Decimal,
    },
}

/// A LIKE pattern, split into literal text and wildcards. `\_` and `\%` in
/// the source are literal text here, `_` and `%` are wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikePattern {
    /// Adjacent `Text` parts are always merged; `Text` is never empty.
    pub parts: Vec<LikePart>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LikePart {
    Text(String),
    /// `_`
    AnyChar,
    /// `%`
    AnyString,
}

impl LikePattern {
    /// Builds a pattern, merging adjacent text and dropping empty text.
    pub fn from_parts(parts: impl IntoIterator<Item = LikePart>, span: Span) -> LikePattern {
        let mut out: Vec<LikePart> = Vec::new();
        for part in parts {
            match part {
                LikePart::Text(t) if t.is_empty() => {}
                LikePart::Text(t) => {
                    if let Some(LikePart::Text(prev)) = out.last_mut() {
                        prev.push_str(&t);
                    } else {
                        out.push(LikePart::Text(t));
                    }
                }
                other => out.push(other),
            }
        }
        LikePattern { parts: out, span }
    }
}

/// One ORDER BY key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub key: Operand,
    pub direction: SortDirection,
    /// As written; see [`OrderKey::effective_nulls`] for the default.
    pub nulls: Option<NullsOrder>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SortDirection {
    #[default]
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NullsOrder {
    First,
    Last,
}

impl OrderKey {
    /// Salesforce default: nulls first when ascending, last when descending.
    pub fn effective_nulls(&self) -> NullsOrder {
        self.nulls.unwrap_or(match self.direction {
            SortDirection::Asc => NullsOrder::First,
            SortDirection::Desc => NullsOrder::Last,
        })
    }
}

impl SelectItem {
    /// The column name the runtime reports for this item, given the running
    /// count of unaliased aggregates before it (`expr0`, `expr1`, …).
    fn output_name(&self, unaliased_before: &mut usize) -> String {
        match self {
            SelectItem::Field(f) => f.dotted(),
            SelectItem::SubQuery(q) => q.from.name.name.clone(),
            SelectItem::AliasedField { alias, .. } => alias.name.clone(),
            SelectItem::Aggregate(Aggregate { alias, .. }) | SelectItem::Call { alias, .. } => {
                match (alias, self) {
                    (Some(alias), _) => alias.name.clone(),
                    // toLabel / convertCurrency / FORMAT of a plain field keep its name.
                    (None, SelectItem::Call { call, .. })
                        if !call.func.is_date_fn()
                            && call.func != FieldFn::Grouping
                            && matches!(call.arg.as_ref(), Operand::Field(_)) =>
                    {
                        call.field().map_or_else(String::new, FieldPath::dotted)
                    }
                    _ => {
                        let name = format!("expr{unaliased_before}");
                        *unaliased_before += 1;
                        name
                    }
                }
            }
            SelectItem::Fields { kind, .. } => format!("FIELDS({})", kind.keyword()),
            SelectItem::TypeOf(t) => t.field.name.clone(),
        }
    }

    pub fn span(&self) -> Span {
        match self {
            SelectItem::Field(f) => f.span,
            SelectItem::Aggregate(a) => a.span,
            SelectItem::SubQuery(q) => q.span,
            SelectItem::AliasedField { field, alias } => field.span.to(alias.span),
            SelectItem::Call { call, alias } => {
                alias.as_ref().map_or(call.span, |a| call.span.to(a.span))
            }
            SelectItem::Fields { span, .. } => *span,
            SelectItem::TypeOf(t) => t.span,
        }
    }
}

impl Query {
    /// Output name of each SELECT item, in order: field paths as written,
    /// child subqueries by relationship name, aggregates by alias or else
    /// `expr0`, `expr1`, … counting only unaliased aggregates.
    pub fn output_names(&self) -> Vec<String> {
        let mut unaliased = 0;
        self.select
            .iter()
            .map(|item| item.output_name(&mut unaliased))
            .collect()
    }

    /// True when the query aggregates (any aggregate in SELECT, or GROUP BY).
    pub fn is_aggregate(&self) -> bool {
        !self.group_by.is_empty()
            || self.select.iter().any(|s| match s {
                SelectItem::Aggregate(_) => true,
                SelectItem::Call { call, .. } => {
                    matches!(call.arg.as_ref(), Operand::Aggregate(_))
                }
                _ => false,
            })
    }

    /// True for the bare `SELECT COUNT() FROM …` form, which returns a size, not rows.
    pub fn is_count_only(&self) -> bool {
        matches!(
            self.select.as_slice(),
            [SelectItem::Aggregate(Aggregate {
                func: AggregateFn::Count,
                arg: None,
                ..
            })]
        )
    }
}
