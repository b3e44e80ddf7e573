//! Object storage for generated files behind one object-safe trait, so the worker and the API
//! hold an `Arc<dyn ObjectStore>` and do not care whether objects live in a local directory
//! (now) or in an S3 bucket (later).
//!
//! Keys are opaque, validated strings (`outputs/2025/01/abc.png`): the same key means the
//! same object on every backend, and no key can name a path outside the store. Content types
//! are the caller's business (stored with the job's outputs); a backend may keep them too.
//!
//! Local downloads go through [`UrlSigner`]: short-lived HMAC-signed `/files/<key>` links.

mod local;
mod signing;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub use local::LocalStore;
pub use signing::{DOWNLOAD_PATH_PREFIX, SignatureError, UrlSigner};

/// Longest accepted key, bytes.
pub const MAX_KEY_LEN: usize = 512;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key breaks the key rules (see [`validate_key`]).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No object has this key.
    #[error("object {0:?} not found")]
    NotFound(String),
    /// A byte range outside the object.
    #[error("range {start}..{end} is outside object {key:?} of {len} bytes")]
    InvalidRange {
        /// The object's key.
        key: String,
        /// Requested start.
        start: u64,
        /// Requested end (exclusive).
        end: u64,
        /// Object length.
        len: u64,
    },
    /// The health probe read back different bytes than it wrote.
    #[error("storage health probe failed: {0}")]
    Corrupt(String),
    /// The backend failed (disk full, permissions, missing mount…); the message names the
    /// operation and path.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// Whether retrying later may succeed (I/O trouble), as opposed to a bad request.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Io(_))
    }
}

/// What [`ObjectStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The object's key.
    pub key: String,
    /// Its length, bytes.
    pub bytes_len: u64,
    /// Lower-case hex SHA-256 of its content.
    pub sha256_hex: String,
}

/// A store of immutable-ish objects addressed by opaque keys. Object-safe, so callers hold
/// `Arc<dyn ObjectStore>` ([`SharedStore`]).
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Backend name for logs and health reports (`local`, `s3`).
    fn backend(&self) -> &'static str;

    /// Stores `bytes` under `key`, replacing any previous object. Atomic: readers see the
    /// old object or the whole new one, never a partial write, even after a crash.
    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<StoredObject, StorageError>>;

    /// The whole object.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StorageError>>;

    /// Bytes `start..end` of the object (`end` is clamped to its length, as HTTP ranges are);
    /// `InvalidRange` when `start` is past the end or `start > end`.
    fn get_range<'a>(&'a self, key: &'a str, start: u64, end: u64) -> BoxFuture<'a, Result<Vec<u8>, StorageError>>;

    /// Removes the object; removing a missing object succeeds (idempotent).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Whether an object has this key.
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>>;

    /// Writes, reads back and deletes a probe object; returns how long that took.
    fn health(&self) -> BoxFuture<'_, Result<Duration, StorageError>>;

    /// Stores the content of the local file `path` under `key` (uploads and exports are
    /// spooled to a temporary file first). The default reads the file and calls
    /// [`ObjectStore::put`]; a backend may stream it instead.
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<StoredObject, StorageError>> {
        Box::pin(async move {
            let bytes = tokio::fs::read(path).await?;
            self.put(key, bytes, content_type).await
        })
    }
}

/// A shared store handle.
pub type SharedStore = Arc<dyn ObjectStore>;

/// Checks the key rules shared by every backend: 1–512 bytes of `[A-Za-z0-9._/-]`, relative
/// (no leading `/`), no `..` anywhere, no empty segment (`a//b`, trailing `/`), and no segment
/// starting with `.` (reserved for the backend's temporary files and probes).
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let fail = |reason: &'static str| Err(StorageError::InvalidKey { key: truncated(key), reason });
    if key.is_empty() {
        return fail("must not be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return fail("must be at most 512 bytes");
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')) {
        return fail("may only contain A-Z, a-z, 0-9, '.', '_', '-' and '/'");
    }
    if key.starts_with('/') {
        return fail("must be relative (no leading '/')");
    }
    if key.contains("..") {
        return fail("must not contain '..'");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return fail("must not contain empty segments ('//' or a trailing '/')");
        }
        if segment.starts_with('.') {
            return fail("segments must not start with '.'");
        }
    }
    Ok(())
}

/// Keeps error messages bounded when someone sends a huge key.
fn truncated(key: &str) -> String {
    key.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_keys_pass() {
        for key in ["a", "outputs/2025/01/abc.png", "u_1/j-2/out.0.png", "A-Z_0.9"] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn bad_keys_fail() {
        for key in [
            "",
            "../x",
            "/etc/passwd",
            "a/../../b",
            "a/..",
            "..",
            "a//b",
            "a/",
            ".tmp/x",
            "a/.hidden",
            "a\\b",
            "a b",
            "é",
            "a?b",
            "a%2e%2e/b",
            "C:x",
        ] {
            assert!(matches!(validate_key(key), Err(StorageError::InvalidKey { .. })), "{key:?}");
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
