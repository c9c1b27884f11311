//! HTTPS in the binary: `mosaic cert dev` writes a development certificate
//! for localhost and 127.0.0.1; `mosaic serve --tls-cert --tls-key` serves
//! it with HSTS, reloads it on SIGHUP without dropping open connections,
//! and `--http-redirect-listen` answers plain HTTP with a 308 to HTTPS.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

fn cert_dev(out: &Path) {
    let res = Command::new(common::BIN)
        .args(["cert", "dev", "--out"])
        .arg(out)
        .output()
        .expect("run mosaic cert dev");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).expect("JSON");
    assert_eq!(
        v["names"],
        serde_json::json!(["localhost", "127.0.0.1", "::1"])
    );
}

fn cert_der(dir: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(dir.join("cert.pem")).expect("a PEM certificate")
}

fn client(trusted: &[&Path]) -> tokio_rustls::TlsConnector {
    let mut roots = RootCertStore::empty();
    for d in trusted {
        roots.add(cert_der(d)).expect("root");
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(addr: &str, name: &str, trusted: &[&Path]) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    client(trusted)
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
}

/// One HTTP/1.1 request on an open connection: status line and headers
/// (lower-cased), the body skipped by Content-Length.
async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    path: &str,
) -> (u16, Vec<(String, String)>) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "connection closed mid-response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let text = String::from_utf8(buf).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (status, headers)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_hsts_reload_on_sighup_and_redirect() {
    let work = tempfile::tempdir().unwrap();
    let (a, b, live) = (
        work.path().join("a"),
        work.path().join("b"),
        work.path().join("live"),
    );
    cert_dev(&a);
    cert_dev(&b);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
    }
    assert_ne!(
        cert_der(&a),
        cert_der(&b),
        "each run makes a new certificate"
    );
    std::fs::create_dir_all(&live).unwrap();
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(a.join(f), live.join(f)).unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let redirect_port = free_port();
    let redirect = format!("127.0.0.1:{redirect_port}");
    let cert = live.join("cert.pem");
    let key = live.join("key.pem");
    let server = common::start_with(
        data.path(),
        &[
            ("MOSAIC_TLS_CERT", cert.to_str().unwrap()),
            ("MOSAIC_TLS_KEY", key.to_str().unwrap()),
            ("MOSAIC_HTTP_REDIRECT_LISTEN", &redirect),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let addr = server.url.trim_start_matches("https://").to_string();

    // Certificate A, for both names; HSTS on every answer.
    let mut first = connect(&addr, "localhost", &[&a])
        .await
        .expect("TLS to localhost");
    let (status, headers) = get(&mut first, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "strict-transport-security"),
        Some(mosaic_server::network::HSTS_VALUE)
    );
    let mut by_ip = connect(&addr, "127.0.0.1", &[&a])
        .await
        .expect("TLS to 127.0.0.1");
    assert_eq!(get(&mut by_ip, "/readyz").await.0, 200);
    // A client that does not trust the certificate is refused.
    assert!(connect(&addr, "localhost", &[&b]).await.is_err());

    // New files and SIGHUP: new connections get certificate B…
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(b.join(f), live.join(f)).unwrap();
    }
    // SAFETY: signalling the child this test started.
    unsafe {
        libc::kill(server.child.id() as libc::pid_t, libc::SIGHUP);
    }
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = connect(&addr, "localhost", &[&a, &b]).await.expect("TLS");
        let presented = s.get_ref().1.peer_certificates().unwrap()[0].clone();
        if presented == cert_der(&b) {
            break;
        }
        assert!(Instant::now() < until, "the certificate was not reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // …and the connection opened before the reload still answers.
    let (status, _) = get(&mut first, "/healthz").await;
    assert_eq!(status, 200, "the open connection survived the reload");

    // A broken file on reload keeps the certificate in use.
    std::fs::write(live.join("key.pem"), "not a key").unwrap();
    unsafe {
        libc::kill(server.child.id() as libc::pid_t, libc::SIGHUP);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = connect(&addr, "localhost", &[&b])
        .await
        .expect("still certificate B");
    assert_eq!(get(&mut s, "/healthz").await.0, 200);

    // Plain HTTP on the redirect listener: 308 to the same path over HTTPS.
    let mut plain = tokio::net::TcpStream::connect(&redirect).await.unwrap();
    let (status, headers) = get(&mut plain, "/services/data/v60.0/sobjects?x=1").await;
    assert_eq!(status, 308);
    assert_eq!(
        header(&headers, "location"),
        Some(format!("{}/services/data/v60.0/sobjects?x=1", server.url).as_str())
    );
    // Plain HTTP on the TLS port gets no answer.
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    assert!(!buf[..n].starts_with(b"HTTP/1.1 200"), "no plain answer");
}

#[test]
fn operator_create_stores_an_operator_who_can_sign_in() {
    let data = tempfile::tempdir().unwrap();
    let create = |user: &str, pass: &str| {
        Command::new(common::BIN)
            .args(["operator", "create", "--data-dir"])
            .arg(data.path())
            .args(["--username", user, "--password", pass])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run mosaic operator create")
    };
    let out = create("ops", "a long operator passphrase");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["username"], "ops");
    let again = create("ops", "a long operator passphrase");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("DUPLICATE_VALUE"));
    let short = create("other", "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("(password)"));

    let server = common::start_with(data.path(), &[("MOSAIC_OPERATOR_TOKEN", "")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let login: serde_json::Value = http
            .post(format!("{}/services/operator/v1/login", server.url))
            .json(&serde_json::json!({"username": "ops", "password": "a long operator passphrase"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().expect("a session token");
        let res = http
            .get(format!("{}/services/admin/v1/platform-audit", server.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = res.json().await.unwrap();
        let actions: Vec<(&str, &str)> = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
            .collect();
        assert_eq!(
            actions,
            [
                ("operator:ops", "operator.login"),
                ("cli", "operator.create")
            ]
        );
    });
}
