//! Downloading a model by URL: https only unless allowed otherwise, safetensors only (pickle
//! formats are refused by name and by their first bytes), a size cap checked before and while
//! streaming, SHA-256 verified, and the header checked against the file's length. The bytes go
//! to `<dir>/.partial/` (hidden from scans) and become visible with one no-clobber link only
//! once every check passed.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::safetensors::{self, Header};
use crate::scan::io;
use crate::{ModelError, PICKLE_EXTENSIONS};

/// Limits of one download.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Largest file accepted, bytes.
    pub max_bytes: u64,
    /// The SHA-256 the file must have (hex), when the caller knows it.
    pub expected_sha256: Option<String>,
}

/// A verified download, now at its final path.
#[derive(Debug, Clone, PartialEq)]
pub struct Downloaded {
    /// Final path.
    pub path: PathBuf,
    /// Size.
    pub bytes: u64,
    /// Hex SHA-256.
    pub sha256: String,
    /// Its safetensors header.
    pub header: Header,
}

/// Checks a download URL and the file name it will be stored under: `https` (or `http` when
/// `allow_http`), no credentials, and a `.safetensors` name (`name` given, or the URL's last
/// path segment). Returns the URL and the file name.
pub fn check_request(raw_url: &str, name: Option<&str>, allow_http: bool) -> Result<(Url, String), ModelError> {
    let url = check_url(raw_url, allow_http)?;
    let name = match name {
        Some(n) => n.trim().to_owned(),
        None => url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default().to_owned(),
    };
    let file_name = check_file_name(&name)?;
    Ok((url, file_name))
}

/// The URL part of [`check_request`].
pub fn check_url(raw_url: &str, allow_http: bool) -> Result<Url, ModelError> {
    let refused = |reason: String| ModelError::Refused { reason };
    let url = Url::parse(raw_url.trim()).map_err(|e| refused(format!("not a valid URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return Err(refused("only https URLs are accepted (models.allow_http is off)".into())),
        other => return Err(refused(format!("the `{other}` scheme is not supported"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("credentials in the URL are not accepted".into()));
    }
    Ok(url)
}

/// The file-name part of [`check_request`]: `.safetensors` (added when there is no extension),
/// never a pickle extension, only `[A-Za-z0-9._+-]`, not hidden, at most 200 characters.
pub fn check_file_name(name: &str) -> Result<String, ModelError> {
    let refused = |reason: String| ModelError::Refused { reason };
    let file_name = if name.contains('.') || name.is_empty() { name.to_owned() } else { format!("{name}.safetensors") };
    let ext = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    if PICKLE_EXTENSIONS.contains(&ext.as_str()) {
        return Err(refused(format!(
            "`.{ext}` files are pickles, which can run code when loaded; only .safetensors is accepted"
        )));
    }
    if ext != "safetensors" {
        return Err(refused(format!("`{file_name}` is not a .safetensors file")));
    }
    let safe = file_name.len() <= 200
        && !file_name.starts_with('.')
        && file_name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    if !safe {
        return Err(refused(format!(
            "`{file_name}` is not a safe file name (letters, digits, `.-_+`, at most 200 characters)"
        )));
    }
    Ok(file_name)
}

/// Downloads `url` to `dest` (which must not exist), reporting `(bytes so far, total if
/// known)`. On any failure the partial file is removed and `dest` is untouched.
pub async fn download(
    client: &reqwest::Client,
    url: &Url,
    dest: &Path,
    options: &DownloadOptions,
    progress: &(dyn Fn(u64, Option<u64>) + Sync),
    cancel: &CancellationToken,
) -> Result<Downloaded, ModelError> {
    let dir = dest.parent().ok_or_else(|| ModelError::Refused { reason: "no target directory".to_owned() })?;
    let partial_dir = dir.join(".partial");
    tokio::fs::create_dir_all(&partial_dir).await.map_err(|e| io(&partial_dir, &e))?;
    let partial = partial_dir.join(format!("{}.part", uuid::Uuid::now_v7()));
    let result = fetch(client, url, &partial, options, progress, cancel).await;
    let outcome = match result {
        Ok((bytes, sha256)) => finish(&partial, dest, bytes, sha256, options).await,
        Err(e) => Err(e),
    };
    // Whatever happened, the partial file goes (after a success it is a second link).
    let _ = tokio::fs::remove_file(&partial).await;
    outcome
}

async fn fetch(
    client: &reqwest::Client,
    url: &Url,
    partial: &Path,
    options: &DownloadOptions,
    progress: &(dyn Fn(u64, Option<u64>) + Sync),
    cancel: &CancellationToken,
) -> Result<(u64, String), ModelError> {
    let net = |e: reqwest::Error| ModelError::Network(e.to_string());
    let mut resp = tokio::select! {
        r = client.get(url.clone()).send() => r.map_err(net)?,
        () = cancel.cancelled() => return Err(ModelError::Cancelled),
    };
    if !resp.status().is_success() {
        return Err(ModelError::Http { status: resp.status().as_u16() });
    }
    let total = resp.content_length();
    if total.is_some_and(|t| t > options.max_bytes) {
        return Err(ModelError::TooLarge { limit: options.max_bytes });
    }
    let mut file = tokio::fs::File::create(partial).await.map_err(|e| io(partial, &e))?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut head: Vec<u8> = Vec::with_capacity(8);
    loop {
        let chunk = tokio::select! {
            c = resp.chunk() => c.map_err(net)?,
            () = cancel.cancelled() => return Err(ModelError::Cancelled),
        };
        let Some(chunk) = chunk else { break };
        received += chunk.len() as u64;
        if received > options.max_bytes {
            return Err(ModelError::TooLarge { limit: options.max_bytes });
        }
        if head.len() < 8 {
            head.extend(chunk.iter().take(8 - head.len()));
            // A pickle is refused at its first bytes, not after gigabytes.
            if let Some(what) = safetensors::refused_format(&head) {
                return Err(ModelError::NotSafetensors { reason: format!("the file is {what}") });
            }
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| io(partial, &e))?;
        progress(received, total);
    }
    file.flush().await.map_err(|e| io(partial, &e))?;
    file.sync_all().await.map_err(|e| io(partial, &e))?;
    Ok((received, hex::encode(hasher.finalize())))
}

async fn finish(
    partial: &Path,
    dest: &Path,
    bytes: u64,
    sha256: String,
    options: &DownloadOptions,
) -> Result<Downloaded, ModelError> {
    if let Some(expected) = &options.expected_sha256
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(ModelError::HashMismatch { expected: expected.to_ascii_lowercase(), actual: sha256 });
    }
    let header = safetensors::read(partial).await?;
    // A hard link never replaces an existing file, so two downloads cannot clobber each other.
    match tokio::fs::hard_link(partial, dest).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ModelError::Exists {
                path: dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            });
        }
        Err(e) => return Err(io(dest, &e)),
    }
    Ok(Downloaded { path: dest.to_path_buf(), bytes, sha256, header })
}
