//! Mosaic storage on PostgreSQL: the metadata database's stores
//! ([`PgMetaStore`], [`PgAccessStore`]) and the idempotency keys of a
//! records database ([`PgIdempotencyStore`]), behind the same traits as the
//! embedded SQLite backend in `mosaic-store`, with the same errors, orderings
//! and audit semantics (the conformance suite in `tests/` runs one set of
//! behavioural tests against both).
//!
//! - [`pool`]: the connection pool, error mapping (an unreachable database is
//!   `SERVICE_UNAVAILABLE`), serializable write transactions with retries;
//! - [`migrate`]: numbered migrations recorded in `schema_version`, applied
//!   at connect under an advisory lock.
//!
//! **Architecture invariant:** every statement is a prepared statement with
//! bound parameters; statements on tenant data carry `tenant_id = $n`. The
//! exceptions are the look-ups that happen before a tenant is known (a
//! session or refresh token by hash, a user by globally unique username, a
//! connected app by client id, login-failure counters) and the global expiry
//! purge of idempotency keys, as on SQLite.

pub mod access;
pub mod idempotency;
pub mod meta;
pub mod migrate;
pub mod pool;

pub use access::PgAccessStore;
pub use idempotency::PgIdempotencyStore;
pub use meta::PgMetaStore;
pub use migrate::{migrate, migrate_idempotency, migrate_metadata, Migration};
pub use pool::PgPool;
