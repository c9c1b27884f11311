//! Shared by the tests that run the real `mosaic` binary: start a server on
//! a data directory and learn its URL from `instance.json`.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mosaic");

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
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
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

pub fn start(dir: &Path) -> Server {
    start_with(dir, &[])
}
