//! Permission snapshots: what one user may do with each object and field of
//! their tenant, computed once from their profile and permission sets and
//! kept in memory.
//!
//! A snapshot is valid only for the tenant generation it was built at.
//! Every change that can alter any user's permissions in a tenant bumps that
//! tenant's generation *before the change returns*; every lookup compares
//! generations, so a revoked grant is never served from memory — not even
//! for the request that follows the revoke.

use mosaic_store::access_store::{FieldPermissionRow, ObjectFlags, ObjectPermissionRow};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Snapshots kept (ARCHITECTURE.md: permission snapshots 200k, 120 s).
pub const SNAPSHOT_CACHE_CAPACITY: u64 = 200_000;
pub const SNAPSHOT_CACHE_TTL: Duration = Duration::from_secs(120);

/// Profile with every permission in its tenant.
pub const PROFILE_ADMIN: &str = "system_administrator";
/// Profile whose permissions are the union of the user's permission sets.
pub const PROFILE_STANDARD: &str = "standard";
pub const PROFILES: [&str; 2] = [PROFILE_STANDARD, PROFILE_ADMIN];

/// Field-level security of one field for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldAccess {
    pub read: bool,
    pub edit: bool,
}

/// What one user may do in their tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionSnapshot {
    pub tenant_id: String,
    pub user_id: String,
    admin: bool,
    /// False for an unknown or inactive user: the request is refused.
    active: bool,
    generation: u64,
    /// The system permission "Customize Application" (from a permission
    /// set): build the application without administering users.
    customize_application: bool,
    /// By object id.
    objects: HashMap<String, ObjectFlags>,
    /// By field id (field ids are unique across objects).
    fields: HashMap<String, FieldAccess>,
}

const ALL: ObjectFlags = ObjectFlags {
    create: true,
    read: true,
    edit: true,
    delete: true,
    view_all: true,
    modify_all: true,
};

/// Applies the implications between object permissions, as Salesforce does:
/// modify all ⇒ everything; view all, create, edit and delete ⇒ read.
pub fn normalize(mut f: ObjectFlags) -> ObjectFlags {
    if f.modify_all {
        return ALL;
    }
    if f.view_all || f.create || f.edit || f.delete {
        f.read = true;
    }
    f
}

impl PermissionSnapshot {
    /// A system administrator: everything in the tenant.
    pub fn system_administrator(tenant_id: &str, user_id: &str) -> PermissionSnapshot {
        PermissionSnapshot {
            tenant_id: tenant_id.to_string(),
            user_id: user_id.to_string(),
            admin: true,
            active: true,
            generation: 0,
            customize_application: true,
            objects: HashMap::new(),
            fields: HashMap::new(),
        }
    }

    /// No permission at all: a standard user without permission sets.
    pub fn nothing(tenant_id: &str, user_id: &str) -> PermissionSnapshot {
        PermissionSnapshot {
            admin: false,
            customize_application: false,
            ..PermissionSnapshot::system_administrator(tenant_id, user_id)
        }
    }

    /// An unknown or inactive user: nothing, and not a valid caller.
    pub fn inactive(tenant_id: &str, user_id: &str) -> PermissionSnapshot {
        PermissionSnapshot {
            active: false,
            ..PermissionSnapshot::nothing(tenant_id, user_id)
        }
    }

    /// Whether the user exists and is active (sessions of inactive users
    /// are refused even if a session cache still holds them).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// A standard user: the union of the rows of their permission sets.
    pub fn from_grants(
        tenant_id: &str,
        user_id: &str,
        objects: &[ObjectPermissionRow],
        fields: &[FieldPermissionRow],
    ) -> PermissionSnapshot {
        let mut s = PermissionSnapshot::nothing(tenant_id, user_id);
        for o in objects {
            let e = s.objects.entry(o.object_id.clone()).or_default();
            let f = o.flags;
            *e = normalize(ObjectFlags {
                create: e.create || f.create,
                read: e.read || f.read,
                edit: e.edit || f.edit,
                delete: e.delete || f.delete,
                view_all: e.view_all || f.view_all,
                modify_all: e.modify_all || f.modify_all,
            });
        }
        for f in fields {
            let e = s.fields.entry(f.field_id.clone()).or_default();
            e.edit |= f.edit;
            e.read |= f.read || f.edit;
        }
        s
    }

    /// Grants the system permission "Customize Application".
    pub fn with_customize_application(mut self, granted: bool) -> PermissionSnapshot {
        self.customize_application |= granted;
        self
    }

    pub fn with_generation(mut self, generation: u64) -> PermissionSnapshot {
        self.generation = generation;
        self
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// System administrators may do everything in their tenant.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the user may build the application: objects, fields,
    /// validation and workflow rules, layouts, list views, the formula
    /// editor and the AI builders (system administrators, and users with
    /// "Customize Application"). Users, permissions and sharing stay with
    /// [`PermissionSnapshot::is_admin`].
    pub fn can_customize_application(&self) -> bool {
        self.active && (self.admin || self.customize_application)
    }

    /// Object permissions on `object_id`.
    pub fn object(&self, object_id: &str) -> ObjectFlags {
        if self.admin {
            return ALL;
        }
        self.objects.get(object_id).copied().unwrap_or_default()
    }

    pub fn can_read_object(&self, object_id: &str) -> bool {
        self.admin || self.objects.get(object_id).is_some_and(|f| f.read)
    }

    /// Field-level security of a custom field (by field id).
    pub fn field(&self, field_id: &str) -> FieldAccess {
        if self.admin {
            return FieldAccess {
                read: true,
                edit: true,
            };
        }
        self.fields.get(field_id).copied().unwrap_or_default()
    }
}

/// Per-tenant generations: the number a snapshot must carry to be served.
#[derive(Default)]
pub struct Generations {
    next: AtomicU64,
    by_tenant: RwLock<HashMap<String, u64>>,
}

impl Generations {
    /// The tenant's current generation (0 until its first change).
    pub fn current(&self, tenant_id: &str) -> u64 {
        self.by_tenant
            .read()
            .map(|m| m.get(tenant_id).copied().unwrap_or(0))
            .unwrap_or(u64::MAX)
    }

