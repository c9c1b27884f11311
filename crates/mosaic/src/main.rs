//! `mosaic`: the single binary. It only wires crates together.

mod ai_eval_cmd;
mod backup_cmd;
mod cert_cmd;
mod healthcheck_cmd;
mod import_cmd;
mod loadtest;
mod metadata_cmd;
mod migrate_metadata_cmd;
mod move_cmd;
mod operator_cmd;
mod sfdx;
mod shard_cmd;
mod telemetry;

use clap::{Args, Parser, Subcommand};
use mosaic_access::NewTenant;
use mosaic_runtime::{Platform, PlatformConfig};
use mosaic_server::AppState;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "mosaic",
    version,
    about = "Mosaic: a multi-tenant, metadata-driven application platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every command shares, so each reaches the same databases as `serve`.
#[derive(Args, Clone)]
struct Common {
    /// Directory of the embedded databases.
    #[arg(long, env = "MOSAIC_DATA_DIR", default_value = "./mosaic-data")]
    data_dir: PathBuf,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, env = "MOSAIC_TOKEN_TTL_SECS", default_value_t = 7200)]
    token_ttl_secs: u64,
    /// Lifetime of refresh tokens, in days; each use rotates the token
    /// (the new one lives this long again).
    #[arg(long, env = "MOSAIC_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30)]
    refresh_token_ttl_days: u64,
    /// How long deleted records stay in the recycle bin, in days, before
    /// `serve` purges them.
    #[arg(long, env = "MOSAIC_RECYCLE_RETENTION_DAYS", default_value_t = 15)]
    recycle_retention_days: u64,
    /// SMTP server for email alerts (`smtp://host:port`, `smtps://user:pass@host`);
    /// without it, alerts are written as files under <data-dir>/mail.
    #[arg(long, env = "MOSAIC_SMTP_URL")]
    smtp_url: Option<String>,
    /// Sender of email alerts.
    #[arg(long, env = "MOSAIC_MAIL_FROM")]
    mail_from: Option<String>,
    /// First retry delay of a failed workflow delivery, in milliseconds
    /// (doubling per retry up to 5 minutes, 5 retries, then dead letter).
    #[arg(long, env = "MOSAIC_OUTBOX_RETRY_BASE_MS", default_value_t = 1000)]
    outbox_retry_base_ms: u64,
    /// How long an instance holds a claimed outbox entry, in seconds. An
    /// entry of an instance that died is delivered by another one once
    /// its lease expires; keep it above the delivery timeout (10 s).
    #[arg(long, env = "MOSAIC_OUTBOX_LEASE_SECS", default_value_t = 60)]
    outbox_lease_secs: u64,
    /// How long an instance holds a claimed Bulk API job between chunks,
    /// in seconds: a job of an instance that died continues on another
    /// one once its lease expires.
    #[arg(long, env = "MOSAIC_BULK_LEASE_SECS", default_value_t = 60)]
    bulk_lease_secs: u64,
    /// Destinations tenants' outbound messages may reach although they are
    /// loopback, private, link-local, CGNAT or multicast: comma-separated
    /// CIDRs, addresses or host names (`10.0.0.0/8,hooks.internal`).
    /// Without it, only public addresses are reached.
    #[arg(long, env = "MOSAIC_OUTBOUND_ALLOW", value_parser = outbound_allow)]
    outbound_allow: Option<mosaic_types::OutboundGuard>,
    /// The metadata database on PostgreSQL (`postgres://user@host/db`);
    /// without it, `metadata.sqlite` in the data directory.
    #[arg(long, env = "MOSAIC_METADATA_URL")]
    metadata_url: Option<String>,
    /// A read replica of the metadata database (a PostgreSQL standby of
    /// `--metadata-url`); repeat for several. Metadata reads are spread
    /// over them, writes go to the primary.
    #[arg(
        long = "metadata-replica-url",
        env = "MOSAIC_METADATA_REPLICA_URLS",
        value_delimiter = ','
    )]
    metadata_replica_urls: Vec<String>,
    /// The built-in record shard on PostgreSQL; without it,
    /// `records.sqlite` in the data directory.
    #[arg(long, env = "MOSAIC_RECORDS_URL")]
    records_url: Option<String>,
    /// Where file content lives: `s3://bucket[/prefix][?endpoint=…&region=…]`
    /// (credentials from `AWS_*`) or `file:///dir`; without it, `blobs/`
    /// in the data directory.
    #[arg(long, env = "MOSAIC_BLOB_URL")]
    blob_url: Option<String>,
    /// Window of hot-tenant detection, in seconds (the seed: a day).
    #[arg(long, env = "MOSAIC_HOT_WINDOW_SECS", default_value_t = 86_400)]
    hot_window_secs: u64,
    /// Move hot tenants to an empty shard automatically.
    #[arg(long, env = "MOSAIC_HOT_AUTO_MOVE")]
    hot_auto_move: bool,
    /// Connections per PostgreSQL pool.
    #[arg(long, env = "MOSAIC_PG_POOL_SIZE", default_value_t = mosaic_runtime::platform::DEFAULT_PG_POOL_SIZE)]
    pg_pool_size: usize,
    /// The L2 cache and invalidation bus on Redis (`redis://host:port/db`);
    /// without it, caches and rate limits are per instance.
    #[arg(long, env = "MOSAIC_REDIS_URL")]
    redis_url: Option<String>,
    /// The CA certificate (PEM) a `rediss://` server must present a chain
    /// to; without it, the system's trusted roots.
    #[arg(long, env = "MOSAIC_REDIS_CA_FILE")]
    redis_ca_file: Option<PathBuf>,
    /// Prefix of every Redis key and channel (deployments sharing a Redis).
    #[arg(long, env = "MOSAIC_REDIS_PREFIX", default_value = "")]
    redis_prefix: String,
    /// Per-tenant request rate limits: `on` or `off`.
    #[arg(long, env = "MOSAIC_RATE_LIMITS", default_value = "on", value_parser = ["on", "off"])]
    rate_limits: String,
    /// Most object definitions kept in process (seed: 50,000).
    #[arg(long, env = "MOSAIC_METADATA_CACHE_ENTRIES", default_value_t = mosaic_cache_defaults::METADATA.capacity)]
    metadata_cache_entries: u64,
    /// Seconds an object definition is kept in process after it was loaded (seed: 60).
    #[arg(long, env = "MOSAIC_METADATA_CACHE_TTL_SECS", default_value_t = mosaic_cache_defaults::METADATA.ttl.as_secs())]
    metadata_cache_ttl_secs: u64,
    /// Circuit breaker of the metadata database (and its replicas):
    /// `failures=5,window=30s,open=30s,probes=3` (the default); name only
    /// what changes, e.g. `open=10s`.
    #[arg(long, env = "MOSAIC_BREAKER_METADATA", value_parser = breaker_overrides)]
    breaker_metadata: Option<String>,
    /// Circuit breaker of each record shard (default as the metadata database's).
    #[arg(long, env = "MOSAIC_BREAKER_SHARD", value_parser = breaker_overrides)]
    breaker_shard: Option<String>,
    /// Circuit breaker of Redis (default `failures=10,window=10s,open=10s,probes=5`).
    #[arg(long, env = "MOSAIC_BREAKER_REDIS", value_parser = breaker_overrides)]
    breaker_redis: Option<String>,
    /// Circuit breaker of the LLM service (default `failures=3,window=60s,open=60s,probes=1`).
    #[arg(long, env = "MOSAIC_BREAKER_LLM", value_parser = breaker_overrides)]
    breaker_llm: Option<String>,
}

