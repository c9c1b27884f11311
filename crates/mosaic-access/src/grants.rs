//! OAuth grants beyond the bare password check: refresh tokens, the
//! client-credentials grant of connected apps, revocation of either kind of
//! token, and rate limiting of failed logins per username and per source
//! address.

use crate::admin::AccessService;
use crate::token;
use chrono::{DateTime, Utc};
use mosaic_store::access_store::{RefreshRotation, RefreshTokenRow};
use mosaic_store::AccessStore;
use mosaic_types::{ErrorCode, MosaicError};

/// Failed logins of one username tolerated within [`LOGIN_WINDOW_SECS`].
pub const LOGIN_FAILURES_PER_USER: i64 = 5;
/// Failed logins from one source address tolerated within the window.
pub const LOGIN_FAILURES_PER_ADDRESS: i64 = 20;
pub const LOGIN_WINDOW_SECS: i64 = 300;
/// Longest client id or secret considered.
pub const MAX_CLIENT_CREDENTIAL_LEN: usize = 128;

/// A granted token pair.
#[derive(Debug, Clone)]
pub struct Granted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub issued_at: DateTime<Utc>,
    pub tenant_id: String,
    pub user_id: String,
}

/// Why a grant was refused (the OAuth error it becomes).
#[derive(Debug)]
pub enum GrantError {
    /// `invalid_grant`: wrong credentials, revoked, expired or unknown
    /// token, inactive user — which one is not revealed.
    InvalidGrant,
    /// `invalid_client`: unknown client id or wrong secret.
    InvalidClient,
    /// Too many failed logins: retry after this many seconds.
    TooManyAttempts {
        retry_after_secs: i64,
    },
    /// The credentials were right but an administrator reset the password:
    /// it must be changed first (`PASSWORD_EXPIRED`).
    PasswordExpired,
    Internal(MosaicError),
}

impl From<MosaicError> for GrantError {
    fn from(e: MosaicError) -> Self {
        if e.code == ErrorCode::INSUFFICIENT_ACCESS {
            GrantError::InvalidGrant
        } else {
            GrantError::Internal(e)
        }
    }
}

pub(crate) const SCOPE_USER: &str = "username";
const SCOPE_ADDRESS: &str = "address";

/// Takes one attempt from a key's budget before the password is checked:
/// the count and the decision are one atomic statement in the store, so
/// concurrent guesses cannot all pass a check made before any of them was
/// counted. Past `limit` attempts in the window: `Some(seconds until the
/// window ends)`, and the password must not be checked.
pub(crate) async fn take_attempt(
    store: &dyn AccessStore,
    scope: &str,
    key: &str,
    limit: i64,
) -> Result<Option<i64>, MosaicError> {
    let (n, start) = store
        .record_login_failure(scope, key, Utc::now(), LOGIN_WINDOW_SECS)
        .await?;
    if n > limit {
        let left = LOGIN_WINDOW_SECS - (Utc::now() - start).num_seconds();
        return Ok(Some(left.max(1)));
    }
    Ok(None)
}

