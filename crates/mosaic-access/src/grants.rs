//! OAuth grants beyond the bare password check: refresh tokens, the
//! client-credentials grant of connected apps, revocation of either kind of
//! token, and rate limiting of failed logins per username and per source
//! address.

use crate::admin::AccessService;
use crate::token;
use chrono::{DateTime, Utc};
use mosaic_store::access_store::RefreshTokenRow;
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
    /// `invalid_grant`: wrong credentials, revoked or unknown token,
    /// inactive user — which one is not revealed.
    InvalidGrant,
    /// `invalid_client`: unknown client id or wrong secret.
    InvalidClient,
    /// Too many failed logins: retry after this many seconds.
    TooManyAttempts {
        retry_after_secs: i64,
    },
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

const SCOPE_USER: &str = "username";
const SCOPE_ADDRESS: &str = "address";

impl AccessService {
    async fn locked(&self, scope: &str, key: &str, limit: i64) -> Result<(), GrantError> {
        if let Some((n, start)) = self.store().login_failures(scope, key).await? {
            let left = LOGIN_WINDOW_SECS - (Utc::now() - start).num_seconds();
            if n >= limit && left > 0 {
                return Err(GrantError::TooManyAttempts {
                    retry_after_secs: left,
                });
            }
        }
        Ok(())
    }

    async fn new_refresh_token(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<String, GrantError> {
        let tok = token::mint_with(token::REFRESH_PREFIX);
        self.store()
            .create_refresh_token(RefreshTokenRow {
                token_hash: token::hash(&tok),
                tenant_id: tenant_id.to_string(),
                user_id: user_id.to_string(),
                issued_at: Utc::now(),
                revoked: false,
            })
            .await?;
        Ok(tok)
    }

    /// The password grant, rate limited: a username or source address with
    /// too many recent failures is refused without checking the password. A
    /// success clears that username's failures, never the address's.
    #[tracing::instrument(name = "auth.login", skip_all)]
    pub async fn password_grant(
        &self,
        username: &str,
        password: &str,
        source: Option<&str>,
    ) -> Result<Granted, GrantError> {
        let user_key = username.to_lowercase();
        self.locked(SCOPE_USER, &user_key, LOGIN_FAILURES_PER_USER)
            .await?;
        if let Some(a) = source {
            self.locked(SCOPE_ADDRESS, a, LOGIN_FAILURES_PER_ADDRESS)
                .await?;
        }
        match self.auth().login_user(username, password).await {
            Ok((access_token, issued_at, tenant_id, user_id)) => {
                self.store()
                    .clear_login_failures(SCOPE_USER, &user_key)
                    .await?;
                let refresh_token = Some(self.new_refresh_token(&tenant_id, &user_id).await?);
                Ok(Granted {
                    access_token,
                    refresh_token,
                    issued_at,
                    tenant_id,
                    user_id,
                })
            }
            Err(e) if e.code == ErrorCode::INSUFFICIENT_ACCESS => {
                let now = Utc::now();
                if user_key.len() <= 4 * crate::service::MAX_USERNAME_LEN {
                    self.store()
                        .record_login_failure(SCOPE_USER, &user_key, now, LOGIN_WINDOW_SECS)
                        .await?;
                }
                if let Some(a) = source {
                    self.store()
                        .record_login_failure(SCOPE_ADDRESS, a, now, LOGIN_WINDOW_SECS)
                        .await?;
                }
                Err(GrantError::InvalidGrant)
            }
            Err(e) => Err(GrantError::Internal(e)),
        }
    }

    /// `grant_type=refresh_token`: a new access token for the token's user
    /// while the refresh token is unrevoked and the user active.
    pub async fn refresh_grant(&self, refresh_token: &str) -> Result<Granted, GrantError> {
        if !refresh_token.starts_with(token::REFRESH_PREFIX)
            || refresh_token.len() > token::MAX_TOKEN_LEN
        {
            return Err(GrantError::InvalidGrant);
        }
        let row = self
            .store()
            .refresh_token(&token::hash(refresh_token))
            .await?
            .filter(|r| !r.revoked)
            .ok_or(GrantError::InvalidGrant)?;
        let (access_token, issued_at) = self
            .auth()
            .issue_session(&row.tenant_id, &row.user_id)
            .await?;
        Ok(Granted {
            access_token,
            refresh_token: None,
            issued_at,
            tenant_id: row.tenant_id,
            user_id: row.user_id,
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
