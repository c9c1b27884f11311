//! The delivery worker: takes due outbox entries (claimed with a lease, so
//! several workers or server instances never hold the same entry at once),
//! delivers them — outbound messages over HTTP, email alerts over SMTP (or
//! to files), time-based workflow actions — and retries failures with
//! exponential backoff and jitter before dead-lettering them.
//!
//! Delivery is at least once: a crash after the receiver got a message but
//! before the entry was completed delivers it again, with the same
//! `X-Mosaic-Delivery-Id`, for the receiver to deduplicate.

use crate::formula_eval::Values;
use crate::platform::{AutomationConfig, Platform};
use crate::records::Caller;
use crate::resilience::RetryPolicy;
use crate::workflow::{EMAIL_ALERT, OUTBOUND_MESSAGE};
use hmac::{Hmac, Mac};
use mosaic_meta::workflow::ActionConfig;
use mosaic_store::automation::TIME_TRIGGER;
use mosaic_store::OutboxEntry;
use mosaic_types::{MosaicError, MosaicResult, Value};
use serde_json::{Map, Value as Json};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// Header carrying the entry id, stable across retries.
pub const DELIVERY_ID_HEADER: &str = "X-Mosaic-Delivery-Id";
/// `sha256=<hex HMAC-SHA256 of the body with the action's secret>`.
pub const SIGNATURE_HEADER: &str = "X-Mosaic-Signature";
pub const ATTEMPT_HEADER: &str = "X-Mosaic-Attempt";

/// The deliveries' retry policy: the platform's [`RetryPolicy::DELIVERY`]
/// (`base · 2^(n-1)`, capped, ±20 % jitter so retries of many entries do
/// not arrive together) with the configured base, cap and count.
pub fn delivery_policy(cfg: &AutomationConfig) -> RetryPolicy {
    RetryPolicy {
        max_retries: cfg.max_retries,
        initial_delay: cfg.retry_base,
        max_delay: cfg.retry_cap,
        ..RetryPolicy::DELIVERY
    }
}

/// Delay before retry number `n` (1-based).
pub fn backoff(cfg: &AutomationConfig, n: u32) -> Duration {
    delivery_policy(cfg).delay(n)
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

enum Mailer {
    Smtp(lettre::AsyncSmtpTransport<lettre::Tokio1Executor>),
    Files(lettre::AsyncFileTransport<lettre::Tokio1Executor>),
}

impl Mailer {
    fn new(cfg: &AutomationConfig) -> MosaicResult<Mailer> {
        match &cfg.smtp_url {
            Some(url) => lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
                .map(|b| Mailer::Smtp(b.timeout(Some(cfg.smtp_timeout)).build()))
                .map_err(|e| MosaicError::internal(format!("SMTP URL: {e}"))),
            None => {
                std::fs::create_dir_all(&cfg.mail_dir).map_err(|e| {
                    MosaicError::internal(format!("mail dir {}: {e}", cfg.mail_dir.display()))
                })?;
                Ok(Mailer::Files(lettre::AsyncFileTransport::new(
                    &cfg.mail_dir,
                )))
            }
        }
    }

    async fn send(&self, m: lettre::Message) -> Result<(), String> {
        use lettre::AsyncTransport;
        match self {
            Mailer::Smtp(t) => t.send(m).await.map(|_| ()).map_err(|e| e.to_string()),
            Mailer::Files(t) => t.send(m).await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }
}

/// A running delivery worker; [`OutboxWorker::stop`] ends it after the
/// entries in hand are settled.
pub struct OutboxWorker {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    platform: Arc<Platform>,
    owner: String,
}

impl OutboxWorker {
    /// The id this worker's leases carry (one per worker, so per instance).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Ends the worker, then releases whatever leases it still holds (an
    /// entry whose bookkeeping failed), so they are due again at once for
    /// the other instances instead of after the lease.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        match self.platform.automation.release_leases(&self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "outbox leases of this instance released"),
            Err(e) => {
                tracing::warn!(error = %e.message, "outbox leases not released; they expire by time")
            }
        }
    }
}

struct Ctx {
    platform: Arc<Platform>,
    /// The lease owner: this worker's instance id.
    owner: String,
    http: reqwest::Client,
    mailer: Mailer,
}

/// Outcome of one attempt.
enum Attempt {
    Done,
    /// Already completed together with its effects.
    Settled,
    Failed(String),
    /// Failed in a way a retry cannot change (a refused destination):
    /// dead-lettered at once.
    Permanent(String),
}

