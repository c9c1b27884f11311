//! The cache tier across real `mosaic serve` processes sharing PostgreSQL
//! (scratch databases) and a Redis of the test's own: a metadata change
//! made through one instance is seen through the others at once, also
//! around a Redis restart; a tenant's rate limit holds across instances.

mod common;

use common::{OwnRedis, Server};
use mosaic_store_pg::scratch::ScratchDatabase;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const META: &str = "/services/metadata/v1";

/// Three instances on one data directory (one field-encryption key),
/// the same PostgreSQL databases and the same Redis.
struct Cluster {
    servers: Vec<Server>,
    token: String,
    tenant_id: String,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    _dbs: Vec<ScratchDatabase>,
}

impl Cluster {
    async fn start(redis: &OwnRedis, extra: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let meta = ScratchDatabase::create()
            .await
            .expect("PostgreSQL (scripts/services)");
        let records = ScratchDatabase::create().await.expect("scratch database");
        let mut env: Vec<(String, String)> = vec![
            ("MOSAIC_METADATA_URL".into(), meta.url.clone()),
            ("MOSAIC_RECORDS_URL".into(), records.url.clone()),
            ("MOSAIC_PG_POOL_SIZE".into(), "4".into()),
            ("MOSAIC_REDIS_URL".into(), redis.url()),
            ("MOSAIC_REDIS_PREFIX".into(), format!("test{}:", redis.port)),
        ];
        for (k, v) in extra {
            env.push((k.to_string(), v.to_string()));
        }
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let servers: Vec<Server> = (0..3)
            .map(|_| common::start_with(dir.path(), &pairs))
            .collect();
        let (token, tenant_id) = common::create_tenant(dir.path(), &env, "acme");
        Cluster {
            servers,
            token,
            tenant_id,
            env,
            _dir: dir,
            _dbs: vec![meta, records],
        }
    }

