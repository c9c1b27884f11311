//! The account lifecycle end to end: atomic login limits, credentials only
//! from the request body, refresh-token expiry and rotation, the purge of
//! expired credentials, password change, administrator reset with a forced
//! change, and the password policy.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const ADMIN: &str = "/services/admin/v1";
const PASSWORD: &str = "correct-horse-battery";
const CHANGE: &str = "/services/auth/v1/password";
const CHANGE_EXPIRED: &str = "/services/auth/v1/password/expired";

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

async fn login(base: &str, user: &str, pass: &str) -> (StatusCode, Value) {
    token_request(
        base,
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", pass),
        ],
    )
    .await
}

async fn refresh(base: &str, token: &str) -> (StatusCode, Value) {
    token_request(
        base,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// Creates a user through the admin API; returns (id, username).
async fn new_user(admin: &Client, name: &str, profile: &str) -> (String, String) {
    let username = format!("{name}-{}@example.test", admin.tenant_id);
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": username, "password": PASSWORD, "profile": profile}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (v["id"].as_str().unwrap().to_string(), username)
}

fn fields(v: &Value) -> Vec<String> {
    v[0]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn message(v: &Value) -> String {
    v[0]["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_guesses_get_exactly_the_limit_of_password_checks() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let (_, username) = new_user(&a, "target", "standard").await;
    // Twelve guesses at once: each is counted before its password check,
    // so exactly five are checked (invalid_grant) and seven refused (429).
    let guesses = (0..12).map(|i| {
        let base = server.base.clone();
        let username = username.clone();
        tokio::spawn(async move { login(&base, &username, &format!("wrong guess {i:02}")).await })
    });
    let mut checked = 0;
    let mut limited = 0;
    for g in guesses {
        let (s, v) = g.await.unwrap();
        match s {
            StatusCode::BAD_REQUEST => {
                assert_eq!(v["error"], "invalid_grant");
                checked += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(
        (checked, limited),
        (5, 7),
        "five password checks per username and window, however concurrent"
    );
    // Now even the right password is refused until the window ends.
    let (s, _) = login(&server.base, &username, PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_takes_credentials_from_the_body_only() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let http = reqwest::Client::new();
    let url = format!("{}/services/oauth2/token", server.base);
    // Everything in the query string: refused, naming the parameter.
    let res = http
        .post(format!(
            "{url}?grant_type=password&username={}&password={PASSWORD}",
            a.username
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("password "),
        "{v}"
    );
    // A secret in the query beside a correct body: still refused.
    let res = http
        .post(format!("{url}?client_secret=moss_x"))
        .form(&[
            ("grant_type", "password"),
            ("username", a.username.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("client_secret "),
        "{v}"
    );
    let res = http
        .post(format!(
            "{}/services/oauth2/revoke?token=mos_x",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // The same credentials in a form body or a JSON body are accepted.
    let (s, v) = login(&server.base, &a.username, PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let res = http
        .post(&url)
        .json(&json!({"grant_type": "password", "username": a.username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_its_family() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let (_, username) = new_user(&a, "mobile", "standard").await;
    let (s, t) = login(&server.base, &username, PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    let r1 = t["refresh_token"].as_str().unwrap().to_string();
    let (s, v) = refresh(&server.base, &r1).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r2 = v["refresh_token"]
        .as_str()
        .expect("a rotated refresh token")
        .to_string();
    assert_ne!(r1, r2);
    let access = a.with_token(v["access_token"].as_str().unwrap());
    assert_eq!(
        access.get(&format!("{DATA}/sobjects")).await.0,
        StatusCode::OK
    );
    // r1 was used: presenting it again is refused, and takes r2 with it.
    let (s, v) = refresh(&server.base, &r1).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (s, v) = refresh(&server.base, &r2).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "the whole family is revoked after a reuse"
    );
    // Another login starts a new family, unaffected.
    let (_, t) = login(&server.base, &username, PASSWORD).await;
    let (s, _) = refresh(&server.base, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_expire() {
    let server = TestServer::start_with(|c| c.refresh_token_ttl = Duration::from_secs(1)).await;
    let a = server.tenant().await;
    let (s, t) = login(&server.base, &a.username, PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, v) = refresh(&server.base, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "an expired refresh token is refused"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_expired_sessions_refresh_tokens_failures_and_keys() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    a.create_object(json!({"api_name": "Note__c", "label": "Note"}))
        .await;
    let (s, t) = login(&server.base, &a.username, PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = login(&server.base, &a.username, "not the password").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let res = reqwest::Client::new()
        .post(format!("{}{DATA}/sobjects/Note__c", server.base))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .header("Idempotency-Key", "purge-test-1")
        .json(&json!({"Name": "n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let now = chrono::Utc::now();
    let p = &server.platform;
    let nothing = p.purge_expired(now).await.unwrap();
    assert_eq!(
        (
            nothing.credentials.sessions,
            nothing.credentials.refresh_tokens
        ),
        (0, 0),
        "nothing live is purged: {nothing:?}"
    );
    // Two sessions (tenant creation, login) past their 2 hours; the
    // failure window past its 5 minutes.
    let later = p
        .purge_expired(now + chrono::Duration::hours(3))
        .await
        .unwrap();
    assert_eq!(later.credentials.sessions, 2, "{later:?}");
    assert_eq!(later.credentials.refresh_tokens, 0, "{later:?}");
    assert!(later.credentials.login_failures >= 1, "{later:?}");
    let month = p
        .purge_expired(now + chrono::Duration::days(31))
        .await
        .unwrap();
    assert_eq!(month.credentials.refresh_tokens, 1, "{month:?}");
    assert_eq!(month.idempotency_keys, 1, "{month:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_ones_password_revokes_the_other_sessions() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let (_, username) = new_user(&a, "ann", "standard").await;
    let (_, t1) = login(&server.base, &username, PASSWORD).await;
    let (_, t2) = login(&server.base, &username, PASSWORD).await;
    let here = a.with_token(t1["access_token"].as_str().unwrap());
    let other = a.with_token(t2["access_token"].as_str().unwrap());
    let other_refresh = t2["refresh_token"].as_str().unwrap().to_string();
    let new_password = "a much better passphrase";

    let (s, v) = here
        .post(
            CHANGE,
            json!({"current_password": "wrong one entirely", "new_password": new_password}),
        )
        .await;
    assert_eq!(
        (s, fields(&v)),
        (
            StatusCode::BAD_REQUEST,
            vec!["current_password".to_string()]
        )
    );
    for (bad, why) in [
        ("too short", "at least 12"),
        ("qwerty123456", "common"),
        (username.as_str(), "username"),
    ] {
        let (s, v) = here
            .post(
                CHANGE,
                json!({"current_password": PASSWORD, "new_password": bad}),
            )
            .await;
        assert_eq!(
            (s, fields(&v)),
            (StatusCode::BAD_REQUEST, vec!["new_password".to_string()]),
            "{bad}: {v}"
        );
        assert!(message(&v).contains(why), "{bad}: {v}");
    }
    let (s, v) = here
        .post(CHANGE, json!({"current_password": PASSWORD}))
        .await;
    assert_eq!(
        (s, fields(&v)),
        (StatusCode::BAD_REQUEST, vec!["new_password".to_string()])
    );
    let (s, v) = server
        .anonymous()
        .post(
            CHANGE,
            json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    let (s, v) = here
        .post(
            CHANGE,
            json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        here.get(&format!("{DATA}/sobjects")).await.0,
        StatusCode::OK,
        "the session that changed the password stays"
    );
    assert_eq!(
        other.get(&format!("{DATA}/sobjects")).await.0,
        StatusCode::UNAUTHORIZED,
        "every other session is revoked"
    );
    assert_eq!(
        refresh(&server.base, &other_refresh).await.0,
        StatusCode::BAD_REQUEST,
        "and every refresh token"
    );
    assert_eq!(
        login(&server.base, &username, PASSWORD).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        login(&server.base, &username, new_password).await.0,
        StatusCode::OK
    );
    let (_, v) = a
        .get(&format!("{ADMIN}/audit?action=user.password_change"))
        .await;
    assert!(v.to_string().contains("user.password_change"), "{v}");
    assert!(!v.to_string().contains(new_password));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reset_forces_a_change_at_the_next_login() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let other_tenant = server.tenant().await;
    let (uid, username) = new_user(&a, "bob", "standard").await;
    let (_, t) = login(&server.base, &username, PASSWORD).await;
    let bob = a.with_token(t["access_token"].as_str().unwrap());
    let reset = format!("{ADMIN}/users/{uid}/password");
    let temporary = "temporary passphrase 7";

    let (s, v) = a.post(&reset, json!({"password": "short"})).await;
    assert_eq!(
        (s, fields(&v)),
        (StatusCode::BAD_REQUEST, vec!["password".to_string()])
    );
    assert_eq!(
        bob.post(&reset, json!({"password": temporary})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        other_tenant
            .post(&reset, json!({"password": temporary}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = a.post(&reset, json!({"password": temporary})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        bob.get(&format!("{DATA}/sobjects")).await.0,
        StatusCode::UNAUTHORIZED,
        "a reset revokes the user's sessions"
    );

    // The temporary password is right but gives no token.
    let (s, v) = login(&server.base, &username, temporary).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        (v["error"].as_str(), v["error_code"].as_str()),
        (Some("invalid_grant"), Some("PASSWORD_EXPIRED"))
    );
    let (s, v) = login(&server.base, &username, "a wrong password").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v.get("error_code").is_none(),
        "a wrong password says nothing more: {v}"
    );

    let anon = server.anonymous();
    let (s, v) = anon
        .post(
            CHANGE_EXPIRED,
            json!({"username": username, "current_password": temporary, "new_password": temporary}),
        )
        .await;
    assert_eq!(
        (s, fields(&v)),
        (StatusCode::BAD_REQUEST, vec!["new_password".to_string()])
    );
    let (s, v) = anon
        .post(
            CHANGE_EXPIRED,
            json!({"username": username, "current_password": "a wrong password", "new_password": "my own passphrase"}),
        )
        .await;
    assert_eq!(
        (s, fields(&v)),
        (
            StatusCode::BAD_REQUEST,
            vec!["current_password".to_string()]
        )
    );
    let (s, v) = anon
        .post(
            CHANGE_EXPIRED,
            json!({"username": username, "current_password": temporary, "new_password": "my own passphrase"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = login(&server.base, &username, "my own passphrase").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = a
        .get(&format!("{ADMIN}/audit?action=user.password_reset"))
        .await;
    assert!(v.to_string().contains(&uid), "{v}");
    assert!(!v.to_string().contains(temporary));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_users_passwords_follow_the_policy() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let username = format!("carol-{}@example.test", a.tenant_id);
    for (pw, why) in [
        ("elevenchars", "at least 12"),
        ("ééééééééééé", "at least 12"),
        ("1qaz2wsx3edc", "common"),
        ("QWERTY123456", "common"),
        (username.as_str(), "username"),
        ("carol.smith.1984", "email"),
    ] {
        let (s, v) = a
            .post(
                &format!("{ADMIN}/users"),
                json!({"username": username, "password": pw, "email": "Carol.Smith.1984@example.test"}),
            )
            .await;
        assert_eq!(
            (s, fields(&v)),
            (StatusCode::BAD_REQUEST, vec!["password".to_string()]),
            "{pw}: {v}"
        );
        assert!(message(&v).contains(why), "{pw}: {v}");
    }
    let long = "x".repeat(257);
    let (s, _) = a
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": username, "password": long}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // No composition rules: twelve plain lower-case letters and spaces pass.
    let (s, v) = a
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": username, "password": "plain words only"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    server.stop().await;
}
