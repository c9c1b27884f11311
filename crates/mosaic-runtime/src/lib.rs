//! The Mosaic runtime: one generic record pipeline that serves every
//! tenant's objects from their metadata — coercion and validation, defaults,
//! auto numbers, encryption of sensitive fields, relationship checks,
//! cascades — and the wiring of the stores it runs on.
//!
//! **Architecture invariant:** the runtime speaks domain types
//! ([`RecordView`], [`mosaic_types::Value`]); it knows nothing of HTTP or of
//! the Salesforce-shaped JSON, which belong to `mosaic-server`.

pub mod access;
pub mod ai;
pub mod api_usage;
pub mod bulk;
pub mod cache;
/// The cache tier's crate, for the binary's configuration.
pub use mosaic_cache;
pub mod cipher;
pub mod clock;
pub mod cursors;
pub mod files;
pub mod formula_eval;
pub mod health;
pub mod history;
pub mod hot;
pub mod layouts;
pub mod list_views;
pub mod outbox;
pub mod platform;
pub mod query;
mod query_formula;
pub mod records;
pub mod recycle_bin;
pub mod resilience;
pub mod rollups;
pub mod sharing;
pub mod tenant_move;
pub mod workflow;
pub mod zones;

pub use platform::{Platform, PlatformConfig};
pub use records::{Caller, RecordErrors, RecordView, WriteOutcome};
