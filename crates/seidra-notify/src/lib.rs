//! Notifications and webhooks: what happens when something a user cares about happens.
//!
//! * [`notify`] persists a notification for one user (one INSERT), counts it, and pushes it on
//!   the `notifications` channel of the event bus to that user only.
//! * [`job_follow_up`] says what a job that reached `succeeded`, `failed` or `cancelled`
//!   writes for its owner under their preferences: a notification and webhook deliveries for
//!   the outbox. A worker completing jobs writes them inside the completion transaction
//!   (`seidra_store::jobs::complete_many`); [`job_finished`] writes them on their own for the
//!   other endings (failures, cancels, expired leases). A failure there is logged, never
//!   turned into a job failure.
//! * [`webhooks`] signs and delivers the outbox rows (retries with back-off, SSRF guard at
//!   connect time).

pub mod webhooks;

use chrono::{DateTime, Utc};
use seidra_core::job::JobStatus;
use seidra_events::{Channel, Event, EventBus};
use seidra_store::Db;
use seidra_store::jobs::FollowUp;
use seidra_store::jobs::Job;
use seidra_store::notifications::{self, Draft, NewNotification, Notification};
use seidra_store::webhooks::OutboxEvent;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

/// Notification levels.
pub const LEVELS: &[&str] = &["info", "success", "warning", "error"];
/// Notification categories (bounded: they label a metric).
pub const CATEGORIES: &[&str] = &["job", "export", "quota", "security", "system"];

/// A notification as clients see it (HTTP and the WebSocket `notification` event).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    /// Id.
    pub id: Uuid,
    /// `info`, `success`, `warning`, `error`.
    pub level: String,
    /// `job`, `export`, `quota`, `security`, `system`.
    pub category: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Relative studio link, if any.
    pub link: Option<String>,
    /// Whether it was read.
    pub read: bool,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<&Notification> for NotificationView {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id,
            level: n.level.clone(),
            category: n.category.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            link: n.link.clone(),
            read: n.read_at.is_some(),
            read_at: n.read_at,
            created_at: n.created_at,
        }
    }
}

/// Where `user_id` wants notices of one category to go (`/api/settings` → `notifications`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Kept in the inbox (`in_app`).
    pub inbox: bool,
    /// Pushed live on the WebSocket (`websocket`).
    pub push: bool,
    /// Sent to the user's webhooks (`webhook`).
    pub webhook: bool,
}

/// The user's preferences for `category`, in one primary-key read. Security notices are
/// always delivered, whatever the preferences say.
pub async fn preferences(db: &Db, user_id: Uuid, category: &str) -> Delivery {
    match seidra_store::user_settings::get(db, user_id).await {
        Ok(s) => delivery(Some(&s), category),
        Err(err) => {
            tracing::warn!(%err, %user_id, "could not read notification preferences; delivering everywhere");
            delivery(None, category)
        }
    }
}

/// Where notices of `category` go under `settings` (`None`: they could not be read, so
/// everywhere). Security notices always go everywhere.
pub fn delivery(settings: Option<&seidra_core::user_settings::UserSettings>, category: &str) -> Delivery {
    match settings {
        Some(s) if category != "security" => Delivery {
            inbox: s.notification_enabled(category, "in_app"),
            push: s.notification_enabled(category, "websocket"),
            webhook: s.notification_enabled(category, "webhook"),
        },
        _ => Delivery { inbox: true, push: true, webhook: true },
    }
}

/// The bus event for a new notification (channel `notifications`, owner only).
pub fn notification_event(n: &Notification) -> Event {
    Event {
        kind: "notification".to_owned(),
        channel: Channel::Notifications,
        owner_id: Some(n.user_id),
        job_id: None,
        data: serde_json::to_value(NotificationView::from(n)).unwrap_or_default(),
        at: n.created_at,
    }
}

/// Persists a notification for `user_id` and pushes it live; errors are logged and yield
/// None (a notice must never fail the action that caused it).
pub async fn notify(db: &Db, bus: &EventBus, user_id: Uuid, new: &NewNotification<'_>) -> Option<Notification> {
    let delivery = preferences(db, user_id, new.category).await;
    notify_with(db, bus, user_id, new, delivery).await
}

/// [`notify`] with the preferences already read.
async fn notify_with(
    db: &Db,
    bus: &EventBus,
    user_id: Uuid,
    new: &NewNotification<'_>,
    delivery: Delivery,
) -> Option<Notification> {
    if !delivery.inbox {
        return None;
    }
    match notifications::create(db, user_id, new).await {
        Ok(n) => {
            record_created(&n.category);
            if delivery.push {
                publish(bus, &n).await;
            }
            Some(n)
        }
        Err(err) => {
            tracing::warn!(%err, category = new.category, "could not create a notification");
            None
        }
    }
}

/// Counts a created notification.
pub fn record_created(category: &str) {
    let label = CATEGORIES.iter().find(|c| **c == category).copied().unwrap_or("other");
    metrics::counter!("seidra_notifications_created_total", "category" => label).increment(1);
}

/// Publishes an already stored notification to its owner.
pub async fn publish(bus: &EventBus, n: &Notification) {
    if let Err(err) = bus.publish(&notification_event(n)).await {
        tracing::warn!(%err, "could not publish a notification event");
    }
}

