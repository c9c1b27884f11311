//! Retention: which generations, snapshots and WAL segments are kept (the
//! seed's schedule: metadata 30 days, shards 14 days, point-in-time
//! recovery 7 days). The newest generation is always kept whole.

use crate::manifest::{self, Manifest};
use crate::{BackupResult, Target};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Generations (and their metadata snapshot) are kept this long.
    pub metadata: chrono::Duration,
    /// Shard snapshots and their WAL are kept this long.
    pub shards: chrono::Duration,
    /// WAL segments (point-in-time recovery) are kept while the next
    /// generation is younger than this; older generations restore to their
    /// snapshot only.
    pub pitr: chrono::Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            metadata: chrono::Duration::days(30),
            shards: chrono::Duration::days(14),
            pitr: chrono::Duration::days(7),
        }
    }
}

/// What one pruning pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub generations: usize,
    pub objects: usize,
}

impl Retention {
    /// Deletes what the schedule no longer keeps, as of `now`.
    pub async fn prune(&self, target: &Target, now: DateTime<Utc>) -> BackupResult<Pruned> {
        let gens = manifest::list(target).await?;
        let mut pruned = Pruned::default();
        let Some((newest, older)) = gens.split_last() else {
            return Ok(pruned);
        };
        for (i, g) in older.iter().enumerate() {
            let next: &Manifest = older.get(i + 1).unwrap_or(newest);
            let age = now - g.snapshot_at;
            let prefix = format!("generations/{}/", g.generation);
            let mut doomed = Vec::new();
            if age > self.metadata {
                // The manifest goes first: a half-deleted generation is
                // never offered for a restore.
                doomed.push(manifest::manifest_key(&g.generation));
                doomed.extend(target.list(&prefix).await?.into_iter().map(|e| e.key));
                pruned.generations += 1;
            } else {
                for db in &g.databases {
                    if db.role != "metadata" && age > self.shards {
                        doomed.extend(
                            target
                                .list(&format!("{prefix}db/{}/", db.name))
                                .await?
                                .into_iter()
                                .map(|e| e.key),
                        );
                    } else if now - next.snapshot_at > self.pitr {
                        doomed.extend(
                            target
                                .list(&manifest::wal_prefix(&g.generation, &db.name))
                                .await?
                                .into_iter()
                                .map(|e| e.key),
                        );
                    }
                }
            }
            doomed.dedup();
            for key in doomed {
                target.delete(&key).await?;
                pruned.objects += 1;
            }
        }
        Ok(pruned)
    }
}
