//! Distributed locks with a time to live and fencing tokens: `lock:{type}:{id}`
//! is set only if absent (`SET NX PX`) to a random holder token, and
//! `fence:{type}:{id}` is incremented in the same script, so every holder
//! gets a larger number than the one before it — a store that remembers
//! the last token it saw can refuse a holder whose lease ran out. Release
//! deletes the key only if it still holds the caller's token. A holder
//! that dies simply stops renewing: the lock frees itself after its TTL.
//!
//! Embedded (or while Redis cannot answer) the same semantics run in
//! process; they then serialize only this instance's callers.

use crate::CacheTier;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Longest TTL a lock may ask for.
pub const MAX_LOCK_TTL: Duration = Duration::from_secs(60);
/// Pause between two attempts to take a held lock.
pub const RETRY_EVERY: Duration = Duration::from_millis(5);

static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0",
    )
});

static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

/// A held lock. Release it with [`Locks::release`]; if it is dropped
/// instead, it expires after its TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub kind: String,
    pub id: String,
    token: String,
    /// Larger than every fencing token handed out for this lock before.
    pub fence: u64,
    /// Whether Redis holds it (false: this process only).
    pub distributed: bool,
}

#[derive(Debug)]
struct LocalLock {
    token: String,
    until: Instant,
}

pub struct Locks {
    tier: Arc<CacheTier>,
    local: Mutex<HashMap<String, LocalLock>>,
    fences: Mutex<HashMap<String, u64>>,
}

fn busy(kind: &str, id: &str) -> MosaicError {
    MosaicError::new(
        ErrorCode::UNABLE_TO_LOCK_ROW,
        format!("unable to obtain exclusive access to this {kind} ({id}); retry"),
    )
}

impl Locks {
    pub fn new(tier: Arc<CacheTier>) -> Locks {
        Locks {
            tier,
            local: Mutex::new(HashMap::new()),
            fences: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `lock:{kind}:{id}` for `ttl`, waiting up to `wait` while
    /// another holder has it; then `UNABLE_TO_LOCK_ROW`.
    pub async fn acquire(
        &self,
        kind: &str,
        id: &str,
        ttl: Duration,
        wait: Duration,
    ) -> MosaicResult<Lease> {
        let ttl = ttl.clamp(Duration::from_millis(1), MAX_LOCK_TTL);
        let token = mosaic_types::new_id();
        let deadline = Instant::now() + wait;
        loop {
            if let Some(lease) = self.try_acquire(kind, id, &token, ttl).await {
                return Ok(lease);
            }
            if Instant::now() >= deadline {
                return Err(busy(kind, id));
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    async fn try_acquire(&self, kind: &str, id: &str, token: &str, ttl: Duration) -> Option<Lease> {
        let lease = |fence: u64, distributed: bool| Lease {
            kind: kind.to_string(),
            id: id.to_string(),
            token: token.to_string(),
            fence,
            distributed,
        };
        if let Some(r) = self.tier.redis() {
            let (key, fence) = (
                self.tier.keys.lock(kind, id),
                self.tier.keys.fence(kind, id),
            );
            let ms = ttl.as_millis() as u64;
            let got = r
                .call(|mut c| async move {
                    ACQUIRE
                        .key(&key)
                        .key(&fence)
                        .arg(token)
                        .arg(ms)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
            match got {
                Ok(0) => return None,
                Ok(n) => return Some(lease(n.max(1) as u64, true)),
                Err(e) => {
                    tracing::warn!(kind, error = %e, "distributed lock unavailable: locking in process only");
                }
            }
        }
        let key = self.tier.keys.lock(kind, id);
        let now = Instant::now();
        let mut m = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(&key).is_some_and(|l| l.until > now) {
            return None;
        }
        m.insert(
            key.clone(),
            LocalLock {
                token: token.to_string(),
                until: now + ttl,
            },
        );
        if m.len() > 10_000 {
            m.retain(|_, l| l.until > now);
        }
        drop(m);
        let mut f = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(key).or_insert(0);
        *n += 1;
        Some(lease(*n, false))
    }

    /// Releases a lease if it still holds the lock (false: it had expired
    /// and someone else may hold it now).
    pub async fn release(&self, lease: &Lease) -> bool {
        let key = self.tier.keys.lock(&lease.kind, &lease.id);
        if lease.distributed {
            if let Some(r) = self.tier.redis() {
                let token = lease.token.clone();
                return r
                    .call(|mut c| async move {
                        RELEASE
                            .key(&key)
                            .arg(&token)
                            .invoke_async::<i64>(&mut c)
                            .await
                    })
                    .await
                    .is_ok_and(|n| n == 1);
            }
        }
        let mut m = self.local.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(&key) {
            Some(l) if l.token == lease.token && l.until > Instant::now() => {
                m.remove(&key);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_locks_exclude_expire_and_fence() {
        let locks = Locks::new(CacheTier::embedded());
        let ttl = Duration::from_millis(50);
        let a = locks
            .acquire("record", "r1", ttl, Duration::ZERO)
            .await
            .unwrap();
        let e = locks
            .acquire("record", "r1", ttl, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UNABLE_TO_LOCK_ROW);
        // Another record is free.
        let other = locks
            .acquire("record", "r2", ttl, Duration::ZERO)
            .await
            .unwrap();
        assert!(locks.release(&other).await);
        // The holder "dies": after the TTL the lock is free, with a larger fence.
        let b = locks
            .acquire("record", "r1", ttl, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(b.fence > a.fence);
        assert!(
            !locks.release(&a).await,
            "an expired lease releases nothing"
        );
        assert!(locks.release(&b).await);
    }
}
