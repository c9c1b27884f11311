//! Setting up the load: tenants created in the target's data directory,
//! the fixture's objects and rules defined over HTTP, records seeded in
//! `composite/sobjects` batches, and a preflight that runs every operation
//! once and checks its answer (or finds it unavailable).

use super::operation::{Availability, Operation};
use super::schema::{self, ACCOUNT, API, OPPORTUNITY};
use indicatif::{ProgressBar, ProgressStyle};
use mosaic_access::NewTenant;
use mosaic_runtime::{Platform, PlatformConfig};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Records per `composite/sobjects` call: the Data API's batch limit.
pub const SEED_BATCH: usize = 200;
/// Lifetime of the tokens minted for load-test tenants: long enough for a
/// slow seed plus an hour-long run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest wait for one setup request (a batch of 200 under load).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Metadata definitions sent at once while defining tenants' objects.
const DEFINE_CONCURRENCY: usize = 8;
/// Progress line interval when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);

pub const WORKFLOWS_NOT_IMPLEMENTED: &str = "n/a: workflow rules not implemented";

/// One load-test tenant: its token and the ids of its seeded records.
#[derive(Debug, Clone)]
pub struct TenantFixture {
    /// `Bearer <token>`.
    pub authorization: String,
    pub accounts: Vec<String>,
    pub opportunities: Vec<String>,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if pb.is_hidden() {
        // Not a terminal (a log file, CI): a line every few seconds instead.
        let (pb, what) = (pb.clone(), what.to_string());
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(PLAIN_PROGRESS_EVERY).await;
                if pb.is_finished() {
                    break;
                }
                let secs = started.elapsed().as_secs_f64();
                let pos = pb.position();
                eprintln!(
                    "{what}: {pos}/{} after {secs:.0} s ({:.0}/s)",
                    pb.length().unwrap_or(0),
                    pos as f64 / secs
                );
            }
        });
    }
    pb
}

/// Creates `n` tenants in the server's databases (directly, as `mosaic
/// tenant create` does; works while a server runs on them) and returns their tokens.
pub async fn create_tenants(data_dir: &Path, n: usize) -> Result<Vec<String>, String> {
    let mut cfg = PlatformConfig::new(data_dir);
    cfg.token_ttl = TOKEN_TTL;
    // The server's databases: its data directory, or PostgreSQL when the
    // server runs with MOSAIC_METADATA_URL / MOSAIC_RECORDS_URL.
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    cfg.metadata_url = env("MOSAIC_METADATA_URL");
    cfg.records_url = env("MOSAIC_RECORDS_URL");
    let platform = Platform::open(cfg)
        .await
        .map_err(|e| format!("cannot open {}: {}", data_dir.display(), e.message))?;
    // Subdomains must be new on every run against the same data directory.
    let run_tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let pb = bar(n as u64, "tenants");
    let mut tokens = Vec::with_capacity(n);
    let mut failure = None;
    for i in 0..n {
        let subdomain = format!("lt-{run_tag}-{i}");
        let created = platform
            .auth
            .create_tenant(NewTenant {
                name: format!("Loadtest {i}"),
                subdomain: subdomain.clone(),
                tier: "enterprise".into(),
                admin_username: format!("admin@{subdomain}.loadtest"),
                admin_password: format!("lt-{run_tag}-{i}-password"),
                admin_email: None,
            })
            .await;
        match created {
            Ok(c) => tokens.push(c.access_token),
            Err(e) => {
                failure = Some(format!(
                    "creating tenant {subdomain}: {}: {}",
                    e.code, e.message
                ));
                break;
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    platform.close();
    match failure {
        Some(f) => Err(f),
        None => Ok(tokens),
    }
}

/// Sends one JSON request; returns the status and the parsed body (Null when empty).
pub async fn call(
    http: &Client,
    method: Method,
    url: &str,
    authorization: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Value), String> {
    let mut req = http
        .request(method.clone(), url)
        .header("Authorization", authorization)
        .timeout(SETUP_TIMEOUT);
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = res.status();
    let bytes = res
        .bytes()
        .await
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Ok((status, v))
}

async fn expect_created(http: &Client, url: &str, auth: &str, body: &Value) -> Result<(), String> {
    let (status, v) = call(http, Method::POST, url, auth, Some(body)).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("POST {url} answered {status}: {v}"))
    }
}

/// Defines the fixture's objects and rules for one tenant. Returns whether
/// the server accepted the workflow rule (n/a with the reason otherwise).
async fn define_tenant(
    http: &Client,
    base: &str,
    auth: &str,
    probe_workflows: bool,
) -> Result<Availability, String> {
    let meta = format!("{base}/services/metadata/v1/objects");
    expect_created(http, &meta, auth, &schema::account_object()).await?;
    expect_created(http, &meta, auth, &schema::opportunity_object()).await?;
    expect_created(
        http,
        &format!("{meta}/{ACCOUNT}/layouts"),
        auth,
        &schema::account_layout(),
    )
    .await?;
    expect_created(
        http,
        &format!("{meta}/{OPPORTUNITY}/validations"),
        auth,
        &schema::validation_rule(),
    )
    .await?;
    if !probe_workflows {
        return Ok(Availability::Unavailable(WORKFLOWS_NOT_IMPLEMENTED.into()));
    }
    let url = format!("{meta}/{OPPORTUNITY}/workflows");
    let (status, v) = call(
        http,
        Method::POST,
        &url,
        auth,
        Some(&schema::workflow_rule()),
    )
    .await?;
    Ok(match status {
        s if s.is_success() => Availability::Available,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
            Availability::Unavailable(WORKFLOWS_NOT_IMPLEMENTED.into())
        }
        s => Availability::Unavailable(format!(
            "n/a: the server refused the harness's workflow rule ({s}): {v}"
        )),
    })
}

