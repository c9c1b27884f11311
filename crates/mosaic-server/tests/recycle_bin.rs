//! The recycle bin over HTTP (decision 0029), on SQLite and — with
//! `MOSAIC_TEST_BACKEND=postgres` — PostgreSQL: an undelete restores
//! exactly what the delete took (a content hash over the rows, pivot rows,
//! search hits and lookups before the delete and after the undelete),
//! conflicts change nothing, `queryAll` shows binned records and `query`
//! never does, emptying and the scheduled purge remove them for good, and
//! the replication endpoints answer in Salesforce's shapes.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

async fn family(c: &Client) {
    c.create_object(json!({"api_name": "Parent__c", "fields": [
        {"api_name": "Code__c", "data_type": "text", "length": 40, "is_unique": true, "is_external_id": true},
        {"api_name": "Note__c", "data_type": "text", "length": 80}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Child__c", "fields": [
        {"api_name": "Master__c", "data_type": "master_detail", "lookup_object": "Parent__c"},
        {"api_name": "Sku__c", "data_type": "text", "length": 40, "is_unique": true}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Grand__c", "fields": [
        {"api_name": "Child__c", "data_type": "master_detail", "lookup_object": "Child__c"}
    ]}))
    .await;
    c.create_object(json!({"api_name": "Friend__c", "fields": [
        {"api_name": "Pal__c", "data_type": "lookup", "lookup_object": "Parent__c"}
    ]}))
    .await;
}

struct Tree {
    parent: String,
    children: Vec<String>,
    grands: Vec<String>,
    friend: String,
}

async fn tree(c: &Client, tag: &str) -> Tree {
    let parent = c
        .create_record(
            "Parent__c",
            json!({"Name": format!("zebra {tag}"), "Code__c": format!("P-{tag}"), "Note__c": "kept"}),
        )
        .await;
    let mut children = Vec::new();
    let mut grands = Vec::new();
    for i in 0..3 {
        let ch = c
            .create_record(
                "Child__c",
                json!({"Name": format!("child {tag} {i}"), "Master__c": parent, "Sku__c": format!("S-{tag}-{i}")}),
            )
            .await;
        for j in 0..2 {
            grands.push(
                c.create_record(
                    "Grand__c",
                    json!({"Name": format!("grand {tag} {i} {j}"), "Child__c": ch}),
                )
                .await,
            );
        }
        children.push(ch);
    }
    let friend = c
        .create_record(
            "Friend__c",
            json!({"Name": format!("friend {tag}"), "Pal__c": parent}),
        )
        .await;
    Tree {
        parent,
        children,
        grands,
        friend,
    }
}

