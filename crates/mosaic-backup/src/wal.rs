//! Reading SQLite's WAL file: the 32-byte header, 24-byte frame headers,
//! salts and the cumulative checksum that tells valid frames from stale
//! ones (<https://www.sqlite.org/fileformat2.html#walformat>).
//!
//! Only whole transactions are returned: frames up to the last valid
//! commit frame (one whose "database size after commit" field is non-zero).

use crate::{BackupError, BackupResult};

pub const WAL_HEADER: usize = 32;
pub const FRAME_HEADER: usize = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;
/// Largest page size SQLite allows.
pub const MAX_PAGE_SIZE: u32 = 65_536;

/// The identity of one WAL "epoch": SQLite rewrites the header with new
/// salts each time it restarts the log from the beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    pub big_endian: bool,
    pub page_size: u32,
    pub checkpoint_seq: u32,
    pub salt: (u32, u32),
    pub checksum: (u32, u32),
}

/// One committed transaction: its pages, the database size after it, and
/// the 1-based WAL position of its commit frame.
#[derive(Debug, Clone)]
pub struct Commit {
    pub commit_frame: u32,
    /// The running checksum after the commit frame.
    pub checksum_after: (u32, u32),
    pub db_pages: u32,
    pub pages: Vec<(u32, Vec<u8>)>,
}

/// Where reading stopped: frames consumed and the running checksum after
/// the last commit (the next read continues from there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub header: WalHeader,
    pub frames: u32,
    pub checksum: (u32, u32),
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing
/// from `s`.
pub fn checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s1, mut s2) = s;
    for pair in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (be32(&pair[..4]), be32(&pair[4..]))
        } else {
            (
                u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]),
                u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]),
            )
        };
        s1 = s1.wrapping_add(x0).wrapping_add(s2);
        s2 = s2.wrapping_add(x1).wrapping_add(s1);
    }
    (s1, s2)
}

/// Parses and verifies a WAL header; `None` for an empty or invalid one
/// (SQLite treats such a log as empty too).
pub fn parse_header(b: &[u8]) -> Option<WalHeader> {
    if b.len() < WAL_HEADER {
        return None;
    }
    let magic = be32(&b[0..4]);
    let big_endian = match magic {
        MAGIC_LE => false,
        MAGIC_BE => true,
        _ => return None,
    };
    let page_size = be32(&b[8..12]);
    if !(512..=MAX_PAGE_SIZE).contains(&page_size) || !page_size.is_power_of_two() {
        return None;
    }
    let h = WalHeader {
        big_endian,
        page_size,
        checkpoint_seq: be32(&b[12..16]),
        salt: (be32(&b[16..20]), be32(&b[20..24])),
        checksum: (be32(&b[24..28]), be32(&b[28..32])),
    };
    if checksum(big_endian, &b[..24], (0, 0)) != h.checksum {
        return None;
    }
    Some(h)
}

impl Cursor {
    /// The start of a WAL epoch.
    pub fn start(header: WalHeader) -> Cursor {
        Cursor {
            header,
            frames: 0,
            checksum: header.checksum,
        }
    }

    /// Byte offset of the next frame to read.
    pub fn offset(&self) -> u64 {
        WAL_HEADER as u64
            + self.frames as u64 * (FRAME_HEADER as u64 + self.header.page_size as u64)
    }
}

/// Reads the whole transactions in `tail` (the WAL's bytes from
/// `cursor.offset()` on), stopping at the first frame that is not valid for
/// this epoch. Returns them and the cursor after the last one.
pub fn read_commits(cursor: Cursor, tail: &[u8]) -> BackupResult<(Vec<Commit>, Cursor)> {
    let ps = cursor.header.page_size as usize;
    let frame_len = FRAME_HEADER + ps;
    let mut commits = Vec::new();
    let mut committed = cursor;
    let mut at = cursor;
    let mut pages: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut pos = 0usize;
    while pos + frame_len <= tail.len() {
        let f = &tail[pos..pos + frame_len];
        let pgno = be32(&f[0..4]);
        let db_pages = be32(&f[4..8]);
        let salt = (be32(&f[8..12]), be32(&f[12..16]));
        let stored = (be32(&f[16..20]), be32(&f[20..24]));
        if salt != cursor.header.salt || pgno == 0 {
            break;
        }
        let s = checksum(cursor.header.big_endian, &f[0..8], at.checksum);
        let s = checksum(cursor.header.big_endian, &f[FRAME_HEADER..], s);
        if s != stored {
            break;
        }
        at.checksum = s;
        at.frames += 1;
        pages.push((pgno, f[FRAME_HEADER..].to_vec()));
        if db_pages != 0 {
            commits.push(Commit {
                commit_frame: at.frames,
                checksum_after: at.checksum,
                db_pages,
                pages: std::mem::take(&mut pages),
            });
            committed = at;
        }
        pos += frame_len;
    }
    Ok((commits, committed))
}

/// Reads `path` from `offset` to its end (a missing file reads as empty).
pub fn read_from(path: &std::path::Path, offset: u64) -> BackupResult<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io(path.display(), e)),
    };
    let len = f
        .metadata()
        .map_err(|e| BackupError::io(path.display(), e))?
        .len();
    if len <= offset {
        return Ok(Vec::new());
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| BackupError::io(path.display(), e))?;
    let mut buf = Vec::with_capacity((len - offset) as usize);
    f.read_to_end(&mut buf)
        .map_err(|e| BackupError::io(path.display(), e))?;
    Ok(buf)
}

/// The WAL header of `path`, when the file holds a valid one.
pub fn read_header(path: &std::path::Path) -> BackupResult<Option<WalHeader>> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BackupError::io(path.display(), e)),
    };
    let mut b = [0u8; WAL_HEADER];
    match f.read_exact(&mut b) {
        Ok(()) => Ok(parse_header(&b)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(BackupError::io(path.display(), e)),
    }
}

/// The WAL file of database `db`.
pub fn wal_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    std::path::PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_commits_sqlite_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.sqlite");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        c.execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('a');")
            .unwrap();
        c.execute_batch("BEGIN; INSERT INTO t VALUES ('b'); INSERT INTO t VALUES ('c'); COMMIT;")
            .unwrap();
        let bytes = read_from(&wal_path(&db), 0).unwrap();
        let h = parse_header(&bytes).expect("valid header");
        let (commits, cur) = read_commits(Cursor::start(h), &bytes[WAL_HEADER..]).unwrap();
        assert_eq!(
            commits.len(),
            3,
            "CREATE, INSERT, and the two-row transaction"
        );
        assert_eq!(cur.frames, commits.last().unwrap().commit_frame);
        // A torn tail (half a frame) is not a commit.
        let torn = &bytes[WAL_HEADER..bytes.len() - 10];
        let (commits, _) = read_commits(Cursor::start(h), torn).unwrap();
        assert_eq!(commits.len(), 2);
    }
}