/// Defines every tenant's objects; the first tenant probes workflows, the
/// others add the rule only where the first succeeded.
pub async fn define_objects(
    http: &Client,
    base: &str,
    auths: &[String],
) -> Result<Availability, String> {
    let Some(first) = auths.first() else {
        return Err("no tenants".into());
    };
    let workflows = define_tenant(http, base, first, true).await?;
    let probe = workflows.is_available();
    let pb = bar(auths.len() as u64, "objects");
    pb.inc(1);
    let sem = Arc::new(Semaphore::new(DEFINE_CONCURRENCY));
    let mut tasks = Vec::new();
    for auth in auths.iter().skip(1) {
        let (http, base, auth, sem, pb) = (
            http.clone(),
            base.to_string(),
            auth.clone(),
            sem.clone(),
            pb.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
            let r = define_tenant(&http, &base, &auth, probe).await;
            pb.inc(1);
            r
        }));
    }
    for t in tasks {
        let a = t.await.map_err(|e| e.to_string())??;
        if probe && !a.is_available() {
            return Err(format!(
                "workflow rule accepted for the first tenant but not for another: {a:?}"
            ));
        }
    }
    pb.finish_and_clear();
    Ok(workflows)
}

/// Creates one batch; returns the new ids in order.
async fn create_batch(
    http: &Client,
    base: &str,
    auth: &str,
    records: Vec<Value>,
) -> Result<Vec<String>, String> {
    let url = format!("{base}{API}/composite/sobjects");
    let body = json!({"allOrNone": true, "records": records});
    let (status, v) = call(http, Method::POST, &url, auth, Some(&body)).await?;
    if !status.is_success() {
        return Err(format!("seeding batch answered {status}: {v}"));
    }
    let results = v
        .as_array()
        .ok_or_else(|| format!("seeding batch: unexpected answer {v}"))?;
    results
        .iter()
        .map(|r| match (r["success"].as_bool(), r["id"].as_str()) {
            (Some(true), Some(id)) => Ok(id.to_string()),
            _ => Err(format!("seeding batch: a record failed: {r}")),
        })
        .collect()
}

