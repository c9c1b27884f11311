//! Encryption at rest of `encrypted_text` fields: AES-256-GCM with a random
//! nonce per value, stored as `enc1:` + base64(nonce ‖ ciphertext).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use mosaic_types::{MosaicError, MosaicResult};
use rand::RngCore;
use std::path::Path;

const PREFIX: &str = "enc1:";

pub struct FieldCipher {
    aead: Aes256Gcm,
}

impl FieldCipher {
    pub fn from_key(key: &[u8; 32]) -> FieldCipher {
        FieldCipher {
            aead: Aes256Gcm::new(key.into()),
        }
    }

    /// Loads the key from `MOSAIC_ENCRYPTION_KEY` (base64 of 32 bytes) if set,
    /// else from `<data dir>/field-encryption.key`, creating it (mode 0600)
    /// on first start.
    pub fn load(data_dir: &Path) -> MosaicResult<FieldCipher> {
        if let Ok(k) = std::env::var("MOSAIC_ENCRYPTION_KEY") {
            let bytes = B64.decode(k.trim()).map_err(|e| {
                MosaicError::invalid(format!("MOSAIC_ENCRYPTION_KEY is not base64: {e}"))
            })?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| {
                MosaicError::invalid("MOSAIC_ENCRYPTION_KEY must decode to 32 bytes")
            })?;
            return Ok(FieldCipher::from_key(&key));
        }
        let path = data_dir.join("field-encryption.key");
        let key: [u8; 32] = match std::fs::read(&path) {
            Ok(b) => b.try_into().map_err(|_| {
                MosaicError::internal(format!("{} must hold 32 bytes", path.display()))
            })?,
            Err(_) => {
                let mut k = [0u8; 32];
                rand::rng().fill_bytes(&mut k);
                write_private(&path, &k)?;
                k
            }
        };
        Ok(FieldCipher::from_key(&key))
    }

    pub fn encrypt(&self, plain: &str) -> MosaicResult<String> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| MosaicError::internal("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    pub fn decrypt(&self, stored: &str) -> Option<String> {
        let raw = B64.decode(stored.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < 12 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = self.aead.decrypt(Nonce::from_slice(nonce), ct).ok()?;
        String::from_utf8(plain).ok()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> MosaicResult<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| MosaicError::internal(format!("create {}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| MosaicError::internal(format!("write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let c = FieldCipher::from_key(&[7u8; 32]);
        let a = c.encrypt("4111 1111 1111 1111").unwrap();
        let b = c.encrypt("4111 1111 1111 1111").unwrap();
        assert_ne!(a, b, "nonces differ");
        assert!(!a.contains("4111"));
        assert_eq!(c.decrypt(&a).as_deref(), Some("4111 1111 1111 1111"));
        let mut t = a.clone();
        t.pop();
        t.push(if a.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(c.decrypt(&t), None);
        assert_eq!(FieldCipher::from_key(&[8u8; 32]).decrypt(&a), None);
    }
}
