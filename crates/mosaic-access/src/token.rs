//! Opaque bearer tokens: 256 random bits, URL-safe, with a recognisable
//! prefix; stored and looked up by SHA-256.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "mos_";
/// Longest Authorization token considered (anything longer is malformed).
pub const MAX_TOKEN_LEN: usize = 128;

pub fn mint() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = super::mint();
        let b = super::mint();
        assert_ne!(a, b);
        assert!(a.starts_with("mos_") && a.len() == 47);
        assert_eq!(super::hash(&a).len(), 64);
        assert_ne!(super::hash(&a), super::hash(&b));
    }
}
