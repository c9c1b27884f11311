//! The authorization matrix, generated from the router's own route table:
//! every route × {no token, expired token, another tenant's admin, a
//! standard user without permissions, a standard user with only "Customize
//! Application", the tenant's admin, the operator} is
//! called, the status class checked against the route's access class, and
//! every body a caller outside the tenant receives is searched for the
//! tenant's ids and names (0 leaks). A route added later is classified by
//! construction (`RouteSpec::access`); a path parameter this test cannot
//! fill fails it, so new routes are exercised too.

mod common;

use common::*;
use mosaic_server::{route_table, Access, RouteSpec};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    NoToken,
    Expired,
    OtherTenantAdmin,
    StandardUser,
    Customizer,
    TenantAdmin,
    Operator,
}

const CALLERS: [Caller; 7] = [
    Caller::NoToken,
    Caller::Expired,
    Caller::OtherTenantAdmin,
    Caller::StandardUser,
    Caller::Customizer,
    Caller::TenantAdmin,
    Caller::Operator,
];

/// What a caller may get from a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 401 exactly.
    Unauthenticated,
    /// 401 or 403: an operator route refuses whoever is not an operator.
    Refused,
    /// 403 or 404: no access to the object or record.
    Denied,
    /// 403.
    Forbidden,
    /// A 4xx: the path names the other tenant's things, which do not exist
    /// for this caller.
    NotTheirs,
    /// Past authorization: anything but 401, 403 and 5xx (501, a feature
    /// this server does not offer, is an answer too).
    Allowed,
}

impl Expect {
    fn holds(self, s: StatusCode) -> bool {
        let auth = s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN;
        match self {
            Expect::Unauthenticated => s == StatusCode::UNAUTHORIZED,
            Expect::Refused => auth,
            Expect::Denied => s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
            Expect::Forbidden => s == StatusCode::FORBIDDEN,
            Expect::NotTheirs => s.is_client_error(),
            Expect::Allowed => !auth && (!s.is_server_error() || s == StatusCode::NOT_IMPLEMENTED),
        }
    }
}

/// Whether the path names something of tenant A beyond the API version.
fn names_tenant_things(r: &RouteSpec) -> bool {
    r.params().iter().any(|p| *p != "version")
}

/// The matrix: access class × caller → expectation.
fn expected(r: &RouteSpec, c: Caller) -> Expect {
    use Caller::*;
    match r.access {
        Access::Public => Expect::Allowed,
        // The matrix's server has a metrics token: only it (which no
        // caller here holds) and operator credentials open /metrics.
        Access::Metrics => match c {
            Operator => Expect::Allowed,
            _ => Expect::Refused,
        },
        Access::Session => match c {
            NoToken | Expired | Operator => Expect::Unauthenticated,
            OtherTenantAdmin if names_tenant_things(r) => Expect::NotTheirs,
            // The identity URL names the standard user: another user who is
            // not an administrator may not read it.
            Customizer if r.path.starts_with("/id/") => Expect::Forbidden,
            OtherTenantAdmin | StandardUser | Customizer | TenantAdmin => Expect::Allowed,
        },
        Access::Permission => match c {
            NoToken | Expired | Operator => Expect::Unauthenticated,
            OtherTenantAdmin => Expect::NotTheirs,
            StandardUser | Customizer => Expect::Denied,
            TenantAdmin => Expect::Allowed,
        },
        Access::TenantAdmin => match c {
            NoToken | Expired | Operator => Expect::Unauthenticated,
            OtherTenantAdmin if names_tenant_things(r) => Expect::NotTheirs,
            OtherTenantAdmin | TenantAdmin => Expect::Allowed,
            StandardUser | Customizer => Expect::Forbidden,
        },
        Access::Customize => match c {
            NoToken | Expired | Operator => Expect::Unauthenticated,
            OtherTenantAdmin if names_tenant_things(r) => Expect::NotTheirs,
            OtherTenantAdmin | Customizer | TenantAdmin => Expect::Allowed,
            StandardUser => Expect::Forbidden,
        },
        Access::Operator => match c {
            Operator => Expect::Allowed,
            _ => Expect::Refused,
        },
    }
}

/// Tenant A's things the paths point at.
struct Fixture {
    record_id: String,
    user_id: String,
    role_id: String,
    group_id: String,
    permission_set_id: String,
    app_id: String,
    tenant_id: String,
}

