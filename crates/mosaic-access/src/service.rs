//! The authentication service: creates tenants with their admin, exchanges
//! credentials for tokens, and resolves bearer tokens to sessions.

use crate::{password, token};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use moka::future::Cache;
use mosaic_cache::{CacheTier, Invalidation};
use mosaic_store::{MetaStore, SessionRow, TenantRow, UserRow};
use mosaic_types::{new_id, ErrorCode, MosaicError, MosaicResult};
use regex::Regex;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Default lifetime of an access token (Salesforce's default session: 2 h).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(2 * 60 * 60);
/// Default lifetime of a refresh token since it was issued (each use
/// rotates it: the new one lives this long again).
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long a resolved session may be served from memory before the store
/// is asked again (revocation through this service is immediate).
pub const SESSION_CACHE_TTL: Duration = mosaic_cache::defaults::SESSIONS.ttl;
pub const SESSION_CACHE_CAPACITY: u64 = mosaic_cache::defaults::SESSIONS.capacity;
pub const MAX_USERNAME_LEN: usize = 80;
pub const MAX_TENANT_NAME_LEN: usize = 120;
pub const TIERS: [&str; 3] = ["starter", "professional", "enterprise"];
pub const PROFILE_ADMIN: &str = "system_administrator";

static SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$").expect("subdomain regex")
});

/// A resolved bearer token.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub tenant_id: String,
    pub user_id: String,
    pub username: String,
    pub profile: String,
    pub expires_at: DateTime<Utc>,
}

pub struct NewTenant {
    pub name: String,
    pub subdomain: String,
    pub tier: String,
    pub admin_username: String,
    pub admin_password: String,
    pub admin_email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TenantCreated {
    pub tenant_id: String,
    pub user_id: String,
    pub access_token: String,
    pub issued_at: DateTime<Utc>,
}

pub struct AuthService {
    store: Arc<dyn MetaStore>,
    tier: Arc<CacheTier>,
    sessions: Cache<String, Arc<Session>>,
    /// Sessions resolved before, served (until they expire) while the
    /// metadata database is unavailable; revocations drop them.
    last_good: mosaic_cache::LastGood<String, Arc<Session>>,
    token_ttl: Duration,
    refresh_ttl: Duration,
    /// Hits and misses of the session cache.
    pub session_cache: mosaic_types::CacheStats,
}

fn bad(field: &str, msg: impl Into<String>) -> MosaicError {
    MosaicError::field(ErrorCode::INVALID_INPUT, field, msg)
}

fn invalid_session() -> MosaicError {
    MosaicError::new(ErrorCode::INVALID_SESSION_ID, "Session expired or invalid")
}

/// Checks a username: 1–80 characters, no whitespace or control characters.
pub fn check_username(u: &str) -> MosaicResult<()> {
    if u.is_empty()
        || u.chars().count() > MAX_USERNAME_LEN
        || u.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            "username",
            format!("a username is 1 to {MAX_USERNAME_LEN} characters without spaces"),
        ));
    }
    Ok(())
}

impl AuthService {
    pub fn new(store: Arc<dyn MetaStore>, token_ttl: Duration) -> AuthService {
        Self::with_tier(store, token_ttl, CacheTier::embedded())
    }

    /// Sessions cached in process and, with Redis configured, in L2
    /// (`sess:{token hash}`), so any instance resolves a token without the
    /// database; revocations reach every instance over the bus.
    pub fn with_tier(
        store: Arc<dyn MetaStore>,
        token_ttl: Duration,
        tier: Arc<CacheTier>,
    ) -> AuthService {
        let sizing = tier.config.sessions;
        AuthService {
            store,
            tier,
            sessions: Cache::builder()
                .max_capacity(sizing.capacity)
                .time_to_live(sizing.ttl)
                .build(),
            last_good: mosaic_cache::LastGood::new("session", sizing.capacity),
            token_ttl,
            refresh_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            session_cache: mosaic_types::CacheStats::default(),
        }
    }

    /// Sets the lifetime of refresh tokens (default 30 days).
    pub fn with_refresh_ttl(mut self, ttl: Duration) -> AuthService {
        self.refresh_ttl = ttl;
        self
    }