/// Checks a breaker override (`open=5s,probes=1`) when the options are read,
/// so a mistake stops start-up with the part at fault named.
fn breaker_overrides(text: &str) -> Result<String, String> {
    BreakerSettings::METADATA_DB.with_overrides(text)?;
    Ok(text.to_string())
}

use mosaic_runtime::resilience::BreakerSettings;

use mosaic_runtime::mosaic_cache::defaults as mosaic_cache_defaults;

/// The LLM service of the AI tier. Its API key comes from the environment
/// only (`MOSAIC_LLM_API_KEY`), never from a flag, so it stays out of
/// shell histories and process listings.
#[derive(Args, Clone)]
struct LlmArgs {
    /// Base URL of an OpenAI-compatible LLM API (`https://api.openai.com`,
    /// `http://127.0.0.1:11434` for a local server); completions are posted
    /// to <url>/v1/chat/completions. Without it the AI endpoints are off.
    #[arg(long, env = "MOSAIC_LLM_URL")]
    llm_url: Option<String>,
    /// The model the AI endpoints ask.
    #[arg(long, env = "MOSAIC_LLM_MODEL", default_value = mosaic_runtime::ai::DEFAULT_LLM_MODEL)]
    llm_model: String,
    /// Limit of one LLM completion, in milliseconds.
    #[arg(long, env = "MOSAIC_LLM_TIMEOUT_MS", default_value_t = mosaic_types::timeouts::LLM_REQUEST_TIMEOUT.as_millis() as u64)]
    llm_timeout_ms: u64,
    /// LLM completions this instance runs at once.
    #[arg(long, env = "MOSAIC_LLM_CONCURRENCY", default_value_t = mosaic_runtime::ai::config::DEFAULT_LLM_CONCURRENCY)]
    llm_concurrency: usize,
    /// AI requests that may wait for a completion slot; beyond, 429.
    #[arg(long, env = "MOSAIC_LLM_QUEUE_CAPACITY", default_value_t = mosaic_runtime::ai::config::DEFAULT_LLM_QUEUE_CAPACITY)]
    llm_queue_capacity: usize,
    /// AI requests per tenant and UTC day (0: no limit).
    #[arg(long, env = "MOSAIC_AI_REQUESTS_PER_DAY", default_value_t = mosaic_runtime::ai::config::DEFAULT_AI_REQUESTS_PER_DAY)]
    ai_requests_per_day: u64,
    /// LLM tokens per tenant and UTC day (0: no limit).
    #[arg(long, env = "MOSAIC_AI_TOKENS_PER_DAY", default_value_t = mosaic_runtime::ai::config::DEFAULT_AI_TOKENS_PER_DAY)]
    ai_tokens_per_day: u64,
}

