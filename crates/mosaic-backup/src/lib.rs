//! Backups of the embedded deployment: online snapshots of every SQLite
//! database of a data directory, continuous shipping of their WAL frames,
//! point-in-time restore, and the integrity check a restored (or any) data
//! directory must pass before it serves.
//!
//! A target (a directory or `s3://bucket/prefix`) holds generations:
//!
//! ```text
//! generations/<id>/manifest.json            written last: the generation exists once it is there
//! generations/<id>/db/<file>/snapshot.sqlite  one consistent copy (SQLite's backup API)
//! generations/<id>/db/<file>/wal/<seq>-<first µs>-<last µs>.seg   committed pages, by commit
//! generations/<id>/files/field-encryption.key
//! ```
//!
//! See `docs/decisions/0033-embedded-backups-and-pitr.md` for why the design
//! is point-in-time at commit granularity.

pub mod check;
pub mod databases;
pub mod manifest;
pub mod restore;
pub mod retention;
pub mod segment;
pub mod shipper;
pub mod snapshot;
pub mod target;
pub mod wal;

pub use check::{check_data_dir, CheckReport, Finding};
pub use restore::{restore, RestoreOptions, RestorePoint, RestoreSummary};
pub use retention::Retention;
pub use shipper::{Shipper, ShipperConfig, ShipperHandle};
pub use snapshot::{backup_now, BackupSummary};
pub use target::Target;

/// Everything that can go wrong in a backup, a restore or a check.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The operator asked for something that cannot be done (bad target,
    /// non-empty directory, time before the first backup, …).
    #[error("{0}")]
    Refused(String),
    #[error("backup target: {0}")]
    Target(#[from] object_store::Error),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
}

impl BackupError {
    pub(crate) fn io(what: impl std::fmt::Display, e: std::io::Error) -> BackupError {
        BackupError::Io(what.to_string(), e)
    }
}

pub type BackupResult<T> = Result<T, BackupError>;

/// The Mosaic version recorded in every manifest.
pub const MOSAIC_VERSION: &str = env!("CARGO_PKG_VERSION");
