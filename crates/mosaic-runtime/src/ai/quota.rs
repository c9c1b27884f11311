//! Per-tenant AI quotas: requests and LLM tokens per UTC day. A request is
//! admitted while both are below their limits (a request may end a little
//! past the token limit: its cost is known only once the LLM answered);
//! the counts start again at midnight UTC.
//!
//! With Redis configured the counts are the fleet's: one counter per
//! tenant, day and kind (`aiq:{tenant}:{day}:{requests|tokens}` under the
//! deployment's key prefix), checked and incremented by one atomic script
//! (admission) or `INCRBY` (tokens), expiring an hour after the day's end
//! by this instance's clock (the day is in the key; the hour absorbs clock
//! skew between instances).
//! Each answer from Redis also updates this instance's own counter to the
//! fleet's figures. Without Redis, or while it cannot answer (breaker open,
//! connection down, timeout), each instance goes on counting locally from
//! the last figures it saw: during an outage the fleet may admit up to the
//! limit per instance, and what was counted locally is not added to Redis
//! afterwards.

use crate::clock::Clock;
use chrono::{DateTime, NaiveDate, Utc};
use mosaic_cache::CacheTier;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// What one tenant has left today (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    /// Until the counts start again.
    pub resets_in: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Used {
    day: Option<NaiveDate>,
    requests: u64,
    tokens: u64,
}

/// How a quota refusal's message begins.
const QUOTA_REFUSAL: &str = "The tenant's daily AI quota";

/// How long a day's Redis counters outlive the day.
pub const SHARED_COUNTER_GRACE: Duration = Duration::from_secs(3600);

/// Admission on Redis: refuses when either count has reached its limit
/// (`ARGV[1]`, `ARGV[2]`; 0: none), else counts the request; the counter
/// expires in `ARGV[3]` seconds. Returns `{admitted, requests, tokens}`
/// after the call.
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local lr = tonumber(ARGV[1])
local lt = tonumber(ARGV[2])
local req = tonumber(redis.call('GET', KEYS[1]) or '0')
local tok = tonumber(redis.call('GET', KEYS[2]) or '0')
if (lr > 0 and req >= lr) or (lt > 0 and tok >= lt) then
  return {0, req, tok}
end
req = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, req, tok}",
    )
});

/// Whether `e` is a refusal of the daily quota (not of the queue).
pub fn is_quota_refusal(e: &MosaicError) -> bool {
    e.code == ErrorCode::REQUEST_LIMIT_EXCEEDED && e.message.starts_with(QUOTA_REFUSAL)
}

pub struct Quota {
    requests_per_day: u64,
    tokens_per_day: u64,
    clock: Arc<dyn Clock>,
    used: Mutex<HashMap<String, Used>>,
    /// The fleet's counters, when the tier has Redis.
    shared: Option<Arc<CacheTier>>,
}

fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now)
}

