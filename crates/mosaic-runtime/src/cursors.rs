//! Query cursors (`nextRecordsUrl`) weighed by their size and budgeted per
//! tenant. A cursor holds up to [`crate::query::MAX_QUERY_ROWS`] ids, so
//! counting cursors says nothing about memory; each is weighed in bytes
//! instead. A tenant over its budget loses its own oldest cursors, never
//! another tenant's; when the whole process is at its bound, a new cursor is
//! refused (503, retry later) rather than taken from anyone.

use moka::notification::RemovalCause;
use mosaic_types::{MosaicError, MosaicResult};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Cursor memory one tenant may hold (its oldest cursors go first).
pub const CURSOR_BYTES_PER_TENANT: u64 = 32 << 20;
/// Cursor memory of the whole process.
pub const CURSOR_BYTES_TOTAL: u64 = 512 << 20;
/// What every cursor is counted for besides its ids or rows (the plan it
/// shares, the map entry, the locator).
pub const CURSOR_OVERHEAD_BYTES: u64 = 512;

/// The budget figures of a [`CursorCache`].
#[derive(Debug, Clone, Copy)]
pub struct CursorBudget {
    pub per_tenant: u64,
    pub total: u64,
    pub ttl: Duration,
}

struct Entry<V> {
    tenant: String,
    bytes: u64,
    value: Arc<V>,
}

#[derive(Default)]
struct TenantCursors {
    bytes: u64,
    /// Oldest first.
    order: VecDeque<(String, u64)>,
}

#[derive(Default)]
struct Ledger {
    tenants: HashMap<String, TenantCursors>,
    total: u64,
}

impl Ledger {
    /// Forgets `key` of `tenant` (expired, or evicted by its tenant).
    fn forget(&mut self, tenant: &str, key: &str) {
        let Some(t) = self.tenants.get_mut(tenant) else {
            return;
        };
        if let Some(i) = t.order.iter().position(|(k, _)| k == key) {
            if let Some((_, bytes)) = t.order.remove(i) {
                t.bytes -= bytes;
                self.total -= bytes;
            }
        }
        if t.order.is_empty() {
            self.tenants.remove(tenant);
        }
    }
}

/// Cursors by locator, weighed and budgeted per tenant.
pub struct CursorCache<V: Send + Sync + 'static> {
    cache: moka::sync::Cache<String, Arc<Entry<V>>>,
    ledger: Arc<Mutex<Ledger>>,
    budget: CursorBudget,
}

