//! The tier against a real Redis (`scripts/services` starts one on
//! 127.0.0.1:6379; `MOSAIC_TEST_REDIS_URL` overrides): locks exclude
//! across two tiers and free themselves when a holder dies; versioned
//! fills refuse a copy older than a committed version. Every key is under
//! a prefix of this run and deleted at the end.

use mosaic_cache::lock::Locks;
use mosaic_cache::{CacheConfig, CacheTier, Invalidation};
use std::sync::Arc;
use std::time::Duration;

fn tier(prefix: &str) -> Arc<CacheTier> {
    let url = std::env::var("MOSAIC_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_string());
    CacheTier::new(CacheConfig {
        redis_url: Some(url),
        key_prefix: prefix.to_string(),
        ..CacheConfig::default()
    })
    .unwrap()
}

async fn cleanup(t: &CacheTier, prefix: &str) {
    let r = t.redis().unwrap();
    let pattern = format!("{prefix}*");
    let keys: Vec<String> = r
        .call(|mut c| async move {
            redis::cmd("KEYS")
                .arg(&pattern)
                .query_async::<Vec<String>>(&mut c)
                .await
        })
        .await
        .unwrap();
    t.delete(&keys).await.unwrap();
}

#[tokio::test]
async fn locks_exclude_across_instances_and_a_dead_holder_frees_after_its_ttl() {
    let prefix = format!("test-{}:", mosaic_types::new_id());
    let (a, b) = (tier(&prefix), tier(&prefix));
    let (la, lb) = (Locks::new(a.clone()), Locks::new(b.clone()));
    let ttl = Duration::from_millis(300);
    let held = la
        .acquire("deploy", "t1", ttl, Duration::ZERO)
        .await
        .unwrap();
    assert!(held.distributed, "Redis is up: the lock is distributed");
    let refused = lb
        .acquire("deploy", "t1", ttl, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(refused.code, mosaic_types::ErrorCode::UNABLE_TO_LOCK_ROW);
    // The holder "dies" (never releases): after the TTL the other instance
    // gets the lock, with a larger fencing token.
    let next = lb
        .acquire("deploy", "t1", ttl, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(next.fence > held.fence);
    assert!(!la.release(&held).await, "the dead holder's lease is gone");
    assert!(lb.release(&next).await);
    let again = la
        .acquire("deploy", "t1", ttl, Duration::ZERO)
        .await
        .unwrap();
    assert!(la.release(&again).await);
    cleanup(&a, &prefix).await;
}

#[tokio::test]
async fn a_fill_older_than_the_committed_version_is_refused() {
    let prefix = format!("test-{}:", mosaic_types::new_id());
    let t = tier(&prefix);
    let (key, vkey) = (t.keys.meta("ten", "obj"), t.keys.meta_version("ten", "o-1"));
    let ttl = Duration::from_secs(5);
    assert!(t.fill(&key, &vkey, 3, b"v3", ttl).await.unwrap());
    // Version 4 commits: the key is deleted and 4 recorded.
    t.publish(Invalidation::Object {
        tenant: "ten".into(),
        id: "o-1".into(),
        names: vec!["obj".into()],
        version: 4,
    })
    .await;
    assert_eq!(t.get(&key).await.unwrap(), None);
    // A reader that loaded version 3 before the commit cannot put it back.
    assert!(!t.fill(&key, &vkey, 3, b"v3", ttl).await.unwrap());
    assert!(t.fill(&key, &vkey, 4, b"v4", ttl).await.unwrap());
    assert_eq!(t.get(&key).await.unwrap().as_deref(), Some(&b"v4"[..]));
    cleanup(&t, &prefix).await;
}
