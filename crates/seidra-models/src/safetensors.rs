//! The safetensors header: 8 bytes of little-endian header length, then a JSON object mapping
//! tensor names to `{dtype, shape, data_offsets}` plus an optional `__metadata__` map of
//! strings. Reading it costs one small read whatever the file size, and proves the file is not
//! a pickle (which could run code when loaded).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::ModelError;

/// Largest header accepted (real headers of SDXL checkpoints are a few hundred KiB).
pub const MAX_HEADER_BYTES: u64 = 64 * 1024 * 1024;

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TensorInfo {
    /// Element type (`F16`, `F32`, `BF16`…).
    pub dtype: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Start and end of the data, relative to the end of the header.
    pub data_offsets: (u64, u64),
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Tensors by name (sorted).
    pub tensors: BTreeMap<String, TensorInfo>,
    /// The free-form `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
    /// Bytes the file must have: 8 + header + data.
    pub expected_len: u64,
}

/// What the first bytes of a file say it is, when it is one of the formats we refuse.
pub fn refused_format(first: &[u8]) -> Option<&'static str> {
    match first {
        // Pickle protocol 2–5 starts with PROTO (0x80) and the protocol number.
        [0x80, 2..=5, ..] => Some("a Python pickle (.ckpt/.pt/.bin): it can run code when loaded"),
        // `torch.save` since 1.6 writes a ZIP of pickles.
        [b'P', b'K', 3, 4, ..] => Some("a PyTorch ZIP archive of pickles: it can run code when loaded"),
        _ => None,
    }
}

/// Parses the header from the file's first bytes (`bytes` must hold at least the header).
pub fn parse(bytes: &[u8]) -> Result<Header, ModelError> {
    let not = |reason: String| ModelError::NotSafetensors { reason };
    if let Some(what) = refused_format(bytes) {
        return Err(not(format!("the file is {what}")));
    }
    let Some(len_bytes) = bytes.get(..8) else { return Err(not("shorter than the 8-byte header length".into())) };
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let header_len = u64::from_le_bytes(len);
    if !(2..=MAX_HEADER_BYTES).contains(&header_len) {
        return Err(not(format!("a header of {header_len} bytes is not plausible")));
    }
    let end = usize::try_from(8 + header_len).map_err(|_| not("header too large".into()))?;
    let Some(json) = bytes.get(8..end) else {
        return Err(not(format!("the file ends inside its {header_len}-byte header")));
    };
    parse_json(json, header_len)
}

fn parse_json(json: &[u8], header_len: u64) -> Result<Header, ModelError> {
    let not = |reason: String| ModelError::NotSafetensors { reason };
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| not(format!("the header is not a JSON object: {e}")))?;
    let mut header = Header::default();
    let mut data_end = 0u64;
    for (name, value) in raw {
        if name == "__metadata__" {
            header.metadata = serde_json::from_value(value)
                .map_err(|e| not(format!("`__metadata__` must map strings to strings: {e}")))?;
            continue;
        }
        let info: TensorInfo =
            serde_json::from_value(value).map_err(|e| not(format!("tensor `{name}` has a bad entry: {e}")))?;
        if info.data_offsets.0 > info.data_offsets.1 {
            return Err(not(format!("tensor `{name}` ends before it starts")));
        }
        data_end = data_end.max(info.data_offsets.1);
        header.tensors.insert(name, info);
    }
    if header.tensors.is_empty() {
        return Err(not("the header lists no tensors".into()));
    }
    header.expected_len = 8 + header_len + data_end;
    Ok(header)
}

/// Reads and checks the header of a file on disk (including that the file is as long as the
/// header says: a truncated download is refused here).
pub async fn read(path: &Path) -> Result<Header, ModelError> {
    let io = |e: std::io::Error| ModelError::Io { path: path.display().to_string(), reason: e.to_string() };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let file_len = file.metadata().await.map_err(io)?.len();
    let mut first = [0u8; 8];
    let got = file.read(&mut first).await.map_err(io)?;
    if got < 8 {
        // Short reads of a regular file happen only at its end.
        return parse(&first[..got]);
    }
    if let Some(what) = refused_format(&first) {
        return Err(ModelError::NotSafetensors { reason: format!("the file is {what}") });
    }
    let header_len = u64::from_le_bytes(first);
    if !(2..=MAX_HEADER_BYTES).contains(&header_len) || 8 + header_len > file_len {
        return Err(ModelError::NotSafetensors {
            reason: format!("a header of {header_len} bytes does not fit a {file_len}-byte file"),
        });
    }
    let mut json = vec![0u8; usize::try_from(header_len).unwrap_or(0)];
    file.read_exact(&mut json).await.map_err(io)?;
    let header = parse_json(&json, header_len)?;
    if header.expected_len != file_len {
        return Err(ModelError::NotSafetensors {
            reason: format!("the header describes {} bytes but the file has {file_len}", header.expected_len),
        });
    }
    Ok(header)
}

/// Builds a safetensors file's bytes (tests and tiny fixtures): each tensor is F32 zeros of
/// its shape.
pub fn build(tensors: &[(&str, &[u64])], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let len = shape.iter().product::<u64>() * 4;
        header.insert(
            (*name).to_owned(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len] }),
        );
        offset += len;
    }
    if !metadata.is_empty() {
        let meta: serde_json::Map<String, serde_json::Value> =
            metadata.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
        header.insert("__metadata__".to_owned(), serde_json::Value::Object(meta));
    }
    let json = serde_json::Value::Object(header).to_string();
    let mut out = Vec::with_capacity(8 + json.len() + usize::try_from(offset).unwrap_or(0));
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out.resize(out.len() + usize::try_from(offset).unwrap_or(0), 0);
    out
}
