//! The queue on the jobs table, on SQLite and PostgreSQL: claims, races, priority and
//! round-robin order, quotas, idempotency, cancel, heartbeats, retries with back-off and
//! lease expiry.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use chrono::{Duration, Utc};
use seidra_core::Role;
use seidra_core::job::{JobError, JobEvent, JobStatus, JobType, PriorityClass};
use seidra_store::accounts::{self, NewUser};
use seidra_store::jobs::{
    self, CancelOutcome, Heartbeat, Idempotency, JobFilter, NewJob, NewMedia, SubmitError, SubmitEvents, SubmitLimits,
    Submitted,
};
use seidra_store::{Backend, Db, media, notifications, webhooks, workers};
use seidra_testkit::{TestDb, dual_test};
use uuid::Uuid;

const LIMITS: SubmitLimits = SubmitLimits { max_queued: 1000 };
const LEASE: Duration = Duration::seconds(30);

async fn owner(db: &Db, name: &str) -> Uuid {
    let new = NewUser { username: name.into(), password_hash: "x".into(), role: Role::User };
    accounts::create_user(db, &new).await.unwrap().id
}

fn new_job(prompt: &str, priority: PriorityClass) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        job_type: JobType::Image,
        priority,
        engine: "procedural".into(),
        model: "procedural-v1".into(),
        persona_id: None,
        persona_version: None,
        request: serde_json::json!({ "prompt": prompt }),
        prompt: prompt.into(),
        negative_prompt: String::new(),
        max_attempts: 3,
        retry_of: None,
        batch_id: None,
        policy: None,
    }
}

async fn submit_one(db: &Db, owner_id: Uuid, prompt: &str, priority: PriorityClass) -> jobs::Job {
    match jobs::submit(db, owner_id, &[new_job(prompt, priority)], LIMITS, None).await.unwrap() {
        Submitted::Created(mut v) => v.remove(0),
        Submitted::Replayed(_) => panic!("unexpected replay"),
    }
}

fn engines() -> Vec<String> {
    vec!["procedural".to_owned()]
}

async fn claim(db: &Db, worker: Uuid) -> Option<jobs::Job> {
    jobs::claim(db, worker, &engines(), LEASE, 100).await.unwrap()
}

async fn claim_and_complete_cycle(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = owner(db, "alice").await;
    let job = submit_one(db, alice, "a fox", PriorityClass::Interactive).await;
    assert_eq!((job.status, job.attempt, job.progress), (JobStatus::Queued, 0, 0.0));

    let worker = Uuid::new_v4();
    assert!(jobs::claim(db, worker, &["other-engine".to_owned()], LEASE, 100).await?.is_none(), "routing by engine");
    let claimed = claim(db, worker).await.expect("claimable");
    assert_eq!((claimed.id, claimed.status, claimed.attempt), (job.id, JobStatus::Running, 1));
    assert_eq!(claimed.lease_owner, Some(worker));
    assert!(claim(db, Uuid::new_v4()).await.is_none(), "nothing else to claim");

    let progress = jobs::ProgressUpdate { progress: 0.5, stage: "step 15/30".into(), eta_secs: Some(3) };
    assert_eq!(jobs::heartbeat(db, job.id, worker, LEASE, Some(&progress)).await?, Heartbeat::Continue);
    assert_eq!(jobs::heartbeat(db, job.id, Uuid::new_v4(), LEASE, None).await?, Heartbeat::LeaseLost);
    let running = jobs::get(db, job.id).await?;
    assert_eq!((running.progress, running.stage.as_deref()), (0.5, Some("step 15/30")));

    let outputs = vec![NewMedia {
        id: Uuid::new_v4(),
        position: 0,
        storage_key: format!("jobs/{}/0.png", job.id),
        mime: "image/png".into(),
        bytes: 10,
        width: Some(64),
        height: Some(64),
        sha256: "ab".repeat(32),
        seed: Some(7),
        duration_ms: None,
        engine: None,
    }];
    // Another worker cannot complete it.
    assert!(jobs::complete(db, &running, Uuid::new_v4(), &outputs).await?.is_none());
    let done = jobs::complete(db, &running, worker, &outputs).await?.expect("completed");
    assert_eq!((done.status, done.progress), (JobStatus::Succeeded, 1.0));
    assert!(done.finished_at.is_some() && done.run_ms.is_some() && done.wait_ms.is_some());
    let items = media::list_for_job(db, job.id).await?;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].seed, Some(7));
    // Completing twice is refused by the state machine guard.
    assert!(jobs::complete(db, &running, worker, &outputs).await?.is_none());
    Ok(())
}

