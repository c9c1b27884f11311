//! The Redis key namespaces (seed: "Cache Configuration"), all behind the
//! deployment's prefix:
//!
//! | key                          | holds                                   |
//! |------------------------------|-----------------------------------------|
//! | `meta:{tenant}:{object}`     | a compressed object definition (name or id) |
//! | `metav:{tenant}:{object id}` | the newest committed version of the object |
//! | `sess:{token hash}`          | a resolved session                      |
//! | `rl:{tenant}:{class}`        | a rate limit's GCRA state               |
//! | `aiq:{tenant}:{day}:{what}`  | a tenant's AI requests / LLM tokens of a UTC day |
//! | `apid:{tenant}:{day}`        | a tenant's API requests of a UTC day (`limits`) |
//! | `lock:{type}:{id}`           | a distributed lock's holder token       |
//! | `fence:{type}:{id}`          | the lock's fencing counter              |
//! | `inval` (channel)            | invalidations between instances        |

/// Builds keys under one prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Keys {
        Keys {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn join(&self, parts: &[&str]) -> String {
        let mut k = String::with_capacity(
            self.prefix.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>(),
        );
        k.push_str(&self.prefix);
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push(':');
            }
            k.push_str(p);
        }
        k
    }

    /// An object definition by lower-cased api name or by id (ids contain
    /// hyphens, api names never do, so the two cannot collide).
    pub fn meta(&self, tenant: &str, object: &str) -> String {
        self.join(&["meta", tenant, &object.to_lowercase()])
    }

    /// The newest committed version of an object (fills of older versions
    /// are refused).
    pub fn meta_version(&self, tenant: &str, object_id: &str) -> String {
        self.join(&["metav", tenant, object_id])
    }

    pub fn session(&self, token_hash: &str) -> String {
        self.join(&["sess", token_hash])
    }

    pub fn rate_limit(&self, tenant: &str, class: &str) -> String {
        self.join(&["rl", tenant, class])
    }

    /// A tenant's AI usage counter of one UTC day (`day`: `YYYY-MM-DD`;
    /// `what`: `requests` or `tokens`).
    pub fn ai_quota(&self, tenant: &str, day: &str, what: &str) -> String {
        self.join(&["aiq", tenant, day, what])
    }

    /// A tenant's API request counter of one UTC day (`day`: `YYYY-MM-DD`).
    pub fn api_requests(&self, tenant: &str, day: &str) -> String {
        self.join(&["apid", tenant, day])
    }

    pub fn lock(&self, kind: &str, id: &str) -> String {
        self.join(&["lock", kind, id])
    }

    pub fn fence(&self, kind: &str, id: &str) -> String {
        self.join(&["fence", kind, id])
    }

    /// Requests per tenant in one bucket of hot-tenant detection (a hash).
    pub fn hot(&self, bucket: i64) -> String {
        self.join(&["hot", &bucket.to_string()])
    }

    /// A query cursor (`nextRecordsUrl`) shared by every instance.
    pub fn cursor(&self, locator: &str) -> String {
        self.join(&["cur", locator])
    }

    /// The pub/sub channel of invalidations.
    pub fn channel(&self) -> String {
        self.join(&["inval"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_the_seed() {
        let k = Keys::new("t1:");
        assert_eq!(k.meta("ten", "Invoice__c"), "t1:meta:ten:invoice__c");
        assert_eq!(k.meta_version("ten", "o-1"), "t1:metav:ten:o-1");
        assert_eq!(k.session("abc"), "t1:sess:abc");
        assert_eq!(k.rate_limit("ten", "data_read"), "t1:rl:ten:data_read");
        assert_eq!(
            k.ai_quota("ten", "2026-03-01", "tokens"),
            "t1:aiq:ten:2026-03-01:tokens"
        );
        assert_eq!(k.lock("record", "r1"), "t1:lock:record:r1");
        assert_eq!(k.channel(), "t1:inval");
        assert_eq!(Keys::default().meta("a", "B"), "meta:a:b");
    }
}
