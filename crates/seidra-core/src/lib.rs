//! Domain types shared by every SEIDRA crate: accounts, roles, API-key scopes and the
//! validation rules that guard them. Nothing here performs I/O.

pub mod account;
mod decimal;
pub mod job;
pub mod persona;
pub mod policy;
pub mod speech;
pub mod talking_head;
pub mod timeline;
pub mod user_settings;
pub mod validation;

pub use account::{ApiKeyScope, Role};
pub use validation::ValidationError;

/// The version of this build, as reported by `seidra --version` and `/api/system/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