impl Fixture {
    /// The value of `param` in `path` (panics for a parameter it does not
    /// know: a new route needs its value here).
    fn value(&self, path: &str, param: &str) -> String {
        let random = mosaic_types::new_id();
        match param {
            "version" => "v60.0".into(),
            "object" => "Secret__c".into(),
            "tenant" | "tenant_id" => self.tenant_id.clone(),
            "user_id" => self.user_id.clone(),
            "value" => "EXT-A".into(),
            // Every object has the derived layout and the "All" list view.
            "layout" => "default".into(),
            "view" => "all".into(),
            "record_type" => "012000000000000AAA".into(),
            "locator" | "share" => random,
            "rule" if path.contains("/validations/") => "Positive".into(),
            "rule" => "Big".into(),
            // `{field}` is the record id where history and shares hang off it.
            "field" if path.ends_with("/history") || path.contains("/shares") => {
                self.record_id.clone()
            }
            "field" if path.starts_with("/services/metadata/") => "Note__c".into(),
            "field" => "Code__c".into(),
            "id" if path.contains("/sobjects/") => self.record_id.clone(),
            "id" if path.contains("/users/") => self.user_id.clone(),
            "id" if path.contains("/roles/") => self.role_id.clone(),
            "id" if path.contains("/groups/") => self.group_id.clone(),
            "id" if path.contains("/permission-sets/") => self.permission_set_id.clone(),
            "id" if path.contains("/connected-apps/") => self.app_id.clone(),
            "id" if path.contains("/dead-letters/") || path.contains("/sharing-rules/") => random,
            // Bulk API jobs: an unknown job (404 for everyone allowed in).
            "job_id" => random,
            other => panic!("{path}: the matrix cannot fill parameter {{{other}}}; add it"),
        }
    }

    fn path(&self, r: &RouteSpec) -> String {
        let mut path = r.path.to_string();
        for p in r.params() {
            path = path.replacen(&format!("{{{p}}}"), &self.value(r.path, p), 1);
        }
        path
    }
}

async fn created(c: &Client, path: &str, body: Value) -> String {
    let (s, v) = c.post(path, body).await;
    assert_eq!(s, StatusCode::CREATED, "{path}: {v}");
    v["id"].as_str().unwrap_or_default().to_string()
}

