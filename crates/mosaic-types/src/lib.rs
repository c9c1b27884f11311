//! Shared vocabulary of Mosaic: identifiers, field data types, typed values,
//! exact-decimal ordering keys and the domain error every crate speaks.
//!
//! **Architecture invariant:** this crate does no I/O and never panics on input.

pub mod cache_stats;
pub mod datatype;
pub mod deckey;
pub mod error;
pub mod id;
pub mod outbound;
pub mod slot;
pub mod timeouts;
pub mod value;

pub use cache_stats::CacheStats;
pub use datatype::{DataType, SlotPool};
pub use error::{ErrorCode, MosaicError, MosaicResult};
pub use id::new_id;
pub use outbound::OutboundGuard;
pub use slot::FlexSlot;
pub use value::Value;
