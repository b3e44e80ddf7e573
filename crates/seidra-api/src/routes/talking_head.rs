//! `POST /api/generate/video`: talking-head videos (job type `talking_head`). A portrait (an
//! image of yours, or the persona's avatar) is animated by speech (an audio item of yours, or
//! text spoken first with the persona's voice) on a SadTalker-compatible remote engine.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use seidra_core::ValidationError;
use seidra_core::job::{JobType, PriorityClass};
use seidra_core::speech::{AudioFormat, SpeechEngine, SpeechRequest};
use seidra_core::talking_head::{TalkingHeadJob, TalkingHeadRequest};
use seidra_store::StoreError;
use seidra_store::jobs::NewJob;
use seidra_store::media::Media;
use uuid::Uuid;

use crate::auth::CanGenerate;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::parse_json;
use crate::state::AppState;

/// One of the owner's media items of `kind`; a 422 naming `field` otherwise (someone else's
/// item reads as missing, so existence does not leak).
pub async fn owned_media(state: &AppState, owner: Uuid, id: Uuid, field: &str, kind: &str) -> ApiResult<Media> {
    let item = match seidra_store::media::get_owned(&state.db, owner, id).await {
        Ok(item) => item,
        Err(StoreError::NotFound) => {
            return Err(ValidationError::new(field, "no such media item in your library").into());
        }
        Err(e) => return Err(e.into()),
    };
    if item.kind != kind {
        return Err(ValidationError::new(field, format!("is a {} item; {kind} expected", item.kind)).into());
    }
    Ok(item)
}

/// Queue a talking-head video: `image` (or the persona's avatar) animated by `audio`, or by
/// `text` spoken first with the persona's voice. SadTalker's parameters are honoured or refused
/// with a 422 naming the field. Follow the job like any other; the MP4 is a `video` media item.
#[utoipa::path(post, path = "/api/generate/video", tag = "jobs", request_body = TalkingHeadRequest, security(("bearer" = []), ("api_key" = ["generate"])),
    params(("Idempotency-Key" = Option<String>, Header, description = "same key + same body → the same job")),
    responses((status = 202, body = crate::routes::jobs::SubmitResponse),
        (status = 200, description = "idempotent replay", body = crate::routes::jobs::SubmitResponse),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn generate_video(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    crate::routes::jobs::require_json(&headers)?;
    let request: TalkingHeadRequest = parse_json(&body)?;
    let idem = crate::routes::jobs::idempotency(&headers, &body)?;
    let owner = principal.user.id;
    let params = request.validate()?;
    let persona = match request.persona_id {
        Some(id) => Some(seidra_store::personas::get_owned(&state.db, owner, id).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::validation(ValidationError::new("persona_id", "unknown persona")),
            other => other.into(),
        })?),
        None => None,
    };
    let image = match (request.image, persona.as_ref().and_then(|p| p.spec.0.video.avatar)) {
        (Some(id), _) => owned_media(&state, owner, id, "image", "image").await?,
        // The persona's avatar was checked when the persona was saved, but may be deleted since.
        (None, Some(id)) => match seidra_store::media::get_owned(&state.db, owner, id).await {
            Ok(item) if item.kind == "image" => item,
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(ValidationError::new("image", "the persona's avatar is no longer in your library").into());
            }
            Err(e) => return Err(e.into()),
        },
        (None, None) => {
            let why = if persona.is_some() { "required (the persona has no avatar)" } else { "required" };
            return Err(ValidationError::new("image", why).into());
        }
    }
    .id;
    let audio = match request.audio {
        Some(id) => Some(owned_media(&state, owner, id, "audio", "audio").await?.id),
        None => None,
    };
    let speech = match &request.text {
        Some(text) => {
            let mut speech = SpeechRequest {
                text: text.clone(),
                engine: None,
                voice: request.voice.clone(),
                rate: None,
                pitch: None,
                format: Some(AudioFormat::Wav),
                persona_id: request.persona_id,
            };
            if let Some(p) = &persona {
                speech.merge_persona(&p.spec.0.voice);
            }
            speech.validate("")?;
            speech.resolve_defaults();
            let engine = speech.engine.unwrap_or_default();
            let Some(voice) = speech.voice.clone() else {
                return Err(ValidationError::new("voice", "name a piper voice (a model in media.piper_voices)").into());
            };
            crate::routes::speech::check_voice(&state, engine, &voice, "voice").await?;
            if engine == SpeechEngine::Piper && speech.pitch.is_some_and(|p| p != 0.0) {
                return Err(ValidationError::new("pitch", "the persona's piper voice cannot shift pitch").into());
            }
            crate::policy::enforce_texts(&state, owner, &[("text".to_owned(), &speech.text)], "talking_head").await?;
            Some(speech)
        }
        None => None,
    };
    let (engine, model) = state.engines.route_talking_head(request.engine.as_deref())?;
    let prompt = speech.as_ref().map(|s| s.text.trim().to_owned()).unwrap_or_default();
    let stored = TalkingHeadJob {
        image,
        audio,
        speech,
        params,
        engine_pinned: request.engine.is_some(),
        persona_id: persona.as_ref().map(|p| p.id),
    };
    let job = NewJob {
        engine,
        persona_id: persona.as_ref().map(|p| p.id),
        persona_version: persona.as_ref().map(|p| p.version),
        prompt,
        policy: crate::policy::admitted_decision(&state),
        ..crate::routes::jobs::internal_job(&state, JobType::TalkingHead, PriorityClass::Interactive, model, &stored)?
    };
    crate::routes::jobs::submit_jobs(&state, &principal, vec![job], idem, None).await
}
