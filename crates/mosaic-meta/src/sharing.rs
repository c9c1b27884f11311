//! Sharing rules: owner-based and criteria-based grants of read or
//! read/write access to a role, a role and its subordinates, or a public
//! group. They belong to their object's definition (versioned with it, like
//! validation and workflow rules); the principals they name live in the
//! access store and are checked by the runtime when a rule is saved.
//!
//! Criteria use the workflow rules' condition format, restricted to what
//! can be judged from a record alone: stored fields (no formula fields, whose
//! values may depend on other records) and no change operators.

use crate::model::{ObjectDef, SharingModel};
use crate::workflow::{check_criteria, rule_field, Criteria, Operator, RuleField};
use chrono::{DateTime, Utc};
use mosaic_store::sharing::{Principal, ShareAccess};
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Most sharing rules per object.
pub const MAX_SHARING_RULES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharingRuleType {
    /// Records owned by the users of a role (or role and subordinates).
    OwnerBased,
    /// Records whose field values meet the criteria.
    CriteriaBased,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharingRule {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub rule_type: SharingRuleType,
    /// Owner-based: whose records are shared (a role, or a role and its
    /// subordinates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_from: Option<Principal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<Criteria>,
    pub share_to: Principal,
    pub access_level: ShareAccess,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The API's create / update body (every field optional on update).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingRuleInput {
    /// The object's api name: given on create, ignored on update.
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub rule_type: Option<SharingRuleType>,
    #[serde(default)]
    pub share_from_role_id: Option<String>,
    #[serde(default)]
    pub share_from_role_and_subordinates_id: Option<String>,
    #[serde(default)]
    pub criteria: Option<Json>,
    #[serde(default)]
    pub share_to: Option<Json>,
    #[serde(default)]
    pub access_level: Option<ShareAccess>,
    /// Optimistic concurrency: the object version the change is based on.
    #[serde(default)]
    pub version: Option<i64>,
}

fn bad(field: impl Into<String>, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

/// Reads a `{"user_id" | "role_id" | "role_and_subordinates_id" | "group_id"}`
/// object (exactly one key) as a principal; `allow_user` for manual shares.
pub fn parse_principal(path: &str, v: &Json, allow_user: bool) -> MosaicResult<Principal> {
    let Json::Object(m) = v else {
        return Err(bad(
            path,
            format!("{path} is an object with one of role_id, role_and_subordinates_id, group_id"),
        ));
    };
    let mut found = Vec::new();
    for (k, val) in m {
        let id = || {
            val.as_str()
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_string())
                .ok_or_else(|| bad(format!("{path}.{k}"), format!("{k} is a non-empty id")))
        };
        let p = match k.as_str() {
            "user_id" if allow_user => Principal::User(id()?),
            "role_id" => Principal::Role(id()?),
            "role_and_subordinates_id" => Principal::RoleAndSubordinates(id()?),
            "group_id" => Principal::Group(id()?),
            other => {
                return Err(bad(
                    format!("{path}.{other}"),
                    format!("unknown key '{other}' in {path}"),
                ))
            }
        };
        found.push(p);
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(bad(path, format!("{path} names no one"))),
        _ => Err(bad(path, format!("{path} names more than one principal"))),
    }
}

fn check_sharing_criteria(def: &ObjectDef, v: &Json) -> MosaicResult<Criteria> {
    let c = check_criteria(def, "criteria", v)?;
    for (i, cond) in c.conditions.iter().enumerate() {
        let at = |f: &str| format!("criteria.conditions[{i}].{f}");
        if matches!(
            cond.operator,
            Operator::Changed | Operator::ChangedTo | Operator::ChangedFrom
        ) {
            return Err(bad(
                at("operator"),
                "sharing criteria judge a record as it is: changed, changed_to and changed_from do not apply",
            ));
        }
        if let Some(RuleField::Custom(f)) = rule_field(def, &cond.field) {
            if f.data_type == DataType::Formula || f.slot.is_none() {
                return Err(bad(
                    at("field"),
                    format!(
                        "'{}' is a formula field; sharing criteria use stored fields only",
                        f.api_name
                    ),
                ));
            }
            if f.data_type == DataType::EncryptedText {
                return Err(bad(
                    at("field"),
                    format!(
                        "'{}' is encrypted and cannot be used in sharing criteria",
                        f.api_name
                    ),
                ));
            }
        }
    }
    Ok(c)
}

/// Applies a create / update body onto `rule` and checks the result against
/// the object. Principals are checked to exist by the caller.
pub fn apply_sharing_rule(
    def: &ObjectDef,
    rule: &mut SharingRule,
    input: SharingRuleInput,
) -> MosaicResult<()> {
    if def.sharing_model == SharingModel::ControlledByParent {
        return Err(bad(
            "object",
            format!(
                "the records of {} are shared through their master record (sharing_model controlled_by_parent); sharing rules do not apply",
                def.api_name
            ),
        ));
    }
    if let Some(n) = input.name {
        let taken = def
            .sharing_rules
            .iter()
            .any(|r| r.id != rule.id && r.name.eq_ignore_ascii_case(&n));
        crate::validate::check_rule_name(&def.api_name, "sharing rule", &n, taken)?;
        rule.name = n;
    }
    if let Some(d) = input.description {
        if d.chars().count() > crate::validate::MAX_DESCRIPTION_LEN {
            return Err(bad(
                "description",
                format!(
                    "description is at most {} characters",
                    crate::validate::MAX_DESCRIPTION_LEN
                ),
            ));
        }
        rule.description = Some(d).filter(|d| !d.is_empty());
    }
    if let Some(t) = input.rule_type {
        rule.rule_type = t;
    }
    match (
        input.share_from_role_id,
        input.share_from_role_and_subordinates_id,
    ) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "share_from_role_id",
                "give share_from_role_id or share_from_role_and_subordinates_id, not both",
            ))
        }
        (Some(r), None) => rule.share_from = Some(Principal::Role(r.trim().to_string())),
        (None, Some(r)) => {
            rule.share_from = Some(Principal::RoleAndSubordinates(r.trim().to_string()))
        }
        (None, None) => {}
    }
    match input.criteria {
        Some(Json::Null) => rule.criteria = None,
        Some(v) => rule.criteria = Some(check_sharing_criteria(def, &v)?),
        None => {
            if let Some(c) = &rule.criteria {
                check_sharing_criteria(def, &serde_json::to_value(c).unwrap_or(Json::Null))?;
            }
        }
    }
    if let Some(v) = input.share_to {
        rule.share_to = parse_principal("share_to", &v, false)?;
    }
    if let Some(a) = input.access_level {
        rule.access_level = a;
    }
    if rule.name.is_empty() {
        return Err(bad("name", "name is required"));
    }
    if rule.share_to.id().is_empty() {
        return Err(bad(
            "share_to",
            "share_to is required: {\"role_id\"}, {\"role_and_subordinates_id\"} or {\"group_id\"}",
        ));
    }
    match rule.rule_type {
        SharingRuleType::OwnerBased => {
            if rule.share_from.as_ref().is_none_or(|p| p.id().is_empty()) {
                return Err(bad(
                    "share_from_role_id",
                    "an owner_based rule needs share_from_role_id (or share_from_role_and_subordinates_id)",
                ));
            }
            if rule.criteria.is_some() {
                return Err(bad(
                    "criteria",
                    "an owner_based rule has no criteria; use rule_type criteria_based",
                ));
            }
        }
        SharingRuleType::CriteriaBased => {
            if rule.criteria.is_none() {
                return Err(bad("criteria", "a criteria_based rule needs criteria"));
            }
            if rule.share_from.is_some() {
                return Err(bad(
                    "share_from_role_id",
                    "a criteria_based rule shares by criteria, not by owner's role",
                ));
            }
        }
    }
    Ok(())
}