/// A destination the outbound guard refused (the reason).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The delivery client's name resolution: every address a host name
/// resolves to is checked against the guard, and the connection is made to
/// those checked addresses (the client connects to what this returns), so a
/// name cannot pass the check and then be re-resolved elsewhere.
struct GuardedResolver {
    guard: Arc<mosaic_types::OutboundGuard>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("host '{host}' has no address").into());
            }
            for a in &addrs {
                guard.check_resolved(&host, a.ip()).map_err(|e| {
                    Box::new(Refused(e)) as Box<dyn std::error::Error + Send + Sync>
                })?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The guard's refusal somewhere in `err`'s chain of causes.
fn refusal(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        cur = e.source();
    }
    None
}

/// The save-time check again, on the URL as the client reads it: a literal
/// address in a refused range (names are checked by [`GuardedResolver`]).
fn check_literal(guard: &mosaic_types::OutboundGuard, url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("endpoint URL: {e}"))?;
    // The parser writes IPv4 shorthand (`127.1`) in dotted form and IPv6
    // in brackets.
    let host = parsed.host_str().ok_or("endpoint URL has no host")?;
    match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => guard.check_ip(ip),
        Err(_) => Ok(()),
    }
}

/// How often the background loop looks for shard-directory changes.
const DIRECTORY_REFRESH: Duration = Duration::from_secs(1);

impl Platform {
    /// Starts the delivery worker under a new instance id. Leases held by
    /// anyone else — another live instance, or an earlier run of this one
    /// that crashed — are left alone: they expire by time (`lease`) and
    /// are then taken over, so starting an instance never re-arms an entry
    /// another instance is delivering.
    pub async fn start_outbox_worker(self: &Arc<Self>) -> MosaicResult<OutboxWorker> {
        // Every registered shard open, so claims reach all of them.
        self.shards.refresh().await?;
        let owner = mosaic_types::new_id();
        tracing::info!(instance = %owner, "outbox worker started");
        let cfg = &self.config.automation;
        let ctx = Arc::new(Ctx {
            platform: self.clone(),
            owner: owner.clone(),
            http: reqwest::Client::builder()
                .timeout(cfg.http_timeout)
                .connect_timeout(mosaic_types::timeouts::HTTP_CONNECT_TIMEOUT.min(cfg.http_timeout))
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(GuardedResolver {
                    guard: Arc::new(cfg.outbound_allow.clone()),
                }))
                .build()
                .map_err(|e| MosaicError::internal(format!("HTTP client: {e}")))?,
            mailer: Mailer::new(cfg)?,
        });
        let (tx, rx) = tokio::sync::watch::channel(false);
        let handle = tokio::spawn(worker_loop(ctx, rx));
        Ok(OutboxWorker {
            stop: tx,
            handle,
            platform: self.clone(),
            owner,
        })
    }
}

