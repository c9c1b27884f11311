//! Every time limit Mosaic puts on a call that leaves the process, in one
//! place. Each is the default of a setting where one exists (the field or
//! environment variable is named beside it); a call without a limit is a
//! request that can hang, so nothing external is called without one.

use std::time::Duration;

/// How long an embedded (SQLite) connection waits for a lock another
/// connection or process holds before failing with `UNABLE_TO_LOCK_ROW`.
pub const DB_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a database statement may run: PostgreSQL's `statement_timeout`
/// on every connection, and the bound of a SQLite reader's statement. A
/// request's own deadline, when sooner, stops the statement first
/// (`mosaic_store::deadline`).
pub const DB_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest to wait for a new database connection.
pub const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One outbound message delivery (HTTP POST to a receiver), connection
/// included. `AutomationConfig::http_timeout`.
pub const HTTP_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Establishing the TCP/TLS connection of an outbound delivery.
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One email alert handed to the SMTP server. `AutomationConfig::smtp_timeout`.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One Redis command (the L2 cache answers in a millisecond or is treated
/// as down: the database is the fallback).
pub const REDIS_COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// Establishing a Redis connection.
pub const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One LLM completion (the seed's AI targets are 2 s p50, 5 s p99).
pub const LLM_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request's deadline when the client names none (`MOSAIC_REQUEST_TIMEOUT_MS`).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// The shortest deadline a client may ask for with `X-Mosaic-Deadline-Ms`
/// (shorter ones are raised to it); the longest is the server's deadline.
pub const MIN_REQUEST_DEADLINE: Duration = Duration::from_millis(10);
