//! OAuth token endpoint and bearer-token checks.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

async fn token_request(base: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_grant_and_token_checks() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let (s, v) = token_request(
        &server.base,
        &[
            ("grant_type", "password"),
            ("username", &a.username),
            ("password", "correct-horse-battery"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["instance_url"], server.base.as_str());
    assert!(v["issued_at"].as_str().unwrap().parse::<i64>().is_ok());
    let tok = v["access_token"].as_str().unwrap().to_string();
    let (s, _) = a.with_token(&tok).get(&format!("{DATA}/sobjects")).await;
    assert_eq!(s, StatusCode::OK);

    // Usernames are case-insensitive, passwords are not.
    let upper = a.username.to_uppercase();
    let (s, _) = token_request(
        &server.base,
        &[
            ("grant_type", "password"),
            ("username", &upper),
            ("password", "correct-horse-battery"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for (user, pass) in [
        (a.username.as_str(), "Correct-horse-battery"),
        ("nobody@example.test", "correct-horse-battery"),
        ("", ""),
    ] {
        let (s, v) = token_request(
            &server.base,
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", pass),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"], "invalid_grant");
    }
    let (s, v) = token_request(&server.base, &[("grant_type", "magic")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "unsupported_grant_type");
    let (s, v) = token_request(&server.base, &[("grant_type", "password")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_request");

    // Missing, malformed, unknown and revoked tokens → 401 INVALID_SESSION_ID.
    let anon = server.anonymous();
    let bad_tokens = [
        "",
        "mos_",
        "not-a-token",
        "mos_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &"x".repeat(5000),
    ];
    let (s, v) = anon.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(codes(&v), vec!["INVALID_SESSION_ID"]);
    for t in bad_tokens {
        let (s, v) = a.with_token(t).get(&format!("{DATA}/sobjects")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "token {t:.20}");
        assert_eq!(codes(&v), vec!["INVALID_SESSION_ID"]);
        let (s, _) = a.with_token(t).get(&format!("{META}/objects")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/revoke", server.base))
        .form(&[("token", tok.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (s, _) = a.with_token(&tok).get(&format!("{DATA}/sobjects")).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "revoked token must be refused at once"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refused() {
    let server = TestServer::start_with(|c| c.token_ttl = Duration::from_secs(1)).await;
    let a = server.tenant().await;
    let (s, _) = a.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, v) = a.get(&format!("{DATA}/sobjects")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(codes(&v), vec!["INVALID_SESSION_ID"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_unknown_routes() {
    let server = TestServer::start().await;
    let anon = server.anonymous();
    let (s, v) = anon.get("/healthz").await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = anon.get("/readyz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["degradation_level"], 0);
    let (s, v) = anon.get("/no/such/thing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(codes(&v), vec!["NOT_FOUND"]);
    let (s, v) = anon.send(reqwest::Method::PUT, "/healthz", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(codes(&v), vec!["METHOD_NOT_ALLOWED"]);
    server.stop().await;
}