/// A digest of everything the delete of `t.parent` touches: every row of
/// the tree and the friend (all slots, system columns), the pivot rows of
/// every indexed / unique slot (looked up by value), and search hits.
async fn content_hash(server: &TestServer, c: &Client, t: &Tree) -> String {
    let p = &server.platform;
    let mut text = String::new();
    for (object, ids) in [
        ("Parent__c", vec![t.parent.clone()]),
        ("Child__c", t.children.clone()),
        ("Grand__c", t.grands.clone()),
        ("Friend__c", vec![t.friend.clone()]),
    ] {
        let obj = p.meta.object(&c.tenant_id, object).await.unwrap();
        let specs: Vec<_> = obj
            .def
            .fields
            .iter()
            .filter_map(mosaic_meta::service::index_spec)
            .collect();
        for id in ids {
            let row = p
                .records
                .get(&c.tenant_id, obj.id(), &id, &obj.slots())
                .await
                .unwrap()
                .expect("row");
            text.push_str(&format!("{row:?}\n"));
            for spec in &specs {
                if let Some(v) = row.value(spec.slot) {
                    let mut hits = p
                        .records
                        .find_by_index(&c.tenant_id, obj.id(), spec, v)
                        .await
                        .unwrap();
                    hits.sort();
                    text.push_str(&format!("pivot {} {v:?} {hits:?}\n", spec.field));
                }
            }
        }
    }
    let (s, v) = c
        .get(&format!(
            "{DATA}/search?q={}",
            enc("FIND {zebra} RETURNING Parent__c(Id)")
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    text.push_str(&format!("search {}\n", v["searchRecords"]));
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn query_ids(c: &Client, resource: &str, soql: &str) -> Vec<(String, bool)> {
    let (s, v) = c.get(&format!("{DATA}/{resource}?q={}", enc(soql))).await;
    assert_eq!(s, StatusCode::OK, "{soql}: {v}");
    let mut out: Vec<(String, bool)> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["Id"].as_str().unwrap().to_string(),
                r["IsDeleted"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelete_restores_exactly_what_was_deleted() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    family(&c).await;
    let t = tree(&c, "a").await;
    let before = content_hash(&server, &c, &t).await;

    let (s, v) = c
        .delete(&format!("{DATA}/sobjects/Parent__c/{}", t.parent))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_ne!(content_hash(&server, &c, &t).await, before);

    // Gone from reads, query, search and unique checks; the lookup cleared.
    let (s, _) = c
        .get(&format!("{DATA}/sobjects/Child__c/{}", t.children[0]))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(query_ids(&c, "query", "SELECT Id FROM Grand__c")
        .await
        .is_empty());
    let all = query_ids(&c, "queryAll", "SELECT Id, IsDeleted FROM Grand__c").await;
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|(_, d)| *d), "{all:?}");
    let deleted = query_ids(
        &c,
        "queryAll",
        "SELECT Id, IsDeleted FROM Child__c WHERE IsDeleted = true",
    )
    .await;
    assert_eq!(deleted.len(), 3);
    let (_, f) = c
        .get(&format!("{DATA}/sobjects/Friend__c/{}", t.friend))
        .await;
    assert_eq!(f["Pal__c"], Value::Null, "{f}");

    // Only the record deleted directly can be undeleted.
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Child__c/{}/undelete", t.children[0]),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(codes(&v), ["UNDELETE_FAILED"]);
    assert!(v[0]["message"].as_str().unwrap().contains(&t.parent), "{v}");

    // A body other than {} is refused, naming the field.
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Parent__c/{}/undelete", t.parent),
            json!({"x": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Parent__c/{}/undelete", t.parent),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["id"], t.parent.as_str());
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["restored"], 10);
    assert_eq!(content_hash(&server, &c, &t).await, before);
    let (_, f) = c
        .get(&format!("{DATA}/sobjects/Friend__c/{}", t.friend))
        .await;
    assert_eq!(f["Pal__c"], t.parent.as_str(), "{f}");
    assert!(query_ids(
        &c,
        "queryAll",
        "SELECT Id FROM Child__c WHERE IsDeleted = true"
    )
    .await
    .is_empty());

    // Undeleting a live record is an error.
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Parent__c/{}/undelete", t.parent),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(codes(&v), ["UNDELETE_FAILED"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_fail_and_change_nothing() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    family(&c).await;
    let t = tree(&c, "b").await;
    let (s, _) = c
        .delete(&format!("{DATA}/sobjects/Parent__c/{}", t.parent))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // A child's unique key taken meanwhile (the freed value is reusable).
    let other = c
        .create_record("Parent__c", json!({"Name": "other", "Code__c": "O-b"}))
        .await;
    let taker = c
        .create_record(
            "Child__c",
            json!({"Name": "taker", "Master__c": other, "Sku__c": "S-b-2"}),
        )
        .await;
    let binned = content_hash(&server, &c, &t).await;
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Parent__c/{}/undelete", t.parent),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(codes(&v), ["DUPLICATE_VALUE"]);
    assert_eq!(
        content_hash(&server, &c, &t).await,
        binned,
        "nothing changed"
    );
    assert_eq!(
        query_ids(&c, "query", "SELECT Id FROM Child__c")
            .await
            .len(),
        1
    );

    // Freed again: the undelete goes through.
    let (s, _) = c.delete(&format!("{DATA}/sobjects/Child__c/{taker}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Parent__c/{}/undelete", t.parent),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A child deleted alone, then its parent: the child names the parent.
    let (s, _) = c
        .delete(&format!("{DATA}/sobjects/Child__c/{}", t.children[1]))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c
        .delete(&format!("{DATA}/sobjects/Parent__c/{}", t.parent))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Child__c/{}/undelete", t.children[1]),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(codes(&v), ["UNDELETE_FAILED"]);
    let msg = v[0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&t.parent) && msg.contains("recycle bin"),
        "{msg}"
    );

    // The parent purged for good: the child's parent is gone.
    let (s, v) = c
        .post(
            &format!("{DATA}/recycleBin/empty"),
            json!({"ids": [t.parent]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["success"], true, "{v}");
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Child__c/{}/undelete", t.children[1]),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v[0]["message"]
            .as_str()
            .unwrap()
            .contains("no longer exists"),
        "{v}"
    );
    // Purged: the parent's tree; still binned: the child deleted alone
    // (with its two grandchildren) and the taker.
    assert_eq!(
        query_ids(&c, "queryAll", "SELECT Id FROM Grand__c")
            .await
            .len(),
        2
    );
    let mut left: Vec<String> = query_ids(&c, "queryAll", "SELECT Id FROM Child__c")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    left.sort();
    let mut want = vec![t.children[1].clone(), taker.clone()];
    want.sort();
    assert_eq!(left, want);

    // Unknown ids and bad input.
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Parent__c/{}/undelete", t.parent),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Parent__c/nonsense/undelete"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = c
        .post(&format!("{DATA}/recycleBin/empty"), json!({"ids": []}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = c
        .post(
            &format!("{DATA}/recycleBin/empty"),
            json!({"ids": [t.friend]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["success"], false, "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelete_needs_access_and_the_bin_lists_per_user() {
    let server = TestServer::start().await;
    let admin = server.tenant().await;
    admin
        .create_object(json!({"api_name": "Memo__c", "sharing_model": "private"}))
        .await;
    let memo = admin.create_record("Memo__c", json!({"Name": "m"})).await;
    let (s, _) = admin
        .delete(&format!("{DATA}/sobjects/Memo__c/{memo}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = admin
        .get(&format!("{DATA}/recycleBin?object=Memo__c"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["records"][0]["id"], memo.as_str(), "{v}");
    assert_eq!(v["records"][0]["sobject"], "Memo__c");
    assert_eq!(v["records"][0]["deletedById"], admin.user_id.as_str());
    let (s, v) = admin.get(&format!("{DATA}/recycleBin?limit=0")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let anon = server.anonymous();
    let (s, _) = anon
        .post(
            &format!("{DATA}/sobjects/Memo__c/{memo}/undelete"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = admin
        .post(
            &format!("{DATA}/sobjects/Memo__c/{memo}/undelete"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_purge_removes_what_outlived_the_retention() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    family(&c).await;
    let t = tree(&c, "c").await;
    let keep = c.create_record("Parent__c", json!({"Name": "keep"})).await;
    let (s, _) = c
        .delete(&format!("{DATA}/sobjects/Parent__c/{}", t.parent))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.delete(&format!("{DATA}/sobjects/Parent__c/{keep}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let p = &server.platform;
    let now = chrono::Utc::now();
    // Within the retention: nothing goes.
    assert_eq!(p.purge_recycle_bins(now).await.unwrap(), 0);
    assert_eq!(
        query_ids(&c, "queryAll", "SELECT Id FROM Grand__c")
            .await
            .len(),
        6
    );
    // After it: the tree and the other record go, the live friend stays.
    let purged = p
        .purge_recycle_bins(now + chrono::Duration::days(16))
        .await
        .unwrap();
    assert_eq!(purged, 11);
    for o in ["Parent__c", "Child__c", "Grand__c"] {
        assert!(
            query_ids(&c, "queryAll", &format!("SELECT Id FROM {o}"))
                .await
                .is_empty(),
            "{o}"
        );
    }
    assert_eq!(
        query_ids(&c, "query", "SELECT Id FROM Friend__c")
            .await
            .len(),
        1
    );
    let (s, v) = c
        .post(
            &format!("{DATA}/sobjects/Parent__c/{}/undelete", t.parent),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // The whole platform purge reports it too.
    assert_eq!(
        p.purge_expired(now + chrono::Duration::days(16))
            .await
            .unwrap()
            .binned_records,
        0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_updated_and_deleted() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    family(&c).await;
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let end = chrono::Utc::now() + chrono::Duration::minutes(5);
    let t = tree(&c, "d").await;
    let range = format!(
        "start={}&end={}",
        enc(&start.to_rfc3339()),
        enc(&end.to_rfc3339())
    );
    let (s, v) = c
        .get(&format!("{DATA}/sobjects/Child__c/updated?{range}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut ids: Vec<String> = serde_json::from_value(v["ids"].clone()).unwrap();
    ids.sort();
    let mut want = t.children.clone();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        v["latestDateCovered"].as_str().unwrap().ends_with("+0000"),
        "{v}"
    );

    let (s, _) = c
        .delete(&format!("{DATA}/sobjects/Parent__c/{}", t.parent))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = c
        .get(&format!("{DATA}/sobjects/Child__c/deleted?{range}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut got: Vec<String> = v["deletedRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["deletedDate"].as_str().unwrap().ends_with("+0000"));
            r["id"].as_str().unwrap().to_string()
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert!(v["earliestDateAvailable"].is_string() && v["latestDateCovered"].is_string());
    let (_, v) = c
        .get(&format!("{DATA}/sobjects/Child__c/updated?{range}"))
        .await;
    assert_eq!(v["ids"], json!([]), "deleted records are not updated ones");

    // Salesforce's refusals.
    for bad in [
        format!("start={}", enc(&start.to_rfc3339())),
        format!("start=yesterday&end={}", enc(&end.to_rfc3339())),
        format!(
            "start={}&end={}",
            enc(&end.to_rfc3339()),
            enc(&start.to_rfc3339())
        ),
        format!(
            "start={}&end={}",
            enc(&(start - chrono::Duration::days(40)).to_rfc3339()),
            enc(&end.to_rfc3339())
        ),
    ] {
        let (s, v) = c
            .get(&format!("{DATA}/sobjects/Child__c/deleted?{bad}"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(codes(&v), ["INVALID_REPLICATION_DATE"], "{bad}");
    }
    let (s, _) = c
        .get(&format!("{DATA}/sobjects/Nope__c/updated?{range}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}