/// Seeds `records` opportunities (and one account per ten) into every
/// tenant, `concurrency` batches in flight across all tenants.
pub async fn seed(
    http: &Client,
    base: &str,
    auths: Vec<String>,
    records: usize,
    concurrency: usize,
) -> Result<(Vec<TenantFixture>, u64, Duration), String> {
    let accounts = records.div_ceil(schema::OPPORTUNITIES_PER_ACCOUNT).max(1);
    let total = (auths.len() * (records + accounts)) as u64;
    let pb = bar(total, "seeding");
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (t, auth) in auths.into_iter().enumerate() {
        let (http, base, sem, pb) = (http.clone(), base.to_string(), sem.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            let batches = |n: usize| {
                (0..n)
                    .step_by(SEED_BATCH)
                    .map(move |s| s..(s + SEED_BATCH).min(n))
            };
            let mut jobs = Vec::new();
            for range in batches(accounts) {
                let (http, base, auth, sem, pb) = (
                    http.clone(),
                    base.clone(),
                    auth.clone(),
                    sem.clone(),
                    pb.clone(),
                );
                jobs.push(tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
                    let recs = range
                        .map(|i| schema::account_record(t, i))
                        .collect::<Vec<_>>();
                    let n = recs.len() as u64;
                    let ids = create_batch(&http, &base, &auth, recs).await?;
                    pb.inc(n);
                    Ok::<_, String>(ids)
                }));
            }
            let mut account_ids = Vec::with_capacity(accounts);
            for j in jobs {
                account_ids.extend(j.await.map_err(|e| e.to_string())??);
            }
            let account_ids = Arc::new(account_ids);
            let mut jobs = Vec::new();
            for range in batches(records) {
                let (http, base, auth, sem, pb, acc) = (
                    http.clone(),
                    base.clone(),
                    auth.clone(),
                    sem.clone(),
                    pb.clone(),
                    account_ids.clone(),
                );
                jobs.push(tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
                    let recs = range
                        .map(|i| schema::opportunity_record(t, i, &acc[i % acc.len()]))
                        .collect::<Vec<_>>();
                    let n = recs.len() as u64;
                    let ids = create_batch(&http, &base, &auth, recs).await?;
                    pb.inc(n);
                    Ok::<_, String>(ids)
                }));
            }
            let mut opportunities = Vec::with_capacity(records);
            for j in jobs {
                opportunities.extend(j.await.map_err(|e| e.to_string())??);
            }
            let accounts = Arc::try_unwrap(account_ids).unwrap_or_else(|a| (*a).clone());
            Ok::<_, String>(TenantFixture {
                authorization: auth,
                accounts,
                opportunities,
            })
        }));
    }
    let mut tenants = Vec::with_capacity(tasks.len());
    for t in tasks {
        tenants.push(t.await.map_err(|e| e.to_string())??);
    }
    pb.finish_and_clear();
    Ok((tenants, total, started.elapsed()))
}

/// Status of `GET url` and its JSON body.
async fn get(http: &Client, url: &str, auth: &str) -> Result<(StatusCode, Value), String> {
    call(http, Method::GET, url, auth, None).await
}

