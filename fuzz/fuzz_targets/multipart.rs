//! The upload route's handling of a multipart body (`POST /api/media/uploads`): the body is
//! parsed by multer (what axum's `Multipart` extractor wraps), each part's file name goes
//! through the display-name sanitiser and its first bytes through the magic-byte sniffer, as
//! in `seidra-api::routes::uploads`. Never panics; a sanitised name is never empty and holds no
//! `/`, `\`, `..`, NUL or control character, no leading dot, at most
//! MAX_FILENAME_CHARS characters; a sniffed type is one of the accepted ones, its MIME type
//! matching its kind and extension.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use seidra_core::validation::{MAX_FILENAME_CHARS, sanitize_filename};

// The sniffer's own source, compiled in here: it is a pure function, and depending on
// seidra-media would build its whole I/O stack (tokio, image codecs, the S3 client, rustls)
// under the fuzzing instrumentation for nothing.
#[path = "../../crates/seidra-media/src/sniff.rs"]
#[allow(dead_code)]
mod sniff;

const BOUNDARY: &str = "SEIDRAFUZZ";

/// Every accepted type: MIME type, extension, kind.
const ACCEPTED: [(&str, &str, &str); 11] = [
    ("image/png", "png", "image"),
    ("image/jpeg", "jpg", "image"),
    ("image/gif", "gif", "image"),
    ("image/webp", "webp", "image"),
    ("audio/wav", "wav", "audio"),
    ("audio/flac", "flac", "audio"),
    ("audio/opus", "opus", "audio"),
    ("audio/ogg", "ogg", "audio"),
    ("audio/mpeg", "mp3", "audio"),
    ("video/mp4", "mp4", "video"),
    ("video/quicktime", "mov", "video"),
];
const WEBM: (&str, &str, &str) = ("video/webm", "webm", "video");

fn check_name(raw: &str) {
    let name = sanitize_filename(raw);
    assert!(!name.is_empty(), "empty name from {raw:?}");
    assert!(name.chars().count() <= MAX_FILENAME_CHARS, "{name:?} is too long");
    assert!(!name.contains(['/', '\\']), "{name:?} from {raw:?} holds a slash");
    assert!(!name.contains(".."), "{name:?} from {raw:?} holds `..`");
    assert!(!name.chars().any(char::is_control), "{name:?} from {raw:?} holds a control character");
    assert!(!name.starts_with('.'), "{name:?} from {raw:?} starts with a dot");
}

fn check_sniff(head: &[u8]) {
    let Some(s) = sniff::sniff(&head[..head.len().min(sniff::SNIFF_LEN)]) else { return };
    let found = (s.mime, s.ext, s.kind.as_str());
    assert!(ACCEPTED.contains(&found) || found == WEBM, "unexpected sniff result {found:?}");
    assert!(s.mime.starts_with(&format!("{}/", s.kind.as_str())), "{found:?}: MIME type and kind disagree");
}

fn parse(body: Bytes) {
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, BOUNDARY);
    futures_executor::block_on(async {
        // A bounded number of parts: the route stops at its size limits, not a count.
        for _ in 0..64 {
            let Ok(Some(mut field)) = multipart.next_field().await else { return };
            if let Some(raw) = field.file_name() {
                check_name(raw);
            }
            let mut head = Vec::new();
            while head.len() < sniff::SNIFF_LEN {
                match field.chunk().await {
                    Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                    _ => break,
                }
            }
            check_sniff(&head);
        }
    });
}

fuzz_target!(|data: &[u8]| {
    // The sanitiser and the sniffer on the raw input too: multer only hands over names it
    // could parse out of a Content-Disposition header.
    check_name(&String::from_utf8_lossy(data));
    check_sniff(data);
    parse(Bytes::copy_from_slice(data));
});
