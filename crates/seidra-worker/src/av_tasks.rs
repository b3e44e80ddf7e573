//! Audio and video jobs the worker runs itself (engine `internal`): `tts` (espeak-ng or piper,
//! transcoded by ffmpeg on request) and `storyboard` / `video_proxy` (a timeline rendered by one
//! ffmpeg process); and `talking_head`, whose inputs the worker gathers (speaking the text with
//! the same speech code as `tts`) before a SadTalker-compatible remote engine renders it.
//! Outputs are spooled to a temporary directory and stored like engine outputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use seidra_core::speech::{AudioFormat, DEFAULT_VOICE, SpeechEngine, SpeechRequest};
use seidra_core::talking_head::TalkingHeadJob;
use seidra_core::timeline::{RenderJobRequest, TrackKind};
use seidra_engines::remote::TalkingHeadInput;
use seidra_engines::{EngineError, Progress, ProgressSink};
use seidra_media::process::{self, Run, ToolError};
use seidra_media::speech::{self, SpeechTools, Utterance};
use seidra_media::storyboard::{self, OutputFormat, Picture, RenderPlan, SoundClip, VisualClip};
use seidra_store::StoreError;
use seidra_store::jobs::Job;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runner::WorkerDeps;

/// A finished file, spooled locally, not yet stored.
pub(crate) struct FileOutput {
    /// The spool (deleted when dropped).
    pub _dir: tempfile::TempDir,
    /// The file.
    pub path: PathBuf,
    /// MIME type.
    pub mime: &'static str,
    /// Extension of the storage key.
    pub ext: &'static str,
    /// Width, pixels (video).
    pub width: Option<i32>,
    /// Height, pixels (video).
    pub height: Option<i32>,
    /// Length, milliseconds.
    pub duration_ms: Option<i64>,
    /// The remote engine that produced it when it is not the job's own (fail-over).
    pub engine: Option<String>,
}

fn failed(code: &str, message: impl Into<String>, retryable: bool) -> EngineError {
    EngineError::Failed { code: code.to_owned(), message: message.into(), retryable }
}

fn tool_error(e: ToolError) -> EngineError {
    match e {
        ToolError::Cancelled => EngineError::Cancelled,
        ToolError::Missing { .. } => failed("tool_missing", e.to_string(), false),
        ToolError::Failed { .. } => failed("tool_failed", e.to_string(), false),
        ToolError::Timeout { .. } => failed("timeout", e.to_string(), false),
        ToolError::Io { .. } => failed("tool_io", e.to_string(), true),
    }
}

fn spool() -> Result<tempfile::TempDir, EngineError> {
    tempfile::Builder::new().prefix("seidra-av").tempdir().map_err(|e| failed("spool_error", e.to_string(), true))
}

/// The speech tools as configured.
pub fn speech_tools(deps: &WorkerDeps) -> SpeechTools {
    SpeechTools {
        espeak_ng: deps.media.espeak_ng.clone(),
        piper: deps.media.piper.clone(),
        piper_voices: deps.media.piper_voices.clone(),
        ffmpeg: deps.media.ffmpeg.clone(),
    }
}

fn report<S: ProgressSink>(sink: &S, fraction: f64, stage: impl Into<String>) {
    sink.report(Progress { fraction: fraction as f32, stage: stage.into(), preview: None });
}

/// Length of a WAV file from its header (data bytes / byte rate), milliseconds.
fn wav_duration_ms(path: &Path) -> Option<i64> {
    let bytes = std::fs::read(path).ok()?;
    let byte_rate = u32::from_le_bytes(bytes.get(28..32)?.try_into().ok()?);
    // espeak-ng writing to a file fills the sizes in; find the `data` chunk.
    let pos = bytes.windows(4).position(|w| w == b"data")?;
    let len = u32::from_le_bytes(bytes.get(pos + 4..pos + 8)?.try_into().ok()?);
    let len = if len == 0 || len == u32::MAX { u32::try_from(bytes.len() - pos - 8).ok()? } else { len };
    (byte_rate > 0).then(|| i64::from(len) * 1000 / i64::from(byte_rate))
}

