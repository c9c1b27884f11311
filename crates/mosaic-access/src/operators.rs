//! Platform operators: the people who run a Mosaic installation, apart from
//! every tenant. Operator users (created with `mosaic operator create`),
//! their login to short-lived operator sessions, the verification of a
//! session token, and the platform audit log every operator action lands in.
//!
//! **Invariant:** an operator session is never a tenant session: its tokens
//! carry their own prefix, live in their own table and resolve to no tenant;
//! a tenant token never resolves here.

use crate::{password, token};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use mosaic_store::operators::{OperatorRow, OperatorSessionRow, OperatorStore, PlatformAuditRow};
use mosaic_store::AccessStore;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::sync::Arc;
use std::time::Duration;

/// Prefix of operator session tokens.
pub const OPERATOR_TOKEN_PREFIX: &str = "mop_";
/// How long an operator session lives (short: operators sign in again).
pub const OPERATOR_SESSION_TTL: Duration = Duration::from_secs(60 * 60);
/// Shortest operator password.
pub const MIN_OPERATOR_PASSWORD_LEN: usize = password::MIN_PASSWORD_LEN;
/// Longest operator username.
pub const MAX_OPERATOR_USERNAME_LEN: usize = 128;
/// Failed operator logins of one username (or from one address) tolerated
/// within [`crate::grants::LOGIN_WINDOW_SECS`].
pub const OPERATOR_LOGIN_FAILURES: i64 = 5;
/// Most platform audit entries one read returns.
pub const MAX_PLATFORM_AUDIT_PAGE: u32 = 500;

/// Failure-counter scopes of operator logins (beside the tenant logins').
const SCOPE_OPERATOR: &str = "operator";
const SCOPE_OPERATOR_ADDRESS: &str = "operator_address";
/// Failure-counter scope of sign-ins with `MOSAIC_OPERATOR_TOKEN` (the
/// operator console's sign-in page).
const SCOPE_OPERATOR_TOKEN: &str = "operator_token";

/// A verified operator: who acts (`operator:<username>` in the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    pub operator_id: String,
    pub username: String,
}

/// A new operator session.
#[derive(Debug, Clone)]
pub struct OperatorLogin {
    pub token: String,
    pub username: String,
    pub expires_at: DateTime<Utc>,
}

/// Why an operator login was refused.
#[derive(Debug)]
pub enum OperatorLoginError {
    /// Wrong username or password (which one is not said).
    Invalid,
    /// Too many failures: retry after this many seconds.
    TooManyAttempts {
        retry_after_secs: i64,
    },
    Internal(MosaicError),
}

impl From<MosaicError> for OperatorLoginError {
    fn from(e: MosaicError) -> Self {
        OperatorLoginError::Internal(e)
    }
}

/// Operator users, sessions and the platform audit log.
pub struct OperatorService {
    store: Arc<dyn OperatorStore>,
    /// Where login failures are counted (the tenant logins' counters).
    failures: Arc<dyn AccessStore>,
}

impl OperatorService {
    pub fn new(store: Arc<dyn OperatorStore>, failures: Arc<dyn AccessStore>) -> OperatorService {
        OperatorService { store, failures }
    }

    pub fn store(&self) -> &Arc<dyn OperatorStore> {
        &self.store
    }

