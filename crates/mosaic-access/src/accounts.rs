//! The account lifecycle: a user changing their own password, an
//! administrator resetting one (a temporary password the user must change
//! at the next sign-in), the change of such an expired password, and the
//! purge of expired credentials.
//!
//! Every new password passes the policy ([`password::check_policy`]);
//! every check of a current password counts against the same per-username
//! and per-address limits as a login; every change revokes the user's
//! other sessions and all their refresh tokens in the transaction that
//! writes the new hash.

use crate::admin::{not_found, AccessService, Actor};
use crate::grants::{GrantError, LOGIN_WINDOW_SECS};
use crate::{password, token};
use chrono::{DateTime, Utc};
use mosaic_store::access_store::{AuditEntry, PurgedCredentials};
use mosaic_store::UserRow;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use serde::Deserialize;
use serde_json::json;

/// `POST /services/auth/v1/password`: the signed-in user's own change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeInput {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /services/auth/v1/password/expired`: the change of a password an
/// administrator reset, before any session exists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiredPasswordChangeInput {
    pub username: String,
    pub current_password: String,
    pub new_password: String,
}

/// `POST /services/admin/v1/users/{id}/password`: an administrator's reset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetInput {
    /// The temporary password, told to the user out of band.
    pub password: String,
}

/// Why a password change was refused.
#[derive(Debug)]
pub enum PasswordChangeError {
    /// The current password was wrong (or the user unknown or inactive).
    WrongPassword,
    /// Too many wrong passwords for the username or address.
    TooManyAttempts { retry_after_secs: i64 },
    /// The new password breaks the policy, or another input error.
    Invalid(MosaicError),
}

impl From<MosaicError> for PasswordChangeError {
    fn from(e: MosaicError) -> Self {
        PasswordChangeError::Invalid(e)
    }
}

impl From<GrantError> for PasswordChangeError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::TooManyAttempts { retry_after_secs } => {
                PasswordChangeError::TooManyAttempts { retry_after_secs }
            }
            GrantError::Internal(e) => PasswordChangeError::Invalid(e),
            _ => PasswordChangeError::WrongPassword,
        }
    }
}

/// The new password must differ from the current one.
fn check_new(user: &UserRow, current: &str, new: &str) -> MosaicResult<()> {
    password::check_policy(new, &user.username, user.email.as_deref())?;
    if current == new {
        return Err(MosaicError::field(
            ErrorCode::INVALID_INPUT,
            "new_password",
            "new_password: must differ from the current password",
        ));
    }
    Ok(())
}

/// Policy errors name `new_password` where the route's field is called so.
fn as_new_password(mut e: MosaicError) -> MosaicError {
    for f in &mut e.fields {
        if f == "password" {
            *f = "new_password".to_string();
        }
    }
    e.message = e.message.replacen("password:", "new_password:", 1);
    e
}

impl AccessService {
    /// Checks `current` for `user_key` under the login limits; the user on
    /// success.
    async fn check_current(
        &self,
        username: &str,
        current: &str,
        source: Option<&str>,
    ) -> Result<UserRow, PasswordChangeError> {
        let user_key = username.to_lowercase();
        self.attempt(&user_key, source).await?;
        let Some(user) = self.auth().authenticate(username, current).await? else {
            return Err(PasswordChangeError::WrongPassword);
        };
        self.attempt_succeeded(&user_key, source).await?;
        Ok(user)
    }

    async fn store_password(
        &self,
        user: &UserRow,
        new: &str,
        must_change: bool,
        keep_session: Option<&str>,
        audit: AuditEntry,
    ) -> MosaicResult<()> {
        let hash = password::hash_async(new).await?;
        let revoked = self
            .store()
            .set_password(
                &user.tenant_id,
                &user.id,
                &hash,
                must_change,
                keep_session,
                audit,
            )
            .await?
            .ok_or_else(|| not_found("user"))?;
        self.auth().forget_sessions(&revoked).await;
        Ok(())
    }

    /// A signed-in user changes their own password, giving the current
    /// one. The session making the change (`bearer`) stays; every other
    /// session and every refresh token of the user is revoked.
    pub async fn change_password(
        &self,
        tenant_id: &str,
        user_id: &str,
        bearer: Option<&str>,
        input: &PasswordChangeInput,
        source: Option<&str>,
    ) -> Result<(), PasswordChangeError> {
        let me = self
            .meta()
            .user(tenant_id, user_id)
            .await?
            .ok_or_else(|| not_found("user"))?;
        check_new(&me, &input.current_password, &input.new_password).map_err(as_new_password)?;
        let user = self
            .check_current(&me.username, &input.current_password, source)
            .await?;
        if user.id != me.id {
            return Err(PasswordChangeError::WrongPassword);
        }
        let audit = Actor {
            tenant_id: user.tenant_id.clone(),
            user_id: user.id.clone(),
        }
        .audit("user.password_change", "user", &user.id, json!({}));
        let keep = bearer.map(token::hash);
        self.store_password(&user, &input.new_password, false, keep.as_deref(), audit)
            .await?;
        Ok(())
    }

    /// Changes a password without a session: the way out of an
    /// administrator's reset (the OAuth password grant answers
    /// `PASSWORD_EXPIRED` until then). Counts against the login limits like
    /// a login; revokes every session and refresh token of the user.
    pub async fn change_expired_password(
        &self,
        input: &ExpiredPasswordChangeInput,
        source: Option<&str>,
    ) -> Result<(), PasswordChangeError> {
        let user = self
            .check_current(&input.username, &input.current_password, source)
            .await?;
        check_new(&user, &input.current_password, &input.new_password).map_err(as_new_password)?;
        let audit = Actor {
            tenant_id: user.tenant_id.clone(),
            user_id: user.id.clone(),
        }
        .audit("user.password_change", "user", &user.id, json!({}));
        self.store_password(&user, &input.new_password, false, None, audit)
            .await?;
        Ok(())
    }

    /// An administrator sets a temporary password for a user of the
    /// tenant: the user must change it at the next sign-in, and every
    /// session and refresh token they hold is revoked at once.
    pub async fn reset_password(
        &self,
        a: &Actor,
        id: &str,
        input: &PasswordResetInput,
    ) -> MosaicResult<()> {
        let id = mosaic_types::id::normalize_id(id).ok_or_else(|| not_found("user"))?;
        let user = self
            .meta()
            .user(&a.tenant_id, &id)
            .await?
            .ok_or_else(|| not_found("user"))?;
        password::check_policy(&input.password, &user.username, user.email.as_deref())?;
        let audit = a.audit(
            "user.password_reset",
            "user",
            &user.id,
            json!({"must_change_password": true}),
        );
        self.store_password(&user, &input.password, true, None, audit)
            .await
    }

    /// Deletes sessions and refresh tokens that expired before `now`, and
    /// login-failure windows that are over.
    pub async fn purge_expired(&self, now: DateTime<Utc>) -> MosaicResult<PurgedCredentials> {
        self.store().purge_expired(now, LOGIN_WINDOW_SECS).await
    }
}
