//! Scanning the model directory: every `*.safetensors` file and every diffusers pipeline
//! directory (one with a `model_index.json`), with size, modification time, kind,
//! architecture and SHA-256; pickle files are listed as refused. Hidden entries (such as the
//! `.partial` directory of running downloads) are skipped, so a half-written file is never
//! catalogued.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::classify::{self, Architecture, ModelKind};
use crate::{ModelError, PICKLE_EXTENSIONS, safetensors};

/// Deepest directory level searched below the model directory.
const MAX_DEPTH: usize = 4;

/// A model found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Path relative to the model directory, `/`-separated.
    pub rel_path: String,
    /// File stem or directory name.
    pub name: String,
    /// `safetensors` or `diffusers`.
    pub format: &'static str,
    /// Role.
    pub kind: ModelKind,
    /// Family.
    pub architecture: Architecture,
    /// Size (a directory: all its files).
    pub bytes: u64,
    /// Modification time, Unix seconds.
    pub modified: i64,
    /// Hex SHA-256 of a single file (`None` for directories).
    pub sha256: Option<String>,
    /// The safetensors `__metadata__` (training details of LoRAs…).
    pub metadata: BTreeMap<String, String>,
}

/// A file the scan will not catalogue, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Path relative to the model directory.
    pub rel_path: String,
    /// Why.
    pub reason: String,
}

/// The result of a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Catalogued models.
    pub found: Vec<Found>,
    /// Files refused.
    pub refused: Vec<Refused>,
}

/// Scans `dir` (created when missing). `known(rel_path, bytes, modified)` returns a SHA-256
/// computed earlier for an unchanged file, so a rescan does not re-read gigabytes.
pub async fn scan(dir: &Path, known: &(dyn Fn(&str, u64, i64) -> Option<String> + Sync)) -> Result<Scan, ModelError> {
    tokio::fs::create_dir_all(dir).await.map_err(|e| io(dir, &e))?;
    let mut out = Scan::default();
    let mut pending: Vec<(PathBuf, usize)> = vec![(dir.to_path_buf(), 0)];
    while let Some((current, depth)) = pending.pop() {
        let mut entries = tokio::fs::read_dir(&current).await.map_err(|e| io(&current, &e))?;
        while let Some(entry) = entries.next_entry().await.map_err(|e| io(&current, &e))? {
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            let meta = entry.metadata().await.map_err(|e| io(&path, &e))?;
            let rel = rel_path(dir, &path);
            if meta.is_dir() {
                if tokio::fs::try_exists(path.join("model_index.json")).await.unwrap_or(false) {
                    match diffusers(&path, &rel, &file_name).await {
                        Ok(found) => out.found.push(found),
                        Err(e) => out.refused.push(Refused { rel_path: rel, reason: e.to_string() }),
                    }
                } else if depth < MAX_DEPTH {
                    pending.push((path, depth + 1));
                }
                continue;
            }
            let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            if PICKLE_EXTENSIONS.contains(&ext.as_str()) {
                out.refused.push(Refused {
                    rel_path: rel,
                    reason: "pickle-based formats are never loaded (they can run code); convert it to safetensors"
                        .to_owned(),
                });
                continue;
            }
            if ext != "safetensors" {
                continue;
            }
            let modified = modified_secs(&meta);
            match safetensors::read(&path).await {
                Ok(header) => {
                    let (kind, architecture) = classify::classify(&header);
                    let sha256 = match known(&rel, meta.len(), modified) {
                        Some(sha) => sha,
                        None => sha256_file(&path).await?,
                    };
                    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(file_name);
                    out.found.push(Found {
                        rel_path: rel,
                        name,
                        format: "safetensors",
                        kind,
                        architecture,
                        bytes: meta.len(),
                        modified,
                        sha256: Some(sha256),
                        metadata: header.metadata,
                    });
                }
                Err(e) => out.refused.push(Refused { rel_path: rel, reason: e.to_string() }),
            }
        }
    }
    out.found.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    out.refused.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok(out)
}

/// Reads one safetensors file as the scan would (for registering a single file).
pub async fn inspect(dir: &Path, path: &Path) -> Result<Found, ModelError> {
    let meta = tokio::fs::metadata(path).await.map_err(|e| io(path, &e))?;
    if meta.is_dir() {
        let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        return diffusers(path, &rel_path(dir, path), &name).await;
    }
    let header = safetensors::read(path).await?;
    let (kind, architecture) = classify::classify(&header);
    Ok(Found {
        rel_path: rel_path(dir, path),
        name: path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        format: "safetensors",
        kind,
        architecture,
        bytes: meta.len(),
        modified: modified_secs(&meta),
        sha256: Some(sha256_file(path).await?),
        metadata: header.metadata,
    })
}

async fn diffusers(path: &Path, rel: &str, name: &str) -> Result<Found, ModelError> {
    let read_json = |p: PathBuf| async move {
        let text = tokio::fs::read_to_string(&p).await.ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()
    };
    let index = read_json(path.join("model_index.json"))
        .await
        .ok_or_else(|| ModelError::Refused { reason: "model_index.json is not valid JSON".to_owned() })?;
    let text_encoder = read_json(path.join("text_encoder").join("config.json")).await;
    let unet = read_json(path.join("unet").join("config.json")).await;
    let architecture = classify::classify_diffusers(&index, text_encoder.as_ref(), unet.as_ref());
    let mut bytes = 0u64;
    let (mut safe, mut pickled) = (0usize, 0usize);
    let mut modified = 0i64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries = tokio::fs::read_dir(&d).await.map_err(|e| io(&d, &e))?;
        while let Some(entry) = entries.next_entry().await.map_err(|e| io(&d, &e))? {
            let meta = entry.metadata().await.map_err(|e| io(&entry.path(), &e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
                modified = modified.max(modified_secs(&meta));
                let ext =
                    entry.path().extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
                safe += usize::from(ext == "safetensors");
                pickled += usize::from(PICKLE_EXTENSIONS.contains(&ext.as_str()));
            }
        }
    }
    // Weights only in pickle form make the whole pipeline unloadable for us.
    if pickled > 0 && safe == 0 {
        return Err(ModelError::Refused {
            reason: "the pipeline's weights are pickle files only (.bin); save it with safetensors".to_owned(),
        });
    }
    Ok(Found {
        rel_path: rel.to_owned(),
        name: name.to_owned(),
        format: "diffusers",
        kind: ModelKind::Base,
        architecture,
        bytes,
        modified,
        sha256: None,
        metadata: BTreeMap::new(),
    })
}

/// Hex SHA-256 of a file, read in 1 MiB blocks.
pub async fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = tokio::fs::File::open(path).await.map_err(|e| io(path, &e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| io(path, &e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn rel_path(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

/// A file's modification time, Unix seconds (0 when unknown).
pub fn modified_secs(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

pub(crate) fn io(path: &Path, e: &std::io::Error) -> ModelError {
    ModelError::Io { path: path.display().to_string(), reason: e.to_string() }
}
