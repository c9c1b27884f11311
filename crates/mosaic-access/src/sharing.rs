//! Who a user is for record sharing: the principals whose shares reach them
//! and the owners whose records they hold by the role hierarchy — computed
//! from a per-tenant index of users, roles and groups, cached per tenant and
//! per user, valid for the tenant's permission generation exactly as
//! permission snapshots are.
//!
//! **Hierarchy semantics.** A user sees what the users in roles *strictly
//! below* their own see: records those users own (with full access, as
//! their owner does) and every share that reaches them. Shares are
//! role-based: a share to role X reaches X's users and everyone above X; to
//! role-and-subordinates X, X's subtree and everyone above X; to a group,
//! its members (users, roles, role subtrees) and everyone above a role the
//! group covers; to a user, that user and everyone above their role.
//! Peers in one role do not see each other's records.
//!
//! Per-(user, record) decisions are cached against a second, *sharing*
//! generation: bumped by everything that bumps the permission generation
//! and by the changes that alter record decisions only (manual shares,
//! sharing rules, sharing models, ownership transfers, rule-made shares of a
//! save).

use crate::permissions::Generations;
use mosaic_store::access_store::{AccessStore, GroupRow, MemberKind, RoleRow};
use mosaic_store::sharing::Principal;
use mosaic_types::MosaicResult;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Per-user sharing views kept (as permission snapshots: 200k, 120 s).
pub const USER_SHARING_CAPACITY: u64 = 200_000;
pub const USER_SHARING_TTL: Duration = Duration::from_secs(120);
/// Per-(user, record) decisions kept.
pub const DECISION_CAPACITY: u64 = 1_000_000;
pub const DECISION_TTL: Duration = Duration::from_secs(120);

/// What a user may do with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordLevel {
    /// The record does not exist for them.
    None,
    Read,
    Edit,
    /// Edit, delete, share and transfer: owners, their managers, modify-all.
    Full,
}

/// Users, roles and groups of one tenant, indexed for principal computation.
#[derive(Debug, Default)]
pub struct TenantIndex {
    generation: u64,
    user_role: HashMap<String, String>,
    roles: HashMap<String, RoleRow>,
    role_users: HashMap<String, Vec<String>>,
    groups: Vec<GroupRow>,
}

impl TenantIndex {
    pub fn build(
        users: impl IntoIterator<Item = (String, Option<String>)>,
        roles: Vec<RoleRow>,
        groups: Vec<GroupRow>,
    ) -> TenantIndex {
        let mut idx = TenantIndex {
            roles: roles.into_iter().map(|r| (r.id.clone(), r)).collect(),
            groups,
            ..TenantIndex::default()
        };
        for (u, role) in users {
            if let Some(r) = role.filter(|r| idx.roles.contains_key(r)) {
                idx.role_users.entry(r.clone()).or_default().push(u.clone());
                idx.user_role.insert(u, r);
            }
        }
        idx
    }

    fn path(&self, role: &str) -> Option<&str> {
        self.roles.get(role).map(|r| r.path.as_str())
    }

    /// Roles strictly below `role`.
    fn below(&self, role: &str) -> Vec<&str> {
        let Some(p) = self.path(role) else {
            return Vec::new();
        };
        self.roles
            .values()
            .filter(|r| r.path.len() > p.len() && r.path.starts_with(p))
            .map(|r| r.id.as_str())
            .collect()
    }

    /// `role` and every role above it.
    fn above_or_self(&self, role: &str) -> Vec<&str> {
        let Some(p) = self.path(role) else {
            return Vec::new();
        };
        p.split('/')
            .filter(|s| !s.is_empty() && self.roles.contains_key(*s))
            .collect()
    }

    /// Role `x` is in the subtree of `top` (itself included).
    fn in_subtree(&self, x: &str, top: &str) -> bool {
        match (self.path(x), self.path(top)) {
            (Some(px), Some(pt)) => px.starts_with(pt),
            _ => false,
        }
    }

