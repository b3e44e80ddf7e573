//! `/api/auth/api-keys`: the caller's API keys.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use seidra_store::api_keys;

use crate::accounts::{Actor, create_api_key, revoke_api_key};
use crate::auth::{CanRead, SignedIn};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{AppJson, parse_uuid};
use crate::middleware::ClientIp;
use crate::state::AppState;
use crate::views::{ApiKeyList, ApiKeyView, CreateApiKeyRequest, CreatedApiKey};

/// List the caller's API keys (revoked ones included).
#[utoipa::path(get, path = "/api/auth/api-keys", tag = "api-keys", security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, CanRead(principal): CanRead) -> ApiResult<Json<ApiKeyList>> {
    let keys = api_keys::list_for_user(&state.db, principal.user.id).await?;
    Ok(Json(ApiKeyList { items: keys.iter().map(ApiKeyView::from).collect() }))
}

/// Create an API key; the token is in this response only. Needs a signed-in session.
#[utoipa::path(post, path = "/api/auth/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest, security(("bearer" = [])),
    responses((status = 201, body = CreatedApiKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    SignedIn(principal): SignedIn,
    AppJson(body): AppJson<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let actor = Actor { user_id: Some(principal.user.id), ip: Some(ip.0.to_string()) };
    let (key, token) =
        create_api_key(&state.db, &actor, &principal.user, &body.name, &body.scopes, body.expires_in_days).await?;
    let notice = format!("API key \"{}\" was created from {}.", key.name, ip.0);
    seidra_notify::security(&state.db, &state.bus, principal.user.id, "API key created", &notice).await;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key: ApiKeyView::from(&key), token })))
}

/// Revoke one of the caller's API keys; it stops working at once.
#[utoipa::path(delete, path = "/api/auth/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "key id")),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    SignedIn(principal): SignedIn,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_uuid("id", &id)?;
    let actor = Actor { user_id: Some(principal.user.id), ip: Some(ip.0.to_string()) };
    revoke_api_key(&state.db, &actor, principal.user.id, id).await?;
    let notice = format!("API key {id} was revoked from {}.", ip.0);
    seidra_notify::security(&state.db, &state.bus, principal.user.id, "API key revoked", &notice).await;
    Ok(StatusCode::NO_CONTENT)
}
