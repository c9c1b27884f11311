//! Automation storage on a shard: the transactional outbox (external
//! workflow actions and scheduled time-based actions) and field history.
//!
//! Outbox entries and history rows are written as [`Effect`]s of a record
//! write, inside the same savepoint as the record itself: an acknowledged
//! write never loses its actions, and a rolled-back write leaves none.
//! Delivery workers claim due entries with a lease, so any number of
//! workers (or server instances) deliver each entry once per claim.

use crate::record_store::InsertOp;
use crate::sqlite::map_sql;
use crate::sqlite_meta::parse_ts;
use crate::sqlite_records::SqliteRecordStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::value::format_datetime;
use mosaic_types::{MosaicError, MosaicResult};
use rusqlite::{params, Connection, OptionalExtension};

/// DDL of the automation tables (part of every shard's schema).
pub const AUTOMATION_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS outbox (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  object_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  rule_id TEXT,
  action_id TEXT,
  payload TEXT NOT NULL,
  state TEXT NOT NULL,
  due_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  lease_until TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  lease_owner TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, due_at);
CREATE INDEX IF NOT EXISTS outbox_by_record ON outbox (tenant_id, record_id, rule_id);
CREATE INDEX IF NOT EXISTS outbox_by_tenant ON outbox (tenant_id, state, created_at);
CREATE TABLE IF NOT EXISTS field_history (
  tenant_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  field TEXT NOT NULL,
  old_value TEXT,
  new_value TEXT,
  changed_by TEXT NOT NULL,
  changed_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, record_id, id)
) WITHOUT ROWID;
"#;

/// Brings a shard created before leases had owners up to date: adds
/// `outbox.lease_owner`. Runs on its own connection before the store opens.
pub(crate) fn migrate_lease_owner(path: &std::path::Path) -> MosaicResult<()> {
    if !path.exists() {
        return Ok(());
    }
    let conn = Connection::open(path).map_err(map_sql)?;
    conn.busy_timeout(crate::sqlite::BUSY_TIMEOUT)
        .map_err(map_sql)?;
    let cols: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('outbox')")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(map_sql)?;
    if !cols.is_empty() && !cols.iter().any(|c| c == "lease_owner") {
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN lease_owner TEXT")
            .map_err(map_sql)?;
    }
    Ok(())
}

/// Outbox entry states.
pub const PENDING: &str = "pending";
pub const DEAD: &str = "dead";

/// Kind of an entry that runs a rule's time-based actions when due.
pub const TIME_TRIGGER: &str = "time_trigger";

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Also the delivery id receivers deduplicate by.
    pub id: String,
    pub tenant_id: String,
    /// `outbound_message`, `email_alert` or `time_trigger`.
    pub kind: String,
    pub object_id: String,
    pub record_id: String,
    pub rule_id: Option<String>,
    pub action_id: Option<String>,
    /// JSON document the worker needs (resolved at save time).
    pub payload: String,
    pub state: String,
    pub due_at: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One changed field of a tracked record (`field` is `created` /
/// `deleted` for those events, with no values).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub id: String,
    pub object_id: String,
    pub record_id: String,
    pub field: String,
    /// JSON text of the values.
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

/// Something a record write does in its own transaction besides the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Enqueue(OutboxEntry),
    /// Cancels the pending time-based entries of a record: of one rule, or
    /// of every rule.
    Unschedule {
        record_id: String,
        rule_id: Option<String>,
    },
    History(HistoryRow),
    /// Another record created with this one (a workflow task).
    Insert(Box<InsertOp>),
    /// The shares criteria-based sharing rules give the record, replacing
    /// the ones they gave it before.
    RuleShares {
        record_id: String,
        rows: Vec<crate::sharing::ShareRow>,
    },
}

