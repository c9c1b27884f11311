//! PostgreSQL implementation of [`MetaStore`]: tenants, users, sessions and
//! object definitions in the metadata database.

use crate::migrate::migrate_metadata;
use crate::pool::{millis, with_client, write_tx, PgPool, Step};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use mosaic_store::meta_store::{MetaStore, ObjectRow, SessionRow, TenantRow, UserRow};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use tokio_postgres::Row;

/// The metadata database on PostgreSQL. [`crate::PgAccessStore`] shares its pool.
#[derive(Clone, Debug)]
pub struct PgMetaStore {
    pool: PgPool,
}

impl PgMetaStore {
    /// Connects with a pool of `pool_size` connections and applies any
    /// missing migrations. An unreachable database → `SERVICE_UNAVAILABLE`.
    pub async fn connect(url: &str, pool_size: usize) -> MosaicResult<PgMetaStore> {
        let pool = PgPool::new(url, pool_size)?;
        migrate_metadata(&pool).await?;
        Ok(PgMetaStore { pool })
    }

    /// The store on an already migrated pool.
    pub fn new(pool: PgPool) -> PgMetaStore {
        PgMetaStore { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn tenant_row(r: &Row) -> Result<TenantRow, tokio_postgres::Error> {
    Ok(TenantRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        subdomain: r.try_get(2)?,
        tier: r.try_get(3)?,
        status: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

pub(crate) const USER_COLS: &str =
    "id, tenant_id, username, email, password_hash, is_active, profile, created_at, role_id, must_change_password";

pub(crate) fn user_row(r: &Row) -> Result<UserRow, tokio_postgres::Error> {
    Ok(UserRow {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        username: r.try_get(2)?,
        email: r.try_get(3)?,
        password_hash: r.try_get(4)?,
        is_active: r.try_get(5)?,
        profile: r.try_get(6)?,
        created_at: r.try_get(7)?,
        role_id: r.try_get(8)?,
        must_change_password: r.try_get(9)?,
    })
}

fn object_row(r: &Row) -> Result<ObjectRow, tokio_postgres::Error> {
    Ok(ObjectRow {
        tenant_id: r.try_get(0)?,
        id: r.try_get(1)?,
        api_name: r.try_get(2)?,
        version: r.try_get(3)?,
        definition: r.try_get(4)?,
    })
}

const OBJECT_COLS: &str = "tenant_id, id, api_name, version, definition";

pub(crate) fn username_taken(username: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::DUPLICATE_VALUE,
        "username",
        format!(
            "the username '{username}' is already taken (usernames are unique across all tenants)"
        ),
    )
}

pub(crate) async fn username_exists<C: GenericClient + Sync>(c: &C, username: &str) -> Step<bool> {
    let st = c
        .prepare_cached("SELECT 1 FROM users WHERE username_lc = $1")
        .await?;
    Ok(c.query_opt(&st, &[&username.to_lowercase()])
        .await?
        .is_some())
}

pub(crate) async fn insert_user<C: GenericClient + Sync>(c: &C, u: &UserRow) -> Step<()> {
    let st = c
        .prepare_cached(
            "INSERT INTO users (id, tenant_id, username, username_lc, email, password_hash, is_active, profile, created_at, role_id, must_change_password) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .await?;
    c.execute(
        &st,
        &[
            &u.id,
            &u.tenant_id,
            &u.username,
            &u.username.to_lowercase(),
            &u.email,
            &u.password_hash,
            &u.is_active,
            &u.profile,
            &millis(&u.created_at),
            &u.role_id,
            &u.must_change_password,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_session<C: GenericClient + Sync>(c: &C, s: &SessionRow) -> Step<()> {
    let st = c
        .prepare_cached(
            "INSERT INTO sessions (token_hash, tenant_id, user_id, issued_at, expires_at, revoked) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    c.execute(
        &st,
        &[
            &s.token_hash,
            &s.tenant_id,
            &s.user_id,
            &millis(&s.issued_at),
            &millis(&s.expires_at),
            &s.revoked,
        ],
    )
    .await?;
    Ok(())
}

fn object_exists(name: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::DUPLICATE_VALUE,
        "api_name",
        format!("an object named '{name}' already exists"),
    )
}

#[async_trait]
impl MetaStore for PgMetaStore {
    async fn create_tenant(
        &self,
        t: TenantRow,
        u: UserRow,
        s: Option<SessionRow>,
    ) -> MosaicResult<()> {
        write_tx!(self.pool, |tx| {
            let st = tx
                .prepare_cached("SELECT 1 FROM tenants WHERE subdomain = $1")
                .await?;
            if tx.query_opt(&st, &[&t.subdomain]).await?.is_some() {
                return Err(MosaicError::field(
                    ErrorCode::DUPLICATE_VALUE,
                    "subdomain",
                    format!("the subdomain '{}' is already taken", t.subdomain),
                )
                .into());
            }
            if username_exists(tx, &u.username).await? {
                return Err(username_taken(&u.username).into());
            }
            let st = tx
                .prepare_cached(
                    "INSERT INTO tenants (id, name, subdomain, tier, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &t.id,
                    &t.name,
                    &t.subdomain,
                    &t.tier,
                    &t.status,
                    &millis(&t.created_at),
                ],
            )
            .await?;
            insert_user(tx, &u).await?;
            if let Some(s) = &s {
                insert_session(tx, s).await?;
            }
            Ok(())
        })
    }

    async fn tenant(&self, id: &str) -> MosaicResult<Option<TenantRow>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(
                    "SELECT id, name, subdomain, tier, status, created_at FROM tenants WHERE id = $1",
                )
                .await?;
            match c.query_opt(&st, &[&id]).await? {
                Some(r) => Ok(Some(tenant_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn user_by_username(&self, username: &str) -> MosaicResult<Option<UserRow>> {
        let lc = username.to_lowercase();
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {USER_COLS} FROM users WHERE username_lc = $1"
                ))
                .await?;
            match c.query_opt(&st, &[&lc]).await? {
                Some(r) => Ok(Some(user_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn user(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<UserRow>> {
        with_client!(self.pool, |c| crate::access::get_user(c, tenant_id, id)
            .await)
    }

    async fn create_session(&self, s: SessionRow) -> MosaicResult<()> {
        with_client!(self.pool, |c| insert_session(c, &s).await)
    }

    async fn session(&self, token_hash: &str) -> MosaicResult<Option<SessionRow>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(
                    "SELECT token_hash, tenant_id, user_id, issued_at, expires_at, revoked FROM sessions WHERE token_hash = $1",
                )
                .await?;
            match c.query_opt(&st, &[&token_hash]).await? {
                Some(r) => Ok(Some(SessionRow {
                    token_hash: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    user_id: r.try_get(2)?,
                    issued_at: r.try_get(3)?,
                    expires_at: r.try_get(4)?,
                    revoked: r.try_get(5)?,
                })),
                None => Ok(None),
            }
        })
    }

    async fn revoke_session(&self, token_hash: &str) -> MosaicResult<()> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached("UPDATE sessions SET revoked = TRUE WHERE token_hash = $1")
                .await?;
            c.execute(&st, &[&token_hash]).await?;
            Ok(())
        })
    }

    async fn list_objects(&self, tenant_id: &str) -> MosaicResult<Vec<ObjectRow>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {OBJECT_COLS} FROM objects WHERE tenant_id = $1 ORDER BY api_name_lc"
                ))
                .await?;
            let rows = c.query(&st, &[&tenant_id]).await?;
            Ok(rows.iter().map(object_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn object_by_name(
        &self,
        tenant_id: &str,
        api_name: &str,
    ) -> MosaicResult<Option<ObjectRow>> {
        let lc = api_name.to_lowercase();
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {OBJECT_COLS} FROM objects WHERE tenant_id = $1 AND api_name_lc = $2"
                ))
                .await?;
            match c.query_opt(&st, &[&tenant_id, &lc]).await? {
                Some(r) => Ok(Some(object_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn object_by_id(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<ObjectRow>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {OBJECT_COLS} FROM objects WHERE tenant_id = $1 AND id = $2"
                ))
                .await?;
            match c.query_opt(&st, &[&tenant_id, &id]).await? {
                Some(r) => Ok(Some(object_row(&r)?)),
                None => Ok(None),
            }
        })
    }

    async fn insert_object(&self, row: ObjectRow) -> MosaicResult<()> {
        let lc = row.api_name.to_lowercase();
        write_tx!(self.pool, |tx| {
            let st = tx
                .prepare_cached(
                    "SELECT api_name FROM objects WHERE tenant_id = $1 AND api_name_lc = $2",
                )
                .await?;
            if let Some(r) = tx.query_opt(&st, &[&row.tenant_id, &lc]).await? {
                let name: String = r.try_get(0)?;
                return Err(object_exists(&name).into());
            }
            let st = tx
                .prepare_cached(
                    "INSERT INTO objects (tenant_id, id, api_name, api_name_lc, version, definition) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?;
            tx.execute(
                &st,
                &[
                    &row.tenant_id,
                    &row.id,
                    &row.api_name,
                    &lc,
                    &row.version,
                    &row.definition,
                ],
            )
            .await?;
            Ok(())
        })
    }

    async fn update_object(&self, row: ObjectRow, expected_version: i64) -> MosaicResult<()> {
        let lc = row.api_name.to_lowercase();
        write_tx!(self.pool, |tx| {
            let st = tx
                .prepare_cached(
                    "SELECT api_name FROM objects WHERE tenant_id = $1 AND api_name_lc = $2 AND id <> $3",
                )
                .await?;
            if let Some(r) = tx.query_opt(&st, &[&row.tenant_id, &lc, &row.id]).await? {
                let name: String = r.try_get(0)?;
                return Err(object_exists(&name).into());
            }
            let st = tx
                .prepare_cached(
                    "UPDATE objects SET api_name = $1, api_name_lc = $2, version = $3, definition = $4 WHERE tenant_id = $5 AND id = $6 AND version = $7",
                )
                .await?;
            let n = tx
                .execute(
                    &st,
                    &[
                        &row.api_name,
                        &lc,
                        &row.version,
                        &row.definition,
                        &row.tenant_id,
                        &row.id,
                        &expected_version,
                    ],
                )
                .await?;
            if n == 0 {
                let st = tx
                    .prepare_cached("SELECT version FROM objects WHERE tenant_id = $1 AND id = $2")
                    .await?;
                let current: Option<i64> =
                    match tx.query_opt(&st, &[&row.tenant_id, &row.id]).await? {
                        Some(r) => Some(r.try_get(0)?),
                        None => None,
                    };
                return Err(match current {
                    None => MosaicError::not_found(format!("object '{}' not found", row.api_name)),
                    Some(v) => MosaicError::field(
                        ErrorCode::CONFLICT,
                        "version",
                        format!(
                            "object '{}' was changed concurrently: current version is {v}, the update was based on {expected_version}",
                            row.api_name
                        ),
                    ),
                }
                .into());
            }
            Ok(())
        })
    }

    async fn delete_object(&self, tenant_id: &str, id: &str) -> MosaicResult<()> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached("DELETE FROM objects WHERE tenant_id = $1 AND id = $2")
                .await?;
            c.execute(&st, &[&tenant_id, &id]).await?;
            Ok(())
        })
    }
}
