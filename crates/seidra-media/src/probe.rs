//! Probing: image dimensions from the header only, audio/video duration and video frame size
//! from `ffprobe`.

use std::path::Path;
use std::time::Duration;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The content is not a readable file of its sniffed type.
    #[error("the file cannot be read as {0}")]
    Invalid(String),
    /// `ffprobe` could not be started (not installed, not on PATH).
    #[error("ffprobe is not available ({0}); install ffmpeg")]
    ToolMissing(String),
    /// `ffprobe` ran longer than allowed.
    #[error("ffprobe timed out")]
    Timeout,
    /// File system trouble.
    #[error("probe I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Width and height of the image in `path`, decoding only its header.
pub fn image_dimensions(path: &Path) -> Result<(u32, u32), ProbeError> {
    let reader = image::ImageReader::open(path)?
        .with_guessed_format()
        .map_err(|e| ProbeError::Invalid(format!("an image: {e}")))?;
    reader.into_dimensions().map_err(|e| ProbeError::Invalid(format!("an image: {e}")))
}

/// Longest `ffprobe` may take on one file.
pub const FFPROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Duration of the audio/video file in `path`, seconds, from `ffprobe` (a real process, killed
/// after [`FFPROBE_TIMEOUT`]). `Invalid` when ffprobe cannot read the file.
pub async fn duration_secs(ffprobe: &str, path: &Path) -> Result<f64, ProbeError> {
    let output = ffprobe_output(
        ffprobe,
        &["-v", "error", "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1"],
        path,
    )
    .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ProbeError::Invalid(format!("media ({})", stderr.lines().next().unwrap_or("ffprobe failed"))));
    }
    stdout
        .lines()
        .find_map(|l| l.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d >= 0.0)
        .ok_or_else(|| ProbeError::Invalid("media (ffprobe reported no duration)".to_owned()))
}

/// Width and height of the first video stream of the file in `path`, from `ffprobe`.
pub async fn video_dimensions(ffprobe: &str, path: &Path) -> Result<(u32, u32), ProbeError> {
    let output = ffprobe_output(
        ffprobe,
        &["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"],
        path,
    )
    .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed = stdout.lines().find_map(|l| {
        let (w, h) = l.trim().trim_end_matches(',').split_once(',')?;
        Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?))
    });
    match parsed {
        Some((w, h)) if output.status.success() && w > 0 && h > 0 => Ok((w, h)),
        _ => Err(ProbeError::Invalid("video (ffprobe found no video stream)".to_owned())),
    }
}

/// Whether the file at `path` has an audio stream (`ffprobe`); `false` when it cannot tell.
pub async fn has_audio(ffprobe: &str, path: &Path) -> bool {
    let args = ["-v", "error", "-select_streams", "a", "-show_entries", "stream=index", "-of", "csv=p=0"];
    match ffprobe_output(ffprobe, &args, path).await {
        Ok(out) => out.status.success() && !out.stdout.trim_ascii().is_empty(),
        Err(_) => false,
    }
}

/// Runs `ffprobe ARGS PATH` (no stdin, killed when dropped or after [`FFPROBE_TIMEOUT`]).
async fn ffprobe_output(ffprobe: &str, args: &[&str], path: &Path) -> Result<std::process::Output, ProbeError> {
    let mut cmd = tokio::process::Command::new(ffprobe);
    cmd.args(args).arg(path).stdin(std::process::Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(FFPROBE_TIMEOUT, cmd.output()).await {
        Err(_) => Err(ProbeError::Timeout),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(ProbeError::ToolMissing(e.to_string())),
        Ok(Err(e)) => Err(ProbeError::Io(e)),
        Ok(Ok(out)) => Ok(out),
    }
}