pub(crate) fn apply_effects(
    conn: &Connection,
    tenant: &str,
    effects: &[Effect],
) -> MosaicResult<()> {
    for e in effects {
        match e {
            Effect::Enqueue(o) => {
                conn.prepare_cached(
                    "INSERT INTO outbox (id, tenant_id, kind, object_id, record_id, rule_id, action_id, payload, state, due_at, attempts, last_error, lease_until, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, NULL, NULL, ?11, ?11)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        o.id,
                        tenant,
                        o.kind,
                        o.object_id,
                        o.record_id,
                        o.rule_id,
                        o.action_id,
                        o.payload,
                        PENDING,
                        format_datetime(&o.due_at),
                        format_datetime(&o.created_at),
                    ])
                })
                .map_err(map_sql)?;
            }
            Effect::Unschedule { record_id, rule_id } => {
                conn.prepare_cached(
                    "DELETE FROM outbox WHERE tenant_id = ?1 AND record_id = ?2 AND kind = ?3 AND state = ?4 AND (?5 IS NULL OR rule_id = ?5)",
                )
                .and_then(|mut st| {
                    st.execute(params![tenant, record_id, TIME_TRIGGER, PENDING, rule_id])
                })
                .map_err(map_sql)?;
            }
            Effect::History(h) => {
                conn.prepare_cached(
                    "INSERT INTO field_history (tenant_id, record_id, id, object_id, field, old_value, new_value, changed_by, changed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        tenant,
                        h.record_id,
                        h.id,
                        h.object_id,
                        h.field,
                        h.old_value,
                        h.new_value,
                        h.changed_by,
                        format_datetime(&h.changed_at),
                    ])
                })
                .map_err(map_sql)?;
            }
            Effect::Insert(op) => {
                crate::sqlite_records::insert_with_effects(conn, tenant, op)?;
            }
            Effect::RuleShares { record_id, rows } => {
                crate::sqlite_sharing::set_rule_shares(conn, tenant, record_id, rows)?;
            }
        }
    }
    Ok(())
}

/// Outbox totals for gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboxStats {
    pub pending: u64,
    /// Due time of the oldest pending entry that is already due.
    pub oldest_due: Option<DateTime<Utc>>,
    pub dead: u64,
}

