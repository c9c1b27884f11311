//! Flex slots: the physical column a stored field lives in.

use crate::SlotPool;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::LazyLock;

/// One column of the wide record table, e.g. `flex_string_7`. Built only
/// through [`FlexSlot::new`], which checks the index against the pool's
/// capacity, so a column name always comes from a closed, known set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlexSlot {
    pub pool: SlotPool,
    /// 1-based index within the pool.
    pub index: u16,
}

static COLUMN_NAMES: LazyLock<Vec<Vec<&'static str>>> = LazyLock::new(|| {
    SlotPool::ALL
        .iter()
        .map(|p| {
            (1..=p.capacity())
                .map(|i| &*Box::leak(format!("{}{}", p.column_prefix(), i).into_boxed_str()))
                .collect()
        })
        .collect()
});

impl FlexSlot {
    pub fn new(pool: SlotPool, index: u16) -> Option<FlexSlot> {
        (index >= 1 && index <= pool.capacity()).then_some(FlexSlot { pool, index })
    }

    /// The physical column name (from a fixed table, never from input).
    pub fn column(self) -> &'static str {
        let p = SlotPool::ALL
            .iter()
            .position(|x| *x == self.pool)
            .unwrap_or(0);
        COLUMN_NAMES[p]
            .get(usize::from(self.index).saturating_sub(1))
            .copied()
            .unwrap_or("flex_string_1")
    }

    /// Parse a column name back into a slot (e.g. from a stored definition).
    pub fn from_column(col: &str) -> Option<FlexSlot> {
        SlotPool::ALL.iter().find_map(|p| {
            col.strip_prefix(p.column_prefix())
                .and_then(|n| n.parse::<u16>().ok())
                .and_then(|i| FlexSlot::new(*p, i))
        })
    }

    /// Every slot of every pool, in column order.
    pub fn all() -> impl Iterator<Item = FlexSlot> {
        SlotPool::ALL
            .into_iter()
            .flat_map(|p| (1..=p.capacity()).map(move |i| FlexSlot { pool: p, index: i }))
    }
}

impl fmt::Display for FlexSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_and_bounds() {
        assert_eq!(FlexSlot::all().count(), 220);
        for s in FlexSlot::all() {
            assert_eq!(FlexSlot::from_column(s.column()), Some(s));
        }
        assert!(FlexSlot::new(SlotPool::Clob, 11).is_none());
        assert!(FlexSlot::new(SlotPool::String, 0).is_none());
        assert_eq!(FlexSlot::from_column("flex_string_1; DROP"), None);
    }
}