    /// Users whose role is `role`, or in its subtree.
    pub fn users_of(&self, p: &Principal) -> Vec<String> {
        match p {
            Principal::User(u) => vec![u.clone()],
            Principal::Role(r) => self.role_users.get(r).cloned().unwrap_or_default(),
            Principal::RoleAndSubordinates(r) => {
                let mut out: Vec<String> = self.role_users.get(r).cloned().unwrap_or_default();
                for b in self.below(r) {
                    out.extend(self.role_users.get(b).cloned().unwrap_or_default());
                }
                out
            }
            Principal::Group(g) => {
                let mut out = BTreeSet::new();
                if let Some(g) = self.groups.iter().find(|x| &x.id == g) {
                    for m in &g.members {
                        let p = match m.kind {
                            MemberKind::User => Principal::User(m.id.clone()),
                            MemberKind::Role => Principal::Role(m.id.clone()),
                            MemberKind::RoleAndSubordinates => {
                                Principal::RoleAndSubordinates(m.id.clone())
                            }
                        };
                        out.extend(self.users_of(&p));
                    }
                }
                out.into_iter().collect()
            }
        }
    }

    fn group_has_user(&self, g: &GroupRow, user: &str, role: Option<&str>) -> bool {
        g.members.iter().any(|m| match m.kind {
            MemberKind::User => m.id == user,
            MemberKind::Role => role == Some(m.id.as_str()),
            MemberKind::RoleAndSubordinates => role.is_some_and(|r| self.in_subtree(r, &m.id)),
        })
    }

    /// Whether group `g` reaches some role of `below`, the roles strictly
    /// below `role` (so a manager in `role` inherits its shares).
    fn group_covers_below(&self, g: &GroupRow, role: &str, below: &HashSet<&str>) -> bool {
        if below.is_empty() {
            return false;
        }
        g.members.iter().any(|m| match m.kind {
            MemberKind::User => self
                .user_role
                .get(&m.id)
                .is_some_and(|r| below.contains(r.as_str())),
            MemberKind::Role => below.contains(m.id.as_str()),
            // A subtree meets the roles below `role` when its top is below
            // `role`, or is `role` or above it (it then holds all of them).
            MemberKind::RoleAndSubordinates => {
                below.contains(m.id.as_str()) || self.in_subtree(role, &m.id)
            }
        })
    }

    /// The sharing view of one user.
    pub fn user_sharing(&self, user: &str) -> UserSharing {
        let role = self.user_role.get(user).map(String::as_str);
        let mut principals: BTreeSet<String> = BTreeSet::new();
        let mut owners: BTreeSet<String> = BTreeSet::new();
        principals.insert(Principal::User(user.to_string()).key());
        owners.insert(user.to_string());
        let below: HashSet<&str> = role
            .map(|r| self.below(r))
            .unwrap_or_default()
            .into_iter()
            .collect();
        if let Some(r) = role {
            principals.insert(Principal::Role(r.to_string()).key());
            for a in self.above_or_self(r) {
                principals.insert(Principal::RoleAndSubordinates(a.to_string()).key());
            }
            for &b in &below {
                principals.insert(Principal::Role(b.to_string()).key());
                principals.insert(Principal::RoleAndSubordinates(b.to_string()).key());
                for u in self.role_users.get(b).into_iter().flatten() {
                    principals.insert(Principal::User(u.clone()).key());
                    owners.insert(u.clone());
                }
            }
        }
        for g in &self.groups {
            if self.group_has_user(g, user, role)
                || role.is_some_and(|r| self.group_covers_below(g, r, &below))
            {
                principals.insert(Principal::Group(g.id.clone()).key());
            }
        }
        UserSharing {
            generation: self.generation,
            user_id: user.to_string(),
            principal_set: principals.iter().cloned().collect(),
            principals: Arc::new(principals.into_iter().collect()),
            owner_set: owners.iter().cloned().collect(),
            owners: Arc::new(owners.into_iter().collect()),
        }
    }
}

