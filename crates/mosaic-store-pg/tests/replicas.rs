//! Metadata read replicas on PostgreSQL (decision 0014): writes on the
//! primary, reads spread over the replicas in round robin, replicas that
//! are down or refused by their breaker skipped without an error, and a
//! write read back at once even from lagging replicas.
//!
//! The "replicas" are scratch databases with the metadata schema whose
//! contents the tests set by hand: a lagging replica is one missing a row
//! or holding an older version of it, and distinct contents show which
//! database answered. They are not physical standbys, so they report no
//! replay position and these tests exercise the version-check path; the
//! log-position path is covered by the unit tests of
//! `mosaic_store::replicas` with positions set by hand.

mod common;

use chrono::{TimeZone, Utc};
use common::{test_database, TestDatabase, TEST_POOL_SIZE};
use mosaic_store::meta_store::{ObjectRow, SessionRow, TenantRow, UserRow};
use mosaic_store::replicas::ReplicatedMetaStore;
use mosaic_store::{CallGuard, CallOutcome, MetaStore, ReplicationPosition};
use mosaic_store_pg::{replicated_meta_store, PgLogPosition, PgMetaStore, ReplicationRole};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A port nothing listens on: a replica there is down.
const DOWN_URL: &str = "postgres://postgres@127.0.0.1:1/mosaic_down";

fn tenant(id: &str, name: &str) -> TenantRow {
    TenantRow {
        id: id.into(),
        name: name.into(),
        subdomain: format!("sub-{id}"),
        tier: "starter".into(),
        status: "active".into(),
        created_at: Utc.timestamp_opt(1_767_225_600, 0).single().expect("time"),
    }
}

fn admin(tenant: &str) -> UserRow {
    UserRow {
        id: format!("u-{tenant}"),
        tenant_id: tenant.into(),
        username: format!("admin@{tenant}.test"),
        email: None,
        password_hash: "argon2-hash".into(),
        is_active: true,
        profile: "System Administrator".into(),
        created_at: Utc.timestamp_opt(1_767_225_601, 0).single().expect("time"),
        role_id: None,
        must_change_password: false,
    }
}

fn object(tenant: &str, id: &str, version: i64, label: &str) -> ObjectRow {
    ObjectRow {
        id: id.into(),
        tenant_id: tenant.into(),
        api_name: "Invoice__c".into(),
        version,
        definition: format!("{{\"label\":\"{label}\"}}"),
    }
}

/// A primary and `replicas` databases, each migrated and written directly.
struct Cluster {
    primary: PgMetaStore,
    replicas: Vec<PgMetaStore>,
    _dbs: Vec<TestDatabase>,
}

impl Cluster {
    async fn new(replicas: usize) -> Cluster {
        let mut dbs = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..=replicas {
            let db = test_database().await;
            stores.push(
                PgMetaStore::connect(&db.url, TEST_POOL_SIZE)
                    .await
                    .expect("connect"),
            );
            dbs.push(db);
        }
        let primary = stores.remove(0);
        Cluster {
            primary,
            replicas: stores,
            _dbs: dbs,
        }
    }

    fn urls(&self) -> Vec<String> {
        self._dbs[1..].iter().map(|d| d.url.clone()).collect()
    }

    /// The store with reads over `urls` (replicas, or any others).
    fn store(&self, urls: &[String]) -> (ReplicatedMetaStore, Vec<mosaic_store_pg::PgPool>) {
        replicated_meta_store(&self.primary, urls, TEST_POOL_SIZE).expect("replicated store")
    }

    /// The same tenant everywhere, named after the database holding it.
    async fn seed_tenant(&self, id: &str) {
        self.primary
            .create_tenant(tenant(id, "on the primary"), admin(id), None)
            .await
            .unwrap();
        for (i, r) in self.replicas.iter().enumerate() {
            r.create_tenant(
                tenant(id, &format!("on replica {}", i + 1)),
                admin(id),
                None,
            )
            .await
            .unwrap();
        }
    }
}

fn served(store: &ReplicatedMetaStore) -> (u64, Vec<u64>) {
    let c = store.read_counts();
    (c.primary, c.replicas.into_iter().map(|(_, n)| n).collect())
}