/// Runs a `tts` job.
pub(crate) async fn run_tts<S: ProgressSink>(
    deps: &WorkerDeps,
    job: &Job,
    sink: &S,
    cancel: &CancellationToken,
) -> Result<FileOutput, EngineError> {
    let request: SpeechRequest = job.request.parse().map_err(|e| {
        failed("invalid_stored_request", format!("the stored speech request cannot be read: {e}"), false)
    })?;
    let tools = speech_tools(deps);
    let dir = spool()?;
    let wav = dir.path().join("speech.wav");
    report(sink, 0.1, "speaking");
    speak(&tools, &request, &wav, cancel).await?;
    let duration_ms = wav_duration_ms(&wav);
    let format = request.format.unwrap_or_default();
    let path = if format == AudioFormat::Wav {
        wav
    } else {
        report(sink, 0.7, format!("encoding {}", format.ext()));
        let out = dir.path().join(format!("speech.{}", format.ext()));
        speech::transcode(&tools.ffmpeg, &wav, format, &out, cancel).await.map_err(tool_error)?;
        out
    };
    report(sink, 0.95, "storing");
    Ok(FileOutput {
        _dir: dir,
        path,
        mime: format.mime(),
        ext: format.ext(),
        width: None,
        height: None,
        duration_ms,
        engine: None,
    })
}

/// Speaks a (resolved) speech request into the WAV file `wav`: the one synthesis path of `tts`
/// and `talking_head` jobs.
async fn speak(
    tools: &SpeechTools,
    request: &SpeechRequest,
    wav: &Path,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let voice = request.voice.clone().unwrap_or_else(|| DEFAULT_VOICE.to_owned());
    let utterance = Utterance {
        engine: request.engine.unwrap_or_default(),
        voice: &voice,
        rate: request.rate.unwrap_or(1.0),
        pitch: request.pitch.unwrap_or(0.0),
        text: &request.text,
    };
    speech::synthesize(tools, &utterance, wav, cancel).await.map_err(tool_error)
}

/// Reads one of the owner's media items from storage; `field` names it in errors.
async fn fetch_media(
    deps: &WorkerDeps,
    owner: Uuid,
    id: Uuid,
    field: &str,
    kind: &str,
) -> Result<(Vec<u8>, String), EngineError> {
    let item = seidra_store::media::get_owned(&deps.db, owner, id).await.map_err(|e| match e {
        StoreError::NotFound => failed("media_missing", format!("{field}: the media item no longer exists"), false),
        other => failed("database_error", other.to_string(), true),
    })?;
    if item.kind != kind {
        return Err(failed("media_missing", format!("{field}: the item is {}, not {kind}", item.kind), false));
    }
    let bytes = deps
        .storage
        .get(&item.storage_key)
        .await
        .map_err(|e| failed("storage_error", format!("{field}: {e}"), e.is_retryable()))?;
    Ok((bytes, item.mime))
}

/// Maps an engine's progress into `[from, from + span]` of the job's.
struct Scaled<'a, S> {
    inner: &'a S,
    from: f32,
    span: f32,
}

impl<S: ProgressSink> ProgressSink for Scaled<'_, S> {
    fn report(&self, progress: Progress) {
        self.inner.report(Progress { fraction: self.from + self.span * progress.fraction.clamp(0.0, 1.0), ..progress });
    }
}

