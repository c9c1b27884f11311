//! The OpenAPI document at `/services/openapi.json`: served without
//! authentication, it documents every route of the route table and nothing
//! else, and every operation it documents is answered by the router (not
//! by the "no such resource" fallback).

mod common;

use common::*;
use mosaic_server::{route_table, Access};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const FALLBACK_MESSAGE: &str = "The requested resource does not exist";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_the_routes() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    let res = reqwest::get(format!("{}/services/openapi.json", server.base))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "served without authentication"
    );
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], server.base.as_str());

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = route_table()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes not documented: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    let mut ids = BTreeSet::new();
    for r in route_table() {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
        assert_eq!(op["x-mosaic-access"], r.access.name());
        let params: BTreeSet<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, r.params().into_iter().collect(), "{}", r.path);

        // The router answers the documented operation itself.
        let mut path = r.path.to_string();
        for p in r.params() {
            let v = if p == "version" {
                "v60.0"
            } else {
                "Nothing__c"
            };
            path = path.replace(&format!("{{{p}}}"), v);
        }
        let method = Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        let caller = if r.access == Access::Operator {
            server.operator()
        } else {
            admin.clone()
        };
        let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
        let res = {
            let mut rb = caller
                .http
                .request(method.clone(), format!("{}{path}", server.base));
            if let Some(t) = &caller.token {
                rb = rb.bearer_auth(t);
            }
            if let Some(b) = &body {
                rb = rb.json(b);
            }
            rb.send().await.unwrap()
        };
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {text}"
        );
        let fell_through = serde_json::from_str::<Value>(&text)
            .map(|v| v[0]["message"] == FALLBACK_MESSAGE)
            .unwrap_or(false);
        assert!(
            !(status == StatusCode::NOT_FOUND && fell_through),
            "{method} {path} is documented but falls through the router: {text}"
        );
    }
    // Unknown paths do reach the fallback (the check above can fail).
    let (s, v) = admin.get("/services/data/v60.0/no/such/route/here").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v[0]["message"], FALLBACK_MESSAGE, "{v}");
    server.stop().await;
}
