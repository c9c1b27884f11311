//! The Mosaic formula language.