#[tokio::test]
async fn reads_go_round_robin_over_the_replicas_and_writes_to_the_primary() {
    let c = Cluster::new(2).await;
    c.seed_tenant("t1").await;
    let (store, _pools) = c.store(&c.urls());
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(store.tenant("t1").await.unwrap().unwrap().name);
    }
    assert_eq!(
        names,
        [
            "on replica 1",
            "on replica 2",
            "on replica 1",
            "on replica 2"
        ]
    );
    assert_eq!(served(&store), (0, vec![2, 2]));
    assert_eq!(store.read_counts().replicas[0].0, "metadata-replica:1");

    // A write lands on the primary only.
    store
        .insert_object(object("t2", "o1", 1, "new"))
        .await
        .unwrap();
    assert!(c.primary.object_by_id("t2", "o1").await.unwrap().is_some());
    for r in &c.replicas {
        assert!(r.object_by_id("t2", "o1").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn an_object_written_here_is_read_back_at_once_from_lagging_replicas() {
    let c = Cluster::new(2).await;
    c.seed_tenant("t1").await;
    c.seed_tenant("t2").await;
    for db in std::iter::once(&c.primary).chain(&c.replicas) {
        db.insert_object(object("t1", "o1", 1, "old"))
            .await
            .unwrap();
    }
    let (store, _pools) = c.store(&c.urls());

    store
        .update_object(object("t1", "o1", 2, "new"), 1)
        .await
        .unwrap();
    store
        .insert_object(ObjectRow {
            api_name: "Order__c".into(),
            ..object("t1", "o2", 1, "created")
        })
        .await
        .unwrap();
    // Both replicas still hold version 1 and lack the new object.
    let o = store.object_by_id("t1", "o1").await.unwrap().unwrap();
    assert_eq!(
        (o.version, o.definition.as_str()),
        (2, "{\"label\":\"new\"}")
    );
    let o = store.object_by_name("t1", "ORDER__C").await.unwrap();
    assert_eq!(o.map(|o| o.id), Some("o2".to_string()));
    let list = store.list_objects("t1").await.unwrap();
    assert_eq!(
        list.iter()
            .map(|o| (o.id.as_str(), o.version))
            .collect::<Vec<_>>(),
        [("o1", 2), ("o2", 1)]
    );
    assert_eq!(served(&store), (3, vec![0, 0]));
    // The tenant row has no version to check: under a pending mark a
    // replica that reports no replay position is not asked.
    assert_eq!(
        store.tenant("t1").await.unwrap().unwrap().name,
        "on the primary"
    );

    // A tenant without writes here is read from the replicas as before.
    assert!(store
        .tenant("t2")
        .await
        .unwrap()
        .unwrap()
        .name
        .starts_with("on replica"));

    // Replica 2 catches up: it serves the object again (the version check
    // passes), replica 1 still does not.
    c.replicas[1]
        .update_object(object("t1", "o1", 2, "new"), 1)
        .await
        .unwrap();
    let before = served(&store);
    for _ in 0..4 {
        let o = store.object_by_id("t1", "o1").await.unwrap().unwrap();
        assert_eq!(o.version, 2);
    }
    let after = served(&store);
    assert_eq!(after.1[0], before.1[0], "replica 1 still lags");
    assert_eq!(after.1[1], before.1[1] + 4, "replica 2 has caught up");

    // A deletion is read back as an absence.
    store.delete_object("t1", "o1").await.unwrap();
    assert!(store.object_by_id("t1", "o1").await.unwrap().is_none());
    assert_eq!(store.list_objects("t1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_session_created_or_revoked_here_is_read_back_at_once() {
    let c = Cluster::new(1).await;
    c.seed_tenant("t1").await;
    let (store, _pools) = c.store(&c.urls());
    let session = SessionRow {
        token_hash: "hash-1".into(),
        tenant_id: "t1".into(),
        user_id: "u-t1".into(),
        issued_at: Utc::now(),
        expires_at: Utc::now() + chrono::Duration::hours(2),
        revoked: false,
    };
    store.create_session(session.clone()).await.unwrap();
    assert!(store.session("hash-1").await.unwrap().is_some());
    // The replica got the session but not its revocation.
    c.replicas[0].create_session(session).await.unwrap();
    store.revoke_session("hash-1").await.unwrap();
    assert!(store.session("hash-1").await.unwrap().unwrap().revoked);
    // Users always come from the primary (the access store writes them).
    assert!(store.user("t1", "u-t1").await.unwrap().is_some());
    assert_eq!(served(&store), (3, vec![0]));
}

#[tokio::test]
async fn a_replica_that_is_down_is_skipped_without_an_error() {
    let c = Cluster::new(1).await;
    c.seed_tenant("t1").await;
    let urls = vec![DOWN_URL.to_string(), c.urls()[0].clone()];
    let (store, _pools) = c.store(&urls);
    for _ in 0..4 {
        let t = store
            .tenant("t1")
            .await
            .expect("no error reaches the caller");
        assert_eq!(t.unwrap().name, "on replica 1");
    }
    assert_eq!(served(&store), (0, vec![0, 4]));

    // Every replica down: the primary serves.
    let (store, _pools) = c.store(&[DOWN_URL.to_string()]);
    assert_eq!(
        store.tenant("t1").await.unwrap().unwrap().name,
        "on the primary"
    );
    assert_eq!(served(&store), (1, vec![0]));
}

/// A breaker stuck open: refuses every call.
struct Open(AtomicBool);

impl CallGuard for Open {
    fn admit(&self) -> MosaicResult<()> {
        if self.0.load(Ordering::Relaxed) {
            Err(MosaicError::unavailable("breaker open"))
        } else {
            Ok(())
        }
    }
    fn record(&self, _: CallOutcome) {}
}

#[tokio::test]
async fn a_replica_whose_breaker_is_open_is_not_read() {
    let c = Cluster::new(2).await;
    c.seed_tenant("t1").await;
    let (store, pools) = c.store(&c.urls());
    let breaker = Arc::new(Open(AtomicBool::new(true)));
    pools[0].set_guard(breaker.clone());
    for _ in 0..4 {
        assert_eq!(
            store.tenant("t1").await.unwrap().unwrap().name,
            "on replica 2"
        );
    }
    breaker.0.store(false, Ordering::Relaxed);
    let names: Vec<String> = tenant_names(&store, 2).await;
    assert!(names.contains(&"on replica 1".to_string()), "{names:?}");
}

async fn tenant_names(store: &ReplicatedMetaStore, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(store.tenant("t1").await.unwrap().unwrap().name);
    }
    out
}

#[tokio::test]
async fn positions_come_from_the_primary_and_a_non_standby_reports_none() {
    let c = Cluster::new(1).await;
    let primary = PgLogPosition::new(c.primary.pool().clone(), ReplicationRole::Primary);
    let before = primary
        .position()
        .await
        .unwrap()
        .expect("a primary position");
    c.primary
        .insert_object(object("t1", "o1", 1, "x"))
        .await
        .unwrap();
    let after = primary
        .position()
        .await
        .unwrap()
        .expect("a primary position");
    assert!(after > before, "{after} > {before}");
    let replica = PgLogPosition::new(c.replicas[0].pool().clone(), ReplicationRole::Replica);
    assert_eq!(replica.position().await.unwrap(), None);
}

#[tokio::test]
async fn bad_replica_configuration_is_refused_with_a_clear_error() {
    let c = Cluster::new(0).await;
    let err = replicated_meta_store(&c.primary, &["not a url".to_string()], TEST_POOL_SIZE)
        .err()
        .expect("refused");
    assert_eq!(err.code, ErrorCode::INVALID_INPUT);
    assert!(
        err.message.contains("metadata-replica:1"),
        "{}",
        err.message
    );
    let many = vec![DOWN_URL.to_string(); mosaic_store::replicas::MAX_REPLICAS + 1];
    let err = replicated_meta_store(&c.primary, &many, TEST_POOL_SIZE)
        .err()
        .expect("refused");
    assert_eq!(err.code, ErrorCode::INVALID_INPUT);
}
