//! The shard directory: which record shards exist and which shard holds
//! each tenant, kept in the metadata database with a version every change
//! moves, so routers can cache it and notice changes; and the placement
//! rule that picks a shard for a new tenant by tier.
//!
//! Placement (the seed's tier-based allocation): enterprise tenants get a
//! dedicated shard — a registered spare of the `enterprise` group that holds
//! no tenant — or a clear error; professional tenants share `professional`
//! shards of at most 100 tenants and 500 M records; starter tenants share
//! `starter` shards of at most 500 tenants and 100 M records (a shard's own
//! `max_tenants` / `max_records` can lower these). Among the shards with
//! room, rendezvous (highest-random-weight) hashing of tenant and shard ids
//! chooses, so adding a shard moves no existing choice but its own. When no
//! shard of a tier's group is registered at all, the built-in `local` shard
//! (the embedded database beside the metadata) takes the tenant: a laptop
//! needs no shard configuration. Once any `enterprise` shard is registered,
//! enterprise tenants are placed only on a spare, and refused when none is
//! left.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The built-in shard every deployment has: `<data-dir>/records.sqlite`.
pub const LOCAL_SHARD: &str = "local";

/// Tenants per shard and records per shard by tier (the seed's numbers).
pub const STARTER_MAX_TENANTS: u64 = 500;
pub const STARTER_MAX_RECORDS: u64 = 100_000_000;
pub const PROFESSIONAL_MAX_TENANTS: u64 = 100;
pub const PROFESSIONAL_MAX_RECORDS: u64 = 500_000_000;

/// Above this share of a capacity a shard is reported as nearly full.
pub const NEARLY_FULL: f64 = 0.8;

pub const GROUPS: [&str; 3] = ["starter", "professional", "enterprise"];

#[derive(Debug, Clone, PartialEq)]
pub struct ShardRow {
    pub id: String,
    /// `sqlite:<path>` or `postgres://…`.
    pub url: String,
    /// `starter`, `professional` or `enterprise`.
    pub group: String,
    pub max_tenants: Option<u64>,
    pub max_records: Option<u64>,
    /// `active`, or `draining` (no new tenants).
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl ShardRow {
    /// The tenant and record limits that apply to this shard.
    pub fn limits(&self) -> (u64, u64) {
        let (t, r) = match self.group.as_str() {
            "professional" => (PROFESSIONAL_MAX_TENANTS, PROFESSIONAL_MAX_RECORDS),
            "enterprise" => (1, u64::MAX),
            _ => (STARTER_MAX_TENANTS, STARTER_MAX_RECORDS),
        };
        (
            self.max_tenants.map_or(t, |m| m.min(t)),
            self.max_records.map_or(r, |m| m.min(r)),
        )
    }
}

/// Where one tenant's records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub tenant_id: String,
    pub shard_id: String,
    /// Moves with every reassignment of this tenant.
    pub version: i64,
}

#[async_trait]
pub trait ShardDirectory: Send + Sync {
    /// Registers a shard; an id taken → DUPLICATE_VALUE.
    async fn add_shard(&self, row: ShardRow) -> MosaicResult<()>;
    async fn shards(&self) -> MosaicResult<Vec<ShardRow>>;
    /// `active` or `draining`; an unknown id → NOT_FOUND.
    async fn set_shard_status(&self, id: &str, status: &str) -> MosaicResult<()>;
    async fn placement(&self, tenant_id: &str) -> MosaicResult<Option<Placement>>;
    async fn placements(&self) -> MosaicResult<Vec<Placement>>;
    /// Places a tenant that has no placement yet; if another placed it
    /// first, that placement is returned and `shard_id` is ignored.
    async fn assign(&self, tenant_id: &str, shard_id: &str) -> MosaicResult<Placement>;
    /// Moves a tenant to another shard if its placement is still at
    /// `expected_version` (else CONFLICT).
    async fn reassign(
        &self,
        tenant_id: &str,
        shard_id: &str,
        expected_version: i64,
    ) -> MosaicResult<Placement>;
    /// Moves with every change of the directory (shards or placements).
    async fn version(&self) -> MosaicResult<i64>;
    /// Tenants of the platform, placed or not (those not placed yet are
    /// on the built-in shard).
    async fn tenant_count(&self) -> MosaicResult<u64>;
}

