//! The Bulk API with the real binary: `mosaic import` end to end against a
//! running server, and an ingest job whose server is killed (SIGKILL)
//! mid-run finishing exactly once after a restart (decision 0035).

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

const JOBS: &str = "/services/data/v60.0/jobs/ingest";

async fn items(http: &reqwest::Client, url: &str, token: &str) {
    let res = http
        .post(format!("{url}/services/metadata/v1/objects"))
        .bearer_auth(token)
        .json(&json!({"api_name": "Item__c", "fields": [
            {"api_name": "Qty__c", "data_type": "number", "precision": 18, "scale": 0}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = http
        .post(format!("{url}/services/metadata/v1/objects/Item__c/validations"))
        .bearer_auth(token)
        .json(&json!({"name": "Qty_Not_Negative", "formula_expression": "Qty__c < 0", "error_message": "Qty cannot be negative", "active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

async fn count(http: &reqwest::Client, url: &str, token: &str) -> u64 {
    let v: Value = http
        .get(format!(
            "{url}/services/data/v60.0/query?q=SELECT+COUNT()+FROM+Item__c"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["totalSize"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosaic_import_loads_a_file_and_keeps_the_failed_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = create_tenant(dir.path(), &[], "imp");
    let server = start(dir.path());
    let http = reqwest::Client::new();
    items(&http, &server.url, &token).await;
    let file = dir.path().join("items.csv");
    let mut csv = String::from("Name,Qty__c\n");
    for i in 0..1_000 {
        let qty = if i == 500 { -5 } else { i };
        csv.push_str(&format!("item {i},{qty}\n"));
    }
    std::fs::write(&file, csv).unwrap();
    let out = Command::new(bin())
        .arg("import")
        .arg(&file)
        .args([
            "--object",
            "Item__c",
            "--url",
            &server.url,
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1000 records processed, 999 saved, 1 failed"),
        "{stdout}"
    );
    let failed = std::fs::read_to_string(dir.path().join("items.csv.failed.csv")).unwrap();
    let lines: Vec<&str> = failed.lines().collect();
    assert_eq!(lines.len(), 2, "{failed}");
    assert!(
        lines[1].contains("Qty cannot be negative") && lines[1].contains("item 500"),
        "{failed}"
    );
    assert_eq!(count(&http, &server.url, &token).await, 999);

    // Bad arguments are refused before anything is sent.
    let out = Command::new(bin())
        .arg("import")
        .arg(&file)
        .args([
            "--object",
            "Item__c",
            "--url",
            &server.url,
            "--token",
            &token,
            "--operation",
            "upsert",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--external-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_mid_run_finishes_exactly_once_after_a_restart() {
    const ROWS: u64 = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = create_tenant(dir.path(), &[], "kill");
    let env = [("MOSAIC_BULK_LEASE_SECS", "2")];
    let mut server = start_with(dir.path(), &env);
    let http = reqwest::Client::new();
    items(&http, &server.url, &token).await;
    let job: Value = http
        .post(format!("{}{JOBS}", server.url))
        .bearer_auth(&token)
        .json(&json!({"object": "Item__c"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let mut csv = String::from("Name,Qty__c\n");
    for i in 0..ROWS {
        csv.push_str(&format!("row {i},{i}\n"));
    }
    let res = http
        .put(format!("{}{JOBS}/{id}/batches", server.url))
        .bearer_auth(&token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    http.patch(format!("{}{JOBS}/{id}", server.url))
        .bearer_auth(&token)
        .json(&json!({"state": "UploadComplete"}))
        .send()
        .await
        .unwrap();
    // Kill the server once some but not all chunks are recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v: Value = http
            .get(format!("{}{JOBS}/{id}", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = v["numberRecordsProcessed"].as_u64().unwrap();
        assert!(n < ROWS, "the job finished before the kill: {v}");
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let server = start_with(dir.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(300);
    let info = loop {
        let v: Value = http
            .get(format!("{}{JOBS}/{id}", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "JobComplete" {
            break v;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(info["numberRecordsProcessed"], ROWS, "{info}");
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    assert!(info["retries"].as_u64().unwrap() >= 1, "{info}");
    assert_eq!(
        count(&http, &server.url, &token).await,
        ROWS,
        "every row saved once"
    );
    let ok = http
        .get(format!("{}{JOBS}/{id}/successfulResults", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(ok.lines().count() as u64, ROWS + 1);
}
