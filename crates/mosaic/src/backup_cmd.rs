//! `mosaic backup`, `mosaic restore`, `mosaic check` and the continuous
//! shipping `serve --backup-target` starts (crate `mosaic-backup`).

use clap::Args;
use mosaic_backup::{RestoreOptions, RestorePoint, Retention, ShipperConfig, Target};
use std::path::PathBuf;
use std::time::Duration;

/// Longest generation interval accepted (a snapshot at least this often).
const MAX_GENERATION_HOURS: u64 = 24 * 31;
/// Longest retention accepted, in days.
const MAX_RETENTION_DAYS: u64 = 3650;

/// Retention of generations, shard snapshots and WAL (the seed's schedule).
#[derive(Args, Clone, Debug)]
pub struct RetentionArgs {
    /// Days generations (with their metadata snapshot) are kept.
    #[arg(
        long,
        env = "MOSAIC_BACKUP_RETENTION_METADATA_DAYS",
        default_value_t = 30
    )]
    pub backup_retention_metadata_days: u64,
    /// Days shard snapshots are kept.
    #[arg(
        long,
        env = "MOSAIC_BACKUP_RETENTION_SHARDS_DAYS",
        default_value_t = 14
    )]
    pub backup_retention_shards_days: u64,
    /// Days of point-in-time recovery (WAL segments kept).
    #[arg(long, env = "MOSAIC_BACKUP_PITR_DAYS", default_value_t = 7)]
    pub backup_pitr_days: u64,
}

impl RetentionArgs {
    fn retention(&self) -> Result<Retention, String> {
        let days = |name: &str, v: u64| {
            if v == 0 || v > MAX_RETENTION_DAYS {
                Err(format!(
                    "--{name} {v}: must be between 1 and {MAX_RETENTION_DAYS}"
                ))
            } else {
                Ok(chrono::Duration::days(v as i64))
            }
        };
        Ok(Retention {
            metadata: days(
                "backup-retention-metadata-days",
                self.backup_retention_metadata_days,
            )?,
            shards: days(
                "backup-retention-shards-days",
                self.backup_retention_shards_days,
            )?,
            pitr: days("backup-pitr-days", self.backup_pitr_days)?,
        })
    }
}

