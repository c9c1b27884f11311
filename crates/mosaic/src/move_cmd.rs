//! `mosaic tenant move | move-rollback | move-finish`: online tenant moves
//! between shards, run by this process against the same databases as the
//! servers (`--data-dir` / environment as `serve`). Running servers keep
//! serving the tenant: their writes wait out the cutover and follow the
//! directory to the new shard.

use indicatif::{ProgressBar, ProgressStyle};
use mosaic_runtime::tenant_move::{MoveOptions, MoveProgress, MoveReport};
use std::time::Duration;

struct Bar(ProgressBar);

impl MoveProgress for Bar {
    fn phase(&self, name: &str) {
        self.0.set_message(name.to_string());
    }
    fn total(&self, rows: u64) {
        self.0.set_length(rows);
    }
    fn advance(&self, rows: u64) {
        self.0.inc(rows);
    }
}

fn print_report(r: &MoveReport) {
    println!(
        "{}",
        serde_json::to_string_pretty(r).unwrap_or_else(|_| format!("{r:?}"))
    );
}

pub async fn run_move(
    common: &crate::Common,
    tenant: &str,
    to: &str,
    keep_source: bool,
    grace_secs: u64,
) -> Result<(), String> {
    let p = crate::open(common).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} rows ({elapsed})")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let options = MoveOptions {
        cleanup: !keep_source,
        grace: Duration::from_secs(grace_secs),
    };
    let r = p.move_tenant(tenant, to, &options, &Bar(bar.clone())).await;
    bar.finish_and_clear();
    p.close();
    let r = r.map_err(|e| e.message)?;
    print_report(&r);
    if keep_source {
        eprintln!(
            "the old copy on shard {} is kept: `mosaic tenant move-rollback --tenant {tenant}` returns the tenant there, `mosaic tenant move-finish --tenant {tenant}` deletes it",
            r.from
        );
    }
    Ok(())
}

pub async fn run_rollback(common: &crate::Common, tenant: &str) -> Result<(), String> {
    let p = crate::open(common).await?;
    let r = p.rollback_move(tenant).await;
    p.close();
    print_report(&r.map_err(|e| e.message)?);
    Ok(())
}

pub async fn run_finish(common: &crate::Common, tenant: &str) -> Result<(), String> {
    let p = crate::open(common).await?;
    let r = p.finish_move(tenant).await;
    p.close();
    let n = r.map_err(|e| e.message)?;
    println!(
        "{}",
        serde_json::json!({"tenant_id": tenant, "rows_deleted": n})
    );
    Ok(())
}
