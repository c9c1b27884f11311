//! The Mosaic query language.