    /// Creates an operator user. The username: 1 to 128 printable
    /// characters; the password: at least [`MIN_OPERATOR_PASSWORD_LEN`].
    pub async fn create(&self, username: &str, pass: &str) -> MosaicResult<OperatorIdentity> {
        let username = username.trim();
        if username.is_empty()
            || username.chars().count() > MAX_OPERATOR_USERNAME_LEN
            || username
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "username",
                format!(
                    "username: 1 to {MAX_OPERATOR_USERNAME_LEN} characters, no spaces or control characters"
                ),
            ));
        }
        password::check_policy(pass, username, None)?;
        let hash = password::hash_async(pass).await?;
        let row = OperatorRow {
            id: mosaic_types::new_id(),
            username: username.to_string(),
            password_hash: hash,
            created_at: Utc::now(),
        };
        self.store.create_operator(row.clone()).await?;
        Ok(OperatorIdentity {
            operator_id: row.id,
            username: row.username,
        })
    }

    /// Whether any operator user exists.
    pub async fn any(&self) -> MosaicResult<bool> {
        Ok(self.store.operator_count().await? > 0)
    }

    /// Counts one attempt for `key` before the password check (atomic in
    /// the store: concurrent guesses cannot pass a limit checked earlier).
    async fn attempt(&self, scope: &str, key: &str) -> Result<(), OperatorLoginError> {
        match crate::grants::take_attempt(
            self.failures.as_ref(),
            scope,
            key,
            OPERATOR_LOGIN_FAILURES,
        )
        .await?
        {
            Some(retry_after_secs) => Err(OperatorLoginError::TooManyAttempts { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// Signs an operator in: a new session token, valid for
    /// [`OPERATOR_SESSION_TTL`]. Failures are counted per username and per
    /// client address; past [`OPERATOR_LOGIN_FAILURES`] the login is
    /// refused without a password check until the window ends. The
    /// password is checked on a blocking thread.
    pub async fn login(
        &self,
        username: &str,
        pass: &str,
        source: Option<&str>,
    ) -> Result<OperatorLogin, OperatorLoginError> {
        let key = username.trim().to_lowercase();
        if key.is_empty() || key.chars().count() > MAX_OPERATOR_USERNAME_LEN {
            return Err(OperatorLoginError::Invalid);
        }
        if let Some(a) = source {
            self.attempt(SCOPE_OPERATOR_ADDRESS, a).await?;
        }
        if let Err(e) = self.attempt(SCOPE_OPERATOR, &key).await {
            if let Some(a) = source {
                // No password is checked: the address's attempt is given back.
                self.failures
                    .forgive_login_failure(SCOPE_OPERATOR_ADDRESS, a)
                    .await?;
            }
            return Err(e);
        }
        let row = self.store.operator_by_username(&key).await?;
        let stored = match &row {
            Some(r) => r.password_hash.clone(),
            None => password::dummy_hash().await,
        };
        let matches = password::verify_async(pass, &stored).await;
        let Some(row) = row.filter(|_| matches) else {
            return Err(OperatorLoginError::Invalid);
        };
        self.failures
            .clear_login_failures(SCOPE_OPERATOR, &key)
            .await?;
        if let Some(a) = source {
            self.failures
                .forgive_login_failure(SCOPE_OPERATOR_ADDRESS, a)
                .await?;
        }
        let tok = token::mint_with(OPERATOR_TOKEN_PREFIX);
        let now = Utc::now();
        let expires_at = now
            + ChronoDuration::from_std(OPERATOR_SESSION_TTL)
                .map_err(|e| MosaicError::internal(format!("session lifetime: {e}")))?;
        self.store
            .create_operator_session(OperatorSessionRow {
                token_hash: token::hash(&tok),
                operator_id: row.id.clone(),
                username: row.username.clone(),
                created_at: now,
                expires_at,
            })
            .await?;
        // Expired sessions go as new ones come.
        if let Err(e) = self.store.purge_operator_sessions(now).await {
            tracing::debug!(error = %e.message, "expired operator sessions not purged");
        }
        Ok(OperatorLogin {
            token: tok,
            username: row.username,
            expires_at,
        })
    }

    /// Checks a sign-in with the operator token (`expected`, the
    /// configured `MOSAIC_OPERATOR_TOKEN`) like a login: failures are
    /// counted for the token and per client address, and past
    /// [`OPERATOR_LOGIN_FAILURES`] within the window the sign-in is refused
    /// without comparing until the window ends. Compares without an early
    /// exit.
    pub async fn check_token(
        &self,
        given: &str,
        expected: &str,
        source: Option<&str>,
    ) -> Result<(), OperatorLoginError> {
        if let Some(a) = source {
            self.attempt(SCOPE_OPERATOR_ADDRESS, a).await?;
        }
        if let Err(e) = self.attempt(SCOPE_OPERATOR_TOKEN, "token").await {
            if let Some(a) = source {
                self.failures
                    .forgive_login_failure(SCOPE_OPERATOR_ADDRESS, a)
                    .await?;
            }
            return Err(e);
        }
        let (g, x) = (given.as_bytes(), expected.as_bytes());
        let same =
            g.len() == x.len() && g.iter().zip(x).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            return Err(OperatorLoginError::Invalid);
        }
        self.failures
            .clear_login_failures(SCOPE_OPERATOR_TOKEN, "token")
            .await?;
        if let Some(a) = source {
            self.failures
                .forgive_login_failure(SCOPE_OPERATOR_ADDRESS, a)
                .await?;
        }
        Ok(())
    }

    /// The operator a session token belongs to, while the session lasts;
    /// `None` for anything else (a tenant token, an expired or ended
    /// session, garbage).
    pub async fn verify_session(&self, tok: &str) -> MosaicResult<Option<OperatorIdentity>> {
        if !tok.starts_with(OPERATOR_TOKEN_PREFIX) || tok.len() > token::MAX_TOKEN_LEN {
            return Ok(None);
        }
        let Some(s) = self.store.operator_session(&token::hash(tok)).await? else {
            return Ok(None);
        };
        if s.expires_at <= Utc::now() {
            return Ok(None);
        }
        Ok(Some(OperatorIdentity {
            operator_id: s.operator_id,
            username: s.username,
        }))
    }

    /// Ends a session (signing out); unknown tokens are ignored.
    pub async fn logout(&self, tok: &str) -> MosaicResult<()> {
        if tok.starts_with(OPERATOR_TOKEN_PREFIX) && tok.len() <= token::MAX_TOKEN_LEN {
            self.store
                .delete_operator_session(&token::hash(tok))
                .await?;
        }
        Ok(())
    }

    /// Writes one entry of the platform audit log.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> MosaicResult<()> {
        self.store
            .append_platform_audit(PlatformAuditRow {
                id: mosaic_types::new_id(),
                actor: actor.to_string(),
                action: action.to_string(),
                target: target.to_string(),
                detail: detail.to_string(),
                at: Utc::now(),
            })
            .await
    }

    /// The newest entries of the platform audit log, newest first.
    pub async fn audit_log(
        &self,
        limit: u32,
        before: Option<&str>,
    ) -> MosaicResult<Vec<PlatformAuditRow>> {
        self.store
            .platform_audit(limit.clamp(1, MAX_PLATFORM_AUDIT_PAGE), before)
            .await
    }
}
