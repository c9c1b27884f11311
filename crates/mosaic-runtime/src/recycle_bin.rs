//! The recycle bin (decision 0029): undelete, emptying the bin, the
//! scheduled purge after the retention, and the replication API's
//! `updated` / `deleted` ranges.

use crate::access::ObjectOp;
use crate::platform::Platform;
use crate::records::{parse_record_id, Caller};
use crate::sharing::{insufficient, record_not_found, settled};
use chrono::{DateTime, DurationRound, Utc};
use mosaic_access::sharing::RecordLevel;
use mosaic_meta::model::ObjectMeta;
use mosaic_store::record_store::{BinEntry, BinFilter, RefCheck, UndeleteOp};
use mosaic_types::{DataType, ErrorCode, MosaicError, MosaicResult};
use std::time::Duration;

/// How long a deleted record stays in the bin by default (Salesforce: 15 days).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(15 * 24 * 60 * 60);
/// Records the scheduled purge removes per transaction.
pub const PURGE_BATCH: usize = 500;
/// Longest range of one `updated` / `deleted` call (Salesforce: 30 days).
pub const MAX_REPLICATION_DAYS: i64 = 30;
/// Most ids one `updated` / `deleted` answer carries (Salesforce: 600,000).
pub const MAX_REPLICATION_IDS: usize = 600_000;
/// Most entries one bin listing returns.
pub const MAX_BIN_LIST: usize = 2000;

/// A replication range as asked and as answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The last instant the answer covers: `end`, or now if `end` is later
    /// (the next call starts there).
    pub latest_covered: DateTime<Utc>,
}

/// What `deleted` answers.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedRecords {
    pub records: Vec<(String, DateTime<Utc>)>,
    pub earliest_available: DateTime<Utc>,
    pub latest_covered: DateTime<Utc>,
}

fn replication_error(message: impl Into<String>) -> MosaicError {
    MosaicError::new(ErrorCode::INVALID_REPLICATION_DATE, message)
}

/// Parses a replication `start` / `end` parameter: an ISO 8601 datetime
/// with an offset (`2026-01-31T10:00:00Z`, `…+00:00`, `…+0000`), truncated
/// to the minute as Salesforce does.
pub fn parse_replication_date(name: &str, text: &str) -> MosaicResult<DateTime<Utc>> {
    let t = text.trim();
    let parsed = DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map_err(|_| {
            MosaicError::field(
                ErrorCode::INVALID_REPLICATION_DATE,
                name,
                format!("{name}: '{}' is not an ISO 8601 datetime with an offset (e.g. 2026-01-31T10:00:00Z)",
                    t.chars().take(60).collect::<String>()),
            )
        })?;
    Ok(to_minute(parsed.with_timezone(&Utc)))
}

fn to_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::minutes(1)).unwrap_or(t)
}