/// How full a shard is: its tenants and records now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub tenants: u64,
    pub records: u64,
}

fn weight(tenant_id: &str, shard_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tenant_id.as_bytes());
    h.update([0]);
    h.update(shard_id.as_bytes());
    h.finalize().into()
}

/// The group that serves a tier.
pub fn group_of(tier: &str) -> &'static str {
    match tier {
        "enterprise" => "enterprise",
        "professional" => "professional",
        _ => "starter",
    }
}

/// Picks the shard for a new tenant of `tier` (see the module's rules).
pub fn choose_shard(
    tenant_id: &str,
    tier: &str,
    shards: &[ShardRow],
    load: &HashMap<String, Load>,
) -> MosaicResult<String> {
    let group = group_of(tier);
    let in_group: Vec<&ShardRow> = shards
        .iter()
        .filter(|s| s.group == group && s.id != LOCAL_SHARD)
        .collect();
    if in_group.is_empty() {
        return Ok(LOCAL_SHARD.to_string());
    }
    let room: Vec<&ShardRow> = in_group
        .into_iter()
        .filter(|s| s.status == "active")
        .filter(|s| {
            let l = load.get(&s.id).copied().unwrap_or_default();
            let (mt, mr) = s.limits();
            l.tenants < mt && l.records < mr
        })
        .collect();
    room.into_iter()
        .max_by_key(|s| weight(tenant_id, &s.id))
        .map(|s| s.id.clone())
        .ok_or_else(|| {
            MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                if group == "enterprise" {
                    "no spare enterprise shard is left for a dedicated placement: add one with `mosaic shard add --group enterprise`".to_string()
                } else {
                    format!(
                        "every active {group} shard is at capacity: add one with `mosaic shard add --group {group}`"
                    )
                },
            )
        })
}

/// Shards above [`NEARLY_FULL`] of a capacity, with a suggestion.
pub fn nearly_full(shards: &[ShardRow], load: &HashMap<String, Load>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in shards.iter().filter(|s| s.id != LOCAL_SHARD) {
        let l = load.get(&s.id).copied().unwrap_or_default();
        let (mt, mr) = s.limits();
        let tf = l.tenants as f64 / mt.max(1) as f64;
        let rf = l.records as f64 / mr.max(1) as f64;
        if s.group != "enterprise" && (tf > NEARLY_FULL || rf > NEARLY_FULL) {
            out.push((
                s.id.clone(),
                format!(
                    "{} holds {} of {} tenants and {} of {} records: add a {} shard so new tenants go there, or drain it (`mosaic shard drain`)",
                    s.id, l.tenants, mt, l.records, mr, s.group
                ),
            ));
        }
    }
    out
}