/// Continuous backups while serving.
#[derive(Args, Clone, Debug)]
pub struct ServeBackupArgs {
    /// Ship every commit to this target while serving: a directory or
    /// `s3://bucket/prefix` (AWS_* variables for credentials and endpoint).
    #[arg(long, env = "MOSAIC_BACKUP_TARGET")]
    pub backup_target: Option<String>,
    /// Hours between two full snapshots (generations).
    #[arg(long, env = "MOSAIC_BACKUP_GENERATION_HOURS", default_value_t = 24)]
    pub backup_generation_hours: u64,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

impl ServeBackupArgs {
    /// Starts shipping `data_dir` when a target is configured.
    pub async fn start(
        &self,
        data_dir: &std::path::Path,
    ) -> Result<Option<mosaic_backup::ShipperHandle>, String> {
        let Some(spec) = self.backup_target.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if self.backup_generation_hours == 0 || self.backup_generation_hours > MAX_GENERATION_HOURS
        {
            return Err(format!(
                "--backup-generation-hours {}: must be between 1 and {MAX_GENERATION_HOURS}",
                self.backup_generation_hours
            ));
        }
        let target = Target::parse(spec).map_err(|e| e.to_string())?;
        let config = ShipperConfig {
            generation_interval: Duration::from_secs(self.backup_generation_hours * 3600),
            retention: self.retention.retention()?,
            ..ShipperConfig::default()
        };
        let handle = mosaic_backup::Shipper::start(data_dir, target, config)
            .await
            .map_err(|e| format!("continuous backup to {spec}: {e}"))?;
        tracing::info!(target = %spec, "continuous backup: first snapshot taken; shipping every commit");
        Ok(Some(handle))
    }
}

/// `mosaic backup --data-dir DIR --target T`.
#[derive(Args, Clone, Debug)]
pub struct BackupArgs {
    /// Directory of the embedded databases.
    #[arg(long, env = "MOSAIC_DATA_DIR", default_value = "./mosaic-data")]
    pub data_dir: PathBuf,
    /// A directory or `s3://bucket/prefix`.
    #[arg(long, env = "MOSAIC_BACKUP_TARGET")]
    pub target: String,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// `mosaic restore --target T --into DIR [--to TIME|latest]`.
#[derive(Args, Clone, Debug)]
pub struct RestoreArgs {
    /// A directory or `s3://bucket/prefix` holding backups.
    #[arg(long, env = "MOSAIC_BACKUP_TARGET")]
    pub target: String,
    /// The data directory to create (must not exist, or be empty).
    #[arg(long)]
    pub into: PathBuf,
    /// An RFC 3339 time (the last commit at or before it) or `latest`.
    #[arg(long, default_value = "latest")]
    pub to: String,
}

pub async fn backup(args: BackupArgs) -> Result<(), String> {
    let target = Target::parse(&args.target).map_err(|e| e.to_string())?;
    let retention = args.retention.retention()?;
    let s = mosaic_backup::backup_now(&args.data_dir, &target)
        .await
        .map_err(|e| e.to_string())?;
    let pruned = retention
        .prune(&target, chrono::Utc::now())
        .await
        .map_err(|e| format!("backup taken, but pruning old generations failed: {e}"))?;
    println!(
        "{}",
        serde_json::json!({
            "generation": s.manifest.generation,
            "snapshot_at": s.manifest.snapshot_at.to_rfc3339(),
            "databases": s.manifest.databases.iter().map(|d| serde_json::json!({
                "name": d.name, "role": d.role, "bytes": d.size, "sha256": d.sha256,
            })).collect::<Vec<_>>(),
            "bytes": s.bytes,
            "seconds": s.seconds,
            "pruned_generations": pruned.generations,
        })
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> Result<(), String> {
    let point = RestorePoint::parse(&args.to).map_err(|e| e.to_string())?;
    let target = Target::parse(&args.target).map_err(|e| e.to_string())?;
    let s = mosaic_backup::restore(
        &target,
        &RestoreOptions {
            into: args.into.clone(),
            point,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    if !s.check.ok() {
        for f in &s.check.findings {
            eprintln!("check: {f}");
        }
        return Err(format!(
            "restored into {}, but the integrity check found {} problem(s); do not serve it",
            args.into.display(),
            s.check.findings.len()
        ));
    }
    println!(
        "{}",
        serde_json::json!({
            "into": args.into.display().to_string(),
            "generation": s.generation,
            "snapshot_at": s.snapshot_at.to_rfc3339(),
            "restored_to": s.restored_to.to_rfc3339(),
            "databases": s.databases,
            "commits_replayed": s.commits,
            "bytes": s.bytes,
            "seconds": s.seconds,
            "check": "ok",
        })
    );
    Ok(())
}

/// `mosaic check`: prints the findings; an error (exit 1) when any.
pub async fn check(data_dir: PathBuf, metadata_url: Option<String>) -> Result<(), String> {
    if metadata_url.is_some_and(|u| !u.is_empty()) {
        return Err(
            "mosaic check: a PostgreSQL metadata database is not checked yet (not implemented); only the embedded data directory is"
                .into(),
        );
    }
    let dir = data_dir.clone();
    let report = tokio::task::spawn_blocking(move || mosaic_backup::check_data_dir(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    for f in &report.findings {
        println!("problem: {f}");
    }
    println!(
        "{}",
        serde_json::json!({
            "data_dir": data_dir.display().to_string(),
            "databases": report.databases,
            "records": report.records,
            "pivot_rows": report.pivot_rows,
            "problems": report.findings.len(),
        })
    );
    if report.ok() {
        Ok(())
    } else {
        Err(format!("{} problem(s) found", report.findings.len()))
    }
}
