//! Typed settings for every SEIDRA process.
//!
//! Layers, lowest first: compiled defaults → optional TOML file (`--config` / `SEIDRA_CONFIG`)
//! → `SEIDRA_*` environment variables (nested keys joined with `__`, e.g.
//! `SEIDRA_RATE_LIMIT__AUTH__REQUESTS`). Every error names the variable or file it came from.

mod secret;
mod settings;
mod source;

pub use secret::Secret;
pub use settings::*;
pub use source::{ConfigError, LoadedSettings, load, load_from};
