//! Idempotency keys: the reservation and the kept response of every write a
//! client sent with an `Idempotency-Key`, so that a retry is answered from
//! the first request's outcome instead of running a second time.
//!
//! A key lives in one tenant's namespace (`tenant_id` is part of the primary
//! key and of every statement but the global expiry purge). Its life:
//! reserved (`pending`, inserted atomically — the unique key decides which
//! of two concurrent requests runs) → `complete` with the response, or
//! released (deleted) when the response must not be kept → purged after its
//! expiry. Times are Unix milliseconds passed in by the caller, so the clock
//! is the caller's (and a test's) to choose.

use crate::sqlite::{map_sql, SqliteDb};
use async_trait::async_trait;
use mosaic_types::{MosaicError, MosaicResult};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::Arc;

/// DDL of the key table, applied to the records database (idempotent).
pub const IDEMPOTENCY_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT OR IGNORE INTO schema_version VALUES ('idempotency', 1);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  tenant_id TEXT NOT NULL,
  idem_key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  reservation TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'complete')),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  status INTEGER,
  headers TEXT,
  body BLOB,
  body_kept INTEGER NOT NULL DEFAULT 0,
  UNIQUE (tenant_id, idem_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys (expires_at);
"#;

/// The response a completed keyed request produced, as kept for replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptResponse {
    pub status: u16,
    /// The headers worth replaying (name, value), in order.
    pub headers: Vec<(String, String)>,
    /// The body byte for byte; `None` when it was too large to keep (the
    /// request ran, but its response cannot be replayed).
    pub body: Option<Vec<u8>>,
}

/// Where a key stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Reserved by a request that has not finished (or never will: its
    /// process stopped while running it).
    Pending,
    Complete(KeptResponse),
}

/// A stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// What the reserving request was (method, caller, path, body digest).
    pub fingerprint: String,
    /// When the key was reserved (Unix ms).
    pub created_at_ms: i64,
    pub state: KeyState,
}

/// The outcome of [`IdempotencyStore::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The caller owns the key now; `token` identifies its reservation to
    /// [`IdempotencyStore::complete`] and [`IdempotencyStore::release`].
    Reserved { token: String },
    /// Another request holds (or held) the key.
    Existing(KeyRecord),
}

/// Storage of idempotency keys, one namespace per tenant.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Reserves `key` for a request with `fingerprint` unless a live key
    /// exists; a key whose expiry has passed counts as absent (and is
    /// replaced). Durable before it returns.
    async fn reserve(
        &self,
        tenant_id: &str,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> MosaicResult<Reservation>;

    /// The live key, if any (expired keys are absent).
    async fn get(&self, tenant_id: &str, key: &str, now_ms: i64)
        -> MosaicResult<Option<KeyRecord>>;

    /// Keeps `response` for the reservation `token`; false when that
    /// reservation no longer exists (it expired and was replaced).
    async fn complete(
        &self,
        tenant_id: &str,
        key: &str,
        token: &str,
        response: KeptResponse,
    ) -> MosaicResult<bool>;

    /// Drops the pending reservation `token`, so the key may be used again.
    async fn release(&self, tenant_id: &str, key: &str, token: &str) -> MosaicResult<()>;

    /// Deletes every key whose expiry is at or before `now_ms`, in all
    /// tenants; returns how many.
    async fn purge_expired(&self, now_ms: i64) -> MosaicResult<u64>;
}

/// [`IdempotencyStore`] in a SQLite database (the records database: a key
/// lives beside the records its request wrote).
pub struct SqliteIdempotencyStore {
    db: Arc<SqliteDb>,
}

impl SqliteIdempotencyStore {
    /// Creates the key table in `db` if needed.
    pub fn open(db: Arc<SqliteDb>) -> MosaicResult<SqliteIdempotencyStore> {
        // Schema changes are rare and at start-up: a short-lived connection
        // applies the DDL; the pool's connections see it on their next
        // statement (SQLite checks the schema cookie).
        let conn = Connection::open(db.path()).map_err(map_sql)?;
        conn.busy_timeout(crate::sqlite::BUSY_TIMEOUT)
            .map_err(map_sql)?;
        conn.execute_batch(IDEMPOTENCY_SCHEMA).map_err(map_sql)?;
        conn.execute_batch(crate::sqlite_transfer::MOVES_TABLE)
            .map_err(map_sql)?;
        Ok(SqliteIdempotencyStore { db })
    }
}

