//! Maintenance mode (degradation level 4): an operator's switch kept in the
//! metadata database, so every instance sharing it follows within a poll
//! interval. While it is on, every request but health, metrics and the
//! switch itself is answered 503 with the operator's message.

use crate::Platform;
use chrono::{DateTime, Utc};
use mosaic_store::SettingRow;
use mosaic_types::{MosaicError, MosaicResult};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Settings key of the switch.
pub const MAINTENANCE_KEY: &str = "maintenance";
/// Shown when the operator gave no message.
pub const DEFAULT_MAINTENANCE_MESSAGE: &str =
    "Mosaic is down for maintenance. Please try again later.";
/// Longest operator message, in characters.
pub const MAX_MAINTENANCE_MESSAGE_CHARS: usize = 500;
/// `Retry-After` of answers refused for maintenance.
pub const MAINTENANCE_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How often each instance reads the switch (and so probes the metadata
/// database): a change reaches every instance within this plus one read.
pub const HEALTH_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The switch's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    pub enabled: bool,
    /// What refused requests are told (`None`: the default message).
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Who flipped it: `user:<tenant>/<user>` or `cli`.
    #[serde(default)]
    pub updated_by: Option<String>,
}

impl Maintenance {
    /// The message refused requests get.
    pub fn text(&self) -> &str {
        self.message
            .as_deref()
            .unwrap_or(DEFAULT_MAINTENANCE_MESSAGE)
    }
}

impl Platform {
    /// The switch as this instance last read it (no I/O).
    pub fn maintenance(&self) -> Maintenance {
        self.maintenance
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn cache_maintenance(&self, m: Maintenance) {
        *self.maintenance.write().unwrap_or_else(|e| e.into_inner()) = m;
    }

    /// Turns maintenance on or off for every instance sharing the metadata
    /// database, and at once for this one.
    pub async fn set_maintenance(
        &self,
        enabled: bool,
        message: Option<String>,
        updated_by: &str,
    ) -> MosaicResult<Maintenance> {
        let message = message
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
        if message
            .as_ref()
            .is_some_and(|m| m.chars().count() > MAX_MAINTENANCE_MESSAGE_CHARS)
        {
            return Err(MosaicError::invalid(format!(
                "the maintenance message is longer than {MAX_MAINTENANCE_MESSAGE_CHARS} characters"
            )));
        }
        let now = Utc::now();
        let m = Maintenance {
            enabled,
            message,
            updated_at: Some(now),
            updated_by: Some(updated_by.to_string()),
        };
        let value = serde_json::to_string(&m)
            .map_err(|e| MosaicError::internal(format!("maintenance: {e}")))?;
        let row = SettingRow {
            key: MAINTENANCE_KEY.into(),
            value,
            updated_at: now,
        };
        crate::resilience::retry(crate::resilience::CallKind::Database, || {
            self.settings.put_setting(row.clone())
        })
        .await?;
        tracing::warn!(enabled, by = %updated_by, "maintenance mode switched");
        self.cache_maintenance(m.clone());
        Ok(m)
    }

    /// Reads the switch from the metadata database into this instance.
    pub async fn refresh_maintenance(&self) -> MosaicResult<Maintenance> {
        let row = self.settings.setting(MAINTENANCE_KEY).await?;
        let m = match row {
            Some(r) => serde_json::from_str(&r.value)
                .map_err(|e| MosaicError::internal(format!("stored maintenance state: {e}")))?,
            None => Maintenance::default(),
        };
        let before = self.maintenance();
        if before.enabled != m.enabled {
            tracing::warn!(
                enabled = m.enabled,
                "maintenance mode changed by another instance or the CLI"
            );
        }
        self.cache_maintenance(m.clone());
        Ok(m)
    }

    /// Starts the background task that reads the switch every
    /// [`HEALTH_POLL_INTERVAL`]: the read doubles as the metadata
    /// database's probe, and the task publishes the breaker and degradation
    /// gauges. The first read happens before this returns.
    pub async fn start_health_monitor(self: &Arc<Self>) -> HealthMonitor {
        self.poll_health().await;
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let p = self.clone();
        let handle = tokio::spawn(async move {
            let mut last_hot = std::time::Instant::now();
            let mut rebalancing: Option<tokio::task::JoinHandle<()>> = None;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(HEALTH_POLL_INTERVAL) => p.poll_health().await,
                    _ = rx.changed() => return,
                }
                // Automatic moves of hot tenants, one round at a time.
                if p.config.hot_auto_move
                    && last_hot.elapsed() >= p.config.hot_check_interval
                    && rebalancing.as_ref().is_none_or(|h| h.is_finished())
                {
                    last_hot = std::time::Instant::now();
                    let q = p.clone();
                    rebalancing = Some(tokio::spawn(async move {
                        if let Err(e) = q.rebalance_hot_tenants().await {
                            tracing::warn!(error = %e.message, "hot-tenant check failed");
                        }
                    }));
                }
            }
        });
        HealthMonitor { stop: tx, handle }
    }

    async fn poll_health(&self) {
        let ok = match self.refresh_maintenance().await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e.message, "metadata database probe failed");
                false
            }
        };
        self.metadata_probe_failed.store(!ok, Ordering::Relaxed);
        // A half-open Redis breaker is probed here, not only by traffic.
        self.cache.probe_redis().await;
        // This second's requests join the fleet's hot-tenant counts.
        self.hot.share(&self.cache.tier).await;
        for b in self.breakers.all().chain(&self.breakers.replicas) {
            metrics::gauge!("circuit_breaker_state", "dependency" => b.dependency().to_string())
                .set(b.state().gauge());
        }
        metrics::gauge!("degradation_level").set(f64::from(self.degradation_level().level()));
    }
}

/// The running health monitor; [`HealthMonitor::stop`] ends it.
pub struct HealthMonitor {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl HealthMonitor {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}
