//! `POST /api/generate/speech`: text-to-speech jobs (type `tts`, run by the worker itself with
//! espeak-ng or piper; the WAV is transcoded by ffmpeg when Opus or MP3 is asked for).

use axum::extract::State;
use axum::response::Response;
use seidra_core::ValidationError;
use seidra_core::job::{JobType, PriorityClass};
use seidra_core::speech::{SpeechEngine, SpeechRequest};
use seidra_media::speech::{self, SpeechTools, VoiceError};
use seidra_store::StoreError;
use seidra_store::jobs::NewJob;

use crate::auth::CanGenerate;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::AppJson;
use crate::routes::jobs::internal_job;
use crate::state::AppState;

/// The speech tools as configured.
pub fn tools(state: &AppState) -> SpeechTools {
    let m = &state.settings.media;
    SpeechTools {
        espeak_ng: m.espeak_ng.clone(),
        piper: m.piper.clone(),
        piper_voices: m.piper_voices.clone(),
        ffmpeg: m.ffmpeg.clone(),
    }
}

/// Checks that `engine` is usable and knows `voice`; a 422 naming `field` otherwise.
pub async fn check_voice(state: &AppState, engine: SpeechEngine, voice: &str, field: &str) -> ApiResult<()> {
    match speech::check_voice(&tools(state), engine, voice).await {
        Ok(()) => Ok(()),
        Err(e @ VoiceError::Unknown { .. }) => Err(ValidationError::new(field, e.to_string()).into()),
        Err(VoiceError::Unavailable(why)) => {
            Err(ApiError::unavailable("speech_unavailable", why).with_field(field.to_owned()))
        }
    }
}

/// Queue speech from text (a `tts` job; follow it like any job). Unset fields take the
/// persona's voice defaults.
#[utoipa::path(post, path = "/api/generate/speech", tag = "jobs", request_body = SpeechRequest, security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 202, body = crate::routes::jobs::SubmitResponse), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn generate_speech(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    AppJson(mut request): AppJson<SpeechRequest>,
) -> ApiResult<Response> {
    let owner = principal.user.id;
    let mut persona_ref = None;
    if let Some(persona_id) = request.persona_id {
        let persona = seidra_store::personas::get_owned(&state.db, owner, persona_id).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::validation(ValidationError::new("persona_id", "unknown persona")),
            other => other.into(),
        })?;
        request.merge_persona(&persona.spec.0.voice);
        persona_ref = Some((persona.id, persona.version));
    }
    request.validate("")?;
    request.resolve_defaults();
    let engine = request.engine.unwrap_or_default();
    let Some(voice) = request.voice.clone() else {
        return Err(ValidationError::new("voice", "name a piper voice (a model in media.piper_voices)").into());
    };
    check_voice(&state, engine, &voice, "voice").await?;
    if engine == SpeechEngine::Piper && request.pitch.is_some_and(|p| p != 0.0) {
        return Err(ValidationError::new("pitch", "piper voices cannot shift pitch").into());
    }
    crate::policy::enforce_texts(&state, owner, &[("text".to_owned(), &request.text)], "speech").await?;
    let prompt = request.text.trim().to_owned();
    let job = NewJob {
        persona_id: persona_ref.map(|p| p.0),
        persona_version: persona_ref.map(|p| p.1),
        prompt,
        ..internal_job(&state, JobType::Tts, PriorityClass::Interactive, engine.as_str(), &request)?
    };
    crate::routes::jobs::submit_jobs(&state, &principal, vec![job], None, None).await
}