async fn two_workers_race_for_one_job(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let alice = owner(&t.db, "alice").await;
    for i in 0..20 {
        submit_one(&t.db, alice, &format!("job {i}"), PriorityClass::Interactive).await;
    }
    // Many claimers on separate pools (separate connections) race; every job is claimed once.
    let mut handles = Vec::new();
    for _ in 0..4 {
        let db = Db::connect(&t.url, &Default::default()).await?;
        handles.push(tokio::spawn(async move {
            let worker = Uuid::new_v4();
            let mut mine = Vec::new();
            while let Some(job) = jobs::claim(&db, worker, &["procedural".to_owned()], LEASE, 100).await.unwrap() {
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await?);
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (20, 20), "each job claimed exactly once");
    Ok(())
}

async fn priority_then_round_robin(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let (alice, bob, carol) = (owner(db, "alice").await, owner(db, "bob").await, owner(db, "carol").await);
    // Alice floods the batch class, then Bob and Carol submit; an interactive job arrives last.
    for i in 0..4 {
        submit_one(db, alice, &format!("a{i}"), PriorityClass::Batch).await;
    }
    for i in 0..2 {
        submit_one(db, bob, &format!("b{i}"), PriorityClass::Batch).await;
    }
    submit_one(db, carol, "c0", PriorityClass::Batch).await;
    submit_one(db, carol, "urgent", PriorityClass::Interactive).await;

    let worker = Uuid::new_v4();
    let mut order = Vec::new();
    while let Some(job) = claim(db, worker).await {
        order.push(job.prompt.clone());
    }
    assert_eq!(order, ["urgent", "a0", "b0", "c0", "a1", "b1", "a2", "a3"]);
    Ok(())
}

async fn running_limit_per_owner(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let (alice, bob) = (owner(db, "alice").await, owner(db, "bob").await);
    for i in 0..3 {
        submit_one(db, alice, &format!("a{i}"), PriorityClass::Interactive).await;
    }
    submit_one(db, bob, "b0", PriorityClass::Interactive).await;
    let w = Uuid::new_v4();
    let first = jobs::claim(db, w, &engines(), LEASE, 1).await?.expect("a0");
    let second = jobs::claim(db, w, &engines(), LEASE, 1).await?.expect("b0");
    assert_eq!((first.prompt.as_str(), second.prompt.as_str()), ("a0", "b0"));
    assert!(jobs::claim(db, w, &engines(), LEASE, 1).await?.is_none(), "alice is at her running limit");
    Ok(())
}

/// One statement takes several jobs in queue order without pushing an owner over the limit,
/// and an owner at the limit filling the whole candidate window cannot starve the others.
async fn batch_claim_respects_order_and_limits(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let (alice, bob, carol) = (owner(db, "alice").await, owner(db, "bob").await, owner(db, "carol").await);
    for i in 0..6 {
        submit_one(db, alice, &format!("a{i}"), PriorityClass::Interactive).await;
    }
    submit_one(db, bob, "b0", PriorityClass::Interactive).await;
    submit_one(db, bob, "b1", PriorityClass::Batch).await;
    let w = Uuid::new_v4();
    let got = jobs::claim_batch(db, w, &engines(), LEASE, 2, 8).await?;
    let prompts: Vec<&str> = got.iter().map(|j| j.prompt.as_str()).collect();
    // Round-robin put b0 right behind a0; alice gets 2 (her limit); the batch class comes last.
    assert_eq!(prompts, ["a0", "b0", "a1", "b1"]);
    assert!(got.iter().all(|j| j.status == JobStatus::Running && j.lease_owner == Some(w) && j.attempt == 1));
    assert!(jobs::claim_batch(db, w, &engines(), LEASE, 2, 8).await?.is_empty(), "alice is at her limit");

    // 60 queued jobs of a capped owner ahead of carol's fill the whole candidate window.
    let dave = owner(db, "dave").await;
    for i in 0..60 {
        submit_one(db, dave, &format!("d{i}"), PriorityClass::Interactive).await;
    }
    submit_one(db, carol, "c0", PriorityClass::Batch).await;
    let dave_first = jobs::claim_batch(db, w, &engines(), LEASE, 1, 1).await?;
    assert_eq!(dave_first.iter().map(|j| j.prompt.as_str()).collect::<Vec<_>>(), ["d0"]);
    let next = jobs::claim_batch(db, w, &engines(), LEASE, 1, 1).await?;
    assert_eq!(next.iter().map(|j| j.prompt.as_str()).collect::<Vec<_>>(), ["c0"], "carol is not starved");
    Ok(())
}

async fn quota_and_idempotency(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = owner(db, "alice").await;
    let limits = SubmitLimits { max_queued: 2 };
    let batch =
        [new_job("x", PriorityClass::Batch), new_job("y", PriorityClass::Batch), new_job("z", PriorityClass::Batch)];
    let err = jobs::submit(db, alice, &batch, limits, None).await.err();
    assert!(matches!(err, Some(SubmitError::QuotaExceeded { queued: 0, max: 2 })), "{err:?}");
    assert_eq!(jobs::list(db, &JobFilter::default(), 10, 0).await?.1, 0, "nothing half-created");

    let idem = Idempotency { key: "k1".into(), request_hash: "h1".into() };
    let first = jobs::submit(db, alice, &batch[..2], limits, Some(&idem)).await?;
    let Submitted::Created(created) = first else { panic!("created") };
    let again = jobs::submit(db, alice, &[new_job("other", PriorityClass::Batch)], limits, Some(&idem)).await?;
    assert_eq!(again, Submitted::Replayed(created.clone()), "same key + same body → same jobs (even at quota)");
    let reused = Idempotency { key: "k1".into(), request_hash: "h2".into() };
    assert!(matches!(jobs::submit(db, alice, &batch[..1], limits, Some(&reused)).await, Err(SubmitError::KeyReused)));
    let err = jobs::submit(db, alice, &batch[2..], limits, None).await.err();
    assert!(matches!(err, Some(SubmitError::QuotaExceeded { queued: 2, max: 2 })));

    // Concurrent submits with one new key create the jobs once.
    let bob = owner(db, "bob").await;
    let key = Idempotency { key: "race".into(), request_hash: "h".into() };
    let mut handles = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        let key = key.clone();
        let job = new_job("raced", PriorityClass::Interactive);
        handles.push(tokio::spawn(async move { jobs::submit(&db, bob, &[job], LIMITS, Some(&key)).await }));
    }
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        match h.await?? {
            Submitted::Created(v) | Submitted::Replayed(v) => ids.extend(v.into_iter().map(|j| j.id)),
        }
    }
    assert_eq!(ids.len(), 1);
    let filter = JobFilter { owner_id: Some(bob), ..JobFilter::default() };
    assert_eq!(jobs::list(db, &filter, 10, 0).await?.1, 1);
    Ok(())
}

async fn cancel_queued_and_running(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = owner(db, "alice").await;
    let queued = submit_one(db, alice, "q", PriorityClass::Interactive).await;
    let CancelOutcome::Cancelled(c) = jobs::request_cancel(db, queued.id).await? else { panic!("cancelled at once") };
    assert!(c.status == JobStatus::Cancelled && c.finished_at.is_some());
    assert!(matches!(jobs::request_cancel(db, queued.id).await?, CancelOutcome::AlreadyFinished(_)));

    let running = submit_one(db, alice, "r", PriorityClass::Interactive).await;
    let w = Uuid::new_v4();
    let claimed = claim(db, w).await.expect("claimed");
    assert_eq!(claimed.id, running.id);
    let CancelOutcome::Requested(r) = jobs::request_cancel(db, running.id).await? else { panic!("requested") };
    assert_eq!((r.status, r.cancel_requested), (JobStatus::Running, true));
    assert_eq!(jobs::heartbeat(db, running.id, w, LEASE, None).await?, Heartbeat::CancelRequested);
    // Outputs of a cancelled job are never recorded.
    assert!(jobs::complete(db, &claimed, w, &[]).await?.is_none());
    let cancelled = jobs::finish_attempt(db, &claimed, w, JobEvent::Cancel, None).await?.expect("ack");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(media::list_for_job(db, running.id).await?.is_empty());
    Ok(())
}

async fn retry_backoff_and_lease_expiry(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = owner(db, "alice").await;
    let job = submit_one(db, alice, "flaky", PriorityClass::Interactive).await;
    let w = Uuid::new_v4();
    let err = JobError { code: "engine_error".into(), message: "boom".into(), retryable: true };

    // Attempt 1 fails (retryable) → retrying with a 2 s back-off, not claimable before.
    let claimed = claim(db, w).await.expect("claim 1");
    let retrying =
        jobs::finish_attempt(db, &claimed, w, JobEvent::Fail { retryable: true }, Some(&err)).await?.expect("retrying");
    assert_eq!(retrying.status, JobStatus::Retrying);
    let delay = (retrying.run_after - retrying.updated_at).num_milliseconds();
    assert!((1900..=2100).contains(&delay), "first back-off ≈ 2 s, got {delay} ms");
    assert!(claim(db, w).await.is_none(), "not before its back-off");

    // Pretend time passed: attempt 2 is claimed, then its worker dies (lease expires).
    force_run_after_past(db, job.id).await?;
    let claimed = claim(db, w).await.expect("claim 2");
    assert_eq!(claimed.attempt, 2);
    let expired = jobs::reclaim_expired(db, Utc::now() + Duration::seconds(31)).await?;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].status, JobStatus::Retrying);
    assert_eq!(expired[0].error.as_ref().map(|e| e.code.as_str()), Some("lease_expired"));
    assert_eq!(jobs::heartbeat(db, job.id, w, LEASE, None).await?, Heartbeat::LeaseLost, "the old worker lost it");

    // Attempt 3 is the last: its expiry fails the job for good with a clear error.
    force_run_after_past(db, job.id).await?;
    let claimed = claim(db, Uuid::new_v4()).await.expect("claim 3");
    assert_eq!(claimed.attempt, 3);
    let expired = jobs::reclaim_expired(db, Utc::now() + Duration::seconds(31)).await?;
    assert_eq!(expired[0].status, JobStatus::Failed);
    assert_eq!(expired[0].error.as_ref().map(|e| e.code.as_str()), Some("max_attempts_exceeded"));
    assert!(jobs::reclaim_expired(db, Utc::now() + Duration::seconds(31)).await?.is_empty());
    // A fresh lease is not reclaimed.
    let other = submit_one(db, alice, "healthy", PriorityClass::Interactive).await;
    claim(db, w).await.expect("claim healthy");
    assert!(jobs::reclaim_expired(db, Utc::now()).await?.is_empty());
    // Release gives the attempt back.
    let running = jobs::get(db, other.id).await?;
    let released = jobs::finish_attempt(db, &running, w, JobEvent::Release, None).await?.expect("released");
    assert_eq!((released.status, released.attempt), (JobStatus::Queued, 0));
    Ok(())
}

