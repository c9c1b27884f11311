//! Metadata reads spread over read replicas, writes on the primary, and
//! read-your-writes for the writes made through this store
//! ([`ReplicatedMetaStore`], decision 0014).
//!
//! Every write goes to the primary. A read goes to the replicas in round
//! robin; a replica that fails (its circuit breaker open, unreachable, any
//! error) is skipped for the next, and the primary serves the read when no
//! replica could. The caller never sees a replica's error.
//!
//! *Read-your-writes.* After a write, the store remembers the primary's log
//! position ([`ReplicationPosition`]) as a *mark*: per tenant for tenant and
//! object writes, and as the latest mark for session writes (sessions are
//! read by token hash, before the tenant is known). A replica serves a read
//! under a mark only when it has replayed the log at least that far; marks
//! that every replica has passed are dropped. A replica that reports no
//! position (not a physical standby) serves object reads under a mark only
//! when the rows it returns carry the versions this store wrote (a deleted
//! object must be absent); everything else under a mark goes elsewhere.
//!
//! Users are always read from the primary: their changes (activation,
//! profile, role) are written by the access store, outside this store, so no
//! mark could cover them, and a deactivated user must be refused at once.

use crate::guard::is_dependency_failure;
use crate::meta_store::{MetaStore, ObjectRow, SessionRow, TenantRow, UserRow};
use async_trait::async_trait;
use mosaic_types::{MosaicError, MosaicResult};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most replicas one store spreads reads over.
pub const MAX_REPLICAS: usize = 16;
/// Most tenants with a pending mark each; the writes of further tenants
/// raise one shared mark that every tenant's reads respect (sound, coarser).
pub const MAX_MARKED_TENANTS: usize = 10_000;
/// Most object writes remembered per marked tenant for version checks; past
/// it the tenant's object reads are checked by log position only.
pub const MAX_MARKED_OBJECTS: usize = 1_000;

/// A position in the primary's write-ahead log (PostgreSQL: an LSN as a
/// number); positions only grow.
pub type LogPosition = u64;

/// Where a database stands in the primary's write-ahead log.
#[async_trait]
pub trait ReplicationPosition: Send + Sync {
    /// On the primary: a position at or past every change committed so far.
    /// On a replica: the position replayed so far, or `None` when the
    /// database replays no primary's log (it is not a physical standby):
    /// then only a version check can tell whether it holds a write.
    async fn position(&self) -> MosaicResult<Option<LogPosition>>;
}

/// One metadata database: its store and how to ask its log position.
pub struct MetaMember {
    /// `metadata-replica:<n>` for replicas (the name of its breaker too).
    pub name: String,
    pub store: Arc<dyn MetaStore>,
    pub position: Arc<dyn ReplicationPosition>,
}

/// Reads served per database since start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCounts {
    pub primary: u64,
    /// `(replica name, reads served)`, in configuration order.
    pub replicas: Vec<(String, u64)>,
}

struct Replica {
    member: MetaMember,
    /// The highest position this replica was seen to have replayed (0: none
    /// known yet, or it reports none).
    replayed: AtomicU64,
    /// It answered that it replays no log (not a standby): it is not asked
    /// again, only version checks can accept its answers under a mark.
    no_position: AtomicBool,
    reads: AtomicU64,
}

/// A write whose log position is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    At(LogPosition),
    /// The primary's position could not be read after the write; resolved by
    /// the next read (any position read after the write returned covers it).
    Unknown,
}

impl Mark {
    fn later(a: Option<Mark>, b: Mark) -> Mark {
        match (a, b) {
            (Some(Mark::Unknown), _) | (_, Mark::Unknown) => Mark::Unknown,
            (Some(Mark::At(x)), Mark::At(y)) => Mark::At(x.max(y)),
            (None, m) => m,
        }
    }
}

/// What this store wrote of one object while its tenant's mark is pending:
/// `Some((api name lower-cased, version))`, or `None` when deleted.
type WrittenObject = Option<(String, i64)>;

struct TenantMark {
    mark: Mark,
    /// Objects written since the mark was raised; `None` past
    /// [`MAX_MARKED_OBJECTS`] (version checks are off for the tenant).
    objects: Option<HashMap<String, WrittenObject>>,
}

