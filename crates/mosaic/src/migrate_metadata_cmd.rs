//! `mosaic migrate-metadata`: moves the embedded metadata database
//! (`metadata.sqlite`) into an empty PostgreSQL one, so a laptop install
//! grows into a cluster without starting over. The server must be stopped;
//! records stay in the data directory's shard (`records.sqlite`), and
//! `mosaic serve --data-dir DIR --metadata-url URL` then serves the same
//! tenants, users, sessions and definitions.

use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct MigrateMetadataArgs {
    /// The data directory whose `metadata.sqlite` moves.
    #[arg(long, env = "MOSAIC_DATA_DIR", default_value = "./mosaic-data")]
    data_dir: PathBuf,
    /// The PostgreSQL metadata database to fill (`postgres://user@host/db`);
    /// it must hold no tenant yet.
    #[arg(long)]
    to: String,
}

/// The pid of a server still running on `data_dir`, from the
/// `instance.json` it wrote at start-up.
fn running_server(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("instance.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = u32::try_from(v.get("pid")?.as_u64()?).ok()?;
    let alive = if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        // Without /proc the record alone is taken as a running server.
        true
    };
    (alive && pid != std::process::id()).then_some(pid)
}

pub async fn run(args: MigrateMetadataArgs) -> Result<(), String> {
    let source = args.data_dir.join("metadata.sqlite");
    if !source.exists() {
        return Err(format!(
            "--data-dir: {} has no metadata.sqlite to migrate",
            args.data_dir.display()
        ));
    }
    if let Some(pid) = running_server(&args.data_dir) {
        return Err(format!(
            "a server (pid {pid}) is still running on {}: stop it first, so that nothing is written during the copy",
            args.data_dir.display()
        ));
    }
    let dump = mosaic_store::dump::dump_tables(&source).map_err(crate::cli_error)?;
    let target = mosaic_store_pg::PgMetaStore::connect(&args.to, 2)
        .await
        .map_err(|e| format!("--to: {}", e.message))?;
    let report = mosaic_store_pg::import::import_metadata(target.pool(), &dump)
        .await
        .map_err(|e| format!("--to: {}", e.message));
    target.pool().close();
    let report = report?;
    println!(
        "{}",
        serde_json::json!({
            "migrated": true,
            "from": source.display().to_string(),
            "tables": report.tables,
            "left_behind": report.left_behind,
            "kept": report.kept,
            "next": format!(
                "mosaic serve --data-dir {} --metadata-url <URL> (records stay in {})",
                args.data_dir.display(),
                args.data_dir.join("records.sqlite").display()
            ),
        })
    );
    Ok(())
}
