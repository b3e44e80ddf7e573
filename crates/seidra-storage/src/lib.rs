//! Object storage for generated files behind one object-safe trait, so the worker and the API
//! hold an `Arc<dyn ObjectStore>` and do not care whether objects live in a local directory or
//! in an S3 bucket ([`S3Store`], any S3-compatible service).
//!
//! Keys are opaque, validated strings (`outputs/2025/01/abc.png`): the same key means the
//! same object on every backend, and no key can name a path outside the store. Content types
//! are the caller's business (stored with the job's outputs); a backend may keep them too.
//!
//! Downloads go through [`DownloadSigner`]: a presigned S3 GET URL when the backend has one,
//! else a short-lived HMAC-signed `/files/<key>` link ([`UrlSigner`]) served by the API.
//! [`Metered`] wraps any store with the `seidra_storage_*` metrics.

mod downloads;
mod local;
mod metered;
mod s3;
mod signing;
mod sigv4;

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

pub use downloads::{DownloadSigner, LINK_STEP_SECS, LINK_TTL_SECS, content_type_for, inline_disposition};
pub use local::LocalStore;
pub use metered::Metered;
pub use s3::{S3Config, S3Store};
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
    /// A remote backend (S3) refused or failed a request, or could not be reached.
    #[error("storage backend {op} failed: {}", describe_backend(*.status, .code.as_deref(), .message))]
    Backend {
        /// The operation (`put`, `get`, `list`…).
        op: &'static str,
        /// HTTP status; `None` when no answer came (connection refused, timeout).
        status: Option<u16>,
        /// The S3 error code (`NoSuchBucket`, `SignatureDoesNotMatch`, `AccessDenied`…).
        code: Option<String>,
        /// The server's message, or what went wrong on the way.
        message: String,
    },
    /// The backend's configuration is unusable (bad endpoint URL…).
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

fn describe_backend(status: Option<u16>, code: Option<&str>, message: &str) -> String {
    match (status, code) {
        (Some(status), Some(code)) => format!("HTTP {status} {code}: {message}"),
        (Some(status), None) => format!("HTTP {status}: {message}"),
        (None, _) => message.to_owned(),
    }
}

impl StorageError {
    /// Whether retrying later may succeed (I/O trouble, a 5xx/429 or no answer), as opposed
    /// to a bad request or a refusal (4xx: bad credentials, missing bucket).
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Io(_) => true,
            StorageError::Backend { status, .. } => status.is_none_or(|s| s >= 500 || s == 429),
            _ => false,
        }
    }

    /// Whether the store is out of space: a full disk or an exhausted quota on the local
    /// backend, HTTP 507 Insufficient Storage from a remote one. Retryable: space can be freed.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StorageError::Io(e) => is_disk_full(e),
            StorageError::Backend { status, .. } => *status == Some(507),
            _ => false,
        }
    }
}

/// Whether an I/O error means "no space left" (`ENOSPC`) or "disk quota exceeded" (`EDQUOT`).
/// The kind survives errors re-wrapped with context, the raw code does not: check both.
pub fn is_disk_full(err: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(err.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        || matches!(err.raw_os_error(), Some(ENOSPC | EDQUOT))
}

/// One object as listed by [`ObjectStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its length, bytes.
    pub bytes_len: u64,
    /// When it was last written.
    pub last_modified: SystemTime,
}

/// What a presigned download answers with, so browsers show and name the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresignOptions {
    /// `Content-Type` of the response.
    pub content_type: Option<String>,
    /// `Content-Disposition` of the response (`inline; filename="x.png"`).
    pub content_disposition: Option<String>,
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

    /// Up to `limit` objects whose keys start with `prefix` and sort after `start_after`, in
    /// key order. A short page does not mean the end; an empty one does (page with the last
    /// key as the next `start_after`). Backend-internal objects (probes) are not listed.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, StorageError>>;

    /// Writes, reads back and deletes a probe object; returns how long that took.
    fn health(&self) -> BoxFuture<'_, Result<Duration, StorageError>>;

    /// A URL that downloads `key` directly from the backend until `expires_at_unix`, or
    /// `None` when the backend has no such URLs (local: the API serves signed `/files/` links).
    fn presigned_get(&self, key: &str, expires_at_unix: u64, options: &PresignOptions) -> Option<String> {
        let _ = (key, expires_at_unix, options);
        None
    }

    /// The origin (`scheme://host[:port]`) browsers download from when it is not the API's
    /// own (presigned S3 URLs), for the Content-Security-Policy.
    fn download_origin(&self) -> Option<String> {
        None
    }

    /// Non-secret facts for health reports (`endpoint`, `bucket`…).
    fn describe(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

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

/// Every object under `prefix` (all pages of [`ObjectStore::list`]); for tests and small prefixes.
pub async fn list_all(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
    let mut out: Vec<ObjectInfo> = Vec::new();
    loop {
        let after = out.last().map(|o| o.key.clone());
        let page = store.list(prefix, after.as_deref(), 1000).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// A name no other writer (thread, process or container sharing the store) will pick: a
/// per-process random value plus a counter.
pub(crate) fn unique_suffix() -> String {
    static NONCE: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS; its hash of nothing is a random per-process value.
    let nonce = *NONCE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new().build_hasher().finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nonce:016x}-{}-{n}", std::process::id())
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
