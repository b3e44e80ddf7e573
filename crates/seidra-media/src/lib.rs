//! Media processing with one job per module: [`sniff`] (what a file really is, from its magic
//! bytes), [`probe`] (image dimensions from the header, audio/video duration from `ffprobe`),
//! [`thumbnail`] (256 px and 768 px JPEG thumbnails), [`archive`] (streaming ZIP exports
//! from the object store), [`process`] (tool child processes: progress, process-group kill,
//! stderr tail), [`speech`] (espeak-ng / piper, transcoding), [`storyboard`] (the ffmpeg
//! command of a timeline render) and [`waveform`] (audio peaks).

pub mod archive;
pub mod probe;
pub mod process;
pub mod sniff;
pub mod speech;
pub mod storyboard;
pub mod thumbnail;
pub mod waveform;