impl LlmArgs {
    /// The AI tier's configuration, or `None` without `--llm-url`.
    fn config(&self) -> Result<Option<mosaic_runtime::ai::LlmConfig>, String> {
        let Some(url) = self.llm_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let mut cfg = mosaic_runtime::ai::LlmConfig::new(url)
            .and_then(|c| c.with_model(&self.llm_model))
            .map_err(|e| e.message)?;
        cfg.api_key = std::env::var("MOSAIC_LLM_API_KEY")
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty());
        cfg.timeout = Duration::from_millis(self.llm_timeout_ms.max(1));
        cfg.concurrency = self.llm_concurrency.max(1);
        cfg.queue_capacity = self.llm_queue_capacity;
        cfg.requests_per_day = self.ai_requests_per_day;
        cfg.tokens_per_day = self.ai_tokens_per_day;
        Ok(Some(cfg))
    }
}

/// HTTPS and the network in front of the server.
#[derive(Args, Clone)]
struct NetArgs {
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    /// Both files are read again on SIGHUP.
    #[arg(long, env = "MOSAIC_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "MOSAIC_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Also listen for plain HTTP here and answer every request with a 308
    /// redirect to the HTTPS URL (needs --tls-cert).
    #[arg(long, env = "MOSAIC_HTTP_REDIRECT_LISTEN", requires = "tls_cert")]
    http_redirect_listen: Option<String>,
    /// Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed:
    /// comma-separated CIDRs or addresses (`10.0.0.0/8,127.0.0.1`).
    #[arg(long, env = "MOSAIC_TRUSTED_PROXIES", value_parser = trusted_proxies)]
    trusted_proxies: Option<mosaic_server::TrustedProxies>,
}