impl<V: Send + Sync + 'static> CursorCache<V> {
    pub fn new(budget: CursorBudget) -> CursorCache<V> {
        let ledger: Arc<Mutex<Ledger>> = Arc::default();
        let listener = ledger.clone();
        let cache = moka::sync::Cache::builder()
            // The ledger keeps the total under `budget.total`; moka's own
            // bound (one largest cursor above it) is only a backstop.
            .max_capacity(budget.total.saturating_add(budget.per_tenant))
            .weigher(|_k: &String, e: &Arc<Entry<V>>| u32::try_from(e.bytes).unwrap_or(u32::MAX))
            .time_to_live(budget.ttl)
            .eviction_listener(move |k: Arc<String>, e: Arc<Entry<V>>, cause| {
                if cause != RemovalCause::Replaced {
                    if let Ok(mut l) = listener.lock() {
                        l.forget(&e.tenant, &k);
                    }
                }
            })
            .build();
        CursorCache {
            cache,
            ledger,
            budget,
        }
    }

    /// Keeps `value` (weighing `bytes`) under `key` for `tenant`, first
    /// dropping the tenant's oldest cursors as far as its budget needs.
    /// `LIMIT_EXCEEDED` when one cursor exceeds a tenant's whole budget;
    /// `SERVICE_UNAVAILABLE` when the process is at its bound.
    pub fn insert(&self, tenant: &str, key: String, value: V, bytes: u64) -> MosaicResult<()> {
        let bytes = bytes.saturating_add(CURSOR_OVERHEAD_BYTES);
        if bytes > self.budget.per_tenant {
            return Err(MosaicError::new(
                mosaic_types::ErrorCode::LIMIT_EXCEEDED,
                format!(
                    "the query's remaining rows need {bytes} bytes of cursor memory, more than a tenant's {} bytes; narrow the query",
                    self.budget.per_tenant
                ),
            ));
        }
        // Expired cursors leave the ledger before it is consulted.
        self.cache.run_pending_tasks();
        let evicted = {
            let mut l = self
                .ledger
                .lock()
                .map_err(|_| MosaicError::internal("cursor ledger lock"))?;
            let mut evicted = Vec::new();
            let held = l.tenants.get(tenant).map_or(0, |t| t.bytes);
            let mut need = (held + bytes).saturating_sub(self.budget.per_tenant);
            while need > 0 {
                let Some((k, b)) = l
                    .tenants
                    .get_mut(tenant)
                    .and_then(|t| t.order.front().cloned())
                else {
                    break;
                };
                l.forget(tenant, &k);
                need = need.saturating_sub(b);
                evicted.push(k);
            }
            if l.total + bytes > self.budget.total {
                drop(l);
                for k in &evicted {
                    self.cache.invalidate(k);
                }
                metrics::counter!("query_cursors_refused_total").increment(1);
                return Err(MosaicError::unavailable(
                    "the server holds as many query cursors as it may; retry shortly",
                ));
            }
            let t = l.tenants.entry(tenant.to_string()).or_default();
            t.bytes += bytes;
            t.order.push_back((key.clone(), bytes));
            l.total += bytes;
            evicted
        };
        for k in &evicted {
            self.cache.invalidate(k);
        }
        if !evicted.is_empty() {
            metrics::counter!("query_cursors_evicted_total", "reason" => "tenant_budget")
                .increment(evicted.len() as u64);
        }
        self.cache.insert(
            key,
            Arc::new(Entry {
                tenant: tenant.to_string(),
                bytes,
                value: Arc::new(value),
            }),
        );
        Ok(())
    }

    /// The cursor under `key`, if it is still kept.
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.cache.get(key).map(|e| e.value.clone())
    }

    /// Drops every cursor.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }

    /// Cursor bytes `tenant` holds now.
    pub fn tenant_bytes(&self, tenant: &str) -> u64 {
        self.cache.run_pending_tasks();
        self.ledger
            .lock()
            .map_or(0, |l| l.tenants.get(tenant).map_or(0, |t| t.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(per_tenant: u64, total: u64) -> CursorCache<u32> {
        CursorCache::new(CursorBudget {
            per_tenant,
            total,
            ttl: Duration::from_secs(900),
        })
    }

    #[test]
    fn a_tenant_filling_its_budget_loses_its_own_oldest_cursors_only() {
        let c = cache(10 * CURSOR_OVERHEAD_BYTES, 1 << 30);
        c.insert("B", "b1".into(), 1, 0).unwrap();
        for i in 0..100 {
            c.insert("A", format!("a{i}"), i, 100).unwrap();
        }
        assert_eq!(
            c.get("b1").as_deref(),
            Some(&1),
            "tenant B's cursor is kept"
        );
        assert!(c.get("a0").is_none(), "tenant A's oldest went first");
        assert_eq!(c.get("a99").as_deref(), Some(&99));
        assert!(c.tenant_bytes("A") <= 10 * CURSOR_OVERHEAD_BYTES);
        assert_eq!(c.tenant_bytes("B"), CURSOR_OVERHEAD_BYTES);
    }

    #[test]
    fn a_full_process_refuses_new_cursors_and_keeps_the_old() {
        let c = cache(4 * CURSOR_OVERHEAD_BYTES, 5 * CURSOR_OVERHEAD_BYTES);
        c.insert("A", "a".into(), 1, 3 * CURSOR_OVERHEAD_BYTES)
            .unwrap();
        let e = c
            .insert("B", "b".into(), 2, 3 * CURSOR_OVERHEAD_BYTES)
            .unwrap_err();
        assert_eq!(e.code, mosaic_types::ErrorCode::SERVICE_UNAVAILABLE);
        assert!(c.get("a").is_some());
        assert!(c.get("b").is_none());
        let e = c.insert("C", "c".into(), 3, 1 << 20).unwrap_err();
        assert_eq!(e.code, mosaic_types::ErrorCode::LIMIT_EXCEEDED);
    }

    #[test]
    fn expired_and_dropped_cursors_leave_the_budget() {
        let c = cache(1 << 20, 1 << 30);
        c.insert("A", "a".into(), 1, 1000).unwrap();
        assert!(c.tenant_bytes("A") > 0);
        c.invalidate_all();
        assert_eq!(c.tenant_bytes("A"), 0);
        assert!(c.get("a").is_none());
    }
}
