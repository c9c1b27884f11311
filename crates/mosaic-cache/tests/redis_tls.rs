//! `rediss://`: the tier against a `redis-server` of the test's own that
//! speaks TLS only (Debian's Redis is built with TLS), its certificate from
//! a test CA. With that CA the tier reads, writes and hears the bus over
//! TLS; with another CA it never connects (and falls back locally).

use mosaic_cache::{CacheConfig, CacheTier, Invalidation};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A CA and a server certificate for 127.0.0.1: (CA PEM, cert PEM, key PEM).
fn issue() -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Mosaic Redis test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}

struct TlsRedis {
    child: Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, ca: &str, cert: &str, key: &str) -> TlsRedis {
    for (name, text) in [("ca.pem", ca), ("redis.crt", cert), ("redis.key", key)] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(dir.join("redis.crt"))
        .arg("--tls-key-file")
        .arg(dir.join("redis.key"))
        .arg("--tls-ca-cert-file")
        .arg(dir.join("ca.pem"))
        .args(["--tls-auth-clients", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/services installs it)");
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "redis-server did not start with TLS"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    TlsRedis { child, port }
}

fn tier(port: u16, ca_file: &std::path::Path) -> Arc<CacheTier> {
    CacheTier::new(CacheConfig {
        redis_url: Some(format!("rediss://127.0.0.1:{port}/")),
        redis_ca_file: Some(ca_file.to_path_buf()),
        key_prefix: "tls-test:".into(),
        ..CacheConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_the_servers_ca_and_refused_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = issue();
    let redis = start(dir.path(), &ca, &cert, &key);
    let t = tier(redis.port, &dir.path().join("ca.pem"));
    let (k, vk) = (t.keys.meta("ten", "obj"), t.keys.meta_version("ten", "o-1"));
    assert!(t
        .fill(&k, &vk, 1, b"over tls", Duration::from_secs(30))
        .await
        .unwrap());
    assert_eq!(t.get(&k).await.unwrap().as_deref(), Some(&b"over tls"[..]));
    let r = t.redis().unwrap();
    assert!(r.is_up());
    // The pub/sub connection takes the same TLS settings: an invalidation
    // published by one tier reaches the other's subscriber.
    let other = tier(redis.port, &dir.path().join("ca.pem"));
    let sub = other.start().expect("a subscriber");
    let mut heard = other.listen();
    let until = Instant::now() + Duration::from_secs(10);
    let got = loop {
        t.publish(Invalidation::Objects {
            tenant: "ten".into(),
        })
        .await;
        if let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(200), heard.recv()).await {
            break Some(e);
        }
        if Instant::now() > until {
            break None;
        }
    };
    assert!(got.is_some(), "the invalidation crossed the TLS bus");
    sub.stop().await;

    // Another CA: no connection; the tier answers as without Redis.
    let (other_ca, _, _) = issue();
    let wrong = dir.path().join("other-ca.pem");
    std::fs::write(&wrong, other_ca).unwrap();
    let refused = tier(redis.port, &wrong);
    assert!(
        refused.get(&k).await.is_err(),
        "an untrusted certificate is refused"
    );
    assert!(!refused.redis().unwrap().is_up());
    // A plain connection to the TLS port is no connection either.
    let plain = CacheTier::new(CacheConfig {
        redis_url: Some(format!("redis://127.0.0.1:{}/", redis.port)),
        ..CacheConfig::default()
    })
    .unwrap();
    assert!(plain.get(&k).await.is_err());
}
