//! `/api/notifications`: the caller's notifications, and the admin broadcast.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use seidra_core::ValidationError;
use seidra_notify::NotificationView;
use seidra_store::notifications::{self, NewNotification};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::{Actor, audit};
use crate::auth::{Admin, CanRead};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, parse_uuid};
use crate::middleware::ClientIp;
use crate::state::AppState;
use crate::views::PageQuery;

/// A page of notifications.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationPage {
    /// Newest first.
    pub items: Vec<NotificationView>,
    /// Items matching the filter.
    pub total: i64,
    /// Unread notifications of the caller (whatever the filter).
    pub unread_count: i64,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// Only unread ones.
    pub unread_only: Option<bool>,
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
}

/// How many notifications changed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarkedRead {
    /// Notifications marked read.
    pub updated: u64,
}

/// A notice to every enabled account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// `info` (default), `success`, `warning` or `error`.
    pub level: Option<String>,
    /// Title (1–200 characters).
    pub title: String,
    /// Body (up to 4000 characters).
    #[serde(default)]
    pub body: String,
    /// Relative studio link.
    pub link: Option<String>,
}

/// How many accounts a broadcast reached.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BroadcastResult {
    /// Notifications created.
    pub recipients: usize,
}

/// List the caller's notifications with the unread count.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(NotificationQuery), security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = NotificationPage), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    AppQuery(q): AppQuery<NotificationQuery>,
) -> ApiResult<Json<NotificationPage>> {
    let (limit, offset) = PageQuery { limit: q.limit, offset: q.offset }.resolve()?;
    let page = notifications::list(&state.db, principal.user.id, q.unread_only.unwrap_or(false), limit, offset).await?;
    Ok(Json(NotificationPage {
        items: page.items.iter().map(NotificationView::from).collect(),
        total: page.total,
        unread_count: page.unread,
        limit,
        offset,
    }))
}

/// Mark one notification read.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications", security(("bearer" = []), ("api_key" = ["read"])),
    params(("id" = uuid::Uuid, Path, description = "notification id")),
    responses((status = 200, body = NotificationView), (status = 404, body = ErrorBody)))]
pub async fn mark_read(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationView>> {
    let id = parse_uuid("id", &id)?;
    let n = notifications::mark_read(&state.db, principal.user.id, id)
        .await
        .map_err(ApiError::or_not_found("notification"))?;
    Ok(Json(NotificationView::from(&n)))
}

/// Mark every notification read.
#[utoipa::path(post, path = "/api/notifications/read-all", tag = "notifications", security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = MarkedRead)))]
pub async fn mark_all_read(State(state): State<AppState>, CanRead(principal): CanRead) -> ApiResult<Json<MarkedRead>> {
    let updated = notifications::mark_all_read(&state.db, principal.user.id).await?;
    Ok(Json(MarkedRead { updated }))
}

/// Delete one notification.
#[utoipa::path(delete, path = "/api/notifications/{id}", tag = "notifications", security(("bearer" = []), ("api_key" = ["read"])),
    params(("id" = uuid::Uuid, Path, description = "notification id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_uuid("id", &id)?;
    notifications::delete(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("notification"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a notice to every enabled account (admins only); each gets it live too.
#[utoipa::path(post, path = "/api/admin/notifications/broadcast", tag = "notifications", request_body = BroadcastRequest,
    security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 201, body = BroadcastResult), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn broadcast(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    Admin(principal): Admin,
    AppJson(body): AppJson<BroadcastRequest>,
) -> ApiResult<(StatusCode, Json<BroadcastResult>)> {
    let level = body.level.as_deref().unwrap_or("info");
    if !seidra_notify::LEVELS.contains(&level) {
        return Err(ValidationError::new("level", "must be one of info, success, warning, error").into());
    }
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ValidationError::new("title", "must be 1 to 200 characters").into());
    }
    if body.body.chars().count() > 4000 {
        return Err(ValidationError::new("body", "must be at most 4000 characters").into());
    }
    if let Some(link) = &body.link
        && (!link.starts_with('/') || link.starts_with("//") || link.len() > 500)
    {
        return Err(ValidationError::new("link", "must be a path inside the studio (starting with a single /)").into());
    }
    let new = NewNotification { level, category: "system", title, body: body.body.trim(), link: body.link.as_deref() };
    let created = notifications::create_for_all_active(&state.db, &new).await?;
    for n in &created {
        seidra_notify::record_created(&n.category);
        seidra_notify::publish(&state.bus, n).await;
    }
    let actor = Actor { user_id: Some(principal.user.id), ip: Some(ip.0.to_string()) };
    let details = serde_json::json!({ "title": title, "level": level, "recipients": created.len() });
    audit(&state.db, &actor, "admin.notification.broadcast", None, true, details).await;
    Ok((StatusCode::CREATED, Json(BroadcastResult { recipients: created.len() })))
}
