//! How full an object's flex-slot pools are: each stored field holds one
//! slot of its type's pool, a deleted field's slot is unavailable until
//! its data is cleared, and the rest are free (Setup's pool usage view).

use crate::model::ObjectDef;
use mosaic_types::SlotPool;
use serde::Serialize;

/// One pool of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolUsage {
    pub pool: SlotPool,
    /// Slots held by fields.
    pub used: u16,
    /// Slots of deleted fields whose data is not cleared yet.
    pub pending: u16,
    pub free: u16,
    pub capacity: u16,
}

/// The usage of every pool of `def`, in [`SlotPool::ALL`] order.
pub fn pool_usage(def: &ObjectDef) -> Vec<PoolUsage> {
    SlotPool::ALL
        .iter()
        .map(|&pool| {
            let used = def
                .fields
                .iter()
                .filter(|f| f.slot.is_some_and(|s| s.pool == pool))
                .count() as u16;
            let pending = def.pending_clear.iter().filter(|s| s.pool == pool).count() as u16;
            let capacity = pool.capacity();
            PoolUsage {
                pool,
                used,
                pending,
                free: capacity.saturating_sub(used + pending),
                capacity,
            }
        })
        .collect()
}
