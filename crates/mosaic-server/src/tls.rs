//! HTTPS in the binary (rustls with the ring provider, no OpenSSL): the
//! certificate and key read from PEM files and reloaded on demand (SIGHUP)
//! without touching open connections, a listener whose handshakes run
//! beside the accept loop, and the plain-HTTP listener that answers 308 to
//! the HTTPS URL.
//!
//! **Invariant:** a reload that fails (unreadable file, key not matching
//! the certificate) keeps the certificate in use; connections are never
//! dropped by a reload — only new handshakes see the new certificate.

use crate::network::ConnectionInfo;
use axum::extract::connect_info::Connected;
use axum::response::IntoResponse;
use axum::serve::{IncomingStream, Listener};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPT_QUEUE: usize = 256;
/// Pause after a failed `accept` (out of file descriptors, …).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The one crypto provider Mosaic's TLS uses (server, PostgreSQL, Redis).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// The certificate and key files of `--tls-cert` / `--tls-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads a certificate chain and its private key (PEM), checking they
/// belong together.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "TLS key {}: not a PEM private key ({e})",
            files.key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        format!(
            "TLS key {} does not fit certificate {}: {e}",
            files.key.display(),
            files.cert.display()
        )
    })
}

/// The certificates of a PEM file, in order; none is an error.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(chain)
}

/// The server's certificate, replaceable while serving.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Loads the files once; an error names the file at fault.
    pub fn load(files: TlsFiles) -> Result<Arc<ReloadingCert>, String> {
        let key = load_certified_key(&files)?;
        Ok(Arc::new(ReloadingCert {
            files,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; new handshakes use the new certificate, open
    /// connections keep theirs. On error the old certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let key = Arc::new(load_certified_key(&self.files)?);
        if let Ok(mut g) = self.current.write() {
            *g = key;
        }
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|g| g.clone())
    }
}

/// The server's TLS configuration: TLS 1.2 and 1.3, HTTP/1.1 by ALPN.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<Arc<ServerConfig>, String> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener whose connections come out TLS-handshaken. Handshakes
/// run in their own tasks (a slow client holds nobody else up) and are cut
/// off after [`HANDSHAKE_TIMEOUT`].
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(ACCEPT_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            local,
            ready,
            acceptor: task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop ended (it never does while the listener lives).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ConnectionInfo {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ConnectionInfo {
            tls: true,
            peer: *stream.remote_addr(),
        }
    }
}

/// Serves the plain-HTTP redirect: every request is answered 308 with the
/// same path and query under `https_base` (the configured HTTPS URL — never
/// the request's `Host`, so the redirect cannot be pointed elsewhere).
pub async fn serve_redirect(
    listener: TcpListener,
    https_base: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let base: Arc<str> = https_base.trim_end_matches('/').into();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let base = base.clone();
        async move {
            let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let location = format!("{base}{pq}");
            match axum::http::HeaderValue::from_str(&location) {
                Ok(v) => (
                    axum::http::StatusCode::PERMANENT_REDIRECT,
                    [(axum::http::header::LOCATION, v)],
                )
                    .into_response(),
                Err(_) => axum::http::StatusCode::BAD_REQUEST.into_response(),
            }
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
