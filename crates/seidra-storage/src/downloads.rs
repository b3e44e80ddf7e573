//! One way to make a short-lived download URL for a key, whatever the backend: a presigned
//! GET on the backend itself when it has them (S3), else a signed `/files/<key>` link that
//! the API serves ([`UrlSigner`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{PresignOptions, SharedStore, SignatureError, UrlSigner};

/// A link from [`DownloadSigner::link`] stays valid for at least this long…
pub const LINK_TTL_SECS: u64 = 3600;
/// …and its expiry is rounded up to a multiple of this. So an object's link is the same URL for
/// this long: browsers keep thumbnails cached across list refreshes, and the server signs each
/// key once per step instead of three times per item of every page.
pub const LINK_STEP_SECS: u64 = 300;
/// Links remembered per step at most (about 200 bytes each); beyond, the memo starts over.
const LINK_MEMO_MAX: usize = 50_000;

/// Makes download URLs for the configured store, and checks the API's own `/files/` links.
#[derive(Clone)]
pub struct DownloadSigner {
    local: UrlSigner,
    store: SharedStore,
    links: Arc<Mutex<LinkMemo>>,
}

/// The links of the current step, by key.
#[derive(Default)]
struct LinkMemo {
    expires_at_unix: u64,
    urls: HashMap<String, String>,
}

impl std::fmt::Debug for DownloadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadSigner").field("backend", &self.store.backend()).finish_non_exhaustive()
    }
}

impl DownloadSigner {
    /// URLs for `store`; `local` signs (and verifies) the API's `/files/` links.
    pub fn new(local: UrlSigner, store: SharedStore) -> Self {
        Self { local, store, links: Arc::default() }
    }

    /// The current download link for `key` (see [`LINK_TTL_SECS`] and [`LINK_STEP_SECS`]).
    pub fn link(&self, key: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let expires_at_unix = link_expiry(now);
        // A panic elsewhere cannot leave the memo inconsistent: every entry is a finished URL.
        let memo = || self.links.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let mut links = memo();
            if links.expires_at_unix != expires_at_unix {
                links.expires_at_unix = expires_at_unix;
                links.urls.clear();
            } else if let Some(url) = links.urls.get(key) {
                return url.clone();
            }
        }
        let url = self.sign(key, expires_at_unix);
        let mut links = memo();
        if links.expires_at_unix == expires_at_unix {
            if links.urls.len() >= LINK_MEMO_MAX {
                links.urls.clear();
            }
            links.urls.insert(key.to_owned(), url.clone());
        }
        url
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

/// The expiry of links made at `now_unix`: `LINK_TTL_SECS` later, rounded up to the step.
fn link_expiry(now_unix: u64) -> u64 {
    (now_unix + LINK_TTL_SECS).div_ceil(LINK_STEP_SECS) * LINK_STEP_SECS
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

    #[test]
    fn link_expiry_is_at_least_the_ttl_and_steps() {
        for now in [0, 1, 299, 300, 301, 1_764_000_123] {
            let exp = link_expiry(now);
            assert_eq!(exp % LINK_STEP_SECS, 0);
            assert!(exp >= now + LINK_TTL_SECS && exp < now + LINK_TTL_SECS + LINK_STEP_SECS, "{now} -> {exp}");
        }
        assert_eq!(link_expiry(1), link_expiry(299), "one URL for the whole step");
    }

    #[test]
    fn links_are_stable_within_a_step_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore = Arc::new(crate::LocalStore::new(dir.path()).unwrap());
        let signer = DownloadSigner::new(UrlSigner::new(b"secret"), store);
        let key = "media/a/b.png";
        let first = signer.link(key);
        let again = signer.link(key);
        let other = signer.link("media/a/c.png");
        // The step may have turned between the calls; then the next call is stable again.
        let first = if first == again { first } else { signer.link(key) };
        assert_eq!(first, signer.link(key));
        assert_ne!(first, other);
        let query = first.strip_prefix("/files/media/a/b.png?").expect(&first);
        let (exp, sig) = query.split_once("&sig=").unwrap();
        let exp: u64 = exp.strip_prefix("exp=").unwrap().parse().unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(exp >= now + LINK_TTL_SECS - 5 && exp <= now + LINK_TTL_SECS + LINK_STEP_SECS, "{exp} vs {now}");
        assert_eq!(signer.verify(key, exp, sig, now), Ok(()));
        assert_eq!(signer.verify("media/a/c.png", exp, sig, now), Err(SignatureError::Invalid));
    }
}
