//! When each commit of this process's writers happened, by WAL position.
//!
//! Continuous backups ship a database's WAL frames and must know *when*
//! each commit happened to restore to a point in time. SQLite's WAL carries
//! no time, so the writer thread stamps every commit: SQLite calls the WAL
//! hook right after a commit is durable (before the writer answers its
//! callers) with the number of frames now in the WAL, which is exactly the
//! position of the commit's last frame. A stamp is kept only while a
//! shipper watches the database ([`watch`]); otherwise the hook costs one
//! lookup in an empty map.
//!
//! Installing a WAL hook replaces SQLite's automatic checkpoint, so the hook
//! runs the same passive checkpoint past [`AUTOCHECKPOINT_FRAMES`].

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Frames in the WAL past which a commit runs a passive checkpoint
/// (SQLite's own default for `wal_autocheckpoint`).
pub const AUTOCHECKPOINT_FRAMES: i32 = 1000;
/// Most stamps kept unread per watched database; past it the oldest are
/// dropped (the shipper then falls back to the time it saw the commit).
pub const MAX_PENDING_STAMPS: usize = 200_000;

/// One commit: the WAL's frame count right after it, and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStamp {
    pub wal_frames: u32,
    pub at: chrono::DateTime<chrono::Utc>,
}

type Pending = Arc<Mutex<VecDeque<CommitStamp>>>;

fn watchers() -> &'static Mutex<HashMap<PathBuf, Pending>> {
    static W: OnceLock<Mutex<HashMap<PathBuf, Pending>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

thread_local! {
    /// The database file the current writer thread serves (canonical).
    static WRITER_DB: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The stamps of one watched database, in commit order.
pub struct CommitLog {
    path: PathBuf,
    pending: Pending,
}

impl CommitLog {
    /// Takes every stamp recorded since the last call.
    pub fn drain(&self) -> Vec<CommitStamp> {
        match self.pending.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        if let Ok(mut w) = watchers().lock() {
            if w.get(&self.path)
                .is_some_and(|p| Arc::ptr_eq(p, &self.pending))
            {
                w.remove(&self.path);
            }
        }
    }
}

/// Starts keeping the commit stamps of the database at `path` (written by
/// a writer of this process) until the returned log is dropped.
pub fn watch(path: &Path) -> CommitLog {
    let path = canonical(path);
    let pending: Pending = Arc::default();
    if let Ok(mut w) = watchers().lock() {
        w.insert(path.clone(), pending.clone());
    }
    CommitLog { path, pending }
}

/// Marks the current thread as the writer of `path` and installs the hook
/// on its connection (called again for a reopened connection).
pub(crate) fn install(conn: &rusqlite::Connection, path: &Path) {
    let path = canonical(path);
    WRITER_DB.with(|w| *w.borrow_mut() = Some(path));
    conn.wal_hook(Some(on_commit));
}

fn on_commit(wal: &rusqlite::hooks::Wal, frames: std::os::raw::c_int) -> rusqlite::Result<()> {
    let at = chrono::Utc::now();
    WRITER_DB.with(|w| {
        let Some(path) = w.borrow().clone() else {
            return;
        };
        let pending = watchers().lock().ok().and_then(|m| m.get(&path).cloned());
        if let Some(pending) = pending {
            if let Ok(mut q) = pending.lock() {
                if q.len() >= MAX_PENDING_STAMPS {
                    q.pop_front();
                }
                q.push_back(CommitStamp {
                    wal_frames: frames.max(0) as u32,
                    at,
                });
            }
        }
    });
    if frames >= AUTOCHECKPOINT_FRAMES {
        // Passive: never waits; a busy database is checkpointed next time.
        let _ = wal.checkpoint();
    }
    Ok(())
}
