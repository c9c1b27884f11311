//! Request observation: a request id for every request (accepted from
//! `X-Request-Id` or minted), carried by every log line of the request and
//! by error bodies; one summary log line per request; HTTP metrics by route
//! template; the Prometheus exposition at `/metrics`.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest client-supplied request id kept (longer or odd ones are replaced).
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Tenants labelled individually in per-tenant metrics; the rest are `other`.
pub const TOP_TENANTS: usize = 20;
/// Counters not updated for this long are dropped from the exposition.
pub const SERIES_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// Latency buckets (seconds): resolve sub-millisecond times.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// What the request has learnt about itself (set by the auth extractor).
#[derive(Debug, Default)]
pub struct RequestInfo {
    pub id: String,
    pub tenant: Mutex<Option<(String, String)>>,
}

tokio::task_local! {
    static CURRENT: std::sync::Arc<RequestInfo>;
}

/// The id of the request being served, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT.try_with(|c| c.id.clone()).ok()
}

/// Records the authenticated tenant and user of the current request.
pub fn set_caller(tenant: &str, user: &str) {
    let _ = CURRENT.try_with(|c| {
        if let Ok(mut g) = c.tenant.lock() {
            *g = Some((tenant.to_string(), user.to_string()));
        }
    });
}

/// `f` carried in the current request's context (its id and caller), for
/// work a request hands to a spawned task.
pub fn within_current_request<F: std::future::Future>(
    f: F,
) -> impl std::future::Future<Output = F::Output> {
    let info = CURRENT.try_with(std::sync::Arc::clone).ok();
    async move {
        match info {
            Some(info) => CURRENT.scope(info, f).await,
            None => f.await,
        }
    }
}

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= MAX_REQUEST_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide metrics recorder once; `None` when metrics are
/// turned off (`MOSAIC_METRICS=off`) or another recorder is installed.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            if std::env::var("MOSAIC_METRICS").is_ok_and(|v| v == "off") {
                return None;
            }
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .ok()?
                // Series not updated for a while disappear, so tenants that
                // left the top ranks stop costing series.
                .idle_timeout(
                    metrics_util::MetricKindMask::COUNTER,
                    Some(SERIES_IDLE_TIMEOUT),
                )
                .install_recorder()
                .ok()
                .inspect(start_upkeep)
        })
        .as_ref()
}

/// How often the recorder folds recorded histogram samples into their
/// buckets and forgets idle series.
pub const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until upkeep folds it into the
/// buckets; without it memory grows with traffic between scrapes (forever
/// when nobody scrapes) and recording gets slower. One thread for the
/// process, like the recorder itself.
fn start_upkeep(handle: &PrometheusHandle) {
    let handle = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(METRICS_UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms are folded at scrape time only");
    }
}

/// Seconds of traffic behind a tenant's rolling request rate.
pub const RATE_WINDOW_SECS: u64 = 60;
/// Requests counted between two re-rankings of the labelled tenants.
const RERANK_EVERY: u64 = 1000;
/// Tenants remembered for ranking before the rarely seen are forgotten.
const MAX_RANKED_TENANTS: usize = 50_000;

/// Bounded-cardinality tenant labels: the busiest tenants by name, the rest
/// as `other`. Counts decay by half at every re-ranking. Beside them, each
/// tenant's requests over the last [`RATE_WINDOW_SECS`] seconds, for the
/// status view's hot tenants.
pub struct TenantRanking {
    started: Instant,
    inner: Mutex<Ranking>,
}

