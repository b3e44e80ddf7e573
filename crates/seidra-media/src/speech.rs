//! Speech synthesis with child processes: espeak-ng (always, when installed) and piper (when its
//! binary and a voice directory are configured); WAV out, transcoded by ffmpeg to Opus or MP3.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use seidra_core::speech::{AudioFormat, SpeechEngine, espeak_pitch, espeak_speed};
use tokio::process::Command;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::process::{self, Run, ToolError};

/// Longest one synthesis or transcode may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the speech tools are.
#[derive(Debug, Clone)]
pub struct SpeechTools {
    /// espeak-ng executable.
    pub espeak_ng: String,
    /// piper executable (empty = off).
    pub piper: String,
    /// Directory of piper voices (empty = off).
    pub piper_voices: String,
    /// ffmpeg executable (transcoding).
    pub ffmpeg: String,
}

/// What to say and how.
#[derive(Debug, Clone)]
pub struct Utterance<'a> {
    /// Engine.
    pub engine: SpeechEngine,
    /// Voice name (espeak-ng voice or piper model stem).
    pub voice: &'a str,
    /// Rate multiplier, 0.5–2.
    pub rate: f32,
    /// Pitch shift, semitones (espeak-ng).
    pub pitch: f32,
    /// The text.
    pub text: &'a str,
}

/// Why a voice cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VoiceError {
    /// The engine has no such voice; `known` lists some that exist.
    #[error("unknown voice `{voice}`; known voices include: {known}")]
    Unknown {
        /// The name asked for.
        voice: String,
        /// A sample of existing names.
        known: String,
    },
    /// The engine is not installed or not configured.
    #[error("{0}")]
    Unavailable(String),
}

static ESPEAK_VOICES: OnceCell<Result<Arc<Vec<String>>, String>> = OnceCell::const_new();

/// Names espeak-ng accepts for `-v`: languages, voice names, files and their short language
/// codes, from `espeak-ng --voices` (listed once per process).
pub async fn espeak_voices(espeak_ng: &str) -> Result<Arc<Vec<String>>, String> {
    ESPEAK_VOICES
        .get_or_init(|| async {
            let out = tokio::time::timeout(
                Duration::from_secs(20),
                Command::new(espeak_ng).arg("--voices").stdin(std::process::Stdio::null()).kill_on_drop(true).output(),
            )
            .await
            .map_err(|_| format!("`{espeak_ng} --voices` timed out"))?
            .map_err(|e| format!("espeak-ng is not available ({e}); install it (apt-get install espeak-ng)"))?;
            if !out.status.success() {
                return Err(format!("`{espeak_ng} --voices` failed ({})", out.status));
            }
            Ok(Arc::new(parse_espeak_voices(&String::from_utf8_lossy(&out.stdout))))
        })
        .await
        .clone()
}

fn parse_espeak_voices(listing: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in listing.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 {
            continue;
        }
        names.extend([cols[1], cols[3], cols[4]].map(str::to_ascii_lowercase));
        // "Other languages" like `(en 2)(en-us 3)`: the codes only.
        for other in cols[5..].join(" ").split('(').filter_map(|s| s.split_whitespace().next()) {
            names.push(other.trim_end_matches(')').to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// piper voices: `<name>.onnx` files with their `<name>.onnx.json` in the voice directory.
pub fn piper_voices(dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".onnx")).map(str::to_owned))
        .filter(|stem| Path::new(dir).join(format!("{stem}.onnx.json")).is_file())
        .collect();
    names.sort();
    names
}

/// Checks that `engine` is usable and knows `voice`.
pub async fn check_voice(tools: &SpeechTools, engine: SpeechEngine, voice: &str) -> Result<(), VoiceError> {
    let known: Vec<String> = match engine {
        SpeechEngine::EspeakNg => espeak_voices(&tools.espeak_ng).await.map_err(VoiceError::Unavailable)?.to_vec(),
        SpeechEngine::Piper => {
            if tools.piper.is_empty() || tools.piper_voices.is_empty() {
                return Err(VoiceError::Unavailable(
                    "the piper engine is not configured (set media.piper and media.piper_voices)".to_owned(),
                ));
            }
            piper_voices(&tools.piper_voices)
        }
    };
    let base = match engine {
        // `en-us+f3`: a voice plus a variant.
        SpeechEngine::EspeakNg => voice.split('+').next().unwrap_or(voice).to_ascii_lowercase(),
        SpeechEngine::Piper => voice.to_owned(),
    };
    if known.contains(&base) {
        Ok(())
    } else {
        Err(VoiceError::Unknown {
            voice: voice.to_owned(),
            known: known.iter().take(12).cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

/// Speaks `u` into the WAV file `out`.
pub async fn synthesize(
    tools: &SpeechTools,
    u: &Utterance<'_>,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<(), ToolError> {
    let (command, stdin) = match u.engine {
        SpeechEngine::EspeakNg => {
            let mut cmd = Command::new(&tools.espeak_ng);
            cmd.arg("-v")
                .arg(u.voice)
                .arg("-s")
                .arg(espeak_speed(u.rate).to_string())
                .arg("-p")
                .arg(espeak_pitch(u.pitch).to_string())
                .arg("-w")
                .arg(out)
                // Text on stdin: never parsed as options, no length limit of the command line.
                .arg("--stdin");
            (cmd, u.text.as_bytes().to_vec())
        }
        SpeechEngine::Piper => {
            let model: PathBuf = Path::new(&tools.piper_voices).join(format!("{}.onnx", u.voice));
            let mut cmd = Command::new(&tools.piper);
            cmd.arg("--model")
                .arg(model)
                .arg("--output_file")
                .arg(out)
                // piper's length scale is the inverse of a rate.
                .arg("--length_scale")
                .arg(format!("{:.3}", 1.0 / u.rate.clamp(0.5, 2.0)));
            (cmd, u.text.as_bytes().to_vec())
        }
    };
    let mut ignore = |_: f64| {};
    process::run(Run {
        command,
        stdin: Some(stdin),
        progress_total_secs: None,
        on_progress: &mut ignore,
        cancel,
        timeout: TOOL_TIMEOUT,
    })
    .await
}

/// Transcodes a WAV file to `format` (Opus 64 kb/s in Ogg, or MP3 VBR ~130 kb/s) at `out`.
pub async fn transcode(
    ffmpeg: &str,
    wav: &Path,
    format: AudioFormat,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<(), ToolError> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i"]).arg(wav);
    match format {
        AudioFormat::Wav => cmd.args(["-c:a", "pcm_s16le", "-f", "wav"]),
        AudioFormat::Opus => cmd.args(["-c:a", "libopus", "-b:a", "64k", "-f", "ogg"]),
        AudioFormat::Mp3 => cmd.args(["-c:a", "libmp3lame", "-q:a", "4", "-f", "mp3"]),
    };
    cmd.arg(out);
    let mut ignore = |_: f64| {};
    process::run(Run {
        command: cmd,
        stdin: None,
        progress_total_secs: None,
        on_progress: &mut ignore,
        cancel,
        timeout: TOOL_TIMEOUT,
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_listing_parses() {
        let listing = "Pty Language       Age/Gender VoiceName          File                 Other Languages\n \
             2  en-us           --/M      English_(America)  gmw/en-US            (en 3)\n \
             5  fr-fr           --/M      French             roa/fr               (fr 5)\n";
        let names = parse_espeak_voices(listing);
        for n in ["en-us", "english_(america)", "gmw/en-us", "en", "fr", "roa/fr", "fr-fr"] {
            assert!(names.contains(&n.to_owned()), "{n} missing from {names:?}");
        }
    }
}
