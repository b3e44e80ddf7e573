//! The orphan sweeper and `media::referenced_keys`, on SQLite and PostgreSQL, against the local
//! backend and a real S3 server.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Duration as ChronoDuration;
use seidra_core::Role;
use seidra_core::job::{JobType, PriorityClass};
use seidra_storage::{LocalStore, SharedStore};
use seidra_store::accounts::{self, NewUser};
use seidra_store::jobs::{self, NewJob, NewMedia, SubmitLimits, Submitted};
use seidra_store::{Backend, Db, media};
use seidra_testkit::{TestDb, TestS3, dual_test};
use seidra_worker::sweeper::sweep_orphans;
use uuid::Uuid;

const GRACE: Duration = Duration::from_secs(3600);

/// A finished job whose one output row references `key`.
async fn media_row(db: &Db, key: &str) {
    let owner =
        accounts::create_user(db, &NewUser { username: "alice".into(), password_hash: "x".into(), role: Role::User })
            .await
            .unwrap()
            .id;
    let new = NewJob {
        id: Uuid::now_v7(),
        job_type: JobType::Image,
        priority: PriorityClass::Interactive,
        engine: "procedural".into(),
        model: "procedural-v1".into(),
        persona_id: None,
        persona_version: None,
        request: serde_json::json!({ "prompt": "a fox" }),
        prompt: "a fox".into(),
        negative_prompt: String::new(),
        max_attempts: 3,
        retry_of: None,
        batch_id: None,
        policy: None,
    };
    let Submitted::Created(_) = jobs::submit(db, owner, &[new], SubmitLimits { max_queued: 10 }, None).await.unwrap()
    else {
        panic!("replayed")
    };
    let worker = Uuid::new_v4();
    let job =
        jobs::claim(db, worker, &["procedural".to_owned()], ChronoDuration::seconds(30), 10).await.unwrap().unwrap();
    let output = NewMedia {
        id: Uuid::new_v4(),
        position: 0,
        storage_key: key.to_owned(),
        mime: "image/png".into(),
        bytes: 3,
        width: Some(1),
        height: Some(1),
        sha256: "ab".repeat(32),
        seed: Some(1),
        duration_ms: None,
        engine: None,
    };
    jobs::complete(db, &job, worker, &[output]).await.unwrap().expect("completed");
}

/// Referenced, orphaned and foreign objects; only old orphans under the media prefixes go.
async fn sweep_scenario(db: &Db, store: SharedStore) {
    let referenced = "jobs/u/j/1-0.png";
    media_row(db, referenced).await;
    for key in [referenced, "jobs/u/j/1-1.png", "jobs/u/k/1-0.png", "uploads/u/x.png", "exports/u/keep.zip"] {
        store.put(key, b"abc".to_vec(), "application/octet-stream").await.unwrap();
    }

    // Everything is fresh: in-flight writes are safe.
    let report = sweep_orphans(db, store.as_ref(), GRACE, SystemTime::now()).await.unwrap();
    assert_eq!((report.scanned, report.deleted), (4, 0));

    // Two hours later the unreferenced ones under jobs/ and uploads/ are orphans.
    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    let report = sweep_orphans(db, store.as_ref(), GRACE, later).await.unwrap();
    assert_eq!((report.scanned, report.deleted), (4, 3));
    assert!(store.exists(referenced).await.unwrap());
    assert!(store.exists("exports/u/keep.zip").await.unwrap(), "other prefixes are not swept");
    for gone in ["jobs/u/j/1-1.png", "jobs/u/k/1-0.png", "uploads/u/x.png"] {
        assert!(!store.exists(gone).await.unwrap(), "{gone}");
    }
    let report = sweep_orphans(db, store.as_ref(), GRACE, later).await.unwrap();
    assert_eq!((report.scanned, report.deleted), (1, 0));
}

async fn referenced_keys_and_local_sweep(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(LocalStore::new(dir.path())?);
    sweep_scenario(&t.db, store).await;

    let keys = vec!["jobs/u/j/1-0.png".to_owned(), "jobs/u/j/1-1.png".to_owned(), "nope".to_owned()];
    let found = media::referenced_keys(&t.db, &keys).await?;
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["jobs/u/j/1-0.png"]);
    assert!(media::referenced_keys(&t.db, &[]).await?.is_empty());
    let many: Vec<String> = (0..media::REFERENCED_KEYS_BATCH).map(|i| format!("k/{i}")).collect();
    assert!(media::referenced_keys(&t.db, &many).await?.is_empty(), "a full batch binds fine");
    let too_many: Vec<String> = (0..=media::REFERENCED_KEYS_BATCH).map(|i| format!("k/{i}")).collect();
    assert!(media::referenced_keys(&t.db, &too_many).await.is_err());
    Ok(())
}

dual_test!(referenced_keys_and_local_sweep);

#[tokio::test]
async fn s3_sweep() {
    let t = TestDb::migrated(Backend::Sqlite).await.unwrap();
    let s3 = TestS3::new().await.unwrap();
    sweep_scenario(&t.db, Arc::new(s3.store.clone())).await;
    s3.cleanup().await.unwrap();
}