    /// Moves the tenant to a new generation, never used before by any
    /// tenant: every snapshot built earlier is stale from now on.
    pub fn bump(&self, tenant_id: &str) {
        let g = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut m) = self.by_tenant.write() {
            m.insert(tenant_id.to_string(), g);
        }
    }
}

/// The snapshot cache: moka entries checked against [`Generations`].
pub struct SnapshotCache {
    entries: moka::sync::Cache<String, Arc<PermissionSnapshot>>,
    /// Snapshots built before, served while the database is unavailable if
    /// still of the tenant's current generation (no change since).
    last_good: mosaic_cache::LastGood<String, Arc<PermissionSnapshot>>,
    pub generations: Generations,
}

impl Default for SnapshotCache {
    fn default() -> Self {
        SnapshotCache::with_sizing(mosaic_cache::defaults::PERMISSIONS)
    }
}

fn key(tenant_id: &str, user_id: &str) -> String {
    let mut k = String::with_capacity(tenant_id.len() + user_id.len() + 1);
    k.push_str(tenant_id);
    k.push('/');
    k.push_str(user_id);
    k
}

impl SnapshotCache {
    /// A cache of `sizing`'s capacity and lifetime (`CacheConfig::permissions`).
    pub fn with_sizing(sizing: mosaic_cache::L1Sizing) -> SnapshotCache {
        SnapshotCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(sizing.capacity)
                .time_to_live(sizing.ttl)
                .build(),
            last_good: mosaic_cache::LastGood::new("permissions", sizing.capacity),
            generations: Generations::default(),
        }
    }

    /// Drops every snapshot of every tenant.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Snapshots held (approximate while writes are pending).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// The cached snapshot if it is of the tenant's current generation.
    pub fn get(&self, tenant_id: &str, user_id: &str) -> Option<Arc<PermissionSnapshot>> {
        let g = self.generations.current(tenant_id);
        self.entries
            .get(&key(tenant_id, user_id))
            .filter(|s| s.generation == g)
    }

    pub fn insert(&self, snapshot: Arc<PermissionSnapshot>) {
        let k = key(&snapshot.tenant_id, &snapshot.user_id);
        self.last_good.remember(k.clone(), snapshot.clone());
        self.entries.insert(k, snapshot);
    }

    /// Building the snapshot failed with `e`: the last one built, if the
    /// database is unavailable and nothing changed since; else `e`.
    pub fn or_stale(
        &self,
        tenant_id: &str,
        user_id: &str,
        e: mosaic_types::MosaicError,
    ) -> mosaic_types::MosaicResult<Arc<PermissionSnapshot>> {
        let g = self.generations.current(tenant_id);
        self.last_good
            .or_stale(&key(tenant_id, user_id), e, |s| s.generation == g)
    }

    /// Drops every snapshot of the tenant (by generation) and the user's entry.
    pub fn invalidate(&self, tenant_id: &str, user_id: Option<&str>) {
        self.generations.bump(tenant_id);
        if let Some(u) = user_id {
            self.entries.invalidate(&key(tenant_id, u));
            self.last_good.forget(&key(tenant_id, u));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(object: &str, f: ObjectFlags) -> ObjectPermissionRow {
        ObjectPermissionRow {
            object_id: object.into(),
            flags: f,
        }
    }

    #[test]
    fn union_and_implications() {
        let s = PermissionSnapshot::from_grants(
            "t",
            "u",
            &[
                row(
                    "o1",
                    ObjectFlags {
                        edit: true,
                        ..Default::default()
                    },
                ),
                row(
                    "o1",
                    ObjectFlags {
                        create: true,
                        ..Default::default()
                    },
                ),
                row(
                    "o2",
                    ObjectFlags {
                        modify_all: true,
                        ..Default::default()
                    },
                ),
            ],
            &[FieldPermissionRow {
                object_id: "o1".into(),
                field_id: "f1".into(),
                read: false,
                edit: true,
            }],
        );
        let o1 = s.object("o1");
        assert!(o1.read && o1.edit && o1.create && !o1.delete && !o1.view_all);
        assert_eq!(s.object("o2"), ALL);
        assert!(!s.can_read_object("o3"));
        assert_eq!(
            s.field("f1"),
            FieldAccess {
                read: true,
                edit: true
            }
        );
        assert_eq!(s.field("f2"), FieldAccess::default());
        let a = PermissionSnapshot::system_administrator("t", "u");
        assert!(a.can_read_object("anything") && a.field("x").edit);
    }

    #[test]
    fn a_bump_makes_cached_snapshots_stale() {
        let c = SnapshotCache::default();
        let g = c.generations.current("t");
        c.insert(Arc::new(
            PermissionSnapshot::nothing("t", "u").with_generation(g),
        ));
        assert!(c.get("t", "u").is_some());
        c.generations.bump("other");
        assert!(c.get("t", "u").is_some(), "another tenant's change");
        c.generations.bump("t");
        assert!(c.get("t", "u").is_none());
    }
}
