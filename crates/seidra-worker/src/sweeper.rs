//! The orphan sweeper: objects under the media prefixes that no media row references and that
//! are older than a grace period are deleted. Orphans come from crashes between writing an
//! object and committing its row, and from deletes whose object removal failed. The grace
//! period keeps in-flight writes (object stored, row not yet committed) safe.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use seidra_storage::{ObjectStore, SharedStore};
use seidra_store::{Db, media};

/// Prefixes whose objects belong to media rows: job outputs (`jobs/…`) and uploads. Anything
/// else in the bucket (exports, thumbnails under their own prefix…) is left alone.
pub const SWEPT_PREFIXES: &[&str] = &["jobs/", "uploads/"];

/// What the maintenance loop sweeps, and how old an orphan must be.
#[derive(Debug, Clone)]
pub struct OrphanSweep {
    /// The media store.
    pub store: SharedStore,
    /// Objects younger than this are never deleted (their row may not be committed yet).
    pub grace: Duration,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects listed.
    pub scanned: u64,
    /// Orphans deleted.
    pub deleted: u64,
}

/// Deletes unreferenced objects older than `grace` (as of `now`) under [`SWEPT_PREFIXES`].
pub async fn sweep_orphans(
    db: &Db,
    store: &dyn ObjectStore,
    grace: Duration,
    now: SystemTime,
) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    for prefix in SWEPT_PREFIXES {
        let mut after: Option<String> = None;
        loop {
            let page = store.list(prefix, after.as_deref(), media::REFERENCED_KEYS_BATCH).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            report.scanned += page.len() as u64;
            let old: Vec<String> = page
                .into_iter()
                .filter(|o| now.duration_since(o.last_modified).is_ok_and(|age| age > grace))
                .map(|o| o.key)
                .collect();
            let referenced: HashSet<String> = media::referenced_keys(db, &old).await?;
            for key in old.iter().filter(|k| !referenced.contains(*k)) {
                match store.delete(key).await {
                    Ok(()) => {
                        report.deleted += 1;
                        metrics::counter!("seidra_storage_orphans_deleted_total").increment(1);
                        tracing::info!(key, "deleted an orphaned object");
                    }
                    Err(err) => tracing::warn!(%err, key, "could not delete an orphaned object"),
                }
            }
        }
    }
    Ok(report)
}
