//! `/api/webhooks`: the caller's webhook endpoints, their delivery log and a test event.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use seidra_core::ValidationError;
use seidra_notify::webhooks::{DeliveryConfig, EVENTS, generate_secret};
use seidra_store::webhooks::{self, Attempt, Delivery, Webhook, WebhookChange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{CanGenerate, CanRead};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, parse_uuid};
use crate::state::AppState;
use crate::views::PageQuery;

/// Most endpoints per user.
pub const MAX_WEBHOOKS: usize = 25;

/// A webhook endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// Id.
    pub id: Uuid,
    /// Target URL.
    pub url: String,
    /// Subscribed events (`job.succeeded`, `job.failed`, `job.cancelled`, `export.ready`, `*`).
    pub events: Vec<String>,
    /// Whether deliveries are made.
    pub active: bool,
    /// The signing secret: only in the response that created or replaced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl WebhookView {
    fn new(w: &Webhook, show_secret: bool) -> Self {
        Self {
            id: w.id,
            url: w.url.clone(),
            events: w.event_list(),
            active: w.active,
            secret: show_secret.then(|| w.secret.clone()),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// The caller's endpoints.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub items: Vec<WebhookView>,
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `http(s)://…`; must resolve to a public address unless the admin allow-listed it.
    pub url: String,
    /// Signing secret (16–200 characters); generated when absent. Shown once.
    pub secret: Option<String>,
    /// Events to deliver (default `["*"]`).
    pub events: Option<Vec<String>>,
    /// Enabled (default true).
    pub active: Option<bool>,
}

/// Changes to an endpoint; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// New URL (vetted like on creation).
    pub url: Option<String>,
    /// New secret (shown in this response).
    pub secret: Option<String>,
    /// New event list.
    pub events: Option<Vec<String>>,
    /// Enable or pause.
    pub active: Option<bool>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    /// 1-based.
    pub attempt: i32,
    /// HTTP status, when a response came.
    pub status_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// Milliseconds.
    pub duration_ms: i64,
    /// When.
    pub at: DateTime<Utc>,
}

/// One event sent (or being sent) to an endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// Delivery id (the `X-Seidra-Delivery` header).
    pub id: i64,
    /// Event name.
    pub event: String,
    /// `pending` (retry scheduled), `delivering`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// HTTP status of the last attempt.
    pub status_code: Option<i32>,
    /// Error of the last attempt.
    pub error: Option<String>,
    /// Duration of the last attempt, ms.
    pub duration_ms: Option<i64>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

impl DeliveryView {
    fn new(d: &Delivery, attempts: &[Attempt]) -> Self {
        Self {
            id: d.id,
            event: d.event.clone(),
            status: d.status.clone(),
            attempts: d.attempts,
            status_code: d.last_status_code,
            error: d.last_error.clone(),
            duration_ms: d.last_duration_ms,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
            attempt_log: attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    status_code: a.status_code,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                    at: a.at,
                })
                .collect(),
        }
    }
}

/// A page of the delivery log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<DeliveryView>,
    /// All deliveries of the endpoint.
    pub total: i64,
}

fn delivery_config(state: &AppState) -> ApiResult<DeliveryConfig> {
    DeliveryConfig::from_settings(&state.settings.webhooks).map_err(ApiError::internal)
}

fn check_events(events: &[String]) -> ApiResult<Vec<String>> {
    if events.is_empty() {
        return Err(ValidationError::new("events", "must name at least one event (or `*`)").into());
    }
    let mut out: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let e = e.trim();
        if !EVENTS.contains(&e) {
            return Err(
                ValidationError::new(format!("events[{i}]"), format!("must be one of {}", EVENTS.join(", "))).into()
            );
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_owned());
        }
    }
    Ok(out)
}

fn check_secret(secret: &str) -> ApiResult<()> {
    let n = secret.chars().count();
    if !(16..=200).contains(&n) || secret.chars().any(char::is_control) {
        return Err(ValidationError::new("secret", "must be 16 to 200 printable characters").into());
    }
    Ok(())
}

/// Vets a URL; a refusal is a 422 naming `url` and saying why.
async fn vetted_url(config: &DeliveryConfig, url: &str) -> ApiResult<String> {
    if url.len() > 2000 {
        return Err(ValidationError::new("url", "must be at most 2000 characters").into());
    }
    config.vet_url(url).await.map_err(|e| ApiError::validation(ValidationError::new("url", e.to_string())))
}

