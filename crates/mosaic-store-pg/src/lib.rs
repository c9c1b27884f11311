//! Mosaic storage on PostgreSQL: the metadata database's stores
//! ([`PgMetaStore`], [`PgAccessStore`]), a records shard ([`PgRecordStore`]:
//! records, queries, search, outbox, field history and shares) and the
//! idempotency keys of a records database ([`PgIdempotencyStore`]), behind
//! the same traits as the embedded SQLite backend in `mosaic-store`, with
//! the same errors, orderings and audit semantics (the conformance suite in
//! `tests/` runs one set of behavioural tests against both, and a
//! differential test runs the same SOQL on both shards).
//!
//! - [`pool`]: the connection pool, error mapping (an unreachable database is
//!   `SERVICE_UNAVAILABLE`), serializable write transactions with retries;
//! - [`replication`]: metadata read replicas (log positions for
//!   read-your-writes, [`replicated_meta_store`]);
//! - [`migrate`]: numbered migrations recorded in `schema_version`, applied
//!   at connect under an advisory lock.
//!
//! **Architecture invariant:** every statement is a prepared statement with
//! bound parameters; statements on tenant data carry `tenant_id = $n`. The
//! exceptions are the look-ups that happen before a tenant is known (a
//! session or refresh token by hash, a user by globally unique username, a
//! connected app by client id, login-failure counters), the global expiry
//! purge of idempotency keys and the platform-wide outbox delivery (claims,
//! lease release, gauges), as on SQLite.

pub mod access;
pub mod automation;
mod bin;
pub mod bulk;
pub mod directory;
pub mod idempotency;
pub mod import;
pub mod meta;
pub mod migrate;
pub mod operators;
mod param;
pub mod planner_stats;
pub mod pool;
pub mod query;
pub mod recent;
pub mod records;
pub mod replication;
pub mod scratch;
pub mod sharing;
pub mod tls;
pub mod transfer;

pub use access::PgAccessStore;
pub use idempotency::PgIdempotencyStore;
pub use meta::PgMetaStore;
pub use migrate::{migrate, migrate_idempotency, migrate_metadata, migrate_records, Migration};
pub use pool::PgPool;
pub use records::PgRecordStore;
pub use replication::{replicated_meta_store, PgLogPosition, ReplicationRole};
pub use transfer::migrate_transfer;

/// The tenant predicate, checked over this crate's source: every SQL
/// statement that reads or writes tenant data names `tenant_id`, except the
/// look-ups listed in the crate documentation.
#[cfg(test)]
mod tenant_predicate {
    const SOURCES: [(&str, &str); 15] = [
        ("operators.rs", include_str!("operators.rs")),
        ("replication.rs", include_str!("replication.rs")),
        ("transfer.rs", include_str!("transfer.rs")),
        ("directory.rs", include_str!("directory.rs")),
        ("meta.rs", include_str!("meta.rs")),
        ("access.rs", include_str!("access.rs")),
        ("idempotency.rs", include_str!("idempotency.rs")),
        ("migrate.rs", include_str!("migrate.rs")),
        ("records.rs", include_str!("records.rs")),
        ("recent.rs", include_str!("recent.rs")),
        ("automation.rs", include_str!("automation.rs")),
        ("sharing.rs", include_str!("sharing.rs")),
        ("query.rs", include_str!("query.rs")),
        ("import.rs", include_str!("import.rs")),
        ("bulk.rs", include_str!("bulk.rs")),
    ];

