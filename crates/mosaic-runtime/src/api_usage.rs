//! API requests per tenant and UTC day: the count behind the `limits`
//! resource's `DailyApiRequests.Remaining`.
//!
//! With Redis configured the count is the fleet's: one counter per tenant
//! and day (`apid:{tenant}:{day}` under the deployment's prefix), raised by
//! `INCR` on every counted request and expiring an hour after the day's end
//! (the day is in the key; the hour absorbs clock skew between instances),
//! as the AI quotas do. Each answer from Redis also sets this instance's
//! own counter to the fleet's figure. Without Redis, or while it cannot
//! answer (breaker open, connection down, timeout), the instance goes on
//! counting locally from the last figure it saw; what was counted locally
//! is not added to Redis afterwards.

use crate::clock::Clock;
use chrono::{DateTime, NaiveDate, Utc};
use mosaic_cache::CacheTier;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a day's Redis counter outlives the day.
pub const API_COUNTER_GRACE: Duration = Duration::from_secs(3600);

/// Most tenants this instance keeps a local count for (a new day starts
/// the map afresh); past it, tenants not yet seen today are counted only
/// in Redis.
pub const MAX_LOCAL_TENANTS: usize = 1_000_000;

pub struct ApiUsage {
    clock: Arc<dyn Clock>,
    local: Mutex<(Option<NaiveDate>, HashMap<String, u64>)>,
    /// The fleet's counters, when the tier has Redis.
    shared: Option<Arc<CacheTier>>,
}

fn seconds_to_keep(now: DateTime<Utc>) -> i64 {
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    ((midnight - now).to_std().unwrap_or(Duration::ZERO) + API_COUNTER_GRACE)
        .as_secs()
        .max(1) as i64
}

impl ApiUsage {
    /// Counts in `tier`'s Redis when it has one, else in this process.
    pub fn new(clock: Arc<dyn Clock>, tier: Arc<CacheTier>) -> ApiUsage {
        ApiUsage {
            clock,
            local: Mutex::new((None, HashMap::new())),
            shared: tier.has_l2().then_some(tier),
        }
    }

    /// Whether the counts are kept in Redis (when it answers).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    fn key(&self, tenant: &str, now: DateTime<Utc>) -> Option<(&CacheTier, String)> {
        let tier = self.shared.as_deref()?;
        let day = now.date_naive().format("%Y-%m-%d").to_string();
        Some((tier, tier.keys.api_requests(tenant, &day)))
    }

    /// Applies `f` to the tenant's local count of `now`'s day.
    fn with_local<T>(&self, tenant: &str, now: DateTime<Utc>, f: impl FnOnce(&mut u64) -> T) -> T {
        let today = now.date_naive();
        let mut g = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != Some(today) {
            *g = (Some(today), HashMap::new());
        }
        let mut scratch = 0;
        let slot = if g.1.contains_key(tenant) || g.1.len() < MAX_LOCAL_TENANTS {
            g.1.entry(tenant.to_string()).or_insert(0)
        } else {
            &mut scratch
        };
        f(slot)
    }

    fn fell_back(op: &'static str) {
        metrics::counter!("api_usage_local_fallbacks_total", "op" => op).increment(1);
    }

    /// Counts one API request of `tenant`.
    pub async fn count(&self, tenant: &str) {
        let now = self.clock.now();
        if let Some((tier, key)) = self.key(tenant, now) {
            if let Some(redis) = tier.redis() {
                let ttl = seconds_to_keep(now);
                let r = redis
                    .call(|mut c| async move {
                        redis::pipe()
                            .atomic()
                            .incr(&key, 1)
                            .expire(&key, ttl)
                            .ignore()
                            .query_async::<(i64,)>(&mut c)
                            .await
                    })
                    .await;
                match r {
                    Ok((total,)) => {
                        let total = total.max(0) as u64;
                        return self.with_local(tenant, now, |n| *n = total);
                    }
                    Err(_) => Self::fell_back("count"),
                }
            }
        }
        self.with_local(tenant, now, |n| *n = n.saturating_add(1));
    }

    /// Requests of `tenant` counted today (the fleet's with Redis).
    pub async fn today(&self, tenant: &str) -> u64 {
        let now = self.clock.now();
        if let Some((tier, key)) = self.key(tenant, now) {
            if let Some(redis) = tier.redis() {
                let r = redis
                    .call(|mut c| async move {
                        redis::cmd("GET")
                            .arg(&key)
                            .query_async::<Option<i64>>(&mut c)
                            .await
                    })
                    .await;
                match r {
                    Ok(v) => {
                        let total = v.unwrap_or(0).max(0) as u64;
                        return self.with_local(tenant, now, |n| {
                            *n = total;
                            total
                        });
                    }
                    Err(_) => Self::fell_back("read"),
                }
            }
        }
        self.with_local(tenant, now, |n| *n)
    }
}