/// One user's sharing view.
#[derive(Debug, Clone)]
pub struct UserSharing {
    generation: u64,
    pub user_id: String,
    /// Principal keys whose shares reach the user (sorted).
    pub principals: Arc<Vec<String>>,
    principal_set: HashSet<String>,
    /// The user and the users below them: whose records they hold in full.
    pub owners: Arc<Vec<String>>,
    owner_set: HashSet<String>,
}

impl UserSharing {
    pub fn reaches(&self, p: &Principal) -> bool {
        self.principal_set.contains(&p.key())
    }

    pub fn reaches_key(&self, key: &str) -> bool {
        self.principal_set.contains(key)
    }

    /// The user owns records of `owner`'s, or holds them by the hierarchy.
    pub fn holds(&self, owner: &str) -> bool {
        self.owner_set.contains(owner)
    }
}

/// The caches of sharing: tenant indexes, user views, record decisions.
pub struct SharingCache {
    indexes: moka::sync::Cache<String, Arc<TenantIndex>>,
    /// Indexes built before, served while the database is unavailable if
    /// still of the current permission generation.
    last_indexes: mosaic_cache::LastGood<String, Arc<TenantIndex>>,
    users: moka::sync::Cache<String, Arc<UserSharing>>,
    decisions: moka::sync::Cache<String, (RecordLevel, u64)>,
    /// Bumped by every change that can alter a record decision.
    pub generations: Generations,
}

impl Default for SharingCache {
    fn default() -> Self {
        SharingCache {
            indexes: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(USER_SHARING_TTL)
                .build(),
            last_indexes: mosaic_cache::LastGood::new("sharing", 10_000),
            users: moka::sync::Cache::builder()
                .max_capacity(USER_SHARING_CAPACITY)
                .time_to_live(USER_SHARING_TTL)
                .build(),
            decisions: moka::sync::Cache::builder()
                .max_capacity(DECISION_CAPACITY)
                .time_to_live(DECISION_TTL)
                .build(),
            generations: Generations::default(),
        }
    }
}

fn key2(a: &str, b: &str) -> String {
    let mut k = String::with_capacity(a.len() + b.len() + 1);
    k.push_str(a);
    k.push('/');
    k.push_str(b);
    k
}

impl SharingCache {
    /// The user's sharing view, valid for permission generation `perm_gen`.
    pub async fn user(
        &self,
        store: &dyn AccessStore,
        perm_gen: &Generations,
        tenant_id: &str,
        user_id: &str,
    ) -> MosaicResult<Arc<UserSharing>> {
        let g = perm_gen.current(tenant_id);
        let k = key2(tenant_id, user_id);
        if let Some(u) = self.users.get(&k).filter(|u| u.generation == g) {
            return Ok(u);
        }
        let idx = self.index(store, perm_gen, tenant_id).await?;
        let u = Arc::new(idx.user_sharing(user_id));
        self.users.insert(k, u.clone());
        Ok(u)
    }

    /// The tenant's index at permission generation `perm_gen` (rule owners).
    pub async fn index(
        &self,
        store: &dyn AccessStore,
        perm_gen: &Generations,
        tenant_id: &str,
    ) -> MosaicResult<Arc<TenantIndex>> {
        let g = perm_gen.current(tenant_id);
        if let Some(i) = self.indexes.get(tenant_id).filter(|i| i.generation == g) {
            return Ok(i);
        }
        let read = async {
            let users = store.list_users(tenant_id).await?;
            let roles = store.list_roles(tenant_id).await?;
            let groups = store.list_groups(tenant_id).await?;
            MosaicResult::Ok((users, roles, groups))
        };
        let (users, roles, groups) = match read.await {
            Ok(rows) => rows,
            Err(e) => {
                return self
                    .last_indexes
                    .or_stale(&tenant_id.to_string(), e, |i| i.generation == g)
            }
        };
        let mut i = TenantIndex::build(users.into_iter().map(|u| (u.id, u.role_id)), roles, groups);
        i.generation = g;
        let i = Arc::new(i);
        self.indexes.insert(tenant_id.to_string(), i.clone());
        self.last_indexes.remember(tenant_id.to_string(), i.clone());
        Ok(i)
    }