/// Checks a shard registration's fields.
pub fn check_shard(row: &ShardRow) -> MosaicResult<()> {
    let bad = |f: &str, m: String| Err(MosaicError::field(ErrorCode::INVALID_INPUT, f, m));
    if row.id.is_empty()
        || row.id.len() > 40
        || !row
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad(
            "id",
            "a shard id is 1–40 letters, digits, '-' or '_'".to_string(),
        );
    }
    if row.id == LOCAL_SHARD {
        return bad("id", format!("'{LOCAL_SHARD}' is the built-in shard"));
    }
    if !GROUPS.contains(&row.group.as_str()) {
        return bad("group", format!("group is one of {}", GROUPS.join(", ")));
    }
    if !(row.url.starts_with("sqlite:")
        || row.url.starts_with("postgres://")
        || row.url.starts_with("postgresql://"))
    {
        return bad(
            "url",
            "a shard url is sqlite:<path> or postgres://…".to_string(),
        );
    }
    if row.max_tenants == Some(0) || row.max_records == Some(0) {
        return bad("max_tenants", "limits are at least 1".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, group: &str) -> ShardRow {
        ShardRow {
            id: id.into(),
            url: format!("sqlite:/tmp/{id}.sqlite"),
            group: group.into(),
            max_tenants: None,
            max_records: None,
            status: "active".into(),
            created_at: Utc::now(),
        }
    }

    fn load(v: &[(&str, u64, u64)]) -> HashMap<String, Load> {
        v.iter()
            .map(|(id, t, r)| {
                (
                    id.to_string(),
                    Load {
                        tenants: *t,
                        records: *r,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn without_shards_of_a_group_the_local_shard_takes_the_tenant() {
        let shards = vec![shard("p1", "professional")];
        assert_eq!(
            choose_shard("t1", "starter", &shards, &HashMap::new()).unwrap(),
            LOCAL_SHARD
        );
        assert_eq!(
            choose_shard("t1", "professional", &shards, &HashMap::new()).unwrap(),
            "p1"
        );
        assert_eq!(
            choose_shard("t1", "enterprise", &shards, &HashMap::new()).unwrap(),
            LOCAL_SHARD,
            "no dedicated shards configured: the embedded deployment"
        );
    }

    #[test]
    fn each_tier_respects_its_capacity() {
        let shards = vec![
            shard("s1", "starter"),
            shard("s2", "starter"),
            shard("p1", "professional"),
            shard("e1", "enterprise"),
            shard("e2", "enterprise"),
        ];
        // Starter: 500 tenants or 100 M records.
        let l = load(&[("s1", 500, 0), ("s2", 10, 100_000_000)]);
        assert_eq!(
            choose_shard("t", "starter", &shards, &l).unwrap_err().code,
            ErrorCode::LIMIT_EXCEEDED
        );
        let l = load(&[("s1", 499, 0), ("s2", 10, 100_000_000)]);
        assert_eq!(choose_shard("t", "starter", &shards, &l).unwrap(), "s1");
        // Professional: 100 tenants.
        let l = load(&[("p1", 100, 0)]);
        assert!(choose_shard("t", "professional", &shards, &l).is_err());
        let l = load(&[("p1", 99, 499_999_999)]);
        assert_eq!(
            choose_shard("t", "professional", &shards, &l).unwrap(),
            "p1"
        );
        // Enterprise: a spare only.
        let l = load(&[("e1", 1, 0)]);
        assert_eq!(choose_shard("t", "enterprise", &shards, &l).unwrap(), "e2");
        let l = load(&[("e1", 1, 0), ("e2", 1, 0)]);
        let e = choose_shard("t", "enterprise", &shards, &l).unwrap_err();
        assert!(e.message.contains("spare"), "{}", e.message);
        // A shard's own limit is lower; draining shards take no one.
        let mut small = shard("s3", "starter");
        small.max_tenants = Some(2);
        let mut draining = shard("s4", "starter");
        draining.status = "draining".into();
        let shards = vec![small, draining];
        let l = load(&[("s3", 2, 0)]);
        assert!(choose_shard("t", "starter", &shards, &l).is_err());
    }

    #[test]
    fn hashing_spreads_tenants_and_adding_a_shard_moves_only_its_own() {
        let three = vec![
            shard("a", "starter"),
            shard("b", "starter"),
            shard("c", "starter"),
        ];
        let mut four = three.clone();
        four.push(shard("d", "starter"));
        let none = HashMap::new();
        let mut per = HashMap::new();
        let mut moved_elsewhere = 0;
        for i in 0..3000 {
            let t = format!("tenant-{i}");
            let x = choose_shard(&t, "starter", &three, &none).unwrap();
            *per.entry(x.clone()).or_insert(0) += 1;
            let y = choose_shard(&t, "starter", &four, &none).unwrap();
            if y != x && y != "d" {
                moved_elsewhere += 1;
            }
        }
        assert_eq!(moved_elsewhere, 0, "only the new shard gains tenants");
        for n in per.values() {
            assert!((800..1200).contains(n), "{per:?}");
        }
    }

    #[test]
    fn nearly_full_shards_are_reported() {
        let shards = vec![shard("s1", "starter"), shard("p1", "professional")];
        let l = load(&[("s1", 401, 0), ("p1", 10, 0)]);
        let r = nearly_full(&shards, &l);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, "s1");
    }
}
