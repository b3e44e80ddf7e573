//! Video-studio timelines: tracks of clips and the structural checks on them (times, overlaps,
//! sizes). Whether named media exist and belong to the caller is checked by the API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ValidationError;
use crate::speech;

/// Smallest and largest frame side, pixels.
pub const SIDE_RANGE: (u32, u32) = (64, 3840);
/// Frame rates accepted.
pub const FPS_RANGE: (u32, u32) = (1, 60);
/// Longest timeline, seconds.
pub const MAX_DURATION_SECS: f64 = 3600.0;
/// Most tracks in a timeline.
pub const MAX_TRACKS: usize = 16;
/// Most clips in a track.
pub const MAX_CLIPS: usize = 200;
/// Times closer than this are equal (floating-point slack).
const EPS: f64 = 1e-6;

/// What a track holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Stills (image media), with optional pan/zoom.
    Image,
    /// Video media (its sound is mixed in).
    Video,
    /// Music and sound (audio media), ducked under narration.
    Audio,
    /// Text spoken by TTS at render time.
    Narration,
    /// Title cards (text on a colour).
    Title,
}

impl TrackKind {
    /// The media kind (`seidra_store::media::kind_of`) clips of this track refer to, if any.
    pub fn media_kind(self) -> Option<&'static str> {
        match self {
            TrackKind::Image => Some("image"),
            TrackKind::Video => Some("video"),
            TrackKind::Audio => Some("audio"),
            TrackKind::Narration | TrackKind::Title => None,
        }
    }

    /// Whether the track draws pictures (layered bottom to top in track order).
    pub fn is_visual(self) -> bool {
        matches!(self, TrackKind::Image | TrackKind::Video | TrackKind::Title)
    }
}

/// How a clip enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// A cut.
    #[default]
    None,
    /// Fades in over the clip beneath it (it may overlap the previous clip of its track by up
    /// to the transition's duration).
    Crossfade,
}

/// A clip's entrance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// Kind.
    pub kind: TransitionKind,
    /// Seconds (> 0, at most the clip's duration).
    #[serde(default)]
    pub duration: f64,
}

/// A slow zoom across a still (Ken Burns).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PanZoom {
    /// Zoom at the clip's start (1–4, 1 = the whole frame).
    #[serde(default = "one")]
    pub start_zoom: f64,
    /// Zoom at the clip's end (1–4).
    #[serde(default = "one")]
    pub end_zoom: f64,
    /// Horizontal centre of the zoom, 0–1 of the width (default 0.5).
    #[serde(default = "half")]
    pub x: f64,
    /// Vertical centre of the zoom, 0–1 of the height (default 0.5).
    #[serde(default = "half")]
    pub y: f64,
}

fn one() -> f64 {
    1.0
}

fn half() -> f64 {
    0.5
}

/// Look of a title card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TitleStyle {
    /// Font size, pixels (8–400; default a tenth of the height).
    #[serde(default)]
    pub font_size: Option<u32>,
    /// Text colour, `#rrggbb` (default white).
    #[serde(default)]
    pub color: Option<String>,
    /// Card colour, `#rrggbb` (default black).
    #[serde(default)]
    pub background: Option<String>,
}

/// One clip on a track. Times are seconds on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Clip {
    /// Where it starts on the timeline (≥ 0).
    pub start: f64,
    /// How long it lasts (> 0).
    pub duration: f64,
    /// Where playback starts inside the media (video and audio; ≥ 0).
    #[serde(default)]
    pub in_point: f64,
    /// The media item (image, video and audio tracks).
    #[serde(default)]
    pub media_id: Option<Uuid>,
    /// Text (narration: spoken; title: shown).
    #[serde(default)]
    pub text: Option<String>,
    /// Narration voice (espeak-ng).
    #[serde(default)]
    pub voice: Option<String>,
    /// Narration rate multiplier (0.5–2).
    #[serde(default)]
    pub rate: Option<f32>,
    /// Narration pitch shift, semitones (−12–12).
    #[serde(default)]
    pub pitch: Option<f32>,
    /// Entrance.
    #[serde(default)]
    pub transition: Option<Transition>,
    /// Gain for video, audio and narration clips (0–4, default 1).
    #[serde(default)]
    pub volume: Option<f64>,
    /// Pan/zoom (image clips).
    #[serde(default)]
    pub pan_zoom: Option<PanZoom>,
    /// Title card look (title clips).
    #[serde(default)]
    pub style: Option<TitleStyle>,
}

