//! The local directory backend: one file per object under a root directory.
//!
//! Writes go to `<root>/.tmp/` first, are fsynced, then renamed into place and the parent
//! directory is fsynced: a crash leaves either the old object or the new one, never a torn
//! file, and temporary files never appear under an object key (keys cannot start a segment
//! with `.`). Stale temporary files from crashed writers are swept when the store opens.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::{ObjectInfo, ObjectStore, StorageError, StoredObject, validate_key};

/// Directory under the root for in-flight writes (same filesystem, so rename is atomic).
const TMP_DIR: &str = ".tmp";
/// Directory under the root for health probes.
const PROBE_DIR: &str = ".health";
/// Temporary files older than this are leftovers of a crashed writer.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// Objects stored as files under a root directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl LocalStore {
    /// Opens (creating if needed) a store rooted at `root`, and sweeps stale temporary files.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root: PathBuf = root.into();
        let root = std::path::absolute(&root).map_err(ctx("resolve", &root))?;
        let tmp = root.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(ctx("create directory", &tmp))?;
        sweep_stale(&tmp);
        Ok(Self { root, tmp })
    }

    /// The root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key` (validated), for serving it with `sendfile`-style helpers.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Adds the operation and path to an I/O error, keeping its kind.
fn ctx<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> io::Error + 'a {
    move |e| io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

fn unique_name() -> String {
    crate::unique_suffix()
}

fn sweep_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else { return };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP_AGE);
        if old {
            // Best effort: a file we cannot remove is only wasted space.
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Makes a rename durable (the directory entry itself must reach the disk).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(ctx("fsync directory", dir))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Temp file + fsync + rename + fsync(parent). Blocking.
fn write_atomic(root: &Path, tmp_dir: &Path, rel: &str, bytes: &[u8]) -> io::Result<()> {
    let dest = root.join(rel);
    let parent = dest.parent().unwrap_or(root);
    fs::create_dir_all(parent).map_err(ctx("create directory", parent))?;
    let tmp = tmp_dir.join(unique_name());
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(ctx("create", &tmp))?;
        file.write_all(bytes).map_err(ctx("write", &tmp))?;
        file.sync_all().map_err(ctx("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, &dest).map_err(ctx("rename into", &dest))?;
        sync_dir(parent)
    })();
    if result.is_err() {
        // Best effort: the sweep at the next start removes it otherwise.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether an error means "there is no object here" (missing, or a directory of other keys).
fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io(io::Error::other(format!("storage task failed: {e}"))))?
}

fn read_range(path: &Path, key: &str, start: u64, end: u64) -> Result<Vec<u8>, StorageError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Err(StorageError::NotFound(key.to_owned())),
        Err(e) => return Err(ctx("open", path)(e).into()),
    };
    let meta = file.metadata().map_err(ctx("stat", path))?;
    if !meta.is_file() {
        return Err(StorageError::NotFound(key.to_owned()));
    }
    let len = meta.len();
    if start > end || start > len {
        return Err(StorageError::InvalidRange { key: key.to_owned(), start, end, len });
    }
    let end = end.min(len);
    let want = usize::try_from(end - start).map_err(|_| StorageError::InvalidRange {
        key: key.to_owned(),
        start,
        end,
        len,
    })?;
    file.seek(SeekFrom::Start(start)).map_err(ctx("seek", path))?;
    let mut buf = vec![0u8; want];
    file.read_exact(&mut buf).map_err(ctx("read", path))?;
    Ok(buf)
}

/// Every object file under the directory `prefix` narrows to, as `(key, len, mtime)`, skipping
/// the backend's own `.tmp`/`.health` directories. Blocking; one walk per page (O(objects under
/// the prefix's directory)), which is fine for the sweeper's hourly pass.
fn walk(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
    // Start at the deepest directory the prefix names completely (`jobs/u1/` → root/jobs/u1).
    let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    let start =
        if dir_part.is_empty() || validate_key(dir_part).is_err() { root.to_path_buf() } else { root.join(dir_part) };
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(ctx("list", &dir)(e).into()),
        };
        for entry in entries {
            let entry = entry.map_err(ctx("list", &dir))?;
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(root) else { continue };
            let Some(key) = rel.to_str().map(|k| k.replace(std::path::MAIN_SEPARATOR, "/")) else { continue };
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Deleted between listing and stat.
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(ctx("stat", &path)(e).into()),
            };
            if meta.is_dir() {
                if !entry.file_name().to_string_lossy().starts_with('.') {
                    stack.push(path);
                }
            } else if meta.is_file() && key.starts_with(prefix) && validate_key(&key).is_ok() {
                let last_modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push(ObjectInfo { key, bytes_len: meta.len(), last_modified });
            }
        }
    }
    Ok(out)
}

impl ObjectStore for LocalStore {
    fn backend(&self) -> &'static str {
        "local"
    }

    /// The local backend does not keep `content_type`: the caller records it with the output.
    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
        _content_type: &'a str,
    ) -> BoxFuture<'a, Result<StoredObject, StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            let (root, tmp, rel) = (self.root.clone(), self.tmp.clone(), key.to_owned());
            blocking(move || {
                let sha256_hex = hex::encode(Sha256::digest(&bytes));
                write_atomic(&root, &tmp, &rel, &bytes)?;
                Ok(StoredObject { key: rel, bytes_len: bytes.len() as u64, sha256_hex })
            })
            .await
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StorageError>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            match tokio::fs::read(&path).await {
                Ok(bytes) => Ok(bytes),
                Err(e) if is_absent(&e) => Err(StorageError::NotFound(key.to_owned())),
                Err(e) => Err(ctx("read", &path)(e).into()),
            }
        })
    }

    fn get_range<'a>(&'a self, key: &'a str, start: u64, end: u64) -> BoxFuture<'a, Result<Vec<u8>, StorageError>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let key = key.to_owned();
            blocking(move || read_range(&path, &key, start, end)).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if is_absent(&e) => Ok(()),
                // Some platforms report a directory as "permission denied": still no object.
                Err(_) if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) => Ok(()),
                Err(e) => Err(ctx("remove", &path)(e).into()),
            }
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            match tokio::fs::metadata(&path).await {
                Ok(meta) => Ok(meta.is_file()),
                Err(e) if is_absent(&e) => Ok(false),
                Err(e) => Err(ctx("stat", &path)(e).into()),
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, StorageError>> {
        Box::pin(async move {
            let (root, prefix, after) = (self.root.clone(), prefix.to_owned(), start_after.map(str::to_owned));
            blocking(move || {
                let mut all = walk(&root, &prefix)?;
                all.retain(|o| after.as_deref().is_none_or(|a| o.key.as_str() > a));
                all.sort_by(|a, b| a.key.cmp(&b.key));
                all.truncate(limit);
                Ok(all)
            })
            .await
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<Duration, StorageError>> {
        Box::pin(async move {
            let (root, tmp) = (self.root.clone(), self.tmp.clone());
            blocking(move || {
                let started = Instant::now();
                let name = unique_name();
                let rel = format!("{PROBE_DIR}/probe-{name}");
                let payload = format!("seidra storage probe {name}").into_bytes();
                write_atomic(&root, &tmp, &rel, &payload)?;
                let path = root.join(&rel);
                let read = fs::read(&path).map_err(ctx("read", &path));
                let removed = fs::remove_file(&path).map_err(ctx("remove", &path));
                if read? != payload {
                    return Err(StorageError::Corrupt(format!("{} read back different bytes", path.display())));
                }
                removed?;
                Ok(started.elapsed())
            })
            .await
        })
    }
}
