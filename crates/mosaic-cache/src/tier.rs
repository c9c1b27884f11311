//! [`CacheTier`]: one per process. Owns the Redis link (when configured),
//! the L2 operations the caches use, the sending side of the invalidation
//! bus with its deferred queue, and the subscriber that feeds remote
//! invalidations to this process's caches.

use crate::bus::{Envelope, Invalidation};
use crate::keys::Keys;
use crate::link::{RedisLink, Unavailable};
use crate::stats::{LayerStats, TierStats};
use crate::CacheConfig;
use futures_util::StreamExt;
use mosaic_types::timeouts::{REDIS_COMMAND_TIMEOUT, REDIS_CONNECT_TIMEOUT};
use mosaic_types::MosaicResult;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Invalidations kept while Redis cannot take them; beyond this the oldest
/// are dropped and every instance is told to drop its whole L1 instead.
pub const MAX_DEFERRED: usize = 10_000;
/// Invalidations buffered for this process's caches.
pub const LOCAL_QUEUE: usize = 4096;
/// How often the subscriber pings its connection (a silent network
/// partition is noticed within about this time).
pub const SUBSCRIPTION_PING_EVERY: Duration = Duration::from_secs(1);
/// Pause between two attempts to subscribe.
pub const RESUBSCRIBE_EVERY: Duration = Duration::from_millis(200);

/// Sets `KEYS[1]` to `ARGV[2]` for `ARGV[3]` ms unless `KEYS[2]` (the
/// newest committed version) is newer than `ARGV[1]`.
static FILL: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local newest = tonumber(redis.call('GET', KEYS[2]) or '-1')
if newest > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1",
    )
});

/// Raises `KEYS[1]` (the newest version) to `ARGV[1]` for `ARGV[2]` ms,
/// deletes `KEYS[2..]`, and publishes `ARGV[4]` on channel `ARGV[3]` — one
/// atomic step, so no reader sees the new version key without the deletes.
static INVALIDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if KEYS[1] ~= '' then
  local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
  if cur < tonumber(ARGV[1]) then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return redis.call('PUBLISH', ARGV[3], ARGV[4])",
    )
});

pub struct CacheTier {
    pub config: CacheConfig,
    pub keys: Keys,
    redis: Option<RedisLink>,
    /// This process, as named in the envelopes it publishes.
    instance: String,
    local: broadcast::Sender<Invalidation>,
    deferred: Mutex<VecDeque<Invalidation>>,
    overflowed: AtomicBool,
    subscribed: AtomicBool,
    pub stats: TierStats,
    /// L2 figures of object definitions and of sessions.
    pub l2_metadata: LayerStats,
    pub l2_sessions: LayerStats,
}