impl Clip {
    /// End on the timeline.
    pub fn end(&self) -> f64 {
        self.start + self.duration
    }

    /// Crossfade length, seconds (0 for a cut).
    pub fn crossfade(&self) -> f64 {
        match self.transition {
            Some(Transition { kind: TransitionKind::Crossfade, duration }) => duration,
            _ => 0.0,
        }
    }
}

/// A track: clips of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// Kind.
    pub kind: TrackKind,
    /// Clips (any order; they may not overlap except under a crossfade).
    #[serde(default)]
    pub clips: Vec<Clip>,
}

/// A timeline: frame size, rate and tracks. Visual tracks are layered in order (the first at
/// the bottom); sound of every track is mixed, with music ducked under narration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineSpec {
    /// Name (1–200 characters).
    pub name: String,
    /// Frame width, pixels (even, 64–3840).
    pub width: u32,
    /// Frame height, pixels (even, 64–3840).
    pub height: u32,
    /// Frames per second (1–60).
    pub fps: u32,
    /// Tracks (at most 16).
    #[serde(default)]
    pub tracks: Vec<Track>,
}

/// What a render job (`storyboard` or `video_proxy`) stores as its request: the timeline as it
/// was at submit (later edits do not change a queued render) and the output format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderJobRequest {
    /// The timeline rendered (provenance of the output).
    pub timeline_id: Uuid,
    /// Its revision at submit.
    pub revision: i32,
    /// Its content at submit.
    pub timeline: TimelineSpec,
    /// Output width, pixels.
    pub width: u32,
    /// Output height, pixels.
    pub height: u32,
    /// Output frame rate.
    pub fps: u32,
    /// Proxy (fast, low quality) rather than a final render.
    #[serde(default)]
    pub proxy: bool,
}

/// A media item a clip refers to: the field naming it, the id, and the kind it must be.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRef {
    /// `tracks[i].clips[j].media_id`.
    pub field: String,
    /// The id.
    pub id: Uuid,
    /// `image`, `video` or `audio`.
    pub kind: &'static str,
    /// The clip's in-point plus duration: how much of the media it needs, seconds.
    pub needs_secs: f64,
}

/// Checks a frame size and rate; `prefix` is prepended to field names.
pub fn validate_format(width: u32, height: u32, fps: u32, prefix: &str) -> Result<(), ValidationError> {
    let (lo, hi) = SIDE_RANGE;
    for (name, v) in [("width", width), ("height", height)] {
        if !(lo..=hi).contains(&v) || v % 2 != 0 {
            return Err(ValidationError::new(
                format!("{prefix}{name}"),
                format!("must be an even number from {lo} to {hi}"),
            ));
        }
    }
    if !(FPS_RANGE.0..=FPS_RANGE.1).contains(&fps) {
        return Err(ValidationError::new(
            format!("{prefix}fps"),
            format!("must be {} to {}", FPS_RANGE.0, FPS_RANGE.1),
        ));
    }
    Ok(())
}

fn valid_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit())
}

impl TimelineSpec {
    /// Length: the end of the last clip, seconds.
    pub fn duration(&self) -> f64 {
        self.tracks.iter().flat_map(|t| &t.clips).map(Clip::end).fold(0.0, f64::max)
    }

    /// Every media reference, for the caller to check against the library.
    pub fn media_refs(&self) -> Vec<MediaRef> {
        let mut out = Vec::new();
        for (t, track) in self.tracks.iter().enumerate() {
            let Some(kind) = track.kind.media_kind() else { continue };
            for (c, clip) in track.clips.iter().enumerate() {
                if let Some(id) = clip.media_id {
                    out.push(MediaRef {
                        field: format!("tracks[{t}].clips[{c}].media_id"),
                        id,
                        kind,
                        needs_secs: clip.in_point + clip.duration,
                    });
                }
            }
        }
        out
    }