impl AccessService {
    /// Counts one attempt for the username and the client address before
    /// a password check (see [`take_attempt`]).
    pub(crate) async fn attempt(
        &self,
        user_key: &str,
        source: Option<&str>,
    ) -> Result<(), GrantError> {
        let store = self.store().as_ref();
        let mut locked = None;
        if let Some(a) = source {
            locked = take_attempt(store, SCOPE_ADDRESS, a, LOGIN_FAILURES_PER_ADDRESS).await?;
        }
        if locked.is_none() && user_key.len() <= 4 * crate::service::MAX_USERNAME_LEN {
            locked = take_attempt(store, SCOPE_USER, user_key, LOGIN_FAILURES_PER_USER).await?;
            if let (Some(_), Some(a)) = (locked, source) {
                // No password is checked: the address's attempt is given back.
                store.forgive_login_failure(SCOPE_ADDRESS, a).await?;
            }
        }
        match locked {
            Some(retry_after_secs) => Err(GrantError::TooManyAttempts { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// The password was right: the username's failures are cleared, the
    /// address's attempt is taken back (its other failures stay).
    pub(crate) async fn attempt_succeeded(
        &self,
        user_key: &str,
        source: Option<&str>,
    ) -> Result<(), MosaicError> {
        self.store()
            .clear_login_failures(SCOPE_USER, user_key)
            .await?;
        if let Some(a) = source {
            self.store().forgive_login_failure(SCOPE_ADDRESS, a).await?;
        }
        Ok(())
    }

    pub(crate) async fn new_refresh_token(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<String, GrantError> {
        let (tok, row) = self.refresh_row(tenant_id, user_id);
        self.store().create_refresh_token(row).await?;
        Ok(tok)
    }

    fn refresh_row(&self, tenant_id: &str, user_id: &str) -> (String, RefreshTokenRow) {
        let tok = token::mint_with(token::REFRESH_PREFIX);
        let hash = token::hash(&tok);
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.auth().refresh_ttl())
            .unwrap_or(chrono::Duration::days(30));
        let row = RefreshTokenRow {
            family_id: hash.clone(),
            token_hash: hash,
            tenant_id: tenant_id.to_string(),
            user_id: user_id.to_string(),
            issued_at: now,
            revoked: false,
            expires_at: now + ttl,
        };
        (tok, row)
    }

    /// The password grant, rate limited: each attempt is counted for the
    /// username and the source address before the password is checked; a
    /// key past its limit is refused without a check. A success clears the
    /// username's failures and takes back the address's attempt. A user
    /// whose password an administrator reset gets `PasswordExpired` (only
    /// after giving that password right).
    #[tracing::instrument(name = "auth.login", skip_all)]
    pub async fn password_grant(
        &self,
        username: &str,
        password: &str,
        source: Option<&str>,
    ) -> Result<Granted, GrantError> {
        let user_key = username.to_lowercase();
        self.attempt(&user_key, source).await?;
        let Some(user) = self.auth().authenticate(username, password).await? else {
            return Err(GrantError::InvalidGrant);
        };
        self.attempt_succeeded(&user_key, source).await?;
        if user.must_change_password {
            return Err(GrantError::PasswordExpired);
        }
        let (access_token, issued_at) = self.auth().start_session(&user).await?;
        let refresh_token = Some(self.new_refresh_token(&user.tenant_id, &user.id).await?);
        Ok(Granted {
            access_token,
            refresh_token,
            issued_at,
            tenant_id: user.tenant_id,
            user_id: user.id,
        })
    }

    /// `grant_type=refresh_token`: rotates the refresh token — the one
    /// presented is revoked and a new one (living the refresh lifetime
    /// again) is returned with the new access token. An expired or unknown
    /// token is refused; presenting an already used (revoked) one revokes
    /// every token descended from the same login, since one of the two
    /// holders is not the user.
    pub async fn refresh_grant(&self, refresh_token: &str) -> Result<Granted, GrantError> {
        if !refresh_token.starts_with(token::REFRESH_PREFIX)
            || refresh_token.len() > token::MAX_TOKEN_LEN
        {
            return Err(GrantError::InvalidGrant);
        }
        let (next, row) = self.refresh_row("", "");
        let now = row.issued_at;
        let (tenant_id, user_id) = match self
            .store()
            .rotate_refresh_token(&token::hash(refresh_token), row, now)
            .await?
        {
            RefreshRotation::Rotated { tenant_id, user_id } => (tenant_id, user_id),
            RefreshRotation::Reused { tenant_id, user_id } => {
                tracing::warn!(
                    tenant_id = %tenant_id,
                    user_id = %user_id,
                    "a used refresh token was presented again; its family is revoked"
                );
                return Err(GrantError::InvalidGrant);
            }
            RefreshRotation::Invalid => return Err(GrantError::InvalidGrant),
        };
        let (access_token, issued_at) = self.auth().issue_session(&tenant_id, &user_id).await?;
        Ok(Granted {
            access_token,
            refresh_token: Some(next),
            issued_at,
            tenant_id,
            user_id,
        })
    }

    /// `grant_type=client_credentials`: an access token for the connected
    /// app's run-as user.
    pub async fn client_credentials_grant(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Granted, GrantError> {
        if client_id.len() > MAX_CLIENT_CREDENTIAL_LEN
            || client_secret.len() > MAX_CLIENT_CREDENTIAL_LEN
        {
            return Err(GrantError::InvalidClient);
        }
        let app = self
            .store()
            .connected_app_by_client_id(client_id)
            .await?
            .ok_or(GrantError::InvalidClient)?;
        if !token::same_hash(&token::hash(client_secret), &app.secret_hash) {
            return Err(GrantError::InvalidClient);
        }
        let (access_token, issued_at) = self
            .auth()
            .issue_session(&app.tenant_id, &app.run_as_user_id)
            .await?;
        Ok(Granted {
            access_token,
            refresh_token: None,
            issued_at,
            tenant_id: app.tenant_id,
            user_id: app.run_as_user_id,
        })
    }

    /// Revokes an access token or a refresh token: the very next use of it
    /// is refused. Unknown tokens are accepted silently (RFC 7009).
    pub async fn revoke_token(&self, tok: &str) -> Result<(), MosaicError> {
        if tok.len() > token::MAX_TOKEN_LEN {
            return Ok(());
        }
        if tok.starts_with(token::REFRESH_PREFIX) {
            self.store().revoke_refresh_token(&token::hash(tok)).await?;
            return Ok(());
        }
        self.auth().revoke(tok).await
    }
}
