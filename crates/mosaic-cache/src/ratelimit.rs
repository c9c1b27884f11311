//! Request rate limits per tenant and endpoint class, by GCRA (the generic
//! cell rate algorithm: one "theoretical arrival time" per key, no
//! counters to reset). With Redis the state is one key per tenant and
//! class, updated by one atomic script on Redis's clock, so every instance
//! shares the limit; embedded (or while Redis cannot answer) the same
//! algorithm runs in process.

use crate::link::Unavailable;
use crate::CacheTier;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// What a request does, for its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointClass {
    DataRead,
    DataWrite,
    Query,
    Metadata,
    Admin,
}

pub const CLASSES: [EndpointClass; 5] = [
    EndpointClass::DataRead,
    EndpointClass::DataWrite,
    EndpointClass::Query,
    EndpointClass::Metadata,
    EndpointClass::Admin,
];

impl EndpointClass {
    pub fn name(self) -> &'static str {
        match self {
            EndpointClass::DataRead => "data_read",
            EndpointClass::DataWrite => "data_write",
            EndpointClass::Query => "query",
            EndpointClass::Metadata => "metadata",
            EndpointClass::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<EndpointClass> {
        CLASSES.into_iter().find(|c| c.name() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A sustained rate and the burst allowed on top of an idle period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Most requests per second a limit may name.
pub const MAX_RATE: u32 = 1_000_000;

impl Rate {
    pub const fn new(per_second: u32, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    /// Time between two requests at the sustained rate, in microseconds.
    pub fn interval_us(self) -> u64 {
        1_000_000 / u64::from(self.per_second.clamp(1, MAX_RATE))
    }

    /// How far ahead of the sustained rate a client may be.
    pub fn tolerance_us(self) -> u64 {
        self.interval_us() * u64::from(self.burst.max(1))
    }
}

/// The outcome of one check, with what the rate headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The sustained limit per second.
    pub limit: u32,
    /// Requests that could be made at once now.
    pub remaining: u32,
    /// Until the allowance is whole again.
    pub reset: Duration,
    /// Until the next request would be admitted (zero when allowed).
    pub retry_after: Duration,
}

/// One GCRA step: the decision and the new theoretical arrival time (None
/// when refused: the state does not move).
pub fn gcra(tat_us: Option<u64>, now_us: u64, rate: Rate) -> (Decision, Option<u64>) {
    let t = rate.interval_us();
    let tau = rate.tolerance_us();
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let new_tat = tat + t;
    let diff = new_tat - now_us;
    if diff > tau {
        return (
            Decision {
                allowed: false,
                limit: rate.per_second,
                remaining: 0,
                reset: Duration::from_micros(tat - now_us),
                retry_after: Duration::from_micros(diff - tau),
            },
            None,
        );
    }
    (
        Decision {
            allowed: true,
            limit: rate.per_second,
            remaining: u32::try_from((tau - diff) / t).unwrap_or(u32::MAX),
            reset: Duration::from_micros(diff),
            retry_after: Duration::ZERO,
        },
        Some(new_tat),
    )
}

/// [`gcra`] on Redis, on Redis's clock: `{allowed, remaining, reset_us,
/// retry_after_us}`.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local diff = new_tat - now
if diff > tau then
  return {0, 0, tat - now, diff - tau}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(diff / 1000) + 1)
return {1, math.floor((tau - diff) / interval), diff, 0}",
    )
});

/// Local state shards (keys hashed onto them).
const SHARDS: usize = 16;
/// Local keys kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 10_000;

pub struct RateLimiter {
    tier: Arc<CacheTier>,
    epoch: Instant,
    local: Vec<Mutex<HashMap<String, u64>>>,
}

impl RateLimiter {
    pub fn new(tier: Arc<CacheTier>) -> RateLimiter {
        RateLimiter {
            tier,
            epoch: Instant::now(),
            local: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Whether one more request of `tenant` in `class` is admitted at `rate`.
    pub async fn check(&self, tenant: &str, class: EndpointClass, rate: Rate) -> Decision {
        if self.tier.has_l2() {
            match self.check_redis(tenant, class, rate).await {
                Ok(d) => return d,
                Err(_) => {
                    metrics::counter!("rate_limit_local_fallbacks_total").increment(1);
                }
            }
        }
        self.check_local(tenant, class, rate)
    }

    async fn check_redis(
        &self,
        tenant: &str,
        class: EndpointClass,
        rate: Rate,
    ) -> Result<Decision, Unavailable> {
        let Some(r) = self.tier.redis() else {
            return Err(Unavailable("no redis".into()));
        };
        let key = self.tier.keys.rate_limit(tenant, class.name());
        let (t, tau) = (rate.interval_us(), rate.tolerance_us());
        let v: Vec<i64> = r
            .call(|mut c| async move {
                GCRA.key(&key)
                    .arg(t)
                    .arg(tau)
                    .invoke_async::<Vec<i64>>(&mut c)
                    .await
            })
            .await?;
        let get = |i: usize| v.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(Decision {
            allowed: get(0) == 1,
            limit: rate.per_second,
            remaining: u32::try_from(get(1)).unwrap_or(u32::MAX),
            reset: Duration::from_micros(get(2)),
            retry_after: Duration::from_micros(get(3)),
        })
    }

    /// The in-process limiter (embedded mode, or Redis unavailable).
    pub fn check_local(&self, tenant: &str, class: EndpointClass, rate: Rate) -> Decision {
        use std::hash::{Hash, Hasher};
        let key = self.tier.keys.rate_limit(tenant, class.name());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let shard = &self.local[(h.finish() as usize) % SHARDS];
        let now = self.epoch.elapsed().as_micros() as u64;
        let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
        let (d, tat) = gcra(m.get(&key).copied(), now, rate);
        if let Some(t) = tat {
            m.insert(key, t);
        }
        if m.len() > PRUNE_ABOVE {
            m.retain(|_, t| *t > now);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_admits_the_burst_then_the_rate() {
        let r = Rate::new(10, 5); // 100 ms apart, 5 at once
        let mut tat = None;
        let mut admitted = 0;
        for _ in 0..20 {
            let (d, t) = gcra(tat, 0, r);
            if d.allowed {
                admitted += 1;
                tat = t;
            } else {
                assert_eq!(d.retry_after, Duration::from_millis(100));
            }
        }
        assert_eq!(admitted, 5, "the burst at one instant");
        // One second later: ten more at the sustained rate, one at a time.
        let mut n = 0;
        for ms in (1000..2000).step_by(10) {
            let (d, t) = gcra(tat, ms * 1000, r);
            if d.allowed {
                n += 1;
                tat = t;
            }
        }
        assert!((10..=15).contains(&n), "{n}");
        let (d, _) = gcra(None, 0, r);
        assert_eq!((d.limit, d.remaining), (10, 4));
    }

    #[test]
    fn classes_by_name() {
        for c in CLASSES {
            assert_eq!(EndpointClass::parse(c.name()), Some(c));
        }
        assert_eq!(EndpointClass::parse("bogus"), None);
    }
}
