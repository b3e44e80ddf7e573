//! `/api/personas`: reusable creative identities, versioned on every edit.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use seidra_core::ValidationError;
use seidra_core::job::{ImageRequest, PriorityClass};
use seidra_core::persona::PersonaSpec;
use seidra_store::personas::{self, Persona};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{CanGenerate, CanRead};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, parse_uuid};
use crate::routes::jobs::{SubmitResponse, prepare, submit_jobs};
use crate::state::AppState;

/// A persona at its current version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonaView {
    /// Id.
    pub id: Uuid,
    /// Current version.
    pub version: i32,
    /// Favourite.
    pub favorite: bool,
    /// The spec (name, template, defaults…).
    pub spec: PersonaSpec,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last edit.
    pub updated_at: DateTime<Utc>,
}

impl From<&Persona> for PersonaView {
    fn from(p: &Persona) -> Self {
        Self {
            id: p.id,
            version: p.version,
            favorite: p.favorite,
            spec: p.spec.0.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A page of personas.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonaPage {
    /// Personas, favourites first then recently edited.
    pub items: Vec<PersonaView>,
    /// Total matching.
    pub total: i64,
}

/// Listing filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PersonaQuery {
    /// Text in the name.
    pub q: Option<String>,
    /// Only favourites.
    pub favorite: Option<bool>,
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
}

fn validated(mut spec: PersonaSpec) -> ApiResult<PersonaSpec> {
    spec.validate()?;
    spec.name = spec.name.trim().to_owned();
    spec.tags = crate::routes::media::normalize_tags("tags", &spec.tags)?;
    Ok(spec)
}

/// The avatar, when set, must be one of the owner's images (someone else's reads as missing).
async fn check_avatar(state: &AppState, owner: Uuid, spec: &PersonaSpec) -> ApiResult<()> {
    if let Some(id) = spec.video.avatar {
        crate::routes::talking_head::owned_media(state, owner, id, "video.avatar", "image").await?;
    }
    Ok(())
}

/// List personas.
#[utoipa::path(get, path = "/api/personas", tag = "personas", params(PersonaQuery), security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = PersonaPage)))]
pub async fn list(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    AppQuery(q): AppQuery<PersonaQuery>,
) -> ApiResult<Json<PersonaPage>> {
    let (limit, offset) = crate::views::PageQuery { limit: q.limit, offset: q.offset }.resolve()?;
    let (items, total) =
        personas::list(&state.db, principal.user.id, q.q.as_deref(), q.favorite, limit, offset).await?;
    Ok(Json(PersonaPage { items: items.iter().map(PersonaView::from).collect(), total }))
}

/// Create a persona (version 1).
#[utoipa::path(post, path = "/api/personas", tag = "personas", request_body = PersonaSpec, security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 201, body = PersonaView), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    AppJson(spec): AppJson<PersonaSpec>,
) -> ApiResult<(StatusCode, Json<PersonaView>)> {
    let spec = validated(spec)?;
    check_avatar(&state, principal.user.id, &spec).await?;
    crate::policy::enforce_persona(&state, principal.user.id, &spec).await?;
    let p = personas::create(&state.db, principal.user.id, &spec).await?;
    Ok((StatusCode::CREATED, Json(PersonaView::from(&p))))
}

/// One persona.
#[utoipa::path(get, path = "/api/personas/{id}", tag = "personas", params(("id" = Uuid, Path, description = "persona id")),
    security(("bearer" = []), ("api_key" = ["read"])), responses((status = 200, body = PersonaView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
) -> ApiResult<Json<PersonaView>> {
    let id = parse_uuid("id", &id)?;
    let p = personas::get_owned(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("persona"))?;
    Ok(Json(PersonaView::from(&p)))
}

/// Replace the spec: saves a new version.
#[utoipa::path(put, path = "/api/personas/{id}", tag = "personas", request_body = PersonaSpec,
    params(("id" = Uuid, Path, description = "persona id")), security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 200, body = PersonaView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
    AppJson(spec): AppJson<PersonaSpec>,
) -> ApiResult<Json<PersonaView>> {
    let id = parse_uuid("id", &id)?;
    let spec = validated(spec)?;
    check_avatar(&state, principal.user.id, &spec).await?;
    crate::policy::enforce_persona(&state, principal.user.id, &spec).await?;
    let p =
        personas::update(&state.db, principal.user.id, id, &spec).await.map_err(ApiError::or_not_found("persona"))?;
    Ok(Json(PersonaView::from(&p)))
}

/// Favourite flag.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FavoriteBody {
    /// Favourite or not.
    pub favorite: bool,
}