fn trusted_proxies(text: &str) -> Result<mosaic_server::TrustedProxies, String> {
    mosaic_server::TrustedProxies::parse(text)
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on.
        #[arg(long, env = "MOSAIC_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// URL clients use to reach this server (instance_url); defaults to
        /// http://<listen>, or https://<listen> when serving TLS.
        #[arg(long, env = "MOSAIC_PUBLIC_URL")]
        public_url: Option<String>,
        #[command(flatten)]
        llm: LlmArgs,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        backup: backup_cmd::ServeBackupArgs,
    },
    /// One online snapshot of every database of the data directory into a
    /// backup target (a directory or s3://bucket/prefix), safe while serving.
    Backup(backup_cmd::BackupArgs),
    /// Restore a backup target into a new data directory, to a point in
    /// time or the latest commit shipped, and check it.
    Restore(backup_cmd::RestoreArgs),
    /// Check a data directory's integrity (SQLite, pivots, unique values,
    /// outbox, placements); exits non-zero on any problem.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Tenant administration.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Apply the schema migrations of the metadata database and the
    /// built-in shard (also done by `serve` at start-up) and report them.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Copy the embedded metadata database (metadata.sqlite) into an empty
    /// PostgreSQL one, with the server stopped; then serve with
    /// `--metadata-url` (records stay in the data directory).
    MigrateMetadata(migrate_metadata_cmd::MigrateMetadataArgs),
    /// Record shards: register, list, drain.
    Shard {
        #[command(subcommand)]
        command: shard_cmd::ShardCommand,
    },
    /// Maintenance mode (degradation level 4) for every server sharing the
    /// data directory: within a second or two each one answers 503 with the
    /// message, except health, metrics and the admin switch.
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
    /// TLS certificates (`mosaic cert dev --out DIR`).
    Cert {
        #[command(subcommand)]
        command: cert_cmd::CertCommand,
    },
    /// Tenant metadata: `mosaic metadata import DIR` brings an SFDX
    /// project's objects, fields and validation rules into a tenant.
    Metadata {
        #[command(subcommand)]
        command: metadata_cmd::MetadataCommand,
    },
    /// Platform operators (`mosaic operator create`).
    Operator {
        #[command(subcommand)]
        command: operator_cmd::OperatorCommand,
    },
    /// Drive a running server with the seed's mixed workload and report
    /// per-operation latency against the seed's targets (docs/performance.md).
    Loadtest(loadtest::LoadtestArgs),
    /// Score an LLM service on the AI evaluation set (`eval/ai/`): pass
    /// rate per kind and latency percentiles (docs/operations.md).
    AiEval(ai_eval_cmd::AiEvalArgs),
    /// GET a running server's health URL; exit 0 on a 2xx answer (the
    /// container image's HEALTHCHECK: the image has no curl).
    Healthcheck(healthcheck_cmd::HealthcheckArgs),
    /// Load a CSV file into an object through a running server's Bulk API,
    /// as the token's user, with a progress bar; failed rows are written
    /// to FILE.failed.csv.
    Import(import_cmd::ImportArgs),
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant with its system administrator; prints one JSON object.
    Create {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        name: String,
        #[arg(long)]
        subdomain: String,
        #[arg(long, default_value = "starter", value_parser = ["starter", "professional", "enterprise"])]
        tier: String,
        #[arg(long)]
        admin_username: String,
        #[arg(long, env = "MOSAIC_ADMIN_PASSWORD")]
        admin_password: String,
        #[arg(long)]
        admin_email: Option<String>,
        /// instance_url to report; defaults to the running server's URL.
        #[arg(long, env = "MOSAIC_PUBLIC_URL")]
        instance_url: Option<String>,
    },
    /// Move a tenant to another shard while it keeps serving: journal,
    /// batch copy (with a progress bar), catch-up, a cutover of
    /// milliseconds, directory switch, cleanup of the old copy. Prints the
    /// report (rows, cutover pause).
    Move {
        #[command(flatten)]
        common: Common,
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// The shard to move to (`mosaic shard list`).
        #[arg(long)]
        to: String,
        /// Keep the old copy (a rollback stays possible) until
        /// `mosaic tenant move-finish`.
        #[arg(long)]
        keep_source: bool,
        /// Seconds between the switch and the cleanup (other servers follow
        /// the directory within a second).
        #[arg(long, default_value_t = 3)]
        grace_secs: u64,
    },
    /// Return a moved tenant to the shard it left, with the writes made
    /// since (possible until the old copy is cleaned up).
    MoveRollback {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        tenant: String,
    },
    /// Delete the old copy a `--keep-source` move left behind.
    MoveFinish {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Turn maintenance mode on.
    On {
        #[command(flatten)]
        common: Common,
        /// What refused requests are told.
        #[arg(long)]
        message: Option<String>,
    },
    /// Turn maintenance mode off.
    Off {
        #[command(flatten)]
        common: Common,
    },
    /// Print the switch's state as JSON.
    Status {
        #[command(flatten)]
        common: Common,
    },
}

