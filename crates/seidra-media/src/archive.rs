//! ZIP exports streamed from the object store into a file: each object is fetched while the
//! previous one is written (a small bounded pipeline, so memory stays at a few objects), and
//! written as a *stored* entry — media is already compressed, so deflate would cost CPU for
//! nothing. Every item gets a `<name>.json` with its metadata; `manifest.json` lists them all.

use std::io::{BufWriter, Seek, Write};

use seidra_storage::{SharedStore, StorageError};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

/// One item to archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The object to copy.
    pub storage_key: String,
    /// File name inside the archive (`<name>.<ext>`); its metadata goes to `<name>.json`.
    pub file_name: String,
    /// Metadata written beside it.
    pub metadata: Value,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Items archived.
    pub items: usize,
    /// Items whose object was missing (listed in the manifest, not archived).
    pub missing: usize,
    /// Bytes of media copied.
    pub media_bytes: u64,
    /// Size of the archive.
    pub zip_bytes: u64,
}

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading an object failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing the archive failed.
    #[error("writing the archive failed: {0}")]
    Write(String),
    /// Cancelled between items.
    #[error("cancelled")]
    Cancelled,
}

enum Msg {
    Item { name: String, meta_name: String, bytes: Vec<u8>, metadata: Value },
    Manifest(Vec<u8>),
}

/// Objects fetched ahead of the writer.
const PIPELINE_DEPTH: usize = 2;

/// Writes the archive of `entries` to `out`, with `manifest` (an object) extended by the
/// item list as `manifest.json`; `progress(done, total)` is called after each item. Returns
/// the summary and the writer (flushed).
pub async fn write_zip<W: Write + Seek + Send + 'static>(
    store: &SharedStore,
    entries: Vec<Entry>,
    manifest: Value,
    out: W,
    progress: impl Fn(usize, usize) + Send,
    cancel: &CancellationToken,
) -> Result<(Summary, W), ArchiveError> {
    let total = entries.len();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(PIPELINE_DEPTH);
    let writer = tokio::task::spawn_blocking(move || -> Result<(u64, W), ArchiveError> {
        let werr = |e: &dyn std::fmt::Display| ArchiveError::Write(e.to_string());
        let mut zip = ZipWriter::new(BufWriter::with_capacity(1 << 20, out));
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Item { name, meta_name, bytes, metadata } => {
                    let large = bytes.len() as u64 >= u64::from(u32::MAX);
                    zip.start_file(name, stored.large_file(large)).map_err(|e| werr(&e))?;
                    zip.write_all(&bytes).map_err(|e| werr(&e))?;
                    let meta = serde_json::to_vec_pretty(&metadata).map_err(|e| werr(&e))?;
                    zip.start_file(meta_name, stored).map_err(|e| werr(&e))?;
                    zip.write_all(&meta).map_err(|e| werr(&e))?;
                }
                Msg::Manifest(bytes) => {
                    zip.start_file("manifest.json", stored).map_err(|e| werr(&e))?;
                    zip.write_all(&bytes).map_err(|e| werr(&e))?;
                }
            }
        }
        let mut buf = zip.finish().map_err(|e| werr(&e))?;
        buf.flush().map_err(|e| werr(&e))?;
        let mut out = buf.into_inner().map_err(|e| werr(&e.error()))?;
        let len = out.stream_position().map_err(|e| werr(&e))?;
        Ok((len, out))
    });

    let feed = async move {
        let mut listing: Vec<Value> = Vec::with_capacity(total);
        let mut summary = Summary { items: 0, missing: 0, media_bytes: 0, zip_bytes: 0 };
        for (done, entry) in entries.into_iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(ArchiveError::Cancelled);
            }
            let bytes = match store.get(&entry.storage_key).await {
                Ok(b) => b,
                Err(StorageError::NotFound(_)) => {
                    summary.missing += 1;
                    listing.push(json!({ "file": null, "missing": true, "metadata": entry.metadata }));
                    continue;
                }
                Err(e) => return Err(ArchiveError::Storage(e)),
            };
            let stem = entry.file_name.rsplit_once('.').map_or(entry.file_name.as_str(), |(stem, _)| stem);
            let meta_name = format!("{stem}.json");
            listing.push(json!({ "file": entry.file_name, "metadata_file": meta_name, "bytes": bytes.len(), "metadata": entry.metadata }));
            summary.items += 1;
            summary.media_bytes += bytes.len() as u64;
            let msg = Msg::Item { name: entry.file_name, meta_name, bytes, metadata: entry.metadata };
            if tx.send(msg).await.is_err() {
                // The writer stopped: its error is reported below.
                return Ok(summary);
            }
            progress(done + 1, total);
        }
        let mut manifest = match manifest {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        manifest.insert("items".to_owned(), Value::Array(std::mem::take(&mut listing)));
        let bytes =
            serde_json::to_vec_pretty(&Value::Object(manifest)).map_err(|e| ArchiveError::Write(e.to_string()))?;
        let _ = tx.send(Msg::Manifest(bytes)).await;
        Ok(summary)
    };
    // The feeder owns the sender: when it ends, the channel closes and the writer finishes.
    let fed = feed.await;
    let written = writer.await.map_err(|e| ArchiveError::Write(format!("the writer crashed: {e}")))?;
    let mut summary = fed?;
    let (len, out) = written?;
    summary.zip_bytes = len;
    Ok((summary, out))
}