impl OutboxStats {
    /// Adds another shard's totals.
    pub fn merge(&mut self, o: &OutboxStats) {
        self.pending += o.pending;
        self.dead += o.dead;
        self.oldest_due = match (self.oldest_due, o.oldest_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

#[async_trait]
pub trait AutomationStore: Send + Sync {
    /// Claims up to `limit` entries due at `now` that no live lease holds,
    /// leasing them to `owner` (the claiming instance's id) until
    /// `lease_until`. An expired lease is taken over, whoever held it.
    /// Spans every tenant: this is the platform's delivery worker, each
    /// entry then handled in its tenant.
    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> MosaicResult<Vec<OutboxEntry>>;

    /// Drops the leases `owner` holds (an instance stopping: what it had in
    /// hand is due again at once for the others). Leases of other owners,
    /// live or not, are never touched: those expire by time.
    async fn release_leases(&self, owner: &str) -> MosaicResult<u64>;

    /// A delivered entry leaves the outbox.
    async fn complete(&self, tenant_id: &str, id: &str) -> MosaicResult<()>;

    /// Completes an entry and writes `effects` in the same transaction (a
    /// time-based action that queues further work).
    async fn complete_with(
        &self,
        tenant_id: &str,
        id: &str,
        effects: Vec<Effect>,
    ) -> MosaicResult<()>;

    /// Records a failed attempt: retry at `due_at`, or dead-letter it when
    /// `due_at` is `None`.
    async fn failed(
        &self,
        tenant_id: &str,
        id: &str,
        attempts: u32,
        error: &str,
        due_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> MosaicResult<()>;

    /// Dead letters of a tenant, newest first, after `before` (paging).
    async fn dead_letters(
        &self,
        tenant_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> MosaicResult<Vec<OutboxEntry>>;

    async fn entry(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<OutboxEntry>>;

    /// Puts a dead letter back in the queue with a fresh retry budget.
    /// `false` when no dead letter has that id in the tenant.
    async fn replay(&self, tenant_id: &str, id: &str, now: DateTime<Utc>) -> MosaicResult<bool>;

    /// Deletes a dead letter. `false` when there was none.
    async fn discard(&self, tenant_id: &str, id: &str) -> MosaicResult<bool>;

    /// Pending entries of one record (scheduled actions included).
    async fn pending_for_record(
        &self,
        tenant_id: &str,
        record_id: &str,
    ) -> MosaicResult<Vec<OutboxEntry>>;

    async fn outbox_stats(&self, now: DateTime<Utc>) -> MosaicResult<OutboxStats>;

    /// History rows of a record, newest first.
    async fn history(
        &self,
        tenant_id: &str,
        record_id: &str,
        limit: usize,
    ) -> MosaicResult<Vec<HistoryRow>>;
}

const ENTRY_COLS: &str = "id, tenant_id, kind, object_id, record_id, rule_id, action_id, payload, state, due_at, attempts, last_error, created_at, updated_at";

fn entry_of(r: &rusqlite::Row) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        kind: r.get(2)?,
        object_id: r.get(3)?,
        record_id: r.get(4)?,
        rule_id: r.get(5)?,
        action_id: r.get(6)?,
        payload: r.get(7)?,
        state: r.get(8)?,
        due_at: parse_ts(&r.get::<_, String>(9)?)?,
        attempts: r.get(10)?,
        last_error: r.get(11)?,
        created_at: parse_ts(&r.get::<_, String>(12)?)?,
        updated_at: parse_ts(&r.get::<_, String>(13)?)?,
    })
}

#[async_trait]
impl AutomationStore for SqliteRecordStore {
    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        let (now, until) = (format_datetime(&now), format_datetime(&lease_until));
        let owner = owner.to_string();
        self.db()
            .write(move |conn| {
                let sql = format!(
                    "UPDATE outbox SET lease_until = ?1, lease_owner = ?5
                     WHERE id IN (SELECT id FROM outbox WHERE state = ?2 AND due_at <= ?3
                                  AND (lease_until IS NULL OR lease_until <= ?3)
                                  AND tenant_id NOT IN (SELECT tenant_id FROM tenant_moves WHERE state <> 'journal')
                                  ORDER BY due_at LIMIT ?4)
                     RETURNING {ENTRY_COLS}"
                );
                let mut st = conn.prepare_cached(&sql).map_err(map_sql)?;
                let rows = st
                    .query_map(params![until, PENDING, now, limit as i64, owner], entry_of)
                    .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(map_sql)?;
                Ok(rows)
            })
            .await
            .map(|mut v: Vec<OutboxEntry>| {
                v.sort_by(|a, b| a.due_at.cmp(&b.due_at).then(a.id.cmp(&b.id)));
                v
            })
    }

    async fn release_leases(&self, owner: &str) -> MosaicResult<u64> {
        let owner = owner.to_string();
        self.db()
            .write(move |conn| {
                conn.execute(
                    "UPDATE outbox SET lease_until = NULL, lease_owner = NULL WHERE lease_owner = ?1 AND lease_until IS NOT NULL AND tenant_id NOT IN (SELECT tenant_id FROM tenant_moves WHERE state <> 'journal')",
                    [owner],
                )
                .map(|n| n as u64)
                .map_err(map_sql)
            })
            .await
    }

    async fn complete(&self, tenant_id: &str, id: &str) -> MosaicResult<()> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db()
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM outbox WHERE tenant_id = ?1 AND id = ?2")
                    .and_then(|mut st| st.execute(params![t, id]))
                    .map(|_| ())
                    .map_err(map_sql)
            })
            .await
    }

    async fn complete_with(
        &self,
        tenant_id: &str,
        id: &str,
        effects: Vec<Effect>,
    ) -> MosaicResult<()> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db()
            .write(move |conn| {
                crate::sqlite::savepoint(conn, || {
                    apply_effects(conn, &t, &effects)?;
                    conn.prepare_cached("DELETE FROM outbox WHERE tenant_id = ?1 AND id = ?2")
                        .and_then(|mut st| st.execute(params![t, id]))
                        .map(|_| ())
                        .map_err(map_sql)
                })
            })
            .await
    }

    async fn failed(
        &self,
        tenant_id: &str,
        id: &str,
        attempts: u32,
        error: &str,
        due_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> MosaicResult<()> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        let error: String = error.chars().take(2000).collect();
        let now = format_datetime(&now);
        self.db()
            .write(move |conn| {
                let (state, due) = match due_at {
                    Some(d) => (PENDING, Some(format_datetime(&d))),
                    None => (DEAD, None),
                };
                conn.prepare_cached(
                    "UPDATE outbox SET state = ?1, due_at = COALESCE(?2, due_at), attempts = ?3,
                     last_error = ?4, lease_until = NULL, lease_owner = NULL, updated_at = ?5
                     WHERE tenant_id = ?6 AND id = ?7",
                )
                .and_then(|mut st| st.execute(params![state, due, attempts, error, now, t, id]))
                .map(|_| ())
                .map_err(map_sql)
            })
            .await
    }

    async fn dead_letters(
        &self,
        tenant_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        let t = tenant_id.to_string();
        let before = before.map(str::to_string);
        self.db()
            .read(move |conn| {
                let sql = format!(
                    "SELECT {ENTRY_COLS} FROM outbox WHERE tenant_id = ?1 AND state = ?2
                     AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
                );
                conn.prepare_cached(&sql)
                    .and_then(|mut st| {
                        st.query_map(params![t, DEAD, before, limit as i64], entry_of)?
                            .collect()
                    })
                    .map_err(map_sql)
            })
            .await
    }

    async fn entry(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<OutboxEntry>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db()
            .read(move |conn| {
                let sql =
                    format!("SELECT {ENTRY_COLS} FROM outbox WHERE tenant_id = ?1 AND id = ?2");
                conn.prepare_cached(&sql)
                    .and_then(|mut st| st.query_row(params![t, id], entry_of).optional())
                    .map_err(map_sql)
            })
            .await
    }

    async fn replay(&self, tenant_id: &str, id: &str, now: DateTime<Utc>) -> MosaicResult<bool> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        let now = format_datetime(&now);
        self.db()
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE outbox SET state = ?1, attempts = 0, due_at = ?2, lease_until = NULL, updated_at = ?2
                     WHERE tenant_id = ?3 AND id = ?4 AND state = ?5",
                )
                .and_then(|mut st| st.execute(params![PENDING, now, t, id, DEAD]))
                .map(|n| n > 0)
                .map_err(map_sql)
            })
            .await
    }

    async fn discard(&self, tenant_id: &str, id: &str) -> MosaicResult<bool> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db()
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM outbox WHERE tenant_id = ?1 AND id = ?2 AND state = ?3",
                )
                .and_then(|mut st| st.execute(params![t, id, DEAD]))
                .map(|n| n > 0)
                .map_err(map_sql)
            })
            .await
    }

    async fn pending_for_record(
        &self,
        tenant_id: &str,
        record_id: &str,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        let (t, r) = (tenant_id.to_string(), record_id.to_string());
        self.db()
            .read(move |conn| {
                let sql = format!(
                    "SELECT {ENTRY_COLS} FROM outbox WHERE tenant_id = ?1 AND record_id = ?2 AND state = ?3 ORDER BY due_at, id"
                );
                conn.prepare_cached(&sql)
                    .and_then(|mut st| st.query_map(params![t, r, PENDING], entry_of)?.collect())
                    .map_err(map_sql)
            })
            .await
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> MosaicResult<OutboxStats> {
        let now = format_datetime(&now);
        self.db()
            .read(move |conn| {
                // Platform-wide totals for the operator's gauges.
                let (pending, oldest): (i64, Option<String>) = conn
                    .query_row(
                        "SELECT COUNT(*), MIN(CASE WHEN due_at <= ?2 THEN due_at END) FROM outbox WHERE state = ?1",
                        params![PENDING, now],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(map_sql)?;
                let dead: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM outbox WHERE state = ?1",
                        params![DEAD],
                        |r| r.get(0),
                    )
                    .map_err(map_sql)?;
                Ok(OutboxStats {
                    pending: pending as u64,
                    oldest_due: oldest
                        .map(|s| parse_ts(&s))
                        .transpose()
                        .map_err(|e| MosaicError::internal(e.to_string()))?,
                    dead: dead as u64,
                })
            })
            .await
    }

    async fn history(
        &self,
        tenant_id: &str,
        record_id: &str,
        limit: usize,
    ) -> MosaicResult<Vec<HistoryRow>> {
        let (t, r) = (tenant_id.to_string(), record_id.to_string());
        self.db()
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT id, object_id, record_id, field, old_value, new_value, changed_by, changed_at
                     FROM field_history WHERE tenant_id = ?1 AND record_id = ?2 ORDER BY id DESC LIMIT ?3",
                )
                .and_then(|mut st| {
                    st.query_map(params![t, r, limit as i64], |r| {
                        Ok(HistoryRow {
                            id: r.get(0)?,
                            object_id: r.get(1)?,
                            record_id: r.get(2)?,
                            field: r.get(3)?,
                            old_value: r.get(4)?,
                            new_value: r.get(5)?,
                            changed_by: r.get(6)?,
                            changed_at: parse_ts(&r.get::<_, String>(7)?)?,
                        })
                    })?
                    .collect()
                })
                .map_err(map_sql)
            })
            .await
    }
}
