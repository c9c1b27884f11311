//! Operator authority: platform-wide routes answer operator credentials
//! only (never a tenant role, never an anonymous caller), operator users
//! sign in to short-lived sessions, every operator change lands in the
//! platform audit log; `/metrics` is open to this machine only.

mod common;

use common::*;
use mosaic_server::{route_table, Access};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const LOGIN: &str = "/services/operator/v1/login";
const LOGOUT: &str = "/services/operator/v1/logout";
const AUDIT: &str = "/services/admin/v1/platform-audit";

/// Every operator route with its parameters filled in.
fn operator_paths(tenant_id: &str) -> Vec<(Method, String)> {
    route_table()
        .into_iter()
        .filter(|r| r.access == Access::Operator)
        .map(|r| {
            let mut path = r.path.to_string();
            for p in r.params() {
                path = path.replace(&format!("{{{p}}}"), tenant_id);
            }
            (
                Method::from_bytes(r.method.as_str().as_bytes()).unwrap(),
                path,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_operator_credential_configured_every_operator_route_refuses_everyone() {
    let server = TestServer::start_full(|_| {}, Some("")).await;
    let admin = server.tenant().await;
    let anonymous = server.anonymous();
    let paths = operator_paths(&admin.tenant_id);
    assert!(paths.len() >= 14, "{paths:?}");
    for (method, path) in &paths {
        for (who, c) in [
            ("anonymous", &anonymous),
            ("tenant admin", &admin),
            ("a made-up token", &anonymous.with_token("mop_guess")),
        ] {
            let body = (method != Method::GET).then(|| json!({"enabled": true}));
            let (s, v) = c.send(method.clone(), path, body.as_ref()).await;
            assert!(
                s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN,
                "{who}: {method} {path} → {s} {v}"
            );
        }
    }
    // The finding: anybody could throttle any tenant to 1 request/s.
    let (s, _) = anonymous
        .send(
            Method::PUT,
            &format!("/services/admin/v1/tenants/{}/rate-limits", admin.tenant_id),
            Some(&json!({"data_read": {"per_second": 1, "burst": 1}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let limits = server
        .platform
        .rate_overrides(&admin.tenant_id)
        .await
        .unwrap();
    assert!(limits.0.is_empty(), "nothing was overridden");
    assert!(!server.platform.maintenance().enabled);
    // Only /metrics stays open, to this machine (the test's loopback socket).
    let res = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A forwarded header from an untrusted peer changes nothing.
    let res = reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .header("x-forwarded-for", "203.0.113.50")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_proxy_does_not_open_metrics_to_the_clients_it_forwards() {
    let server = TestServer::start_state(
        |_| {},
        |s| {
            s.trusted_proxies =
                std::sync::Arc::new(mosaic_server::TrustedProxies::parse("127.0.0.1").unwrap())
        },
    )
    .await;
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/metrics", server.base))
        .header("x-forwarded-for", "203.0.113.50")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = http
        .get(format!("{}/metrics", server.base))
        .header("x-forwarded-for", "203.0.113.50")
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_token_works_as_bearer_and_header_and_tenant_roles_never_do() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    let url = format!("{}/services/admin/v1/status", server.base);
    let http = reqwest::Client::new();
    let bearer = http
        .get(&url)
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    let header = http
        .get(&url)
        .header("x-mosaic-operator-token", OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), StatusCode::OK);
    for (method, path) in operator_paths(&admin.tenant_id) {
        let (s, v) = admin.send(method.clone(), &path, None).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "tenant admin: {method} {path} {v}"
        );
    }
    // The tenant's admin is still an admin of its own tenant.
    assert_eq!(
        admin.get("/services/admin/v1/users").await.0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_users_sign_in_act_and_are_audited() {
    let server = TestServer::start_full(|_| {}, Some("")).await;
    let admin = server.tenant().await;
    let ops = &server.platform.operators;
    ops.create("ops@example.test", "a long operator passphrase")
        .await
        .unwrap();
    // Names are unique, passwords long enough.
    let dup = ops
        .create("OPS@example.test", "another long passphrase")
        .await
        .unwrap_err();
    assert_eq!(dup.fields, ["username"]);
    let short = ops.create("second", "short").await.unwrap_err();
    assert_eq!(short.fields, ["password"]);

    let anon = server.anonymous();
    let (s, v) = anon
        .post(
            LOGIN,
            json!({"username": "ops@example.test", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) = anon
        .post(LOGIN, json!({"username": "ops@example.test"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = anon
        .post(
            LOGIN,
            json!({"username": "ops@example.test", "password": "a long operator passphrase"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["access_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("mop_"));
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    // What the web console calls to check a session.
    let state = mosaic_server::AppState::new(server.platform.clone(), server.base.clone());
    let who = mosaic_server::verify_operator_session(&state, &token)
        .await
        .expect("a live session");
    assert_eq!(who.username, "ops@example.test");
    assert!(
        mosaic_server::verify_operator_session(&state, admin.token.as_deref().unwrap())
            .await
            .is_none()
    );

    let op = anon.with_token(&token);
    let (s, v) = op.get("/services/admin/v1/status").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = op
        .send(
            Method::PUT,
            &format!("/services/admin/v1/tenants/{}/rate-limits", admin.tenant_id),
            Some(&json!({"data_read": {"per_second": 50, "burst": 10}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = op
        .post(
            "/services/admin/v1/maintenance",
            json!({"enabled": true, "message": "Disks"}),
        )
        .await;
    assert_eq!(
        (s, &v["updated_by"]),
        (StatusCode::OK, &json!("operator:ops@example.test")),
        "{v}"
    );
    let (s, _) = op
        .post("/services/admin/v1/maintenance", json!({"enabled": false}))
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, v) = op.get(AUDIT).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let entries = v["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "operator.maintenance.switch",
            "operator.maintenance.switch",
            "operator.rate_limits.set",
            "operator.login"
        ],
        "newest first: {v}"
    );
    assert!(entries
        .iter()
        .all(|e| e["actor"] == "operator:ops@example.test"));
    assert_eq!(
        entries[2]["target"],
        format!("/services/admin/v1/tenants/{}/rate-limits", admin.tenant_id)
    );
    let (s, v) = op.get(&format!("{AUDIT}?limit=1")).await;
    assert_eq!(
        (s, v["entries"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (s, v) = op.get(&format!("{AUDIT}?limit=0")).await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["INVALID_INPUT".to_string()])
    );

    // Logging out ends the session.
    let (s, _) = op.send(Method::POST, LOGOUT, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        op.get("/services/admin/v1/status").await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_logins_are_rate_limited() {
    let server = TestServer::start().await;
    server
        .platform
        .operators
        .create("night-shift", "a long operator passphrase")
        .await
        .unwrap();
    let anon = server.anonymous();
    let limit = mosaic_access::operators::OPERATOR_LOGIN_FAILURES;
    for _ in 0..limit {
        let (s, _) = anon
            .post(
                LOGIN,
                json!({"username": "night-shift", "password": "not the passphrase"}),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits for the window now.
    let (s, v) = anon
        .post(
            LOGIN,
            json!({"username": "night-shift", "password": "a long operator passphrase"}),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    server.stop().await;
}

/// A server that believes forwarding headers from loopback peers, or not.
async fn behind_proxy(trusted: bool) -> TestServer {
    TestServer::start_state(
        |_| {},
        |s| {
            if trusted {
                s.trusted_proxies = std::sync::Arc::new(
                    mosaic_server::TrustedProxies::parse("127.0.0.0/8").unwrap(),
                );
            }
        },
    )
    .await
}

fn value_of(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// `X-Forwarded-For` counts only from a trusted proxy: behind one, 20 bad
/// logins from one client do not lock another client out; from an
/// untrusted peer the header is ignored (everyone shares the peer's limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_per_client_address_behind_trusted_proxies() {
    let limit = mosaic_access::grants::LOGIN_FAILURES_PER_ADDRESS;
    for trusted in [true, false] {
        let server = behind_proxy(trusted).await;
        let admin = server.tenant().await;
        let http = reqwest::Client::new();
        let login = |from: &'static str, user: String, pass: &'static str| {
            http.post(format!("{}/services/oauth2/token", server.base))
                .header("x-forwarded-for", from)
                .form(&[
                    ("grant_type", "password"),
                    ("username", user.as_str()),
                    ("password", pass),
                ])
                .send()
        };
        for i in 0..limit {
            let r = login("198.51.100.1", format!("nobody-{i}@example.test"), "wrong")
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
        let r = login(
            "198.51.100.1",
            admin.username.clone(),
            "correct-horse-battery",
        )
        .await
        .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "that address is locked"
        );
        let r = login(
            "198.51.100.2",
            admin.username.clone(),
            "correct-horse-battery",
        )
        .await
        .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        if trusted {
            assert_eq!(
                status,
                StatusCode::OK,
                "another client is not locked out: {v}"
            );
            assert!(value_of(&v, "access_token").starts_with("mos_"));
        } else {
            assert_eq!(
                status,
                StatusCode::TOO_MANY_REQUESTS,
                "an untrusted peer's header is ignored: {v}"
            );
        }
        server.stop().await;
    }
}

/// HTTPS as a trusted proxy reports it: HSTS, and `ClientInfo.https`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_https_from_a_trusted_proxy_gets_hsts() {
    for trusted in [true, false] {
        let server = behind_proxy(trusted).await;
        let r = reqwest::Client::new()
            .get(format!("{}/healthz", server.base))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().contains_key("strict-transport-security"),
            trusted,
            "trusted proxy: {trusted}"
        );
        server.stop().await;
    }
}
