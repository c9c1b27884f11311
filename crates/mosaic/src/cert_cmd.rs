//! `mosaic cert dev --out DIR`: a self-signed certificate for development
//! (`DIR/cert.pem`, `DIR/key.pem`) valid for `localhost`, `127.0.0.1` and
//! `::1`, to serve HTTPS with `--tls-cert` / `--tls-key` and to trust in
//! clients (`REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, `curl --cacert`).

use chrono::Datelike;
use clap::Subcommand;
use std::path::{Path, PathBuf};

/// The names the development certificate is valid for.
pub const DEV_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Subcommand)]
pub enum CertCommand {
    /// Write a self-signed development certificate and its key.
    Dev {
        /// Directory for cert.pem and key.pem (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: CertCommand) -> Result<(), String> {
    match cmd {
        CertCommand::Dev { out } => {
            let (cert, key) = dev_certificate()?;
            write_pair(&out, &cert, &key)?;
            println!(
                "{}",
                serde_json::json!({
                    "cert": out.join("cert.pem"),
                    "key": out.join("key.pem"),
                    "names": DEV_NAMES,
                })
            );
            Ok(())
        }
    }
}

/// A self-signed certificate (PEM) and its key (PEM, ECDSA P-256),
/// valid from last year to two years ahead.
pub fn dev_certificate() -> Result<(String, String), String> {
    let names: Vec<String> = DEV_NAMES.iter().map(|n| n.to_string()).collect();
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| format!("certificate names: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Mosaic development certificate");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Mosaic (development only)");
    let year = chrono::Utc::now().year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_pair(dir: &Path, cert: &str, key: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let cert_path = dir.join("cert.pem");
    std::fs::write(&cert_path, cert).map_err(|e| format!("write {}: {e}", cert_path.display()))?;
    let key_path = dir.join("key.pem");
    write_private(&key_path, key)?;
    Ok(())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("write {}: {e}", path.display()))
}