/// Runs a `talking_head` job: fetches the portrait and the audio (or speaks the text), has the
/// job's SadTalker-compatible engine render it (failing over unless the engine was named), then
/// probes the MP4 for its length and size.
pub(crate) async fn run_talking_head<S: ProgressSink>(
    deps: &WorkerDeps,
    job: &Job,
    sink: &S,
    cancel: &CancellationToken,
) -> Result<FileOutput, EngineError> {
    let request: TalkingHeadJob = job.request.parse().map_err(|e| {
        failed("invalid_stored_request", format!("the stored talking-head request cannot be read: {e}"), false)
    })?;
    let dir = spool()?;
    report(sink, 0.0, "fetching inputs");
    let (image, image_mime) = fetch_media(deps, job.owner_id, request.image, "image", "image").await?;
    let (audio, audio_mime) = match (request.audio, &request.speech) {
        (Some(id), _) => fetch_media(deps, job.owner_id, id, "audio", "audio").await?,
        (None, Some(speech)) => {
            report(sink, 0.02, "speaking");
            let wav = dir.path().join("speech.wav");
            speak(&speech_tools(deps), speech, &wav, cancel).await?;
            let bytes = tokio::fs::read(&wav).await.map_err(|e| failed("spool_error", e.to_string(), true))?;
            (bytes, "audio/wav".to_owned())
        }
        (None, None) => {
            return Err(failed("invalid_stored_request", "the request has neither audio nor text", false));
        }
    };
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    let input = TalkingHeadInput { image, image_mime, audio, audio_mime, params: request.params };
    let scaled = Scaled { inner: sink, from: 0.05, span: 0.9 };
    let outputs =
        deps.engines.talking_head(&job.engine, &job.model, request.engine_pinned, &input, &scaled, cancel).await?;
    let Some(video) = outputs.into_iter().next() else {
        return Err(failed("engine_error", "the engine returned no video", false));
    };
    report(sink, 0.96, "probing");
    let path = dir.path().join("talking-head.mp4");
    tokio::fs::write(&path, &video.bytes).await.map_err(|e| failed("spool_error", e.to_string(), true))?;
    let ffprobe = &deps.media.ffprobe;
    let unreadable = |e: seidra_media::probe::ProbeError| {
        failed("engine_error", format!("the engine's video cannot be read: {e}"), false)
    };
    let secs = seidra_media::probe::duration_secs(ffprobe, &path).await.map_err(unreadable)?;
    let (width, height) = seidra_media::probe::video_dimensions(ffprobe, &path).await.map_err(unreadable)?;
    report(sink, 0.98, "storing");
    Ok(FileOutput {
        _dir: dir,
        path,
        mime: "video/mp4",
        ext: "mp4",
        width: i32::try_from(width).ok(),
        height: i32::try_from(height).ok(),
        duration_ms: Some((secs * 1000.0).round() as i64),
        engine: video.engine,
    })
}

