//! Completing jobs in batches: job tasks hand their finished attempt to one completer task per
//! worker, which records every attempt waiting at that moment in one write transaction (the
//! job rows, their media, the owners' notifications and webhook outbox rows) and then sends
//! their events in one round trip.
//!
//! Under light load a batch is one job and nothing waits; under load the batch grows by
//! itself while the previous transaction commits, so commits stop being the limit.

use std::collections::HashMap;

use seidra_events::{Event, EventBus};
use seidra_store::jobs::{self, Completed, Completion, Job, NewMedia};
use seidra_store::{Db, StoreError, StoreResult, user_settings};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::job_event;

/// Most attempts recorded by one transaction.
const MAX_BATCH: usize = 64;

/// A finished attempt waiting to be recorded.
pub(crate) struct Request {
    /// The job as claimed.
    pub job: Job,
    /// Its stored outputs.
    pub outputs: Vec<NewMedia>,
    /// A field added to the `job.succeeded` event's data (an export's download link); its
    /// name must not be one of the job's own fields.
    pub event_extra: Option<(String, Value)>,
    /// Gets the succeeded job, `None` when the lease was lost or a cancel arrived.
    pub reply: oneshot::Sender<StoreResult<Option<Job>>>,
}

/// The handle job tasks use; cheap to clone.
#[derive(Clone)]
pub(crate) struct Completer {
    tx: mpsc::Sender<Request>,
}

impl Completer {
    /// A completer and the task that serves it (see [`CompleterTask::serve`]).
    pub fn new(db: Db, bus: EventBus, worker_id: Uuid) -> (Self, CompleterTask) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        (Self { tx }, CompleterTask { db, bus, worker_id, rx })
    }

    /// Records a successful attempt (batched with whatever else is finishing) and publishes
    /// its `job.succeeded` event; returns the succeeded job.
    pub async fn complete(
        &self,
        job: Job,
        outputs: Vec<NewMedia>,
        event_extra: Option<(String, Value)>,
    ) -> StoreResult<Option<Job>> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Other("the worker's completer has stopped".to_owned());
        self.tx.send(Request { job, outputs, event_extra, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The receiving end of a [`Completer`].
pub(crate) struct CompleterTask {
    db: Db,
    bus: EventBus,
    worker_id: Uuid,
    rx: mpsc::Receiver<Request>,
}

impl CompleterTask {
    /// Serves completions until `stop` fires (after the worker's job tasks have ended).
    pub async fn serve(self, stop: CancellationToken) {
        let Self { db, bus, worker_id, mut rx } = self;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let received = tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                () = stop.cancelled() => return,
            };
            if received == 0 {
                return;
            }
            serve_batch(&db, &bus, worker_id, &mut batch).await;
        }
    }
}

async fn serve_batch(db: &Db, bus: &EventBus, worker_id: Uuid, batch: &mut Vec<Request>) {
    metrics::histogram!("seidra_job_completion_batch_size").record(batch.len() as f64);
    match record(db, bus, worker_id, batch).await {
        Ok(done) => reply_all(std::mem::take(batch), done.into_iter().map(Ok)),
        // One bad attempt must not fail the others: record them one by one.
        Err(err) if batch.len() > 1 => {
            tracing::warn!(%err, jobs = batch.len(), "batched completion failed; completing one by one");
            for req in std::mem::take(batch) {
                let done = record(db, bus, worker_id, std::slice::from_ref(&req)).await;
                reply_all(vec![req], [done.map(|d| d.into_iter().next().flatten())]);
            }
        }
        Err(err) => reply_all(std::mem::take(batch), [Err(err)]),
    }
}

fn reply_all(batch: Vec<Request>, results: impl IntoIterator<Item = StoreResult<Option<Job>>>) {
    for (req, result) in batch.into_iter().zip(results) {
        // The job task may be gone (shutdown): nothing to tell it then.
        let _ = req.reply.send(result);
    }
}

/// One transaction for the batch, then its events; returns each attempt's succeeded job.
async fn record(db: &Db, bus: &EventBus, worker_id: Uuid, batch: &[Request]) -> StoreResult<Vec<Option<Job>>> {
    let owners: Vec<Uuid> = batch.iter().map(|r| r.job.owner_id).collect();
    let settings = match user_settings::get_many(db, &owners).await {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(%err, "could not read notification preferences; delivering everywhere");
            HashMap::new()
        }
    };
    let delivery = |job: &Job| seidra_notify::delivery(settings.get(&job.owner_id), seidra_notify::job_category(job));
    let items: Vec<Completion<'_>> = batch.iter().map(|r| Completion { job: &r.job, outputs: &r.outputs }).collect();
    let done =
        jobs::complete_many(db, worker_id, &items, &|job| seidra_notify::job_follow_up(job, delivery(job))).await?;

    let mut events: Vec<Event> = Vec::with_capacity(batch.len() * 2);
    for (req, Completed { job, notification }) in batch.iter().zip(&done) {
        let Some(job) = job else { continue };
        let mut event = job_event("job.succeeded", job, (!req.outputs.is_empty()).then_some(&req.outputs[..]));
        if let (Some((key, value)), Some(data)) = (&req.event_extra, event.data.as_object_mut()) {
            data.insert(key.clone(), value.clone());
        }
        events.push(event);
        if let Some(n) = notification {
            let to = delivery(job);
            seidra_notify::record_created(&n.category);
            if to.push {
                events.push(seidra_notify::notification_event(n));
            }
        }
    }
    crate::events::publish_counted(bus, &events).await;
    Ok(done.into_iter().map(|c| c.job).collect())
}