    /// Structural checks; field names are JSON paths (`tracks[1].clips[0].start`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let name = self.name.trim().chars().count();
        if !(1..=200).contains(&name) {
            return Err(ValidationError::new("name", "must be 1 to 200 characters"));
        }
        validate_format(self.width, self.height, self.fps, "")?;
        if self.tracks.len() > MAX_TRACKS {
            return Err(ValidationError::new("tracks", format!("at most {MAX_TRACKS} tracks")));
        }
        for (t, track) in self.tracks.iter().enumerate() {
            validate_track(track, &format!("tracks[{t}]"))?;
        }
        let total = self.duration();
        if total > MAX_DURATION_SECS {
            return Err(ValidationError::new(
                "tracks",
                format!("the timeline lasts {total:.1} s; at most {MAX_DURATION_SECS} s"),
            ));
        }
        Ok(())
    }

    /// Checks that the timeline has something to render.
    pub fn validate_renderable(&self) -> Result<(), ValidationError> {
        if self.duration() <= EPS {
            return Err(ValidationError::new("tracks", "the timeline has no clips; add one before rendering"));
        }
        Ok(())
    }
}

fn validate_track(track: &Track, at: &str) -> Result<(), ValidationError> {
    if track.clips.len() > MAX_CLIPS {
        return Err(ValidationError::new(format!("{at}.clips"), format!("at most {MAX_CLIPS} clips per track")));
    }
    for (c, clip) in track.clips.iter().enumerate() {
        validate_clip(track.kind, clip, &format!("{at}.clips[{c}]"))?;
    }
    // Overlaps: in start order, each clip may overlap the one before only under its crossfade.
    let mut order: Vec<usize> = (0..track.clips.len()).collect();
    order.sort_by(|&a, &b| track.clips[a].start.total_cmp(&track.clips[b].start));
    for pair in order.windows(2) {
        let (prev, next) = (&track.clips[pair[0]], &track.clips[pair[1]]);
        let overlap = prev.end() - next.start;
        if overlap > EPS && overlap > next.crossfade() + EPS {
            let why = if next.crossfade() > 0.0 {
                format!(
                    "overlaps {at}.clips[{}] by {overlap:.3} s, more than its {:.3} s crossfade",
                    pair[0],
                    next.crossfade()
                )
            } else {
                format!("overlaps {at}.clips[{}] (which ends at {:.3} s)", pair[0], prev.end())
            };
            return Err(ValidationError::new(format!("{at}.clips[{}].start", pair[1]), why));
        }
    }
    Ok(())
}