/// Runs a `storyboard` or `video_proxy` job: fetches the media, speaks the narration, renders.
pub(crate) async fn run_render<S: ProgressSink>(
    deps: &WorkerDeps,
    job: &Job,
    sink: &S,
    cancel: &CancellationToken,
) -> Result<FileOutput, EngineError> {
    let request: RenderJobRequest = job.request.parse().map_err(|e| {
        failed("invalid_stored_request", format!("the stored render request cannot be read: {e}"), false)
    })?;
    let tl = &request.timeline;
    let dir = spool()?;
    report(sink, 0.0, "fetching media");
    // Each media item once, whatever the number of clips using it.
    let mut files: HashMap<Uuid, PathBuf> = HashMap::new();
    let mut with_sound: HashMap<Uuid, bool> = HashMap::new();
    for r in tl.media_refs() {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        if files.contains_key(&r.id) {
            continue;
        }
        let item = seidra_store::media::get_owned(&deps.db, job.owner_id, r.id).await.map_err(|e| match e {
            StoreError::NotFound => {
                failed("media_missing", format!("{}: the media item no longer exists", r.field), false)
            }
            other => failed("database_error", other.to_string(), true),
        })?;
        let bytes = deps
            .storage
            .get(&item.storage_key)
            .await
            .map_err(|e| failed("storage_error", format!("{}: {e}", r.field), e.is_retryable()))?;
        let ext = item.storage_key.rsplit_once('.').map_or("bin", |(_, e)| e);
        let path = dir.path().join(format!("m-{}.{ext}", r.id));
        tokio::fs::write(&path, bytes).await.map_err(|e| failed("spool_error", e.to_string(), true))?;
        if r.kind == "video" {
            with_sound.insert(r.id, seidra_media::probe::has_audio(&deps.media.ffprobe, &path).await);
        }
        files.insert(r.id, path);
    }
    let tools = speech_tools(deps);
    let mut plan = RenderPlan {
        format: OutputFormat {
            width: request.width,
            height: request.height,
            fps: request.fps,
            preset: if request.proxy { "ultrafast" } else { "veryfast" },
            crf: if request.proxy { 32 } else { 23 },
            audio_kbps: if request.proxy { 64 } else { 128 },
        },
        duration: tl.duration(),
        visuals: Vec::new(),
        sounds: Vec::new(),
        narration: Vec::new(),
    };
    let narrations = tl.tracks.iter().filter(|t| t.kind == TrackKind::Narration).map(|t| t.clips.len()).sum::<usize>();
    let mut spoken = 0usize;
    for (t, track) in tl.tracks.iter().enumerate() {
        for (c, clip) in track.clips.iter().enumerate() {
            let media = clip.media_id.and_then(|id| files.get(&id).cloned());
            let fade_in = clip.crossfade();
            let volume = clip.volume.unwrap_or(1.0);
            match track.kind {
                TrackKind::Image | TrackKind::Video | TrackKind::Audio if media.is_none() => {
                    return Err(failed(
                        "media_missing",
                        format!("tracks[{t}].clips[{c}].media_id: no media item"),
                        false,
                    ));
                }
                TrackKind::Image => plan.visuals.push(VisualClip {
                    picture: Picture::Still { path: media.unwrap_or_default(), pan_zoom: clip.pan_zoom },
                    start: clip.start,
                    duration: clip.duration,
                    fade_in,
                }),
                TrackKind::Video => {
                    let path = media.unwrap_or_default();
                    if clip.media_id.and_then(|id| with_sound.get(&id).copied()).unwrap_or(false) {
                        plan.sounds.push(SoundClip {
                            path: path.clone(),
                            start: clip.start,
                            duration: clip.duration,
                            in_point: clip.in_point,
                            volume,
                            fade_in,
                        });
                    }
                    plan.visuals.push(VisualClip {
                        picture: Picture::Video { path, in_point: clip.in_point },
                        start: clip.start,
                        duration: clip.duration,
                        fade_in,
                    });
                }
                TrackKind::Audio => plan.sounds.push(SoundClip {
                    path: media.unwrap_or_default(),
                    start: clip.start,
                    duration: clip.duration,
                    in_point: clip.in_point,
                    volume,
                    fade_in,
                }),
                TrackKind::Narration => {
                    report(
                        sink,
                        0.05 + 0.05 * spoken as f64 / narrations.max(1) as f64,
                        format!("speaking narration {}/{narrations}", spoken + 1),
                    );
                    let wav = dir.path().join(format!("n-{t}-{c}.wav"));
                    let voice = clip.voice.clone().unwrap_or_else(|| DEFAULT_VOICE.to_owned());
                    let utterance = Utterance {
                        engine: SpeechEngine::EspeakNg,
                        voice: &voice,
                        rate: clip.rate.unwrap_or(1.0),
                        pitch: clip.pitch.unwrap_or(0.0),
                        text: clip.text.as_deref().unwrap_or_default(),
                    };
                    speech::synthesize(&tools, &utterance, &wav, cancel).await.map_err(tool_error)?;
                    spoken += 1;
                    plan.narration.push(SoundClip {
                        path: wav,
                        start: clip.start,
                        duration: clip.duration,
                        in_point: 0.0,
                        volume,
                        fade_in,
                    });
                }
                TrackKind::Title => {
                    let text_file = dir.path().join(format!("t-{t}-{c}.txt"));
                    tokio::fs::write(&text_file, clip.text.as_deref().unwrap_or_default())
                        .await
                        .map_err(|e| failed("spool_error", e.to_string(), true))?;
                    let style = clip.style.clone().unwrap_or_default();
                    plan.visuals.push(VisualClip {
                        picture: Picture::Title {
                            text_file,
                            font_size: style.font_size.unwrap_or((request.height / 10).max(8)),
                            color: style.color.unwrap_or_else(|| "#ffffff".to_owned()),
                            background: style.background.unwrap_or_else(|| "#000000".to_owned()),
                        },
                        start: clip.start,
                        duration: clip.duration,
                        fade_in,
                    });
                }
            }
        }
    }
    let out = dir.path().join("render.mp4");
    let mut command = tokio::process::Command::new(&deps.media.ffmpeg);
    command.args(storyboard::ffmpeg_args(&plan, &out));
    report(sink, 0.1, "rendering");
    let mut on_progress = |f: f64| report(sink, 0.1 + 0.88 * f, format!("rendering {:.0}%", f * 100.0));
    process::run(Run {
        command,
        stdin: None,
        progress_total_secs: Some(plan.duration),
        on_progress: &mut on_progress,
        cancel,
        timeout: Duration::from_secs(deps.media.render_timeout_secs.max(1)),
    })
    .await
    .map_err(tool_error)?;
    report(sink, 0.99, "storing");
    Ok(FileOutput {
        _dir: dir,
        path: out,
        mime: "video/mp4",
        ext: "mp4",
        width: i32::try_from(request.width).ok(),
        height: i32::try_from(request.height).ok(),
        duration_ms: Some((plan.duration * 1000.0).round() as i64),
        engine: None,
    })
}
