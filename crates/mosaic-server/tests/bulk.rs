//! The Bulk API 2.0 over HTTP (decision 0035), on SQLite and — with
//! `MOSAIC_TEST_BACKEND=postgres` — PostgreSQL: an insert job of 10,000
//! rows with rows refused by a validation rule and a malformed row, upsert
//! by external id, delete (to the recycle bin) and hardDelete (not), query
//! jobs paged with `Sforce-Locator`, and the refusals of bad input.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const JOBS: &str = "/services/data/v60.0/jobs";

async fn items(c: &Client) {
    c.create_object(json!({"api_name": "Item__c", "fields": [
        {"api_name": "Code__c", "data_type": "text", "length": 40, "is_unique": true, "is_external_id": true},
        {"api_name": "Qty__c", "data_type": "number", "precision": 18, "scale": 0}
    ]}))
    .await;
    let (s, v) = c
        .post(
            &format!("{META}/objects/Item__c/validations"),
            json!({"name": "Qty_Not_Negative", "formula_expression": "Qty__c < 0", "error_message": "Qty cannot be negative", "active": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn create_job(c: &Client, body: Value) -> String {
    let (s, v) = c.post(&format!("{JOBS}/ingest"), body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "Open", "{v}");
    v["id"].as_str().unwrap().to_string()
}

async fn upload(c: &Client, id: &str, csv: String) -> (StatusCode, String) {
    let res = c
        .http
        .put(format!("{}{JOBS}/ingest/{id}/batches", c.base))
        .bearer_auth(c.token.as_deref().unwrap())
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

async fn get_text(c: &Client, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let res = c
        .http
        .get(format!("{}{path}", c.base))
        .bearer_auth(c.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    let (s, h) = (res.status(), res.headers().clone());
    (s, h, res.text().await.unwrap())
}

/// Closes the job and waits for it to finish; returns its final info.
async fn run(c: &Client, kind: &str, id: &str) -> Value {
    if kind == "ingest" {
        let (s, v) = c
            .patch(
                &format!("{JOBS}/ingest/{id}"),
                json!({"state": "UploadComplete"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    for _ in 0..1200 {
        let (s, v) = c.get(&format!("{JOBS}/{kind}/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if ["JobComplete", "Failed", "Aborted"].contains(&v["state"].as_str().unwrap()) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish");
}

fn rows(csv: &str) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv.as_bytes());
    r.records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

async fn count(c: &Client, soql: &str, all: bool) -> u64 {
    let path = if all { "queryAll" } else { "query" };
    let (s, v) = c.get(&format!("{DATA}/{path}?q={}", enc(soql))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["totalSize"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_job_saves_valid_rows_and_reports_refused_ones() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    items(&c).await;
    let id = create_job(
        &c,
        json!({"object": "Item__c", "operation": "insert", "lineEnding": "LF"}),
    )
    .await;
    let mut csv = String::from("Name,Code__c,Qty__c\n");
    for i in 0..10_000 {
        let qty = if i % 100 == 7 { -1 } else { i };
        csv.push_str(&format!("\"Item, {i}\",C-{i},{qty}\n"));
    }
    csv.push_str("Broken,C-x\n"); // one column short
    let (s, body) = upload(&c, &id, csv).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let info = run(&c, "ingest", &id).await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert_eq!(info["numberRecordsProcessed"], 10_001, "{info}");
    assert_eq!(info["numberRecordsFailed"], 101, "{info}");
    assert_eq!(count(&c, "SELECT Id FROM Item__c", false).await, 9_900);

    let (s, h, ok) = get_text(&c, &format!("{JOBS}/ingest/{id}/successfulResults/")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/csv"));
    let ok = rows(&ok);
    assert_eq!(
        ok[0],
        ["sf__Id", "sf__Created", "Name", "Code__c", "Qty__c"]
    );
    assert_eq!(ok.len(), 9_901);
    assert_eq!(ok[1][1], "true");
    assert_eq!(ok[1][2], "Item, 0");
    let (s, v) = c
        .get(&format!("{DATA}/sobjects/Item__c/{}", ok[1][0]))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["Code__c"], "C-0");

    let (_, _, bad) = get_text(&c, &format!("{JOBS}/ingest/{id}/failedResults/")).await;
    let bad = rows(&bad);
    assert_eq!(bad[0], ["sf__Id", "sf__Error", "Name", "Code__c", "Qty__c"]);
    assert_eq!(bad.len(), 102);
    assert!(
        bad[1][1].starts_with("FIELD_CUSTOM_VALIDATION_EXCEPTION:Qty cannot be negative"),
        "{:?}",
        bad[1]
    );
    assert_eq!(bad[1][3], "C-7");
    let last = bad.last().unwrap();
    assert!(
        last[1].contains("row 10001") && last[1].contains("2 values"),
        "{last:?}"
    );

    let (_, _, un) = get_text(&c, &format!("{JOBS}/ingest/{id}/unprocessedrecords/")).await;
    assert_eq!(
        rows(&un).len(),
        1,
        "a finished job has nothing unprocessed: {un}"
    );

    // The job is listed, and can be deleted once finished.
    let (s, v) = c.get(&format!("{JOBS}/ingest")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str()),
        "{v}"
    );
    let (s, _) = c.delete(&format!("{JOBS}/ingest/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = c.get(&format!("{JOBS}/ingest/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_matches_on_the_external_id_and_nulls_with_na() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    items(&c).await;
    let a = c
        .create_record("Item__c", json!({"Name": "a", "Code__c": "A", "Qty__c": 1}))
        .await;
    let id = create_job(
        &c,
        json!({"object": "Item__c", "operation": "upsert", "externalIdFieldName": "Code__c"}),
    )
    .await;
    let (s, b) = upload(&c, &id, "Code__c,Name,Qty__c\nA,,#N/A\nB,bee,2\n".into()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let info = run(&c, "ingest", &id).await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    let (_, _, ok) = get_text(&c, &format!("{JOBS}/ingest/{id}/successfulResults")).await;
    let ok = rows(&ok);
    assert_eq!(ok[1][..2], [a.clone(), "false".into()]);
    assert_eq!(ok[2][1], "true");
    let (_, v) = c.get(&format!("{DATA}/sobjects/Item__c/{a}")).await;
    assert_eq!(v["Name"], "a", "an empty cell leaves the field as it is");
    assert_eq!(v["Qty__c"], Value::Null, "#N/A empties the field");
    assert_eq!(
        count(&c, "SELECT Id FROM Item__c WHERE Code__c = 'B'", false).await,
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_goes_to_the_recycle_bin_and_hard_delete_does_not() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    items(&c).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            c.create_record("Item__c", json!({"Name": format!("n{i}")}))
                .await,
        );
    }
    let soft = create_job(&c, json!({"object": "Item__c", "operation": "delete"})).await;
    upload(
        &c,
        &soft,
        format!("Id\n{}\n{}\n{}\n", ids[0], ids[1], ids[2]),
    )
    .await;
    assert_eq!(run(&c, "ingest", &soft).await["numberRecordsFailed"], 0);
    let hard = create_job(&c, json!({"object": "Item__c", "operation": "hardDelete"})).await;
    upload(&c, &hard, format!("Id\n{}\n{}\n", ids[3], ids[4])).await;
    let info = run(&c, "ingest", &hard).await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    assert_eq!(count(&c, "SELECT Id FROM Item__c", false).await, 1);
    assert_eq!(
        count(&c, "SELECT Id FROM Item__c WHERE IsDeleted = true", true).await,
        3,
        "the soft-deleted rows are in the bin, the hard-deleted ones are gone"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_job_pages_its_csv_with_locators() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    items(&c).await;
    let id = create_job(&c, json!({"object": "Item__c"})).await;
    let mut csv = String::from("Name,Qty__c\n");
    for i in 0..2_500 {
        csv.push_str(&format!("q{i},{i}\n"));
    }
    upload(&c, &id, csv).await;
    run(&c, "ingest", &id).await;
    let (s, v) = c
        .post(
            &format!("{JOBS}/query"),
            json!({"operation": "query", "query": "SELECT Id, Name, Qty__c FROM Item__c"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let qid = v["id"].as_str().unwrap().to_string();
    let info = run(&c, "query", &qid).await;
    assert_eq!(info["numberRecordsProcessed"], 2_500, "{info}");
    let mut seen = std::collections::HashSet::new();
    let mut locator: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &locator {
            Some(l) => format!("{JOBS}/query/{qid}/results?maxRecords=1000&locator={l}"),
            None => format!("{JOBS}/query/{qid}/results?maxRecords=1000"),
        };
        let (s, h, body) = get_text(&c, &path).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let r = rows(&body);
        assert_eq!(r[0], ["Id", "Name", "Qty__c"]);
        let n: usize = h["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(n, r.len() - 1);
        for row in &r[1..] {
            assert!(seen.insert(row[0].clone()), "a row twice: {row:?}");
        }
        pages += 1;
        match h["sforce-locator"].to_str().unwrap() {
            "null" => break,
            l => locator = Some(l.to_string()),
        }
    }
    assert_eq!((pages, seen.len()), (3, 2_500));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_salesforce_codes() {
    let server = TestServer::start().await;
    let c = server.tenant().await;
    items(&c).await;
    let (s, v) = c
        .post(
            &format!("{JOBS}/ingest"),
            json!({"object": "Item__c", "operation": "merge"}),
        )
        .await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["INVALIDJOB".to_string()]),
        "{v}"
    );
    let (s, v) = c
        .post(&format!("{JOBS}/ingest"), json!({"object": "Nope__c"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = c
        .post(
            &format!("{JOBS}/ingest"),
            json!({"object": "Item__c", "operation": "upsert"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    let id = create_job(&c, json!({"object": "Item__c"})).await;
    // Closing before any data, or asking for a state a client cannot set.
    let (s, v) = c
        .patch(
            &format!("{JOBS}/ingest/{id}"),
            json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(
        (s, codes(&v)),
        (StatusCode::BAD_REQUEST, vec!["INVALIDJOBSTATE".to_string()]),
        "{v}"
    );
    let (s, v) = c
        .patch(
            &format!("{JOBS}/ingest/{id}"),
            json!({"state": "JobComplete"}),
        )
        .await;
    assert_eq!(codes(&v), ["INVALIDJOBSTATE"], "{s} {v}");
    // An unknown column is named.
    let (s, body) = upload(&c, &id, "Name,Colour__c\nx,red\n".into()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Colour__c"), "{body}");
    // Not CSV.
    let res = c
        .http
        .put(format!("{}{JOBS}/ingest/{id}/batches", c.base))
        .bearer_auth(c.token.as_deref().unwrap())
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Declared too large: refused before a byte is read.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = c.base.trim_start_matches("http://").to_string();
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "PUT {JOBS}/ingest/{id}/batches HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: 200000000\r\nConnection: close\r\n\r\n",
            c.token.as_deref().unwrap()
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 12];
        tcp.read_exact(&mut answer).await.unwrap();
        assert_eq!(
            &answer[9..12],
            b"413",
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    // After the refusals the job still takes a good upload.
    let (s, body) = upload(&c, &id, "Name\nfine\n".into()).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = upload(&c, &id, "Name\nagain\n".into()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "one upload per job: {body}");
    // Deleting an unfinished job is refused.
    let (s, v) = c.delete(&format!("{JOBS}/ingest/{id}")).await;
    assert_eq!(codes(&v), ["INVALIDJOBSTATE"], "{s} {v}");

    // Another tenant's job is not found; so is the wrong kind.
    let other = server.tenant().await;
    let (s, _) = other.get(&format!("{JOBS}/ingest/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = c.get(&format!("{JOBS}/query/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = c
        .patch(&format!("{JOBS}/ingest/{id}"), json!({"state": "Aborted"}))
        .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("Aborted")));
    let (_, _, un) = get_text(&c, &format!("{JOBS}/ingest/{id}/unprocessedrecords")).await;
    assert_eq!(
        rows(&un),
        [vec!["Name".to_string()]],
        "an aborted job's data is dropped"
    );
    server.stop().await;
}
