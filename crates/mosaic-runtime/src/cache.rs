//! The cache tier wired into the platform (decision 0012): the Redis
//! circuit breaker, the task that applies other instances' invalidations
//! to this process's caches, the rate-limit policy (per-tier defaults and
//! per-tenant overrides kept in platform settings), distributed locks,
//! and the figures of every cache by layer.

use crate::resilience::{BreakerSettings, BreakerState, CircuitBreaker};
use crate::Platform;
use chrono::Utc;
use mosaic_cache::lock::Locks;
use mosaic_cache::ratelimit::{Decision, EndpointClass, Rate, RateLimiter, CLASSES, MAX_RATE};
use mosaic_cache::stats::LayerFigures;
use mosaic_cache::{CacheTier, Invalidation, TierStats};
use mosaic_store::settings::SettingRow;
use mosaic_store::CallGuard;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Dependency name of the Redis breaker.
pub const REDIS: &str = "redis";

/// A rate per endpoint class.
pub type ClassRates = [Rate; 5];

/// The default limits of a tier: high enough that no interactive or
/// integration workload of a healthy tenant meets them (the load harness
/// drives an enterprise tenant at about 2,000 requests/s).
pub fn tier_rates(tier: &str) -> ClassRates {
    let scale = match tier {
        "enterprise" => 10,
        "professional" => 2,
        _ => 1,
    };
    let r = |per_second: u32| Rate::new(per_second * scale, per_second * scale * 2);
    // data_read, data_write, query, metadata, admin
    [r(5_000), r(2_500), r(2_500), r(500), r(500)]
}

/// Per-tenant overrides by class (absent classes keep the tier's rate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RateOverrides(pub BTreeMap<EndpointClass, Rate>);

fn overrides_key(tenant: &str) -> String {
    format!("rate_limits:{tenant}")
}

impl RateOverrides {
    /// Checks an operator's input: known classes, 1 ≤ rate ≤ MAX_RATE,
    /// 1 ≤ burst ≤ MAX_RATE. Errors name the field.
    pub fn parse(v: &serde_json::Value) -> MosaicResult<RateOverrides> {
        let obj = v.as_object().ok_or_else(|| {
            MosaicError::invalid("the body is an object of endpoint classes: {\"data_read\": {\"per_second\": 100, \"burst\": 200}, …}")
        })?;
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let class = EndpointClass::parse(k).ok_or_else(|| {
                MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    k.clone(),
                    format!(
                        "{k}: not an endpoint class (one of {})",
                        CLASSES.map(|c| c.name()).join(", ")
                    ),
                )
            })?;
            let num = |f: &str| -> MosaicResult<u32> {
                v.get(f)
                    .and_then(|n| n.as_u64())
                    .filter(|n| (1..=u64::from(MAX_RATE)).contains(n))
                    .map(|n| n as u32)
                    .ok_or_else(|| {
                        MosaicError::field(
                            ErrorCode::INVALID_INPUT,
                            format!("{k}.{f}"),
                            format!("{k}.{f}: a whole number from 1 to {MAX_RATE}"),
                        )
                    })
            };
            let per_second = num("per_second")?;
            let burst = match v.get("burst") {
                None => per_second,
                Some(_) => num("burst")?,
            };
            out.insert(class, Rate::new(per_second, burst));
        }
        Ok(RateOverrides(out))
    }
}

/// The platform's cache services.
pub struct CacheServices {
    pub tier: Arc<CacheTier>,
    /// The Redis breaker (with Redis configured).
    pub breaker: Option<Arc<CircuitBreaker>>,
    pub limiter: RateLimiter,
    pub locks: Arc<Locks>,
    /// Whether requests are rate limited at all.
    pub rate_limits_enabled: bool,
    /// API requests per tenant today, fleet-wide with Redis (`limits`).
    pub api_usage: crate::api_usage::ApiUsage,
    /// Each tenant's effective rates (tier defaults with overrides).
    rates: moka::future::Cache<String, Arc<ClassRates>>,
    /// Rates read before, applied while the metadata database is unavailable.
    last_rates: mosaic_cache::LastGood<String, Arc<ClassRates>>,
}

impl CacheServices {
    pub fn new(
        tier: Arc<CacheTier>,
        clock: Arc<dyn crate::clock::Clock>,
        rate_limits_enabled: bool,
        settings: BreakerSettings,
    ) -> CacheServices {
        let api_usage = crate::api_usage::ApiUsage::new(clock.clone(), tier.clone());
        let breaker = tier.redis().map(|link| {
            let b = Arc::new(CircuitBreaker::new(REDIS, settings, clock));
            link.set_guard(b.clone() as Arc<dyn CallGuard>);
            b
        });
        CacheServices {
            limiter: RateLimiter::new(tier.clone()),
            locks: Arc::new(Locks::new(tier.clone())),
            breaker,
            rate_limits_enabled,
            api_usage,
            last_rates: mosaic_cache::LastGood::new("rate_limits", 100_000),
            rates: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(tier.config.metadata.ttl)
                .build(),
            tier,
        }
    }