async fn force_run_after_past(db: &Db, id: Uuid) -> anyhow::Result<()> {
    let past = Utc::now() - Duration::seconds(1);
    match db {
        Db::Postgres(p) => sqlx::query("UPDATE jobs SET run_after = $1 WHERE id = $2")
            .bind(past)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ())?,
        Db::Sqlite(p) => sqlx::query("UPDATE jobs SET run_after = $1 WHERE id = $2")
            .bind(past)
            .bind(id)
            .execute(&p.write)
            .await
            .map(|_| ())?,
    }
    Ok(())
}

async fn listing_stats_and_depth(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let (alice, bob) = (owner(db, "alice").await, owner(db, "bob").await);
    for p in ["Red Fox", "blue whale", "red panda"] {
        submit_one(db, alice, p, PriorityClass::Interactive).await;
    }
    submit_one(db, bob, "red car", PriorityClass::Batch).await;
    let mine = JobFilter { owner_id: Some(alice), ..JobFilter::default() };
    let (page, total) = jobs::list(db, &mine, 2, 0).await?;
    assert_eq!((page.len(), total), (2, 3));
    assert_eq!(page[0].prompt, "red panda", "newest first");
    let search = JobFilter { owner_id: Some(alice), search: Some("RED".into()), ..JobFilter::default() };
    assert_eq!(jobs::list(db, &search, 10, 0).await?.1, 2);
    let everyone = JobFilter { search: Some("red".into()), oldest_first: true, ..JobFilter::default() };
    let (all, n) = jobs::list(db, &everyone, 10, 0).await?;
    assert_eq!((n, all[0].prompt.as_str()), (3, "Red Fox"));
    let tricky = JobFilter { search: Some("%".into()), owner_id: Some(bob), ..JobFilter::default() };
    assert_eq!(jobs::list(db, &tricky, 10, 0).await?.1, 1, "wildcards in user text are not special");

    let depth = jobs::queue_depth(db).await?;
    assert!(depth.by_class.contains(&(PriorityClass::Interactive, 3)));
    assert!(depth.by_class.contains(&(PriorityClass::Batch, 1)));
    assert!(depth.oldest_queued_at.is_some());
    let w = Uuid::new_v4();
    let job = claim(db, w).await.expect("claim");
    jobs::complete(db, &job, w, &[]).await?;
    let stats = jobs::stats(db, Some(alice)).await?;
    assert!(stats.by_status.contains(&(JobStatus::Succeeded, 1)));
    assert!(stats.by_status.contains(&(JobStatus::Queued, 2)));
    assert!(stats.avg_run_ms.is_some() && stats.avg_wait_ms.is_some());
    // Everyone's (admins): the one finished job, and all four jobs counted by status.
    let all = jobs::stats(db, None).await?;
    assert_eq!(all.by_status.iter().map(|(_, n)| n).sum::<i64>(), 4, "{all:?}");
    assert!(all.by_status.contains(&(JobStatus::Succeeded, 1)) && all.avg_run_ms.is_some());
    assert_eq!(jobs::active_for_owner(db, alice).await?.len(), 2);
    let status = JobFilter { owner_id: Some(alice), status: Some(JobStatus::Queued), ..JobFilter::default() };
    assert_eq!(jobs::list(db, &status, 10, 0).await?.1, 2, "a filtered total counts matches");
    assert_eq!(jobs::list(db, &JobFilter::default(), 10, 0).await?.1, 4, "everyone's total");
    assert_eq!(jobs::prune_finished(db, Utc::now() + Duration::seconds(1)).await?, 1);
    // Unfiltered totals come from the per-owner counters the triggers keep.
    assert_eq!(jobs::list(db, &mine, 10, 0).await?.1, 2, "pruning lowers the owner's total");
    assert_eq!(jobs::list(db, &JobFilter::default(), 10, 0).await?.1, 3);
    let nobody = JobFilter { owner_id: Some(Uuid::new_v4()), ..JobFilter::default() };
    assert_eq!(jobs::list(db, &nobody, 10, 0).await?, (Vec::new(), 0));
    // Later pages, and pages past the end: the total is still there (read on its own when the
    // page has no row to carry it), plain or filtered.
    let (second, total) = jobs::list(db, &mine, 1, 1).await?;
    assert_eq!((second.len(), total), (1, 2));
    assert_eq!(second[0].prompt, "blue whale", "the second newest of alice's remaining jobs");
    assert_eq!(jobs::list(db, &mine, 10, 5).await?, (Vec::new(), 2));
    assert_eq!(jobs::list(db, &status, 10, 5).await?, (Vec::new(), 2));
    assert_eq!(jobs::list(db, &JobFilter::default(), 10, 50).await?, (Vec::new(), 3));
    Ok(())
}

