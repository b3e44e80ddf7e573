//! One way to make a short-lived download URL for a key, whatever the backend: a presigned
//! GET on the backend itself when it has them (S3), else a signed `/files/<key>` link that
//! the API serves ([`UrlSigner`]).

use crate::{PresignOptions, SharedStore, SignatureError, UrlSigner};

/// Makes download URLs for the configured store, and checks the API's own `/files/` links.
#[derive(Clone)]
pub struct DownloadSigner {
    local: UrlSigner,
    store: SharedStore,
}

impl std::fmt::Debug for DownloadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadSigner").field("backend", &self.store.backend()).finish_non_exhaustive()
    }
}

impl DownloadSigner {
    /// URLs for `store`; `local` signs (and verifies) the API's `/files/` links.
    pub fn new(local: UrlSigner, store: SharedStore) -> Self {
        Self { local, store }
    }

    /// A URL for `key` valid until `expires_at_unix`, answering with the content type guessed
    /// from the key's extension and the key's last segment as the file name.
    pub fn sign(&self, key: &str, expires_at_unix: u64) -> String {
        self.url(key, expires_at_unix, content_type_for(key), None)
    }

    /// A URL for `key` valid until `expires_at_unix` (absolute for S3, a `/files/…` path for
    /// local storage). `filename` defaults to the key's last segment.
    pub fn url(&self, key: &str, expires_at_unix: u64, content_type: &str, filename: Option<&str>) -> String {
        let name = filename.unwrap_or_else(|| key.rsplit('/').next().unwrap_or("file"));
        let options = PresignOptions {
            content_type: Some(content_type.to_owned()),
            content_disposition: Some(inline_disposition(name)),
        };
        self.store
            .presigned_get(key, expires_at_unix, &options)
            .unwrap_or_else(|| self.local.sign(key, expires_at_unix))
    }

    /// The origin download URLs point at when it is not the API's own (S3), for the CSP.
    pub fn download_origin(&self) -> Option<String> {
        self.store.download_origin()
    }

    /// Checks a `/files/` link (see [`UrlSigner::verify`]).
    pub fn verify(&self, key: &str, exp: u64, sig: &str, now_unix: u64) -> Result<(), SignatureError> {
        self.local.verify(key, exp, sig, now_unix)
    }
}

/// `inline; filename="…"` with characters a header cannot carry replaced.
pub fn inline_disposition(filename: &str) -> String {
    let safe: String = filename
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    format!("inline; filename=\"{safe}\"")
}

/// The MIME type of the files SEIDRA writes, from the key's extension.
pub fn content_type_for(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_are_header_safe() {
        assert_eq!(inline_disposition("a b.png"), "inline; filename=\"a b.png\"");
        assert_eq!(inline_disposition("x\"y\nz.png"), "inline; filename=\"x_y_z.png\"");
        assert_eq!(content_type_for("jobs/a/b.png"), "image/png");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }
}
