//! Authentication: passwords, JWT access tokens, rotating refresh tokens, API keys, and the
//! `Principal` that handlers receive.

pub mod account_cache;
pub mod jwt;
pub mod password;
pub mod principal;
pub mod tokens;

pub use principal::{Admin, AuthMethod, CanGenerate, CanRead, Principal, SignedIn};