fn outbound_allow(text: &str) -> Result<mosaic_types::OutboundGuard, String> {
    mosaic_types::OutboundGuard::parse(text)
}

fn config(c: &Common) -> PlatformConfig {
    let mut cfg = PlatformConfig::new(&c.data_dir);
    cfg.token_ttl = Duration::from_secs(c.token_ttl_secs.max(1));
    cfg.refresh_token_ttl =
        Duration::from_secs(c.refresh_token_ttl_days.clamp(1, 3650) * 24 * 60 * 60);
    cfg.recycle_retention =
        Duration::from_secs(c.recycle_retention_days.clamp(1, 3650) * 24 * 60 * 60);
    cfg.automation.smtp_url = c.smtp_url.clone().filter(|u| !u.is_empty());
    if let Some(f) = c.mail_from.clone().filter(|f| !f.is_empty()) {
        cfg.automation.mail_from = f;
    }
    cfg.automation.retry_base = Duration::from_millis(c.outbox_retry_base_ms.max(1));
    cfg.bulk_lease = Duration::from_secs(c.bulk_lease_secs.clamp(1, 3600));
    cfg.automation.lease = Duration::from_secs(c.outbox_lease_secs.max(1));
    if let Some(g) = &c.outbound_allow {
        cfg.automation.outbound_allow = g.clone();
    }
    cfg.metadata_url = c.metadata_url.clone().filter(|u| !u.is_empty());
    cfg.metadata_replica_urls = c
        .metadata_replica_urls
        .iter()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    cfg.records_url = c.records_url.clone().filter(|u| !u.is_empty());
    cfg.files.blob_url = c.blob_url.clone().filter(|u| !u.is_empty());
    cfg.pg_pool_size = c.pg_pool_size.clamp(1, 256);
    cfg.hot_window = Duration::from_secs(c.hot_window_secs.max(60));
    cfg.hot_auto_move = c.hot_auto_move;
    cfg.cache.redis_url = c.redis_url.clone().filter(|u| !u.is_empty());
    cfg.cache.redis_ca_file = c.redis_ca_file.clone();
    cfg.cache.key_prefix = c.redis_prefix.clone();
    cfg.rate_limits = c.rate_limits == "on";
    cfg.cache.metadata.capacity = c.metadata_cache_entries.max(1);
    let ttl = Duration::from_secs(c.metadata_cache_ttl_secs.max(1));
    cfg.cache.metadata.ttl = ttl;
    cfg.cache.metadata.tti = cfg.cache.metadata.tti.map(|t| t.min(ttl));
    let b = &mut cfg.breakers;
    for (settings, text) in [
        (&mut b.metadata, &c.breaker_metadata),
        (&mut b.shard, &c.breaker_shard),
        (&mut b.redis, &c.breaker_redis),
        (&mut b.llm, &c.breaker_llm),
    ] {
        // Checked by `breaker_overrides` when the options were read.
        if let Some(Ok(s)) = text.as_deref().map(|t| settings.with_overrides(t)) {
            *settings = s;
        }
    }
    cfg
}

/// Opens the platform every command works on (the same databases as `serve`).
pub(crate) async fn open(common: &Common) -> Result<Platform, String> {
    Platform::open(config(common)).await.map_err(|e| {
        format!(
            "cannot open the platform ({}): {}",
            common.data_dir.display(),
            e.message
        )
    })
}

/// A refusal as the command line prints it: code, field, message.
pub(crate) fn cli_error(e: mosaic_types::MosaicError) -> String {
    let field = e
        .fields
        .first()
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    format!("{}{field}: {}", e.code, e.message)
}

