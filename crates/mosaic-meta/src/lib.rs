//! Mosaic metadata: what tenants' objects and fields are, how they map onto
//! flex slots, and the service that validates, versions, stores and caches
//! them.
//!
//! **Architecture invariant:** definitions are data. Changing an object never
//! runs DDL; it rewrites a versioned document and, where needed, asks the
//! record store to clear a slot or (re)build a pivot index.

pub mod coerce;
pub mod formulas;
pub mod impact;
pub mod layout;
pub mod listview;
pub mod model;
pub mod plan;
pub mod pools;
pub mod rollup;
pub mod service;
pub mod sharing;
pub mod validate;
mod views;
pub mod workflow;

pub use model::{FieldDef, NameField, ObjectDef, PicklistValue, SharingModel, ValidationRule};
pub use service::MetadataService;
