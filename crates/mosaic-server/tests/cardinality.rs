//! Cardinality acceptance: traffic from 10,000 tenants keeps the metrics
//! exposition bounded and well formed. A test binary of its own, so that the
//! process-wide recorder holds this workload's series only.

mod common;
use common::exposition::parse_exposition;
use common::*;
use mosaic_types::ErrorCode;
use reqwest::StatusCode;

/// Tenants of the cardinality acceptance test.
const MANY_TENANTS: usize = 10_000;
/// Series the exposition may hold with that many tenants of traffic.
const MAX_SERIES: usize = 5_000;

/// Creates `n` tenants straight in the metadata store, each with its admin
/// and a session (one password hash shared by all: argon2 per tenant would
/// take minutes); returns their (tenant id, bearer token).
async fn many_tenants(server: &TestServer, n: usize) -> Vec<(String, String)> {
    use mosaic_store::{SessionRow, TenantRow, UserRow};
    let pw = mosaic_access::password::hash("correct-horse-battery").unwrap();
    let now = chrono::Utc::now();
    let mut out = Vec::with_capacity(n);
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..n {
        let (tenant_id, user_id) = (mosaic_types::new_id(), mosaic_types::new_id());
        let token = mosaic_access::token::mint();
        let tag = format!("{}-many-{i}", std::process::id());
        let store = server.platform.meta_store.clone();
        let (tenant, admin, session) = (
            TenantRow {
                id: tenant_id.clone(),
                name: format!("Tenant {tag}"),
                subdomain: format!("m{tag}"),
                tier: "starter".into(),
                status: "active".into(),
                created_at: now,
            },
            UserRow {
                id: user_id.clone(),
                tenant_id: tenant_id.clone(),
                username: format!("admin-{tag}@example.test"),
                email: None,
                password_hash: pw.clone(),
                is_active: true,
                profile: mosaic_access::service::PROFILE_ADMIN.into(),
                role_id: None,
                must_change_password: false,
                created_at: now,
            },
            SessionRow {
                token_hash: mosaic_access::token::hash(&token),
                tenant_id: tenant_id.clone(),
                user_id,
                issued_at: now,
                expires_at: now + chrono::Duration::hours(2),
                revoked: false,
            },
        );
        // Concurrent creations share group commits. PostgreSQL may answer a
        // serialization conflict as a retryable SERVICE_UNAVAILABLE when
        // hundreds of creations race on a loaded machine: retry those.
        jobs.spawn(async move {
            let mut attempts = 0;
            loop {
                let r = store
                    .create_tenant(tenant.clone(), admin.clone(), Some(session.clone()))
                    .await;
                match r {
                    Err(e) if e.code == ErrorCode::SERVICE_UNAVAILABLE && attempts < 20 => {
                        attempts += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20 * attempts)).await;
                    }
                    r => break r,
                }
            }
        });
        out.push((tenant_id, token));
        if jobs.len() >= 512 {
            while let Some(r) = jobs.join_next().await {
                r.unwrap().unwrap();
            }
        }
    }
    while let Some(r) = jobs.join_next().await {
        r.unwrap().unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tenants_of_traffic_stay_under_five_thousand_series() {
    let server = TestServer::start().await;
    let tenants = many_tenants(&server, MANY_TENANTS).await;
    let http = reqwest::Client::new();
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut requests = tokio::task::JoinSet::new();
    for (i, (_, token)) in tenants.iter().enumerate() {
        // Every tenant lists its objects; every tenth also asks for one it
        // does not have (a 404, counted as a tenant error).
        let mut paths = vec![format!("{DATA}/sobjects")];
        if i % 10 == 0 {
            paths.push(format!("{DATA}/sobjects/Missing__c/describe"));
        }
        for path in paths {
            let (http, token, limit) = (http.clone(), token.clone(), limit.clone());
            let url = format!("{}{path}", server.base);
            requests.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
        }
    }
    let (mut ok, mut not_found) = (0, 0);
    while let Some(status) = requests.join_next().await {
        match status.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::NOT_FOUND => not_found += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, not_found), (MANY_TENANTS, MANY_TENANTS / 10));

    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = parse_exposition(&text);
    let series = m.len();
    eprintln!("{series} series with {MANY_TENANTS} tenants of traffic");
    assert!(series < MAX_SERIES, "{series} series");
    let tenant_series = m
        .keys()
        .filter(|k| k.starts_with("tenant_requests_total{"))
        .count();
    assert!(
        tenant_series < 20 * mosaic_server::observe::TOP_TENANTS,
        "{tenant_series}"
    );
    // Every request of the workload is counted, named tenant or `other`.
    let counted: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("tenant_requests_total{"))
        .map(|(_, v)| v)
        .sum();
    assert!(counted >= (MANY_TENANTS + MANY_TENANTS / 10) as f64);
    let (_, v) = server.operator().get("/services/admin/v1/status").await;
    assert_eq!(v["shards"][0]["tenants"], MANY_TENANTS);
    assert_eq!(
        v["top_tenants"].as_array().unwrap().len(),
        mosaic_server::status::STATUS_TOP_TENANTS
    );
    server.stop().await;
}