impl Default for TenantRanking {
    fn default() -> TenantRanking {
        TenantRanking {
            started: Instant::now(),
            inner: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct Ranking {
    counts: HashMap<String, u64>,
    top: Vec<String>,
    since_rank: u64,
    rates: HashMap<String, RateWindow>,
}

/// Requests per second over the last [`RATE_WINDOW_SECS`] seconds, one
/// bucket per second (bucket `s % window` holds second `s`).
struct RateWindow {
    buckets: [u32; RATE_WINDOW_SECS as usize],
    last: u64,
}

impl RateWindow {
    fn new(now: u64) -> RateWindow {
        RateWindow {
            buckets: [0; RATE_WINDOW_SECS as usize],
            last: now,
        }
    }

    /// Moves the window to end at second `now`, clearing the seconds that
    /// fell out of it.
    fn advance(&mut self, now: u64) {
        if now >= self.last + RATE_WINDOW_SECS {
            self.buckets = [0; RATE_WINDOW_SECS as usize];
        } else {
            for sec in self.last + 1..=now {
                self.buckets[(sec % RATE_WINDOW_SECS) as usize] = 0;
            }
        }
        self.last = self.last.max(now);
    }

    fn hit(&mut self, now: u64) {
        self.advance(now);
        let b = &mut self.buckets[(now % RATE_WINDOW_SECS) as usize];
        *b = b.saturating_add(1);
    }

    fn total(&self) -> u64 {
        self.buckets.iter().map(|&n| u64::from(n)).sum()
    }
}

/// A tenant's traffic over the rolling window.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRate {
    pub tenant: String,
    /// Requests in the last [`RATE_WINDOW_SECS`] seconds.
    pub requests: u64,
}

impl TenantRate {
    /// Mean requests per second over the window.
    pub fn qps(&self) -> f64 {
        self.requests as f64 / RATE_WINDOW_SECS as f64
    }
}

impl TenantRanking {
    fn now_sec(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts one request of `tenant` and returns its metrics label.
    pub fn label(&self, tenant: &str) -> String {
        self.label_at(tenant, self.now_sec())
    }

    /// [`TenantRanking::label`] at second `now` of the ranking's clock.
    pub fn label_at(&self, tenant: &str, now: u64) -> String {
        let Ok(mut guard) = self.inner.lock() else {
            return "other".into();
        };
        let r = &mut *guard;
        match r.counts.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                r.counts.insert(tenant.to_string(), 1);
            }
        }
        match r.rates.get_mut(tenant) {
            Some(w) => w.hit(now),
            None => {
                let mut w = RateWindow::new(now);
                w.hit(now);
                r.rates.insert(tenant.to_string(), w);
            }
        }
        r.since_rank += 1;
        if r.since_rank >= RERANK_EVERY
            || (r.top.len() < TOP_TENANTS && !r.top.iter().any(|t| t == tenant))
        {
            r.since_rank = 0;
            let mut all: Vec<(String, u64)> =
                r.counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
            all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            r.top = all
                .iter()
                .take(TOP_TENANTS)
                .map(|(k, _)| k.clone())
                .collect();
            if r.counts.len() > MAX_RANKED_TENANTS {
                r.counts.retain(|_, v| *v > 1);
            }
            for v in r.counts.values_mut() {
                *v = v.div_ceil(2);
            }
            r.rates.retain(|_, w| now < w.last + RATE_WINDOW_SECS);
        }
        if r.top.iter().any(|t| t == tenant) {
            tenant.to_string()
        } else {
            "other".into()
        }
    }

    /// The `n` tenants with the most requests over the last
    /// [`RATE_WINDOW_SECS`] seconds, busiest first.
    pub fn top_by_rate(&self, n: usize) -> Vec<TenantRate> {
        self.top_by_rate_at(n, self.now_sec())
    }

    /// [`TenantRanking::top_by_rate`] at second `now` of the ranking's clock.
    pub fn top_by_rate_at(&self, n: usize, now: u64) -> Vec<TenantRate> {
        let Ok(mut r) = self.inner.lock() else {
            return Vec::new();
        };
        r.rates.retain(|_, w| {
            w.advance(now);
            w.total() > 0
        });
        let mut all: Vec<TenantRate> = r
            .rates
            .iter()
            .map(|(t, w)| TenantRate {
                tenant: t.clone(),
                requests: w.total(),
            })
            .collect();
        all.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.tenant.cmp(&b.tenant))
        });
        all.truncate(n);
        all
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The observing middleware around every route.
pub async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(valid_request_id)
        .unwrap_or_else(mosaic_types::new_id);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let info = std::sync::Arc::new(RequestInfo {
        id: id.clone(),
        tenant: Mutex::new(None),
    });
    let span = tracing::info_span!("request", request_id = %id, %method, route = %route);
    let in_flight = metrics::gauge!("http_requests_in_flight");
    in_flight.increment(1.0);
    metrics::gauge!("request_queue_length").increment(1.0);
    let mut res = CURRENT
        .scope(info.clone(), next.run(req).instrument(span.clone()))
        .await;
    in_flight.decrement(1.0);
    metrics::gauge!("request_queue_length").decrement(1.0);
    let elapsed = start.elapsed();
    let status = res.status();
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let class = status_class(status);
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method.to_string(), "status" => class).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route.clone(), "method" => method.to_string()).record(elapsed.as_secs_f64());
    let caller = info.tenant.lock().ok().and_then(|g| g.clone());
    if let Some((tenant, _)) = &caller {
        s.platform.hot.count(tenant);
        let label = s.tenants.label(tenant);
        metrics::counter!("tenant_requests_total", "tenant" => label.clone()).increment(1);
        if status.is_client_error() || status.is_server_error() {
            metrics::counter!("tenant_errors_total", "tenant" => label.clone()).increment(1);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            metrics::counter!("tenant_rate_limited_total", "tenant" => label).increment(1);
        }
    }
    let (tenant, user) = caller.unwrap_or_default();
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            tenant = %tenant,
            user = %user,
            micros = elapsed.as_micros() as u64,
            "request"
        )
    });
    res
}

