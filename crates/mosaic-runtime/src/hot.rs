//! Hot-tenant detection (the seed: a tenant above 10 % of its shard's
//! requests over 24 hours belongs on a dedicated shard). Every request of a
//! tenant is counted in a sliding window of 24 buckets; a tenant is *hot*
//! when its requests in the window are above [`HOT_SHARE`] of its shard's,
//! the shard holds other tenants, and the tenant made at least the
//! configured minimum of requests (one per second of the window by
//! default), so that a quiet shard reports nobody. Newly hot tenants are
//! logged once and listed by `mosaic shard hot` and the operator API.
//! Moving them (automatically or not) needs the online tenant move, which
//! is not available yet.
//!
//! With Redis, the fleet's traffic decides: each instance adds its counts
//! to a Redis hash per bucket (`hot:<bucket>`, field = tenant) once a
//! second — one pipelined `HINCRBY` per tenant seen, however many requests
//! — and detection sums the window's buckets there, so a tenant spread over
//! many instances, below the threshold on each, is found. Without Redis
//! (or while it does not answer) an instance decides on its own counts.

use crate::clock::Clock;
use crate::platform::Platform;
use mosaic_types::MosaicResult;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A tenant above this share of its shard's requests is hot.
pub const HOT_SHARE: f64 = 0.10;
/// The seed's window.
pub const DEFAULT_HOT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
const BUCKETS: usize = 24;

/// One tenant's counts: `counts[i]` is bucket `first + i`.
#[derive(Default)]
struct Window {
    first: i64,
    counts: VecDeque<u64>,
}