/// Where a running server said it listens (written at start-up).
pub(crate) fn recorded_url(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("instance.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("url")?.as_str().map(str::to_string)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn serve(
    common: Common,
    listen: String,
    public_url: Option<String>,
    llm: LlmArgs,
    net: NetArgs,
    backup: backup_cmd::ServeBackupArgs,
) -> Result<(), String> {
    // Certificates are checked before anything opens.
    let tls = match (&net.tls_cert, &net.tls_key) {
        (Some(cert), Some(key)) => Some(mosaic_server::tls::ReloadingCert::load(
            mosaic_server::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
        )?),
        _ => None,
    };
    let mut cfg = config(&common);
    cfg.llm = llm.config()?;
    if let Some(l) = &cfg.llm {
        tracing::info!(url = %l.url, model = %l.model, key = l.api_key.is_some(), "AI tier: LLM service configured");
    }
    let platform = Arc::new(Platform::open(cfg).await.map_err(|e| {
        format!(
            "cannot open the platform ({}): {}",
            common.data_dir.display(),
            e.message
        )
    })?);
    let shipper = backup.start(&common.data_dir).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = public_url.unwrap_or_else(|| format!("{scheme}://{addr}"));
    let _ = std::fs::write(
        common.data_dir.join("instance.json"),
        serde_json::json!({"url": url, "pid": std::process::id()}).to_string(),
    );
    tracing::info!(%url, data_dir = %common.data_dir.display(), "Mosaic is listening on {url}");
    tracing::info!(
        "create a tenant and get a token: mosaic tenant create --data-dir {} --name Acme --subdomain acme --admin-username admin@acme.test --admin-password 'change-me-now'",
        common.data_dir.display()
    );
    let mut state = AppState::new(platform.clone(), url.clone());
    if let Some(t) = net.trusted_proxies {
        state.trusted_proxies = Arc::new(t);
    }
    if state.operator_token.is_none() {
        tracing::info!("no MOSAIC_OPERATOR_TOKEN: operator endpoints take operator sessions only (mosaic operator create)");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let redirect = match &net.http_redirect_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            tracing::info!(listen = %addr, to = %url, "redirecting plain HTTP to HTTPS");
            Some(tokio::spawn(mosaic_server::tls::serve_redirect(
                l,
                url.clone(),
                stopped(stop_rx.clone()),
            )))
        }
        None => None,
    };
    let shutdown = {
        let rx = stop_rx.clone();
        async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            stopped(rx).await
        }
    };
    let res = match tls {
        Some(cert) => {
            let reloader = tokio::spawn(reload_on_sighup(cert.clone()));
            let config = mosaic_server::tls::server_config(cert)?;
            let listener = mosaic_server::tls::TlsListener::new(listener, config)
                .map_err(|e| e.to_string())?;
            let r = mosaic_server::serve_tls(listener, state, shutdown).await;
            reloader.abort();
            r
        }
        None => mosaic_server::serve(listener, state, shutdown).await,
    };
    if let Some(r) = redirect {
        let _ = r.await;
    }
    platform.close();
    tracing::info!("stopped; all acknowledged writes are on disk");
    if let Some(shipper) = shipper {
        // The stores are closed: every committed frame is in the WAL.
        shipper
            .finish()
            .await
            .map_err(|e| format!("continuous backup: the last frames were not shipped: {e}"))?;
        tracing::info!("continuous backup: every committed frame shipped");
    }
    res.map_err(|e| e.to_string())
}

