//! A request id flows from the request header to the response and into the
//! server's structured log lines, with route, tenant and status; secrets
//! never reach the log.

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mosaic");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_reaches_response_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("MOSAIC_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        if let Ok(t) = std::fs::read_to_string(dir.path().join("instance.json")) {
            if let Ok(v) = serde_json::from_str::<Value>(&t) {
                break v["url"].as_str().unwrap().to_string();
            }
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    };
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{url}/services/oauth2/token"))
        .header("X-Request-Id", "login-req-77")
        .form(&[
            ("grant_type", "password"),
            ("username", "ghost@example.test"),
            ("password", "super-secret-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["x-request-id"], "login-req-77");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["span"]["request_id"] == "login-req-77")
        .unwrap_or_else(|| panic!("no log line with the request id in:\n{text}"));
    assert_eq!(line["fields"]["status"], 400);
    assert_eq!(line["span"]["route"], "/services/oauth2/token");
    assert!(
        !text.contains("super-secret-pw"),
        "passwords never reach the log"
    );
}
