//! A request id flows from the request header to the response and into the
//! server's structured log lines, with route, tenant and status; the spans
//! of the pipeline (auth, store) carry it too; secrets never reach the log.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mosaic");

/// Starts `mosaic serve` on `dir` with JSON logs into `dir/server.log` and
/// the extra environment `env`; returns the child and its URL.
fn start_server(dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("MOSAIC_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("MOSAIC_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        if let Ok(t) = std::fs::read_to_string(dir.join("instance.json")) {
            if let Ok(v) = serde_json::from_str::<Value>(&t) {
                break v["url"].as_str().unwrap().to_string();
            }
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    };
    (child, url)
}

/// A failed password login carrying `request_id`.
async fn failed_login(url: &str, request_id: &str) {
    let res = reqwest::Client::new()
        .post(format!("{url}/services/oauth2/token"))
        .header("X-Request-Id", request_id)
        .form(&[
            ("grant_type", "password"),
            ("username", "ghost@example.test"),
            ("password", "super-secret-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["x-request-id"], request_id);
}

/// Stops the server and returns its log lines parsed as JSON.
async fn stop_and_read_log(mut child: Child, dir: &Path) -> (String, Vec<Value>) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(dir.join("server.log")).unwrap();
    let lines = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    (text, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_reaches_response_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = start_server(dir.path(), &[]);
    failed_login(&url, "login-req-77").await;
    let (text, lines) = stop_and_read_log(child, dir.path()).await;
    let line = lines
        .iter()
        .find(|v| v["span"]["request_id"] == "login-req-77")
        .unwrap_or_else(|| panic!("no log line with the request id in:\n{text}"));
    assert_eq!(line["fields"]["status"], 400);
    assert_eq!(line["span"]["route"], "/services/oauth2/token");
    assert!(
        !text.contains("super-secret-pw"),
        "passwords never reach the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_spans_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = start_server(
        dir.path(),
        &[
            ("RUST_LOG", "info,mosaic_store=debug"),
            ("MOSAIC_LOG_SPANS", "close"),
        ],
    );
    failed_login(&url, "login-req-78").await;
    let (text, lines) = stop_and_read_log(child, dir.path()).await;
    let in_request = |v: &&Value| {
        v["spans"]
            .as_array()
            .is_some_and(|s| s.iter().any(|p| p["request_id"] == "login-req-78"))
    };
    // The store's line about the read that looked the username up, logged
    // on a blocking thread inside the store span: its span list reaches
    // back through the auth span to the request.
    let read = lines
        .iter()
        .filter(in_request)
        .filter(|v| v["span"]["name"] == "store.read")
        .find(|v| {
            v["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|p| p["name"] == "auth.login"))
        })
        .unwrap_or_else(|| panic!("no store line of the request in:\n{text}"));
    assert_eq!(read["fields"]["message"], "read");
    assert_eq!(read["span"]["db"], "metadata");
    let chain: Vec<&str> = read["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(chain, ["request", "auth.login", "store.read"], "{read}");
    // MOSAIC_LOG_SPANS=close: each span logs its timing as it closes.
    let login = lines
        .iter()
        .filter(in_request)
        .find(|v| v["span"]["name"] == "auth.login")
        .unwrap_or_else(|| panic!("no closing auth.login span in:\n{text}"));
    assert_eq!(login["fields"]["message"], "close");
    assert!(login["fields"]["time.busy"].is_string(), "{login}");
    assert!(!text.contains("super-secret-pw"));
}

#[cfg(not(feature = "otlp"))]
#[test]
fn span_export_without_the_otlp_feature_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("MOSAIC_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MOSAIC_OTLP_ENDPOINT") && err.contains("--features otlp"),
        "{err}"
    );
    assert!(
        !dir.path().join("instance.json").exists(),
        "the server did not start"
    );
}

/// A collector stand-in: answers OTLP/HTTP posts with 200 and hands each
/// (path, content type, body) to the test.
#[cfg(feature = "otlp")]
fn fake_collector() -> (String, std::sync::mpsc::Receiver<(String, String, Vec<u8>)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    break;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let (mut len, mut content_type) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            "content-type" => content_type = v.trim().to_string(),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                let _ = tx.send((path, content_type, body));
            }
        }
    });
    (url, rx)
}

#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_the_otlp_endpoint() {
    let (collector, posts) = fake_collector();
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = start_server(dir.path(), &[("MOSAIC_OTLP_ENDPOINT", &collector)]);
    failed_login(&url, "login-req-otlp").await;
    // A graceful stop flushes the spans still batched.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let mut child = child;
    let _ = child.wait();
    let mut bodies = Vec::new();
    while let Ok((path, content_type, body)) = posts.recv_timeout(Duration::from_secs(10)) {
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
        bodies.extend(body);
        if bodies.windows(14).any(|w| w == b"login-req-otlp") {
            break;
        }
    }
    let has = |s: &[u8]| bodies.windows(s.len()).any(|w| w == s);
    assert!(has(b"login-req-otlp"), "the request span's id was exported");
    assert!(
        has(b"auth.login") && has(b"store.read"),
        "pipeline spans were exported"
    );
    assert!(!has(b"super-secret-pw"));
}