/// Reads the certificate and key again on every SIGHUP; open connections
/// keep theirs, a bad file keeps the old certificate (and is logged).
async fn reload_on_sighup(cert: Arc<mosaic_server::tls::ReloadingCert>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be caught: the certificate is not reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            match cert.reload() {
                Ok(()) => {
                    tracing::info!(cert = %cert.files().cert.display(), "TLS certificate reloaded")
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = cert;
}

async fn tenant_create(
    common: Common,
    t: NewTenant,
    instance_url: Option<String>,
) -> Result<(), String> {
    let platform = open(&common).await?;
    let created = platform.create_tenant(t).await;
    platform.close();
    let created = created.map_err(cli_error)?;
    let url = instance_url
        .or_else(|| recorded_url(&common.data_dir))
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
    println!(
        "{}",
        serde_json::json!({
            "tenant_id": created.tenant_id,
            "user_id": created.user_id,
            "access_token": created.access_token,
            "instance_url": url,
        })
    );
    Ok(())
}

/// Flips (or shows) the maintenance switch in the metadata database and
/// prints its state as one JSON object.
async fn maintenance(common: Common, switch: Option<(bool, Option<String>)>) -> Result<(), String> {
    let platform = open(&common).await?;
    let result = match switch {
        Some((enabled, message)) => {
            let r = platform
                .set_maintenance(enabled, message.clone(), "cli")
                .await;
            if r.is_ok() {
                let action = if enabled {
                    "operator.maintenance.on"
                } else {
                    "operator.maintenance.off"
                };
                let detail = serde_json::json!({"enabled": enabled, "message": message});
                if let Err(e) = platform
                    .operators
                    .audit("cli", action, "maintenance", detail)
                    .await
                {
                    tracing::warn!(error = %e.message, "platform audit entry was not written");
                }
            }
            r
        }
        None => platform.refresh_maintenance().await,
    };
    platform.close();
    let m = result.map_err(|e| format!("{}: {}", e.code, e.message))?;
    println!(
        "{}",
        serde_json::json!({
            "enabled": m.enabled,
            "message": m.enabled.then(|| m.text()),
            "updated_at": m.updated_at,
            "updated_by": m.updated_by,
        })
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match telemetry::init(matches!(cli.command, Command::Serve { .. })) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve {
                common,
                listen,
                public_url,
                llm,
                net,
                backup,
            } => serve(common, listen, public_url, llm, net, backup).await,
            Command::Backup(args) => backup_cmd::backup(args).await,
            Command::Restore(args) => backup_cmd::restore(args).await,
            Command::Check { common } => {
                backup_cmd::check(common.data_dir.clone(), common.metadata_url.clone()).await
            }
            Command::Cert { command } => cert_cmd::run(command),
            Command::Operator { command } => operator_cmd::run(command).await,
            Command::Metadata { command } => metadata_cmd::run(command).await,
            Command::Loadtest(args) => loadtest::run(args).await,
            Command::AiEval(args) => ai_eval_cmd::run(args).await,
            Command::Healthcheck(args) => healthcheck_cmd::run(args).await,
            Command::Import(args) => import_cmd::run(args).await,
            Command::Shard { command } => shard_cmd::run(command).await,
            Command::Migrate { common } => {
                let p = open(&common).await?;
                p.shards.refresh().await.map_err(|e| e.message)?;
                let shards: Vec<String> = p.shards.all().iter().map(|s| s.id.clone()).collect();
                p.close();
                println!(
                    "{}",
                    serde_json::json!({"migrated": true, "metadata": if common.metadata_url.is_some() { "postgres" } else { "sqlite" }, "shards": shards})
                );
                Ok(())
            }
            Command::MigrateMetadata(args) => migrate_metadata_cmd::run(args).await,
            Command::Maintenance { command } => match command {
                MaintenanceCommand::On { common, message } => {
                    maintenance(common, Some((true, message))).await
                }
                MaintenanceCommand::Off { common } => {
                    maintenance(common, Some((false, None))).await
                }
                MaintenanceCommand::Status { common } => maintenance(common, None).await,
            },
            Command::Tenant {
                command:
                    TenantCommand::Move {
                        common,
                        tenant,
                        to,
                        keep_source,
                        grace_secs,
                    },
            } => move_cmd::run_move(&common, &tenant, &to, keep_source, grace_secs).await,
            Command::Tenant {
                command: TenantCommand::MoveRollback { common, tenant },
            } => move_cmd::run_rollback(&common, &tenant).await,
            Command::Tenant {
                command: TenantCommand::MoveFinish { common, tenant },
            } => move_cmd::run_finish(&common, &tenant).await,
            Command::Tenant {
                command:
                    TenantCommand::Create {
                        common,
                        name,
                        subdomain,
                        tier,
                        admin_username,
                        admin_password,
                        admin_email,
                        instance_url,
                    },
            } => {
                tenant_create(
                    common,
                    NewTenant {
                        name,
                        subdomain,
                        tier,
                        admin_username,
                        admin_password,
                        admin_email,
                    },
                    instance_url,
                )
                .await
            }
        }
    });
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
