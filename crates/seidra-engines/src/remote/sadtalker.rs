//! SadTalker-compatible talking-head servers.
//!
//! SadTalker (OpenTalker/SadTalker) ships a CLI (`inference.py`) and a gradio demo, no HTTP API,
//! and the community wrappers disagree on paths and field names. SEIDRA therefore speaks one
//! small protocol whose fields are exactly `inference.py`'s arguments (documented in
//! `docs/ENGINES.md`, "SadTalker protocol"); a thin FastAPI/Flask wrapper around
//! `src.gradio_demo.SadTalker.test()` serves it:
//!
//! - `GET /health` → 2xx with a JSON object (`{"status":"ok"}`).
//! - `POST /generate`, `multipart/form-data`: files `source_image` (PNG/JPEG/WebP) and
//!   `driven_audio` (WAV/MP3/Ogg/…); text fields `preprocess` (`crop|resize|full|extcrop|extfull`),
//!   `still` (`true|false`), `enhancer` (`none|gfpgan|RestoreFormer`), `pose_style` (0–45),
//!   `expression_scale` (decimal), `size` (`256|512`), `batch_size` (1–10).
//!   Success: `200` with the MP4 itself (`Content-Type: video/mp4`, H.264 + the driving audio).
//!   Refusals: `4xx` with a JSON `{"detail": "…"}` (FastAPI's shape): not retried.
//!   Failures: `5xx` (or a dropped connection): retryable, fail over to another engine.
//! - No progress endpoint and no cancel endpoint: the client reports its own stages
//!   (`uploading`, `rendering`, `downloading` with the bytes received) and cancels by closing
//!   the connection, which the wrapper sees as a client disconnect.

use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use seidra_core::talking_head::TalkingHeadParams;
use tokio_util::sync::CancellationToken;

use super::http::{self, Http};
use super::remote_error;
use crate::{EngineError, EngineOutput, Progress, ProgressSink};

/// The generate endpoint.
pub const GENERATE_PATH: &str = "/generate";
/// The health endpoint.
pub const HEALTH_PATH: &str = "/health";
/// Largest video accepted from the server (a talking head of several minutes fits easily).
pub const MAX_VIDEO_BYTES: usize = 1 << 30;
/// How often the `rendering` stage is reported while the server works.
const TICK: Duration = Duration::from_millis(250);
/// Time constant of the `rendering` fraction's approach to its ceiling (the protocol has no
/// progress, so the bar moves on elapsed time and never claims to be done).
const RENDER_EASE_SECS: f64 = 40.0;

/// What a talking-head render needs: the portrait, the speech and SadTalker's parameters.
#[derive(Debug, Clone)]
pub struct TalkingHeadInput {
    /// The source image's bytes.
    pub image: Vec<u8>,
    /// Its MIME type (`image/png`).
    pub image_mime: String,
    /// The driving audio's bytes.
    pub audio: Vec<u8>,
    /// Its MIME type (`audio/wav`).
    pub audio_mime: String,
    /// Rendering parameters.
    pub params: TalkingHeadParams,
}

/// The SadTalker protocol.
#[derive(Debug, Clone, Copy)]
pub struct SadTalker;

/// The multipart text fields for `params`, in the protocol's names.
pub fn form_fields(params: &TalkingHeadParams) -> Vec<(&'static str, String)> {
    vec![
        ("preprocess", params.preprocess.as_str().to_owned()),
        ("still", params.still.to_string()),
        ("enhancer", params.enhancer.as_str().to_owned()),
        ("pose_style", params.pose_style.to_string()),
        ("expression_scale", params.expression_scale.to_string()),
        ("size", params.size.to_string()),
        ("batch_size", params.batch_size.to_string()),
    ]
}

fn ext(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/mpeg" => "mp3",
        "audio/ogg" => "ogg",
        "audio/flac" => "flac",
        _ => "bin",
    }
}

fn part(bytes: Vec<u8>, name: &str, mime: &str) -> Result<Part, EngineError> {
    Part::bytes(bytes)
        .file_name(format!("{name}.{}", ext(mime)))
        .mime_str(mime)
        .map_err(|e| remote_error(format!("{name}: unusable MIME type `{mime}`: {e}")))
}

fn report(progress: &dyn ProgressSink, fraction: f64, stage: &str) {
    progress.report(Progress { fraction: fraction as f32, stage: stage.to_owned(), preview: None });
}

/// Whether `bytes` start like an ISO-BMFF (MP4/MOV) file.
pub fn looks_like_mp4(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[4..8] == b"ftyp"
}

impl SadTalker {
    /// Runs one render; see the module docs. Cancel drops the connection at once.
    pub(crate) async fn run(
        &self,
        http: &Http,
        input: &TalkingHeadInput,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        let mut form = Form::new()
            .part("source_image", part(input.image.clone(), "source_image", &input.image_mime)?)
            .part("driven_audio", part(input.audio.clone(), "driven_audio", &input.audio_mime)?);
        for (name, value) in form_fields(&input.params) {
            form = form.text(name, value);
        }
        report(progress, 0.02, "uploading");
        let call = http::send(http.post(GENERATE_PATH).multipart(form));
        tokio::pin!(call);
        let started = Instant::now();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let response = loop {
            tokio::select! {
                r = &mut call => break r?,
                () = cancel.cancelled() => return Err(EngineError::Cancelled),
                _ = ticker.tick() => {
                    let t = started.elapsed().as_secs_f64();
                    report(progress, 0.1 + 0.75 * (1.0 - (-t / RENDER_EASE_SECS).exp()), "rendering");
                }
            }
        };
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !(mime == "video/mp4" || mime == "application/octet-stream" || mime.is_empty()) {
            return Err(remote_error(format!("the engine answered `{mime}`, expected video/mp4")));
        }
        let total = response.content_length().filter(|n| *n > 0);
        if total.is_some_and(|n| n > MAX_VIDEO_BYTES as u64) {
            return Err(remote_error(format!("the engine's video is larger than {MAX_VIDEO_BYTES} bytes")));
        }
        report(progress, 0.85, "downloading");
        let mut response = response;
        let mut bytes: Vec<u8> = Vec::with_capacity(total.and_then(|n| usize::try_from(n).ok()).unwrap_or(0));
        loop {
            let chunk = tokio::select! {
                c = response.chunk() => c.map_err(http::from_reqwest)?,
                () = cancel.cancelled() => return Err(EngineError::Cancelled),
            };
            let Some(chunk) = chunk else { break };
            if bytes.len() + chunk.len() > MAX_VIDEO_BYTES {
                return Err(remote_error(format!("the engine's video is larger than {MAX_VIDEO_BYTES} bytes")));
            }
            bytes.extend_from_slice(&chunk);
            if let Some(total) = total {
                report(progress, 0.85 + 0.14 * (bytes.len() as f64 / total as f64).min(1.0), "downloading");
            }
        }
        if !looks_like_mp4(&bytes) {
            return Err(remote_error(format!("the engine's answer ({} bytes) is not an MP4 file", bytes.len())));
        }
        report(progress, 0.99, "downloaded");
        Ok(vec![EngineOutput { bytes, mime: "video/mp4".into(), width: None, height: None, seed: None, engine: None }])
    }
}
