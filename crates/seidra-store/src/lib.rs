//! Database access for SEIDRA on SQLite or PostgreSQL.
//!
//! There is one query code path: every store function is written once, with SQL both
//! databases accept (`$n` placeholders, `RETURNING`, `ON CONFLICT`), and the [`with_pool!`]
//! macro expands it for each backend. Values that differ in representation (UUIDs,
//! timestamps, JSON) go through sqlx's typed encodings, so the same Rust types come back.

mod db;
mod error;
pub mod migrate;
mod raw_json;
mod sql;

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod content_policy;
pub mod jobs;
pub mod media;
pub mod media_pipeline;
pub mod models;
pub mod notifications;
pub mod personas;
pub mod refresh_tokens;
pub mod timelines;
pub mod user_settings;
pub mod webhooks;
pub mod workers;

pub use db::{Backend, Db, DbOptions, SqliteDb};
pub use error::{StoreError, StoreResult};
pub use raw_json::RawJson;