/// What a finished job produces: notification level/title and webhook event name.
fn job_outcome(job: &Job) -> Option<(&'static str, &'static str, &'static str, String)> {
    let export = job.job_type.as_str() == "export";
    let what = if export { "Export" } else { "Job" };
    match job.status {
        JobStatus::Succeeded if export => {
            Some(("success", "export", "export.ready", format!("{what} ready: your export can be downloaded")))
        }
        JobStatus::Succeeded => {
            Some(("success", "job", "job.succeeded", format!("{what} finished: {}", short(&job.prompt))))
        }
        JobStatus::Failed => {
            let reason = job.error.as_ref().map(|e| e.message.clone()).unwrap_or_else(|| "unknown error".to_owned());
            Some(("error", if export { "export" } else { "job" }, "job.failed", format!("{what} failed: {reason}")))
        }
        JobStatus::Cancelled => Some(("info", "job", "job.cancelled", format!("{what} cancelled"))),
        _ => None,
    }
}

fn short(text: &str) -> String {
    let t: String = text.chars().take(80).collect();
    if t.len() < text.len() { format!("{t}…") } else { t }
}

/// The webhook payload for a job event.
pub fn job_payload(event: &str, job: &Job) -> serde_json::Value {
    json!({
        "event": event,
        "created_at": Utc::now(),
        "data": {
            "job_id": job.id,
            "status": job.status.as_str(),
            "job_type": job.job_type.as_str(),
            "engine": job.engine,
            "model": job.model,
            "prompt": job.prompt,
            "attempt": job.attempt,
            "error": job.error,
            "batch_id": job.batch_id,
            "queued_at": job.queued_at,
            "finished_at": job.finished_at,
        },
    })
}

/// The notification category of a finished job (`export` or `job`).
pub fn job_category(job: &Job) -> &'static str {
    job_outcome(job).map_or("job", |(_, category, _, _)| category)
}

/// What a job that reached a final status writes for its owner under `delivery`: a
/// notification (succeeded, failed) and webhook deliveries (succeeded, failed, cancelled).
pub fn job_follow_up(job: &Job, delivery: Delivery) -> FollowUp {
    let Some((level, category, event, title)) = job_outcome(job) else { return FollowUp::default() };
    let notification = (delivery.inbox && job.status != JobStatus::Cancelled).then(|| {
        let body = match job.status {
            JobStatus::Succeeded => format!("{} · {}", job.engine, job.model),
            _ => job.error.as_ref().map(|e| e.code.clone()).unwrap_or_default(),
        };
        Draft { level, category, title, body, link: Some(format!("/jobs/{}", job.id)) }
    });
    let webhook = delivery.webhook.then(|| OutboxEvent { event, payload: job_payload(event, job).to_string() });
    FollowUp { notification, webhook }
}

/// The hook for a job that reached a final status outside a batched completion (failures,
/// cancels, lease expiry): [`job_follow_up`] written with its own statements. A failure here
/// is logged, never turned into a job failure.
pub async fn job_finished(db: &Db, bus: &EventBus, job: &Job) {
    let delivery = preferences(db, job.owner_id, job_category(job)).await;
    let FollowUp { notification, webhook } = job_follow_up(job, delivery);
    if let Some(draft) = notification {
        let new = NewNotification {
            level: draft.level,
            category: draft.category,
            title: &draft.title,
            body: &draft.body,
            link: draft.link.as_deref(),
        };
        notify_with(db, bus, job.owner_id, &new, delivery).await;
    }
    if let Some(hook) = webhook {
        webhooks::enqueue(db, job.owner_id, hook.event, &hook.payload).await;
    }
}

/// Notice for a refused submission (queue quota reached); at most one unread per 10 minutes,
/// so a script hammering the queue does not flood the inbox.
pub async fn quota_reached(db: &Db, bus: &EventBus, user_id: Uuid, message: &str) {
    let since = Utc::now() - chrono::Duration::minutes(10);
    if notifications::has_recent_unread(db, user_id, "quota", since).await.unwrap_or(false) {
        return;
    }
    let new = NewNotification {
        level: "warning",
        category: "quota",
        title: "Queue quota reached",
        body: message,
        link: Some("/jobs"),
    };
    notify(db, bus, user_id, &new).await;
}

/// A security notice (`password changed`, `API key created`…).
pub async fn security(db: &Db, bus: &EventBus, user_id: Uuid, title: &str, body: &str) {
    let new = NewNotification { level: "warning", category: "security", title, body, link: Some("/settings") };
    notify(db, bus, user_id, &new).await;
}

/// Successful sign-ins whose addresses count as "known".
pub const KNOWN_LOGIN_WINDOW: i64 = 10;

/// Before a successful sign-in is recorded: a security notice when `ip` is not among the
/// user's last [`KNOWN_LOGIN_WINDOW`] successful sign-ins (none on the very first sign-in).
pub async fn login_from_ip(db: &Db, bus: &EventBus, user_id: Uuid, ip: &str) {
    match seidra_store::audit::recent_login_ips(db, user_id, KNOWN_LOGIN_WINDOW).await {
        Ok(ips) if !ips.is_empty() && !ips.iter().any(|known| known.as_deref() == Some(ip)) => {
            let body = format!("Your account was signed in to from {ip}. If this was not you, change your password.");
            security(db, bus, user_id, "Sign-in from a new address", &body).await;
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "could not read recent sign-ins"),
    }
}
