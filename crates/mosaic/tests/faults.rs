//! Fault injection. Two `mosaic serve` processes share a metadata database
//! and a shard on PostgreSQL servers of the test's own, a built-in shard on
//! the machine's PostgreSQL, a Redis of the test's own and an LLM stub; a
//! mixed workload (creates, updates, reads, queries, AI formula requests)
//! runs against both while the harness, one at a time, stops and restarts
//! Redis, the metadata database, the shard's database and the LLM, and
//! kills one server with SIGKILL and starts it again.
//!
//! Every request is recorded (second, tenant, operation, status), and each
//! server's `/readyz` is sampled four times a second. For each fault the
//! harness measures the time to detection (the level the seed prescribes
//! reached), the success rate of the traffic the fault should not touch,
//! and the time to recover (level 0 again by itself); afterwards every
//! acknowledged write must be present exactly once with its last
//! acknowledged value. The test fails when any of that does not hold.
//!
//! Breakers run with short open times here (`MOSAIC_FAULTS_SEED=1` keeps
//! the seed's settings; `scripts/faults` runs it that way and prints the
//! table for docs/reliability.md). `MOSAIC_FAULTS_REPORT=<file>` writes
//! the measurements as JSON.

mod common;

use common::{OwnRedis, Server};
use mosaic_store_pg::scratch::{ScratchCluster, ScratchDatabase};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DATA: &str = "/services/data/v60.0";
const AI_FORMULA: &str = "/services/ai/v1/formula/generate";
/// The pause between two operations of one worker.
const PACE: Duration = Duration::from_millis(40);

/// Which tenant a request was for: the one on the built-in shard, or the
/// one moved to the shard whose database the harness stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Tenant {
    Steady,
    Moved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Create,
    Update,
    Read,
    Query,
    Ai,
}

impl Op {
    fn is_write(self) -> bool {
        matches!(self, Op::Create | Op::Update)
    }
}

/// One request as the client saw it, after its failover (if any).
#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the run started, when the request was sent.
    at: f64,
    tenant: Tenant,
    op: Op,
    /// HTTP status; 0 when no server answered.
    status: u16,
    latency_ms: f64,
}

/// One `/readyz` answer.
#[derive(Debug, Clone)]
struct Ready {
    at: f64,
    server: usize,
    level: u64,
    body: Value,
}

struct Log {
    start: Instant,
    samples: Mutex<Vec<Sample>>,
    ready: Mutex<Vec<Ready>>,
    failovers: AtomicU64,
    /// Each distinct error answer (status and message) and how often.
    errors: Mutex<BTreeMap<String, usize>>,
}

impl Log {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// The LLM: an OpenAI-style chat-completions endpoint answering one valid
/// formula, which the harness can take down (its port closed) and bring back.
struct LlmStub {
    port: u16,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LlmStub {
    async fn start() -> Arc<LlmStub> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stub = Arc::new(LlmStub {
            port: l.local_addr().unwrap().port(),
            task: Mutex::new(None),
        });
        stub.serve(l);
        stub
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        async fn complete() -> axum::Json<Value> {
            let content = json!({
                "formula": "Counter__c * 2",
                "explanation": "Twice the counter.",
                "confidence": 0.9
            });
            axum::Json(json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content.to_string()}}]
            }))
        }
        let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(complete));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.task.lock().unwrap() = Some(task);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    async fn restart(&self) {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the stub's port again");
        self.serve(l);
    }
}

/// Everything the servers run on.
struct Deployment {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    servers: Mutex<Vec<Option<Server>>>,
    urls: Mutex<Vec<String>>,
    meta: ScratchCluster,
    shard: ScratchCluster,
    redis: Mutex<OwnRedis>,
    llm: Arc<LlmStub>,
    _records: ScratchDatabase,
}

fn seed_settings() -> bool {
    std::env::var("MOSAIC_FAULTS_SEED").is_ok_and(|v| v == "1")
}

