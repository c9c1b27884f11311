//! Index and unique changes while records are written: writes that run
//! during the change, and writes of a second instance whose metadata cache
//! still holds the old definition, keep the pivots — an indexed filter finds
//! every record and no duplicate passes a new unique constraint. Both
//! backends (`MOSAIC_TEST_BACKEND=postgres`).

mod common;

use common::*;
use mosaic_runtime::{Caller, Platform};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

async fn soql_ids(c: &Client, soql: &str) -> Vec<String> {
    let (s, v) = c.get(&format!("{DATA}/query?q={}", urlencode(soql))).await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_instance_and_concurrent_writers_keep_the_pivots_of_an_index_change() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    admin
        .create_object(json!({"api_name": "Item__c", "label": "Item", "fields": [
            {"api_name": "Code__c", "data_type": "text", "length": 40},
            {"api_name": "Sku__c", "data_type": "text", "length": 40}
        ]}))
        .await;
    // A second instance on the same databases; its first write caches the
    // definition in which neither field is indexed.
    let other = Arc::new(Platform::open(server.same_databases()).await.unwrap());
    let caller = Caller::system(&admin.tenant_id, &admin.user_id);
    other
        .create(
            &caller,
            "Item__c",
            &body(json!({"Name": "warm", "Code__c": "warm", "Sku__c": "warm"})),
        )
        .await
        .unwrap();

    // Writers on the first instance run while the index is built.
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let c = admin.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..15 {
                    ids.push(
                        c.create_record(
                            "Item__c",
                            json!({"Name": "during", "Code__c": "shared", "Sku__c": format!("d-{w}-{i}")}),
                        )
                        .await,
                    );
                }
                ids
            })
        })
        .collect();
    let (s, e) = admin
        .patch(
            &format!("{META}/objects/Item__c/fields/Code__c"),
            json!({"is_indexed": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let mut expected = Vec::new();
    for w in writers {
        expected.extend(w.await.unwrap());
    }
    // The second instance still holds the definition without the index
    // (no Redis: nothing told it) and writes with it after the change.
    let cached = other
        .meta
        .object(&admin.tenant_id, "Item__c")
        .await
        .unwrap();
    assert!(
        !cached.field("Code__c").unwrap().is_indexed,
        "the second instance's cache is not stale: the test proves nothing"
    );
    for i in 0..5 {
        let id = other
            .create(
                &caller,
                "Item__c",
                &body(json!({"Name": "stale", "Code__c": "shared", "Sku__c": format!("s-{i}")})),
            )
            .await
            .unwrap();
        expected.push(id);
    }
    // And changes a record's code to the indexed value.
    let moved = admin
        .create_record("Item__c", json!({"Name": "moved", "Code__c": "elsewhere"}))
        .await;
    other
        .update(
            &caller,
            "Item__c",
            &moved,
            &body(json!({"Code__c": "shared"})),
        )
        .await
        .unwrap();
    expected.push(moved);
    let mut found = soql_ids(&admin, "SELECT Id FROM Item__c WHERE Code__c = 'shared'").await;
    found.sort();
    expected.sort();
    assert_eq!(found.len(), 15 * 3 + 5 + 1);
    assert_eq!(found, expected, "the indexed filter missed records");

    // Unique: the stale instance still believes Sku__c accepts duplicates.
    let (s, e) = admin
        .patch(
            &format!("{META}/objects/Item__c/fields/Sku__c"),
            json!({"is_unique": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let cached = other
        .meta
        .object(&admin.tenant_id, "Item__c")
        .await
        .unwrap();
    assert!(!cached.field("Sku__c").unwrap().is_unique);
    let dup = other
        .create(
            &caller,
            "Item__c",
            &body(json!({"Name": "dup", "Sku__c": "S-1"})),
        )
        .await
        .expect_err("a duplicate passed the unique constraint");
    assert_eq!(
        dup.0[0].code,
        mosaic_types::ErrorCode::DUPLICATE_VALUE,
        "{dup:?}"
    );
    let first = other
        .create(
            &caller,
            "Item__c",
            &body(json!({"Name": "fresh", "Sku__c": "new-1"})),
        )
        .await
        .unwrap();
    let (s, e) = admin
        .post(
            &format!("{DATA}/sobjects/Item__c"),
            json!({"Name": "again", "Sku__c": "NEW-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(codes(&e), vec!["DUPLICATE_VALUE"]);
    assert_eq!(
        soql_ids(&admin, "SELECT Id FROM Item__c WHERE Sku__c = 'new-1'").await,
        vec![first]
    );
    other.close();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_master_removes_a_large_family_through_the_api() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    admin
        .create_object(json!({"api_name": "Order__c", "label": "Order", "fields": []}))
        .await;
    admin
        .create_object(json!({"api_name": "Line__c", "label": "Line", "fields": [
            {"api_name": "Order__c", "data_type": "master_detail", "lookup_object": "Order__c"}
        ]}))
        .await;
    let order = admin
        .create_record("Order__c", json!({"Name": "big"}))
        .await;
    let keep = admin
        .create_record("Order__c", json!({"Name": "small"}))
        .await;
    let kept_line = admin
        .create_record("Line__c", json!({"Name": "k", "Order__c": keep}))
        .await;
    let mut batch = Vec::new();
    for i in 0..450 {
        batch.push(
            json!({"attributes": {"type": "Line__c"}, "Name": format!("l{i}"), "Order__c": order}),
        );
    }
    for chunk in batch.chunks(200) {
        let (s, v) = admin
            .post(
                &format!("{DATA}/composite/sobjects"),
                json!({"allOrNone": true, "records": chunk}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let count = |c: Client, q: &'static str| async move {
        let (s, v) = c.get(&format!("{DATA}/query?q={}", urlencode(q))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["totalSize"].as_u64().unwrap()
    };
    assert_eq!(count(admin.clone(), "SELECT Id FROM Line__c").await, 451);
    let (s, v) = admin
        .delete(&format!("{DATA}/sobjects/Order__c/{order}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(count(admin.clone(), "SELECT Id FROM Line__c").await, 1);
    let (s, _) = admin
        .get(&format!("{DATA}/sobjects/Line__c/{kept_line}"))
        .await;
    assert_eq!(s, StatusCode::OK);
    server.stop().await;
}