#[derive(Default)]
struct Marks {
    tenants: HashMap<String, TenantMark>,
    /// Writes of tenants that found `tenants` full.
    overflow: Option<Mark>,
    /// The latest write of any kind: reads not keyed by tenant respect it.
    latest: Option<Mark>,
    /// Counts `Mark::Unknown`s raised: a position read after it was loaded
    /// resolves only the unknowns raised before.
    unknowns_raised: u64,
}

/// What a read is keyed by.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Tenant(&'a str),
    /// Sessions by token hash: the tenant is not known before the read.
    Unkeyed,
}

/// One read, runnable on any member.
type ReadOp<'a, T> = dyn Fn(Arc<dyn MetaStore>) -> Pin<Box<dyn Future<Output = MosaicResult<T>> + Send + 'a>>
    + Send
    + Sync
    + 'a;

/// Whether an answer holds every object write this store made for the
/// tenant (the version check of replicas without a log position).
type VersionCheck<'a, T> = dyn Fn(&T, &HashMap<String, WrittenObject>) -> bool + Send + Sync + 'a;

/// How fresh a replica is for a read.
enum Freshness {
    /// Replayed past the read's mark (or there is none).
    Fresh,
    /// Behind the mark, or reports no position: a version check may still
    /// accept its answer.
    Unproven,
    /// Its position could not be read: skip it.
    Down,
}

/// The metadata database with read replicas behind the [`MetaStore`] trait.
pub struct ReplicatedMetaStore {
    primary: MetaMember,
    replicas: Vec<Replica>,
    next: AtomicUsize,
    primary_reads: AtomicU64,
    marks: Mutex<Marks>,
    /// Marks at or below this were dropped (every replica replayed past).
    swept: AtomicU64,
}