fn run_cli(dir: &Path, env: &[(String, String)], args: &[&str]) -> Value {
    let out = Command::new(common::BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mosaic");
    assert!(
        out.status.success(),
        "mosaic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

impl Deployment {
    async fn start(redis: OwnRedis, llm: Arc<LlmStub>) -> Deployment {
        let meta = ScratchCluster::create().expect("a PostgreSQL cluster (scripts/services)");
        let shard = ScratchCluster::create().expect("a second PostgreSQL cluster");
        let records = ScratchDatabase::create().await.expect("scratch database");
        let dir = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("MOSAIC_METADATA_URL".into(), meta.url()),
            ("MOSAIC_RECORDS_URL".into(), records.url.clone()),
            ("MOSAIC_PG_POOL_SIZE".into(), "4".into()),
            ("MOSAIC_REDIS_URL".into(), redis.url()),
            (
                "MOSAIC_REDIS_PREFIX".into(),
                format!("faults{}:", redis.port),
            ),
            ("MOSAIC_RATE_LIMITS".into(), "off".into()),
            ("MOSAIC_LLM_URL".into(), llm.url()),
            ("MOSAIC_LLM_TIMEOUT_MS".into(), "2000".into()),
        ];
        if !seed_settings() {
            for (k, v) in [
                ("MOSAIC_BREAKER_METADATA", "open=5s"),
                ("MOSAIC_BREAKER_SHARD", "open=5s"),
                ("MOSAIC_BREAKER_REDIS", "open=3s"),
                ("MOSAIC_BREAKER_LLM", "open=5s"),
            ] {
                env.push((k.into(), v.into()));
            }
        }
        Deployment {
            dir,
            env,
            servers: Mutex::new(Vec::new()),
            urls: Mutex::new(Vec::new()),
            meta,
            shard,
            redis: Mutex::new(redis),
            llm,
            _records: records,
        }
    }

    fn cli(&self, args: &[&str]) -> Value {
        run_cli(self.dir.path(), &self.env, args)
    }

    fn spawn_server(&self) -> Server {
        let pairs: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        common::start_with(self.dir.path(), &pairs)
    }

    fn start_servers(&self, n: usize) {
        for _ in 0..n {
            let s = self.spawn_server();
            self.urls.lock().unwrap().push(s.url.clone());
            self.servers.lock().unwrap().push(Some(s));
        }
    }

    fn url(&self, i: usize) -> String {
        self.urls.lock().unwrap()[i].clone()
    }

    /// SIGKILL: no shutdown, no flush, connections cut mid-request.
    fn kill(&self, i: usize) {
        if let Some(mut s) = self.servers.lock().unwrap()[i].take() {
            // SAFETY: signalling a child process this test started.
            unsafe { libc::kill(s.child.id() as i32, libc::SIGKILL) };
            let _ = s.child.wait();
        }
    }

    fn restart(&self, i: usize) {
        let s = self.spawn_server();
        self.urls.lock().unwrap()[i] = s.url.clone();
        self.servers.lock().unwrap()[i] = Some(s);
    }

    fn alive(&self, i: usize) -> bool {
        self.servers.lock().unwrap()[i].is_some()
    }
}

/// A tenant as the workload uses it.
#[derive(Clone)]
struct Account {
    tenant: Tenant,
    token: String,
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut r = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(b);
    }
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    let res = r.send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

/// What the workers acknowledged: created records by name, and each
/// record's last acknowledged counter with the values tried after it
/// whose outcome is unknown.
#[derive(Default)]
struct Ledger {
    created: HashMap<String, String>,
    values: HashMap<String, (Option<i64>, Vec<i64>)>,
}

struct Worker {
    id: usize,
    account: Account,
    /// The server this worker's traffic goes to first.
    home: usize,
}

/// Sends one request the way a load balancer in front of the servers
/// would: to the worker's server, else — when no answer came back — to the
/// other one. Writes carry an `Idempotency-Key`, so retrying one whose
/// fate is unknown is safe; a key still held by a request a killed server
/// was running (409) is retried until the server's reservation lapses.
struct Balancer<'a> {
    d: &'a Deployment,
    log: &'a Log,
    http: reqwest::Client,
}

impl Balancer<'_> {
    async fn call(
        &self,
        home: usize,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> u16 {
        let (d, log, http) = (self.d, self.log, &self.http);
        let until = Instant::now() + Duration::from_secs(20);
        let mut server = home;
        let mut tries = 0;
        loop {
            tries += 1;
            let url = format!("{}{path}", d.url(server));
            match send(http, method.clone(), &url, token, body, key).await {
                Ok((409, v)) if key.is_some() && v.to_string().contains("in progress") => {
                    if Instant::now() > until {
                        return 409;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok((status, v)) => {
                    if !(200..300).contains(&status) {
                        let message = v[0]["message"].as_str().unwrap_or_default();
                        // Numbers (seconds to wait) vary; the message does not.
                        let message: String = message
                            .chars()
                            .take(160)
                            .map(|c| if c.is_ascii_digit() { '#' } else { c })
                            .collect();
                        let key = format!("{status} {message}");
                        *log.errors.lock().unwrap().entry(key).or_insert(0) += 1;
                    }
                    return status;
                }
                Err(_) if tries < 4 => {
                    log.failovers.fetch_add(1, Ordering::Relaxed);
                    server = 1 - server;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => return 0,
            }
        }
    }
}

async fn run_worker(
    d: Arc<Deployment>,
    log: Arc<Log>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    w: Worker,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let lb = Balancer {
        d: &d,
        log: &log,
        http: http.clone(),
    };
    let mut mine: Vec<(String, String)> = Vec::new();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let op = match n % 10 {
            0 | 5 => Op::Create,
            1 | 6 if !mine.is_empty() => Op::Update,
            3 | 8 if !mine.is_empty() => Op::Query,
            _ if mine.is_empty() => Op::Create,
            _ => Op::Read,
        };
        let sent = Instant::now();
        let at = log.now();
        let token = w.account.token.as_str();
        let status = match op {
            Op::Create => {
                let name = format!("w{}-{n}", w.id);
                let body = json!({"Name": name, "Counter__c": 0});
                let key = format!("create-{name}");
                let path = format!("{DATA}/sobjects/Item__c");
                let s = lb
                    .call(
                        w.home,
                        reqwest::Method::POST,
                        &path,
                        token,
                        Some(&body),
                        Some(&key),
                    )
                    .await;
                if s == 201 {
                    // The id comes from a read by name: the response of a
                    // failed-over retry may be a replay from the other server.
                    let q = format!(
                        "{DATA}/query?q=SELECT+Id+FROM+Item__c+WHERE+Name+%3D+%27{name}%27"
                    );
                    let url = format!("{}{q}", d.url(w.home));
                    let other = format!("{}{q}", d.url(1 - w.home));
                    for u in [url, other] {
                        if let Ok((200, v)) =
                            send(&http, reqwest::Method::GET, &u, token, None, None).await
                        {
                            if let Some(id) = v["records"][0]["Id"].as_str() {
                                mine.push((id.to_string(), name.clone()));
                                let mut l = ledger.lock().unwrap();
                                l.created.insert(name.clone(), id.to_string());
                                l.values.insert(id.to_string(), (Some(0), Vec::new()));
                                break;
                            }
                        }
                    }
                }
                s
            }
            Op::Update => {
                let (id, _) = mine[(n as usize / 10) % mine.len()].clone();
                let value = n as i64;
                let path = format!("{DATA}/sobjects/Item__c/{id}");
                let body = json!({"Counter__c": value});
                let key = format!("update-{}-{n}", w.id);
                let s = lb
                    .call(
                        w.home,
                        reqwest::Method::PATCH,
                        &path,
                        token,
                        Some(&body),
                        Some(&key),
                    )
                    .await;
                let mut l = ledger.lock().unwrap();
                let entry = l.values.entry(id).or_default();
                if s == 204 {
                    *entry = (Some(value), Vec::new());
                } else if s == 0 || s >= 500 || s == 409 {
                    // May or may not have been applied.
                    entry.1.push(value);
                }
                s
            }
            Op::Read => {
                let (id, _) = mine[n as usize % mine.len()].clone();
                let path = format!("{DATA}/sobjects/Item__c/{id}");
                lb.call(w.home, reqwest::Method::GET, &path, token, None, None)
                    .await
            }
            Op::Query => {
                let path = format!(
                    "{DATA}/query?q=SELECT+Name,+Counter__c+FROM+Item__c+ORDER+BY+Name+LIMIT+20"
                );
                lb.call(w.home, reqwest::Method::GET, &path, token, None, None)
                    .await
            }
            Op::Ai => unreachable!("AI requests come from the AI worker"),
        };
        log.samples.lock().unwrap().push(Sample {
            at,
            tenant: w.account.tenant,
            op,
            status,
            latency_ms: sent.elapsed().as_secs_f64() * 1000.0,
        });
        tokio::time::sleep(PACE).await;
    }
}

/// Asks for an AI formula every 250 ms, alternating servers.
async fn run_ai_worker(d: Arc<Deployment>, log: Arc<Log>, stop: Arc<AtomicBool>, a: Account) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let lb = Balancer {
        d: &d,
        log: &log,
        http,
    };
    let body = json!({"object": "Item__c", "description": "twice the counter"});
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let home = n % 2;
        let at = log.now();
        let sent = Instant::now();
        let status = lb
            .call(
                home,
                reqwest::Method::POST,
                AI_FORMULA,
                &a.token,
                Some(&body),
                None,
            )
            .await;
        log.samples.lock().unwrap().push(Sample {
            at,
            tenant: a.tenant,
            op: Op::Ai,
            status,
            latency_ms: sent.elapsed().as_secs_f64() * 1000.0,
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn sample_readiness(d: Arc<Deployment>, log: Arc<Log>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        for i in 0..2 {
            if !d.alive(i) {
                continue;
            }
            let at = log.now();
            if let Ok(res) = http.get(format!("{}/readyz", d.url(i))).send().await {
                if let Ok(body) = res.json::<Value>().await {
                    log.ready.lock().unwrap().push(Ready {
                        at,
                        server: i,
                        level: body["degradation_level"].as_u64().unwrap_or(99),
                        body,
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Redis,
    MetadataDb,
    ShardDb,
    Llm,
    KillServer,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Redis => "Redis stopped",
            Fault::MetadataDb => "metadata PostgreSQL stopped",
            Fault::ShardDb => "one shard's PostgreSQL stopped",
            Fault::Llm => "LLM service down",
            Fault::KillServer => "one server killed (SIGKILL)",
        }
    }

    /// The level the seed prescribes while the fault lasts.
    fn level(self) -> Option<u64> {
        match self {
            Fault::Redis => Some(2),
            Fault::MetadataDb => Some(3),
            Fault::Llm => Some(1),
            Fault::ShardDb | Fault::KillServer => None,
        }
    }

    /// The detection window of the breaker that guards the dependency
    /// (the seed's failure window): the fault must be detected within it.
    fn window(self) -> Option<f64> {
        match self {
            Fault::Redis => Some(10.0),
            Fault::MetadataDb | Fault::ShardDb => Some(30.0),
            Fault::Llm => Some(60.0),
            Fault::KillServer => None,
        }
    }

    /// Whether a request is traffic this fault must not affect.
    fn unaffected(self, s: &Sample) -> bool {
        match self {
            Fault::Redis | Fault::KillServer => true,
            Fault::MetadataDb => !s.op.is_write() && s.op != Op::Ai,
            Fault::ShardDb => s.tenant == Tenant::Steady,
            Fault::Llm => s.op != Op::Ai,
        }
    }

    /// What the affected traffic may get instead of success.
    fn allowed_refusal(self, s: &Sample) -> bool {
        match self {
            Fault::MetadataDb | Fault::ShardDb | Fault::Llm => s.status == 503,
            Fault::Redis | Fault::KillServer => false,
        }
    }
}

fn ok(s: &Sample) -> bool {
    (200..300).contains(&s.status)
}

/// The shard's breaker as a server reports it; a server that has not
/// opened the shard yet has no breaker for it, which counts as closed.
fn shard_breaker(r: &Ready) -> &str {
    r.body["dependencies"]["shard:pg-s"]["breaker"]
        .as_str()
        .unwrap_or("closed")
}

/// Whether the sample shows the fault detected.
fn detected(f: Fault, r: &Ready) -> bool {
    match f {
        Fault::ShardDb => shard_breaker(r) == "open",
        _ => f.level().is_some_and(|l| r.level >= l),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[derive(Debug)]
struct Measured {
    fault: Fault,
    detection_s: Option<f64>,
    level: u64,
    unaffected: (usize, usize),
    affected: BTreeMap<u16, usize>,
    p50_before_ms: f64,
    p50_during_ms: f64,
    recovery_s: Option<f64>,
    unexpected: Vec<String>,
}

/// How long to wait for the level to return to 0 after a restore.
fn recovery_limit() -> Duration {
    if seed_settings() {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(45)
    }
}

fn outage() -> Duration {
    Duration::from_secs(if seed_settings() { 15 } else { 8 })
}

/// Whether every live server reports the fault gone (level 0, the shard's
/// breaker closed) in a sample taken after `since`.
fn recovered(log: &Log, d: &Deployment, since: f64) -> bool {
    let ready = log.ready.lock().unwrap();
    (0..2).filter(|i| d.alive(*i)).all(|i| {
        ready
            .iter()
            .rev()
            .find(|r| r.server == i && r.at >= since)
            .is_some_and(|r| r.level == 0 && shard_breaker(r) == "closed")
    })
}

async fn inject(d: &Deployment, f: Fault) {
    match f {
        Fault::Redis => d.redis.lock().unwrap().stop(),
        Fault::MetadataDb => d.meta.stop().expect("stop the metadata cluster"),
        Fault::ShardDb => d.shard.stop().expect("stop the shard cluster"),
        Fault::Llm => d.llm.stop(),
        Fault::KillServer => d.kill(1),
    }
}

async fn restore(d: &Deployment, f: Fault) {
    match f {
        Fault::Redis => d.redis.lock().unwrap().restart(),
        Fault::MetadataDb => d.meta.start().expect("start the metadata cluster"),
        Fault::ShardDb => d.shard.start().expect("start the shard cluster"),
        Fault::Llm => d.llm.restart().await,
        Fault::KillServer => d.restart(1),
    }
}

async fn run_fault(d: &Deployment, log: &Log, f: Fault) -> Measured {
    let before = log.now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t0 = log.now();
    inject(d, f).await;
    tokio::time::sleep(outage()).await;
    let t1 = log.now();
    restore(d, f).await;
    let limit = Instant::now() + recovery_limit();
    let mut recovery_s = None;
    while Instant::now() < limit {
        let now = log.now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        if recovered(log, d, now) {
            recovery_s = Some(log.now() - t1);
            break;
        }
    }
    // Traffic keeps running a moment on the recovered platform.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t2 = log.now();

    let ready = log.ready.lock().unwrap().clone();
    let during: Vec<&Ready> = ready.iter().filter(|r| r.at >= t0 && r.at <= t1).collect();
    let detection_s = match f {
        Fault::KillServer => None,
        _ => during.iter().find(|r| detected(f, r)).map(|r| r.at - t0),
    };
    let level = during.iter().map(|r| r.level).max().unwrap_or(0);
    let samples = log.samples.lock().unwrap().clone();
    let window: Vec<&Sample> = samples.iter().filter(|s| s.at >= t0 && s.at < t2).collect();
    let mut unaffected = (0, 0);
    let mut affected = BTreeMap::new();
    let mut unexpected = Vec::new();
    for s in &window {
        if f.unaffected(s) {
            unaffected.1 += 1;
            if ok(s) {
                unaffected.0 += 1;
            } else {
                unexpected.push(format!(
                    "{:.1}s {:?} {:?} → {}",
                    s.at - t0,
                    s.tenant,
                    s.op,
                    s.status
                ));
            }
        } else {
            *affected.entry(s.status).or_insert(0) += 1;
            if !ok(s) && !f.allowed_refusal(s) {
                unexpected.push(format!(
                    "{:.1}s {:?} {:?} → {} (affected traffic must get 2xx or 503)",
                    s.at - t0,
                    s.tenant,
                    s.op,
                    s.status
                ));
            }
        }
    }
    let latency = |from: f64, to: f64| {
        median(
            samples
                .iter()
                .filter(|s| s.at >= from && s.at < to && f.unaffected(s) && ok(s))
                .map(|s| s.latency_ms)
                .collect(),
        )
    };
    Measured {
        fault: f,
        detection_s,
        level,
        unaffected,
        affected,
        p50_before_ms: latency(before, t0),
        p50_during_ms: latency(t0, t1),
        recovery_s,
        unexpected,
    }
}

/// Every record of a tenant: name → (id, counter).
async fn all_records(base: &str, token: &str) -> Vec<(String, String, i64)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    let mut next = Some(format!(
        "{DATA}/query?q=SELECT+Id,+Name,+Counter__c+FROM+Item__c"
    ));
    while let Some(path) = next.take() {
        let (s, v) = send(
            &http,
            reqwest::Method::GET,
            &format!("{base}{path}"),
            token,
            None,
            None,
        )
        .await
        .expect("query");
        assert_eq!(s, 200, "{v}");
        for r in v["records"].as_array().unwrap() {
            out.push((
                r["Name"].as_str().unwrap().to_string(),
                r["Id"].as_str().unwrap().to_string(),
                r["Counter__c"].as_i64().unwrap_or(-1),
            ));
        }
        next = v["nextRecordsUrl"].as_str().map(str::to_string);
    }
    out
}

/// Each second of the run: successes, errors by status (0: no answer) and
/// the highest level any server reported.
fn per_second(log: &Log) -> Vec<Value> {
    let samples = log.samples.lock().unwrap();
    let ready = log.ready.lock().unwrap();
    let last = samples.iter().map(|s| s.at as usize).max().unwrap_or(0);
    let mut rows = vec![(0usize, BTreeMap::<u16, usize>::new(), 0u64); last + 1];
    for s in samples.iter() {
        let row = &mut rows[s.at as usize];
        if ok(s) {
            row.0 += 1;
        } else {
            *row.1.entry(s.status).or_insert(0) += 1;
        }
    }
    for r in ready.iter() {
        if let Some(row) = rows.get_mut(r.at as usize) {
            row.2 = row.2.max(r.level);
        }
    }
    rows.into_iter()
        .enumerate()
        .map(|(second, (ok, errors, level))| {
            json!({
                "second": second,
                "ok": ok,
                "errors": errors.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "level": level,
            })
        })
        .collect()
}

fn print_table(rows: &[Measured]) {
    println!(
        "| fault | detection | level reached | unaffected traffic | affected traffic | unaffected p50 before → during | recovery (after restore) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for m in rows {
        let det = m
            .detection_s
            .map_or("—".to_string(), |s| format!("{s:.1} s"));
        let rec = m
            .recovery_s
            .map_or("not within the limit".to_string(), |s| format!("{s:.1} s"));
        let aff: Vec<String> = m.affected.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        println!(
            "| {} | {} | {} | {}/{} ({:.2} %) | {} | {:.1} → {:.1} ms | {} |",
            m.fault.name(),
            det,
            m.level,
            m.unaffected.0,
            m.unaffected.1,
            100.0 * m.unaffected.0 as f64 / m.unaffected.1.max(1) as f64,
            if aff.is_empty() {
                "—".into()
            } else {
                aff.join(" ")
            },
            m.p50_before_ms,
            m.p50_during_ms,
            rec
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_degrades_by_the_prescribed_level_recovers_by_itself_and_loses_nothing() {
    let llm = LlmStub::start().await;
    let d = Arc::new(Deployment::start(OwnRedis::start(), llm).await);

    // Two tenants on the built-in shard; one then moves to the shard on
    // the cluster the harness will stop.
    let (steady_token, _) = common::create_tenant(d.dir.path(), &d.env, "steady");
    let (moved_token, moved_id) = common::create_tenant(d.dir.path(), &d.env, "moved");
    let shard_url = d.shard.url();
    d.cli(&[
        "shard", "add", "--id", "pg-s", "--url", &shard_url, "--group", "starter",
    ]);
    d.cli(&["tenant", "move", "--tenant", &moved_id, "--to", "pg-s"]);
    d.start_servers(2);

    let http = reqwest::Client::new();
    for token in [&steady_token, &moved_token] {
        let (s, v) = send(
            &http,
            reqwest::Method::POST,
            &format!("{}/services/metadata/v1/objects", d.url(0)),
            token,
            Some(&json!({"api_name": "Item__c", "label": "Item",
                "fields": [{"api_name": "Counter__c", "data_type": "number"}]})),
            None,
        )
        .await
        .unwrap();
        assert_eq!(s, 201, "{v}");
    }

    let log = Arc::new(Log {
        start: Instant::now(),
        samples: Mutex::default(),
        ready: Mutex::default(),
        failovers: AtomicU64::new(0),
        errors: Mutex::default(),
    });
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let accounts = [
        Account {
            tenant: Tenant::Steady,
            token: steady_token.clone(),
        },
        Account {
            tenant: Tenant::Moved,
            token: moved_token.clone(),
        },
    ];
    let mut id = 0;
    for a in &accounts {
        for home in 0..2 {
            id += 1;
            tasks.push(tokio::spawn(run_worker(
                d.clone(),
                log.clone(),
                ledger.clone(),
                stop.clone(),
                Worker {
                    id,
                    account: a.clone(),
                    home,
                },
            )));
        }
    }
    tasks.push(tokio::spawn(run_ai_worker(
        d.clone(),
        log.clone(),
        stop.clone(),
        accounts[0].clone(),
    )));
    tasks.push(tokio::spawn(sample_readiness(
        d.clone(),
        log.clone(),
        stop.clone(),
    )));

    let mut rows = Vec::new();
    for f in [
        Fault::Redis,
        Fault::MetadataDb,
        Fault::ShardDb,
        Fault::Llm,
        Fault::KillServer,
    ] {
        rows.push(run_fault(&d, &log, f).await);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    // Every acknowledged write is there exactly once, with its last
    // acknowledged value (or a later one whose answer was lost).
    let mut lost = Vec::new();
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let mut stored = 0;
    for token in [&steady_token, &moved_token] {
        let records = all_records(&d.url(0), token).await;
        stored += records.len();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (name, id, counter) in &records {
            *names.entry(name.as_str()).or_default() += 1;
            if let Some((acked, unknown)) = ledger.values.get(id) {
                let fine = acked.is_some_and(|a| a == *counter) || unknown.contains(counter);
                if !fine {
                    lost.push(format!("{name}: counter {counter}, acknowledged {acked:?}"));
                }
            }
        }
        for (name, n) in &names {
            if *n > 1 {
                lost.push(format!("{name} stored {n} times"));
            }
        }
    }
    let all_names: std::collections::HashSet<String> = {
        let mut set = std::collections::HashSet::new();
        for token in [&steady_token, &moved_token] {
            for (name, _, _) in all_records(&d.url(0), token).await {
                set.insert(name);
            }
        }
        set
    };
    for name in ledger.created.keys() {
        if !all_names.contains(name) {
            lost.push(format!("acknowledged create {name} is missing"));
        }
    }

    let samples = log.samples.lock().unwrap().len();
    println!(
        "{} requests, {} failovers to the other server, {} records stored, {} acknowledged creates",
        samples,
        log.failovers.load(Ordering::Relaxed),
        stored,
        ledger.created.len()
    );
    print_table(&rows);
    println!("error answers (status, message, count):");
    for (e, n) in log.errors.lock().unwrap().iter() {
        println!("  {n:>6}  {e}");
    }
    if let Ok(path) = std::env::var("MOSAIC_FAULTS_REPORT") {
        let report: Vec<Value> = rows
            .iter()
            .map(|m| {
                json!({
                    "fault": m.fault.name(),
                    "detection_s": m.detection_s,
                    "level": m.level,
                    "unaffected_ok": m.unaffected.0,
                    "unaffected_total": m.unaffected.1,
                    "affected": m.affected.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "p50_before_ms": m.p50_before_ms,
                    "p50_during_ms": m.p50_during_ms,
                    "recovery_s": m.recovery_s,
                })
            })
            .collect();
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json!({
                "seed_settings": seed_settings(),
                "requests": samples,
                "failovers": log.failovers.load(Ordering::Relaxed),
                "acknowledged_creates": ledger.created.len(),
                "lost": lost,
                "faults": report,
                "per_second": per_second(&log),
            }))
            .unwrap(),
        )
        .expect("write the report");
    }

    let mut failures = Vec::new();
    for m in &rows {
        if let Some(l) = m.fault.level() {
            if m.level != l {
                failures.push(format!(
                    "{}: level {} reached, {} expected",
                    m.fault.name(),
                    m.level,
                    l
                ));
            }
        }
        if let Some(window) = m.fault.window() {
            match m.detection_s {
                None => failures.push(format!(
                    "{}: not detected during the outage",
                    m.fault.name()
                )),
                Some(d) if d > window => failures.push(format!(
                    "{}: detected after {d:.1} s, beyond the breaker's {window} s window",
                    m.fault.name()
                )),
                Some(_) => {}
            }
        }
        if m.recovery_s.is_none() {
            failures.push(format!("{}: did not recover by itself", m.fault.name()));
        }
        if !m.unexpected.is_empty() {
            failures.push(format!(
                "{}: {} unexpected outcomes, first: {:?}",
                m.fault.name(),
                m.unexpected.len(),
                &m.unexpected[..m.unexpected.len().min(5)]
            ));
        }
    }
    failures.extend(lost);
    assert!(failures.is_empty(), "{failures:#?}");
}