/// Runs each operation once against the first tenant and checks the answer
/// is right, not only 2xx. Query operations on a server without the query
/// endpoint become n/a; any other wrong answer stops the run.
pub async fn preflight(
    http: &Client,
    base: &str,
    tenant: &TenantFixture,
    records: usize,
    availability: &mut [Availability; Operation::COUNT],
) -> Result<(), String> {
    let auth = tenant.authorization.as_str();
    let data = format!("{base}{API}");
    let opp = &tenant.opportunities[0];
    let acc = &tenant.accounts[0];
    let ensure = |ok: bool, what: &str, v: &Value| {
        if ok {
            Ok(())
        } else {
            Err(format!("preflight: {what}: {v}"))
        }
    };

    let (s, v) = get(
        http,
        &format!("{data}/sobjects/{OPPORTUNITY}/describe"),
        auth,
    )
    .await?;
    ensure(
        s == StatusCode::OK && v["fields"].is_array(),
        "describe",
        &v,
    )?;

    let (s, v) = get(
        http,
        &format!(
            "{data}/sobjects/{OPPORTUNITY}/{opp}?fields={}",
            schema::READ_FIELDS
        ),
        auth,
    )
    .await?;
    ensure(
        s == StatusCode::OK && !v["Amount__c"].is_null() && v.get("Net__c").is_none(),
        "record read",
        &v,
    )?;

    let url = format!(
        "{data}/sobjects/{OPPORTUNITY}/{opp}?fields={}",
        schema::READ_FIELDS_WITH_FORMULAS
    );
    let (s, v) = get(http, &url, auth).await?;
    ensure(
        s == StatusCode::OK && v["Net__c"].is_number() && v["Expected__c"].is_number(),
        "formula read",
        &v,
    )?;

    let (s, v) = call(
        http,
        Method::PATCH,
        &format!("{data}/sobjects/{ACCOUNT}/{acc}"),
        auth,
        Some(&json!({"AnnualRevenue__c": 1234.5})),
    )
    .await?;
    ensure(s == StatusCode::NO_CONTENT, "simple write", &v)?;

    if availability[Operation::RecordWriteWorkflows.index()].is_available() {
        let url = format!("{data}/sobjects/{OPPORTUNITY}/{opp}");
        let (s, v) = call(
            http,
            Method::PATCH,
            &url,
            auth,
            Some(&json!({"Amount__c": 75000, "NextStep__c": "x"})),
        )
        .await?;
        ensure(s == StatusCode::NO_CONTENT, "write with workflows", &v)?;
        let (_, v) = get(http, &format!("{url}?fields=NextStep__c"), auth).await?;
        if v["NextStep__c"] != "Executive review" {
            availability[Operation::RecordWriteWorkflows.index()] = Availability::Unavailable(format!(
                "n/a: the workflow rule was accepted but its field update did not run (NextStep__c = {})",
                v["NextStep__c"]
            ));
        }
    }

    let query = |soql: String| {
        let url = format!("{data}/query?q={}", encode_component(&soql));
        async move { get(http, &url, auth).await }
    };
    let (s, v) = query(schema::simple_query(0)).await?;
    if matches!(
        s,
        StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED | StatusCode::METHOD_NOT_ALLOWED
    ) {
        let note = format!("n/a: the query endpoint answered {s}");
        availability[Operation::QuerySimple.index()] = Availability::Unavailable(note.clone());
        availability[Operation::QueryComplex.index()] = Availability::Unavailable(note);
        return Ok(());
    }
    let expected = records.min(schema::BUCKET_SIZE) as u64;
    ensure(
        s == StatusCode::OK && v["totalSize"].as_u64() == Some(expected),
        &format!("simple query ({expected} rows expected)"),
        &v,
    )?;

    let (s, v) = query(schema::complex_query(0)).await?;
    let counted: u64 = v["records"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["expr0"].as_u64()).sum())
        .unwrap_or(0);
    let expected = records.min(schema::BUCKET_SIZE * schema::COMPLEX_QUERY_BUCKETS) as u64;
    ensure(
        s == StatusCode::OK && counted == expected,
        &format!("complex query (groups counting {expected} rows expected)"),
        &v,
    )?;
    Ok(())
}

/// Percent-encodes a query-string component (RFC 3986 unreserved kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes the tenants (tokens and record ids) so a later run against the
/// same server can skip setup (`--fixture FILE`).
pub fn save_fixture(
    path: &Path,
    base: &str,
    records: usize,
    tenants: &[TenantFixture],
    workflows: bool,
) -> Result<(), String> {
    let tenants: Vec<Value> = tenants
        .iter()
        .map(|t| json!({"authorization": t.authorization, "accounts": t.accounts, "opportunities": t.opportunities}))
        .collect();
    let doc = json!({
        "url": base,
        "records": records,
        "workflows": workflows,
        "tenants": tenants,
    });
    std::fs::write(path, doc.to_string()).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Reads a fixture written by [`save_fixture`] for the same server URL;
/// returns the tenants, records per tenant and whether workflows were set up.
pub fn load_fixture(path: &Path, base: &str) -> Result<(Vec<TenantFixture>, usize, bool), String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if doc["url"] != base {
        return Err(format!(
            "{} was set up for {}, not {base}",
            path.display(),
            doc["url"]
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let tenants: Vec<TenantFixture> = doc["tenants"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| TenantFixture {
                    authorization: t["authorization"].as_str().unwrap_or_default().to_string(),
                    accounts: strings(&t["accounts"]),
                    opportunities: strings(&t["opportunities"]),
                })
                .collect()
        })
        .unwrap_or_default();
    if tenants.is_empty()
        || tenants
            .iter()
            .any(|t| t.accounts.is_empty() || t.opportunities.is_empty())
    {
        return Err(format!("{}: no usable tenants", path.display()));
    }
    let records = doc["records"].as_u64().unwrap_or(0) as usize;
    Ok((
        tenants,
        records,
        doc["workflows"].as_bool().unwrap_or(false),
    ))
}

#[cfg(test)]
mod tests {
    use super::encode_component;

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(encode_component("a b='B1',%"), "a%20b%3D%27B1%27%2C%25");
    }
}
