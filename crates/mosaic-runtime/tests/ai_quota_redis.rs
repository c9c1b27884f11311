//! The AI quotas counted fleet-wide: two quota objects (two instances)
//! sharing one Redis (`scripts/services` starts one on 127.0.0.1:6379;
//! `MOSAIC_TEST_REDIS_URL` overrides) reach the tenant's daily limits
//! together; without Redis each counts on its own. Every key is under a
//! prefix of this run and deleted at the end.

use mosaic_runtime::ai::quota::Quota;
use mosaic_runtime::clock::ManualClock;
use mosaic_runtime::mosaic_cache::{CacheConfig, CacheTier};
use mosaic_types::ErrorCode;
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
async fn two_instances_sharing_redis_reach_the_daily_limits_together() {
    let prefix = format!("test-{}:", mosaic_types::new_id());
    let url = redis_url();
    let (ta, tb) = (tier(&url, &prefix), tier(&url, &prefix));
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let a = Quota::shared(3, 100, clock.clone(), ta.clone());
    let b = Quota::shared(3, 100, clock.clone(), tb);
    assert!(a.is_shared());

    // Requests: 3 a day between both instances.
    assert_eq!(a.admit("t1").await.unwrap().requests, Some(2));
    assert_eq!(b.admit("t1").await.unwrap().requests, Some(1));
    assert_eq!(a.admit("t1").await.unwrap().requests, Some(0));
    for q in [&a, &b] {
        let e = q.admit("t1").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::REQUEST_LIMIT_EXCEEDED);
        assert!(e.message.contains("3 AI requests"), "{}", e.message);
    }
    assert_eq!(
        b.remaining("t1").await.requests,
        Some(0),
        "b sees a's requests"
    );
    // Another tenant has its own counts.
    assert_eq!(b.admit("t2").await.unwrap().requests, Some(2));

    // Tokens: what each instance charges adds up.
    a.charge("t2", 60).await;
    assert_eq!(b.remaining("t2").await.tokens, Some(40));
    b.charge("t2", 45).await;
    let e = a.admit("t2").await.unwrap_err();
    assert!(e.message.contains("100 LLM tokens"), "{}", e.message);
    assert_eq!(a.remaining("t2").await.tokens, Some(0));

    // The counters expire after the day (plus the grace hour).
    let ks = keys(&ta, &prefix).await;
    assert_eq!(ks.len(), 3, "{ks:?}");
    let r = ta.redis().unwrap();
    for k in &ks {
        let k = k.clone();
        let ttl: i64 = r
            .call(|mut c| async move { redis::cmd("TTL").arg(&k).query_async(&mut c).await })
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 25 * 3600, "{ttl}");
    }

    // The next UTC day starts again, on both instances.
    clock.advance(chrono::Duration::days(1));
    assert_eq!(b.admit("t1").await.unwrap().requests, Some(2));
    assert_eq!(a.remaining("t1").await.requests, Some(2));

    let ks = keys(&ta, &prefix).await;
    ta.delete(&ks).await.unwrap();
    assert!(keys(&ta, &prefix).await.is_empty());
}

#[tokio::test]
async fn without_an_answer_from_redis_each_instance_counts_locally() {
    // Nothing listens on port 1: every call fails, each quota decides alone.
    let prefix = format!("test-{}:", mosaic_types::new_id());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let a = Quota::shared(2, 0, clock.clone(), tier("redis://127.0.0.1:1/", &prefix));
    let b = Quota::shared(2, 0, clock.clone(), tier("redis://127.0.0.1:1/", &prefix));
    for q in [&a, &b] {
        assert_eq!(q.admit("t1").await.unwrap().requests, Some(1));
        assert_eq!(q.admit("t1").await.unwrap().requests, Some(0));
        assert_eq!(
            q.admit("t1").await.unwrap_err().code,
            ErrorCode::REQUEST_LIMIT_EXCEEDED
        );
    }
    // No Redis configured at all: local as well.
    let local = Quota::shared(1, 0, clock, CacheTier::embedded());
    assert!(!local.is_shared());
    assert!(local.admit("t1").await.is_ok());
    assert!(local.admit("t1").await.is_err());
}
