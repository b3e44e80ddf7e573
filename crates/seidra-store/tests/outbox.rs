//! Notifications and the webhook delivery outbox at the store level: ownership, the event
//! match, claims that never hand one row to two callers, retries and lapsed locks.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use chrono::{Duration, Utc};
use seidra_core::Role;
use seidra_store::accounts::{self, NewUser};
use seidra_store::notifications::{self, NewNotification};
use seidra_store::webhooks::{self, AttemptResult};
use seidra_store::{Backend, StoreError};
use seidra_testkit::{TestDb, dual_test};

async fn notifications_are_per_user(backend: Backend) -> anyhow::Result<()> {
    let test = TestDb::migrated(backend).await?;
    let db = &test.db;
    let new = |name: &str| NewUser { username: name.into(), password_hash: "$argon2id$fake".into(), role: Role::User };
    let a = accounts::create_user(db, &new("ann")).await?;
    let b = accounts::create_user(db, &new("ben")).await?;
    let note = NewNotification { level: "info", category: "job", title: "t", body: "b", link: None };
    let n1 = notifications::create(db, a.id, &note).await?;
    notifications::create(db, a.id, &note).await?;
    let page = notifications::list(db, a.id, false, 10, 0).await?;
    assert_eq!((page.total, page.unread, page.items.len()), (2, 2, 2));
    assert!(matches!(notifications::mark_read(db, b.id, n1.id).await, Err(StoreError::NotFound)));
    assert!(matches!(notifications::delete(db, b.id, n1.id).await, Err(StoreError::NotFound)));
    assert!(notifications::mark_read(db, a.id, n1.id).await?.read_at.is_some());
    let unread = notifications::list(db, a.id, true, 10, 0).await?;
    assert_eq!((unread.total, unread.unread), (1, 1));
    assert_eq!(notifications::mark_all_read(db, a.id).await?, 1);
    assert!(!notifications::has_recent_unread(db, a.id, "job", Utc::now() - Duration::minutes(1)).await?);
    assert_eq!(notifications::create_for_all_active(db, &note).await?.len(), 2);
    assert_eq!(notifications::list(db, b.id, false, 10, 0).await?.total, 1);
    Ok(())
}

async fn outbox_claims_retries_and_locks(backend: Backend) -> anyhow::Result<()> {
    let test = TestDb::migrated(backend).await?;
    let db = &test.db;
    let owner = accounts::create_user(
        db,
        &NewUser { username: "olga".into(), password_hash: "$argon2id$fake".into(), role: Role::User },
    )
    .await?;
    let all = webhooks::create(db, owner.id, "http://a.example/", "s1", &["*".into()]).await?;
    let failed_only = webhooks::create(db, owner.id, "http://b.example/", "s2", &["job.failed".into()]).await?;
    let paused = webhooks::create(db, owner.id, "http://c.example/", "s3", &["*".into()]).await?;
    let change = webhooks::WebhookChange { active: Some(false), ..Default::default() };
    webhooks::update(db, owner.id, paused.id, &change).await?;

    // Subscriptions: `*` and exact names match; paused endpoints get nothing.
    assert_eq!(webhooks::enqueue(db, owner.id, "job.succeeded", "{}").await?, 1);
    assert_eq!(webhooks::enqueue(db, owner.id, "job.failed", "{}").await?, 2);
    assert_eq!(webhooks::enqueue(db, uuid::Uuid::new_v4(), "job.failed", "{}").await?, 0);

    // Concurrent claims never share a row.
    let lock = Utc::now() + Duration::seconds(30);
    let (x, y) = tokio::join!(webhooks::claim_due(db, 2, lock), webhooks::claim_due(db, 2, lock));
    let mut ids: Vec<i64> = x?.iter().chain(y?.iter()).map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each of the 3 rows claimed once");
    assert!(webhooks::claim_due(db, 10, lock).await?.is_empty(), "locked rows are not claimable");

    // A failed attempt with a retry time becomes due again, with the attempt counted.
    let (rows, _, _) = webhooks::list_deliveries(db, owner.id, all.id, 10, 0).await?;
    let retry = AttemptResult {
        status_code: Some(500),
        error: Some("HTTP 500".into()),
        duration_ms: 3,
        delivered: false,
        retry_at: Some(Utc::now() - Duration::seconds(1)),
    };
    let after = webhooks::record_attempt(db, &rows[0], &retry).await?;
    assert_eq!((after.status.as_str(), after.attempts), ("pending", 1));
    let again = webhooks::claim_due(db, 10, lock).await?;
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    let ok = AttemptResult { status_code: Some(204), error: None, duration_ms: 2, delivered: true, retry_at: None };
    let done = webhooks::record_attempt(db, &again[0], &ok).await?;
    assert_eq!(done.status, "delivered");
    assert!(done.delivered_at.is_some());
    let (_, attempts, total) = webhooks::list_deliveries(db, owner.id, all.id, 10, 0).await?;
    let codes: Vec<Option<i32>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!((total, codes), (2, vec![Some(500), Some(204)]));

    // A sender that died: its lock lapses and the row is claimed again (attempt counted).
    assert_eq!(webhooks::enqueue(db, owner.id, "job.succeeded", "{}").await?, 1);
    let first = webhooks::claim_due(db, 10, Utc::now() - Duration::seconds(1)).await?;
    assert_eq!(first.len(), 1, "only the new row: the others are still locked");
    let reclaimed = webhooks::claim_due(db, 10, lock).await?;
    assert_eq!((reclaimed.len(), reclaimed[0].id, reclaimed[0].attempts), (1, first[0].id, 2));
    let (failed_rows, _, _) = webhooks::list_deliveries(db, owner.id, failed_only.id, 10, 0).await?;
    assert_eq!(failed_rows[0].status, "delivering");

    // Ownership: other users see nothing.
    let other = uuid::Uuid::new_v4();
    assert!(matches!(webhooks::get_owned(db, other, all.id).await, Err(StoreError::NotFound)));
    assert!(matches!(webhooks::list_deliveries(db, other, all.id, 10, 0).await, Err(StoreError::NotFound)));
    assert!(matches!(webhooks::delete(db, other, all.id).await, Err(StoreError::NotFound)));
    webhooks::delete(db, owner.id, all.id).await?;
    assert_eq!(webhooks::list(db, owner.id).await?.len(), 2);
    Ok(())
}

dual_test!(notifications_are_per_user, outbox_claims_retries_and_locks);