    fn url(&self, i: usize) -> &str {
        &self.servers[i].url
    }
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn label_on(c: &Cluster, i: usize) -> String {
    let (s, v) = call(
        reqwest::Method::GET,
        format!("{}{META}/objects/Invoice__c/fields/Status__c", c.url(i)),
        &c.token,
        None,
    )
    .await;
    assert_eq!(s, 200, "read through instance {i} must not fail: {v}");
    v["label"].as_str().unwrap_or_default().to_string()
}

async fn relabel_on(c: &Cluster, i: usize, label: &str) {
    let (s, v) = call(
        reqwest::Method::PATCH,
        format!("{}{META}/objects/Invoice__c/fields/Status__c", c.url(i)),
        &c.token,
        Some(json!({"label": label})),
    )
    .await;
    assert_eq!(s, 200, "relabel: {v}");
}

/// How long until instance `i` serves `label` (polling every 2 ms), or
/// `None` if it still does not after `limit`.
async fn seen_after(
    c: &Cluster,
    i: usize,
    label: &str,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    loop {
        if label_on(c, i).await == label {
            return Some(since.elapsed());
        }
        if since.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn cache_figures(c: &Cluster, i: usize) -> Value {
    reqwest::Client::new()
        .get(format!("{}/services/admin/v1/cache", c.url(i)))
        .bearer_auth(common::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until every instance is subscribed and its Redis breaker lets calls through.
async fn until_linked(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(40);
    'all: loop {
        for i in 0..3 {
            let t = &cache_figures(c, i).await["tier"];
            if t["subscribed"] != true
                || t["breaker"] != "closed"
                || t["invalidations_pending"] != 0
            {
                assert!(
                    Instant::now() < deadline,
                    "instance {i} did not relink: {t}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'all;
            }
        }
        return;
    }
}

async fn setup_object(c: &Cluster) {
    let (s, v) = call(
        reqwest::Method::POST,
        format!("{}{META}/objects", c.url(0)),
        &c.token,
        Some(
            json!({"api_name": "Invoice__c", "label": "Invoice", "fields": [
                {"api_name": "Status__c", "label": "Status", "data_type": "text", "length": 40}
            ]}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    for i in 0..3 {
        assert_eq!(
            label_on(c, i).await,
            "Status",
            "instance {i} caches the definition"
        );
    }
}

/// The window in which a change must reach the other instances: far below
/// every L1 lifetime here (3 s at the shortest), so only the invalidation
/// message can meet it, and wide enough for a loaded 2-core machine. The
/// seed's 100 ms is a figure, printed with the median and maximum, not a
/// timed assertion.
const PROPAGATION: Duration = Duration::from_secs(1);

async fn change_everywhere(c: &Cluster, from: usize, label: &str) -> Vec<Duration> {
    relabel_on(c, from, label).await;
    let answered = Instant::now();
    let mut took = Vec::new();
    for i in (0..3).filter(|i| *i != from) {
        let t = seen_after(c, i, label, answered, PROPAGATION).await;
        let t = t.unwrap_or_else(|| {
            panic!("instance {i} still served the old definition {PROPAGATION:?} after the change")
        });
        took.push(t);
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_field_change_reaches_every_instance_by_its_message() {
    let redis = OwnRedis::start();
    let c = Cluster::start(&redis, &[]).await;
    until_linked(&c).await;
    setup_object(&c).await;
    let mut all = Vec::new();
    for round in 0..10 {
        all.extend(change_everywhere(&c, round % 3, &format!("Status {round}")).await);
    }
    all.sort();
    println!(
        "metadata change propagation over {} reads: median {:?}, max {:?}",
        all.len(),
        all[all.len() / 2],
        all[all.len() - 1]
    );
    // A token revoked through one instance is refused by the others at
    // once (their session caches would otherwise serve it for 30 s).
    let login: Value = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", c.url(0)))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin@acme.test"),
            ("password", "correct-horse-battery"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().expect("token").to_string();
    for i in 0..3 {
        let (s, _) = call(
            reqwest::Method::GET,
            format!("{}{META}/objects", c.url(i)),
            &token,
            None,
        )
        .await;
        assert_eq!(s, 200, "instance {i} resolves (and caches) the new token");
    }
    let r = reqwest::Client::new()
        .post(format!("{}/services/oauth2/revoke", c.url(0)))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked = Instant::now();
    for i in 1..3 {
        loop {
            let (s, _) = call(
                reqwest::Method::GET,
                format!("{}{META}/objects", c.url(i)),
                &token,
                None,
            )
            .await;
            if s == 401 {
                break;
            }
            assert!(
                revoked.elapsed() < PROPAGATION,
                "instance {i} still accepts a revoked token"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    // The other instances were told, not left to their L1 TTL.
    let received = cache_figures(&c, 1).await["tier"]["invalidations_received"]
        .as_u64()
        .unwrap();
    assert!(
        received >= 10,
        "instance 1 received {received} invalidations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_serves_nothing_stale_beyond_the_l1_ttl() {
    let mut redis = OwnRedis::start();
    // A short L1 lifetime, so the bound is testable in seconds.
    let ttl = Duration::from_secs(3);
    let c = Cluster::start(&redis, &[("MOSAIC_METADATA_CACHE_TTL_SECS", "3")]).await;
    until_linked(&c).await;
    setup_object(&c).await;
    change_everywhere(&c, 0, "Before").await;

    redis.stop();
    // Redis down: every request still answers (from the database), and a
    // change made meanwhile is served stale by no instance for longer
    // than the L1 lifetime.
    let since = Instant::now();
    relabel_on(&c, 0, "During").await;
    for i in 1..3 {
        let t = seen_after(&c, i, "During", since, ttl + Duration::from_secs(1)).await;
        let t = t.unwrap_or_else(|| {
            panic!("instance {i} served a stale definition beyond the L1 TTL while Redis was down")
        });
        println!("Redis down: instance {i} served the change after {t:?} (L1 TTL {ttl:?})");
    }
    let level: Value = reqwest::get(format!("{}/readyz", c.url(1)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(level["degradation_level"], 2, "cache degraded: {level}");

    redis.restart();
    until_linked(&c).await;
    for i in 0..3 {
        let t = &cache_figures(&c, i).await["tier"];
        assert!(
            t["l1_flushes"].as_u64().unwrap() >= 2,
            "instance {i} dropped its L1 on losing and regaining the subscription: {t}"
        );
        assert_eq!(label_on(&c, i).await, "During");
    }
    // After resubscription, changes propagate at once again.
    let mut all = Vec::new();
    for round in 0..5 {
        all.extend(change_everywhere(&c, round % 3, &format!("After {round}")).await);
    }
    println!(
        "after the Redis restart: max propagation {:?}",
        all.iter().max().unwrap()
    );
}

/// A tenant's data-read limit, hit through three instances at once:
/// the admitted total stays within 5 % of the limit; another tenant is
/// not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_limit_holds_across_instances() {
    let redis = OwnRedis::start();
    let c = Cluster::start(&redis, &[]).await;
    until_linked(&c).await;
    let (other, _) = common::create_tenant(c._dir.path(), &c.env, "other");
    let (per_second, burst) = (100u32, 10u32);
    let res = reqwest::Client::new()
        .put(format!(
            "{}/services/admin/v1/tenants/{}/rate-limits",
            c.url(0),
            c.tenant_id
        ))
        .bearer_auth(common::OPERATOR_TOKEN)
        .json(&json!({"data_read": {"per_second": per_second, "burst": burst}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Bad input names the field.
    let bad = reqwest::Client::new()
        .put(format!(
            "{}/services/admin/v1/tenants/{}/rate-limits",
            c.url(0),
            c.tenant_id
        ))
        .bearer_auth(common::OPERATOR_TOKEN)
        .json(&json!({"data_read": {"per_second": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.unwrap();
    assert_eq!(e[0]["fields"][0], "data_read.per_second");

    let run = Duration::from_secs(4);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..12 {
        let (url, token) = (c.url(w % 3).to_string(), c.token.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut ok, mut limited) = (0u64, 0u64);
            while started.elapsed() < run {
                let r = http
                    .get(format!("{url}/services/data/v60.0/sobjects"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => ok += 1,
                    429 => {
                        assert!(r.headers().contains_key("retry-after"));
                        assert_eq!(r.headers()["x-ratelimit-limit"], "100");
                        let v: Value = r.json().await.unwrap();
                        assert_eq!(v[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
                        limited += 1
                    }
                    s => panic!("unexpected {s}"),
                }
            }
            (ok, limited)
        }));
    }
    // The other tenant, at a modest pace through every instance.
    let others = {
        let urls: Vec<String> = (0..3).map(|i| c.url(i).to_string()).collect();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while started.elapsed() < run {
                for u in &urls {
                    let r = http
                        .get(format!("{u}/services/data/v60.0/sobjects"))
                        .bearer_auth(&other)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200, "another tenant was limited");
                    n += 1;
                }
            }
            n
        })
    };
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        let (o, l) = t.await.unwrap();
        ok += o;
        limited += l;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let other_ok = others.await.unwrap();
    let expected = f64::from(per_second) * elapsed + f64::from(burst);
    let ratio = ok as f64 / expected;
    println!(
        "rate limit {per_second}/s (burst {burst}) over {elapsed:.2} s through 3 instances: admitted {ok} (expected {expected:.0}, ratio {ratio:.3}), refused {limited}; other tenant {other_ok} requests, none refused"
    );
    assert!(limited > ok, "the load was above the limit");
    assert!(
        (0.95..=1.05).contains(&ratio),
        "admitted {ok}, expected {expected:.0}"
    );
}

/// Saves of one record through three instances are serialized by the
/// record's distributed lock: a workflow rule that counts saves
/// (`Hits__c + 1`, read-modify-write on the server) loses no increment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_of_one_record_through_three_instances_lose_nothing() {
    let redis = OwnRedis::start();
    let c = Cluster::start(&redis, &[]).await;
    until_linked(&c).await;
    let post = |path: String, body: Value| call(reqwest::Method::POST, path, &c.token, Some(body));
    let (s, v) = post(
        format!("{}{META}/objects", c.url(0)),
        json!({"api_name": "Counter__c", "fields": [
            {"api_name": "Hits__c", "data_type": "number", "precision": 9, "scale": 0, "default_value": 0},
            {"api_name": "Touch__c", "data_type": "text", "length": 40}
        ]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}{META}/objects/Counter__c/workflows", c.url(0)),
        json!({"name": "CountSaves", "trigger_type": "created_or_updated", "re_evaluation": "every_time",
            "filter_criteria": {"conditions": [{"field": "Hits__c", "operator": "greater_or_equal", "value": 0}]},
            "actions": [{"action_type": "field_update", "action_config": {"field_api_name": "Hits__c", "value_type": "formula", "formula": "Hits__c + 1"}}]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = post(
        format!("{}/services/data/v60.0/sobjects/Counter__c", c.url(1)),
        json!({"Name": "c", "Touch__c": "created"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let saves = 30;
    let mut tasks = Vec::new();
    for n in 0..saves {
        let (url, token, id) = (c.url(n % 3).to_string(), c.token.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            call(
                reqwest::Method::PATCH,
                format!("{url}/services/data/v60.0/sobjects/Counter__c/{id}"),
                &token,
                Some(json!({"Touch__c": format!("save {n}")})),
            )
            .await
            .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 204);
    }
    let (_, v) = call(
        reqwest::Method::GET,
        format!("{}/services/data/v60.0/sobjects/Counter__c/{id}", c.url(2)),
        &c.token,
        None,
    )
    .await;
    assert_eq!(v["Hits__c"].as_i64(), Some(saves as i64 + 1), "{v}");
}
