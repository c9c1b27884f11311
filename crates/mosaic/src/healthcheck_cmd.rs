//! `mosaic healthcheck`: one HTTP GET against a running server, for
//! container runtimes whose images carry no `curl` (the Dockerfile's
//! `HEALTHCHECK`). Exit status 0 when the answer is 2xx, 1 otherwise.

use clap::Args;
use std::time::Duration;

#[derive(Args)]
pub struct HealthcheckArgs {
    /// URL to GET; `/healthz` answers while the process is up, `/readyz`
    /// while it can serve records.
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    url: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

pub async fn run(args: HealthcheckArgs) -> Result<(), String> {
    let url = reqwest::Url::parse(&args.url).map_err(|e| format!("--url: {e}"))?;
    // The probe runs next to the server (loopback): plain HTTP only.
    if url.scheme() != "http" {
        return Err(format!("--url: scheme {} is not http", url.scheme()));
    }
    if args.timeout_ms == 0 {
        return Err("--timeout-ms: must be positive".into());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let res = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("{url}: {}", chain(&e)))?;
    let status = res.status();
    if status.is_success() {
        println!("{url}: {status}");
        Ok(())
    } else {
        Err(format!("{url}: {status}"))
    }
}

/// An error with its causes (`connection refused` sits under reqwest's
/// "error sending request").
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
