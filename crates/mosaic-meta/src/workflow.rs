//! Workflow rules: their definitions, the API inputs that build them, and
//! everything about them that can be checked without records — criteria
//! logic, condition values, action configurations, merge fields.
//!
//! Formulas in rules (a formula criterion, a formula field update) are
//! compiled with every other formula of the tenant by
//! [`crate::formulas::uses_of`], so a broken formula is refused at save time
//! and a field a rule reads cannot be deleted from under it.

use crate::coerce::coerce;
use crate::model::{FieldDef, ObjectDef, SYSTEM_FIELDS};
use chrono::{DateTime, Utc};
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult, OutboundGuard, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Most workflow rules per object.
pub const MAX_WORKFLOW_RULES: usize = 50;
/// Most actions per rule.
pub const MAX_ACTIONS_PER_RULE: usize = 20;
/// Most conditions per rule (Salesforce: 25 filter rows; we allow more).
pub const MAX_CONDITIONS: usize = 50;
pub const MAX_LOGIC_LEN: usize = 1000;
pub const MAX_TEMPLATE_LEN: usize = 32_000;
pub const MAX_SUBJECT_LEN: usize = 255;
pub const MAX_RECIPIENTS: usize = 50;
pub const MAX_OUTBOUND_FIELDS: usize = 200;
pub const MAX_URL_LEN: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Created,
    Updated,
    CreatedOrUpdated,
    Deleted,
}

