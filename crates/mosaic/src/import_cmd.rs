//! `mosaic import FILE --object O --url URL --token TOKEN`: loads a CSV file
//! through a running server's Bulk API 2.0 as the token's user — create
//! the job, stream the file up, close it, follow `numberRecordsProcessed`
//! with a progress bar, then print the summary and download the failed
//! rows to `FILE.failed.csv`.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The API version the command speaks.
const API: &str = "v60.0";
/// Largest file one job takes (the server's per-upload limit).
const MAX_FILE_BYTES: u64 = 150 * 1024 * 1024;
/// How often the job's progress is read.
const POLL: Duration = Duration::from_millis(500);
/// Timeout of each request other than the upload.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args)]
pub struct ImportArgs {
    /// The CSV file: a header row of field API names, then one record a line.
    file: PathBuf,
    /// The object's API name (`Account`, `Invoice__c`).
    #[arg(long)]
    object: String,
    /// The server's base URL (`https://mosaic.example.com`).
    #[arg(long, env = "MOSAIC_URL")]
    url: String,
    /// An access token of the user the records are saved as.
    #[arg(long, env = "MOSAIC_TOKEN")]
    token: String,
    /// insert, update, upsert or delete.
    #[arg(long, default_value = "insert")]
    operation: String,
    /// The external id field an upsert matches on.
    #[arg(long)]
    external_id: Option<String>,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

async fn answer(res: reqwest::Response, what: &str) -> Result<Value, String> {
    let status = res.status();
    let text = res
        .text()
        .await
        .map_err(|e| format!("{what}: {}", chain(&e)))?;
    if !status.is_success() {
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.get(0).map(|e| {
                    format!(
                        "{}: {}",
                        e["errorCode"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
            })
            .unwrap_or(text);
        return Err(format!("{what}: {status}: {detail}"));
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("{what}: unexpected answer: {e}"))
}

pub async fn run(args: ImportArgs) -> Result<(), String> {
    if !["insert", "update", "upsert", "delete"].contains(&args.operation.as_str()) {
        return Err("--operation: insert, update, upsert or delete".into());
    }
    if (args.operation == "upsert") != args.external_id.is_some() {
        return Err("--external-id: needed for upsert, and only for upsert".into());
    }
    let meta = tokio::fs::metadata(&args.file)
        .await
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes; one job takes at most {MAX_FILE_BYTES} bytes — split the file",
            args.file.display(),
            meta.len()
        ));
    }
    let base = args.url.trim_end_matches('/').to_string();
    let jobs = format!("{base}/services/data/{API}/jobs/ingest");
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut body =
        json!({"object": args.object, "operation": args.operation, "contentType": "CSV"});
    if let Some(f) = &args.external_id {
        body["externalIdFieldName"] = json!(f);
    }
    let job = answer(
        http.post(&jobs)
            .bearer_auth(&args.token)
            .timeout(REQUEST_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{base}: {}", chain(&e)))?,
        "create job",
    )
    .await?;
    let id = job["id"]
        .as_str()
        .ok_or("create job: no id in the answer")?
        .to_string();
    let job_url = format!("{jobs}/{id}");
    // Read whole (at most MAX_FILE_BYTES): the server streams it to its store.
    let data = tokio::fs::read(&args.file)
        .await
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    answer(
        http.put(format!("{job_url}/batches"))
            .bearer_auth(&args.token)
            .header("Content-Type", "text/csv")
            .body(data)
            .send()
            .await
            .map_err(|e| format!("upload: {}", chain(&e)))?,
        "upload",
    )
    .await?;
    answer(
        http.patch(&job_url)
            .bearer_auth(&args.token)
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({"state": "UploadComplete"}))
            .send()
            .await
            .map_err(|e| format!("close job: {}", chain(&e)))?,
        "close job",
    )
    .await?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} {pos} records processed ({per_sec}) {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    let info = loop {
        let info = answer(
            http.get(&job_url)
                .bearer_auth(&args.token)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("job status: {}", chain(&e)))?,
            "job status",
        )
        .await?;
        bar.set_position(info["numberRecordsProcessed"].as_u64().unwrap_or(0));
        let state = info["state"].as_str().unwrap_or("").to_string();
        bar.set_message(state.clone());
        if ["JobComplete", "Failed", "Aborted"].contains(&state.as_str()) {
            break info;
        }
        tokio::time::sleep(POLL).await;
    };
    bar.finish();
    let processed = info["numberRecordsProcessed"].as_u64().unwrap_or(0);
    let failed = info["numberRecordsFailed"].as_u64().unwrap_or(0);
    println!(
        "job {id}: {} — {processed} records processed, {} saved, {failed} failed",
        info["state"].as_str().unwrap_or(""),
        processed.saturating_sub(failed)
    );
    if let Some(m) = info["errorMessage"].as_str() {
        println!("error: {m}");
    }
    if failed > 0 {
        let mut out = args.file.clone().into_os_string();
        out.push(".failed.csv");
        let out = PathBuf::from(out);
        let res = http
            .get(format!("{job_url}/failedResults"))
            .bearer_auth(&args.token)
            .send()
            .await
            .map_err(|e| format!("failed results: {}", chain(&e)))?;
        if !res.status().is_success() {
            return Err(format!("failed results: {}", res.status()));
        }
        let bytes = res
            .bytes()
            .await
            .map_err(|e| format!("failed results: {}", chain(&e)))?;
        tokio::fs::write(&out, &bytes)
            .await
            .map_err(|e| format!("{}: {e}", out.display()))?;
        println!("failed rows (sf__Error says why): {}", out.display());
    }
    if info["state"] == "JobComplete" {
        Ok(())
    } else {
        Err(format!(
            "the job ended {}",
            info["state"].as_str().unwrap_or("")
        ))
    }
}
