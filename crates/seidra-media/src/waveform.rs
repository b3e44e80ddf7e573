//! Audio peaks for waveform displays: ffmpeg decodes to 16-bit mono PCM at a low rate, then each
//! of `n` equal slices keeps its largest absolute sample (0–1).

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::process::{self, Run, ToolError};

/// Decoding rate: enough for peaks, small enough for long files.
pub const PEAK_SAMPLE_RATE: u32 = 4000;

/// Peaks of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Waveform {
    /// `n` values in 0..=1.
    pub peaks: Vec<f32>,
    /// Decoded length, seconds.
    pub duration_secs: f64,
}

/// Decodes the audio of `input` and reduces it to `n` peaks.
pub async fn peaks(ffmpeg: &str, input: &Path, n: usize, cancel: &CancellationToken) -> Result<Waveform, ToolError> {
    let dir = tempfile::tempdir().map_err(|e| ToolError::Io { tool: ffmpeg.to_owned(), reason: e.to_string() })?;
    let raw = dir.path().join("pcm.raw");
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(["-vn", "-ac", "1", "-ar", &PEAK_SAMPLE_RATE.to_string(), "-f", "s16le", "-c:a", "pcm_s16le"])
        .arg(&raw);
    let mut ignore = |_: f64| {};
    process::run(Run {
        command: cmd,
        stdin: None,
        progress_total_secs: None,
        on_progress: &mut ignore,
        cancel,
        timeout: Duration::from_secs(120),
    })
    .await?;
    let bytes =
        tokio::fs::read(&raw).await.map_err(|e| ToolError::Io { tool: ffmpeg.to_owned(), reason: e.to_string() })?;
    let samples: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    Ok(Waveform { peaks: reduce(&samples, n), duration_secs: samples.len() as f64 / f64::from(PEAK_SAMPLE_RATE) })
}

/// `n` peaks of `samples` (zeros when there are none).
pub fn reduce(samples: &[i16], n: usize) -> Vec<f32> {
    if n == 0 {
        return Vec::new();
    }
    (0..n)
        .map(|i| {
            let (a, b) = (i * samples.len() / n, ((i + 1) * samples.len() / n).max(i * samples.len() / n));
            let peak = samples[a..b].iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            f32::from(peak) / 32768.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_keeps_shape() {
        let s = [0i16, 100, -16384, 5, 32767, -1];
        let p = reduce(&s, 3);
        assert_eq!(p.len(), 3);
        assert!((p[1] - 0.5).abs() < 1e-3);
        assert!(p[2] > 0.99);
        assert_eq!(reduce(&[], 4), vec![0.0; 4]);
    }
}
