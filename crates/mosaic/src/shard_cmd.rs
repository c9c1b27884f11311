//! `mosaic shard …`: register, list and drain record shards in the shard
//! directory of the metadata database (the same `--data-dir` and
//! environment as `serve`; a running server picks changes up within a
//! second).

use clap::Subcommand;
use mosaic_runtime::Platform;
use mosaic_store::shards::{nearly_full, Load, ShardRow, LOCAL_SHARD};
use serde_json::json;
use std::collections::HashMap;

#[derive(Subcommand)]
pub enum ShardCommand {
    /// Register a shard.
    Add {
        #[command(flatten)]
        common: crate::Common,
        #[arg(long)]
        id: String,
        /// `sqlite:<path>` (relative to the data directory) or `postgres://…`.
        #[arg(long)]
        url: String,
        #[arg(long, value_parser = ["starter", "professional", "enterprise"])]
        group: String,
        /// At most this many tenants (never more than the tier allows).
        #[arg(long)]
        max_tenants: Option<u64>,
        /// At most this many records (never more than the tier allows).
        #[arg(long)]
        max_records: Option<u64>,
    },
    /// Shards with their tenants, records and status; nearly full ones with
    /// a suggested rebalancing.
    List {
        #[command(flatten)]
        common: crate::Common,
    },
    /// Tenants above 10 % of their shard's requests over the detection
    /// window, as the running server counts them.
    Hot {
        #[command(flatten)]
        common: crate::Common,
        /// The server to ask; defaults to the one recorded in the data directory.
        #[arg(long, env = "MOSAIC_PUBLIC_URL")]
        url: Option<String>,
        /// An operator credential: the server's `MOSAIC_OPERATOR_TOKEN`, or
        /// an operator session token.
        #[arg(long, env = "MOSAIC_OPERATOR_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Stop placing new tenants on a shard.
    Drain {
        #[command(flatten)]
        common: crate::Common,
        #[arg(long)]
        id: String,
    },
}

async fn open(common: &crate::Common) -> Result<Platform, String> {
    crate::open(common).await
}

pub async fn run(cmd: ShardCommand) -> Result<(), String> {
    match cmd {
        ShardCommand::Add {
            common,
            id,
            url,
            group,
            max_tenants,
            max_records,
        } => {
            let p = open(&common).await?;
            let row = ShardRow {
                id,
                url,
                group,
                max_tenants,
                max_records,
                status: "active".into(),
                created_at: chrono::Utc::now(),
            };
            p.shards
                .directory()
                .add_shard(row.clone())
                .await
                .map_err(|e| e.message)?;
            // Open it now: a shard that cannot be opened is reported here.
            p.shards.refresh().await.map_err(|e| e.message)?;
            println!(
                "{}",
                json!({"id": row.id, "url": row.url, "group": row.group, "status": row.status})
            );
            p.close();
            Ok(())
        }
        ShardCommand::List { common } => {
            let p = open(&common).await?;
            p.shards.refresh().await.map_err(|e| e.message)?;
            let rows = p.shards.directory().shards().await.map_err(|e| e.message)?;
            let mut load: HashMap<String, Load> = p.shards.load().await.map_err(|e| e.message)?;
            for s in p.shards.all() {
                load.entry(s.id.clone()).or_default().records =
                    s.census.record_count().await.map_err(|e| e.message)?;
            }
            println!(
                "{:<12} {:<13} {:<9} {:>8} {:>12}  url",
                "shard", "group", "status", "tenants", "records"
            );
            let l = load.get(LOCAL_SHARD).copied().unwrap_or_default();
            println!(
                "{:<12} {:<13} {:<9} {:>8} {:>12}  (embedded records.sqlite)",
                LOCAL_SHARD, "built-in", "active", l.tenants, l.records
            );
            for r in &rows {
                let l = load.get(&r.id).copied().unwrap_or_default();
                println!(
                    "{:<12} {:<13} {:<9} {:>8} {:>12}  {}",
                    r.id,
                    r.group,
                    r.status,
                    l.tenants,
                    l.records,
                    redact(&r.url)
                );
            }
            for (_, advice) in nearly_full(&rows, &load) {
                println!("nearly full: {advice}");
            }
            p.close();
            Ok(())
        }
        ShardCommand::Hot { common, url, token } => {
            let base = url
                .or_else(|| crate::recorded_url(&common.data_dir))
                .ok_or("no running server is recorded in the data directory; pass --url")?;
            let mut req = reqwest::Client::new().get(format!(
                "{}/services/admin/v1/shards/hot",
                base.trim_end_matches('/')
            ));
            if let Some(t) = token.filter(|t| !t.is_empty()) {
                req = req.bearer_auth(t);
            }
            let res = req
                .send()
                .await
                .map_err(|e| format!("cannot reach {base}: {e}"))?;
            let status = res.status();
            let body = res.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{base} answered {status}: {body}"));
            }
            println!("{body}");
            Ok(())
        }
        ShardCommand::Drain { common, id } => {
            let p = open(&common).await?;
            p.shards
                .directory()
                .set_shard_status(&id, "draining")
                .await
                .map_err(|e| e.message)?;
            println!("{}", json!({"id": id, "status": "draining"}));
            p.close();
            Ok(())
        }
    }
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