impl Window {
    fn advance(&mut self, now_bucket: i64) {
        if self.counts.is_empty() {
            self.first = now_bucket;
        }
        while self.first + (self.counts.len() as i64) <= now_bucket {
            self.counts.push_back(0);
        }
        while self.counts.len() > BUCKETS {
            self.counts.pop_front();
            self.first += 1;
        }
        // Buckets older than the window.
        while !self.counts.is_empty() && self.first <= now_bucket - BUCKETS as i64 {
            self.counts.pop_front();
            self.first += 1;
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

pub struct HotTenants {
    clock: Arc<dyn Clock>,
    window: Duration,
    min_requests: u64,
    counts: Mutex<HashMap<String, Window>>,
    /// Counts not yet added to the fleet's (Redis), by bucket and tenant.
    unshared: Mutex<HashMap<(i64, String), u64>>,
    reported: Mutex<HashSet<String>>,
}

/// A tenant found hot.
#[derive(Debug, Clone, PartialEq)]
pub struct HotTenant {
    pub tenant_id: String,
    pub shard_id: String,
    pub requests: u64,
    pub shard_requests: u64,
    pub share: f64,
}

impl HotTenants {
    /// `min_requests`: `None` → one request per second of the window.
    pub fn new(clock: Arc<dyn Clock>, window: Duration, min_requests: Option<u64>) -> HotTenants {
        let window = window.max(Duration::from_secs(BUCKETS as u64));
        HotTenants {
            clock,
            min_requests: min_requests.unwrap_or(window.as_secs()),
            window,
            counts: Mutex::new(HashMap::new()),
            unshared: Mutex::new(HashMap::new()),
            reported: Mutex::new(HashSet::new()),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn bucket(&self) -> i64 {
        let width = (self.window.as_millis() / BUCKETS as u128).max(1) as i64;
        self.clock.now().timestamp_millis().div_euclid(width)
    }

    /// Counts one request of `tenant`.
    pub fn count(&self, tenant: &str) {
        let b = self.bucket();
        if let Ok(mut m) = self.counts.lock() {
            let w = m.entry(tenant.to_string()).or_default();
            w.advance(b);
            if let Some(last) = w.counts.back_mut() {
                *last += 1;
            }
        }
        if let Ok(mut u) = self.unshared.lock() {
            *u.entry((b, tenant.to_string())).or_default() += 1;
        }
    }

    fn bucket_width_secs(&self) -> u64 {
        (self.window.as_secs() / BUCKETS as u64).max(1)
    }

    /// Adds the counts made since the last call to the fleet's in Redis
    /// (one pipeline: `HINCRBY hot:<bucket> <tenant> <n>` per tenant and
    /// bucket, each bucket expiring after the window). Counts Redis did not
    /// take are kept for the next call.
    pub async fn share(&self, tier: &mosaic_cache::CacheTier) {
        let Some(link) = tier.redis() else {
            // No fleet to share with: nothing is kept for it.
            if let Ok(mut u) = self.unshared.lock() {
                u.clear();
            }
            return;
        };
        let batch: Vec<((i64, String), u64)> = match self.unshared.lock() {
            Ok(mut u) if !u.is_empty() => u.drain().collect(),
            _ => return,
        };
        let ttl = self.window.as_secs() + self.bucket_width_secs();
        let mut pipe = redis::pipe();
        for ((b, t), n) in &batch {
            let key = tier.keys.hot(*b);
            pipe.cmd("HINCRBY").arg(&key).arg(t).arg(*n).ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
        }
        let sent = link
            .call(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e.0, "hot-tenant counts not shared; kept for the next try");
            if let Ok(mut u) = self.unshared.lock() {
                let now = self.bucket();
                for ((b, t), n) in batch {
                    // Counts older than the window are of no use any more.
                    if b > now - BUCKETS as i64 {
                        *u.entry((b, t)).or_default() += n;
                    }
                }
            }
        }
    }

    /// Requests per tenant within the window over the whole fleet (the
    /// buckets in Redis); `None` without Redis or when it does not answer.
    pub async fn fleet_totals(&self, tier: &mosaic_cache::CacheTier) -> Option<Vec<(String, u64)>> {
        let link = tier.redis()?;
        let now = self.bucket();
        let mut pipe = redis::pipe();
        for b in (now - BUCKETS as i64 + 1)..=now {
            pipe.cmd("HGETALL").arg(tier.keys.hot(b));
        }
        let buckets: Vec<HashMap<String, u64>> = link
            .call(|mut c| async move { pipe.query_async(&mut c).await })
            .await
            .ok()?;
        let mut sum: HashMap<String, u64> = HashMap::new();
        for b in buckets {
            for (t, n) in b {
                *sum.entry(t).or_default() += n;
            }
        }
        Some(sum.into_iter().collect())
    }

    /// Requests per tenant within the window.
    pub fn totals(&self) -> Vec<(String, u64)> {
        let b = self.bucket();
        let Ok(mut m) = self.counts.lock() else {
            return Vec::new();
        };
        m.retain(|_, w| {
            w.advance(b);
            w.total() > 0
        });
        m.iter().map(|(t, w)| (t.clone(), w.total())).collect()
    }
}

impl Platform {
    /// Tenants above [`HOT_SHARE`] of their shard's requests over the
    /// window (see the module); logs each newly hot tenant once.
    pub async fn hot_tenants(&self) -> MosaicResult<Vec<HotTenant>> {
        // This instance's counts first, so what it saw is in the fleet's.
        self.hot.share(&self.cache.tier).await;
        let totals = match self.hot.fleet_totals(&self.cache.tier).await {
            Some(t) => t,
            None => self.hot.totals(),
        };
        let load = self.shards.load().await?;
        let mut by_shard: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        for (t, n) in totals {
            let shard = self.shards.shard_id(&t).await?;
            by_shard.entry(shard).or_default().push((t, n));
        }
        let mut out = Vec::new();
        for (shard, tenants) in by_shard {
            let shard_requests: u64 = tenants.iter().map(|(_, n)| n).sum();
            let placed = load.get(&shard).map_or(0, |l| l.tenants);
            if placed < 2 && tenants.len() < 2 {
                continue; // alone on its shard already
            }
            for (t, n) in tenants {
                let share = n as f64 / shard_requests.max(1) as f64;
                if share > HOT_SHARE && n >= self.hot.min_requests {
                    out.push(HotTenant {
                        tenant_id: t,
                        shard_id: shard.clone(),
                        requests: n,
                        shard_requests,
                        share,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then(a.tenant_id.cmp(&b.tenant_id))
        });
        if let Ok(mut seen) = self.hot.reported.lock() {
            for h in &out {
                if seen.insert(h.tenant_id.clone()) {
                    tracing::warn!(
                        tenant = %h.tenant_id,
                        shard = %h.shard_id,
                        share = h.share,
                        requests = h.requests,
                        "hot tenant: above 10% of its shard's requests over the window; move it to a dedicated shard"
                    );
                }
            }
            seen.retain(|t| out.iter().any(|h| &h.tenant_id == t));
        }
        Ok(out)
    }
}

impl Platform {
    /// Moves each hot tenant to a shard of its own: an active shard with no
    /// tenant yet (an enterprise spare first), never the shard it is on.
    /// Does nothing unless `hot_auto_move` is set. One tenant per empty
    /// shard; hot tenants left without one are logged.
    pub async fn rebalance_hot_tenants(&self) -> MosaicResult<Vec<crate::tenant_move::MoveReport>> {
        if !self.config.hot_auto_move {
            return Ok(Vec::new());
        }
        let hot = self.hot_tenants().await?;
        if hot.is_empty() {
            return Ok(Vec::new());
        }
        let load = self.shards.load().await?;
        let mut empty: Vec<mosaic_store::shards::ShardRow> = self
            .shards
            .directory()
            .shards()
            .await?
            .into_iter()
            .filter(|s| s.status == "active" && load.get(&s.id).is_none_or(|l| l.tenants == 0))
            .collect();
        // Enterprise spares first, then by id.
        empty.sort_by(|a, b| {
            (a.group != "enterprise", &a.id).cmp(&(b.group != "enterprise", &b.id))
        });
        let mut moved = Vec::new();
        for h in hot {
            let Some(pos) = empty.iter().position(|s| s.id != h.shard_id) else {
                tracing::warn!(tenant = %h.tenant_id, shard = %h.shard_id,
                    "hot tenant: no empty shard to move it to; register one with `mosaic shard add`");
                continue;
            };
            let target = empty.remove(pos);
            if !self.moves.start(&h.tenant_id, &target.id) {
                continue;
            }
            tracing::warn!(tenant = %h.tenant_id, from = %h.shard_id, to = %target.id,
                share = h.share, "moving a hot tenant to a shard of its own");
            let options = crate::tenant_move::MoveOptions::default();
            let progress = self.moves.progress(&h.tenant_id);
            let r = self
                .move_tenant(&h.tenant_id, &target.id, &options, &progress)
                .await;
            self.moves.finish(&h.tenant_id, &r);
            match r {
                Ok(rep) => moved.push(rep),
                Err(e) => tracing::warn!(tenant = %h.tenant_id, error = %e.message,
                    "automatic move of a hot tenant failed; it stays where it is"),
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn counts_slide_out_of_the_window() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let h = HotTenants::new(clock.clone(), Duration::from_secs(24 * 3600), Some(1));
        for _ in 0..5 {
            h.count("a");
        }
        clock.advance(chrono::Duration::hours(12));
        h.count("a");
        h.count("b");
        let t: HashMap<String, u64> = h.totals().into_iter().collect();
        assert_eq!(t["a"], 6);
        assert_eq!(t["b"], 1);
        clock.advance(chrono::Duration::hours(13));
        let t: HashMap<String, u64> = h.totals().into_iter().collect();
        assert_eq!(t["a"], 1, "the first five left the window");
        clock.advance(chrono::Duration::hours(24));
        assert!(h.totals().is_empty());
    }
}
