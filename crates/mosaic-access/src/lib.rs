//! Identity and access: tenants and their admins, password hashing
//! (argon2), opaque bearer tokens stored only as SHA-256 hashes, the
//! resolution of a bearer token to a (tenant, user) session, the OAuth grants
//! (password, refresh token, client credentials) with login rate limiting,
//! the administration of users, roles, groups, permission sets and connected
//! apps, and per-user permission snapshots.
//!
//! **Architecture invariant:** a token's plaintext exists only in the
//! response that mints it; everything stored or cached is keyed by its hash.

pub mod accounts;
pub mod admin;
pub mod grants;
pub mod operators;
pub mod password;
pub mod permissions;
pub mod service;
pub mod sharing;
pub mod token;

pub use admin::{AccessService, Actor};
pub use grants::{GrantError, Granted};
pub use operators::{OperatorIdentity, OperatorService};
pub use permissions::{FieldAccess, PermissionSnapshot};
pub use service::{AuthService, NewTenant, Session, TenantCreated};
