//! Password hashing with argon2id (PHC strings), always on tokio's blocking
//! pool when called from async code ([`hash_async`], [`verify_async`]), and
//! the password policy (NIST SP 800-63B): length in Unicode scalar values,
//! no composition rules, no common or breached password, not the account's
//! own name.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use rand::RngCore;
use std::collections::HashSet;
use std::sync::LazyLock;

/// Fewest characters (Unicode scalar values) of a new password.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Most characters of a password (new or given at login).
pub const MAX_PASSWORD_LEN: usize = 256;

/// The 30,000 most common passwords, lower case (source and licence in
/// `data/README.md`).
static COMMON_LIST: &str = include_str!("../data/common-passwords.txt");

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    COMMON_LIST
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// Whether `password` is on the bundled list of common passwords (case
/// ignored).
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.to_lowercase().as_str())
}

fn refused(reason: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, "password", reason)
}

/// Checks a new password (user creation, change, reset) against the
/// policy: 12 to 256 characters, not a common password, not the account's
/// username or email address (nor the email's local part). Errors name the
/// field `password` and say why.
pub fn check_policy(password: &str, username: &str, email: Option<&str>) -> MosaicResult<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(refused(format!(
            "password: at least {MIN_PASSWORD_LEN} characters (this one has {n})"
        )));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(refused(format!(
            "password: at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    if is_common(password) {
        return Err(refused(
            "password: this password is on the list of common, breached passwords; choose another",
        ));
    }
    let lower = password.to_lowercase();
    let mut own = vec![username.to_lowercase()];
    if let Some(e) = email {
        let e = e.to_lowercase();
        if let Some((local, _)) = e.split_once('@') {
            own.push(local.to_string());
        }
        own.push(e);
    }
    if own.iter().any(|o| !o.is_empty() && *o == lower) {
        return Err(refused(
            "password: must not be the account's username or email address",
        ));
    }
    Ok(())
}

pub fn hash(password: &str) -> MosaicResult<String> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes)
        .map_err(|e| MosaicError::internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| MosaicError::internal(format!("password hash: {e}")))
}

/// Verifications run anywhere in this process (tests).
#[cfg(test)]
pub(crate) static VERIFIED_TOTAL: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(0);

#[cfg(test)]
thread_local! {
    /// Verifications run on this thread (tests prove none runs on an async worker).
    pub(crate) static VERIFIED_HERE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Constant-time verification against a stored PHC string. Blocks for tens
/// of milliseconds: async code calls [`verify_async`].
pub fn verify(password: &str, stored: &str) -> bool {
    #[cfg(test)]
    {
        VERIFIED_HERE.with(|c| c.set(c.get() + 1));
        VERIFIED_TOTAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// [`hash`] on the blocking pool.
pub async fn hash_async(password: &str) -> MosaicResult<String> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || hash(&pw))
        .await
        .map_err(|e| MosaicError::internal(format!("password hash task: {e}")))?
}

/// [`verify`] on the blocking pool.
pub async fn verify_async(password: &str, stored: &str) -> bool {
    let (pw, stored) = (password.to_string(), stored.to_string());
    tokio::task::spawn_blocking(move || verify(&pw, &stored))
        .await
        .unwrap_or(false)
}

/// A PHC string no password matches, verified for unknown usernames so an
/// unknown and a known username take the same time. Made on the blocking
/// pool the first time.
pub async fn dummy_hash() -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async {
            hash_async("mosaic-dummy-password")
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("x", "not a hash"));
    }

    fn reason(p: &str, user: &str, email: Option<&str>) -> String {
        let e = check_policy(p, user, email).unwrap_err();
        assert_eq!(e.fields, vec!["password".to_string()], "{p}");
        e.message
    }

    #[test]
    fn policy_counts_characters_not_bytes() {
        // 11 characters of 2–4 bytes each: too short although > 12 bytes.
        assert!(reason("ééééééééééé", "ann", None).contains("at least 12"));
        assert!(check_policy("éééééééééééé", "ann", None).is_ok());
        assert!(check_policy("🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀", "ann", None).is_ok());
        assert!(reason(&"a".repeat(257), "ann", None).contains("at most 256"));
        assert!(check_policy(&"ab".repeat(128), "ann", None).is_ok());
    }

    #[test]
    fn no_composition_rules() {
        // Lower case letters and spaces only: long enough, not common.
        assert!(check_policy("purple monkey dishwasher", "ann", None).is_ok());
    }

    #[test]
    fn common_passwords_are_refused_whatever_the_case() {
        assert!(
            COMMON.len() >= 30_000 - 100,
            "list loaded: {}",
            COMMON.len()
        );
        for p in [
            "qwerty123456",
            "QWERTY123456",
            "1qaz2wsx3edc",
            "FinalFantasy",
        ] {
            assert!(reason(p, "ann", None).contains("common"), "{p}");
        }
        assert!(!is_common("plum-violet-tundra-42"));
    }

    #[test]
    fn own_username_and_email_are_refused() {
        assert!(reason("Ann.Lee@Example.com", "ann.lee@example.com", None).contains("username"));
        assert!(reason(
            "annabelle.lee.1990",
            "ann",
            Some("Annabelle.Lee.1990@example.com")
        )
        .contains("email"));
        assert!(reason(
            "annabelle.lee.1990@example.com",
            "ann",
            Some("annabelle.lee.1990@example.com")
        )
        .contains("email"));
    }
}
