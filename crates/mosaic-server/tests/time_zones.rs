//! Tenants' and users' time zones: set through the admin APIs (unknown
//! zones refused naming the field), used by `TODAY()`, SOQL date literals
//! (the user's day, daylight saving included) and auto numbers' `{YYYY}`
//! (the tenant's zone), all at instants fixed by the injected clock.

mod common;
use chrono::{DateTime, Utc};
use common::*;
use mosaic_runtime::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

const ADMIN: &str = "/services/admin/v1";
const PASSWORD: &str = "zone-test-passphrase-48213";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .with_timezone(&Utc)
}

/// A server whose clock (records' dates, formulas, date literals) stands at `now`.
async fn server_at(now: DateTime<Utc>) -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(now));
    let c = clock.clone();
    let server = TestServer::start_with(move |cfg| cfg.clock = c).await;
    server.platform.queries.set_clock(Some(now));
    (server, clock)
}

fn set_now(server: &TestServer, clock: &ManualClock, now: DateTime<Utc>) {
    clock.set(now);
    server.platform.queries.set_clock(Some(now));
}

/// An administrator of `admin`'s tenant in `zone`, signed in.
async fn user_in(server: &TestServer, admin: &Client, name: &str, zone: Option<&str>) -> Client {
    let username = format!("{name}-{}@{}.test", std::process::id(), admin.tenant_id);
    let mut body =
        json!({"username": username, "password": PASSWORD, "profile": "system_administrator"});
    if let Some(z) = zone {
        body["time_zone"] = json!(z);
    }
    let (s, v) = admin.post(&format!("{ADMIN}/users"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["time_zone"], json!(zone), "{v}");
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    admin.with_token(t["access_token"].as_str().unwrap())
}

async fn today(c: &Client) -> String {
    let (s, v) = c
        .post(
            "/services/metadata/v1/formula/evaluate",
            json!({"expression": "TODAY()"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no value in {v}"))
        .to_string()
}

async fn names(c: &Client, soql: &str) -> Vec<String> {
    let (s, v) = c
        .get(&format!(
            "{DATA}/query?q={}",
            soql.replace(' ', "%20").replace('=', "%3D")
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    let mut out: Vec<String> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_are_set_through_the_admin_apis_and_checked() {
    let (server, _) = server_at(Utc::now()).await;
    let admin = server.tenant().await;
    let (s, v) = admin.get(&format!("{ADMIN}/organization")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["time_zone"], Value::Null);
    assert_eq!(v["default_time_zone"], "UTC");
    for (body, field) in [
        (json!({"time_zone": "Mars/Olympus_Mons"}), "time_zone"),
        (json!({"locale": "english"}), "locale"),
        (json!({"time_zone": 5}), "time_zone"),
    ] {
        let (s, v) = admin.patch(&format!("{ADMIN}/organization"), body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains(&format!("\"{field}\"")), "{v}");
    }
    let (s, v) = admin
        .patch(
            &format!("{ADMIN}/organization"),
            json!({"time_zone": "Europe/Paris", "locale": "fr_FR"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["time_zone"], "Europe/Paris");
    assert_eq!(v["locale"], "fr_FR");
    // A user: refused zone creates nothing; a good one is kept and shown.
    let (s, v) = admin
        .post(
            &format!("{ADMIN}/users"),
            json!({"username": "nozone@x.test", "password": PASSWORD, "time_zone": "Nowhere/Land"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("\"time_zone\""), "{v}");
    let (_, list) = admin.get(&format!("{ADMIN}/users")).await;
    assert!(!list.to_string().contains("nozone@x.test"), "{list}");
    let (s, v) = admin
        .patch(
            &format!("{ADMIN}/users/{}", admin.user_id),
            json!({"time_zone": "Asia/Tokyo", "locale": "ja_JP"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["time_zone"], "Asia/Tokyo");
    let (_, v) = admin.get(&format!("{ADMIN}/users/{}", admin.user_id)).await;
    assert_eq!(v["locale"], "ja_JP", "{v}");
    let (s, v) = admin
        .patch(
            &format!("{ADMIN}/users/{}", admin.user_id),
            json!({"time_zone": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["time_zone"], Value::Null);
    // Each change is in the tenant's audit log.
    let (s, log) = admin.get(&format!("{ADMIN}/audit")).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let text = log.to_string();
    assert!(text.contains("organization.locale"), "{log}");
    assert!(
        text.contains("user.locale") && text.contains("Asia/Tokyo"),
        "{log}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn today_and_date_literals_follow_the_users_zone() {
    // 10:30 UTC on 15 March: already the 16th in Kiritimati (UTC+14),
    // still the 14th in Pago Pago (UTC−11).
    let (server, clock) = server_at(at("2024-03-15T09:00:00Z")).await;
    let admin = server.tenant().await;
    admin
        .create_object(json!({"api_name": "Visit__c", "fields": [
            {"api_name": "Day__c", "data_type": "date"}]}))
        .await;
    admin
        .create_record("Visit__c", json!({"Name": "early", "Day__c": "2024-03-14"}))
        .await;
    set_now(&server, &clock, at("2024-03-15T10:15:00Z"));
    admin
        .create_record("Visit__c", json!({"Name": "late", "Day__c": "2024-03-16"}))
        .await;
    set_now(&server, &clock, at("2024-03-15T10:30:00Z"));
    let east = user_in(&server, &admin, "east", Some("Pacific/Kiritimati")).await;
    let west = user_in(&server, &admin, "west", Some("Pacific/Pago_Pago")).await;
    let utc = user_in(&server, &admin, "utc", None).await;

    assert_eq!(today(&east).await, "2024-03-16");
    assert_eq!(today(&west).await, "2024-03-14");
    assert_eq!(today(&utc).await, "2024-03-15");

    // Datetime fields: the user's day as UTC instants.
    let q = "SELECT Name FROM Visit__c WHERE CreatedDate = TODAY";
    assert_eq!(names(&east, q).await, ["late"]); // [15th 10:00Z, 16th 10:00Z)
    assert_eq!(names(&west, q).await, ["early", "late"]); // [14th 11:00Z, 15th 11:00Z)
    assert_eq!(names(&utc, q).await, ["early", "late"]);
    assert_eq!(
        names(
            &east,
            "SELECT Name FROM Visit__c WHERE CreatedDate = YESTERDAY"
        )
        .await,
        ["early"]
    );
    // Date fields compare as dates, against the user's today.
    let q = "SELECT Name FROM Visit__c WHERE Day__c = TODAY";
    assert_eq!(names(&east, q).await, ["late"]);
    assert_eq!(names(&west, q).await, ["early"]);
    assert!(names(&utc, q).await.is_empty());

    // A user without a zone follows the tenant's default.
    let (s, v) = admin
        .patch(
            &format!("{ADMIN}/organization"),
            json!({"time_zone": "Pacific/Kiritimati"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(today(&utc).await, "2024-03-16");
    assert_eq!(today(&west).await, "2024-03-14", "the user's own zone wins");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_day_clocks_spring_forward_is_23_hours_long() {
    // 10 March 2024 in New York: midnight is 05:00Z (EST), the next
    // midnight 04:00Z (EDT).
    let (server, clock) = server_at(at("2024-03-10T04:30:00Z")).await;
    let admin = server.tenant().await;
    admin.create_object(json!({"api_name": "Call__c"})).await;
    admin
        .create_record("Call__c", json!({"Name": "saturday-night"}))
        .await; // 9 March 23:30 EST
    set_now(&server, &clock, at("2024-03-11T03:30:00Z"));
    admin
        .create_record("Call__c", json!({"Name": "sunday-night"}))
        .await; // 10 March 23:30 EDT
    set_now(&server, &clock, at("2024-03-11T04:30:00Z"));
    admin
        .create_record("Call__c", json!({"Name": "monday-early"}))
        .await; // 11 March 00:30 EDT
    set_now(&server, &clock, at("2024-03-10T12:00:00Z"));
    let ny = user_in(&server, &admin, "ny", Some("America/New_York")).await;
    assert_eq!(today(&ny).await, "2024-03-10");
    assert_eq!(
        names(&ny, "SELECT Name FROM Call__c WHERE CreatedDate = TODAY").await,
        ["sunday-night"]
    );
    assert_eq!(
        names(
            &ny,
            "SELECT Name FROM Call__c WHERE CreatedDate = YESTERDAY"
        )
        .await,
        ["saturday-night"]
    );
    assert_eq!(
        names(&ny, "SELECT Name FROM Call__c WHERE CreatedDate = TOMORROW").await,
        ["monday-early"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_numbers_take_the_year_of_the_tenants_zone() {
    // Noon UTC on New Year's Eve is already 2025 in Auckland (UTC+13).
    let (server, _) = server_at(at("2024-12-31T12:00:00Z")).await;
    let admin = server.tenant().await;
    admin
        .create_object(json!({"api_name": "Invoice__c",
            "name_field": {"data_type": "auto_number", "auto_number_format": "INV-{YYYY}{MM}{DD}-{0000}"}}))
        .await;
    let number = |id: String| {
        let admin = &admin;
        async move {
            let (s, v) = admin.get(&format!("{DATA}/sobjects/Invoice__c/{id}")).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["Name"].as_str().unwrap().to_string()
        }
    };
    let first = admin.create_record("Invoice__c", json!({})).await;
    assert_eq!(number(first).await, "INV-20241231-0001", "UTC by default");
    let (s, v) = admin
        .patch(
            &format!("{ADMIN}/organization"),
            json!({"time_zone": "Pacific/Auckland"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let second = admin.create_record("Invoice__c", json!({})).await;
    assert_eq!(number(second).await, "INV-20250101-0002");
    // The saving user's own zone does not change the tenant's numbering.
    let (s, v) = admin
        .patch(
            &format!("{ADMIN}/users/{}", admin.user_id),
            json!({"time_zone": "Pacific/Pago_Pago"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let third = admin.create_record("Invoice__c", json!({})).await;
    assert_eq!(number(third).await, "INV-20250101-0003");
    server.stop().await;
}