fn until_midnight(now: DateTime<Utc>) -> Duration {
    (next_midnight(now) - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// A count as Redis returns it (never negative).
fn count(v: Option<i64>) -> u64 {
    v.unwrap_or(0).max(0) as u64
}

impl Quota {
    /// Limits of 0 mean no limit. Counted by this instance alone.
    pub fn new(requests_per_day: u64, tokens_per_day: u64, clock: Arc<dyn Clock>) -> Quota {
        Quota {
            requests_per_day,
            tokens_per_day,
            clock,
            used: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Counted fleet-wide in `tier`'s Redis when it has one (else, and
    /// while Redis cannot answer, by this instance).
    pub fn shared(
        requests_per_day: u64,
        tokens_per_day: u64,
        clock: Arc<dyn Clock>,
        tier: Arc<CacheTier>,
    ) -> Quota {
        Quota {
            shared: tier.has_l2().then_some(tier),
            ..Quota::new(requests_per_day, tokens_per_day, clock)
        }
    }

    /// Whether the counts are kept in Redis (when it answers).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    fn limited(&self) -> bool {
        self.requests_per_day > 0 || self.tokens_per_day > 0
    }

    fn with<T>(&self, tenant: &str, f: impl FnOnce(&mut Used) -> T) -> (T, DateTime<Utc>) {
        let now = self.clock.now();
        let today = now.date_naive();
        let mut m = self.used.lock().unwrap_or_else(|p| p.into_inner());
        // Yesterday's tenants are forgotten on the first call of a day.
        if m.values().any(|u| u.day != Some(today)) {
            m.retain(|_, u| u.day == Some(today));
        }
        let u = m.entry(tenant.to_string()).or_insert(Used {
            day: Some(today),
            ..Used::default()
        });
        (f(u), now)
    }

    fn remaining_of(&self, u: &Used, now: DateTime<Utc>) -> Remaining {
        let left = |limit: u64, used: u64| (limit > 0).then(|| limit.saturating_sub(used));
        Remaining {
            requests: left(self.requests_per_day, u.requests),
            tokens: left(self.tokens_per_day, u.tokens),
            resets_in: until_midnight(now),
        }
    }

    /// The tier and the tenant's two counter keys of `now`'s day.
    fn shared_keys(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Option<(&CacheTier, String, String)> {
        let tier = self.shared.as_deref()?;
        let day = now.date_naive().format("%Y-%m-%d").to_string();
        Some((
            tier,
            tier.keys.ai_quota(tenant, &day, "requests"),
            tier.keys.ai_quota(tenant, &day, "tokens"),
        ))
    }

    /// Seconds a counter of `now`'s day has left to live.
    fn ttl_secs(now: DateTime<Utc>) -> i64 {
        (until_midnight(now) + SHARED_COUNTER_GRACE)
            .as_secs()
            .max(1) as i64
    }

    /// Takes the fleet's figures as this instance's (the fallback's start).
    fn observe(&self, tenant: &str, requests: Option<u64>, tokens: Option<u64>) {
        self.with(tenant, |u| {
            if let Some(r) = requests {
                u.requests = r;
            }
            if let Some(t) = tokens {
                u.tokens = t;
            }
        });
    }

    fn fell_back(what: &'static str) {
        metrics::counter!("ai_quota_local_fallbacks_total", "op" => what).increment(1);
    }

    /// Admission on Redis: `None` when it cannot answer.
    async fn admit_shared(&self, tenant: &str) -> Option<(bool, Remaining)> {
        let now = self.clock.now();
        let (tier, req_key, tok_key) = self.shared_keys(tenant, now)?;
        let redis = tier.redis()?;
        let (lr, lt, ttl) = (
            self.requests_per_day,
            self.tokens_per_day,
            Self::ttl_secs(now),
        );
        let v: Vec<i64> = match redis
            .call(|mut c| async move {
                ADMIT
                    .key(&req_key)
                    .key(&tok_key)
                    .arg(lr)
                    .arg(lt)
                    .arg(ttl)
                    .invoke_async::<Vec<i64>>(&mut c)
                    .await
            })
            .await
        {
            Ok(v) => v,
            Err(_) => {
                Self::fell_back("admit");
                return None;
            }
        };
        let (req, tok) = (count(v.get(1).copied()), count(v.get(2).copied()));
        self.observe(tenant, Some(req), Some(tok));
        let used = Used {
            day: Some(now.date_naive()),
            requests: req,
            tokens: tok,
        };
        Some((v.first() == Some(&1), self.remaining_of(&used, now)))
    }

    fn admit_local(&self, tenant: &str) -> (bool, Remaining) {
        self.with(tenant, |u| {
            let now = self.clock.now();
            let before = self.remaining_of(u, now);
            let ok = before.requests != Some(0) && before.tokens != Some(0);
            if ok {
                u.requests += 1;
            }
            (ok, self.remaining_of(u, now))
        })
        .0
    }

    /// Counts one request of `tenant`, or refuses it with
    /// `REQUEST_LIMIT_EXCEEDED` when a daily limit is used up.
    pub async fn admit(&self, tenant: &str) -> MosaicResult<Remaining> {
        let shared = match self.limited() {
            true => self.admit_shared(tenant).await,
            false => None,
        };
        let (ok, r) = match shared {
            Some(d) => d,
            None => self.admit_local(tenant),
        };
        if ok {
            return Ok(r);
        }
        let what = if r.requests == Some(0) {
            format!("{} AI requests", self.requests_per_day)
        } else {
            format!("{} LLM tokens", self.tokens_per_day)
        };
        metrics::counter!("ai_quota_refusals_total").increment(1);
        Err(MosaicError::new(
            ErrorCode::REQUEST_LIMIT_EXCEEDED,
            format!(
                "{QUOTA_REFUSAL} ({what}) is used up; it starts again at midnight UTC, in {} s.",
                r.resets_in.as_secs().max(1)
            ),
        ))
    }

    /// Adds the tokens a completion cost.
    pub async fn charge(&self, tenant: &str, tokens: u64) {
        metrics::counter!("llm_tokens_total").increment(tokens);
        if self.limited() {
            let now = self.clock.now();
            if let Some((tier, _, key)) = self.shared_keys(tenant, now) {
                let ttl = Self::ttl_secs(now);
                let n = i64::try_from(tokens).unwrap_or(i64::MAX);
                let r = match tier.redis() {
                    Some(redis) => {
                        redis
                            .call(|mut c| async move {
                                redis::pipe()
                                    .atomic()
                                    .incr(&key, n)
                                    .expire(&key, ttl)
                                    .ignore()
                                    .query_async::<(i64,)>(&mut c)
                                    .await
                            })
                            .await
                    }
                    None => Err(mosaic_cache::Unavailable("no redis".into())),
                };
                match r {
                    Ok((total,)) => return self.observe(tenant, None, Some(count(Some(total)))),
                    Err(_) => Self::fell_back("charge"),
                }
            }
        }
        self.with(tenant, |u| u.tokens = u.tokens.saturating_add(tokens));
    }

    /// What `tenant` has left today.
    pub async fn remaining(&self, tenant: &str) -> Remaining {
        let now = self.clock.now();
        if let Some((tier, req_key, tok_key)) =
            self.shared_keys(tenant, now).filter(|_| self.limited())
        {
            if let Some(redis) = tier.redis() {
                let got = redis
                    .call(|mut c| async move {
                        redis::cmd("MGET")
                            .arg(&req_key)
                            .arg(&tok_key)
                            .query_async::<Vec<Option<i64>>>(&mut c)
                            .await
                    })
                    .await;
                match got {
                    Ok(v) => {
                        let (req, tok) = (
                            count(v.first().copied().flatten()),
                            count(v.get(1).copied().flatten()),
                        );
                        self.observe(tenant, Some(req), Some(tok));
                    }
                    Err(_) => Self::fell_back("remaining"),
                }
            }
        }
        let (u, now) = self.with(tenant, |u| *u);
        self.remaining_of(&u, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::TimeZone;

    #[tokio::test]
    async fn requests_and_tokens_are_counted_per_tenant_and_day() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 1, 23, 0, 0).unwrap(),
        ));
        let q = Quota::new(2, 100, clock.clone());
        assert_eq!(q.admit("a").await.unwrap().requests, Some(1));
        q.charge("a", 60).await;
        let r = q.admit("a").await.unwrap();
        assert_eq!((r.requests, r.tokens), (Some(0), Some(40)));
        assert_eq!(r.resets_in, Duration::from_secs(3600));
        let e = q.admit("a").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::REQUEST_LIMIT_EXCEEDED);
        assert!(e.message.contains("2 AI requests"), "{}", e.message);
        // Another tenant is not affected.
        assert!(q.admit("b").await.is_ok());
        // Tokens used up refuse too.
        q.charge("b", 100).await;
        assert!(q
            .admit("b")
            .await
            .unwrap_err()
            .message
            .contains("100 LLM tokens"));
        // A new day starts again.
        clock.advance(chrono::Duration::hours(1));
        assert_eq!(q.admit("a").await.unwrap().requests, Some(1));
        assert_eq!(q.remaining("b").await.tokens, Some(100));
        // No limits.
        let q = Quota::new(0, 0, clock);
        for _ in 0..10 {
            assert_eq!(q.admit("a").await.unwrap().requests, None);
        }
    }
}