impl Trigger {
    pub fn on_create(self) -> bool {
        matches!(self, Trigger::Created | Trigger::CreatedOrUpdated)
    }
    pub fn on_update(self) -> bool {
        matches!(self, Trigger::Updated | Trigger::CreatedOrUpdated)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReEvaluation {
    /// Fires on every save where the criteria hold.
    EveryTime,
    /// Fires when the criteria go from false (or a new record) to true.
    #[default]
    WhenCriteriaFirstTrue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Equals,
    NotEquals,
    GreaterThan,
    LessThan,
    GreaterOrEqual,
    LessOrEqual,
    Contains,
    StartsWith,
    In,
    NotIn,
    IsNull,
    Changed,
    ChangedTo,
    ChangedFrom,
}

/// One condition row. `value` is stored as given (JSON) and coerced to the
/// field's type when the rule is saved and when it is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub field: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub value: Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// `AND`, `OR`, or custom logic over condition numbers (`(1 AND 2) OR 3`).
    pub logic: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    FieldUpdate,
    TaskCreation,
    EmailAlert,
    OutboundMessage,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::FieldUpdate => "field_update",
            ActionType::TaskCreation => "task_creation",
            ActionType::EmailAlert => "email_alert",
            ActionType::OutboundMessage => "outbound_message",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Hours,
    Days,
}

/// Largest time-based action offset either way, in days (ten years).
pub const MAX_TRIGGER_OFFSET_DAYS: u64 = 3_650;
/// Largest task due-date offset either way, in days (a hundred years).
pub const MAX_DUE_DATE_OFFSET_DAYS: u64 = 36_500;

/// When a time-based action runs: `offset` units after (or, negative,
/// before) the value of a date or datetime field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeTrigger {
    pub field: String,
    pub offset: i64,
    pub unit: TimeUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Literal,
    Formula,
    Null,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldUpdateConfig {
    pub field_api_name: String,
    pub value_type: ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub subject: String,
    /// `owner` (the record's owner), `creator`, or a user id.
    #[serde(default = "owner")]
    pub assignee: String,
    /// Days from the action's run date to the task's due date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date_offset: Option<i64>,
    #[serde(default = "normal")]
    pub priority: String,
    #[serde(default = "not_started")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn owner() -> String {
    "owner".into()
}
fn normal() -> String {
    "Normal".into()
}
fn not_started() -> String {
    "Not Started".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTemplate {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub template: EmailTemplate,
    /// `owner`, `creator`, user ids, or email addresses.
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    pub endpoint_url: String,
    /// Field api names sent with the record id (empty: every field).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Key of the `X-Mosaic-Signature` HMAC-SHA256 header; never rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A validated action configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionConfig {
    FieldUpdate(FieldUpdateConfig),
    TaskCreation(TaskConfig),
    EmailAlert(EmailConfig),
    OutboundMessage(OutboundConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowAction {
    pub id: String,
    pub action_type: ActionType,
    pub execution_order: i64,
    pub is_immediate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_trigger: Option<TimeTrigger>,
    /// The configuration as validated for `action_type`.
    pub action_config: Json,
}

impl WorkflowAction {
    /// The typed configuration (validated when the rule was saved).
    pub fn config(&self) -> MosaicResult<ActionConfig> {
        parse_config(self.action_type, &self.action_config).map_err(|e| {
            MosaicError::internal(format!(
                "stored workflow action {} is unreadable: {}",
                self.id, e.message
            ))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRule {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub trigger_type: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<Criteria>,
    /// A boolean formula used instead of `filter_criteria`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    pub re_evaluation: ReEvaluation,
    pub execution_order: i64,
    pub is_active: bool,
    pub actions: Vec<WorkflowAction>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WorkflowRule {
    /// The actions that run at save time, in execution order.
    pub fn immediate(&self) -> impl Iterator<Item = &WorkflowAction> {
        self.actions.iter().filter(|a| a.is_immediate)
    }
    pub fn timed(&self) -> impl Iterator<Item = &WorkflowAction> {
        self.actions.iter().filter(|a| !a.is_immediate)
    }
}

// ---------------------------------------------------------------- inputs

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

/// Body of workflow rule create (all of it) and update (any subset;
/// `actions`, when given, replaces the whole list).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub trigger_type: Option<Trigger>,
    #[serde(default, deserialize_with = "some")]
    pub filter_criteria: Option<Json>,
    #[serde(default, deserialize_with = "some")]
    pub formula: Option<Json>,
    pub re_evaluation: Option<ReEvaluation>,
    pub execution_order: Option<i64>,
    pub is_active: Option<bool>,
    pub actions: Option<Vec<ActionInput>>,
    pub version: Option<i64>,
    #[serde(default, rename = "id")]
    pub _id: Option<Json>,
    #[serde(default, rename = "object_version")]
    pub _object_version: Option<Json>,
    #[serde(default, rename = "created_at")]
    pub _created_at: Option<Json>,
    #[serde(default, rename = "updated_at")]
    pub _updated_at: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionInput {
    pub action_type: ActionType,
    pub execution_order: Option<i64>,
    pub is_immediate: Option<bool>,
    pub time_trigger: Option<TimeTrigger>,
    pub action_config: Json,
    #[serde(default, rename = "id")]
    pub _id: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CriteriaInput {
    logic: Option<String>,
    conditions: Vec<Condition>,
}

fn bad(field: impl Into<String>, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

// ---------------------------------------------------------------- logic

/// Custom criteria logic over 1-based condition numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Logic {
    Cond(usize),
    Not(Box<Logic>),
    And(Vec<Logic>),
    Or(Vec<Logic>),
}

impl Logic {
    /// Evaluates with `cond(i)` the value of condition `i` (0-based).
    pub fn eval(&self, cond: &dyn Fn(usize) -> bool) -> bool {
        match self {
            Logic::Cond(i) => cond(*i),
            Logic::Not(x) => !x.eval(cond),
            Logic::And(xs) => xs.iter().all(|x| x.eval(cond)),
            Logic::Or(xs) => xs.iter().any(|x| x.eval(cond)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(usize),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn logic_err(pos: usize, msg: impl std::fmt::Display) -> MosaicError {
    bad(
        "filter_criteria.logic",
        format!("filter_criteria.logic: {msg} at position {}", pos + 1),
    )
}

fn tokenize(src: &str) -> MosaicResult<Vec<(usize, Tok)>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'(' {
            out.push((i, Tok::Open));
            i += 1;
        } else if c == b')' {
            out.push((i, Tok::Close));
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n: usize = src[start..i]
                .parse()
                .map_err(|_| logic_err(start, "condition number too large"))?;
            out.push((start, Tok::Num(n)));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word = &src[start..i];
            out.push((
                start,
                match word.to_ascii_uppercase().as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    _ => return Err(logic_err(start, format!("unknown word '{word}'"))),
                },
            ));
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(logic_err(i, format!("unexpected character '{ch}'")));
        }
    }
    Ok(out)
}

struct LogicParser<'a> {
    toks: &'a [(usize, Tok)],
    at: usize,
    end: usize,
    n: usize,
}

impl LogicParser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.at).map(|(p, _)| *p).unwrap_or(self.end)
    }
    // or := and (OR and)*   — mixing AND and OR without parentheses is
    // refused, as Salesforce does, so the meaning is never ambiguous.
    fn expr(&mut self) -> MosaicResult<Logic> {
        let first = self.unary()?;
        let op = match self.peek() {
            Some(Tok::And) => Tok::And,
            Some(Tok::Or) => Tok::Or,
            _ => return Ok(first),
        };
        let mut items = vec![first];
        while let Some(t) = self.peek() {
            if *t == Tok::And || *t == Tok::Or {
                if *t != op {
                    return Err(logic_err(self.pos(), "mixing AND and OR needs parentheses"));
                }
                self.at += 1;
                items.push(self.unary()?);
            } else {
                break;
            }
        }
        Ok(if op == Tok::And {
            Logic::And(items)
        } else {
            Logic::Or(items)
        })
    }
    fn unary(&mut self) -> MosaicResult<Logic> {
        let pos = self.pos();
        match self.toks.get(self.at).map(|(_, t)| t.clone()) {
            Some(Tok::Not) => {
                self.at += 1;
                Ok(Logic::Not(Box::new(self.unary()?)))
            }
            Some(Tok::Open) => {
                self.at += 1;
                let inner = self.expr()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(logic_err(self.pos(), "expected ')'"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Tok::Num(k)) => {
                if k == 0 || k > self.n {
                    return Err(logic_err(
                        pos,
                        format!("there is no condition {k} (conditions are 1 to {})", self.n),
                    ));
                }
                self.at += 1;
                Ok(Logic::Cond(k - 1))
            }
            Some(_) => Err(logic_err(pos, "expected a condition number, NOT or '('")),
            None => Err(logic_err(pos, "unexpected end")),
        }
    }
}

/// Parses criteria logic for `n` conditions: `AND`, `OR`, or custom logic
/// that names every condition.
pub fn parse_logic(src: &str, n: usize) -> MosaicResult<Logic> {
    let t = src.trim();
    if t.eq_ignore_ascii_case("AND") || t.is_empty() {
        return Ok(Logic::And((0..n).map(Logic::Cond).collect()));
    }
    if t.eq_ignore_ascii_case("OR") {
        return Ok(Logic::Or((0..n).map(Logic::Cond).collect()));
    }
    if src.len() > MAX_LOGIC_LEN {
        return Err(bad(
            "filter_criteria.logic",
            format!("filter_criteria.logic is longer than {MAX_LOGIC_LEN} characters"),
        ));
    }
    let toks = tokenize(src)?;
    let mut p = LogicParser {
        toks: &toks,
        at: 0,
        end: src.len(),
        n,
    };
    let logic = p.expr()?;
    if p.at < toks.len() {
        return Err(logic_err(p.pos(), "unexpected token after the end"));
    }
    let mut seen = vec![false; n];
    fn mark(l: &Logic, seen: &mut [bool]) {
        match l {
            Logic::Cond(i) => seen[*i] = true,
            Logic::Not(x) => mark(x, seen),
            Logic::And(xs) | Logic::Or(xs) => xs.iter().for_each(|x| mark(x, seen)),
        }
    }
    mark(&logic, &mut seen);
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(bad(
            "filter_criteria.logic",
            format!("filter_criteria.logic does not use condition {}", i + 1),
        ));
    }
    Ok(logic)
}

// ---------------------------------------------------------------- fields

/// A field a condition or merge field may name: a custom field or a
/// system field, with its type.
#[derive(Debug, Clone)]
pub enum RuleField<'a> {
    Custom(&'a FieldDef),
    /// A system field: canonical name and type.
    System(&'static str, DataType),
}

impl RuleField<'_> {
    pub fn name(&self) -> &str {
        match self {
            RuleField::Custom(f) => &f.api_name,
            RuleField::System(n, _) => n,
        }
    }
    pub fn data_type(&self) -> DataType {
        match self {
            RuleField::Custom(f) => f
                .formula_return_type
                .filter(|_| f.data_type == DataType::Formula)
                .unwrap_or(f.data_type),
            RuleField::System(_, t) => *t,
        }
    }
}

fn system_type(name: &str) -> DataType {
    match name {
        "CreatedDate" | "LastModifiedDate" => DataType::Datetime,
        "IsDeleted" => DataType::Boolean,
        "Id" | "OwnerId" | "CreatedById" | "LastModifiedById" => DataType::Lookup,
        _ => DataType::Text,
    }
}

/// Resolves a field name on `def` (case-insensitive).
pub fn rule_field<'a>(def: &'a ObjectDef, name: &str) -> Option<RuleField<'a>> {
    if let Some(s) = SYSTEM_FIELDS.iter().find(|s| s.eq_ignore_ascii_case(name)) {
        return Some(RuleField::System(s, system_type(s)));
    }
    def.fields
        .iter()
        .find(|f| f.api_name.eq_ignore_ascii_case(name))
        .map(RuleField::Custom)
}

/// Coerces a condition or literal value for a field.
pub fn coerce_for(field: &RuleField<'_>, v: &Json) -> MosaicResult<Value> {
    match field {
        RuleField::Custom(f) if f.data_type != DataType::Formula => coerce(f, v),
        other => {
            let t = other.data_type();
            let probe = FieldDef {
                data_type: if t == DataType::Lookup {
                    DataType::Text
                } else {
                    t
                },
                ..crate::model::probe_field(other.name())
            };
            coerce(&probe, v)
        }
    }
}

// ---------------------------------------------------------------- merge fields

/// The `{!Field}` references in a template, in order, with their positions.
pub fn merge_fields(template: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{!") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push((offset + start, after[..end].trim()));
                let consumed = start + 2 + end + 1;
                offset += consumed;
                rest = &rest[consumed..];
            }
            None => break,
        }
    }
    out
}

/// Replaces `{!Field}` with `value(field)`.
pub fn render_template(template: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{!") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&rest[..start]);
                out.push_str(&value(after[..end].trim()));
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

fn check_merge_fields(def: &ObjectDef, what: &str, template: &str) -> MosaicResult<()> {
    for (pos, name) in merge_fields(template) {
        if rule_field(def, name).is_none() {
            return Err(bad(
                what,
                format!(
                    "{what}: merge field '{{!{name}}}' at position {} is not a field of {}",
                    pos + 1,
                    def.api_name
                ),
            ));
        }
    }
    Ok(())
}

fn check_len(what: &str, v: &str, max: usize, required: bool) -> MosaicResult<()> {
    if required && v.trim().is_empty() {
        return Err(bad(what, format!("{what} is required")));
    }
    if v.chars().count() > max {
        return Err(bad(what, format!("{what} is longer than {max} characters")));
    }
    Ok(())
}

/// Whether `s` looks like an email address (one `@`, a dot in the domain,
/// no spaces or angle brackets).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.contains(['<', '>', ' ', ',', ';', '"'])
        && !domain.contains('@')
        && s.len() <= 254
}

fn parse_config(t: ActionType, v: &Json) -> MosaicResult<ActionConfig> {
    fn de<T: serde::de::DeserializeOwned>(v: &Json) -> MosaicResult<T> {
        serde_json::from_value(v.clone()).map_err(|e| {
            let msg = e.to_string();
            let field = msg
                .split('`')
                .nth(1)
                .map(|f| format!("action_config.{f}"))
                .unwrap_or_else(|| "action_config".into());
            bad(field, format!("action_config: {msg}"))
        })
    }
    Ok(match t {
        ActionType::FieldUpdate => ActionConfig::FieldUpdate(de(v)?),
        ActionType::TaskCreation => ActionConfig::TaskCreation(de(v)?),
        ActionType::EmailAlert => ActionConfig::EmailAlert(de(v)?),
        ActionType::OutboundMessage => ActionConfig::OutboundMessage(de(v)?),
    })
}

/// Validates an action against the object; returns the canonical config.
fn check_action(
    def: &ObjectDef,
    trigger: Trigger,
    a: &ActionInput,
    guard: &OutboundGuard,
) -> MosaicResult<Json> {
    let cfg = parse_config(a.action_type, &a.action_config)?;
    match &cfg {
        ActionConfig::FieldUpdate(fu) => {
            if trigger == Trigger::Deleted {
                return Err(bad(
                    "action_type",
                    "a field update cannot run on a rule triggered by deletion",
                ));
            }
            let canonical = if fu.field_api_name.eq_ignore_ascii_case("Name") {
                "Name".to_string()
            } else {
                let f = def
                    .fields
                    .iter()
                    .find(|f| f.api_name.eq_ignore_ascii_case(&fu.field_api_name))
                    .ok_or_else(|| {
                        bad(
                            "action_config.field_api_name",
                            format!(
                                "object '{}' has no field '{}'",
                                def.api_name, fu.field_api_name
                            ),
                        )
                    })?;
                if !f.is_updateable() {
                    return Err(bad(
                        "action_config.field_api_name",
                        format!("field '{}' is read-only", f.api_name),
                    ));
                }
                f.api_name.clone()
            };
            let target = rule_field(def, &canonical).expect("field resolved above");
            match fu.value_type {
                ValueType::Literal => {
                    let v = fu.value.as_ref().ok_or_else(|| {
                        bad(
                            "action_config.value",
                            "value is required for a literal update",
                        )
                    })?;
                    coerce_for(&target, v).map_err(|e| bad("action_config.value", e.message))?;
                }
                ValueType::Formula => {
                    let src = fu.formula.as_deref().unwrap_or("");
                    if src.trim().is_empty() {
                        return Err(bad(
                            "action_config.formula",
                            "formula is required for a formula update",
                        ));
                    }
                }
                ValueType::Null => {
                    if let RuleField::Custom(f) = &target {
                        if f.is_required {
                            return Err(bad(
                                "action_config.value_type",
                                format!(
                                    "field '{}' is required and cannot be set to null",
                                    f.api_name
                                ),
                            ));
                        }
                    }
                }
            }
            let mut fixed = fu.clone();
            fixed.field_api_name = canonical;
            Ok(serde_json::to_value(fixed).unwrap_or(Json::Null))
        }
        ActionConfig::TaskCreation(t) => {
            check_len("action_config.subject", &t.subject, MAX_SUBJECT_LEN, true)?;
            check_merge_fields(def, "action_config.subject", &t.subject)?;
            if let Some(d) = &t.description {
                check_len("action_config.description", d, MAX_TEMPLATE_LEN, false)?;
                check_merge_fields(def, "action_config.description", d)?;
            }
            if !(t.assignee == "owner"
                || t.assignee == "creator"
                || mosaic_types::id::normalize_id(&t.assignee).is_some())
            {
                return Err(bad(
                    "action_config.assignee",
                    "assignee is 'owner', 'creator' or a user id",
                ));
            }
            if !["High", "Normal", "Low"].contains(&t.priority.as_str()) {
                return Err(bad(
                    "action_config.priority",
                    "priority is one of High, Normal, Low",
                ));
            }
            if ![
                "Not Started",
                "In Progress",
                "Completed",
                "Waiting",
                "Deferred",
            ]
            .contains(&t.status.as_str())
            {
                return Err(bad(
                    "action_config.status",
                    "status is one of Not Started, In Progress, Completed, Waiting, Deferred",
                ));
            }
            if t.due_date_offset
                .is_some_and(|d| d.unsigned_abs() > MAX_DUE_DATE_OFFSET_DAYS)
            {
                return Err(bad(
                    "action_config.due_date_offset",
                    format!(
                        "due_date_offset is a number of days from -{MAX_DUE_DATE_OFFSET_DAYS} to {MAX_DUE_DATE_OFFSET_DAYS}"
                    ),
                ));
            }
            Ok(serde_json::to_value(t).unwrap_or(Json::Null))
        }
        ActionConfig::EmailAlert(e) => {
            check_len(
                "action_config.template.subject",
                &e.template.subject,
                MAX_SUBJECT_LEN,
                true,
            )?;
            check_len(
                "action_config.template.body",
                &e.template.body,
                MAX_TEMPLATE_LEN,
                false,
            )?;
            check_merge_fields(def, "action_config.template.subject", &e.template.subject)?;
            check_merge_fields(def, "action_config.template.body", &e.template.body)?;
            if e.recipients.is_empty() || e.recipients.len() > MAX_RECIPIENTS {
                return Err(bad(
                    "action_config.recipients",
                    format!("recipients needs 1 to {MAX_RECIPIENTS} entries"),
                ));
            }
            for (i, r) in e.recipients.iter().enumerate() {
                let ok = r == "owner"
                    || r == "creator"
                    || mosaic_types::id::normalize_id(r).is_some()
                    || is_email(r);
                if !ok {
                    return Err(bad(
                        format!("action_config.recipients[{i}]"),
                        format!(
                            "recipient '{}' is not 'owner', 'creator', a user id or an email address",
                            r.chars().take(80).collect::<String>()
                        ),
                    ));
                }
            }
            Ok(serde_json::to_value(e).unwrap_or(Json::Null))
        }
        ActionConfig::OutboundMessage(o) => {
            check_len(
                "action_config.endpoint_url",
                &o.endpoint_url,
                MAX_URL_LEN,
                true,
            )?;
            let lower = o.endpoint_url.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/') || r.contains(' ')) {
                return Err(bad(
                    "action_config.endpoint_url",
                    "endpoint_url must be an http:// or https:// URL",
                ));
            }
            // A literal address is refused now; a host name is checked on
            // the address it resolves to at delivery.
            guard
                .check_url(&o.endpoint_url)
                .map_err(|e| bad("action_config.endpoint_url", e))?;
            if o.fields.len() > MAX_OUTBOUND_FIELDS {
                return Err(bad(
                    "action_config.fields",
                    format!("at most {MAX_OUTBOUND_FIELDS} fields"),
                ));
            }
            let mut fixed = o.clone();
            for (i, f) in o.fields.iter().enumerate() {
                let rf = rule_field(def, f).ok_or_else(|| {
                    bad(
                        format!("action_config.fields[{i}]"),
                        format!("object '{}' has no field '{f}'", def.api_name),
                    )
                })?;
                fixed.fields[i] = rf.name().to_string();
            }
            if let Some(s) = &o.secret {
                check_len("action_config.secret", s, 512, true)?;
            }
            Ok(serde_json::to_value(fixed).unwrap_or(Json::Null))
        }
    }
}

fn check_condition(def: &ObjectDef, path: &str, i: usize, c: &Condition) -> MosaicResult<()> {
    let at = |f: &str| format!("{path}.conditions[{i}].{f}");
    let field = rule_field(def, &c.field).ok_or_else(|| {
        bad(
            at("field"),
            format!("object '{}' has no field '{}'", def.api_name, c.field),
        )
    })?;
    let t = field.data_type();
    use Operator::*;
    match c.operator {
        Changed => {}
        IsNull => {
            if !(c.value.is_null() || c.value.is_boolean()) {
                return Err(bad(
                    at("value"),
                    "is_null takes true (is null), false (is not null) or no value",
                ));
            }
        }
        In | NotIn => {
            let items = match &c.value {
                Json::Array(a) if !a.is_empty() => a.clone(),
                Json::String(s) if !s.is_empty() => s
                    .split(',')
                    .map(|p| Json::String(p.trim().to_string()))
                    .collect(),
                _ => {
                    return Err(bad(
                        at("value"),
                        "in / not_in take a non-empty array (or a comma-separated text)",
                    ))
                }
            };
            for v in &items {
                coerce_for(&field, v).map_err(|e| bad(at("value"), e.message))?;
            }
        }
        Contains | StartsWith => {
            if !(t.is_text_like() || matches!(t, DataType::Picklist | DataType::MultiPicklist)) {
                return Err(bad(
                    at("operator"),
                    format!(
                        "{:?} applies to text fields; '{}' is not one",
                        c.operator,
                        field.name()
                    )
                    .to_lowercase(),
                ));
            }
            if !c.value.is_string() {
                return Err(bad(at("value"), "the value is a text"));
            }
        }
        GreaterThan | LessThan | GreaterOrEqual | LessOrEqual => {
            if matches!(
                t,
                DataType::Boolean | DataType::MultiPicklist | DataType::Geolocation
            ) {
                return Err(bad(
                    at("operator"),
                    format!("'{}' cannot be compared by order", field.name()),
                ));
            }
            if c.value.is_null() {
                return Err(bad(at("value"), "a comparison needs a value"));
            }
            coerce_for(&field, &c.value).map_err(|e| bad(at("value"), e.message))?;
        }
        Equals | NotEquals | ChangedTo | ChangedFrom => {
            coerce_for(&field, &c.value).map_err(|e| bad(at("value"), e.message))?;
        }
    }
    Ok(())
}

/// Checks a criteria document (`{"logic", "conditions"}`) against `def`;
/// errors name `path` (`filter_criteria`, `criteria`).
pub fn check_criteria(def: &ObjectDef, path: &str, v: &Json) -> MosaicResult<Criteria> {
    let input: CriteriaInput = serde_json::from_value(v.clone()).map_err(|e| {
        bad(
            path,
            format!("{path}: {e} (expected {{\"logic\", \"conditions\"}})"),
        )
    })?;
    if input.conditions.is_empty() {
        return Err(bad(
            format!("{path}.conditions"),
            format!("{path} needs at least one condition"),
        ));
    }
    if input.conditions.len() > MAX_CONDITIONS {
        return Err(bad(
            format!("{path}.conditions"),
            format!("at most {MAX_CONDITIONS} conditions"),
        ));
    }
    let mut conditions = input.conditions;
    for (i, c) in conditions.iter_mut().enumerate() {
        check_condition(def, path, i, c)?;
        if let Some(f) = rule_field(def, &c.field) {
            c.field = f.name().to_string();
        }
    }
    let logic = input.logic.unwrap_or_else(|| "AND".into());
    parse_logic(&logic, conditions.len())?;
    let logic = match logic.trim().to_ascii_uppercase().as_str() {
        "AND" | "" => "AND".to_string(),
        "OR" => "OR".to_string(),
        _ => logic.trim().to_string(),
    };
    Ok(Criteria { logic, conditions })
}

/// Applies a create / update request onto `rule` (a fresh one on create).
/// `guard` decides which outbound message endpoints may be saved.
pub fn apply_workflow(
    def: &ObjectDef,
    rule: &mut WorkflowRule,
    input: WorkflowInput,
    guard: &OutboundGuard,
) -> MosaicResult<()> {
    if let Some(n) = input.name {
        let taken = def
            .workflow_rules
            .iter()
            .any(|r| r.id != rule.id && r.name.eq_ignore_ascii_case(&n));
        crate::validate::check_rule_name(&def.api_name, "workflow rule", &n, taken)?;
        rule.name = n;
    }
    if let Some(d) = input.description {
        check_len(
            "description",
            &d,
            crate::validate::MAX_DESCRIPTION_LEN,
            false,
        )?;
        rule.description = Some(d).filter(|d| !d.is_empty());
    }
    if let Some(t) = input.trigger_type {
        rule.trigger_type = t;
    }
    if let Some(r) = input.re_evaluation {
        rule.re_evaluation = r;
    }
    if let Some(o) = input.execution_order {
        rule.execution_order = o;
    }
    if let Some(a) = input.is_active {
        rule.is_active = a;
    }
    match input.filter_criteria {
        Some(Json::Null) => rule.filter_criteria = None,
        Some(v) => rule.filter_criteria = Some(check_criteria(def, "filter_criteria", &v)?),
        None => {
            // Re-check kept criteria: fields may have changed type.
            if let Some(c) = &rule.filter_criteria {
                check_criteria(
                    def,
                    "filter_criteria",
                    &serde_json::to_value(c).unwrap_or(Json::Null),
                )?;
            }
        }
    }
    match input.formula {
        Some(Json::Null) => rule.formula = None,
        Some(Json::String(s)) if s.trim().is_empty() => rule.formula = None,
        Some(Json::String(s)) => rule.formula = Some(s),
        Some(_) => return Err(bad("formula", "formula is a text")),
        None => {}
    }
    if rule.filter_criteria.is_some() && rule.formula.is_some() {
        return Err(bad(
            "formula",
            "a rule has either filter_criteria or a formula, not both",
        ));
    }
    if let Some(actions) = input.actions {
        if actions.len() > MAX_ACTIONS_PER_RULE {
            return Err(bad(
                "actions",
                format!("a rule has at most {MAX_ACTIONS_PER_RULE} actions"),
            ));
        }
        let mut out = Vec::with_capacity(actions.len());
        for (i, a) in actions.into_iter().enumerate() {
            let cfg = check_action(def, rule.trigger_type, &a, guard).map_err(|mut e| {
                e.fields = e
                    .fields
                    .iter()
                    .map(|f| format!("actions[{i}].{f}"))
                    .collect();
                e.message = format!("actions[{i}]: {}", e.message);
                e
            })?;
            let is_immediate = a.is_immediate.unwrap_or(a.time_trigger.is_none());
            let time_trigger = if is_immediate {
                if a.time_trigger.is_some() {
                    return Err(bad(
                        format!("actions[{i}].time_trigger"),
                        "an immediate action has no time_trigger",
                    ));
                }
                None
            } else {
                let tt = a.time_trigger.ok_or_else(|| {
                    bad(
                        format!("actions[{i}].time_trigger"),
                        "a time-based action (is_immediate false) needs a time_trigger",
                    )
                })?;
                let f = rule_field(def, &tt.field).ok_or_else(|| {
                    bad(
                        format!("actions[{i}].time_trigger.field"),
                        format!("object '{}' has no field '{}'", def.api_name, tt.field),
                    )
                })?;
                if !matches!(f.data_type(), DataType::Date | DataType::Datetime) {
                    return Err(bad(
                        format!("actions[{i}].time_trigger.field"),
                        format!("'{}' is not a date or datetime field", f.name()),
                    ));
                }
                let (max, unit) = match tt.unit {
                    TimeUnit::Hours => (MAX_TRIGGER_OFFSET_DAYS * 24, "hours"),
                    TimeUnit::Days => (MAX_TRIGGER_OFFSET_DAYS, "days"),
                };
                // `unsigned_abs`: `abs` of i64::MIN overflows.
                if tt.offset.unsigned_abs() > max {
                    return Err(bad(
                        format!("actions[{i}].time_trigger.offset"),
                        format!("offset is a number of {unit} from -{max} to {max}"),
                    ));
                }
                Some(TimeTrigger {
                    field: f.name().to_string(),
                    ..tt
                })
            };
            out.push(WorkflowAction {
                id: mosaic_types::new_id(),
                action_type: a.action_type,
                execution_order: a.execution_order.unwrap_or(i as i64 + 1),
                is_immediate,
                time_trigger,
                action_config: cfg,
            });
        }
        out.sort_by_key(|a| a.execution_order);
        rule.actions = out;
    } else {
        // Kept actions must still fit the object (and the trigger).
        for (i, a) in rule.actions.iter().enumerate() {
            let input = ActionInput {
                action_type: a.action_type,
                execution_order: Some(a.execution_order),
                is_immediate: Some(a.is_immediate),
                time_trigger: a.time_trigger.clone(),
                action_config: a.action_config.clone(),
                _id: None,
            };
            check_action(def, rule.trigger_type, &input, guard).map_err(|mut e| {
                e.fields = e
                    .fields
                    .iter()
                    .map(|f| format!("actions[{i}].{f}"))
                    .collect();
                e
            })?;
        }
    }
    if rule.name.is_empty() {
        return Err(bad("name", "name is required"));
    }
    if rule.actions.iter().any(|a| !a.is_immediate) {
        if rule.re_evaluation == ReEvaluation::EveryTime {
            return Err(bad(
                "re_evaluation",
                "time-based actions need re_evaluation 'when_criteria_first_true'",
            ));
        }
        if rule.trigger_type == Trigger::Deleted {
            return Err(bad(
                "trigger_type",
                "a rule triggered by deletion cannot have time-based actions",
            ));
        }
    }
    Ok(())
}

/// Names of the workflow rules whose conditions, actions or merge fields
/// name `field` (formulas are covered by the formula dependency check).
pub fn rules_using(def: &ObjectDef, field: &str) -> Vec<String> {
    let eq = |s: &str| s.eq_ignore_ascii_case(field);
    let mut out = Vec::new();
    for r in &def.workflow_rules {
        let mut uses = r
            .filter_criteria
            .as_ref()
            .is_some_and(|c| c.conditions.iter().any(|c| eq(&c.field)));
        for a in &r.actions {
            if a.time_trigger.as_ref().is_some_and(|t| eq(&t.field)) {
                uses = true;
            }
            match a.config() {
                Ok(ActionConfig::FieldUpdate(fu)) => uses |= eq(&fu.field_api_name),
                Ok(ActionConfig::TaskCreation(t)) => {
                    uses |= merge_fields(&t.subject).iter().any(|(_, n)| eq(n))
                        || t.description
                            .as_deref()
                            .is_some_and(|d| merge_fields(d).iter().any(|(_, n)| eq(n)));
                }
                Ok(ActionConfig::EmailAlert(e)) => {
                    uses |= merge_fields(&e.template.subject)
                        .iter()
                        .chain(merge_fields(&e.template.body).iter())
                        .any(|(_, n)| eq(n));
                }
                Ok(ActionConfig::OutboundMessage(o)) => uses |= o.fields.iter().any(|f| eq(f)),
                Err(_) => {}
            }
        }
        if uses {
            out.push(format!("workflow rule {}.{}", def.api_name, r.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(src: &str, n: usize, truth: &[bool]) -> bool {
        parse_logic(src, n).unwrap().eval(&|i| truth[i])
    }

    #[test]
    fn logic_parses_and_evaluates() {
        assert!(ev("AND", 2, &[true, true]));
        assert!(!ev("and", 2, &[true, false]));
        assert!(ev("OR", 2, &[false, true]));
        assert!(ev("(1 AND 2) OR 3", 3, &[false, true, true]));
        assert!(!ev("(1 AND 2) OR 3", 3, &[false, true, false]));
        assert!(ev("1 AND NOT 2", 2, &[true, false]));
        assert!(ev("((1))", 1, &[true]));
        assert!(ev("1 OR (2 AND (3 OR 4))", 4, &[false, true, false, true]));
    }

    #[test]
    fn bad_logic_is_refused_with_a_position() {
        let e = parse_logic("1 AND 2 OR 3", 3).unwrap_err();
        assert!(e.message.contains("parentheses"), "{}", e.message);
        assert!(e.message.contains("position 9"), "{}", e.message);
        assert!(parse_logic("(1 AND 2", 2)
            .unwrap_err()
            .message
            .contains("expected ')'"));
        assert!(parse_logic("1 AND 4", 2)
            .unwrap_err()
            .message
            .contains("no condition 4"));
        assert!(parse_logic("1 AND 0", 2).is_err());
        assert!(parse_logic("1", 2)
            .unwrap_err()
            .message
            .contains("does not use condition 2"));
        assert!(parse_logic("1 XOR 2", 2)
            .unwrap_err()
            .message
            .contains("unknown word 'XOR'"));
        assert!(parse_logic("1 & 2", 2).is_err());
        assert!(parse_logic("1 2", 2).is_err());
        assert!(parse_logic("99999999999999999999999", 2).is_err());
        assert_eq!(
            parse_logic("()", 1).unwrap_err().fields,
            ["filter_criteria.logic"]
        );
    }

    #[test]
    fn merge_fields_render() {
        let t = "Deal {!Name} worth {!Amount__c}; {!Missing";
        assert_eq!(
            merge_fields(t).iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            ["Name", "Amount__c"]
        );
        let out = render_template(t, &|n| format!("<{n}>"));
        assert_eq!(out, "Deal <Name> worth <Amount__c>; {!Missing");
    }

    #[test]
    fn emails() {
        assert!(is_email("a@b.co"));
        assert!(!is_email("a@b"));
        assert!(!is_email("a b@c.de"));
        assert!(!is_email("@c.de"));
        assert!(!is_email("x@@c.de"));
    }
}
