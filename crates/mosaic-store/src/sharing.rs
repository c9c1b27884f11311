//! Record shares: who besides the owner (and the owner's managers) may read
//! or edit a record. Shares live in the shard beside the records they share,
//! so that a query's sharing predicate is part of its own SQL.
//!
//! A share goes to a [`Principal`] — a user, the users of a role, of a role
//! and its subordinates, or of a public group — and is either *manual*
//! (granted on the record through the API) or the materialized result of a
//! criteria-based sharing rule, rewritten in the transaction of every save
//! of the record and recalculated when the rule changes.

use crate::record_store::RecordRow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::{FlexSlot, MosaicResult};
use serde::{Deserialize, Serialize};

/// Whom a share or a sharing rule gives access to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Principal {
    User(String),
    /// The users of one role (and, by the hierarchy, their managers).
    Role(String),
    /// The users of a role and of every role below it.
    RoleAndSubordinates(String),
    /// The members of a public group.
    Group(String),
}

impl Principal {
    /// The compact key stored in `record_shares.principal` and matched by
    /// the sharing predicate: `u:`, `r:`, `rs:` or `g:` and the id.
    pub fn key(&self) -> String {
        match self {
            Principal::User(id) => format!("u:{id}"),
            Principal::Role(id) => format!("r:{id}"),
            Principal::RoleAndSubordinates(id) => format!("rs:{id}"),
            Principal::Group(id) => format!("g:{id}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Principal> {
        let (kind, id) = key.split_once(':')?;
        let id = id.to_string();
        Some(match kind {
            "u" => Principal::User(id),
            "r" => Principal::Role(id),
            "rs" => Principal::RoleAndSubordinates(id),
            "g" => Principal::Group(id),
            _ => return None,
        })
    }

    pub fn id(&self) -> &str {
        match self {
            Principal::User(id)
            | Principal::Role(id)
            | Principal::RoleAndSubordinates(id)
            | Principal::Group(id) => id,
        }
    }

    /// The API's name for the principal's id (`user_id`, `role_id`, …).
    pub fn id_field(&self) -> &'static str {
        match self {
            Principal::User(_) => "user_id",
            Principal::Role(_) => "role_id",
            Principal::RoleAndSubordinates(_) => "role_and_subordinates_id",
            Principal::Group(_) => "group_id",
        }
    }

    /// `{"user_id": …}` and the like, as the API shows it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert(
            self.id_field().to_string(),
            serde_json::Value::String(self.id().to_string()),
        );
        serde_json::Value::Object(m)
    }
}

/// What a share allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareAccess {
    Read,
    ReadWrite,
}

impl ShareAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            ShareAccess::Read => "read",
            ShareAccess::ReadWrite => "read_write",
        }
    }

    pub fn parse(s: &str) -> Option<ShareAccess> {
        match s {
            "read" => Some(ShareAccess::Read),
            "read_write" => Some(ShareAccess::ReadWrite),
            _ => None,
        }
    }

    fn code(self) -> i64 {
        match self {
            ShareAccess::Read => 1,
            ShareAccess::ReadWrite => 2,
        }
    }

    fn from_code(c: i64) -> ShareAccess {
        if c >= 2 {
            ShareAccess::ReadWrite
        } else {
            ShareAccess::Read
        }
    }
}

/// Why a share exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareCause {
    Manual,
    /// A criteria-based sharing rule (its id).
    Rule(String),
}

/// One share of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareRow {
    pub id: String,
    pub object_id: String,
    pub record_id: String,
    pub principal: Principal,
    pub access: ShareAccess,
    pub cause: ShareCause,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) const SHARES_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS record_shares (
  tenant_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  access INTEGER NOT NULL,
  rule_id TEXT,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, record_id, principal, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS record_shares_id ON record_shares (tenant_id, id);
CREATE INDEX IF NOT EXISTS record_shares_rule ON record_shares (tenant_id, rule_id, record_id);
"#;

/// Shares in the shard, plus the record scan rule recalculation needs.
#[async_trait]
pub trait ShareStore: Send + Sync {
    /// Every share of a record, manual and rule-made, oldest first.
    async fn shares_of(&self, tenant_id: &str, record_id: &str) -> MosaicResult<Vec<ShareRow>>;

    /// Grants a manual share. A manual share of the record to the same
    /// principal is replaced (its access level updated); returns the id of
    /// the share that now holds the grant.
    async fn grant_share(&self, tenant_id: &str, row: ShareRow) -> MosaicResult<String>;

    /// Revokes a manual share of a record; false if there is none with that id.
    async fn revoke_share(
        &self,
        tenant_id: &str,
        record_id: &str,
        share_id: &str,
    ) -> MosaicResult<bool>;

    /// Replaces, for each record of `record_ids`, the shares made by the
    /// rules of `rule_ids` with `rows` (one transaction).
    async fn replace_rule_shares(
        &self,
        tenant_id: &str,
        rule_ids: &[String],
        record_ids: &[String],
        rows: Vec<ShareRow>,
    ) -> MosaicResult<()>;

    /// Drops every share a rule made.
    async fn drop_rule_shares(&self, tenant_id: &str, rule_id: &str) -> MosaicResult<()>;

    /// Live records of an object in id order after `after`, at most `limit`,
    /// with the values of `slots` (rule recalculation).
    async fn scan(
        &self,
        tenant_id: &str,
        object_id: &str,
        after: Option<&str>,
        limit: usize,
        slots: &[FlexSlot],
    ) -> MosaicResult<Vec<RecordRow>>;
}

pub(crate) fn access_code(a: ShareAccess) -> i64 {
    a.code()
}

pub(crate) fn access_from_code(c: i64) -> ShareAccess {
    ShareAccess::from_code(c)
}

/// What a query may see of the records of one object: the sharing
/// predicate the backend adds wherever a row of that object is read (the
/// queried object, parents reached through lookups, semi-join and child
/// subqueries).
#[derive(Debug, Clone, PartialEq)]
pub enum RowAccess {
    /// Rows owned by one of `owners` or shared with one of `principals`
    /// (principal keys, see [`Principal::key`]).
    Shared {
        owners: std::sync::Arc<Vec<String>>,
        principals: std::sync::Arc<Vec<String>>,
    },
    /// Rows whose master record (through lookup slot `via`) is visible.
    Parent {
        via: FlexSlot,
        parent_object_id: String,
        parent: Box<RowAccess>,
    },
    /// No row at all.
    Nothing,
}

/// The sharing predicates of one caller's query, by object id. Objects not
/// listed are read unrestricted (administrators, view-all, public models).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Visibility {
    pub objects: std::collections::BTreeMap<String, RowAccess>,
}

impl Visibility {
    pub fn of(&self, object_id: &str) -> Option<&RowAccess> {
        self.objects.get(object_id)
    }

    pub fn is_unrestricted(&self) -> bool {
        self.objects.is_empty()
    }
}
