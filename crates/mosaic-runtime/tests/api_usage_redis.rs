//! The daily API request count behind `limits` (`DailyApiRequests`),
//! counted fleet-wide: two counters (two instances) sharing one Redis
//! (`scripts/services` starts one on 127.0.0.1:6379; `MOSAIC_TEST_REDIS_URL`
//! overrides) see each other's requests; without Redis each counts on its
//! own. Every key is under a prefix of this run and deleted at the end.

use mosaic_runtime::api_usage::ApiUsage;
use mosaic_runtime::clock::ManualClock;
use mosaic_runtime::mosaic_cache::{CacheConfig, CacheTier};
use std::sync::Arc;

fn tier(url: &str, prefix: &str) -> Arc<CacheTier> {
    CacheTier::new(CacheConfig {
        redis_url: Some(url.to_string()),
        key_prefix: prefix.to_string(),
        ..CacheConfig::default()
    })
    .unwrap()
}

fn redis_url() -> String {
    std::env::var("MOSAIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

async fn keys(t: &CacheTier, prefix: &str) -> Vec<String> {
    let pattern = format!("{prefix}*");
    t.redis()
        .unwrap()
        .call(|mut c| async move {
            redis::cmd("KEYS")
                .arg(&pattern)
                .query_async::<Vec<String>>(&mut c)
                .await
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn two_instances_sharing_redis_count_the_tenants_requests_together() {
    let prefix = format!("test-{}:", mosaic_types::new_id());
    let url = redis_url();
    let (ta, tb) = (tier(&url, &prefix), tier(&url, &prefix));
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let a = ApiUsage::new(clock.clone(), ta.clone());
    let b = ApiUsage::new(clock.clone(), tb);
    assert!(a.is_shared());

    a.count("t1").await;
    a.count("t1").await;
    b.count("t1").await;
    b.count("t2").await;
    assert_eq!(a.today("t1").await, 3, "a sees b's request");
    assert_eq!(b.today("t1").await, 3);
    assert_eq!(a.today("t2").await, 1, "each tenant has its own count");

    // One counter per tenant and day, expiring after the day (plus an hour).
    let ks = keys(&ta, &prefix).await;
    assert_eq!(ks.len(), 2, "{ks:?}");
    let r = ta.redis().unwrap();
    for k in &ks {
        let k = k.clone();
        let ttl: i64 = r
            .call(|mut c| async move { redis::cmd("TTL").arg(&k).query_async(&mut c).await })
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 25 * 3600, "{ttl}");
    }

    // The next UTC day starts again.
    clock.advance(chrono::Duration::days(1));
    assert_eq!(a.today("t1").await, 0);
    b.count("t1").await;
    assert_eq!(a.today("t1").await, 1);

    let ks = keys(&ta, &prefix).await;
    ta.delete(&ks).await.unwrap();
    assert!(keys(&ta, &prefix).await.is_empty());
}

#[tokio::test]
async fn without_an_answer_from_redis_each_instance_counts_locally() {
    // Nothing listens on port 1: every call fails, each instance counts alone.
    let prefix = format!("test-{}:", mosaic_types::new_id());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let a = ApiUsage::new(clock.clone(), tier("redis://127.0.0.1:1/", &prefix));
    let b = ApiUsage::new(clock.clone(), tier("redis://127.0.0.1:1/", &prefix));
    a.count("t1").await;
    a.count("t1").await;
    b.count("t1").await;
    assert_eq!(a.today("t1").await, 2);
    assert_eq!(b.today("t1").await, 1);
    // No Redis configured at all: local as well.
    let local = ApiUsage::new(clock, CacheTier::embedded());
    assert!(!local.is_shared());
    local.count("t1").await;
    assert_eq!(local.today("t1").await, 1);
}