    /// How long a refresh token lives after it is issued.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    fn new_session(&self, tenant_id: &str, user_id: &str) -> (String, SessionRow) {
        let tok = token::mint();
        let now = Utc::now();
        let ttl = ChronoDuration::from_std(self.token_ttl).unwrap_or(ChronoDuration::hours(2));
        let row = SessionRow {
            token_hash: token::hash(&tok),
            tenant_id: tenant_id.to_string(),
            user_id: user_id.to_string(),
            issued_at: now,
            expires_at: now + ttl,
            revoked: false,
        };
        (tok, row)
    }

    /// Creates a tenant with its system administrator and a first token.
    pub async fn create_tenant(&self, t: NewTenant) -> MosaicResult<TenantCreated> {
        let name = t.name.trim();
        if name.is_empty() || name.chars().count() > MAX_TENANT_NAME_LEN {
            return Err(bad(
                "name",
                format!("a tenant name is 1 to {MAX_TENANT_NAME_LEN} characters"),
            ));
        }
        if !SUBDOMAIN.is_match(&t.subdomain) {
            return Err(bad(
                "subdomain",
                "a subdomain is 1 to 63 lowercase letters, digits or hyphens, not starting or ending with a hyphen",
            ));
        }
        if !TIERS.contains(&t.tier.as_str()) {
            return Err(bad(
                "tier",
                format!("tier must be one of {}", TIERS.join(", ")),
            ));
        }
        check_username(&t.admin_username)?;
        password::check_policy(
            &t.admin_password,
            &t.admin_username,
            t.admin_email.as_deref(),
        )?;
        let tenant_id = new_id();
        let user_id = new_id();
        let now = Utc::now();
        let (tok, session) = self.new_session(&tenant_id, &user_id);
        let issued_at = session.issued_at;
        let pw = password::hash_async(&t.admin_password).await?;
        self.store
            .create_tenant(
                TenantRow {
                    id: tenant_id.clone(),
                    name: name.to_string(),
                    subdomain: t.subdomain,
                    tier: t.tier,
                    status: "active".to_string(),
                    created_at: now,
                },
                UserRow {
                    id: user_id.clone(),
                    tenant_id: tenant_id.clone(),
                    username: t.admin_username,
                    email: t.admin_email,
                    password_hash: pw,
                    is_active: true,
                    profile: PROFILE_ADMIN.to_string(),
                    created_at: now,
                    role_id: None,
                    must_change_password: false,
                },
                Some(session),
            )
            .await?;
        Ok(TenantCreated {
            tenant_id,
            user_id,
            access_token: tok,
            issued_at,
        })
    }

    /// The OAuth password grant: (token, issued_at, tenant id), or
    /// `INSUFFICIENT_ACCESS` for any failure (which one is not revealed),
    /// including a password an administrator reset and the user has not
    /// changed yet.
    #[tracing::instrument(name = "auth.login", skip_all)]
    pub async fn login(
        &self,
        username: &str,
        password_plain: &str,
    ) -> MosaicResult<(String, DateTime<Utc>, String)> {
        let failure = || MosaicError::new(ErrorCode::INSUFFICIENT_ACCESS, "authentication failure");
        let user = self
            .authenticate(username, password_plain)
            .await?
            .filter(|u| !u.must_change_password)
            .ok_or_else(failure)?;
        let (tok, issued) = self.start_session(&user).await?;
        Ok((tok, issued, user.tenant_id))
    }

    /// Checks a username and password: the user, when the password is
    /// right and the user an active user of an active tenant; `None` for
    /// any failure. Every argon2 verification — also the one spent on an
    /// unknown username so that timing reveals nothing — runs on the
    /// blocking pool, never on an async worker.
    pub async fn authenticate(
        &self,
        username: &str,
        password_plain: &str,
    ) -> MosaicResult<Option<UserRow>> {
        if username.is_empty()
            || username.len() > 4 * MAX_USERNAME_LEN
            || password_plain.len() > 4 * password::MAX_PASSWORD_LEN
        {
            return Ok(None);
        }
        let Some(user) = self.store.user_by_username(username).await? else {
            let _ = password::verify_async(password_plain, &password::dummy_hash().await).await;
            return Ok(None);
        };
        if !password::verify_async(password_plain, &user.password_hash).await || !user.is_active {
            return Ok(None);
        }
        let tenant = self.store.tenant(&user.tenant_id).await?;
        if tenant.map(|t| t.status != "active").unwrap_or(true) {
            return Ok(None);
        }
        Ok(Some(user))
    }

    /// A new access token for a user [`authenticate`](Self::authenticate) accepted.
    pub async fn start_session(&self, user: &UserRow) -> MosaicResult<(String, DateTime<Utc>)> {
        let (tok, row) = self.new_session(&user.tenant_id, &user.id);
        let issued = row.issued_at;
        self.store.create_session(row).await?;
        Ok((tok, issued))
    }

    /// Mints an access token for an active user of an active tenant (the
    /// refresh-token and client-credentials grants), or `INSUFFICIENT_ACCESS`.
    pub async fn issue_session(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> MosaicResult<(String, DateTime<Utc>)> {
        let failure = || MosaicError::new(ErrorCode::INSUFFICIENT_ACCESS, "authentication failure");
        let user = self
            .store
            .user(tenant_id, user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or_else(failure)?;
        let tenant = self.store.tenant(&user.tenant_id).await?;
        if tenant.map(|t| t.status != "active").unwrap_or(true) {
            return Err(failure());
        }
        let (tok, row) = self.new_session(tenant_id, user_id);
        let issued = row.issued_at;
        self.store.create_session(row).await?;
        Ok((tok, issued))
    }

    /// Drops resolved sessions from memory (their rows were revoked), here
    /// and on every other instance, and from L2.
    pub async fn forget_sessions(&self, token_hashes: &[String]) {
        for h in token_hashes {
            self.sessions.invalidate(h).await;
            self.last_good.forget(h);
        }
        if !token_hashes.is_empty() {
            self.tier
                .publish(Invalidation::Sessions {
                    token_hashes: token_hashes.to_vec(),
                })
                .await;
        }
    }

    /// Applies another instance's invalidation to the session cache.
    pub async fn apply(&self, event: &Invalidation) {
        match event {
            Invalidation::Sessions { token_hashes } => {
                for h in token_hashes {
                    self.sessions.invalidate(h).await;
                    self.last_good.forget(h);
                }
            }
            Invalidation::All => self.sessions.invalidate_all(),
            _ => {}
        }
    }

    /// A session from L2, if Redis has a current one.
    async fn session_from_l2(&self, h: &str) -> Option<Arc<Session>> {
        if !self.tier.has_l2() {
            return None;
        }
        let stats = &self.tier.l2_sessions;
        match self.tier.get(&self.tier.keys.session(h)).await {
            Ok(Some(b)) => {
                let s = mosaic_cache::codec::decode::<Session>(&b)?.value;
                if s.expires_at <= Utc::now() {
                    stats.miss();
                    return None;
                }
                stats.hit();
                Some(Arc::new(s))
            }
            Ok(None) => {
                stats.miss();
                None
            }
            Err(_) => {
                stats.error();
                None
            }
        }
    }

    async fn session_to_l2(&self, h: &str, s: &Session, took: Duration) {
        if !self.tier.has_l2() {
            return;
        }
        let left = (s.expires_at - Utc::now()).to_std().unwrap_or_default();
        let ttl = left.min(self.tier.config.session_l2_ttl);
        if ttl.is_zero() {
            return;
        }
        if let Some(b) = self.tier.encode(0, took, s) {
            match self.tier.set(&self.tier.keys.session(h), &b, ttl).await {
                Ok(()) => self.tier.l2_sessions.loaded(took),
                Err(_) => self.tier.l2_sessions.error(),
            }
        }
    }

    /// Resolves a bearer token to its session, or `INVALID_SESSION_ID`.
    #[tracing::instrument(name = "auth.resolve", skip_all)]
    pub async fn resolve(&self, bearer: &str) -> MosaicResult<Arc<Session>> {
        if bearer.is_empty()
            || bearer.len() > token::MAX_TOKEN_LEN
            || !bearer.starts_with(token::TOKEN_PREFIX)
        {
            return Err(invalid_session());
        }
        let h = token::hash(bearer);
        if let Some(s) = self.sessions.get(&h).await {
            self.session_cache.hit();
            metrics::counter!("cache_hits_total", "cache" => "session", "layer" => "l1")
                .increment(1);
            if s.expires_at > Utc::now() {
                return Ok(s);
            }
            self.sessions.invalidate(&h).await;
            return Err(invalid_session());
        }
        self.session_cache.miss();
        metrics::counter!("cache_misses_total", "cache" => "session", "layer" => "l1").increment(1);
        if let Some(s) = self.session_from_l2(&h).await {
            self.last_good.remember(h.clone(), s.clone());
            self.sessions.insert(h, s.clone()).await;
            return Ok(s);
        }
        let started = std::time::Instant::now();
        let unexpired = |s: &Arc<Session>| s.expires_at > Utc::now();
        let row = match self.store.session(&h).await {
            Ok(row) => row.ok_or_else(invalid_session)?,
            Err(e) => return self.last_good.or_stale(&h, e, unexpired),
        };
        if row.revoked || row.expires_at <= Utc::now() {
            return Err(invalid_session());
        }
        let user = match self.store.user(&row.tenant_id, &row.user_id).await {
            Ok(u) => u.filter(|u| u.is_active).ok_or_else(invalid_session)?,
            Err(e) => return self.last_good.or_stale(&h, e, unexpired),
        };
        let s = Arc::new(Session {
            tenant_id: row.tenant_id,
            user_id: row.user_id,
            username: user.username,
            profile: user.profile,
            expires_at: row.expires_at,
        });
        self.session_to_l2(&h, &s, started.elapsed()).await;
        self.last_good.remember(h.clone(), s.clone());
        self.sessions.insert(h, s.clone()).await;
        Ok(s)
    }

    /// Sessions held in the cache (approximate while writes are pending).
    pub fn session_cache_entries(&self) -> u64 {
        self.sessions.entry_count()
    }

    /// Revokes a token: the very next request with it is refused.
    pub async fn revoke(&self, bearer: &str) -> MosaicResult<()> {
        let h = token::hash(bearer);
        self.store.revoke_session(&h).await?;
        self.forget_sessions(&[h]).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::{VERIFIED_HERE, VERIFIED_TOTAL};
    use std::sync::atomic::Ordering;

    fn verified_here() -> u32 {
        VERIFIED_HERE.with(|c| c.get())
    }

    /// On a single-threaded runtime the test's thread is the only async
    /// worker: an argon2 check run inline would be counted on it.
    #[tokio::test(flavor = "current_thread")]
    async fn every_password_check_runs_on_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            mosaic_store::SqliteMetaStore::open(&dir.path().join("metadata.sqlite")).unwrap(),
        );
        let auth = AuthService::new(store, DEFAULT_TOKEN_TTL);
        auth.create_tenant(NewTenant {
            name: "Acme".into(),
            subdomain: "acme".into(),
            tier: "starter".into(),
            admin_username: "ann@acme.test".into(),
            admin_password: "correct-horse-battery".into(),
            admin_email: None,
        })
        .await
        .unwrap();
        let before = verified_here();
        let total = VERIFIED_TOTAL.load(Ordering::SeqCst);
        // An unknown username still spends one argon2 verification (so
        // timing tells nothing), off this thread.
        assert!(auth
            .authenticate("nobody@acme.test", "correct-horse-battery")
            .await
            .unwrap()
            .is_none());
        assert!(auth
            .authenticate("ann@acme.test", "wrong-horse-battery")
            .await
            .unwrap()
            .is_none());
        assert!(auth
            .authenticate("ann@acme.test", "correct-horse-battery")
            .await
            .unwrap()
            .is_some());
        assert_eq!(verified_here(), before, "argon2 ran on the async worker");
        assert!(
            VERIFIED_TOTAL.load(Ordering::SeqCst) >= total + 3,
            "three checks ran"
        );
    }
}
