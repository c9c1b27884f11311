//! Identifiers: every id Mosaic mints is a UUIDv7 (time-ordered, so new rows
//! land at the right-hand edge of B-tree indexes) in its hyphenated text form.

use uuid::Uuid;

/// A fresh time-ordered identifier.
pub fn new_id() -> String {
    Uuid::now_v7().hyphenated().to_string()
}

/// True when `s` is a well-formed id (any UUID, canonical hyphenated form,
/// either case). Ids from clients are checked with this before any lookup.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 36 && Uuid::try_parse(s).is_ok()
}

/// Canonical (lowercase) form of a client-supplied id, or `None` if malformed.
pub fn normalize_id(s: &str) -> Option<String> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok().map(|u| u.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_ordered() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id();
        assert!(a < b);
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 7);
        assert!(is_valid_id(&a));
        assert!(!is_valid_id("abc"));
        assert!(!is_valid_id("' OR 1=1 --"));
        assert_eq!(normalize_id(&a.to_uppercase()).as_deref(), Some(a.as_str()));
    }
}
