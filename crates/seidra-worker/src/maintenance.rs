//! The maintenance loop: exactly one process runs it at a time (a leader lease in the
//! database). It reclaims jobs whose worker stopped heartbeating, marks dead workers, and
//! prunes finished jobs after the retention period, and sweeps orphaned objects from storage
//! ([`crate::sweeper`]).

use std::time::Duration;

use chrono::Utc;
use seidra_events::EventBus;
use seidra_store::{Db, jobs, workers};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::{JOBS_WAKE, control_event, job_event};

/// Name of the leader lease.
pub const LEASE_NAME: &str = "maintenance";

/// Runs until `stop`; acts only while holding the lease.
pub async fn run(
    db: Db,
    bus: EventBus,
    holder: Uuid,
    job_lease: Duration,
    retention_days: u32,
    sweep: crate::sweeper::OrphanSweep,
    stop: CancellationToken,
) {
    let tick_every = (job_lease / 4).clamp(Duration::from_millis(500), Duration::from_secs(10));
    let lease_ttl = chrono::Duration::from_std(tick_every * 3).unwrap_or(chrono::Duration::seconds(30));
    let mut tick = tokio::time::interval(tick_every);
    let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        match workers::try_lead(&db, LEASE_NAME, holder, lease_ttl).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(err) => {
                tracing::warn!(%err, "maintenance election failed");
                continue;
            }
        }
        match jobs::reclaim_expired(&db, Utc::now()).await {
            Ok(changed) => {
                for job in &changed {
                    let kind = match job.status {
                        seidra_core::job::JobStatus::Failed => "job.failed",
                        seidra_core::job::JobStatus::Cancelled => "job.cancelled",
                        _ => "job.retrying",
                    };
                    tracing::warn!(job_id = %job.id, status = job.status.as_str(), "reclaimed a job whose worker stopped heartbeating");
                    metrics::counter!("seidra_jobs_reclaimed_total").increment(1);
                    let _ = bus.publish(&job_event(kind, job, None)).await;
                    seidra_notify::job_finished(&db, &bus, job).await;
                }
                if !changed.is_empty() {
                    let _ = bus.publish(&control_event(JOBS_WAKE, None)).await;
                }
            }
            Err(err) => tracing::warn!(%err, "reclaiming expired leases failed"),
        }
        let stale = Utc::now() - lease_ttl * 2;
        if let Err(err) = workers::reap(&db, stale, Utc::now() - chrono::Duration::days(1)).await {
            tracing::warn!(%err, "reaping dead workers failed");
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            let before = Utc::now() - chrono::Duration::days(i64::from(retention_days));
            match jobs::prune_finished(&db, before).await {
                Ok(n) if n > 0 => tracing::info!(pruned = n, "pruned finished jobs past retention"),
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "pruning finished jobs failed"),
            }
            let _ = jobs::prune_idempotency_keys(&db, Utc::now() - chrono::Duration::days(1)).await;
            match crate::sweeper::sweep_orphans(&db, sweep.store.as_ref(), sweep.grace, std::time::SystemTime::now())
                .await
            {
                Ok(r) if r.deleted > 0 => {
                    tracing::info!(scanned = r.scanned, deleted = r.deleted, "swept orphaned objects")
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "sweeping orphaned objects failed"),
            }
        }
    }
    let _ = workers::resign(&db, LEASE_NAME, holder).await;
}