    /// Statements allowed without `tenant_id`, by a distinctive fragment.
    const GLOBAL: [&str; 35] = [
        // write-ahead-log positions of the whole database
        "pg_current_wal_insert_lsn()",
        "pg_last_wal_replay_lsn()",
        // the shard directory is the platform's, not a tenant's
        "shards",
        "directory_version",
        "tenant_shards",
        "platform_settings",
        // operators and their audit log are the platform's
        "operator_users",
        "operator_sessions",
        "platform_audit",
        // platform-wide counts for the status view and `mosaic shard list`
        "SELECT count(*) FROM tenants",
        "SELECT count(*) FROM object_records",
        "FROM tenants WHERE",           // tenant by id / subdomain
        "INSERT INTO tenants",          // the tenant row itself
        "FROM users WHERE username_lc", // usernames are global
        "FROM sessions WHERE token_hash",
        "UPDATE sessions SET revoked = TRUE WHERE token_hash",
        "FROM refresh_tokens WHERE token_hash",
        "UPDATE refresh_tokens SET revoked = TRUE WHERE token_hash",
        "FROM connected_apps WHERE client_id",
        "login_failures",
        "DELETE FROM idempotency_keys WHERE expires_at",
        // the purge of expired credentials spans tenants (expired rows only)
        "DELETE FROM sessions WHERE expires_at",
        "DELETE FROM refresh_tokens WHERE expires_at",
        // a migration's backfill of every existing refresh token
        "UPDATE refresh_tokens SET family_id = token_hash",
        "schema_version",
        "pg_advisory_xact_lock",
        // outbox delivery spans the shard's tenants (claims name them);
        // a stopping instance releases its own leases in every tenant
        "UPDATE outbox SET lease_until = NULL, lease_owner = NULL WHERE lease_owner = $1",
        "COUNT(*) FILTER (WHERE state = $1)",
        "CREATE FUNCTION mosaic_", // pure SQL functions of a value
        "CREATE TRIGGER",          // DDL: the move triggers read the row's tenant
        // `mosaic migrate-metadata` copies the whole metadata database
        // (every tenant at once) into an empty one
        "information_schema.columns",
        "DELETE FROM {}",
        "INSERT INTO {} ({}) {}VALUES ({})",
        "SELECT setval(pg_get_serial_sequence(",
        // a stopping instance releases its own bulk-job leases in every tenant
        "UPDATE bulk_jobs SET lease_until = NULL WHERE lease_owner = $1",
    ];

    /// Heads of statements built in pieces, whose tenant predicate is
    /// appended by the builder (`WHERE tenant_id = …` after the column
    /// list; the query generator's `scope`, debug-asserted per statement).
    const HEADS: [&str; 6] = [
        "SELECT ",
        // A roll-up's correlated aggregate, inside the wrapper below.
        "(SELECT ",
        // The roll-up wrapper around the root source: its inner SELECT
        // carries the tenant predicate (query.rs, root_source).
        " FROM (SELECT r0.*",
        "SELECT {inner} FROM object_records {sp}",
        "SELECT {SYSTEM_COLS}",
        "UPDATE object_records SET modified_by = $1, modified_at = $2",
    ];

    /// The contents of the string literals of `src` (plain and raw).
    fn literals(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        let b = src.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            } else if b[i] == b'r' && b.get(i + 1) == Some(&b'#') && b.get(i + 2) == Some(&b'"') {
                let end = src[i + 3..].find("\"#").expect("raw string ends") + i + 3;
                out.push(src[i + 3..end].to_string());
                i = end + 2;
            } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
                i += 3; // a char literal such as '"'
            } else if b[i] == b'"' {
                let mut j = i + 1;
                while b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                out.push(src[i + 1..j].to_string());
                i = j + 1;
            } else {
                i += 1;
            }
        }
        out
    }

    fn is_statement(s: &str) -> bool {
        ["SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM"]
            .iter()
            .any(|k| s.contains(k))
    }

    #[test]
    fn every_statement_on_tenant_data_names_the_tenant() {
        let mut checked = 0;
        for (file, src) in SOURCES {
            for lit in literals(src).into_iter().filter(|l| is_statement(l)) {
                checked += 1;
                if lit.contains("tenant_id")
                    || GLOBAL.iter().any(|g| lit.contains(g))
                    || HEADS.contains(&lit.as_str())
                {
                    continue;
                }
                panic!("{file}: a statement without the tenant predicate: {lit}");
            }
        }
        assert!(checked > 110, "the scanner found only {checked} statements");
    }

    #[test]
    fn the_scanner_sees_a_statement_without_the_predicate() {
        let src = r##"let q = "SELECT id FROM roles WHERE id = $1"; // "not this""##;
        assert_eq!(literals(src), ["SELECT id FROM roles WHERE id = $1"]);
        assert!(is_statement(&literals(src)[0]));
    }
}