/// A fresh rule for `apply_sharing_rule` to fill.
pub fn new_sharing_rule(input: &SharingRuleInput) -> MosaicResult<SharingRule> {
    let Some(rule_type) = input.rule_type else {
        return Err(bad(
            "rule_type",
            "rule_type is required (owner_based or criteria_based)",
        ));
    };
    if input.access_level.is_none() {
        return Err(bad(
            "access_level",
            "access_level is required (read or read_write)",
        ));
    }
    let now = Utc::now();
    Ok(SharingRule {
        id: mosaic_types::new_id(),
        name: String::new(),
        description: None,
        rule_type,
        share_from: None,
        criteria: None,
        share_to: Principal::Role(String::new()),
        access_level: ShareAccess::Read,
        created_at: now,
        updated_at: now,
    })
}

/// The rule as the API shows it.
pub fn sharing_rule_json(object: &str, r: &SharingRule) -> Json {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), Json::String(r.id.clone()));
    m.insert("object".into(), Json::String(object.to_string()));
    m.insert("name".into(), Json::String(r.name.clone()));
    if let Some(d) = &r.description {
        m.insert("description".into(), Json::String(d.clone()));
    }
    m.insert(
        "rule_type".into(),
        serde_json::to_value(r.rule_type).unwrap_or(Json::Null),
    );
    match &r.share_from {
        Some(Principal::Role(id)) => {
            m.insert("share_from_role_id".into(), Json::String(id.clone()));
        }
        Some(Principal::RoleAndSubordinates(id)) => {
            m.insert(
                "share_from_role_and_subordinates_id".into(),
                Json::String(id.clone()),
            );
        }
        _ => {}
    }
    if let Some(c) = &r.criteria {
        m.insert(
            "criteria".into(),
            serde_json::to_value(c).unwrap_or(Json::Null),
        );
    }
    m.insert("share_to".into(), r.share_to.to_json());
    m.insert(
        "access_level".into(),
        Json::String(r.access_level.as_str().into()),
    );
    m.insert("created_at".into(), serde_json::json!(r.created_at));
    m.insert("updated_at".into(), serde_json::json!(r.updated_at));
    Json::Object(m)
}

/// Fields the criteria of the object's sharing rules read (they cannot be
/// deleted while a rule uses them).
pub fn sharing_rules_using(def: &ObjectDef, field: &str) -> Vec<String> {
    def.sharing_rules
        .iter()
        .filter(|r| {
            r.criteria.as_ref().is_some_and(|c| {
                c.conditions
                    .iter()
                    .any(|x| x.field.eq_ignore_ascii_case(field))
            })
        })
        .map(|r| r.name.clone())
        .collect()
}