async fn worker_registry_and_leader(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let id = Uuid::new_v4();
    let w = workers::NewWorker {
        id,
        name: "host:1".into(),
        host: "host".into(),
        version: "0.1.0".into(),
        engines: vec!["procedural".into()],
        models: serde_json::json!({ "procedural": ["procedural-v1"] }),
        concurrency: 2,
    };
    workers::register(db, &w).await?;
    let job = Uuid::new_v4();
    workers::heartbeat(db, id, "active", &[job]).await?;
    let live = workers::list_live(db).await?;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].current_jobs.0, vec![job]);
    assert_eq!(workers::reap(db, Utc::now() - Duration::seconds(60), Utc::now() - Duration::hours(1)).await?, 0);
    assert_eq!(workers::reap(db, Utc::now() + Duration::seconds(1), Utc::now() - Duration::hours(1)).await?, 1);
    assert!(workers::list_live(db).await?.is_empty());
    workers::register(db, &w).await?;
    workers::deregister(db, id).await?;
    assert!(workers::list_live(db).await?.is_empty());

    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(workers::try_lead(db, "maintenance", a, Duration::seconds(30)).await?);
    assert!(!workers::try_lead(db, "maintenance", b, Duration::seconds(30)).await?, "one leader at a time");
    assert!(workers::try_lead(db, "maintenance", a, Duration::seconds(30)).await?, "renewal");
    workers::resign(db, "maintenance", a).await?;
    assert!(workers::try_lead(db, "maintenance", b, Duration::seconds(30)).await?);
    assert!(workers::try_lead(db, "other", a, Duration::milliseconds(-1)).await?);
    assert!(workers::try_lead(db, "other", b, Duration::seconds(30)).await?, "an expired lease is taken over");
    Ok(())
}