const SELECT_KEY: &str = "SELECT fingerprint, created_at, state, status, headers, body, body_kept \
     FROM idempotency_keys WHERE tenant_id = ?1 AND idem_key = ?2 AND expires_at > ?3";

fn read_key(
    conn: &Connection,
    tenant_id: &str,
    key: &str,
    now_ms: i64,
) -> MosaicResult<Option<KeyRecord>> {
    let row = conn
        .prepare_cached(SELECT_KEY)
        .map_err(map_sql)?
        .query_row(params![tenant_id, key, now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<Vec<u8>>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()
        .map_err(map_sql)?;
    let Some((fingerprint, created_at_ms, state, status, headers, body, body_kept)) = row else {
        return Ok(None);
    };
    let state = if state == "complete" {
        let status = status
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| MosaicError::internal("idempotency key without a status"))?;
        let headers: Vec<(String, String)> = match headers {
            Some(h) => serde_json::from_str(&h)
                .map_err(|e| MosaicError::internal(format!("idempotency headers: {e}")))?,
            None => Vec::new(),
        };
        KeyState::Complete(KeptResponse {
            status,
            headers,
            body: if body_kept != 0 {
                Some(body.unwrap_or_default())
            } else {
                None
            },
        })
    } else {
        KeyState::Pending
    };
    Ok(Some(KeyRecord {
        fingerprint,
        created_at_ms,
        state,
    }))
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn reserve(
        &self,
        tenant_id: &str,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> MosaicResult<Reservation> {
        let (tenant_id, key, fingerprint) = (
            tenant_id.to_string(),
            key.to_string(),
            fingerprint.to_string(),
        );
        let token = mosaic_types::new_id();
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND idem_key = ?2 AND expires_at <= ?3",
                )
                .map_err(map_sql)?
                .execute(params![tenant_id, key, now_ms])
                .map_err(map_sql)?;
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO idempotency_keys \
                         (tenant_id, idem_key, fingerprint, reservation, state, created_at, expires_at) \
                         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6) \
                         ON CONFLICT (tenant_id, idem_key) DO NOTHING",
                    )
                    .map_err(map_sql)?
                    .execute(params![tenant_id, key, fingerprint, token, now_ms, expires_at_ms])
                    .map_err(map_sql)?;
                if inserted == 1 {
                    return Ok(Reservation::Reserved { token });
                }
                read_key(conn, &tenant_id, &key, now_ms)?
                    .map(Reservation::Existing)
                    .ok_or_else(|| MosaicError::internal("idempotency key vanished while reserving"))
            })
            .await
    }

    async fn get(
        &self,
        tenant_id: &str,
        key: &str,
        now_ms: i64,
    ) -> MosaicResult<Option<KeyRecord>> {
        let (tenant_id, key) = (tenant_id.to_string(), key.to_string());
        self.db
            .read(move |conn| read_key(conn, &tenant_id, &key, now_ms))
            .await
    }

    async fn complete(
        &self,
        tenant_id: &str,
        key: &str,
        token: &str,
        response: KeptResponse,
    ) -> MosaicResult<bool> {
        let (tenant_id, key, token) = (tenant_id.to_string(), key.to_string(), token.to_string());
        let headers = serde_json::to_string(&response.headers)
            .map_err(|e| MosaicError::internal(format!("idempotency headers: {e}")))?;
        self.db
            .write(move |conn| {
                let kept = i64::from(response.body.is_some());
                let n = conn
                    .prepare_cached(
                        "UPDATE idempotency_keys SET state = 'complete', status = ?4, headers = ?5, \
                         body = ?6, body_kept = ?7 \
                         WHERE tenant_id = ?1 AND idem_key = ?2 AND reservation = ?3 AND state = 'pending'",
                    )
                    .map_err(map_sql)?
                    .execute(params![
                        tenant_id,
                        key,
                        token,
                        i64::from(response.status),
                        headers,
                        response.body,
                        kept
                    ])
                    .map_err(map_sql)?;
                Ok(n == 1)
            })
            .await
    }

    async fn release(&self, tenant_id: &str, key: &str, token: &str) -> MosaicResult<()> {
        let (tenant_id, key, token) = (tenant_id.to_string(), key.to_string(), token.to_string());
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM idempotency_keys \
                     WHERE tenant_id = ?1 AND idem_key = ?2 AND reservation = ?3 AND state = 'pending'",
                )
                .map_err(map_sql)?
                .execute(params![tenant_id, key, token])
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn purge_expired(&self, now_ms: i64) -> MosaicResult<u64> {
        self.db
            .write(move |conn| {
                // Deliberately global (no tenant predicate): expiry is the
                // same rule for every tenant, and one indexed range delete
                // beats a pass per tenant. It reads no tenant's data.
                let n = conn
                    .prepare_cached("DELETE FROM idempotency_keys WHERE expires_at <= ?1 AND tenant_id NOT IN (SELECT tenant_id FROM tenant_moves WHERE state <> 'journal')")
                    .map_err(map_sql)?
                    .execute(params![now_ms])
                    .map_err(map_sql)?;
                Ok(n as u64)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteIdempotencyStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(&dir.path().join("records.sqlite"), "").expect("open");
        (dir, SqliteIdempotencyStore::open(db).expect("schema"))
    }

    fn response(body: &[u8]) -> KeptResponse {
        KeptResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_vec()),
        }
    }

    #[tokio::test]
    async fn the_first_reservation_wins_and_the_second_sees_it() {
        let (_d, s) = store();
        let Reservation::Reserved { token } =
            s.reserve("t1", "k", "fp", 1_000, 9_000).await.unwrap()
        else {
            panic!("first reservation must win");
        };
        let Reservation::Existing(rec) = s.reserve("t1", "k", "fp", 1_001, 9_001).await.unwrap()
        else {
            panic!("second reservation must see the first");
        };
        assert_eq!(rec.state, KeyState::Pending);
        assert_eq!(rec.created_at_ms, 1_000);
        assert!(s
            .complete("t1", "k", &token, response(b"{}"))
            .await
            .unwrap());
        let rec = s.get("t1", "k", 2_000).await.unwrap().expect("kept");
        assert_eq!(rec.state, KeyState::Complete(response(b"{}")));
    }

    #[tokio::test]
    async fn tenants_have_separate_namespaces() {
        let (_d, s) = store();
        assert!(matches!(
            s.reserve("t1", "k", "a", 0, 100).await.unwrap(),
            Reservation::Reserved { .. }
        ));
        assert!(matches!(
            s.reserve("t2", "k", "b", 0, 100).await.unwrap(),
            Reservation::Reserved { .. }
        ));
        assert!(s.get("t3", "k", 1).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn released_and_expired_keys_are_absent_and_purged() {
        let (_d, s) = store();
        let Reservation::Reserved { token } = s.reserve("t1", "k", "fp", 0, 100).await.unwrap()
        else {
            panic!("reserve");
        };
        s.release("t1", "k", &token).await.unwrap();
        assert!(s.get("t1", "k", 1).await.unwrap().is_none());
        let Reservation::Reserved { token } = s.reserve("t1", "k", "fp", 0, 100).await.unwrap()
        else {
            panic!("reserve after release");
        };
        assert!(s.complete("t1", "k", &token, response(b"x")).await.unwrap());
        assert!(s.get("t1", "k", 100).await.unwrap().is_none(), "expired");
        // An expired key is replaced by a new reservation; the old one's
        // token no longer completes anything.
        assert!(matches!(
            s.reserve("t1", "k", "fp2", 100, 200).await.unwrap(),
            Reservation::Reserved { .. }
        ));
        assert!(!s.complete("t1", "k", &token, response(b"y")).await.unwrap());
        assert_eq!(s.purge_expired(199).await.unwrap(), 0);
        assert_eq!(s.purge_expired(200).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_response_too_large_to_keep_is_marked() {
        let (_d, s) = store();
        let Reservation::Reserved { token } = s.reserve("t1", "k", "fp", 0, 100).await.unwrap()
        else {
            panic!("reserve");
        };
        let mut r = response(b"");
        r.body = None;
        assert!(s.complete("t1", "k", &token, r.clone()).await.unwrap());
        assert_eq!(
            s.get("t1", "k", 1).await.unwrap().expect("kept").state,
            KeyState::Complete(r)
        );
    }
}