async fn worker_loop(ctx: Arc<Ctx>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let p = ctx.platform.clone();
    let cfg = p.config.automation.clone();
    let mut last_stats = std::time::Instant::now() - Duration::from_secs(60);
    let mut last_refresh = std::time::Instant::now();
    let mut paused = false;
    loop {
        if *stop.borrow() {
            return;
        }
        if last_refresh.elapsed() >= DIRECTORY_REFRESH {
            // Shards registered and tenants moved by other processes.
            last_refresh = std::time::Instant::now();
            if let Err(e) = p.shards.refresh().await {
                tracing::warn!(error = %e.message, "shard directory refresh failed");
            }
        }
        if last_stats.elapsed() > Duration::from_secs(5) {
            last_stats = std::time::Instant::now();
            publish_stats(&p).await;
        }
        // Read-only or maintenance: deliveries would write to a database
        // that is down or being worked on. Entries wait; nothing is lost.
        if p.degradation_level() >= crate::health::DegradationLevel::ReadOnly {
            if !paused {
                paused = true;
                tracing::warn!(
                    "outbox deliveries paused: the platform is read-only or in maintenance"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(cfg.poll) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if paused {
            paused = false;
            tracing::info!("outbox deliveries resumed");
        }
        let now = p.config.clock.now();
        let lease = chrono::Duration::from_std(cfg.lease).unwrap_or(chrono::Duration::seconds(60));
        let batch = match p
            .automation
            .claim_due(&ctx.owner, now, now + lease, cfg.concurrency)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e.message, "outbox claim failed; retrying");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = p.outbox_wake.notified() => {}
                _ = tokio::time::sleep(cfg.poll) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut set = tokio::task::JoinSet::new();
        for e in batch {
            let ctx = ctx.clone();
            set.spawn(async move { settle(&ctx, e).await });
        }
        while set.join_next().await.is_some() {}
    }
}

async fn publish_stats(p: &Platform) {
    let now = p.config.clock.now();
    if let Ok(s) = p.automation.outbox_stats(now).await {
        metrics::gauge!("outbox_pending").set(s.pending as f64);
        metrics::gauge!("outbox_dead_letters").set(s.dead as f64);
        let age = s
            .oldest_due
            .map(|d| (now - d).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("outbox_oldest_pending_seconds").set(age);
        tracing::debug!(
            pending = s.pending,
            dead = s.dead,
            oldest_seconds = age,
            "outbox"
        );
    }
}

async fn settle(ctx: &Ctx, e: OutboxEntry) {
    let p = &ctx.platform;
    let cfg = &p.config.automation;
    let outcome = match e.kind.as_str() {
        OUTBOUND_MESSAGE => deliver_http(ctx, &e).await,
        EMAIL_ALERT => deliver_email(ctx, &e).await,
        TIME_TRIGGER => run_time_trigger(p, &e).await,
        other => Attempt::Failed(format!("unknown outbox entry kind '{other}'")),
    };
    let kind = e.kind.clone();
    let result = match outcome {
        Attempt::Settled => Ok(()),
        Attempt::Done => {
            metrics::counter!("outbox_deliveries_total", "kind" => kind.clone(), "outcome" => "delivered")
                .increment(1);
            p.automation.complete(&e.tenant_id, &e.id).await
        }
        Attempt::Permanent(msg) => {
            let attempts = e.attempts + 1;
            metrics::counter!("outbox_deliveries_total", "kind" => kind.clone(), "outcome" => "dead_lettered")
                .increment(1);
            tracing::warn!(entry = %e.id, tenant = %e.tenant_id, kind = %kind, attempts, error = %msg, "outbox entry refused; dead-lettered without retry");
            p.automation
                .failed(
                    &e.tenant_id,
                    &e.id,
                    attempts,
                    &msg,
                    None,
                    p.config.clock.now(),
                )
                .await
        }
        Attempt::Failed(msg) => {
            let attempts = e.attempts + 1;
            let now = p.config.clock.now();
            if !delivery_policy(cfg).allows(attempts) {
                metrics::counter!("outbox_deliveries_total", "kind" => kind.clone(), "outcome" => "dead_lettered")
                    .increment(1);
                tracing::warn!(entry = %e.id, tenant = %e.tenant_id, kind = %kind, attempts, error = %msg, "outbox entry dead-lettered");
                p.automation
                    .failed(&e.tenant_id, &e.id, attempts, &msg, None, now)
                    .await
            } else {
                metrics::counter!("outbox_deliveries_total", "kind" => kind.clone(), "outcome" => "retry")
                    .increment(1);
                let delay = backoff(cfg, attempts);
                let due = now + chrono::Duration::from_std(delay).unwrap_or_default();
                tracing::info!(entry = %e.id, tenant = %e.tenant_id, kind = %kind, attempts, retry_in_ms = delay.as_millis() as u64, error = %msg, "outbox delivery failed; will retry");
                p.automation
                    .failed(&e.tenant_id, &e.id, attempts, &msg, Some(due), now)
                    .await
            }
        }
    };
    if let Err(err) = result {
        // The lease expires and the entry is tried again.
        tracing::warn!(entry = %e.id, error = %err.message, "outbox bookkeeping failed");
    }
}

async fn deliver_http(ctx: &Ctx, e: &OutboxEntry) -> Attempt {
    let payload: Json = match serde_json::from_str(&e.payload) {
        Ok(v) => v,
        Err(err) => return Attempt::Failed(format!("unreadable payload: {err}")),
    };
    let Some(url) = payload["endpoint_url"].as_str() else {
        return Attempt::Failed("payload has no endpoint_url".into());
    };
    if let Err(reason) = check_literal(&ctx.platform.config.automation.outbound_allow, url) {
        return Attempt::Permanent(format!("refused: {reason}"));
    }
    let body = match serde_json::to_vec(&payload["body"]) {
        Ok(b) => b,
        Err(err) => return Attempt::Failed(format!("payload body: {err}")),
    };
    let mut req = ctx
        .http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_ID_HEADER, &e.id)
        .header(ATTEMPT_HEADER, (e.attempts + 1).to_string());
    if let Some(secret) = payload["secret"].as_str() {
        req = req.header(SIGNATURE_HEADER, signature(secret, &body));
    }
    match req.body(body).send().await {
        Ok(r) if r.status().is_success() => Attempt::Done,
        Ok(r) => Attempt::Failed(format!("endpoint answered HTTP {}", r.status().as_u16())),
        Err(err) => match refusal(&err) {
            Some(reason) => Attempt::Permanent(format!("refused: {reason}")),
            None => Attempt::Failed(format!("delivery failed: {err}")),
        },
    }
}

async fn deliver_email(ctx: &Ctx, e: &OutboxEntry) -> Attempt {
    let payload: Json = match serde_json::from_str(&e.payload) {
        Ok(v) => v,
        Err(err) => return Attempt::Failed(format!("unreadable payload: {err}")),
    };
    let cfg = &ctx.platform.config.automation;
    let from = match cfg.mail_from.parse() {
        Ok(f) => f,
        Err(err) => return Attempt::Failed(format!("sender address: {err}")),
    };
    let mut b = lettre::Message::builder()
        .from(from)
        .subject(payload["subject"].as_str().unwrap_or(""))
        .message_id(Some(format!("<{}@mosaic>", e.id)));
    for to in payload["to"].as_array().into_iter().flatten() {
        match to.as_str().map(str::parse) {
            Some(Ok(m)) => b = b.to(m),
            _ => return Attempt::Failed(format!("bad recipient {to}")),
        }
    }
    let msg = match b.body(payload["body"].as_str().unwrap_or("").to_string()) {
        Ok(m) => m,
        Err(err) => return Attempt::Failed(format!("message: {err}")),
    };
    match ctx.mailer.send(msg).await {
        Ok(()) => Attempt::Done,
        Err(err) => Attempt::Failed(format!("mail delivery failed: {err}")),
    }
}

/// A value as JSON the record pipeline coerces back to the same value.
fn input_json(v: &Value) -> Json {
    match v {
        Value::Datetime(d) => Json::String(d.to_rfc3339()),
        other => mosaic_types::value::to_json(other),
    }
}

/// Runs one time-based action if its rule still applies to the record.
async fn run_time_trigger(p: &Arc<Platform>, e: &OutboxEntry) -> Attempt {
    match time_trigger(p, e).await {
        Ok(a) => a,
        Err(err) => Attempt::Failed(err.message),
    }
}

async fn time_trigger(p: &Arc<Platform>, e: &OutboxEntry) -> MosaicResult<Attempt> {
    let obj = match p.meta.object_by_id(&e.tenant_id, &e.object_id).await {
        Ok(o) => o,
        Err(_) => return Ok(Attempt::Done),
    };
    let Some(rule) = obj
        .def
        .workflow_rules
        .iter()
        .find(|r| Some(&r.id) == e.rule_id.as_ref() && r.is_active)
    else {
        return Ok(Attempt::Done);
    };
    let Some(action) = rule
        .actions
        .iter()
        .find(|a| Some(&a.id) == e.action_id.as_ref())
    else {
        return Ok(Attempt::Done);
    };
    let row = p
        .records
        .get(&e.tenant_id, obj.id(), &e.record_id, &obj.slots())
        .await?;
    let Some(row) = row.filter(|r| !r.is_deleted) else {
        return Ok(Attempt::Done);
    };
    let mut caller = Caller::system(&e.tenant_id, &row.owner_id);
    caller.zone = p.zone_of(&e.tenant_id, &row.owner_id).await?;
    let vals: Values = crate::formula_eval::row_values(p, &obj, &row);
    let vals = p.with_formulas(&caller, &obj, &vals).await?;
    if !p.rule_holds(&caller, &obj, rule, &vals, None).await? {
        return Ok(Attempt::Done);
    }
    match action.config()? {
        ActionConfig::FieldUpdate(fu) => {
            let v = p
                .field_update_value(&caller, &obj, rule, &fu, &vals, None)
                .await?;
            let mut body = Map::new();
            body.insert(fu.field_api_name.clone(), input_json(&v));
            p.update(&caller, obj.api_name(), &e.record_id, &body)
                .await
                .map_err(|errs| {
                    let msg = errs
                        .0
                        .iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ");
                    MosaicError::new(mosaic_types::ErrorCode::INVALID_INPUT, msg)
                })?;
            Ok(Attempt::Done)
        }
        _ => {
            let effect = p
                .action_effect(
                    &caller,
                    &obj,
                    (&e.record_id, &vals),
                    rule,
                    action,
                    "scheduled",
                )
                .await?;
            p.automation
                .complete_with(&e.tenant_id, &e.id, effect.into_iter().collect())
                .await?;
            p.outbox_wake.notify_one();
            Ok(Attempt::Settled)
        }
    }
}