/// The events of a submit leave inside its transaction: handed over before commit with the
/// created jobs, and never for a refused submit; on PostgreSQL as `NOTIFY`, delivered at commit.
async fn submit_events_leave_with_the_transaction(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = owner(db, "alice").await;
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    let record = |jobs: &[jobs::Job]| seen.lock().unwrap().extend(jobs.iter().map(|j| j.prompt.clone()));
    let local = SubmitEvents::Local(&record);
    let batch = [new_job("one", PriorityClass::Batch), new_job("two", PriorityClass::Batch)];
    jobs::submit_with_events(db, alice, &batch, LIMITS, None, Some(&local)).await?;
    assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
    let tight = SubmitLimits { max_queued: 2 };
    let three = [new_job("three", PriorityClass::Batch)];
    let refused = jobs::submit_with_events(db, alice, &three, tight, None, Some(&local)).await;
    assert!(matches!(refused, Err(SubmitError::QuotaExceeded { .. })));
    assert_eq!(seen.lock().unwrap().len(), 2, "no event for a refused submit");

    if let Db::Postgres(pool) = db {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen("seidra_test_events").await?;
        let payloads = |jobs: &[jobs::Job]| jobs.iter().map(|j| format!("queued {}", j.prompt)).collect::<Vec<_>>();
        let notify = SubmitEvents::Notify { channel: "seidra_test_events", payloads: &payloads };
        let pair = [new_job("n1", PriorityClass::Interactive), new_job("n2", PriorityClass::Interactive)];
        jobs::submit_with_events(db, alice, &pair, LIMITS, None, Some(&notify)).await?;
        let n3 = [new_job("n3", PriorityClass::Batch)];
        assert!(jobs::submit_with_events(db, alice, &n3, tight, None, Some(&notify)).await.is_err());
        let mut got = Vec::new();
        while let Ok(Ok(n)) = tokio::time::timeout(std::time::Duration::from_millis(500), listener.recv()).await {
            got.push(n.payload().to_owned());
        }
        assert_eq!(got, ["queued n1", "queued n2"], "delivered at commit, in order; nothing from the rollback");
    }
    Ok(())
}