/// Stops the subscriber when dropped or stopped.
pub struct Subscriber {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl CacheTier {
    /// The tier as configured; a malformed Redis URL is an error naming
    /// `redis_url`. Nothing is connected yet.
    pub fn new(config: CacheConfig) -> MosaicResult<Arc<CacheTier>> {
        let redis = match &config.redis_url {
            Some(url) => {
                let ca = match &config.redis_ca_file {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        mosaic_types::MosaicError::field(
                            mosaic_types::ErrorCode::INVALID_INPUT,
                            "redis_ca_file",
                            format!("redis_ca_file: {}: {e}", path.display()),
                        )
                    })?),
                    None => None,
                };
                Some(RedisLink::new(url, ca)?)
            }
            None => None,
        };
        let (local, _) = broadcast::channel(LOCAL_QUEUE);
        Ok(Arc::new(CacheTier {
            keys: Keys::new(config.key_prefix.clone()),
            config,
            redis,
            instance: mosaic_types::new_id(),
            local,
            deferred: Mutex::new(VecDeque::new()),
            overflowed: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            stats: TierStats::default(),
            l2_metadata: LayerStats::default(),
            l2_sessions: LayerStats::default(),
        }))
    }

    /// Embedded mode with the default L1 sizes: no L2.
    pub fn embedded() -> Arc<CacheTier> {
        let (local, _) = broadcast::channel(LOCAL_QUEUE);
        Arc::new(CacheTier {
            keys: Keys::default(),
            config: CacheConfig::default(),
            redis: None,
            instance: mosaic_types::new_id(),
            local,
            deferred: Mutex::new(VecDeque::new()),
            overflowed: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            stats: TierStats::default(),
            l2_metadata: LayerStats::default(),
            l2_sessions: LayerStats::default(),
        })
    }

    pub fn redis(&self) -> Option<&RedisLink> {
        self.redis.as_ref()
    }

    pub fn has_l2(&self) -> bool {
        self.redis.is_some()
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether the subscriber is subscribed now (always false embedded).
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// Invalidations from other instances (and [`Invalidation::All`] after
    /// a lost subscription), for this process's caches.
    pub fn listen(&self) -> broadcast::Receiver<Invalidation> {
        self.local.subscribe()
    }

    /// Invalidations not yet published (Redis was unavailable).
    pub fn deferred(&self) -> usize {
        self.deferred.lock().map(|d| d.len()).unwrap_or(0)
    }

    // ----- L2 -----

    /// A value from L2: `Ok(None)` on a miss, `Err` when Redis cannot answer.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(None);
        };
        r.call(|mut c| async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
        })
        .await
    }

    /// Several values in one round trip (missing keys are `None`).
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(vec![None; keys.len()]);
        };
        r.call(|mut c| async move {
            redis::cmd("MGET")
                .arg(keys)
                .query_async::<Vec<Option<Vec<u8>>>>(&mut c)
                .await
        })
        .await
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(());
        };
        let ms = ttl.as_millis().max(1) as u64;
        r.call(|mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Puts a versioned entry in L2 unless a newer version was committed
    /// meanwhile (`version_key` holds the newest). `Ok(false)`: refused.
    pub async fn fill(
        &self,
        key: &str,
        version_key: &str,
        version: i64,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(false);
        };
        let ms = ttl.as_millis().max(1) as u64;
        r.call(|mut c| async move {
            FILL.key(key)
                .key(version_key)
                .arg(version)
                .arg(value)
                .arg(ms)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|n| n == 1)
    }

    pub async fn delete(&self, keys: &[String]) -> Result<(), Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(());
        };
        if keys.is_empty() {
            return Ok(());
        }
        r.call(|mut c| async move { redis::cmd("DEL").arg(keys).query_async::<()>(&mut c).await })
            .await
    }

    /// An encoded entry with its header (see [`crate::codec`]).
    pub fn encode<T: serde::Serialize>(
        &self,
        version: i64,
        compute: Duration,
        value: &T,
    ) -> Option<Vec<u8>> {
        crate::codec::encode(version, compute.as_millis() as u64, now_ms(), value)
    }

    /// Time left of an entry written at `written_ms` with `ttl`.
    pub fn remaining(written_ms: u64, ttl: Duration) -> Duration {
        let age = Duration::from_millis(now_ms().saturating_sub(written_ms));
        ttl.saturating_sub(age)
    }

    // ----- the bus -----

    /// Tells the other instances about a change that has committed (this
    /// process has already applied it to its own caches). For an object,
    /// its L2 entries are deleted and its newest version recorded in the
    /// same step. When Redis cannot take it, it is kept and sent when Redis
    /// is back; never an error.
    pub async fn publish(&self, event: Invalidation) {
        if self.redis.is_none() {
            return;
        }
        if self.send(&event).await.is_err() {
            self.defer(event);
        }
    }

    fn defer(&self, event: Invalidation) {
        TierStats::add(&self.stats.deferred);
        let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() >= MAX_DEFERRED {
            d.pop_front();
            self.overflowed.store(true, Ordering::Relaxed);
        }
        d.push_back(event);
    }

    async fn send(&self, event: &Invalidation) -> Result<(), Unavailable> {
        let Some(r) = &self.redis else {
            return Ok(());
        };
        let payload = Envelope {
            origin: self.instance.clone(),
            event: event.clone(),
        }
        .to_json();
        let channel = self.keys.channel();
        let (version_key, version, mut keys) = match event {
            Invalidation::Object {
                tenant,
                id,
                names,
                version,
            } => {
                let mut keys: Vec<String> =
                    names.iter().map(|n| self.keys.meta(tenant, n)).collect();
                keys.push(self.keys.meta(tenant, id));
                (self.keys.meta_version(tenant, id), *version, keys)
            }
            Invalidation::Sessions { token_hashes } => (
                String::new(),
                0,
                token_hashes.iter().map(|h| self.keys.session(h)).collect(),
            ),
            _ => (String::new(), 0, Vec::new()),
        };
        let version_ttl = (self.config.metadata_l2_ttl * 2).as_millis() as u64;
        keys.insert(0, version_key);
        r.call(|mut c| async move {
            let mut inv = INVALIDATE.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.arg(version)
                .arg(version_ttl)
                .arg(&channel)
                .arg(&payload)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await?;
        TierStats::add(&self.stats.published);
        Ok(())
    }

    /// Sends what was deferred, oldest first; stops at the first failure.
    async fn flush_deferred(&self) {
        if self.overflowed.swap(false, Ordering::Relaxed) {
            self.defer(Invalidation::All);
        }
        loop {
            let next = {
                let d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
                d.front().cloned()
            };
            let Some(ev) = next else { return };
            if self.send(&ev).await.is_err() {
                return;
            }
            let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
            if d.front() == Some(&ev) {
                d.pop_front();
            }
        }
    }

    fn deliver(&self, event: Invalidation) {
        let _ = self.local.send(event);
    }

    /// Starts the subscriber (with Redis configured; `None` embedded). It
    /// subscribes, drops this process's whole L1 on every (re)subscription,
    /// sends deferred invalidations, forwards the others' invalidations to
    /// [`CacheTier::listen`], and notices a lost connection by its pings.
    pub fn start(self: &Arc<Self>) -> Option<Subscriber> {
        self.redis.as_ref()?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let tier = self.clone();
        let handle = tokio::spawn(async move { tier.subscribe_loop(rx).await });
        Some(Subscriber { stop, handle })
    }

    async fn subscribe_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(r) = &self.redis else { return };
        let channel = self.keys.channel();
        let mut first = true;
        loop {
            if *stop.borrow() {
                return;
            }
            let opened = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, async {
                let mut ps = r.client().get_async_pubsub().await?;
                ps.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(ps)
            })
            .await;
            if let Ok(Ok(ps)) = opened {
                self.subscribed.store(true, Ordering::Relaxed);
                if !first {
                    TierStats::add(&self.stats.resubscriptions);
                }
                first = false;
                // Whatever was published while we were not listening is
                // lost: forget everything cached in process.
                TierStats::add(&self.stats.l1_flushes);
                self.deliver(Invalidation::All);
                tracing::info!(channel = %channel, "cache invalidations: subscribed; in-process caches dropped");
                self.flush_deferred().await;
                let (mut sink, mut stream) = ps.split();
                let mut ping = tokio::time::interval(SUBSCRIPTION_PING_EVERY);
                ping.tick().await;
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(m) => self.on_message(m.get_payload_bytes()),
                            None => break,
                        },
                        _ = ping.tick() => {
                            let alive = tokio::time::timeout(REDIS_COMMAND_TIMEOUT * 4, sink.ping::<redis::Value>()).await;
                            if !matches!(alive, Ok(Ok(_))) {
                                break;
                            }
                            if self.deferred() > 0 {
                                self.flush_deferred().await;
                            }
                        }
                        _ = stop.changed() => {
                            self.subscribed.store(false, Ordering::Relaxed);
                            return;
                        }
                    }
                }
                self.subscribed.store(false, Ordering::Relaxed);
                // Invalidations may be missed from now on.
                TierStats::add(&self.stats.l1_flushes);
                self.deliver(Invalidation::All);
                tracing::warn!(channel = %channel, "cache invalidations: subscription lost; in-process caches dropped, resubscribing");
            }
            tokio::select! {
                _ = tokio::time::sleep(RESUBSCRIBE_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    }

    fn on_message(&self, payload: &[u8]) {
        let Some(env) = Envelope::parse(payload) else {
            return;
        };
        if env.origin == self.instance {
            return;
        }
        TierStats::add(&self.stats.received);
        metrics::counter!("cache_invalidations_received_total").increment(1);
        self.deliver(env.event);
    }
}

impl std::fmt::Debug for CacheTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheTier")
            .field("l2", &self.redis.is_some())
            .field("subscribed", &self.is_subscribed())
            .finish()
    }
}
