//! Text-to-speech requests (`POST /api/generate/speech`, narration clips): the fields, their
//! bounds, and how persona voice defaults fill the ones the client did not send.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ValidationError;
use crate::persona::VoiceDefaults;

/// Longest text one speech job speaks, characters.
pub const MAX_TEXT_CHARS: usize = 5000;
/// Voice used when neither the request nor the persona names one.
pub const DEFAULT_VOICE: &str = "en";

/// A speech engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SpeechEngine {
    /// espeak-ng (formant synthesis, always available when installed).
    #[default]
    EspeakNg,
    /// piper (neural voices; needs `media.piper` and `media.piper_voices`).
    Piper,
}

impl SpeechEngine {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SpeechEngine::EspeakNg => "espeak-ng",
            SpeechEngine::Piper => "piper",
        }
    }

    /// Parses a name (persona defaults store it as text).
    pub fn parse(s: &str) -> Option<SpeechEngine> {
        match s {
            "espeak-ng" | "espeak" => Some(SpeechEngine::EspeakNg),
            "piper" => Some(SpeechEngine::Piper),
            _ => None,
        }
    }
}

/// Container of the stored speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AudioFormat {
    /// PCM WAV as the engine wrote it.
    #[default]
    Wav,
    /// Opus in Ogg (transcoded by ffmpeg).
    Opus,
    /// MP3 (transcoded by ffmpeg).
    Mp3,
}

impl AudioFormat {
    /// MIME type of the stored file.
    pub fn mime(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Opus => "audio/ogg",
            AudioFormat::Mp3 => "audio/mpeg",
        }
    }

    /// File extension.
    pub fn ext(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Opus => "opus",
            AudioFormat::Mp3 => "mp3",
        }
    }
}

/// A speech request. Unset fields take the persona's voice defaults, then the built-in ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeechRequest {
    /// Text to speak (1–5000 characters).
    pub text: String,
    /// Engine (default `espeak-ng`, or the persona's).
    #[serde(default)]
    pub engine: Option<SpeechEngine>,
    /// Voice: an espeak-ng voice (`en`, `en-us`, `fr`, `gmw/en-US`, with an optional `+variant`) or a
    /// piper model name.
    #[serde(default)]
    pub voice: Option<String>,
    /// Speaking-rate multiplier, 0.5–2 (1 = the engine's normal pace).
    #[serde(default, serialize_with = "crate::decimal::opt_f32")]
    pub rate: Option<f32>,
    /// Pitch shift in semitones, −12–12 (espeak-ng only).
    #[serde(default, serialize_with = "crate::decimal::opt_f32")]
    pub pitch: Option<f32>,
    /// Stored format (default `wav`).
    #[serde(default)]
    pub format: Option<AudioFormat>,
    /// Persona whose voice defaults apply.
    #[serde(default)]
    pub persona_id: Option<Uuid>,
}

impl SpeechRequest {
    /// Fills unset fields from persona voice defaults (fields the client sent win).
    pub fn merge_persona(&mut self, defaults: &VoiceDefaults) {
        if self.engine.is_none() {
            self.engine = defaults.engine.as_deref().and_then(SpeechEngine::parse);
        }
        if self.voice.is_none() {
            self.voice.clone_from(&defaults.voice);
        }
        if self.rate.is_none() {
            self.rate = defaults.rate;
        }
        if self.pitch.is_none() {
            self.pitch = defaults.pitch;
        }
    }

    /// Resolves the remaining defaults after the persona merge.
    pub fn resolve_defaults(&mut self) {
        self.engine.get_or_insert(SpeechEngine::EspeakNg);
        self.format.get_or_insert(AudioFormat::Wav);
        self.rate.get_or_insert(1.0);
        self.pitch.get_or_insert(0.0);
        if self.voice.is_none() && self.engine == Some(SpeechEngine::EspeakNg) {
            self.voice = Some(DEFAULT_VOICE.to_owned());
        }
    }

    /// Checks text, rate, pitch and the voice's spelling (whether it exists is the engine's call).
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        validate_text(&self.text, &format!("{prefix}text"))?;
        if self.rate.is_some_and(|r| !r.is_finite() || !(0.5..=2.0).contains(&r)) {
            return Err(ValidationError::new(format!("{prefix}rate"), "must be between 0.5 and 2"));
        }
        if self.pitch.is_some_and(|p| !p.is_finite() || !(-12.0..=12.0).contains(&p)) {
            return Err(ValidationError::new(format!("{prefix}pitch"), "must be between -12 and 12 semitones"));
        }
        if let Some(voice) = &self.voice {
            validate_voice_name(voice, &format!("{prefix}voice"))?;
        }
        Ok(())
    }
}

/// Text to speak: not blank, at most [`MAX_TEXT_CHARS`].
pub fn validate_text(text: &str, field: &str) -> Result<(), ValidationError> {
    if text.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(ValidationError::new(
            field,
            format!("is {n} characters long; at most {MAX_TEXT_CHARS} are spoken"),
        ));
    }
    Ok(())
}

/// A voice name is passed to a child process as one argument: letters, digits and `-_+/.` only.
pub fn validate_voice_name(voice: &str, field: &str) -> Result<(), ValidationError> {
    let ok = !voice.is_empty()
        && voice.len() <= 100
        && !voice.starts_with('-')
        && !voice.contains("..")
        && voice.chars().all(|c| c.is_ascii_alphanumeric() || "-_+/.".contains(c));
    if ok { Ok(()) } else { Err(ValidationError::new(field, "is not a voice name")) }
}

/// espeak-ng's `-s` (words per minute) for a rate multiplier (175 is espeak-ng's default).
pub fn espeak_speed(rate: f32) -> u32 {
    (175.0 * rate.clamp(0.5, 2.0)).round() as u32
}

/// espeak-ng's `-p` (0–99, 50 normal) for a pitch shift in semitones (about 4 steps each).
pub fn espeak_pitch(semitones: f32) -> u32 {
    (50.0 + 4.0 * semitones.clamp(-12.0, 12.0)).round().clamp(0.0, 99.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> SpeechRequest {
        SpeechRequest {
            text: text.to_owned(),
            engine: None,
            voice: None,
            rate: None,
            pitch: None,
            format: None,
            persona_id: None,
        }
    }

    #[test]
    fn persona_fills_only_unset_fields() {
        let mut r = req("hi");
        r.rate = Some(1.5);
        r.merge_persona(&VoiceDefaults { engine: None, voice: Some("fr".into()), rate: Some(0.8), pitch: Some(2.0) });
        r.resolve_defaults();
        assert_eq!(r.voice.as_deref(), Some("fr"));
        assert_eq!(r.rate, Some(1.5));
        assert_eq!(r.pitch, Some(2.0));
        assert_eq!(r.format, Some(AudioFormat::Wav));
    }

    #[test]
    fn bounds_name_the_field() {
        assert_eq!(req("  ").validate("").unwrap_err().field, "text");
        assert_eq!(req(&"a".repeat(MAX_TEXT_CHARS + 1)).validate("").unwrap_err().field, "text");
        let mut r = req("x");
        r.rate = Some(3.0);
        assert_eq!(r.validate("").unwrap_err().field, "rate");
        let mut r = req("x");
        r.voice = Some("-w /etc/passwd".into());
        assert_eq!(r.validate("").unwrap_err().field, "voice");
        assert_eq!(espeak_speed(1.0), 175);
        assert_eq!(espeak_pitch(0.0), 50);
        assert_eq!(espeak_pitch(20.0), 98);
    }
}
