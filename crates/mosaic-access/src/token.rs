//! Opaque bearer tokens: 256 random bits, URL-safe, with a recognisable
//! prefix; stored and looked up by SHA-256.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "mos_";
/// Refresh tokens: never accepted as bearer tokens.
pub const REFRESH_PREFIX: &str = "mosr_";
/// Connected apps' public client ids and their secrets.
pub const CLIENT_ID_PREFIX: &str = "mosc_";
pub const CLIENT_SECRET_PREFIX: &str = "moss_";
/// Longest Authorization token considered (anything longer is malformed).
pub const MAX_TOKEN_LEN: usize = 128;

pub fn mint() -> String {
    mint_with(TOKEN_PREFIX)
}

/// 256 random bits, URL-safe, after `prefix`.
pub fn mint_with(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Compares two hashes without an early exit.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
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
