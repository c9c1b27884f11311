//! PostgreSQL implementation of [`IdempotencyStore`]: reserved and completed
//! `Idempotency-Key`s in a records database. The primary key
//! `(tenant_id, idem_key)` decides between concurrent reservations
//! (`INSERT … ON CONFLICT DO NOTHING` waits for a competing insert to commit
//! and then yields to it), so these statements run `READ COMMITTED`.

use crate::migrate::migrate_idempotency;
use crate::pool::{with_client, PgPool, Step};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use mosaic_store::idempotency::{IdempotencyStore, KeptResponse, KeyRecord, KeyState, Reservation};
use mosaic_types::{MosaicError, MosaicResult};

/// Idempotency keys on PostgreSQL (beside a shard's records).
#[derive(Clone, Debug)]
pub struct PgIdempotencyStore {
    pool: PgPool,
}

impl PgIdempotencyStore {
    /// Connects with a pool of `pool_size` connections and creates the key
    /// table if needed.
    pub async fn connect(url: &str, pool_size: usize) -> MosaicResult<PgIdempotencyStore> {
        let pool = PgPool::new(url, pool_size)?;
        PgIdempotencyStore::open(pool).await
    }

    /// The store on `pool` (the records database's), migrating it first.
    pub async fn open(pool: PgPool) -> MosaicResult<PgIdempotencyStore> {
        migrate_idempotency(&pool).await?;
        crate::transfer::migrate_transfer(&pool).await?;
        Ok(PgIdempotencyStore { pool })
    }
}

const SELECT_KEY: &str = "SELECT fingerprint, created_at, state, status, headers, body, body_kept \
     FROM idempotency_keys WHERE tenant_id = $1 AND idem_key = $2 AND expires_at > $3";

async fn read_key<C: GenericClient + Sync>(
    c: &C,
    tenant_id: &str,
    key: &str,
    now_ms: i64,
) -> Step<Option<KeyRecord>> {
    let st = c.prepare_cached(SELECT_KEY).await?;
    let Some(r) = c.query_opt(&st, &[&tenant_id, &key, &now_ms]).await? else {
        return Ok(None);
    };
    let fingerprint: String = r.try_get(0)?;
    let created_at_ms: i64 = r.try_get(1)?;
    let state: String = r.try_get(2)?;
    let state = if state == "complete" {
        let status: Option<i32> = r.try_get(3)?;
        let status = status
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| MosaicError::internal("idempotency key without a status"))?;
        let headers: Option<String> = r.try_get(4)?;
        let headers: Vec<(String, String)> = match headers {
            Some(h) => serde_json::from_str(&h)
                .map_err(|e| MosaicError::internal(format!("idempotency headers: {e}")))?,
            None => Vec::new(),
        };
        let body: Option<Vec<u8>> = r.try_get(5)?;
        let body_kept: bool = r.try_get(6)?;
        KeyState::Complete(KeptResponse {
            status,
            headers,
            body: if body_kept {
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
impl IdempotencyStore for PgIdempotencyStore {
    async fn reserve(
        &self,
        tenant_id: &str,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> MosaicResult<Reservation> {
        let token = mosaic_types::new_id();
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(
                    "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idem_key = $2 AND expires_at <= $3",
                )
                .await?;
            c.execute(&st, &[&tenant_id, &key, &now_ms]).await?;
            let st = c
                .prepare_cached(
                    "INSERT INTO idempotency_keys \
                     (tenant_id, idem_key, fingerprint, reservation, state, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, 'pending', $5, $6) \
                     ON CONFLICT (tenant_id, idem_key) DO NOTHING",
                )
                .await?;
            let inserted = c
                .execute(
                    &st,
                    &[
                        &tenant_id,
                        &key,
                        &fingerprint,
                        &token,
                        &now_ms,
                        &expires_at_ms,
                    ],
                )
                .await?;
            if inserted == 1 {
                return Ok(Reservation::Reserved {
                    token: token.clone(),
                });
            }
            // The insert waited for the competing one to commit; this
            // statement's snapshot sees it.
            Ok(read_key(c, tenant_id, key, now_ms)
                .await?
                .map(Reservation::Existing)
                .ok_or_else(|| MosaicError::internal("idempotency key vanished while reserving"))?)
        })
    }

    async fn get(
        &self,
        tenant_id: &str,
        key: &str,
        now_ms: i64,
    ) -> MosaicResult<Option<KeyRecord>> {
        with_client!(self.pool, |c| read_key(c, tenant_id, key, now_ms).await)
    }

    async fn complete(
        &self,
        tenant_id: &str,
        key: &str,
        token: &str,
        response: KeptResponse,
    ) -> MosaicResult<bool> {
        let headers = serde_json::to_string(&response.headers)
            .map_err(|e| MosaicError::internal(format!("idempotency headers: {e}")))?;
        let status = i32::from(response.status);
        let kept = response.body.is_some();
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(
                    "UPDATE idempotency_keys SET state = 'complete', status = $4, headers = $5, \
                     body = $6, body_kept = $7 \
                     WHERE tenant_id = $1 AND idem_key = $2 AND reservation = $3 AND state = 'pending'",
                )
                .await?;
            let n = c
                .execute(
                    &st,
                    &[
                        &tenant_id,
                        &key,
                        &token,
                        &status,
                        &headers,
                        &response.body,
                        &kept,
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }

    async fn release(&self, tenant_id: &str, key: &str, token: &str) -> MosaicResult<()> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(
                    "DELETE FROM idempotency_keys \
                     WHERE tenant_id = $1 AND idem_key = $2 AND reservation = $3 AND state = 'pending'",
                )
                .await?;
            c.execute(&st, &[&tenant_id, &key, &token]).await?;
            Ok(())
        })
    }

    async fn purge_expired(&self, now_ms: i64) -> MosaicResult<u64> {
        with_client!(self.pool, |c| {
            // Deliberately global (no tenant predicate): expiry is the same
            // rule for every tenant, and one indexed range delete beats a
            // pass per tenant. It reads no tenant's data.
            let st = c
                .prepare_cached("DELETE FROM idempotency_keys WHERE expires_at <= $1 AND tenant_id NOT IN (SELECT tenant_id FROM tenant_moves WHERE state <> 'journal')")
                .await?;
            Ok(c.execute(&st, &[&now_ms]).await?)
        })
    }
}