/// Mark or unmark as favourite (not a new version).
#[utoipa::path(patch, path = "/api/personas/{id}", tag = "personas", request_body = FavoriteBody,
    params(("id" = Uuid, Path, description = "persona id")), security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 200, body = PersonaView), (status = 404, body = ErrorBody)))]
pub async fn favorite(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
    AppJson(body): AppJson<FavoriteBody>,
) -> ApiResult<Json<PersonaView>> {
    let id = parse_uuid("id", &id)?;
    let p = personas::set_favorite(&state.db, principal.user.id, id, body.favorite)
        .await
        .map_err(ApiError::or_not_found("persona"))?;
    Ok(Json(PersonaView::from(&p)))
}

/// Delete (hide) a persona; past jobs keep their provenance.
#[utoipa::path(delete, path = "/api/personas/{id}", tag = "personas", params(("id" = Uuid, Path, description = "persona id")),
    security(("bearer" = []), ("api_key" = ["generate"])), responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_uuid("id", &id)?;
    personas::delete(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("persona"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Copy a persona into a new one named "… (copy)".
#[utoipa::path(post, path = "/api/personas/{id}/duplicate", tag = "personas", params(("id" = Uuid, Path, description = "persona id")),
    security(("bearer" = []), ("api_key" = ["generate"])), responses((status = 201, body = PersonaView), (status = 404, body = ErrorBody)))]
pub async fn duplicate(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<PersonaView>)> {
    let id = parse_uuid("id", &id)?;
    let original =
        personas::get_owned(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("persona"))?;
    let mut spec = original.spec.0.clone();
    spec.name = format!("{} (copy)", spec.name).chars().take(100).collect();
    crate::policy::enforce_persona(&state, principal.user.id, &spec).await?;
    let p = personas::create(&state.db, principal.user.id, &spec).await?;
    Ok((StatusCode::CREATED, Json(PersonaView::from(&p))))
}

/// One saved version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonaVersionView {
    /// Version.
    pub version: i32,
    /// Spec at that version.
    pub spec: PersonaSpec,
    /// Saved at.
    pub created_at: DateTime<Utc>,
}

/// Every version, newest first.
#[utoipa::path(get, path = "/api/personas/{id}/versions", tag = "personas", params(("id" = Uuid, Path, description = "persona id")),
    security(("bearer" = []), ("api_key" = ["read"])), responses((status = 200, body = [PersonaVersionView]), (status = 404, body = ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<PersonaVersionView>>> {
    let id = parse_uuid("id", &id)?;
    let rows = personas::versions(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("persona"))?;
    Ok(Json(
        rows.into_iter()
            .map(|v| PersonaVersionView { version: v.version, spec: v.spec.0, created_at: v.created_at })
            .collect(),
    ))
}

/// What to preview.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// Subject put into the template's `{prompt}` slot (default "portrait").
    #[serde(default)]
    pub prompt: Option<String>,
}

/// Generate a real preview image with the persona's settings (queues an interactive job).
#[utoipa::path(post, path = "/api/personas/{id}/preview", tag = "personas", request_body = PreviewBody,
    params(("id" = Uuid, Path, description = "persona id")), security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 202, body = SubmitResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
    AppJson(body): AppJson<PreviewBody>,
) -> ApiResult<Response> {
    let id = parse_uuid("id", &id)?;
    personas::get_owned(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("persona"))?;
    let prompt = body.prompt.unwrap_or_else(|| "portrait".to_owned());
    if prompt.trim().is_empty() {
        return Err(ValidationError::new("prompt", "must not be empty").into());
    }
    let request: ImageRequest =
        serde_json::from_value(serde_json::json!({ "prompt": prompt, "persona_id": id, "num_images": 1 }))
            .map_err(ApiError::internal)?;
    let explicit = vec!["prompt".to_owned(), "persona_id".to_owned(), "num_images".to_owned()];
    let job = prepare(&state, principal.user.id, request, &explicit, "", PriorityClass::Interactive, None).await?;
    submit_jobs(&state, &principal, vec![job], None, None).await
}