/// Several completions in one transaction: each job with its media, notification and webhook
/// outbox rows; a job whose cancel arrived meanwhile writes nothing.
async fn complete_many_writes_follow_ups_with_the_jobs(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let (alice, bob) = (owner(db, "alice").await, owner(db, "bob").await);
    let hook = webhooks::create(db, alice, "https://example.com/hook", "secret", &["job.succeeded".to_owned()]).await?;
    for (who, prompt) in [(alice, "a1"), (alice, "a2"), (bob, "b1")] {
        submit_one(db, who, prompt, PriorityClass::Interactive).await;
    }
    let worker = Uuid::new_v4();
    let claimed = jobs::claim_batch(db, worker, &engines(), LEASE, 100, 3).await?;
    assert_eq!(claimed.len(), 3);
    let cancelled = claimed.iter().find(|j| j.prompt == "a2").unwrap();
    assert!(matches!(jobs::request_cancel(db, cancelled.id).await?, CancelOutcome::Requested(_)));

    let outputs: Vec<Vec<NewMedia>> = claimed
        .iter()
        .map(|j| {
            vec![NewMedia {
                id: Uuid::now_v7(),
                position: 0,
                storage_key: format!("jobs/{}/0.png", j.id),
                mime: "image/png".into(),
                bytes: 10,
                width: Some(8),
                height: Some(8),
                sha256: "cd".repeat(32),
                seed: Some(1),
                duration_ms: None,
                engine: None,
            }]
        })
        .collect();
    let items: Vec<jobs::Completion<'_>> =
        claimed.iter().zip(&outputs).map(|(job, outputs)| jobs::Completion { job, outputs }).collect();
    let follow_up = |job: &jobs::Job| jobs::FollowUp {
        notification: Some(notifications::Draft {
            level: "success",
            category: "job",
            title: format!("done: {}", job.prompt),
            body: job.status.as_str().to_owned(),
            link: None,
        }),
        webhook: Some(webhooks::OutboxEvent { event: "job.succeeded", payload: format!("{{\"job\":\"{}\"}}", job.id) }),
    };
    let done = jobs::complete_many(db, worker, &items, &follow_up).await?;

    let mut outcome: Vec<(String, Option<JobStatus>, bool)> = claimed
        .iter()
        .zip(&done)
        .map(|(j, c)| (j.prompt.clone(), c.job.as_ref().map(|j| j.status), c.notification.is_some()))
        .collect();
    outcome.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        outcome,
        [
            ("a1".to_owned(), Some(JobStatus::Succeeded), true),
            ("a2".to_owned(), None, false),
            ("b1".to_owned(), Some(JobStatus::Succeeded), true)
        ]
    );
    for (job, c) in claimed.iter().zip(&done) {
        let media_rows = media::list_for_job(db, job.id).await?.len();
        assert_eq!(media_rows, usize::from(c.job.is_some()), "media only for completed jobs ({})", job.prompt);
    }
    let titles = |page: notifications::NotificationPage| page.items.into_iter().map(|n| n.title).collect::<Vec<_>>();
    assert_eq!(titles(notifications::list(db, alice, false, 10, 0).await?), ["done: a1"]);
    assert_eq!(titles(notifications::list(db, bob, false, 10, 0).await?), ["done: b1"]);
    // The stored notification is the one returned (what the worker pushes live).
    let stored = notifications::list(db, bob, false, 10, 0).await?.items.remove(0);
    let bobs = claimed.iter().position(|j| j.owner_id == bob).unwrap();
    assert_eq!(Some(&stored), done[bobs].notification.as_ref());
    let (deliveries, _, total) = webhooks::list_deliveries(db, alice, hook.id, 10, 0).await?;
    assert_eq!(total, 1, "one delivery: alice's completed job, none for the cancelled one");
    let a1 = claimed.iter().find(|j| j.prompt == "a1").unwrap();
    assert_eq!(deliveries[0].payload, format!("{{\"job\":\"{}\"}}", a1.id));
    // The media row carries the job's provenance (written by one array statement on PostgreSQL).
    let m = media::list_for_job(db, a1.id).await?.remove(0);
    assert_eq!(
        (
            m.owner_id,
            m.position,
            m.kind.as_str(),
            m.source.as_str(),
            m.prompt.as_str(),
            m.engine.as_deref(),
            m.model.as_deref()
        ),
        (alice, 0, "image", "generated", "a1", Some(a1.engine.as_str()), Some(a1.model.as_str()))
    );
    assert_eq!((m.width, m.height, m.seed, m.bytes, m.duration_ms), (Some(8), Some(8), Some(1), 10, None));
    assert_eq!(m.parameters.map(|p| p.0), Some(a1.request.clone()));
    assert_eq!(jobs::get(db, cancelled.id).await?.status, JobStatus::Running, "the cancel is the worker's to settle");
    Ok(())
}

dual_test!(
    submit_events_leave_with_the_transaction,
    claim_and_complete_cycle,
    two_workers_race_for_one_job,
    priority_then_round_robin,
    running_limit_per_owner,
    batch_claim_respects_order_and_limits,
    quota_and_idempotency,
    cancel_queued_and_running,
    retry_backoff_and_lease_expiry,
    listing_stats_and_depth,
    worker_registry_and_leader,
    complete_many_writes_follow_ups_with_the_jobs,
);