/// Checks a range the way Salesforce does: `start` before `end`, at most
/// [`MAX_REPLICATION_DAYS`] long, `start` not in the future.
pub fn check_range(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> MosaicResult<ReplicationRange> {
    if start >= end {
        return Err(replication_error(
            "startDate must chronologically precede endDate",
        ));
    }
    if end - start > chrono::Duration::days(MAX_REPLICATION_DAYS) {
        return Err(replication_error(format!(
            "the range from start to end may be at most {MAX_REPLICATION_DAYS} days"
        )));
    }
    if start > now {
        return Err(replication_error("startDate may not be in the future"));
    }
    Ok(ReplicationRange {
        start,
        end,
        latest_covered: end.min(now),
    })
}

impl Platform {
    /// The recycle bin retention (platform-wide).
    pub fn recycle_retention(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.recycle_retention)
            .unwrap_or_else(|_| chrono::Duration::days(15))
    }

    /// Restores a record from the recycle bin with the master-detail
    /// children its delete took along, their pivot rows, search entries and
    /// the lookups the delete cleared. Needs delete permission on the object
    /// and: admin, modify all, ownership or full access to the record.
    /// Returns how many records came back.
    #[tracing::instrument(name = "records.undelete", skip_all, fields(object = %object))]
    pub async fn undelete(&self, c: &Caller, object: &str, id: &str) -> MosaicResult<usize> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Delete)?;
        let id = parse_record_id(id)?;
        let _lock = self.record_locks.lock(&c.tenant_id, [id.as_str()]).await;
        let masters: Vec<_> = obj
            .def
            .fields
            .iter()
            .filter(|f| f.data_type == DataType::MasterDetail)
            .filter_map(|f| f.slot.map(|s| (f, s)))
            .collect();
        let slots: Vec<_> = masters.iter().map(|(_, s)| *s).collect();
        let row = self
            .records
            .get(&c.tenant_id, obj.id(), &id, &slots)
            .await?
            .ok_or_else(|| record_not_found(&id))?;
        if !row.is_deleted {
            return Err(MosaicError::new(
                ErrorCode::UNDELETE_FAILED,
                format!("record '{id}' is not in the recycle bin"),
            ));
        }
        self.bin_root(&c.tenant_id, &id).await?;
        let mut ref_checks = Vec::new();
        for (f, slot) in &masters {
            let Some(mosaic_types::Value::Text(parent)) = row.value(*slot) else {
                continue;
            };
            let Some(target) = f.lookup_object_id.as_deref() else {
                continue;
            };
            let parent_obj = self.meta.object_by_id(&c.tenant_id, target).await?;
            let check = RefCheck {
                field: f.api_name.clone(),
                object_id: parent_obj.id().to_string(),
                id: parent.clone(),
            };
            let state = self
                .records
                .get(&c.tenant_id, parent_obj.id(), parent, &[])
                .await?
                .map(|r| r.is_deleted);
            if let Some(e) = mosaic_store::record_store::parent_error(&check, state) {
                return Err(e);
            }
            ref_checks.push(check);
        }
        self.require_undelete(c, &obj, &row).await?;
        let indexes = self
            .meta
            .objects(&c.tenant_id)
            .await?
            .iter()
            .map(|o| {
                (
                    o.def.id.clone(),
                    o.def
                        .fields
                        .iter()
                        .filter_map(mosaic_meta::service::index_spec)
                        .collect(),
                )
            })
            .collect();
        let n = self
            .records
            .undelete(
                &c.tenant_id,
                UndeleteOp {
                    object_id: obj.id().to_string(),
                    id: id.clone(),
                    indexes,
                    ref_checks,
                },
            )
            .await?;
        self.sharing_changed(&c.tenant_id);
        Ok(n)
    }

    /// The bin entry of a record deleted directly (the ones an undelete or
    /// a purge names).
    async fn bin_root(&self, tenant: &str, id: &str) -> MosaicResult<BinEntry> {
        let entry = self
            .records
            .bin_entry(tenant, id)
            .await?
            .ok_or_else(|| mosaic_store::record_store::not_in_bin(id))?;
        if entry.root_id != id {
            return Err(mosaic_store::record_store::cascaded_error(
                id,
                &entry.root_id,
            ));
        }
        Ok(entry)
    }

    async fn require_undelete(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        row: &mosaic_store::RecordRow,
    ) -> MosaicResult<()> {
        if settled(c, obj).is_some() || row.owner_id == c.user_id {
            return Ok(());
        }
        let g = self.sharing_generation(&c.tenant_id);
        match self.record_level(c, obj, row, g).await? {
            RecordLevel::None => Err(record_not_found(&row.id)),
            l if l < RecordLevel::Full => Err(insufficient("undelete")),
            _ => Ok(()),
        }
    }

    /// Whether the caller may see a bin entry: admins and users with
    /// modify all see every entry of an object they may read; others the
    /// records they deleted or own.
    async fn may_see_entry(&self, c: &Caller, e: &BinEntry) -> MosaicResult<bool> {
        let Ok(obj) = self.meta.object_by_id(&c.tenant_id, &e.object_id).await else {
            return Ok(false);
        };
        if !c.perms.object(obj.id()).read {
            return Ok(false);
        }
        if settled(c, &obj).is_some() || e.deleted_by == c.user_id {
            return Ok(true);
        }
        Ok(self
            .records
            .get(&c.tenant_id, obj.id(), &e.id, &[])
            .await?
            .is_some_and(|r| r.owner_id == c.user_id))
    }

    /// The records deleted directly (the ones an undelete names) the caller
    /// may see, newest first.
    pub async fn bin_list(
        &self,
        c: &Caller,
        object: Option<&str>,
        limit: usize,
    ) -> MosaicResult<Vec<(BinEntry, String)>> {
        let object_id = match object {
            Some(o) => {
                let obj = self.meta.object(&c.tenant_id, o).await?;
                crate::access::require(c, &obj, ObjectOp::Read)?;
                Some(obj.id().to_string())
            }
            None => None,
        };
        let entries = self
            .records
            .bin_entries(
                &c.tenant_id,
                &BinFilter {
                    object_id,
                    roots_only: true,
                    limit: limit.clamp(1, MAX_BIN_LIST),
                    ..Default::default()
                },
            )
            .await?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if self.may_see_entry(c, &e).await? {
                let api = self
                    .meta
                    .object_by_id(&c.tenant_id, &e.object_id)
                    .await
                    .map(|o| o.api_name().to_string())
                    .unwrap_or_default();
                out.push((e, api));
            }
        }
        Ok(out)
    }

    /// Removes records from the bin for good (`recycleBin/empty`): each id
    /// must name a record deleted directly that the caller may undelete;
    /// the children its delete took along go with it.
    pub async fn empty_bin(&self, c: &Caller, ids: &[String]) -> Vec<MosaicResult<String>> {
        let mut out = Vec::with_capacity(ids.len());
        for raw in ids {
            out.push(self.purge_one(c, raw).await);
        }
        out
    }

    async fn purge_one(&self, c: &Caller, raw: &str) -> MosaicResult<String> {
        let id = parse_record_id(raw)?;
        let entry = self.bin_root(&c.tenant_id, &id).await?;
        let obj = self
            .meta
            .object_by_id(&c.tenant_id, &entry.object_id)
            .await?;
        crate::access::require(c, &obj, ObjectOp::Delete)?;
        let row = self
            .records
            .get(&c.tenant_id, obj.id(), &id, &[])
            .await?
            .ok_or_else(|| record_not_found(&id))?;
        self.require_undelete(c, &obj, &row).await?;
        let roots = [id.clone()];
        while self
            .records
            .purge_bin(&c.tenant_id, &roots, PURGE_BATCH)
            .await?
            == PURGE_BATCH
        {}
        Ok(id)
    }

    /// The scheduled purge: for every tenant, the records deleted longer
    /// than the retention ago, in batches of [`PURGE_BATCH`].
    pub async fn purge_recycle_bins(&self, now: DateTime<Utc>) -> MosaicResult<u64> {
        let before = now - self.recycle_retention();
        let mut total = 0u64;
        for p in self.shards.directory().placements().await? {
            total += self.purge_tenant_bin(&p.tenant_id, before).await?;
        }
        Ok(total)
    }

    /// Removes a tenant's records deleted before `before`.
    pub async fn purge_tenant_bin(&self, tenant: &str, before: DateTime<Utc>) -> MosaicResult<u64> {
        let mut total = 0u64;
        loop {
            let roots: Vec<String> = self
                .records
                .bin_entries(
                    tenant,
                    &BinFilter {
                        to: Some(before),
                        roots_only: true,
                        limit: PURGE_BATCH,
                        ..Default::default()
                    },
                )
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect();
            if roots.is_empty() {
                return Ok(total);
            }
            let n = self.records.purge_bin(tenant, &roots, PURGE_BATCH).await?;
            total += n as u64;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Refuses a replication call on an object the caller may not read
    /// (before its range is looked at).
    pub async fn replication_access(&self, c: &Caller, object: &str) -> MosaicResult<()> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Read)
    }

    /// `sobjects/{O}/updated`: ids of the object's live records changed
    /// (created or updated) in the range, that the caller may read.
    pub async fn updated_ids(
        &self,
        c: &Caller,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> MosaicResult<(Vec<String>, ReplicationRange)> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Read)?;
        let range = check_range(start, end, self.config.clock.now())?;
        let ids = self
            .records
            .updated_ids(
                &c.tenant_id,
                obj.id(),
                range.start,
                range.latest_covered,
                MAX_REPLICATION_IDS + 1,
            )
            .await?;
        if ids.len() > MAX_REPLICATION_IDS {
            return Err(MosaicError::new(
                ErrorCode::EXCEEDED_ID_LIMIT,
                format!("more than {MAX_REPLICATION_IDS} records changed in the range: ask for a shorter one"),
            ));
        }
        let ids = self.readable_ids(c, &obj, ids).await?;
        Ok((ids, range))
    }

    /// `sobjects/{O}/deleted`: the object's records deleted in the range
    /// (from the bin), that the caller may see.
    pub async fn deleted_records(
        &self,
        c: &Caller,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> MosaicResult<DeletedRecords> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        crate::access::require(c, &obj, ObjectOp::Read)?;
        let now = self.config.clock.now();
        let range = check_range(start, end, now)?;
        let entries = self
            .records
            .bin_entries(
                &c.tenant_id,
                &BinFilter {
                    object_id: Some(obj.id().to_string()),
                    from: Some(range.start),
                    to: Some(range.latest_covered),
                    roots_only: false,
                    limit: MAX_REPLICATION_IDS + 1,
                },
            )
            .await?;
        if entries.len() > MAX_REPLICATION_IDS {
            return Err(MosaicError::new(
                ErrorCode::EXCEEDED_ID_LIMIT,
                format!("more than {MAX_REPLICATION_IDS} records deleted in the range: ask for a shorter one"),
            ));
        }
        let mut records = Vec::with_capacity(entries.len());
        for e in entries.into_iter().rev() {
            if self.may_see_entry(c, &e).await? {
                records.push((e.id, e.deleted_at));
            }
        }
        Ok(DeletedRecords {
            records,
            earliest_available: to_minute(now - self.recycle_retention()),
            latest_covered: range.latest_covered,
        })
    }

    /// The ids of `ids` the caller may read (all when sharing settles it).
    async fn readable_ids(
        &self,
        c: &Caller,
        obj: &ObjectMeta,
        ids: Vec<String>,
    ) -> MosaicResult<Vec<String>> {
        if settled(c, obj).is_some() {
            return Ok(ids);
        }
        let g = self.sharing_generation(&c.tenant_id);
        let slots: Vec<_> = crate::sharing::master_field(obj)
            .map(|(_, s)| vec![s])
            .unwrap_or_default();
        let mut keep = std::collections::HashSet::new();
        for chunk in ids.chunks(500) {
            for row in self
                .records
                .get_many(&c.tenant_id, obj.id(), chunk, &slots)
                .await?
            {
                if self.record_level(c, obj, &row, g).await? != RecordLevel::None {
                    keep.insert(row.id);
                }
            }
        }
        Ok(ids.into_iter().filter(|i| keep.contains(i)).collect())
    }
}
