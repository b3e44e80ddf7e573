//! `GET /files/{key}?exp=&sig=`: downloads through short-lived signed URLs (local storage).
//! The signature is the authorisation, so links work in `<img src>` without a token.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use seidra_storage::{SignatureError, StorageError};
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

/// Serves an object if the signature is valid and not expired.
pub async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    AppQuery(q): AppQuery<SignedQuery>,
) -> Result<Response, ApiError> {
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    state.signer.verify(&key, q.exp, &q.sig, now).map_err(|e| match e {
        SignatureError::Expired => {
            ApiError::forbidden("url_expired", "this download link has expired; ask for a new one")
        }
        _ => ApiError::forbidden("invalid_signature", "this download link is not valid"),
    })?;
    let bytes = state.storage.get(&key).await.map_err(|e| match e {
        StorageError::NotFound(_) => ApiError::not_found("file"),
        other => ApiError::internal(other),
    })?;
    let mime = mime_for(&key);
    let filename = key.rsplit('/').next().unwrap_or("file");
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600, immutable"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

fn mime_for(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("mp4") => "video/mp4",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}
