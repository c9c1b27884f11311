//! How an entry is stored in L2: a small header (the entry's version, the
//! time the value took to compute, when it was written) and the value's
//! JSON, lz4-compressed. Definitions compress 5–10× (repeated field keys).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Values above this size are not put in L2 (a definition is far smaller;
/// this bounds what a corrupt or hostile entry can make us decompress).
pub const MAX_L2_VALUE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    /// Entry version (an object's definition version; 0 where none).
    v: i64,
    /// Milliseconds the value took to compute (XFetch's δ).
    d: u64,
    /// Milliseconds since the epoch when it was written.
    w: u64,
}

/// A decoded L2 entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    pub version: i64,
    pub compute_ms: u64,
    pub written_ms: u64,
    pub value: T,
}

/// `header-json \n lz4(value-json)`.
pub fn encode<T: Serialize>(
    version: i64,
    compute_ms: u64,
    written_ms: u64,
    value: &T,
) -> Option<Vec<u8>> {
    let json = serde_json::to_vec(value).ok()?;
    if json.len() > MAX_L2_VALUE_BYTES {
        return None;
    }
    let mut out = serde_json::to_vec(&Header {
        v: version,
        d: compute_ms,
        w: written_ms,
    })
    .ok()?;
    out.push(b'\n');
    out.extend(lz4_flex::compress_prepend_size(&json));
    Some(out)
}

/// `None` for anything that is not an entry of ours (treated as a miss).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<Stored<T>> {
    let nl = bytes.iter().position(|b| *b == b'\n')?;
    let h: Header = serde_json::from_slice(&bytes[..nl]).ok()?;
    let body = &bytes[nl + 1..];
    let declared = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)?;
    if declared > MAX_L2_VALUE_BYTES {
        return None;
    }
    let json = lz4_flex::decompress_size_prepended(body).ok()?;
    let value = serde_json::from_slice(&json).ok()?;
    Some(Stored {
        version: h.v,
        compute_ms: h.d,
        written_ms: h.w,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage_is_a_miss() {
        let v = serde_json::json!({"api_name": "Invoice__c", "fields": vec!["a"; 50]});
        let b = encode(7, 12, 1000, &v).unwrap();
        assert!(b.len() < serde_json::to_vec(&v).unwrap().len());
        let s: Stored<serde_json::Value> = decode(&b).unwrap();
        assert_eq!((s.version, s.compute_ms, s.written_ms), (7, 12, 1000));
        assert_eq!(s.value, v);
        assert!(decode::<serde_json::Value>(b"nonsense").is_none());
        assert!(
            decode::<serde_json::Value>(b"{\"v\":1,\"d\":0,\"w\":0}\n\xff\xff\xff\x7f").is_none()
        );
    }
}
