//! Identity and access basics: tenants and their admins, password hashing
//! (argon2), opaque bearer tokens stored only as SHA-256 hashes, and the
//! resolution of a bearer token to a (tenant, user) session.
//!
//! **Architecture invariant:** a token's plaintext exists only in the
//! response that mints it; everything stored or cached is keyed by its hash.

pub mod password;
pub mod service;
pub mod token;

pub use service::{AuthService, NewTenant, Session, TenantCreated};
