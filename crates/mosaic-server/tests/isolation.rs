//! Two tenants with identically named objects and fields never see each
//! other's records or metadata, through any endpoint: always 404, never data.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn object() -> serde_json::Value {
    json!({
        "api_name": "Account__c",
        "fields": [
            {"api_name": "Code__c", "data_type": "text", "is_external_id": true, "is_unique": true},
            {"api_name": "Revenue__c", "data_type": "currency"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_other() {
    let server = TestServer::start().await;
    let a = server.tenant().await;
    let b = server.tenant().await;
    a.create_object(object()).await;
    b.create_object(object()).await;
    let a_id = a
        .create_record(
            "Account__c",
            json!({"Name": "A secret", "Code__c": "X1", "Revenue__c": 1}),
        )
        .await;
    let b_id = b
        .create_record(
            "Account__c",
            json!({"Name": "B secret", "Code__c": "X1", "Revenue__c": 2}),
        )
        .await;

    // Same external id in both tenants is fine: uniqueness is per tenant.
    let (s, v) = a
        .get(&format!("{DATA}/sobjects/Account__c/Code__c/X1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Name"], "A secret");

    // B's token on A's record id: every record endpoint answers 404 NOT_FOUND.
    let path = format!("{DATA}/sobjects/Account__c/{a_id}");
    for (status, body) in [
        b.get(&path).await,
        b.patch(&path, json!({"Name": "stolen"})).await,
        b.delete(&path).await,
        b.get(&format!("{path}?fields=Name")).await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(codes(&body), vec!["NOT_FOUND"]);
        assert!(!body.to_string().contains("A secret"));
    }
    // Batch endpoints: per-record NOT_FOUND, nothing changed.
    let (s, v) = b
        .send(
            reqwest::Method::DELETE,
            &format!("{DATA}/composite/sobjects?ids={a_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["success"], false);
    assert_eq!(v[0]["errors"][0]["statusCode"], "NOT_FOUND");
    let (s, v) = b
        .patch(
            &format!("{DATA}/composite/sobjects"),
            json!({"records": [{"attributes": {"type": "Account__c"}, "id": a_id, "Name": "stolen"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["errors"][0]["statusCode"], "NOT_FOUND");
    // A lookup in B pointing at A's record is refused as a cross reference.
    b.send(
        reqwest::Method::POST,
        &format!("{META}/objects/Account__c/fields"),
        Some(
            &json!({"api_name": "Parent__c", "data_type": "lookup", "lookup_object": "Account__c"}),
        ),
    )
    .await;
    let (s, v) = b
        .post(
            &format!("{DATA}/sobjects/Account__c"),
            json!({"Name": "child", "Parent__c": a_id}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(codes(&v), vec!["INVALID_CROSS_REFERENCE_KEY"]);

    // A's data is untouched and B's own data is intact.
    let (s, v) = a.get(&path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Name"], "A secret");
    assert_eq!(v["Revenue__c"].to_string(), "1.00");
    let (_, v) = b.get(&format!("{DATA}/sobjects/Account__c/{b_id}")).await;
    assert_eq!(v["Name"], "B secret");

    // Metadata: an object only A has is invisible to B.
    a.create_object(json!({"api_name": "Private__c"})).await;
    for (status, body) in [
        b.get(&format!("{META}/objects/Private__c")).await,
        b.get(&format!("{META}/objects/Private__c/fields")).await,
        b.patch(&format!("{META}/objects/Private__c"), json!({"label": "x"}))
            .await,
        b.delete(&format!("{META}/objects/Private__c")).await,
        b.get(&format!("{DATA}/sobjects/Private__c/describe")).await,
        b.get(&format!("{DATA}/sobjects/Private__c")).await,
        b.post(&format!("{DATA}/sobjects/Private__c"), json!({"Name": "x"}))
            .await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(codes(&body), vec!["NOT_FOUND"]);
    }
    let (_, list) = b.get(&format!("{META}/objects")).await;
    let names: Vec<&str> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["api_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Account__c"]);
    let (_, global) = b.get(&format!("{DATA}/sobjects")).await;
    assert!(!global.to_string().contains("Private__c"));

    // B renaming its own object does not affect A's.
    let (s, _) = b
        .patch(
            &format!("{META}/objects/Account__c"),
            json!({"label": "B label"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = a.get(&format!("{META}/objects/Account__c")).await;
    assert_eq!(v["label"], "Account");
    server.stop().await;
}
