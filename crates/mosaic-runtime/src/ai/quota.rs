//! Per-tenant AI quotas: requests and LLM tokens per UTC day. A request is
//! admitted while both are below their limits (a request may end a little
//! past the token limit: its cost is known only once the LLM answered);
//! the counts start again at midnight UTC.
//!
//! The counts are kept by each instance (the LLM queue is per instance
//! too); with several instances behind a balancer, divide the limits by
//! the instance count.

use crate::clock::Clock;
use chrono::{DateTime, NaiveDate, Utc};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

/// Whether `e` is a refusal of the daily quota (not of the queue).
pub fn is_quota_refusal(e: &MosaicError) -> bool {
    e.code == ErrorCode::REQUEST_LIMIT_EXCEEDED && e.message.starts_with(QUOTA_REFUSAL)
}

pub struct Quota {
    requests_per_day: u64,
    tokens_per_day: u64,
    clock: Arc<dyn Clock>,
    used: Mutex<HashMap<String, Used>>,
}

fn until_midnight(now: DateTime<Utc>) -> Duration {
    let next = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    (next - now).to_std().unwrap_or(Duration::ZERO)
}

impl Quota {
    /// Limits of 0 mean no limit.
    pub fn new(requests_per_day: u64, tokens_per_day: u64, clock: Arc<dyn Clock>) -> Quota {
        Quota {
            requests_per_day,
            tokens_per_day,
            clock,
            used: Mutex::new(HashMap::new()),
        }
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

    /// Counts one request of `tenant`, or refuses it with
    /// `REQUEST_LIMIT_EXCEEDED` when a daily limit is used up.
    pub fn admit(&self, tenant: &str) -> MosaicResult<Remaining> {
        let ((ok, r), _) = self.with(tenant, |u| {
            let now = self.clock.now();
            let before = self.remaining_of(u, now);
            let ok = before.requests != Some(0) && before.tokens != Some(0);
            if ok {
                u.requests += 1;
            }
            (ok, self.remaining_of(u, now))
        });
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
    pub fn charge(&self, tenant: &str, tokens: u64) {
        metrics::counter!("llm_tokens_total").increment(tokens);
        self.with(tenant, |u| u.tokens = u.tokens.saturating_add(tokens));
    }

    /// What `tenant` has left today.
    pub fn remaining(&self, tenant: &str) -> Remaining {
        let (u, now) = self.with(tenant, |u| *u);
        self.remaining_of(&u, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::TimeZone;

    #[test]
    fn requests_and_tokens_are_counted_per_tenant_and_day() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 1, 23, 0, 0).unwrap(),
        ));
        let q = Quota::new(2, 100, clock.clone());
        assert_eq!(q.admit("a").unwrap().requests, Some(1));
        q.charge("a", 60);
        let r = q.admit("a").unwrap();
        assert_eq!((r.requests, r.tokens), (Some(0), Some(40)));
        assert_eq!(r.resets_in, Duration::from_secs(3600));
        let e = q.admit("a").unwrap_err();
        assert_eq!(e.code, ErrorCode::REQUEST_LIMIT_EXCEEDED);
        assert!(e.message.contains("2 AI requests"), "{}", e.message);
        // Another tenant is not affected.
        assert!(q.admit("b").is_ok());
        // Tokens used up refuse too.
        q.charge("b", 100);
        assert!(q.admit("b").unwrap_err().message.contains("100 LLM tokens"));
        // A new day starts again.
        clock.advance(chrono::Duration::hours(1));
        assert_eq!(q.admit("a").unwrap().requests, Some(1));
        assert_eq!(q.remaining("b").tokens, Some(100));
        // No limits.
        let q = Quota::new(0, 0, clock);
        for _ in 0..10 {
            assert_eq!(q.admit("a").unwrap().requests, None);
        }
    }
}
