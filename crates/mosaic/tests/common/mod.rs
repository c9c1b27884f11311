//! Shared by the tests that run the real `mosaic` binary: start a server on
//! a data directory and learn its URL from `instance.json`.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mosaic");

/// The binary the multi-instance tests start: `MOSAIC_TEST_BIN` when set
/// (to confirm a regression test fails on an older build), else this build's.
pub fn bin() -> String {
    std::env::var("MOSAIC_TEST_BIN").unwrap_or_else(|_| BIN.to_string())
}
/// The operator token servers started here are given (`MOSAIC_OPERATOR_TOKEN`).
pub const OPERATOR_TOKEN: &str = "binary-test-operator-token";

/// Servers started by this test process (names their log files).
static SERVERS_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mosaic serve` on `dir` (random port) with extra environment.
// The child is reaped by `Server`'s Drop (or by the timeout branch).
#[allow(clippy::zombie_processes)]
pub fn start_with(dir: &Path, env: &[(&str, &str)]) -> Server {
    let _ = std::fs::remove_file(dir.join("instance.json"));
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env("MOSAIC_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // `MOSAIC_TEST_SERVER_LOGS=DIR`: each server's log in DIR (and
    // `MOSAIC_TEST_RUST_LOG` its filter), for looking into a failure.
    if let Some(logs) = std::env::var_os("MOSAIC_TEST_SERVER_LOGS") {
        let n = SERVERS_STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = std::fs::create_dir_all(&logs);
        if let Ok(f) = std::fs::File::create(
            Path::new(&logs).join(format!("server-{}-{n}.log", std::process::id())),
        ) {
            cmd.stderr(f);
        }
        if let Ok(filter) = std::env::var("MOSAIC_TEST_RUST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn mosaic serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("instance.json")) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                if v["pid"].as_u64() == Some(u64::from(child.id())) {
                    return Server {
                        url: v["url"].as_str().unwrap().to_string(),
                        child,
                    };
                }
            }
        }
        if Instant::now() >= deadline {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates a tenant with `mosaic tenant create` on `dir` (and `env`'s
/// databases): its admin's access token and the tenant id.
pub fn create_tenant(
    dir: &std::path::Path,
    env: &[(String, String)],
    sub: &str,
) -> (String, String) {
    let out = Command::new(bin())
        .args(["tenant", "create", "--data-dir"])
        .arg(dir)
        .args(["--name", sub, "--subdomain", sub, "--admin-username"])
        .arg(format!("admin@{sub}.test"))
        .args(["--admin-password", "correct-horse-battery"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .expect("mosaic tenant create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["access_token"].as_str().unwrap().to_string(),
        v["tenant_id"].as_str().unwrap().to_string(),
    )
}

pub fn start(dir: &Path) -> Server {
    start_with(dir, &[])
}

/// A `redis-server` of the test's own on a free port (no persistence), so
/// the test can stop and restart it without disturbing anything else.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn redis_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let mut r = OwnRedis {
            port: free_port(),
            child: None,
        };
        r.spawn();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis_answers(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it and starts an empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
