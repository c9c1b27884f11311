//! Salesforce compatibility over HTTP: GEOLOCATION / DISTANCE in formula
//! fields on geolocation fields, `FOR VIEW` / `FOR REFERENCE` filling the
//! recently viewed list, and `parameterizedSearch`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distance_formulas_read_geolocation_fields() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    admin
        .create_object(json!({"api_name": "Store__c", "label": "Store", "fields": [
            {"api_name": "Site__c", "data_type": "geolocation"},
            {"api_name": "Km__c", "data_type": "formula", "formula_return_type": "number", "scale": 2,
             "formula_expression": "DISTANCE(Site__c, GEOLOCATION(40.7, -74.0), 'km')"},
            {"api_name": "Mi__c", "data_type": "formula", "formula_return_type": "number", "scale": 1,
             "formula_expression": "DISTANCE(GEOLOCATION(40.7, -74.0), Site__c, 'mi')"},
            {"api_name": "North__c", "data_type": "formula", "formula_return_type": "boolean",
             "formula_expression": "Site__Latitude__s > 40"}
        ]}))
        .await;
    let sf = admin
        .create_record(
            "Store__c",
            json!({"Name": "SF", "Site__c": {"latitude": 37.775, "longitude": -122.418}}),
        )
        .await;
    let (s, v) = admin.get(&format!("{DATA}/sobjects/Store__c/{sf}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["Km__c"], json!(4129.76), "{v}");
    assert_eq!(v["Mi__c"], json!(2566.1), "{v}");
    assert_eq!(v["North__c"], json!(false), "{v}");
    let empty = admin
        .create_record("Store__c", json!({"Name": "Nowhere"}))
        .await;
    let (_, v) = admin
        .get(&format!("{DATA}/sobjects/Store__c/{empty}"))
        .await;
    assert_eq!(v["Km__c"], Value::Null, "{v}");

    // A geolocation field alone is not a formula value; a bad unit is named.
    for (expr, want) in [
        ("Site__c", "can only be used in DISTANCE"),
        ("DISTANCE(Site__c, Site__c, 'ft')", "'mi' or 'km'"),
        (
            "GEOLOCATION(1, 2)",
            "only be used as an argument of DISTANCE",
        ),
    ] {
        let (s, v) = admin
            .post(
                &format!("{META}/objects/Store__c/fields"),
                json!({"api_name": "Bad__c", "data_type": "formula", "formula_return_type": "number",
                       "formula_expression": expr}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{expr}: {v}");
        assert!(v.to_string().contains(want), "{expr}: {v}");
    }
    // The geolocation field a formula reads is protected from deletion.
    let (s, v) = admin
        .delete(&format!("{META}/objects/Store__c/fields/Site__c"))
        .await;
    assert!(s.is_client_error(), "{v}");
    server.stop().await;
}

async fn recent_ids(c: &Client) -> Vec<String> {
    let (s, v) = c.get(&format!("{DATA}/recent")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_view_and_for_reference_fill_the_recently_viewed_list() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    admin
        .create_object(json!({"api_name": "Acct__c", "label": "Account", "fields": []}))
        .await;
    let a = admin.create_record("Acct__c", json!({"Name": "A"})).await;
    let b = admin.create_record("Acct__c", json!({"Name": "B"})).await;
    let c = admin.create_record("Acct__c", json!({"Name": "C"})).await;

    // A plain query marks nothing.
    let q = |soql: &str| format!("{DATA}/query?q={}", enc(soql));
    let (s, v) = admin.get(&q("SELECT Id FROM Acct__c")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(recent_ids(&admin).await.is_empty());

    let (s, v) = admin
        .get(&q("SELECT Id, Name FROM Acct__c WHERE Name = 'A' FOR VIEW"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["records"][0]["Id"], a.as_str());
    assert_eq!(recent_ids(&admin).await, vec![a.clone()]);

    let (s, v) = admin
        .get(&q(
            "SELECT Id FROM Acct__c WHERE Name IN ('B', 'C') ORDER BY Name FOR REFERENCE",
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The first row returned is the newest on the list.
    assert_eq!(
        recent_ids(&admin).await,
        vec![b.clone(), c.clone(), a.clone()]
    );
    let _ = (b, c);

    // Rows of later batches are marked as they are fetched.
    for chunk in 0..2 {
        let records: Vec<Value> = (0..100)
            .map(|i| json!({"attributes": {"type": "Acct__c"}, "Name": format!("Z{chunk}{i:03}")}))
            .collect();
        let (s, v) = admin
            .post(
                &format!("{DATA}/composite/sobjects"),
                json!({"records": records}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let res = admin
        .http
        .get(format!(
            "{}{}",
            admin.base,
            q("SELECT Id, Name FROM Acct__c ORDER BY Name FOR VIEW")
        ))
        .bearer_auth(admin.token.as_deref().unwrap())
        .header("Sforce-Query-Options", "batchSize=200")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v["records"].as_array().unwrap().len(),
        200,
        "one batch of 200"
    );
    assert_eq!(
        recent_ids(&admin).await[0],
        a,
        "the first row is the newest"
    );
    let next = v["nextRecordsUrl"].as_str().unwrap().to_string();
    let (s, v) = admin.get(&next).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let last = v["records"][2]["Id"].as_str().unwrap().to_string();
    assert_eq!(v["records"][2]["Name"], "Z1099");
    let seen = recent_ids(&admin).await;
    assert_eq!(seen.len(), 50, "the list keeps the newest 50");
    assert!(seen.contains(&last), "{seen:?}");

    // FOR UPDATE stays refused through the API.
    let (s, v) = admin.get(&q("SELECT Id FROM Acct__c FOR UPDATE")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameterized_search_by_get_and_post() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    admin
        .create_object(
            json!({"api_name": "Acct__c", "label": "Account", "fields": [
                {"api_name": "City__c", "data_type": "text", "length": 40}
            ]}),
        )
        .await;
    admin
        .create_object(json!({"api_name": "Lead__c", "label": "Lead", "fields": []}))
        .await;
    for name in ["Acme One", "Acme Two", "Acme Three"] {
        admin
            .create_record("Acct__c", json!({"Name": name, "City__c": "Paris"}))
            .await;
    }
    admin
        .create_record("Lead__c", json!({"Name": "Acme lead"}))
        .await;
    admin
        .create_record("Lead__c", json!({"Name": "Other"}))
        .await;

    // Everything that matches, in the search resource's shape.
    let (s, v) = admin
        .get(&format!("{DATA}/parameterizedSearch?q=acme"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["searchRecords"].as_array().unwrap().len(), 4, "{v}");

    // One object, its fields and limit.
    let (s, v) = admin
        .get(&format!(
            "{DATA}/parameterizedSearch?q=acme&sobject=Acct__c&Acct__c.fields=Id,Name,City__c&Acct__c.limit=2"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let recs = v["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 2, "{v}");
    assert_eq!(recs[0]["attributes"]["type"], "Acct__c");
    assert_eq!(recs[0]["City__c"], "Paris");

    // POST: several objects, a default limit and an overall limit.
    let (s, v) = admin
        .post(
            &format!("{DATA}/parameterizedSearch"),
            json!({"q": "acme", "fields": ["Id", "Name"], "defaultLimit": 1,
                   "sobjects": [{"name": "Acct__c"}, {"name": "Lead__c"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let types: Vec<&str> = v["searchRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attributes"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.len(), 2, "{v}");
    assert!(
        types.contains(&"Acct__c") && types.contains(&"Lead__c"),
        "{v}"
    );
    let (s, v) = admin
        .post(
            &format!("{DATA}/parameterizedSearch"),
            json!({"q": "acme", "overallLimit": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["searchRecords"].as_array().unwrap().len(), 3, "{v}");

    // Mistakes are 400s naming the parameter.
    for (path, want) in [
        ("parameterizedSearch", "q"),
        ("parameterizedSearch?q=a&overallLimit=0", "overallLimit"),
        ("parameterizedSearch?q=a&in=EVERYWHERE", "in"),
        (
            "parameterizedSearch?q=a&Acct__c.fields=Id",
            "Acct__c.fields",
        ),
    ] {
        let (s, v) = admin.get(&format!("{DATA}/{path}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(v.to_string().contains(want), "{path}: {v}");
    }
    let (s, v) = admin
        .get(&format!(
            "{DATA}/parameterizedSearch?q=acme&sobject=Nope__c"
        ))
        .await;
    assert!(s.is_client_error(), "{v}");

    // The resources list advertises it.
    let (_, v) = admin.get(&format!("{DATA}/")).await;
    assert_eq!(
        v["parameterizedSearch"],
        format!("{DATA}/parameterizedSearch")
    );
    server.stop().await;
}
