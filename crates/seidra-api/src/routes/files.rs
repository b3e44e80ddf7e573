//! `GET /files/{key}?exp=&sig=`: downloads through short-lived signed URLs (local storage).
//! The signature is the authorisation, so links work in `<img src>` without a token.
//!
//! Single byte ranges are honoured (`bytes=a-b`, `bytes=a-`, `bytes=-n`) so that audio and
//! video can seek: 206 with `Content-Range`, or 416 with `Content-Range: bytes */len`.
//! Multiple ranges and malformed headers get the whole object (RFC 9110 lets us ignore them).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use seidra_storage::{SignatureError, StorageError, content_type_for, inline_disposition};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::AppQuery;
use crate::state::AppState;

/// Signature parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedQuery {
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Hex HMAC.
    pub sig: String,
}

/// What a `Range` header asks of an object of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// No (usable) range: the whole object.
    Full,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range entirely past the end.
    Unsatisfiable,
}

/// Parses a single `bytes=` range against an object of `len` bytes.
fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return ByteRange::Full };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return ByteRange::Full };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last n bytes.
        let Ok(n) = last.parse::<u64>() else { return ByteRange::Full };
        if n == 0 || len == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Part { start: len.saturating_sub(n), end: len - 1 };
    }
    let Ok(start) = first.parse::<u64>() else { return ByteRange::Full };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return ByteRange::Full,
        }
    };
    if start >= len {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part { start, end: end.min(len - 1) }
}

/// Serves an object if the signature is valid and not expired.
pub async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    AppQuery(q): AppQuery<SignedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    state.signer.verify(&key, q.exp, &q.sig, now).map_err(|e| match e {
        SignatureError::Expired => {
            ApiError::forbidden("url_expired", "this download link has expired; ask for a new one")
        }
        _ => ApiError::forbidden("invalid_signature", "this download link is not valid"),
    })?;
    // Media files are small enough to read whole; a range is cut from them.
    let bytes = state.storage.get(&key).await.map_err(|e| match e {
        StorageError::NotFound(_) => ApiError::not_found("file"),
        other => ApiError::internal(other),
    })?;
    let len = bytes.len() as u64;
    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), len);
    let mut response = match range {
        ByteRange::Full => (StatusCode::OK, bytes).into_response(),
        ByteRange::Part { start, end } => {
            let part = bytes
                .get(usize::try_from(start).unwrap_or(usize::MAX)..=usize::try_from(end).unwrap_or(usize::MAX))
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            let mut response = (StatusCode::PARTIAL_CONTENT, part).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            response
        }
        ByteRange::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the requested range is outside the file ({len} bytes)"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            response.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(response);
        }
    };
    let filename = key.rsplit('/').next().unwrap_or("file");
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type_for(&key)));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600, immutable"));
    if let Ok(v) = HeaderValue::from_str(&inline_disposition(filename)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_rfc_9110() {
        use ByteRange::*;
        let r = |h: &str| parse_range(Some(h), 10);
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(r("bytes=0-3"), Part { start: 0, end: 3 });
        assert_eq!(r("bytes=5-"), Part { start: 5, end: 9 });
        assert_eq!(r("bytes=5-100"), Part { start: 5, end: 9 });
        assert_eq!(r("bytes=-3"), Part { start: 7, end: 9 });
        assert_eq!(r("bytes=-30"), Part { start: 0, end: 9 });
        assert_eq!(r("bytes=10-"), Unsatisfiable);
        assert_eq!(r("bytes=10-12"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-5"), 0), Unsatisfiable);
        // Ignored: other units, several ranges, garbage, reversed.
        for h in ["items=0-1", "bytes=0-1,3-4", "bytes=a-b", "bytes=5-2", "bytes=", "bytes=-"] {
            assert_eq!(r(h), Full, "{h}");
        }
    }
}
