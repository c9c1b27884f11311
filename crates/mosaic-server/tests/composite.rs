//! The composite resources (`composite`, `composite/batch`,
//! `composite/graph`, `composite/tree/{O}`, `GET composite/sobjects/{O}`),
//! `limits`, `recent` and `tooling/query`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn schema(admin: &Client) {
    admin
        .create_object(json!({"api_name": "Acct__c", "label": "Account", "fields": [
            {"api_name": "Code__c", "data_type": "text", "length": 20, "is_external_id": true, "is_unique": true},
            {"api_name": "Score__c", "data_type": "number", "precision": 10, "scale": 0}
        ]}))
        .await;
    admin
        .create_object(json!({"api_name": "Deal__c", "label": "Deal", "fields": [
            {"api_name": "Acct__c", "data_type": "lookup", "lookup_object": "Acct__c", "child_relationship_name": "Deals__r"},
            {"api_name": "Amount__c", "data_type": "currency", "precision": 16, "scale": 2, "is_required": true}
        ]}))
        .await;
}

async fn count(c: &Client, object: &str) -> u64 {
    let (s, v) = c
        .get(&format!(
            "{DATA}/query?q={}",
            enc(&format!("SELECT Id FROM {object}"))
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["totalSize"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_with_references_and_all_or_none() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    schema(&admin).await;
    let url = format!("{DATA}/composite");

    let (s, v) = admin
        .post(
            &url,
            json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": format!("{DATA}/sobjects/Acct__c"), "referenceId": "acct", "body": {"Name": "Acme", "Code__c": "A-1"}},
                {"method": "GET", "url": format!("{DATA}/sobjects/Acct__c/@{{acct.id}}?fields=Name"), "referenceId": "got"},
                {"method": "POST", "url": format!("{DATA}/sobjects/Deal__c"), "referenceId": "deal", "body": {"Name": "Deal of @{got.Name}", "Acct__c": "@{acct.id}", "Amount__c": 10}},
                {"method": "GET", "url": format!("{DATA}/query?q=SELECT+Id,Name+FROM+Deal__c"), "referenceId": "deals"},
                {"method": "PATCH", "url": format!("{DATA}/sobjects/Deal__c/@{{deals.records[0].Id}}"), "referenceId": "upd", "body": {"Amount__c": 20}}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["compositeResponse"].as_array().unwrap();
    let statuses: Vec<u64> = r
        .iter()
        .map(|x| x["httpStatusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 200, 201, 200, 204], "{v}");
    assert_eq!(r[0]["referenceId"], "acct");
    let deal_id = r[2]["body"]["id"].as_str().unwrap();
    let (_, deal) = admin
        .get(&format!("{DATA}/sobjects/Deal__c/{deal_id}"))
        .await;
    assert_eq!(deal["Name"], "Deal of Acme");
    assert_eq!(deal["Acct__c"], r[0]["body"]["id"]);
    assert_eq!(deal["Amount__c"].as_f64(), Some(20.0));

    // allOrNone: a failure rolls back the creates and the update before it.
    let (s, v) = admin
        .post(
            &url,
            json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": format!("{DATA}/sobjects/Acct__c"), "referenceId": "a2", "body": {"Name": "Rolled"}},
                {"method": "PATCH", "url": format!("{DATA}/sobjects/Deal__c/{deal_id}"), "referenceId": "u2", "body": {"Amount__c": 99, "Name": "Changed"}},
                {"method": "POST", "url": format!("{DATA}/sobjects/Deal__c"), "referenceId": "bad", "body": {"Name": "No amount"}},
                {"method": "GET", "url": format!("{DATA}/limits"), "referenceId": "never"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["compositeResponse"].as_array().unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[2]["httpStatusCode"], 400);
    assert_ne!(r[2]["body"][0]["errorCode"], "PROCESSING_HALTED", "{v}");
    for i in [0, 1, 3] {
        assert_eq!(r[i]["body"][0]["errorCode"], "PROCESSING_HALTED", "{v}");
    }
    assert_eq!(
        count(&admin, "Acct__c").await,
        1,
        "the create was rolled back"
    );
    let (_, deal) = admin
        .get(&format!("{DATA}/sobjects/Deal__c/{deal_id}"))
        .await;
    assert_eq!(
        deal["Amount__c"].as_f64(),
        Some(20.0),
        "the update was undone: {deal}"
    );
    assert_eq!(deal["Name"], "Deal of Acme");

    // Without allOrNone: the others stand; a reference to a failed one halts.
    let (s, v) = admin
        .post(
            &url,
            json!({"compositeRequest": [
                {"method": "POST", "url": format!("{DATA}/sobjects/Deal__c"), "referenceId": "bad", "body": {"Name": "No amount"}},
                {"method": "POST", "url": format!("{DATA}/sobjects/Acct__c"), "referenceId": "ok", "body": {"Name": "Kept"}},
                {"method": "GET", "url": format!("{DATA}/sobjects/Deal__c/@{{bad.id}}"), "referenceId": "dep"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["compositeResponse"].as_array().unwrap();
    assert_eq!(r[1]["httpStatusCode"], 201);
    assert_eq!(r[2]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert!(r[2]["body"][0]["message"]
        .as_str()
        .unwrap()
        .contains("bad.id"));
    assert_eq!(count(&admin, "Acct__c").await, 2);

    // Refused up front: too many, unknown keys, outside the Data API,
    // nested composite, duplicate ids, a DELETE before other writes.
    let many: Vec<Value> = (0..26)
        .map(|i| json!({"method": "GET", "url": format!("{DATA}/limits"), "referenceId": format!("r{i}")}))
        .collect();
    let cases = [
        json!({"compositeRequest": many}),
        json!({"compositeRequest": [], "extra": 1}),
        json!({"compositeRequest": [{"method": "GET", "url": "/services/admin/v1/users", "referenceId": "x"}]}),
        json!({"compositeRequest": [{"method": "GET", "url": format!("{DATA}/../admin/v1/users"), "referenceId": "x"}]}),
        json!({"compositeRequest": [{"method": "FETCH", "url": format!("{DATA}/limits"), "referenceId": "x"}]}),
        json!({"compositeRequest": [{"method": "GET", "url": format!("{DATA}/limits"), "referenceId": "x"}, {"method": "GET", "url": format!("{DATA}/limits"), "referenceId": "X"}]}),
        json!({"allOrNone": true, "compositeRequest": [
            {"method": "DELETE", "url": format!("{DATA}/sobjects/Deal__c/{deal_id}"), "referenceId": "d"},
            {"method": "POST", "url": format!("{DATA}/sobjects/Acct__c"), "referenceId": "a", "body": {"Name": "x"}}
        ]}),
        json!({"allOrNone": "yes", "compositeRequest": []}),
    ];
    for body in cases {
        let (s, v) = admin.post(&url, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v[0]["message"].is_string(), "{v}");
    }
    let (_, v) = admin
        .post(&url, json!({"compositeRequest": [{"method": "POST", "url": format!("{DATA}/composite"), "referenceId": "n", "body": {}}]}))
        .await;
    assert_eq!(
        v["compositeResponse"][0]["httpStatusCode"], 404,
        "no nested composite: {v}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subrequests_run_as_the_caller() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    schema(&admin).await;
    let username = format!("std-{}@example.test", admin.tenant_id);
    admin
        .post(
            "/services/admin/v1/users",
            json!({"username": username, "password": "correct-horse-battery", "profile": "standard"}),
        )
        .await;
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", server.base))
        .form(&[
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", "correct-horse-battery"),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = res.json().await.unwrap();
    let standard = admin.with_token(t["access_token"].as_str().unwrap());
    let (s, v) = standard
        .post(
            &format!("{DATA}/composite"),
            json!({"compositeRequest": [
                {"method": "POST", "url": format!("{DATA}/sobjects/Acct__c"), "referenceId": "a", "body": {"Name": "Nope"}},
                {"method": "GET", "url": "/services/data/v60.0/sobjects", "referenceId": "g"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = &v["compositeResponse"];
    assert!(
        [403, 404].contains(&r[0]["httpStatusCode"].as_u64().unwrap()),
        "no permission to create: {v}"
    );
    assert_eq!(r[1]["httpStatusCode"], 200);
    assert_eq!(count(&admin, "Acct__c").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_graph_tree_and_collections() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    schema(&admin).await;

    // Tree: parents with nested children, references mapped to ids.
    let (s, v) = admin
        .post(
            &format!("{DATA}/composite/tree/Acct__c"),
            json!({"records": [
                {"attributes": {"type": "Acct__c", "referenceId": "ref1"}, "Name": "Tree A",
                 "Deals__r": {"records": [
                    {"attributes": {"type": "Deal__c", "referenceId": "ref2"}, "Name": "D1", "Amount__c": 1},
                    {"attributes": {"type": "Deal__c", "referenceId": "ref3"}, "Name": "D2", "Amount__c": 2}
                 ]}},
                {"attributes": {"type": "Acct__c", "referenceId": "ref4"}, "Name": "Tree B"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["hasErrors"], false);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let id_of = |r: &str| {
        results.iter().find(|x| x["referenceId"] == r).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (_, d1) = admin
        .get(&format!("{DATA}/sobjects/Deal__c/{}", id_of("ref2")))
        .await;
    assert_eq!(d1["Acct__c"], id_of("ref1").as_str());

    // All or none: a bad child leaves nothing behind.
    let before = count(&admin, "Acct__c").await;
    let (s, v) = admin
        .post(
            &format!("{DATA}/composite/tree/Acct__c"),
            json!({"records": [
                {"attributes": {"type": "Acct__c", "referenceId": "p"}, "Name": "Gone",
                 "Deals__r": {"records": [{"attributes": {"type": "Deal__c", "referenceId": "c"}, "Name": "No amount"}]}}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["hasErrors"], true);
    assert_eq!(v["results"][0]["referenceId"], "c");
    assert_eq!(count(&admin, "Acct__c").await, before);
    for bad in [
        json!({"records": [{"Name": "no attributes"}]}),
        json!({"records": [{"attributes": {"type": "Acct__c", "referenceId": "a"}, "Nope__r": {"records": []}}]}),
        json!({"records": [{"attributes": {"type": "Acct__c", "referenceId": "a"}}, {"attributes": {"type": "Acct__c", "referenceId": "a"}}]}),
        json!({"records": (0..201).map(|i| json!({"attributes": {"type": "Acct__c", "referenceId": format!("r{i}")}, "Name": "x"})).collect::<Vec<_>>()}),
    ] {
        let (s, v) = admin
            .post(&format!("{DATA}/composite/tree/Acct__c"), bad.clone())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    assert_eq!(count(&admin, "Acct__c").await, before);

    // Batch: independent, haltOnError stops after the first failure.
    let (s, v) = admin
        .post(
            &format!("{DATA}/composite/batch"),
            json!({"haltOnError": true, "batchRequests": [
                {"method": "GET", "url": format!("v60.0/sobjects/Acct__c/{}", id_of("ref1"))},
                {"method": "POST", "url": "v60.0/sobjects/Deal__c", "richInput": {"Name": "No amount"}},
                {"method": "GET", "url": "v60.0/limits"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["hasErrors"], true);
    let codes: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [200, 400, 412]);
    assert_eq!(v["results"][0]["result"]["Name"], "Tree A");
    assert_eq!(
        v["results"][2]["result"][0]["errorCode"],
        "BATCH_PROCESSING_HALTED"
    );

    // Graph: each graph all-or-none on its own.
    let (s, v) = admin
        .post(
            &format!("{DATA}/composite/graph"),
            json!({"graphs": [
                {"graphId": "g1", "compositeRequest": [
                    {"method": "POST", "url": format!("{DATA}/sobjects/Acct__c"), "referenceId": "a", "body": {"Name": "Graph 1"}},
                    {"method": "POST", "url": format!("{DATA}/sobjects/Deal__c"), "referenceId": "d", "body": {"Name": "G1", "Acct__c": "@{a.id}", "Amount__c": 5}}
                ]},
                {"graphId": "g2", "compositeRequest": [
                    {"method": "POST", "url": format!("{DATA}/sobjects/Acct__c"), "referenceId": "a", "body": {"Name": "Graph 2"}},
                    {"method": "POST", "url": format!("{DATA}/sobjects/Deal__c"), "referenceId": "d", "body": {"Name": "G2", "Acct__c": "@{a.id}"}}
                ]}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["graphs"][0]["isSuccessful"], true, "{v}");
    assert_eq!(v["graphs"][1]["isSuccessful"], false, "{v}");
    let (_, q) = admin
        .get(&format!(
            "{DATA}/query?q={}",
            enc("SELECT Name FROM Acct__c WHERE Name LIKE 'Graph%'")
        ))
        .await;
    assert_eq!(q["totalSize"], 1, "graph 2 rolled back: {q}");
    assert_eq!(q["records"][0]["Name"], "Graph 1");

    // Collections: GET by ids (missing ones null).
    let ids = format!(
        "{},{},{}",
        id_of("ref1"),
        id_of("ref4"),
        "a0000000000000000000000000000000"
    );
    let (s, v) = admin
        .get(&format!(
            "{DATA}/composite/sobjects/Acct__c?ids={ids}&fields=Name"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let names: Vec<Value> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("Tree A"), json!("Tree B"), Value::Null],
        "{v}"
    );
    let (s, _) = admin
        .get(&format!("{DATA}/composite/sobjects/Acct__c?fields=Name"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_recent_and_tooling() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    schema(&admin).await;

    let (s, first) = admin.get(&format!("{DATA}/limits")).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let max = first["DailyApiRequests"]["Max"].as_u64().unwrap();
    let left = first["DailyApiRequests"]["Remaining"].as_u64().unwrap();
    assert!(max > 0 && left < max, "{first}");
    let (_, second) = admin.get(&format!("{DATA}/limits")).await;
    assert!(
        second["DailyApiRequests"]["Remaining"].as_u64().unwrap() < left,
        "each request is counted"
    );
    assert!(second["MosaicQueryRequestsPerSecond"]["Max"]
        .as_u64()
        .is_some());

    let (s, v) = admin.get(&format!("{DATA}/recent")).await;
    assert_eq!((s, v.clone()), (StatusCode::OK, json!([])));
    let id = admin
        .create_record("Acct__c", json!({"Name": "Seen"}))
        .await;
    let acct = server
        .platform
        .meta
        .object(&admin.tenant_id, "Acct__c")
        .await
        .unwrap();
    server
        .platform
        .recent
        .touch_recent(
            &admin.tenant_id,
            &admin.user_id,
            acct.id(),
            &id,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let (s, v) = admin.get(&format!("{DATA}/recent?limit=5")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Name"], "Seen");
    assert_eq!(v[0]["attributes"]["type"], "Acct__c");
    assert_eq!(
        admin.get(&format!("{DATA}/recent?limit=0")).await.0,
        StatusCode::BAD_REQUEST
    );

    // describe with If-Modified-Since: 304 until a definition changes.
    let describe = format!("{}{DATA}/sobjects/Deal__c/describe", server.base);
    let http = reqwest::Client::new();
    let res = http
        .get(&describe)
        .bearer_auth(admin.token.as_ref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let last = res.headers()["last-modified"].to_str().unwrap().to_string();
    let since = |date: &str| {
        http.get(&describe)
            .bearer_auth(admin.token.as_ref().unwrap())
            .header("If-Modified-Since", date.to_string())
            .send()
    };
    assert_eq!(
        since(&last).await.unwrap().status(),
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(
        since("Mon, 01 Jan 2001 00:00:00 GMT")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(since("not a date").await.unwrap().status(), StatusCode::OK);
    // A change elsewhere in the tenant (a child relationship) moves it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    admin
        .create_object(json!({"api_name": "Note__c", "label": "Note", "fields": [
            {"api_name": "Deal__c", "data_type": "lookup", "lookup_object": "Deal__c", "child_relationship_name": "Notes__r"}
        ]}))
        .await;
    let res = since(&last).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Notes__r"));

    // search/suggestions: names starting with the text, LIKE wildcards literal.
    for name in ["Alpha One", "Alpha Two", "alpine", "Beta", "Al%pha"] {
        admin.create_record("Acct__c", json!({"Name": name})).await;
    }
    let sug = |q: &str| format!("{DATA}/search/suggestions?q={}&sobject=Acct__c", enc(q));
    let (s, v) = admin.get(&sug("alp")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["autoSuggestResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{v}");
    assert!(
        names.iter().all(|n| n.to_lowercase().starts_with("alp")),
        "{v}"
    );
    assert_eq!(v["hasMoreResults"], false);
    let (_, v) = admin.get(&format!("{}&limit=1", sug("alp"))).await;
    assert_eq!(
        (
            v["autoSuggestResults"].as_array().unwrap().len(),
            &v["hasMoreResults"]
        ),
        (1, &json!(true))
    );
    let (_, v) = admin.get(&sug("Al%")).await;
    assert_eq!(v["autoSuggestResults"][0]["Name"], "Al%pha", "{v}");
    assert_eq!(v["autoSuggestResults"].as_array().unwrap().len(), 1);
    assert_eq!(admin.get(&sug("a")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        admin
            .get(&format!("{DATA}/search/suggestions?q=ab"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    let tq = |q: &str| format!("{DATA}/tooling/query?q={}", enc(q));
    let (s, v) = admin
        .get(&tq("SELECT Id, DeveloperName, TableEnumOrId, DataType FROM CustomField WHERE TableEnumOrId = 'Deal__c'"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["DeveloperName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Amount") && names.contains(&"Acct"), "{v}");
    assert_eq!(v["records"][0]["attributes"]["type"], "CustomField");
    let (s, v) = admin
        .get(&tq(
            "SELECT Id, DeveloperName FROM CustomObject WHERE DeveloperName = 'Deal'",
        ))
        .await;
    assert_eq!(
        (s, v["totalSize"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    let (s, v) = admin.get(&tq("SELECT Id FROM ApexClass")).await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["INVALID_TYPE".to_string()])
    );
    let (s, v) = admin.get(&tq("SELECT Nope FROM CustomObject")).await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["INVALID_FIELD".to_string()])
    );
    let (s, v) = admin.get(&tq("SELECT FROM")).await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["MALFORMED_QUERY".to_string()])
    );
    server.stop().await;
}
