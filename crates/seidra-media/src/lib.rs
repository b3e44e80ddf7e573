//! Media processing with one job per module: [`sniff`] (what a file really is, from its magic
//! bytes), [`probe`] (image dimensions from the header, audio/video duration from `ffprobe`),
//! [`thumbnail`] (256 px and 768 px JPEG thumbnails) and [`archive`] (streaming ZIP exports
//! from the object store).

pub mod archive;
pub mod probe;
pub mod sniff;
pub mod thumbnail;
