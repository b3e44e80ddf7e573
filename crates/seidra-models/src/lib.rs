//! The model catalogue's file side: what a model file is (safetensors header, kind,
//! architecture), what a model directory holds (a scan that refuses pickle formats), and
//! downloads that are verified before they become visible.
//!
//! Only safetensors are ever read: pickle-based formats (`.ckpt`, `.pt`, `.bin`) can run code
//! when loaded, so they are reported and refused, never opened.

pub mod classify;
pub mod download;
pub mod safetensors;
pub mod scan;

pub use classify::{Architecture, ModelKind};

/// Why a model file or download was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The bytes are not a valid safetensors file.
    #[error("not a safetensors file: {reason}")]
    NotSafetensors {
        /// What is wrong.
        reason: String,
    },
    /// A policy refusal (scheme, format, name).
    #[error("{reason}")]
    Refused {
        /// Why.
        reason: String,
    },
    /// Larger than allowed.
    #[error("the file exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The content does not have the announced SHA-256.
    #[error("SHA-256 mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// What the caller announced.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// The server answered with an error status.
    #[error("the server answered HTTP {status}")]
    Http {
        /// The status.
        status: u16,
    },
    /// The connection failed or broke off.
    #[error("network error: {0}")]
    Network(String),
    /// A model file already exists under that name.
    #[error("a model file already exists at {path}")]
    Exists {
        /// Its path, relative to the model directory.
        path: String,
    },
    /// File system error.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// Cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
}

impl ModelError {
    /// Stable code for API errors and job errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotSafetensors { .. } => "not_safetensors",
            Self::Refused { .. } => "model_refused",
            Self::TooLarge { .. } => "model_too_large",
            Self::HashMismatch { .. } => "sha256_mismatch",
            Self::Http { .. } => "download_http_error",
            Self::Network(_) => "download_network_error",
            Self::Exists { .. } => "model_exists",
            Self::Io { .. } => "model_io_error",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether another attempt may succeed (network trouble, a server error, a full disk).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network(_) | Self::Io { .. } => true,
            Self::Http { status } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Extensions of pickle-based formats, refused by scans and downloads.
pub const PICKLE_EXTENSIONS: &[&str] = &["ckpt", "pt", "pth", "bin", "pkl", "pickle"];
