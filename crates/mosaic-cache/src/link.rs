//! The connection to Redis: one self-reconnecting multiplexed connection
//! (`ConnectionManager`), opened lazily, and the one door every command
//! goes through — the Redis circuit breaker (installed by the runtime as a
//! [`CallGuard`]) and [`REDIS_COMMAND_TIMEOUT`]. A call that is refused,
//! fails or times out returns [`Unavailable`]; callers fall back to the
//! database or decide locally.

use mosaic_store::{CallGuard, CallOutcome};
use mosaic_types::timeouts::{REDIS_COMMAND_TIMEOUT, REDIS_CONNECT_TIMEOUT};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Least time between two attempts to open the connection.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// Redis could not answer (breaker open, connection down, error, timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis unavailable: {}", self.0)
    }
}

pub struct RedisLink {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<Option<Instant>>,
    guard: OnceLock<Arc<dyn CallGuard>>,
    /// The last call's news: whether Redis answered.
    up: AtomicBool,
}

/// Errors that are Redis answering (a script's error, a wrong type), as
/// opposed to Redis being unreachable.
fn is_answer(e: &redis::RedisError) -> bool {
    !(e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error())
}

impl RedisLink {
    /// Parses `url` (`redis://…`, or `rediss://…` over TLS; Sentinel and
    /// Cluster URLs: not implemented). Over TLS the server's certificate
    /// must chain to `ca_pem` when given (PEM), else to the system's roots.
    /// Connects on first use; every connection (commands, pub/sub,
    /// reconnects) takes the same TLS settings.
    pub fn new(url: &str, ca_pem: Option<Vec<u8>>) -> MosaicResult<RedisLink> {
        let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
        if scheme.contains("sentinel") || scheme.contains("cluster") || url.contains(',') {
            return Err(MosaicError::field(
                ErrorCode::NOT_IMPLEMENTED,
                "redis_url",
                "redis_url: Redis Sentinel and Cluster are not supported yet; give one redis:// URL (a primary, or a proxy in front of a cluster)",
            ));
        }
        let tls = url.to_ascii_lowercase().starts_with("rediss://");
        if ca_pem
            .as_ref()
            .is_some_and(|ca| !String::from_utf8_lossy(ca).contains("-----BEGIN CERTIFICATE-----"))
        {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "redis_ca_file",
                "redis_ca_file: no PEM certificate in the file",
            ));
        }
        if tls {
            // The redis crate builds its TLS configuration on the process's
            // provider; Mosaic's is ring (a second install is a no-op).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let opened = match ca_pem {
            Some(ca) if tls => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            ),
            _ => redis::Client::open(url),
        };
        let client = opened.map_err(|e| {
            MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "redis_url",
                format!("redis_url: not a Redis URL ({e})"),
            )
        })?;
        Ok(RedisLink {
            client,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(None),
            guard: OnceLock::new(),
            up: AtomicBool::new(false),
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Installs the breaker every call asks first (once).
    pub fn set_guard(&self, guard: Arc<dyn CallGuard>) -> bool {
        self.guard.set(guard).is_ok()
    }

    /// Whether the last call reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<ConnectionManager> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn manager(&self) -> Result<ConnectionManager, Unavailable> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        // One attempt at a time, and not more often than RECONNECT_EVERY:
        // callers arriving meanwhile fall back at once.
        let Ok(mut last) = self.connecting.try_lock() else {
            return Err(Unavailable("connecting".into()));
        };
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        if last.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
            return Err(Unavailable("not connected".into()));
        }
        *last = Some(Instant::now());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_CONNECT_TIMEOUT)
            .set_response_timeout(REDIS_COMMAND_TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(RECONNECT_EVERY.as_millis() as u64);
        let opened = tokio::time::timeout(
            REDIS_CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        match opened {
            Ok(Ok(c)) => {
                *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                Ok(c)
            }
            Ok(Err(e)) => Err(Unavailable(e.to_string())),
            Err(_) => Err(Unavailable("connect timed out".into())),
        }
    }

    /// Runs one command (or a pipeline, or a script) through the breaker
    /// with the command timeout.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let guard = self.guard.get();
        if let Some(g) = guard {
            if let Err(e) = g.admit() {
                return Err(Unavailable(e.message));
            }
        }
        let report = |o: CallOutcome| {
            if let Some(g) = guard {
                g.record(o);
            }
        };
        let conn = match self.manager().await {
            Ok(c) => c,
            Err(e) => {
                self.up.store(false, Ordering::Relaxed);
                report(CallOutcome::Failed);
                return Err(e);
            }
        };
        match tokio::time::timeout(REDIS_COMMAND_TIMEOUT, f(conn)).await {
            Ok(Ok(v)) => {
                self.up.store(true, Ordering::Relaxed);
                report(CallOutcome::Answered);
                Ok(v)
            }
            Ok(Err(e)) if is_answer(&e) => {
                self.up.store(true, Ordering::Relaxed);
                report(CallOutcome::Answered);
                Err(Unavailable(e.to_string()))
            }
            Ok(Err(e)) => {
                self.up.store(false, Ordering::Relaxed);
                report(CallOutcome::Failed);
                Err(Unavailable(e.to_string()))
            }
            Err(_) => {
                self.up.store(false, Ordering::Relaxed);
                report(CallOutcome::Failed);
                Err(Unavailable("command timed out".into()))
            }
        }
    }
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("up", &self.is_up())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sentinel_and_cluster_urls_are_refused_clearly() {
        for url in [
            "redis+sentinel://h:26379/mymaster",
            "redis+cluster://a:7000",
            "redis://a:7000,b:7001",
        ] {
            let Err(e) = super::RedisLink::new(url, None) else {
                panic!("{url} was accepted");
            };
            assert_eq!(e.code, mosaic_types::ErrorCode::NOT_IMPLEMENTED, "{url}");
            assert_eq!(e.fields, vec!["redis_url".to_string()]);
        }
        assert!(super::RedisLink::new("redis://127.0.0.1:6379", None).is_ok());
        assert!(super::RedisLink::new("rediss://127.0.0.1:6380", None).is_ok());
        let e = super::RedisLink::new("rediss://127.0.0.1:6380", Some(b"not a PEM".to_vec()))
            .expect_err("a CA that is not a certificate");
        assert_eq!(e.fields, vec!["redis_ca_file".to_string()]);
    }
}