impl ReplicatedMetaStore {
    /// Writes to `primary`, reads spread over `replicas`. More than
    /// [`MAX_REPLICAS`] → `INVALID_INPUT`.
    pub fn new(
        primary: MetaMember,
        replicas: Vec<MetaMember>,
    ) -> MosaicResult<ReplicatedMetaStore> {
        if replicas.len() > MAX_REPLICAS {
            return Err(MosaicError::invalid(format!(
                "at most {MAX_REPLICAS} metadata read replicas, not {}",
                replicas.len()
            )));
        }
        Ok(ReplicatedMetaStore {
            primary,
            replicas: replicas
                .into_iter()
                .map(|member| Replica {
                    member,
                    replayed: AtomicU64::new(0),
                    no_position: AtomicBool::new(false),
                    reads: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            primary_reads: AtomicU64::new(0),
            marks: Mutex::default(),
            swept: AtomicU64::new(0),
        })
    }

    /// The primary's store (health probes ask the primary, not a replica).
    pub fn primary(&self) -> &Arc<dyn MetaStore> {
        &self.primary.store
    }

    /// Reads served by the primary and by each replica since start.
    pub fn read_counts(&self) -> ReadCounts {
        ReadCounts {
            primary: self.primary_reads.load(Ordering::Relaxed),
            replicas: self
                .replicas
                .iter()
                .map(|r| (r.member.name.clone(), r.reads.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Tenants whose reads wait for a replica to replay their writes.
    pub fn pending_marks(&self) -> usize {
        self.lock().tenants.len()
    }

    fn lock(&self) -> MutexGuard<'_, Marks> {
        // The map stays consistent whatever panicked while holding it: every
        // update is a single insert or retain.
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---------- marks ----------

    /// Raises the marks of a write that may have changed the primary
    /// (succeeded, or failed in a way that may have committed).
    async fn wrote<T>(
        &self,
        result: &MosaicResult<T>,
        tenant: Option<&str>,
        object: Option<(&str, WrittenObject)>,
    ) {
        if self.replicas.is_empty() {
            return;
        }
        let mark = match result {
            Ok(_) => match self.primary.position.position().await {
                Ok(Some(p)) => Mark::At(p),
                Ok(None) | Err(_) => Mark::Unknown,
            },
            // The primary is failing: asking it again now would only wait
            // longer; the next read resolves the mark.
            Err(e) if is_dependency_failure(e) => Mark::Unknown,
            Err(_) => return, // refused before anything was written
        };
        let mut m = self.lock();
        if mark == Mark::Unknown {
            m.unknowns_raised += 1;
        }
        m.latest = Some(Mark::later(m.latest, mark));
        let Some(tenant) = tenant else { return };
        if !m.tenants.contains_key(tenant) && m.tenants.len() >= MAX_MARKED_TENANTS {
            m.overflow = Some(Mark::later(m.overflow, mark));
            return;
        }
        let entry = m
            .tenants
            .entry(tenant.to_string())
            .or_insert_with(|| TenantMark {
                mark,
                objects: Some(HashMap::new()),
            });
        entry.mark = Mark::later(Some(entry.mark), mark);
        if let Some((id, written)) = object {
            if let Some(objects) = &mut entry.objects {
                if objects.len() >= MAX_MARKED_OBJECTS && !objects.contains_key(id) {
                    entry.objects = None;
                } else {
                    objects.insert(id.to_string(), written);
                }
            }
        }
    }

    /// The position a replica must have replayed to serve a read of
    /// `scope`, `None` when any replica may. An unknown mark is resolved
    /// here by reading the primary's position now; if that fails, the
    /// read goes to the primary (`Some(Mark::Unknown)`).
    async fn need(&self, scope: Scope<'_>) -> Option<Mark> {
        let (need, fence) = {
            let m = self.lock();
            let need = match scope {
                Scope::Tenant(t) => match (m.tenants.get(t).map(|e| e.mark), m.overflow) {
                    (None, o) => o,
                    (Some(a), o) => Some(Mark::later(o, a)),
                },
                Scope::Unkeyed => m.latest,
            };
            (need, m.unknowns_raised)
        };
        if need != Some(Mark::Unknown) {
            return need;
        }
        let Ok(Some(p)) = self.primary.position.position().await else {
            return need;
        };
        let mut m = self.lock();
        if m.unknowns_raised == fence {
            // Every unknown mark now standing was raised by a write that
            // returned before `p` was read, so `p` covers it.
            let resolve = |mark: &mut Mark| {
                if *mark == Mark::Unknown {
                    *mark = Mark::At(p);
                }
            };
            m.tenants.values_mut().for_each(|e| resolve(&mut e.mark));
            if let Some(o) = &mut m.overflow {
                resolve(o);
            }
            if let Some(l) = &mut m.latest {
                resolve(l);
            }
            Some(Mark::At(p))
        } else {
            need
        }
    }

    /// Whether `replica` has replayed past `need`, asking it only when what
    /// it was last seen to have replayed is not enough.
    async fn freshness(&self, replica: &Replica, need: Option<Mark>) -> Freshness {
        let target = match need {
            None => return Freshness::Fresh,
            Some(Mark::Unknown) => return Freshness::Unproven,
            Some(Mark::At(p)) => p,
        };
        if replica.replayed.load(Ordering::Relaxed) >= target {
            return Freshness::Fresh;
        }
        if replica.no_position.load(Ordering::Relaxed) {
            return Freshness::Unproven;
        }
        match replica.member.position.position().await {
            Ok(Some(p)) => {
                replica.replayed.fetch_max(p, Ordering::Relaxed);
                self.sweep();
                if p >= target {
                    Freshness::Fresh
                } else {
                    Freshness::Unproven
                }
            }
            Ok(None) => {
                replica.no_position.store(true, Ordering::Relaxed);
                Freshness::Unproven
            }
            Err(_) => Freshness::Down,
        }
    }

    /// Drops the marks every replica has replayed past.
    fn sweep(&self) {
        let floor = self
            .replicas
            .iter()
            .map(|r| r.replayed.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        if floor <= self.swept.fetch_max(floor, Ordering::Relaxed) {
            return;
        }
        let passed = |m: &Mark| matches!(m, Mark::At(p) if *p <= floor);
        let mut m = self.lock();
        m.tenants.retain(|_, e| !passed(&e.mark));
        if m.overflow.as_ref().is_some_and(passed) {
            m.overflow = None;
        }
        if m.latest.as_ref().is_some_and(passed) {
            m.latest = None;
        }
    }

    /// Whether `answer` holds this store's object writes for `tenant`.
    fn holds_writes<T>(&self, tenant: &str, answer: &T, check: &VersionCheck<'_, T>) -> bool {
        let m = self.lock();
        if m.overflow.is_some() {
            return false; // writes of this tenant may be in the overflow mark
        }
        match m.tenants.get(tenant) {
            // Swept: every replica has replayed the tenant's writes.
            None => true,
            Some(TenantMark { objects: None, .. }) => false,
            Some(TenantMark {
                objects: Some(objects),
                ..
            }) => check(answer, objects),
        }
    }

    // ---------- reads ----------

    /// Runs `op` on the first replica in round-robin order that is fresh
    /// enough (or whose answer passes `check`) and answers; else on the
    /// primary.
    async fn read<T>(
        &self,
        scope: Scope<'_>,
        op: &ReadOp<'_, T>,
        check: Option<&VersionCheck<'_, T>>,
    ) -> MosaicResult<T> {
        let n = self.replicas.len();
        if n > 0 {
            let need = self.need(scope).await;
            let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
            for i in 0..n {
                let replica = &self.replicas[(start + i) % n];
                let fresh = match self.freshness(replica, need).await {
                    Freshness::Down => continue,
                    Freshness::Unproven if check.is_none() => continue,
                    Freshness::Fresh => true,
                    Freshness::Unproven => false,
                };
                let answer = match op(replica.member.store.clone()).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(replica = %replica.member.name, error = %e.message, "metadata replica read failed; trying the next");
                        continue;
                    }
                };
                let accepted = fresh
                    || match (scope, check) {
                        (Scope::Tenant(t), Some(c)) => self.holds_writes(t, &answer, c),
                        _ => false,
                    };
                if accepted {
                    replica.reads.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("metadata_reads_total", "database" => replica.member.name.clone())
                        .increment(1);
                    return Ok(answer);
                }
            }
        }
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("metadata_reads_total", "database" => "primary").increment(1);
        op(self.primary.store.clone()).await
    }
}

/// The version check of one object answer: an object this store wrote must
/// come back at the version written (or be absent if deleted); an object
/// found by `name_lc` must be the one this store last gave that name.
fn object_holds(
    row: &Option<ObjectRow>,
    name_lc: Option<&str>,
    id: Option<&str>,
    written: &HashMap<String, WrittenObject>,
) -> bool {
    if let Some(r) = row {
        if let Some(w) = written.get(&r.id) {
            if w.as_ref().map(|(_, v)| *v) != Some(r.version) {
                return false;
            }
        }
    }
    if let Some(id) = id {
        if let Some(w) = written.get(id) {
            return match (w, row) {
                (None, None) => true,
                (Some((_, v)), Some(r)) => r.version == *v,
                _ => false,
            };
        }
    }
    if let Some(name) = name_lc {
        // An object this store created or renamed under the name must be
        // the answer.
        let named = written
            .iter()
            .find(|(_, w)| w.as_ref().is_some_and(|(n, _)| n == name));
        if let Some((wid, _)) = named {
            return row.as_ref().is_some_and(|r| &r.id == wid);
        }
    }
    true
}

/// The version check of a tenant's object list: every object this store
/// wrote is listed at its version, every one it deleted is absent.
fn list_holds(rows: &[ObjectRow], written: &HashMap<String, WrittenObject>) -> bool {
    let listed: HashMap<&str, i64> = rows.iter().map(|r| (r.id.as_str(), r.version)).collect();
    written.iter().all(|(id, w)| match w {
        None => !listed.contains_key(id.as_str()),
        Some((_, v)) => listed.get(id.as_str()) == Some(v),
    })
}

#[async_trait]
impl MetaStore for ReplicatedMetaStore {
    async fn create_tenant(
        &self,
        tenant: TenantRow,
        admin: UserRow,
        session: Option<SessionRow>,
    ) -> MosaicResult<()> {
        let id = tenant.id.clone();
        let r = self
            .primary
            .store
            .create_tenant(tenant, admin, session)
            .await;
        self.wrote(&r, Some(&id), None).await;
        r
    }

    async fn tenant(&self, id: &str) -> MosaicResult<Option<TenantRow>> {
        self.read(
            Scope::Tenant(id),
            &move |s: Arc<dyn MetaStore>| Box::pin(async move { s.tenant(id).await }),
            None,
        )
        .await
    }

    async fn user_by_username(&self, username: &str) -> MosaicResult<Option<UserRow>> {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        self.primary.store.user_by_username(username).await
    }

    async fn user(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<UserRow>> {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        self.primary.store.user(tenant_id, id).await
    }

    async fn create_session(&self, session: SessionRow) -> MosaicResult<()> {
        // Sessions are read by hash, under the latest mark: the tenant's
        // object reads need not wait for a login to replicate.
        let r = self.primary.store.create_session(session).await;
        self.wrote(&r, None, None).await;
        r
    }

    async fn session(&self, token_hash: &str) -> MosaicResult<Option<SessionRow>> {
        self.read(
            Scope::Unkeyed,
            &move |s: Arc<dyn MetaStore>| Box::pin(async move { s.session(token_hash).await }),
            None,
        )
        .await
    }

    async fn revoke_session(&self, token_hash: &str) -> MosaicResult<()> {
        let r = self.primary.store.revoke_session(token_hash).await;
        self.wrote(&r, None, None).await;
        r
    }

    async fn list_objects(&self, tenant_id: &str) -> MosaicResult<Vec<ObjectRow>> {
        self.read(
            Scope::Tenant(tenant_id),
            &move |s: Arc<dyn MetaStore>| Box::pin(async move { s.list_objects(tenant_id).await }),
            Some(&|rows: &Vec<ObjectRow>, w: &HashMap<String, WrittenObject>| list_holds(rows, w)),
        )
        .await
    }

    async fn object_by_name(
        &self,
        tenant_id: &str,
        api_name: &str,
    ) -> MosaicResult<Option<ObjectRow>> {
        let lc = api_name.to_lowercase();
        let lc = lc.as_str();
        self.read(
            Scope::Tenant(tenant_id),
            &move |s: Arc<dyn MetaStore>| {
                Box::pin(async move { s.object_by_name(tenant_id, api_name).await })
            },
            Some(
                &move |row: &Option<ObjectRow>, w: &HashMap<String, WrittenObject>| {
                    object_holds(row, Some(lc), None, w)
                },
            ),
        )
        .await
    }

    async fn object_by_id(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<ObjectRow>> {
        self.read(
            Scope::Tenant(tenant_id),
            &move |s: Arc<dyn MetaStore>| {
                Box::pin(async move { s.object_by_id(tenant_id, id).await })
            },
            Some(
                &move |row: &Option<ObjectRow>, w: &HashMap<String, WrittenObject>| {
                    object_holds(row, None, Some(id), w)
                },
            ),
        )
        .await
    }

    async fn insert_object(&self, row: ObjectRow) -> MosaicResult<()> {
        let (tenant, id) = (row.tenant_id.clone(), row.id.clone());
        let written = Some((row.api_name.to_lowercase(), row.version));
        let r = self.primary.store.insert_object(row).await;
        self.wrote(&r, Some(&tenant), Some((&id, written))).await;
        r
    }

    async fn update_object(&self, row: ObjectRow, expected_version: i64) -> MosaicResult<()> {
        let (tenant, id) = (row.tenant_id.clone(), row.id.clone());
        let written = Some((row.api_name.to_lowercase(), row.version));
        let r = self
            .primary
            .store
            .update_object(row, expected_version)
            .await;
        self.wrote(&r, Some(&tenant), Some((&id, written))).await;
        r
    }

    async fn delete_object(&self, tenant_id: &str, id: &str) -> MosaicResult<()> {
        let r = self.primary.store.delete_object(tenant_id, id).await;
        self.wrote(&r, Some(tenant_id), Some((id, None))).await;
        r
    }
}

/// The log-position path, which needs physical standbys on PostgreSQL:
/// here the members are SQLite files and the positions are set by hand.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteMetaStore;
    use chrono::Utc;

    /// A position the test moves; `None` stands for a non-standby.
    struct Dial(Mutex<MosaicResult<Option<LogPosition>>>);

    impl Dial {
        fn at(p: Option<LogPosition>) -> Arc<Dial> {
            Arc::new(Dial(Mutex::new(Ok(p))))
        }
        fn set(&self, p: MosaicResult<Option<LogPosition>>) {
            *self.0.lock().unwrap() = p;
        }
    }

    #[async_trait]
    impl ReplicationPosition for Dial {
        async fn position(&self) -> MosaicResult<Option<LogPosition>> {
            self.0.lock().unwrap().clone()
        }
    }

    fn tenant(id: &str, name: &str) -> TenantRow {
        TenantRow {
            id: id.into(),
            name: name.into(),
            subdomain: format!("s-{id}"),
            tier: "starter".into(),
            status: "active".into(),
            created_at: Utc::now(),
        }
    }

    fn admin(tenant: &str) -> UserRow {
        UserRow {
            id: format!("u-{tenant}"),
            tenant_id: tenant.into(),
            username: format!("admin@{tenant}.test"),
            email: None,
            password_hash: "h".into(),
            is_active: true,
            profile: "System Administrator".into(),
            created_at: Utc::now(),
            role_id: None,
            must_change_password: false,
        }
    }

    fn object(tenant: &str, id: &str, version: i64) -> ObjectRow {
        ObjectRow {
            id: id.into(),
            tenant_id: tenant.into(),
            api_name: "Invoice__c".into(),
            version,
            definition: format!("{{\"v\":{version}}}"),
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: ReplicatedMetaStore,
        primary_db: Arc<SqliteMetaStore>,
        replica_db: Arc<SqliteMetaStore>,
        primary_at: Arc<Dial>,
        replica_at: Arc<Dial>,
    }

    fn fixture(replica_position: Option<LogPosition>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let primary_db = Arc::new(SqliteMetaStore::open(&dir.path().join("p.sqlite")).unwrap());
        let replica_db = Arc::new(SqliteMetaStore::open(&dir.path().join("r.sqlite")).unwrap());
        let primary_at = Dial::at(Some(100));
        let replica_at = Dial::at(replica_position);
        let store = ReplicatedMetaStore::new(
            MetaMember {
                name: "primary".into(),
                store: primary_db.clone(),
                position: primary_at.clone(),
            },
            vec![MetaMember {
                name: "metadata-replica:1".into(),
                store: replica_db.clone(),
                position: replica_at.clone(),
            }],
        )
        .unwrap();
        Fixture {
            _dir: dir,
            store,
            primary_db,
            replica_db,
            primary_at,
            replica_at,
        }
    }

    #[tokio::test]
    async fn a_tenant_written_here_is_read_from_the_primary_until_the_standby_replays_the_write() {
        let f = fixture(Some(50));
        // The replica holds an older copy under the same id.
        f.replica_db
            .create_tenant(tenant("t1", "Stale"), admin("t1"), None)
            .await
            .unwrap();
        f.store
            .create_tenant(tenant("t1", "Fresh"), admin("t1"), None)
            .await
            .unwrap();
        // The write was marked at the primary's position 100; the standby
        // has replayed to 50.
        let t = f.store.tenant("t1").await.unwrap().unwrap();
        assert_eq!(t.name, "Fresh");
        assert_eq!(f.store.pending_marks(), 1);
        assert_eq!(f.store.read_counts().primary, 1);

        f.replica_at.set(Ok(Some(100)));
        let t = f.store.tenant("t1").await.unwrap().unwrap();
        assert_eq!(
            t.name, "Stale",
            "replayed past the mark: the replica serves"
        );
        assert_eq!(
            f.store.pending_marks(),
            0,
            "the mark is dropped once passed"
        );
        assert_eq!(f.store.read_counts().replicas[0].1, 1);
    }

    #[tokio::test]
    async fn a_standby_behind_still_serves_objects_whose_versions_match_the_writes() {
        let f = fixture(Some(10));
        f.primary_db
            .insert_object(object("t1", "o1", 1))
            .await
            .unwrap();
        f.replica_db
            .insert_object(object("t1", "o1", 1))
            .await
            .unwrap();
        f.store
            .update_object(object("t1", "o1", 2), 1)
            .await
            .unwrap();
        // Behind, and holding version 1: the primary answers.
        let o = f.store.object_by_id("t1", "o1").await.unwrap().unwrap();
        assert_eq!(o.version, 2);
        assert_eq!(f.store.read_counts().replicas[0].1, 0);
        // Still behind by position, but now holding version 2: accepted.
        f.replica_db
            .update_object(object("t1", "o1", 2), 1)
            .await
            .unwrap();
        let o = f
            .store
            .object_by_name("t1", "invoice__C")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o.version, 2);
        assert_eq!(f.store.read_counts().replicas[0].1, 1);
        // A deletion must be seen as an absence.
        f.store.delete_object("t1", "o1").await.unwrap();
        assert!(f.store.object_by_id("t1", "o1").await.unwrap().is_none());
        assert!(f.store.list_objects("t1").await.unwrap().is_empty());
        assert_eq!(f.store.read_counts().replicas[0].1, 1);
    }

    #[tokio::test]
    async fn an_unknown_write_position_is_resolved_by_the_next_read() {
        let f = fixture(Some(100));
        f.replica_db
            .create_tenant(tenant("t1", "Replica"), admin("t1"), None)
            .await
            .unwrap();
        f.primary_at
            .set(Err(MosaicError::unavailable("down for a moment")));
        f.store
            .create_tenant(tenant("t1", "Primary"), admin("t1"), None)
            .await
            .unwrap();
        // The position came back: the next read learns 120, the standby is at 100.
        f.primary_at.set(Ok(Some(120)));
        assert_eq!(f.store.tenant("t1").await.unwrap().unwrap().name, "Primary");
        f.replica_at.set(Ok(Some(120)));
        assert_eq!(f.store.tenant("t1").await.unwrap().unwrap().name, "Replica");
    }

    #[tokio::test]
    async fn sessions_follow_the_latest_write_and_users_always_come_from_the_primary() {
        let f = fixture(Some(100));
        f.primary_db
            .create_tenant(tenant("t1", "P"), admin("t1"), None)
            .await
            .unwrap();
        let s = SessionRow {
            token_hash: "h1".into(),
            tenant_id: "t1".into(),
            user_id: "u-t1".into(),
            issued_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
            revoked: false,
        };
        f.primary_at.set(Ok(Some(130)));
        f.store.create_session(s).await.unwrap();
        assert!(f.store.session("h1").await.unwrap().is_some());
        assert!(f.store.user("t1", "u-t1").await.unwrap().is_some());
        assert_eq!(f.store.read_counts().primary, 2);
        // A login does not hold back the tenant's other reads.
        assert_eq!(f.store.pending_marks(), 0);
        assert!(
            f.store.tenant("t1").await.unwrap().is_none(),
            "from the replica"
        );
        assert_eq!(f.store.read_counts().replicas[0].1, 1);
    }

    #[tokio::test]
    async fn a_refused_write_raises_no_mark() {
        let f = fixture(None);
        f.store.insert_object(object("t1", "o1", 1)).await.unwrap();
        assert_eq!(f.store.pending_marks(), 1);
        let f = fixture(None);
        f.primary_db
            .insert_object(object("t1", "o1", 1))
            .await
            .unwrap();
        let dup = f.store.insert_object(object("t1", "o2", 1)).await;
        assert!(dup.is_err());
        assert_eq!(f.store.pending_marks(), 0);
    }

    #[test]
    fn the_object_checks_want_the_written_versions() {
        let mut w: HashMap<String, WrittenObject> = HashMap::new();
        w.insert("a".into(), Some(("x__c".into(), 3)));
        w.insert("b".into(), None);
        let row = |id: &str, v: i64| ObjectRow {
            id: id.into(),
            tenant_id: "t".into(),
            api_name: "X__c".into(),
            version: v,
            definition: String::new(),
        };
        assert!(object_holds(&Some(row("a", 3)), None, Some("a"), &w));
        assert!(!object_holds(&Some(row("a", 2)), None, Some("a"), &w));
        assert!(!object_holds(&None, None, Some("a"), &w));
        assert!(object_holds(&None, None, Some("b"), &w));
        assert!(!object_holds(&Some(row("b", 1)), None, Some("b"), &w));
        assert!(object_holds(&Some(row("c", 9)), None, Some("c"), &w));
        // By name: the object last given the name must answer.
        assert!(object_holds(&Some(row("a", 3)), Some("x__c"), None, &w));
        assert!(!object_holds(&None, Some("x__c"), None, &w));
        assert!(!object_holds(&Some(row("c", 1)), Some("x__c"), None, &w));
        assert!(object_holds(&None, Some("y__c"), None, &w));
        assert!(list_holds(&[row("a", 3), row("c", 1)], &w));
        assert!(!list_holds(&[row("a", 3), row("b", 1)], &w));
        assert!(!list_holds(&[row("c", 1)], &w));
    }
}