/// Routes in an order that keeps tenant A's things alive as long as they
/// are needed: reads, then writes, then deletes (the object last).
fn ordered(mut table: Vec<RouteSpec>) -> Vec<RouteSpec> {
    let rank = |r: &RouteSpec| -> (u8, usize) {
        let m = match r.method {
            Method::GET | Method::HEAD => 0,
            Method::POST => 1,
            Method::PUT | Method::PATCH => 2,
            _ => 3,
        };
        // Among deletes, deeper paths first (a field before its object).
        (m, usize::MAX - r.path.matches('/').count())
    };
    table.sort_by_key(|r| (rank(r), r.path));
    table
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_caller_as_classified_and_leaks_nothing() {
    let server = TestServer::start_state(
        |_| {},
        |s| s.metrics_token = Some("matrix-metrics-token".into()),
    )
    .await;
    let admin = server.tenant().await;
    let other = server.tenant().await;
    let marker = format!("LEAKMARK-{}", mosaic_types::new_id());

    // Tenant A: an object with a record, rules, a standard user without
    // permissions, one with only "Customize Application", a role, a group,
    // a permission set, a connected app.
    admin
        .create_object(json!({"api_name": "Secret__c", "label": "Secret", "fields": [
            {"api_name": "Code__c", "data_type": "text", "length": 20, "is_external_id": true, "is_unique": true},
            {"api_name": "Note__c", "data_type": "text", "length": 200}
        ]}))
        .await;
    let record_id = admin
        .create_record(
            "Secret__c",
            json!({"Name": marker, "Code__c": "EXT-A", "Note__c": format!("{marker}-note")}),
        )
        .await;
    created(
        &admin,
        &format!("{META}/objects/Secret__c/validations"),
        json!({"name": "Positive", "formula_expression": "LEN(Note__c) > 190", "error_message": "Too long"}),
    )
    .await;
    created(
        &admin,
        &format!("{META}/objects/Secret__c/workflows"),
        json!({"name": "Big", "trigger_type": "created", "filter_criteria": {"conditions": [{"field": "Note__c", "operator": "is_null", "value": false}]}, "actions": []}),
    )
    .await;
    let std_name = format!("std-{}@example.test", admin.tenant_id);
    let user_id = created(
        &admin,
        "/services/admin/v1/users",
        json!({"username": std_name, "password": "correct-horse-battery", "profile": "standard"}),
    )
    .await;
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "password"),
            ("username", std_name.as_str()),
            ("password", "correct-horse-battery"),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = res.json().await.unwrap();
    let standard = admin.with_token(t["access_token"].as_str().expect("standard user token"));
    let builder_name = format!("builder-{}@example.test", admin.tenant_id);
    let builder_id = created(
        &admin,
        "/services/admin/v1/users",
        json!({"username": builder_name, "password": "correct-horse-battery", "profile": "standard"}),
    )
    .await;
    let builders = created(
        &admin,
        "/services/admin/v1/permission-sets",
        json!({"name": "Builders", "customize_application": true}),
    )
    .await;
    created(
        &admin,
        &format!("/services/admin/v1/permission-sets/{builders}/assignments"),
        json!({"user_id": builder_id}),
    )
    .await;
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "password"),
            ("username", builder_name.as_str()),
            ("password", "correct-horse-battery"),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = res.json().await.unwrap();
    let customizer = admin.with_token(t["access_token"].as_str().expect("builder token"));
    let role_id = created(&admin, "/services/admin/v1/roles", json!({"name": "Vault"})).await;
    let group_id = created(
        &admin,
        "/services/admin/v1/groups",
        json!({"name": "Keepers"}),
    )
    .await;
    let permission_set_id = created(
        &admin,
        "/services/admin/v1/permission-sets",
        json!({"name": "Unused", "object_permissions": []}),
    )
    .await;
    let app_id = created(
        &admin,
        "/services/admin/v1/connected-apps",
        json!({"name": "Etl", "run_as_user_id": admin.user_id}),
    )
    .await;

    // An expired session of tenant A's admin.
    let expired_token = mosaic_access::token::mint();
    let now = chrono::Utc::now();
    server
        .platform
        .meta_store
        .create_session(mosaic_store::SessionRow {
            token_hash: mosaic_access::token::hash(&expired_token),
            tenant_id: admin.tenant_id.clone(),
            user_id: admin.user_id.clone(),
            issued_at: now - chrono::Duration::hours(3),
            expires_at: now - chrono::Duration::hours(1),
            revoked: false,
        })
        .await
        .unwrap();
    let tenant = server
        .platform
        .meta_store
        .tenant(&admin.tenant_id)
        .await
        .unwrap()
        .unwrap();
    let fixture = Fixture {
        record_id: record_id.clone(),
        user_id: user_id.clone(),
        role_id: role_id.clone(),
        group_id: group_id.clone(),
        permission_set_id: permission_set_id.clone(),
        app_id: app_id.clone(),
        tenant_id: admin.tenant_id.clone(),
    };
    // What no caller outside tenant A may read, and what the standard user
    // (inside A, without permissions) may not read either.
    let outside_markers: Vec<String> = vec![
        admin.tenant_id.clone(),
        tenant.name.clone(),
        tenant.subdomain.clone(),
        admin.username.clone(),
        admin.user_id.clone(),
        std_name.clone(),
        user_id,
        record_id.clone(),
        role_id,
        group_id,
        permission_set_id,
        app_id,
        marker.clone(),
    ];
    let inside_markers = vec![marker.clone(), record_id];

    let anonymous = server.anonymous();
    let callers: BTreeMap<Caller, Client> = [
        (Caller::NoToken, anonymous.clone()),
        (Caller::Expired, anonymous.with_token(&expired_token)),
        (Caller::OtherTenantAdmin, other.clone()),
        (Caller::StandardUser, standard),
        (Caller::Customizer, customizer),
        (Caller::TenantAdmin, admin.clone()),
        (Caller::Operator, server.operator()),
    ]
    .into_iter()
    .collect();

    let table = ordered(route_table());
    let mut failures = Vec::new();
    let mut leaks = Vec::new();
    let mut calls = 0usize;
    let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &table {
        *per_class.entry(r.access.name()).or_default() += 1;
        let path = fixture.path(r);
        let method = Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        for caller in CALLERS {
            let c = &callers[&caller];
            let mut rb = c.http.request(method.clone(), format!("{}{path}", c.base));
            if let Some(t) = &c.token {
                rb = rb.bearer_auth(t);
            }
            if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                rb = rb.json(&json!({}));
            }
            let res = rb.send().await.expect("send");
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            calls += 1;
            let want = expected(r, caller);
            if !want.holds(status) {
                failures.push(format!(
                    "{} {path} as {caller:?} ({}): {status}, expected {want:?}: {}",
                    r.method,
                    r.access.name(),
                    body.chars().take(200).collect::<String>()
                ));
            }
            let markers = match caller {
                Caller::NoToken | Caller::Expired | Caller::OtherTenantAdmin => &outside_markers,
                Caller::StandardUser | Caller::Customizer => &inside_markers,
                Caller::TenantAdmin | Caller::Operator => continue,
            };
            for m in markers {
                if !path.contains(m.as_str()) && body.contains(m.as_str()) {
                    leaks.push(format!("{} {path} as {caller:?} shows '{m}'", r.method));
                }
            }
        }
    }
    println!(
        "authorization matrix: {} routes × {} callers = {calls} calls, {} failures, {} leaks; routes per class: {per_class:?}",
        table.len(),
        CALLERS.len(),
        failures.len(),
        leaks.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    assert_eq!(calls, table.len() * CALLERS.len());
    assert!(table.len() >= 90, "the whole surface: {}", table.len());
    server.stop().await;
}