fn validate_clip(kind: TrackKind, clip: &Clip, at: &str) -> Result<(), ValidationError> {
    let field = |name: &str| format!("{at}.{name}");
    if !clip.start.is_finite() || clip.start < 0.0 {
        return Err(ValidationError::new(field("start"), "must be 0 or more seconds"));
    }
    if !clip.duration.is_finite() || clip.duration <= EPS {
        return Err(ValidationError::new(field("duration"), "must be more than 0 seconds"));
    }
    if !clip.in_point.is_finite() || clip.in_point < 0.0 {
        return Err(ValidationError::new(field("in_point"), "must be 0 or more seconds"));
    }
    if clip.in_point > 0.0 && !matches!(kind, TrackKind::Video | TrackKind::Audio) {
        return Err(ValidationError::new(field("in_point"), "only video and audio clips have an in-point"));
    }
    match kind.media_kind() {
        Some(_) if clip.media_id.is_none() => {
            return Err(ValidationError::new(field("media_id"), "is required on this track"));
        }
        None if clip.media_id.is_some() => {
            return Err(ValidationError::new(field("media_id"), "is not used on narration and title tracks"));
        }
        _ => {}
    }
    match kind {
        TrackKind::Narration | TrackKind::Title => match &clip.text {
            Some(text) => speech::validate_text(text, &field("text"))?,
            None => return Err(ValidationError::new(field("text"), "is required on this track")),
        },
        _ if clip.text.is_some() => {
            return Err(ValidationError::new(field("text"), "is only used on narration and title tracks"));
        }
        _ => {}
    }
    if kind != TrackKind::Narration && (clip.voice.is_some() || clip.rate.is_some() || clip.pitch.is_some()) {
        return Err(ValidationError::new(field("voice"), "voice, rate and pitch are only used on narration tracks"));
    }
    if let Some(voice) = &clip.voice {
        speech::validate_voice_name(voice, &field("voice"))?;
    }
    if clip.rate.is_some_and(|r| !r.is_finite() || !(0.5..=2.0).contains(&r)) {
        return Err(ValidationError::new(field("rate"), "must be between 0.5 and 2"));
    }
    if clip.pitch.is_some_and(|p| !p.is_finite() || !(-12.0..=12.0).contains(&p)) {
        return Err(ValidationError::new(field("pitch"), "must be between -12 and 12 semitones"));
    }
    if let Some(volume) = clip.volume {
        if matches!(kind, TrackKind::Image | TrackKind::Title) {
            return Err(ValidationError::new(field("volume"), "image and title clips have no sound"));
        }
        if !volume.is_finite() || !(0.0..=4.0).contains(&volume) {
            return Err(ValidationError::new(field("volume"), "must be between 0 and 4"));
        }
    }
    if let Some(t) = clip.transition {
        match t.kind {
            TransitionKind::None if t.duration != 0.0 => {
                return Err(ValidationError::new(field("transition.duration"), "a cut has no duration"));
            }
            TransitionKind::Crossfade if !t.duration.is_finite() || t.duration <= EPS => {
                return Err(ValidationError::new(field("transition.duration"), "must be more than 0 seconds"));
            }
            TransitionKind::Crossfade if t.duration > clip.duration + EPS => {
                return Err(ValidationError::new(field("transition.duration"), "must not exceed the clip's duration"));
            }
            _ => {}
        }
    }
    if let Some(pz) = clip.pan_zoom {
        if kind != TrackKind::Image {
            return Err(ValidationError::new(field("pan_zoom"), "only image clips pan and zoom"));
        }
        for (name, v, lo, hi) in [
            ("start_zoom", pz.start_zoom, 1.0, 4.0),
            ("end_zoom", pz.end_zoom, 1.0, 4.0),
            ("x", pz.x, 0.0, 1.0),
            ("y", pz.y, 0.0, 1.0),
        ] {
            if !v.is_finite() || !(lo..=hi).contains(&v) {
                return Err(ValidationError::new(
                    field(&format!("pan_zoom.{name}")),
                    format!("must be between {lo} and {hi}"),
                ));
            }
        }
    }
    if let Some(style) = &clip.style {
        if kind != TrackKind::Title {
            return Err(ValidationError::new(field("style"), "only title clips have a style"));
        }
        if style.font_size.is_some_and(|s| !(8..=400).contains(&s)) {
            return Err(ValidationError::new(field("style.font_size"), "must be 8 to 400 pixels"));
        }
        for (name, c) in [("color", &style.color), ("background", &style.background)] {
            if c.as_deref().is_some_and(|c| !valid_color(c)) {
                return Err(ValidationError::new(field(&format!("style.{name}")), "must be a colour like #ffcc00"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn clip(start: f64, duration: f64) -> Clip {
        Clip {
            start,
            duration,
            in_point: 0.0,
            media_id: Some(Uuid::nil()),
            text: None,
            voice: None,
            rate: None,
            pitch: None,
            transition: None,
            volume: None,
            pan_zoom: None,
            style: None,
        }
    }

    fn spec(clips: Vec<Clip>) -> TimelineSpec {
        TimelineSpec {
            name: "t".into(),
            width: 320,
            height: 180,
            fps: 25,
            tracks: vec![Track { kind: TrackKind::Image, clips }],
        }
    }

    #[test]
    fn overlaps_are_refused_unless_crossfaded() {
        assert!(spec(vec![clip(0.0, 2.0), clip(2.0, 2.0)]).validate().is_ok());
        let err = spec(vec![clip(0.0, 2.0), clip(1.5, 2.0)]).validate().unwrap_err();
        assert_eq!(err.field, "tracks[0].clips[1].start");
        let mut faded = clip(1.5, 2.0);
        faded.transition = Some(Transition { kind: TransitionKind::Crossfade, duration: 0.5 });
        let s = spec(vec![clip(0.0, 2.0), faded]);
        assert!(s.validate().is_ok());
        assert!((s.duration() - 3.5).abs() < 1e-9);
    }

    #[test]
    fn fields_are_named() {
        assert_eq!(spec(vec![clip(-1.0, 2.0)]).validate().unwrap_err().field, "tracks[0].clips[0].start");
        assert_eq!(spec(vec![clip(0.0, 0.0)]).validate().unwrap_err().field, "tracks[0].clips[0].duration");
        let mut s = spec(vec![]);
        s.width = 321;
        assert_eq!(s.validate().unwrap_err().field, "width");
        s.width = 320;
        s.fps = 0;
        assert_eq!(s.validate().unwrap_err().field, "fps");
        assert_eq!(spec(vec![]).validate_renderable().unwrap_err().field, "tracks");
    }
}
