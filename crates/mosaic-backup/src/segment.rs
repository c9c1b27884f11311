//! A WAL segment: the committed transactions shipped in one round, each
//! with its commit time, as page images. Restore applies them in order on
//! top of a snapshot; applying a page image is idempotent, so a segment
//! that overlaps the snapshot is harmless.
//!
//! Layout: `MSEG1\n`, then per commit `[time µs i64][db pages u32][page
//! size u32][count u32]` and `count` × `[page number u32][page]`, then the
//! SHA-256 of everything before it. Integers are big-endian.

use crate::{BackupError, BackupResult};
use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"MSEG1\n";
/// Most pages one decoded commit may carry (a guard against a damaged
/// segment asking for unbounded memory): 4 GiB of 64 KiB pages.
pub const MAX_COMMIT_PAGES: u32 = 65_536;

/// One transaction as restore replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCommit {
    pub at_micros: i64,
    pub db_pages: u32,
    pub page_size: u32,
    pub pages: Vec<(u32, Vec<u8>)>,
}

pub fn encode(commits: &[SegmentCommit]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for c in commits {
        out.extend_from_slice(&c.at_micros.to_be_bytes());
        out.extend_from_slice(&c.db_pages.to_be_bytes());
        out.extend_from_slice(&c.page_size.to_be_bytes());
        out.extend_from_slice(&(c.pages.len() as u32).to_be_bytes());
        for (pgno, page) in &c.pages {
            out.extend_from_slice(&pgno.to_be_bytes());
            out.extend_from_slice(page);
        }
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

pub fn decode(name: &str, b: &[u8]) -> BackupResult<Vec<SegmentCommit>> {
    let damaged = |why: &str| BackupError::Damaged(format!("segment {name}: {why}"));
    if b.len() < MAGIC.len() + 32 || !b.starts_with(MAGIC) {
        return Err(damaged("not a WAL segment"));
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(damaged("checksum mismatch"));
    }
    let mut pos = MAGIC.len();
    let mut out = Vec::new();
    let take = |pos: &mut usize, n: usize| -> BackupResult<&[u8]> {
        if *pos + n > body.len() {
            return Err(damaged("truncated"));
        }
        let s = &body[*pos..*pos + n];
        *pos += n;
        Ok(s)
    };
    let u32_at = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    while pos < body.len() {
        let at = take(&mut pos, 8)?;
        let at_micros = i64::from_be_bytes(at.try_into().map_err(|_| damaged("time"))?);
        let db_pages = u32_at(take(&mut pos, 4)?);
        let page_size = u32_at(take(&mut pos, 4)?);
        let count = u32_at(take(&mut pos, 4)?);
        if !(512..=crate::wal::MAX_PAGE_SIZE).contains(&page_size) || count > MAX_COMMIT_PAGES {
            return Err(damaged("implausible commit header"));
        }
        let mut pages = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let pgno = u32_at(take(&mut pos, 4)?);
            pages.push((pgno, take(&mut pos, page_size as usize)?.to_vec()));
        }
        out.push(SegmentCommit {
            at_micros,
            db_pages,
            page_size,
            pages,
        });
    }
    Ok(out)
}

/// A segment's object name: its sequence number and the times of its
/// first and last commits (restore picks segments without reading them).
pub fn name(seq: u64, first_micros: i64, last_micros: i64) -> String {
    format!("{seq:012}-{first_micros:016}-{last_micros:016}.seg")
}

/// (sequence, first µs, last µs) of a segment name.
pub fn parse_name(name: &str) -> Option<(u64, i64, i64)> {
    let base = name.rsplit('/').next()?.strip_suffix(".seg")?;
    let mut it = base.split('-');
    let seq = it.next()?.parse().ok()?;
    let first = it.next()?.parse().ok()?;
    let last = it.next()?.parse().ok()?;
    Some((seq, first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let c = SegmentCommit {
            at_micros: 1_700_000_000_000_000,
            db_pages: 3,
            page_size: 512,
            pages: vec![(1, vec![7u8; 512]), (3, vec![9u8; 512])],
        };
        let mut b = encode(std::slice::from_ref(&c));
        assert_eq!(decode("s", &b).unwrap(), vec![c]);
        b[20] ^= 1;
        assert!(matches!(decode("s", &b), Err(BackupError::Damaged(_))));
        let n = name(7, 1, 2);
        assert_eq!(parse_name(&format!("x/wal/{n}")), Some((7, 1, 2)));
    }
}
