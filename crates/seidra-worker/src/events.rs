//! The event payloads about jobs, shared by the API (queued, cancelled) and workers (the rest),
//! so a WebSocket client sees one shape whoever produced the event.

use chrono::Utc;
use seidra_events::{Channel, Event};
use seidra_store::jobs::{Job, NewMedia};
use serde_json::{Value, json};
use uuid::Uuid;

/// Control event: new work is queued (wakes idle workers in every process).
pub const JOBS_WAKE: &str = "jobs.wake";
/// Control event: a running job should stop now.
pub const JOB_CANCEL: &str = "job.cancel";

/// A job event for its owner (`job.queued`, `job.started`, `job.progress`…).
pub fn job_event(kind: &str, job: &Job, outputs: Option<&[NewMedia]>) -> Event {
    let mut data = json!({
        "job_id": job.id,
        "status": job.status.as_str(),
        "job_type": job.job_type.as_str(),
        "priority": job.priority.as_str(),
        "engine": job.engine,
        "model": job.model,
        "progress": job.progress,
        "stage": job.stage,
        "eta_secs": job.eta_secs,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "batch_id": job.batch_id,
        "error": job.error,
        "queued_at": job.queued_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    });
    if let (Some(outputs), Some(obj)) = (outputs, data.as_object_mut()) {
        let items: Vec<Value> = outputs
            .iter()
            .map(|m| json!({ "media_id": m.id, "mime": m.mime, "width": m.width, "height": m.height, "bytes": m.bytes, "seed": m.seed, "sha256": m.sha256 }))
            .collect();
        obj.insert("outputs".to_owned(), Value::Array(items));
    }
    Event {
        kind: kind.to_owned(),
        channel: Channel::Jobs,
        owner_id: Some(job.owner_id),
        job_id: Some(job.id),
        data,
        at: Utc::now(),
    }
}

/// A progress event (kept small: it is the most frequent one).
pub fn progress_event(job: &Job, progress: f64, stage: &str, eta_secs: Option<i64>) -> Event {
    Event {
        kind: "job.progress".to_owned(),
        channel: Channel::Jobs,
        owner_id: Some(job.owner_id),
        job_id: Some(job.id),
        data: json!({ "job_id": job.id, "status": "running", "progress": progress, "stage": stage, "eta_secs": eta_secs }),
        at: Utc::now(),
    }
}

/// A control event between processes (never forwarded to clients).
pub fn control_event(kind: &str, job_id: Option<Uuid>) -> Event {
    Event {
        kind: kind.to_owned(),
        channel: Channel::Control,
        owner_id: None,
        job_id,
        data: Value::Null,
        at: Utc::now(),
    }
}

/// Publishes `events` in one round trip and counts them; a failure is logged (the events still
/// reached this process's subscribers, see `EventBus::publish_many`).
pub async fn publish_counted(bus: &seidra_events::EventBus, events: &[Event]) {
    match bus.publish_many(events).await {
        Ok(()) => {
            for event in events {
                metrics::counter!("seidra_events_published_total", "type" => event.kind.clone()).increment(1);
            }
        }
        Err(err) => tracing::warn!(%err, events = events.len(), "could not publish events"),
    }
}
