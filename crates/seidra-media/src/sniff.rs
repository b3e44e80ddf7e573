//! Content sniffing from magic bytes. The extension and the declared Content-Type of an
//! upload are never trusted; only what the first bytes say decides the type.

/// What the content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// MIME type.
    pub mime: &'static str,
    /// File extension used in storage keys.
    pub ext: &'static str,
    /// `image`, `audio` or `video`.
    pub kind: MediaKind,
}

/// The broad kind of a media file (decides size limits and thumbnails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// png, jpeg, gif, webp.
    Image,
    /// wav, mp3, ogg/opus, flac.
    Audio,
    /// mp4, webm, mov.
    Video,
}

impl MediaKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// Bytes worth reading before calling [`sniff`] (WebM's doctype can sit a little way in).
pub const SNIFF_LEN: usize = 4096;

const fn s(mime: &'static str, ext: &'static str, kind: MediaKind) -> Option<Sniffed> {
    Some(Sniffed { mime, ext, kind })
}

/// Identifies an allowed media type from the first bytes (up to [`SNIFF_LEN`]); `None` for
/// anything else.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    use MediaKind::{Audio, Image, Video};
    let at = |i: usize, magic: &[u8]| head.get(i..i + magic.len()) == Some(magic);
    if at(0, b"\x89PNG\r\n\x1a\n") {
        return s("image/png", "png", Image);
    }
    if at(0, b"\xff\xd8\xff") {
        return s("image/jpeg", "jpg", Image);
    }
    if at(0, b"GIF87a") || at(0, b"GIF89a") {
        return s("image/gif", "gif", Image);
    }
    if at(0, b"RIFF") && at(8, b"WEBP") {
        return s("image/webp", "webp", Image);
    }
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return s("audio/wav", "wav", Audio);
    }
    if at(0, b"fLaC") {
        return s("audio/flac", "flac", Audio);
    }
    if at(0, b"OggS") {
        return if contains(head, b"OpusHead") { s("audio/opus", "opus", Audio) } else { s("audio/ogg", "ogg", Audio) };
    }
    if at(0, b"ID3") || is_mpeg_audio_frame(head) {
        return s("audio/mpeg", "mp3", Audio);
    }
    if at(4, b"ftyp") {
        return match head.get(8..12) {
            Some(b"qt  ") => s("video/quicktime", "mov", Video),
            // Audio-only MPEG-4 flavours are not among the accepted types.
            Some(b"M4A " | b"M4B " | b"M4P ") => None,
            Some(_) => s("video/mp4", "mp4", Video),
            None => None,
        };
    }
    if at(4, b"moov") || at(4, b"wide") {
        return s("video/quicktime", "mov", Video);
    }
    if at(0, b"\x1a\x45\xdf\xa3") && contains(head, b"webm") {
        return s("video/webm", "webm", Video);
    }
    None
}

/// An MPEG-1/2 Layer III frame header (frame sync, a valid version, layer III).
fn is_mpeg_audio_frame(head: &[u8]) -> bool {
    match head {
        [0xff, b1, b2, ..] => {
            let sync = b1 & 0xe0 == 0xe0;
            let version_ok = b1 & 0x18 != 0x08;
            let layer3 = b1 & 0x06 == 0x02;
            let bitrate_ok = b2 >> 4 != 0x0f;
            sync && version_ok && layer3 && bitrate_ok
        }
        _ => false,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_magic() {
        let cases: [(&[u8], &str); 12] = [
            (b"\x89PNG\r\n\x1a\n....", "image/png"),
            (b"\xff\xd8\xff\xe0", "image/jpeg"),
            (b"GIF89a\x01\x00", "image/gif"),
            (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
            (b"RIFF\0\0\0\0WAVEfmt ", "audio/wav"),
            (b"fLaC\0", "audio/flac"),
            (b"OggS\0\x02....OpusHead", "audio/opus"),
            (b"OggS\0\x02....\x01vorbis", "audio/ogg"),
            (b"ID3\x04\0", "audio/mpeg"),
            (b"\0\0\0\x18ftypisom", "video/mp4"),
            (b"\0\0\0\x14ftypqt  ", "video/quicktime"),
            (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01B\x82\x84webm", "video/webm"),
        ];
        for (head, mime) in cases {
            assert_eq!(sniff(head).map(|s| s.mime), Some(mime), "{mime}");
        }
        assert_eq!(sniff(&[0xff, 0xfb, 0x90, 0x00]).map(|s| s.mime), Some("audio/mpeg"));
    }

    #[test]
    fn unknown_is_refused() {
        for head in [
            &b"hello, I am a PNG"[..],
            b"",
            b"\x89PN",
            b"RIFF\0\0\0\0AVI ",
            b"\0\0\0\x18ftypM4A ",
            b"\x1a\x45\xdf\xa3matroska",
            b"%PDF-1.7",
            b"<svg xmlns",
            &[0xff, 0xf1, 0x50, 0x80], // AAC ADTS, not layer III
        ] {
            assert_eq!(sniff(head), None, "{head:?}");
        }
    }
}