pub fn routes() -> Vec<crate::routes::RouteSpec> {
    use crate::routes::build::*;
    vec![RouteSpec::new(
        Method::GET,
        "/metrics",
        Access::Metrics,
        "observe.metrics",
        "Prometheus metrics",
        get(metrics_endpoint),
    )]
}

/// `GET /metrics`: Prometheus text format, for the metrics token
/// (`MOSAIC_METRICS_TOKEN`) or an operator; without a metrics token, open
/// to callers on this machine (see `operator::check_metrics_access`).
pub async fn metrics_endpoint(State(s): State<AppState>, req: Request) -> Response {
    let client = req.extensions().get::<crate::network::ClientInfo>();
    if let Err(e) = crate::operator::check_metrics_access(&s, req.headers(), client).await {
        return e.into_response();
    }
    let Some(h) = metrics_handle() else {
        return crate::error::ApiError::new(
            mosaic_types::ErrorCode::NOT_FOUND,
            "metrics are turned off (MOSAIC_METRICS=off)",
        )
        .into_response();
    };
    // Dependency states, breakers and the degradation level, as of this scrape.
    let (deps, level) = crate::health::current_level(&s).await;
    for d in &deps {
        metrics::gauge!("dependency_up", "dependency" => d.name.clone()).set(if d.up {
            1.0
        } else {
            0.0
        });
    }
    for b in s
        .platform
        .breakers
        .all()
        .chain(&s.platform.breakers.replicas)
    {
        metrics::gauge!("circuit_breaker_state", "dependency" => b.dependency().to_string())
            .set(b.state().gauge());
    }
    metrics::gauge!("degradation_level").set(f64::from(level.level()));
    metrics::gauge!("requests_in_flight_limit").set(s.in_flight.max() as f64);
    // Every cache by layer, as of this scrape (counters kept by the caches).
    for c in s.platform.cache_figures() {
        let f = c.figures;
        let (cache, layer) = (c.cache, c.layer);
        for (name, v) in [
            ("cache_layer_hits", f.hits),
            ("cache_layer_misses", f.misses),
            ("cache_layer_evictions", f.evictions),
            ("cache_layer_loads", f.loads),
            ("cache_layer_errors", f.errors),
        ] {
            metrics::gauge!(name, "cache" => cache, "layer" => layer).set(v as f64);
        }
        metrics::gauge!("cache_layer_load_seconds_total", "cache" => cache, "layer" => layer)
            .set(f.load_nanos as f64 / 1e9);
        if let Some(n) = c.entries {
            metrics::gauge!("cache_layer_entries", "cache" => cache, "layer" => layer)
                .set(n as f64);
        }
    }
    let llm = s.platform.llm.as_ref().map(|l| l.breaker());
    for b in s.platform.cache.breaker.iter().chain(llm) {
        metrics::gauge!("circuit_breaker_state", "dependency" => b.dependency().to_string())
            .set(b.state().gauge());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        h.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_cover_the_last_window_only() {
        let r = TenantRanking::default();
        for _ in 0..5 {
            r.label_at("hot", 10);
        }
        r.label_at("cold", 12);
        r.label_at("hot", 40);
        let top = r.top_by_rate_at(10, 40);
        assert_eq!(
            top.iter()
                .map(|t| (t.tenant.as_str(), t.requests))
                .collect::<Vec<_>>(),
            [("hot", 6), ("cold", 1)]
        );
        // Second 10 leaves the window at 70, second 12 at 72.
        assert_eq!(r.top_by_rate_at(10, 70)[0].requests, 1);
        assert_eq!(r.top_by_rate_at(10, 71).len(), 2);
        assert_eq!(r.top_by_rate_at(10, 72).len(), 1);
        assert!(r.top_by_rate_at(10, 100).is_empty());
        assert!(
            (TenantRate {
                tenant: "t".into(),
                requests: 120
            }
            .qps()
                - 2.0)
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn only_the_busiest_tenants_get_their_own_label() {
        let r = TenantRanking::default();
        for i in 0..TOP_TENANTS {
            for _ in 0..3 {
                r.label_at(&format!("busy{i}"), 0);
            }
        }
        assert_eq!(r.label_at("busy0", 0), "busy0");
        assert_eq!(r.label_at("newcomer", 0), "other");
    }
}
