//! The [`OperatorStore`] on PostgreSQL, in the metadata database: operator
//! users, their sessions and the platform audit log (platform-level rows,
//! no tenant).

use crate::meta::PgMetaStore;
use crate::pool::{millis, with_client, write_tx};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use mosaic_store::operators::{
    taken_username, OperatorRow, OperatorSessionRow, OperatorStore, PlatformAuditRow,
};
use mosaic_types::MosaicResult;

#[async_trait]
impl OperatorStore for PgMetaStore {
    async fn create_operator(&self, row: OperatorRow) -> MosaicResult<()> {
        let lc = row.username.to_lowercase();
        let at = millis(&row.created_at);
        write_tx!(self.pool(), |tx| {
            let taken = tx
                .query_opt(
                    "SELECT id FROM operator_users WHERE username_lc = $1",
                    &[&lc],
                )
                .await?;
            if taken.is_some() {
                return Err(taken_username(&row.username).into());
            }
            tx.execute(
                "INSERT INTO operator_users (id, username, username_lc, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&row.id, &row.username, &lc, &row.password_hash, &at],
            )
            .await?;
            Ok(())
        })
    }

    async fn operator_by_username(&self, username: &str) -> MosaicResult<Option<OperatorRow>> {
        let lc = username.to_lowercase();
        with_client!(self.pool(), |c| {
            let r = c
                .query_opt(
                    "SELECT id, username, password_hash, created_at FROM operator_users WHERE username_lc = $1",
                    &[&lc],
                )
                .await?;
            Ok(match r {
                Some(r) => Some(OperatorRow {
                    id: r.try_get(0)?,
                    username: r.try_get(1)?,
                    password_hash: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                }),
                None => None,
            })
        })
    }

    async fn operator_count(&self) -> MosaicResult<u64> {
        with_client!(self.pool(), |c| {
            let n: i64 = c
                .query_one("SELECT count(*) FROM operator_users", &[])
                .await?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }

    async fn create_operator_session(&self, row: OperatorSessionRow) -> MosaicResult<()> {
        let (created, expires) = (millis(&row.created_at), millis(&row.expires_at));
        with_client!(self.pool(), |c| {
            c.execute(
                "INSERT INTO operator_sessions (token_hash, operator_id, username, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&row.token_hash, &row.operator_id, &row.username, &created, &expires],
            )
            .await?;
            Ok(())
        })
    }

    async fn operator_session(&self, token_hash: &str) -> MosaicResult<Option<OperatorSessionRow>> {
        with_client!(self.pool(), |c| {
            let r = c
                .query_opt(
                    "SELECT token_hash, operator_id, username, created_at, expires_at FROM operator_sessions WHERE token_hash = $1",
                    &[&token_hash],
                )
                .await?;
            Ok(match r {
                Some(r) => Some(OperatorSessionRow {
                    token_hash: r.try_get(0)?,
                    operator_id: r.try_get(1)?,
                    username: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    expires_at: r.try_get(4)?,
                }),
                None => None,
            })
        })
    }

    async fn delete_operator_session(&self, token_hash: &str) -> MosaicResult<()> {
        with_client!(self.pool(), |c| {
            c.execute(
                "DELETE FROM operator_sessions WHERE token_hash = $1",
                &[&token_hash],
            )
            .await?;
            Ok(())
        })
    }

    async fn purge_operator_sessions(&self, now: DateTime<Utc>) -> MosaicResult<u64> {
        with_client!(self.pool(), |c| {
            Ok(c.execute(
                "DELETE FROM operator_sessions WHERE expires_at < $1",
                &[&now],
            )
            .await?)
        })
    }

    async fn append_platform_audit(&self, row: PlatformAuditRow) -> MosaicResult<()> {
        let at = millis(&row.at);
        with_client!(self.pool(), |c| {
            c.execute(
                "INSERT INTO platform_audit (id, actor, action, target, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&row.id, &row.actor, &row.action, &row.target, &row.detail, &at],
            )
            .await?;
            Ok(())
        })
    }

    async fn platform_audit(
        &self,
        limit: u32,
        before: Option<&str>,
    ) -> MosaicResult<Vec<PlatformAuditRow>> {
        let limit = i64::from(limit);
        with_client!(self.pool(), |c| {
            let rows = c
                .query(
                    "SELECT id, actor, action, target, detail, at FROM platform_audit WHERE ($1::TEXT IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                    &[&before, &limit],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(PlatformAuditRow {
                        id: r.try_get(0)?,
                        actor: r.try_get(1)?,
                        action: r.try_get(2)?,
                        target: r.try_get(3)?,
                        detail: r.try_get(4)?,
                        at: r.try_get(5)?,
                    })
                })
                .collect()
        })
    }
}