    /// A cached decision of the current sharing generation.
    pub fn decision(&self, tenant_id: &str, user_id: &str, record_id: &str) -> Option<RecordLevel> {
        let g = self.generations.current(tenant_id);
        let mut k = key2(tenant_id, user_id);
        k.push('/');
        k.push_str(record_id);
        self.decisions
            .get(&k)
            .filter(|(_, dg)| *dg == g)
            .map(|(l, _)| l)
    }

    /// Keeps a decision computed from data read after `generation` was read.
    pub fn remember(
        &self,
        tenant_id: &str,
        user_id: &str,
        record_id: &str,
        level: RecordLevel,
        generation: u64,
    ) {
        let mut k = key2(tenant_id, user_id);
        k.push('/');
        k.push_str(record_id);
        self.decisions.insert(k, (level, generation));
    }

    /// Every cached decision of the tenant is stale from now on.
    pub fn changed(&self, tenant_id: &str) {
        self.generations.bump(tenant_id);
    }

    /// Drops everything cached for sharing, of every tenant.
    pub fn clear(&self) {
        self.indexes.invalidate_all();
        self.users.invalidate_all();
        self.decisions.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use mosaic_store::access_store::GroupMember;

    fn role(id: &str, path: &str) -> RoleRow {
        RoleRow {
            id: id.into(),
            tenant_id: "t".into(),
            name: id.into(),
            label: id.into(),
            parent_id: None,
            path: path.into(),
            depth: path.matches('/').count() as i64 - 1,
            created_at: Utc::now(),
        }
    }

    fn index() -> TenantIndex {
        // ceo > vp > (east, west)
        TenantIndex::build(
            [
                ("boss".to_string(), Some("ceo".to_string())),
                ("vince".to_string(), Some("vp".to_string())),
                ("erin".to_string(), Some("east".to_string())),
                ("eve".to_string(), Some("east".to_string())),
                ("will".to_string(), Some("west".to_string())),
                ("loner".to_string(), None),
            ],
            vec![
                role("ceo", "/ceo/"),
                role("vp", "/ceo/vp/"),
                role("east", "/ceo/vp/east/"),
                role("west", "/ceo/vp/west/"),
            ],
            vec![GroupRow {
                id: "g1".into(),
                tenant_id: "t".into(),
                name: "g1".into(),
                label: "g1".into(),
                members: vec![GroupMember {
                    kind: MemberKind::Role,
                    id: "west".into(),
                }],
                created_at: Utc::now(),
            }],
        )
    }

    #[test]
    fn managers_hold_what_is_below_them_and_peers_do_not() {
        let i = index();
        let vp = i.user_sharing("vince");
        assert!(vp.holds("erin") && vp.holds("will") && vp.holds("vince"));
        assert!(!vp.holds("boss"));
        let erin = i.user_sharing("erin");
        assert!(!erin.holds("eve"), "peers do not hold each other's records");
        assert!(erin.reaches(&Principal::RoleAndSubordinates("ceo".into())));
        assert!(!erin.reaches(&Principal::Role("vp".into())));
        assert!(vp.reaches(&Principal::Role("east".into())));
        assert!(vp.reaches(&Principal::User("will".into())));
        assert!(vp.reaches(&Principal::Group("g1".into())), "covers west");
        assert!(!erin.reaches(&Principal::Group("g1".into())));
        assert!(i
            .user_sharing("will")
            .reaches(&Principal::Group("g1".into())));
        let loner = i.user_sharing("loner");
        assert_eq!(loner.principals.as_slice(), ["u:loner".to_string()]);
        let mut west = i.users_of(&Principal::Group("g1".into()));
        west.sort();
        assert_eq!(west, vec!["will".to_string()]);
    }
}
