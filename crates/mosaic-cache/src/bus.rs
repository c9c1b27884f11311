//! The invalidation bus: what one instance tells the others after a change
//! commits, over one Redis pub/sub channel. Delivery is at most once, so a
//! subscriber that loses its connection drops its whole L1 when it
//! subscribes again ([`Invalidation::All`]), and entries carry versions so
//! a copy older than one already announced is refetched.

use serde::{Deserialize, Serialize};

/// One change other instances must forget cached state for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// An object definition changed (or was deleted): its entries by every
    /// name it had and by id; `version` is the newest committed version
    /// (after a delete, one past the last), older copies are stale.
    Object {
        tenant: String,
        id: String,
        names: Vec<String>,
        version: i64,
    },
    /// The tenant's list of objects changed (an object was created).
    Objects { tenant: String },
    /// Permission snapshots of the tenant are stale (a permission
    /// generation bump; sharing views and decisions go with them).
    Permissions { tenant: String },
    /// Record-sharing decisions of the tenant are stale.
    Sharing { tenant: String },
    /// Sessions revoked (by token hash).
    Sessions { token_hashes: Vec<String> },
    /// The tenant's rate-limit overrides changed.
    RateLimits { tenant: String },
    /// Everything cached in process may be stale: the subscription was
    /// lost and invalidations may have been missed.
    All,
}

/// What travels on the channel: the change and the instance that made it
/// (which has already applied it and ignores its own message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub origin: String,
    #[serde(flatten)]
    pub event: Invalidation,
}

impl Envelope {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `None` for a message that is not ours (ignored).
    pub fn parse(bytes: &[u8]) -> Option<Envelope> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let e = Envelope {
            origin: "i1".into(),
            event: Invalidation::Object {
                tenant: "t".into(),
                id: "o".into(),
                names: vec!["invoice__c".into()],
                version: 3,
            },
        };
        let j = e.to_json();
        assert!(j.contains("\"kind\":\"object\""), "{j}");
        assert_eq!(Envelope::parse(j.as_bytes()), Some(e));
        assert_eq!(Envelope::parse(b"{\"kind\":\"nope\"}"), None);
    }
}
