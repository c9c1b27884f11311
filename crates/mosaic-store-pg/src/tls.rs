//! TLS to PostgreSQL (rustls with the ring provider, the one TLS stack of
//! Mosaic). A connection URL's `sslmode` and `sslrootcert` parameters are
//! honoured as libpq defines them:
//!
//! - `disable`: plain TCP;
//! - `prefer` (the default): TLS when the server offers it, else plain;
//! - `require`: TLS or no connection;
//! - `verify-ca`: TLS with a certificate chain to the CA of `sslrootcert`;
//! - `verify-full`: that, and the certificate names the host connected to.
//!
//! With `sslrootcert`, `prefer` and `require` check the chain as
//! `verify-ca` does (as libpq does when a root certificate is present).
//! Every pool of a URL — primary, replicas, shards, and each connection a
//! pool opens or reopens — uses the connector built here.

use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// `sslmode` of a PostgreSQL URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> MosaicResult<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` tries plain first; Mosaic does not downgrade.
            other => {
                return Err(bad_url(format!(
                "sslmode '{other}' is not one of disable, prefer, require, verify-ca, verify-full"
            )))
            }
        })
    }

    /// What tokio-postgres negotiates (the verification is the connector's).
    fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// The TLS part of a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    /// `sslrootcert`: the CA certificate(s), PEM.
    pub root_cert: Option<PathBuf>,
}

fn bad_url(message: String) -> MosaicError {
    MosaicError::new(
        ErrorCode::INVALID_INPUT,
        format!("invalid PostgreSQL connection URL: {message}"),
    )
}

/// Splits `sslmode` and `sslrootcert` off a `postgres://` URL (the driver
/// knows neither `verify-*` nor `sslrootcert`): the URL for the driver, and
/// the TLS settings. Key-value connection strings pass through unchanged.
pub fn split_url(url: &str) -> MosaicResult<(String, PgTls)> {
    let mut tls = PgTls {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    if !url.contains("://") {
        return Ok((url.to_string(), tls));
    }
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), tls));
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| bad_url(format!("query string: {e}")))?;
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "sslmode" => tls.mode = SslMode::parse(&v)?,
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(v)),
            _ => rest.push((k, v)),
        }
    }
    if matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyFull) && tls.root_cert.is_none() {
        return Err(bad_url(
            "sslmode verify-ca and verify-full need sslrootcert=<CA certificate file>".into(),
        ));
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        let q = serde_urlencoded::to_string(&rest)
            .map_err(|e| bad_url(format!("query string: {e}")))?;
        format!("{base}?{q}")
    };
    Ok((url, tls))
}

/// Applies the URL's TLS settings to a driver configuration and returns
/// the connector every connection of it uses.
pub fn configure(
    config: &mut tokio_postgres::Config,
    tls: &PgTls,
) -> MosaicResult<MakeRustlsConnect> {
    config.ssl_mode(tls.mode.negotiation());
    Ok(MakeRustlsConnect::new(client_config(tls)?))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(path: &PathBuf) -> MosaicResult<RootCertStore> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad_url(format!("sslrootcert {}: {e}", path.display())))?;
    let mut store = RootCertStore::empty();
    for c in certs {
        store
            .add(c)
            .map_err(|e| bad_url(format!("sslrootcert {}: {e}", path.display())))?;
    }
    if store.is_empty() {
        return Err(bad_url(format!(
            "sslrootcert {}: no certificate in the file",
            path.display()
        )));
    }
    Ok(store)
}

fn client_config(tls: &PgTls) -> MosaicResult<ClientConfig> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match &tls.root_cert {
        None => Arc::new(EncryptOnly {
            provider: provider.clone(),
        }),
        Some(path) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(path)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| bad_url(format!("sslrootcert: {e}")))?;
            if tls.mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly { inner: webpki })
            }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MosaicError::internal(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

/// `require` without a CA: the connection is encrypted and the handshake
/// signed by the certificate's key, but the certificate is not checked.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the CA; the host name is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_off_the_url() {
        let (url, tls) = split_url(
            "postgres://u@h:5432/db?sslmode=verify-full&sslrootcert=%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h:5432/db?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
        let (url, tls) = split_url("postgres://u@h/db").unwrap();
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgres://u@h/db", SslMode::Prefer)
        );
        let (_, tls) = split_url("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(tls.mode, SslMode::Disable);
        let e = split_url("postgres://u@h/db?sslmode=verify-ca").unwrap_err();
        assert!(e.message.contains("sslrootcert"), "{}", e.message);
        let e = split_url("postgres://u@h/db?sslmode=allow").unwrap_err();
        assert!(e.message.contains("'allow'"), "{}", e.message);
    }
}