/// List the caller's webhook endpoints (secrets are never listed).
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = WebhookList)))]
pub async fn list(State(state): State<AppState>, CanRead(principal): CanRead) -> ApiResult<Json<WebhookList>> {
    let items = webhooks::list(&state.db, principal.user.id).await?;
    Ok(Json(WebhookList { items: items.iter().map(|w| WebhookView::new(w, false)).collect() }))
}

/// Create an endpoint; the response holds the signing secret, once.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = CreateWebhook, security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 201, body = WebhookView), (status = 409, body = ErrorBody), (status = 422, description = "invalid or refused URL (private, loopback, link-local…)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    AppJson(body): AppJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    let events = check_events(body.events.as_deref().unwrap_or(&["*".to_owned()]))?;
    let secret = match body.secret {
        Some(s) => {
            check_secret(&s)?;
            s
        }
        None => generate_secret().map_err(ApiError::internal)?,
    };
    let config = delivery_config(&state)?;
    let url = vetted_url(&config, &body.url).await?;
    if webhooks::list(&state.db, principal.user.id).await?.len() >= MAX_WEBHOOKS {
        return Err(ApiError::conflict("too_many_webhooks", format!("at most {MAX_WEBHOOKS} webhooks per account")));
    }
    let mut w = webhooks::create(&state.db, principal.user.id, &url, &secret, &events).await?;
    if body.active == Some(false) {
        let change = WebhookChange { active: Some(false), ..WebhookChange::default() };
        w = webhooks::update(&state.db, principal.user.id, w.id, &change).await?;
    }
    Ok((StatusCode::CREATED, Json(WebhookView::new(&w, true))))
}

/// One endpoint (without its secret).
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = []), ("api_key" = ["read"])),
    params(("id" = Uuid, Path, description = "webhook id")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    let id = parse_uuid("id", &id)?;
    let w = webhooks::get_owned(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("webhook"))?;
    Ok(Json(WebhookView::new(&w, false)))
}

/// Change an endpoint's URL, secret, events or active flag.
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", request_body = UpdateWebhook, security(("bearer" = []), ("api_key" = ["generate"])),
    params(("id" = Uuid, Path, description = "webhook id")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdateWebhook>,
) -> ApiResult<Json<WebhookView>> {
    let id = parse_uuid("id", &id)?;
    webhooks::get_owned(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("webhook"))?;
    let events = body.events.as_deref().map(check_events).transpose()?;
    if let Some(s) = &body.secret {
        check_secret(s)?;
    }
    let url = match &body.url {
        Some(u) => Some(vetted_url(&delivery_config(&state)?, u).await?),
        None => None,
    };
    let show_secret = body.secret.is_some();
    let change = WebhookChange { url, secret: body.secret, events, active: body.active };
    let w =
        webhooks::update(&state.db, principal.user.id, id, &change).await.map_err(ApiError::or_not_found("webhook"))?;
    Ok(Json(WebhookView::new(&w, show_secret)))
}

/// Delete an endpoint and its delivery log.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", security(("bearer" = []), ("api_key" = ["generate"])),
    params(("id" = Uuid, Path, description = "webhook id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_uuid("id", &id)?;
    webhooks::delete(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("webhook"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a `webhook.test` event now; answers with the recorded first attempt (retried later
/// like any delivery when it failed).
#[utoipa::path(post, path = "/api/webhooks/{id}/test", tag = "webhooks", security(("bearer" = []), ("api_key" = ["generate"])),
    params(("id" = Uuid, Path, description = "webhook id")),
    responses((status = 200, body = DeliveryView), (status = 404, body = ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryView>> {
    let id = parse_uuid("id", &id)?;
    let w = webhooks::get_owned(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("webhook"))?;
    let delivery = delivery_config(&state)?.send_test(&state.db, &w).await?;
    let (_, attempts, _) = webhooks::list_deliveries(&state.db, principal.user.id, id, 1, 0).await?;
    Ok(Json(DeliveryView::new(&delivery, &attempts)))
}

/// The delivery log of an endpoint, newest first, with every attempt.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = Uuid, Path, description = "webhook id"), PageQuery),
    security(("bearer" = []), ("api_key" = ["read"])), responses((status = 200, body = DeliveryPage), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
    AppQuery(page): AppQuery<PageQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    let id = parse_uuid("id", &id)?;
    let (limit, offset) = page.resolve()?;
    let (rows, attempts, total) = webhooks::list_deliveries(&state.db, principal.user.id, id, limit, offset)
        .await
        .map_err(ApiError::or_not_found("webhook"))?;
    Ok(Json(DeliveryPage { items: rows.iter().map(|d| DeliveryView::new(d, &attempts)).collect(), total }))
}