    /// Probes Redis itself while its breaker is half-open (the health
    /// monitor calls this every second): up to the breaker's probe count
    /// of `PING`s, so an idle instance closes the breaker — and returns to
    /// level 0 — as soon as Redis answers again, without waiting for
    /// traffic to probe it. Nothing happens when the breaker is closed or
    /// still open.
    pub async fn probe_redis(&self) {
        let (Some(link), Some(b)) = (self.tier.redis(), &self.breaker) else {
            return;
        };
        for _ in 0..b.settings().half_open_probes {
            if b.state() != BreakerState::HalfOpen {
                return;
            }
            let pinged = link
                .call(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
                .await;
            if let Err(e) = pinged {
                tracing::debug!(error = %e.0, "Redis probe failed");
                return;
            }
        }
    }

    /// Whether the L2 cache is configured and answering (the subscriber is
    /// connected and the breaker closed).
    pub fn l2_up(&self) -> Option<bool> {
        self.tier.redis()?;
        let closed = self
            .breaker
            .as_ref()
            .is_none_or(|b| b.state() == BreakerState::Closed);
        Some(closed && self.tier.is_subscribed())
    }
}

/// Stops the subscriber and the dispatcher.
pub struct CacheTask {
    subscriber: Option<mosaic_cache::tier::Subscriber>,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl CacheTask {
    pub async fn stop(self) {
        if let Some(s) = self.subscriber {
            s.stop().await;
        }
        self.dispatcher.abort();
        let _ = self.dispatcher.await;
    }
}

/// Figures of one cache at one layer, for the admin API and metrics.
#[derive(Debug, Clone)]
pub struct CacheFigures {
    pub cache: &'static str,
    pub layer: &'static str,
    pub entries: Option<u64>,
    pub figures: LayerFigures,
}

impl Platform {
    /// Starts applying other instances' invalidations to this process's
    /// caches (and, with Redis, the subscriber that receives them).
    pub fn start_cache_tier(self: &Arc<Self>) -> CacheTask {
        let mut rx = self.cache.tier.listen();
        let subscriber = self.cache.tier.start();
        let p = Arc::downgrade(self);
        let dispatcher = tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Invalidation::All,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(p) = p.upgrade() else { return };
                p.apply_invalidation(&ev).await;
            }
        });
        CacheTask {
            subscriber,
            dispatcher,
        }
    }

    /// Applies one invalidation to every cache of this process.
    pub async fn apply_invalidation(&self, ev: &Invalidation) {
        self.meta.apply(ev).await;
        self.auth.apply(ev).await;
        self.access.apply(ev);
        match ev {
            Invalidation::RateLimits { tenant } => {
                self.cache.last_rates.forget(tenant);
                self.cache.rates.invalidate(tenant).await
            }
            Invalidation::All => self.cache.rates.invalidate_all(),
            _ => {}
        }
    }

    /// The tenant's effective rates: its tier's defaults with its overrides.
    pub async fn tenant_rates(&self, tenant: &str) -> MosaicResult<Arc<ClassRates>> {
        let (meta, settings, t) = (
            self.meta_store.clone(),
            self.settings.clone(),
            tenant.to_string(),
        );
        let rates = self
            .cache
            .rates
            .try_get_with::<_, MosaicError>(tenant.to_string(), async move {
                let tier = meta
                    .tenant(&t)
                    .await?
                    .map(|r| r.tier)
                    .unwrap_or_else(|| "starter".into());
                let mut rates = tier_rates(&tier);
                if let Some(row) = settings.setting(&overrides_key(&t)).await? {
                    let o: RateOverrides = serde_json::from_str(&row.value).unwrap_or_default();
                    for (c, r) in o.0 {
                        rates[c.index()] = r;
                    }
                }
                Ok(Arc::new(rates))
            })
            .await;
        let last = &self.cache.last_rates;
        match rates {
            Ok(r) => {
                last.remember(tenant.to_string(), r.clone());
                Ok(r)
            }
            Err(e) => last.or_stale(&tenant.to_string(), (*e).clone(), |_| true),
        }
    }

    /// Whether one more request of the tenant in `class` is admitted.
    /// `None`: limits are off, or the tenant's rates cannot be read now
    /// (the request is not refused for that).
    pub async fn rate_limit(&self, tenant: &str, class: EndpointClass) -> Option<Decision> {
        if !self.cache.rate_limits_enabled {
            return None;
        }
        let rates = self.tenant_rates(tenant).await.ok()?;
        let d = self
            .cache
            .limiter
            .check(tenant, class, rates[class.index()])
            .await;
        if !d.allowed {
            metrics::counter!("rate_limited_requests_total", "class" => class.name()).increment(1);
        }
        Some(d)
    }

    /// The tenant's overrides as stored.
    pub async fn rate_overrides(&self, tenant: &str) -> MosaicResult<RateOverrides> {
        Ok(match self.settings.setting(&overrides_key(tenant)).await? {
            Some(row) => serde_json::from_str(&row.value).unwrap_or_default(),
            None => RateOverrides::default(),
        })
    }

    /// Replaces the tenant's overrides; every instance applies them at once.
    pub async fn set_rate_overrides(&self, tenant: &str, o: &RateOverrides) -> MosaicResult<()> {
        if self.meta_store.tenant(tenant).await?.is_none() {
            return Err(MosaicError::not_found(
                "The requested resource does not exist: no such tenant",
            ));
        }
        let value = serde_json::to_string(o)
            .map_err(|e| MosaicError::internal(format!("rate limits: {e}")))?;
        self.settings
            .put_setting(SettingRow {
                key: overrides_key(tenant),
                value,
                updated_at: Utc::now(),
            })
            .await?;
        self.cache.rates.invalidate(tenant).await;
        self.cache.last_rates.forget(&tenant.to_string());
        self.cache
            .tier
            .publish(Invalidation::RateLimits {
                tenant: tenant.to_string(),
            })
            .await;
        Ok(())
    }

    /// Every cache by layer: hits, misses, evictions, loads, load time.
    pub fn cache_figures(&self) -> Vec<CacheFigures> {
        let tier = &self.cache.tier;
        let (meta_entries, formula_entries) = self.meta.cache_entries();
        let (hits, misses) = self.auth.session_cache.snapshot();
        let mut out = vec![
            CacheFigures {
                cache: "metadata",
                layer: "l1",
                entries: Some(meta_entries),
                figures: self.meta.l1.figures(),
            },
            CacheFigures {
                cache: "compiled_formula",
                layer: "l1",
                entries: Some(formula_entries),
                figures: self.meta.l1_formulas.figures(),
            },
            CacheFigures {
                cache: "session",
                layer: "l1",
                entries: Some(self.auth.session_cache_entries()),
                figures: LayerFigures {
                    hits,
                    misses,
                    ..Default::default()
                },
            },
            CacheFigures {
                cache: "permissions",
                layer: "l1",
                entries: Some(self.access.snapshot_entries()),
                figures: LayerFigures::default(),
            },
        ];
        if tier.has_l2() {
            out.push(CacheFigures {
                cache: "metadata",
                layer: "l2",
                entries: None,
                figures: tier.l2_metadata.figures(),
            });
            out.push(CacheFigures {
                cache: "session",
                layer: "l2",
                entries: None,
                figures: tier.l2_sessions.figures(),
            });
        }
        out
    }

    /// The tier's own counters (invalidations, flushes, refreshes).
    pub fn cache_tier_figures(&self) -> serde_json::Value {
        let s = &self.cache.tier.stats;
        serde_json::json!({
            "l2_configured": self.cache.tier.has_l2(),
            "subscribed": self.cache.tier.is_subscribed(),
            "breaker": self.cache.breaker.as_ref().map(|b| b.state().name()),
            "invalidations_published": TierStats::get(&s.published),
            "invalidations_received": TierStats::get(&s.received),
            "invalidations_deferred": TierStats::get(&s.deferred),
            "invalidations_pending": self.cache.tier.deferred(),
            "l1_flushes": TierStats::get(&s.l1_flushes),
            "resubscriptions": TierStats::get(&s.resubscriptions),
            "early_refreshes": TierStats::get(&s.early_refreshes),
            "warmed_tenants": TierStats::get(&s.warmed_tenants),
            "metadata_database_loads": self.meta.database_loads(),
        })
    }

    /// Serializes work on one thing across every instance (with Redis;
    /// within this process otherwise): `lock:{kind}:{id}` for `ttl`.
    pub async fn lock(
        &self,
        kind: &str,
        id: &str,
        ttl: Duration,
        wait: Duration,
    ) -> MosaicResult<mosaic_cache::lock::Lease> {
        self.cache.locks.acquire(kind, id, ttl, wait).await
    }

    pub async fn unlock(&self, lease: &mosaic_cache::lock::Lease) -> bool {
        self.cache.locks.release(lease).await
    }
}
