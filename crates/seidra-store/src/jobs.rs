//! Jobs and the queue on the jobs table.
//!
//! Every status change goes through [`seidra_core::job::next_status`]: the functions here read
//! the current status, ask the state machine for the next one, and write it with a guarded
//! `UPDATE … WHERE status = <current>` (plus the lease owner for worker-side changes), so a
//! transition the machine refuses, or one raced by another process, never reaches the table.
//! The SQL `status IN (…)` lists are checked against the state machine by unit tests.

use chrono::{DateTime, Duration, Utc};
use seidra_core::job::{JobError, JobEvent, JobStatus, JobType, PriorityClass, backoff_secs, next_status};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{BeginWrite, with_pool, with_write_pool};
use crate::sql::{Bind, Conditions, PageTotal, fetch_page};
use crate::{Db, RawJson, StoreError, StoreResult};

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Type.
    pub job_type: JobType,
    /// Status.
    pub status: JobStatus,
    /// Priority class.
    pub priority: PriorityClass,
    /// Fairness sequence (round-robin between owners).
    pub fair_seq: i64,
    /// Engine that runs it.
    pub engine: String,
    /// Model.
    pub model: String,
    /// Persona, when one was named.
    pub persona_id: Option<Uuid>,
    /// Persona version used.
    pub persona_version: Option<i32>,
    /// The full request as accepted (seed resolved).
    pub request: RawJson,
    /// Prompt after persona merge.
    pub prompt: String,
    /// Negative prompt after persona merge.
    pub negative_prompt: String,
    /// Why it failed (or last retryable failure).
    pub error: Option<JobError>,
    /// Claims so far.
    pub attempt: i32,
    /// Most claims allowed.
    pub max_attempts: i32,
    /// Worker holding the lease.
    pub lease_owner: Option<Uuid>,
    /// Lease expiry.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Not claimable before (back-off).
    pub run_after: DateTime<Utc>,
    /// Cancel asked while running.
    pub cancel_requested: bool,
    /// 0..=1.
    pub progress: f64,
    /// Stage message.
    pub stage: Option<String>,
    /// Estimated seconds left.
    pub eta_secs: Option<i64>,
    /// The job this one retries.
    pub retry_of: Option<Uuid>,
    /// Batch it belongs to.
    pub batch_id: Option<Uuid>,
    /// Queue wait of the last attempt, ms.
    pub wait_ms: Option<i64>,
    /// Run time of the last attempt, ms.
    pub run_ms: Option<i64>,
    /// Submitted.
    pub queued_at: DateTime<Utc>,
    /// First claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished (terminal).
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    owner_id: Uuid,
    job_type: String,
    status: String,
    priority: String,
    fair_seq: i64,
    engine: String,
    model: String,
    persona_id: Option<Uuid>,
    persona_version: Option<i32>,
    request: Json<RawJson>,
    prompt: String,
    negative_prompt: String,
    error: Option<Json<JobError>>,
    attempt: i32,
    max_attempts: i32,
    lease_owner: Option<Uuid>,
    lease_expires_at: Option<DateTime<Utc>>,
    run_after: DateTime<Utc>,
    cancel_requested: bool,
    progress: f64,
    stage: Option<String>,
    eta_secs: Option<i64>,
    retry_of: Option<Uuid>,
    batch_id: Option<Uuid>,
    wait_ms: Option<i64>,
    run_ms: Option<i64>,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> StoreResult<Job> {
        let bad = |what: &str, v: &str| StoreError::Other(format!("unknown job {what} `{v}`"));
        Ok(Job {
            id: r.id,
            owner_id: r.owner_id,
            job_type: JobType::parse(&r.job_type).ok_or_else(|| bad("type", &r.job_type))?,
            status: JobStatus::parse(&r.status).ok_or_else(|| bad("status", &r.status))?,
            priority: PriorityClass::parse(&r.priority).ok_or_else(|| bad("priority", &r.priority))?,
            fair_seq: r.fair_seq,
            engine: r.engine,
            model: r.model,
            persona_id: r.persona_id,
            persona_version: r.persona_version,
            request: r.request.0,
            prompt: r.prompt,
            negative_prompt: r.negative_prompt,
            error: r.error.map(|e| e.0),
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at,
            run_after: r.run_after,
            cancel_requested: r.cancel_requested,
            progress: r.progress,
            stage: r.stage,
            eta_secs: r.eta_secs,
            retry_of: r.retry_of,
            batch_id: r.batch_id,
            wait_ms: r.wait_ms,
            run_ms: r.run_ms,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
        })
    }
}

/// The selected columns, as a macro so queries stay `&'static str`.
macro_rules! columns {
    () => {
        "id, owner_id, job_type, status, priority, fair_seq, engine, model, persona_id, persona_version, request, \
         prompt, negative_prompt, error, attempt, max_attempts, lease_owner, lease_expires_at, run_after, \
         cancel_requested, progress, stage, eta_secs, retry_of, batch_id, wait_ms, run_ms, queued_at, started_at, \
         finished_at, updated_at"
    };
}

fn rows_to_jobs(rows: Vec<JobRow>) -> StoreResult<Vec<Job>> {
    rows.into_iter().map(Job::try_from).collect()
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Id (chosen by the caller so events can name it before commit).
    pub id: Uuid,
    /// Type.
    pub job_type: JobType,
    /// Priority class.
    pub priority: PriorityClass,
    /// Engine.
    pub engine: String,
    /// Model.
    pub model: String,
    /// Persona.
    pub persona_id: Option<Uuid>,
    /// Persona version.
    pub persona_version: Option<i32>,
    /// Accepted request (seed resolved).
    pub request: Value,
    /// Merged prompt.
    pub prompt: String,
    /// Merged negative prompt.
    pub negative_prompt: String,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Retried job.
    pub retry_of: Option<Uuid>,
    /// Batch.
    pub batch_id: Option<Uuid>,
    /// The content-policy decision that admitted it (`{"version", "outcome"}`), if one applied.
    pub policy: Option<Value>,
}

/// Limits checked atomically at submit.
#[derive(Debug, Clone, Copy)]
pub struct SubmitLimits {
    /// Most queued (or retrying) jobs per owner.
    pub max_queued: i64,
}

/// An `Idempotency-Key` and the hash of the request body it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The key.
    pub key: String,
    /// SHA-256 of the canonical request body.
    pub request_hash: String,
}

/// What a submit did.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// New jobs were queued.
    Created(Vec<Job>),
    /// The same key and body were submitted before: these are the jobs it created.
    Replayed(Vec<Job>),
}

/// Why a submit was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The owner already has too many queued jobs.
    #[error("queue quota exceeded: {queued} queued, at most {max}")]
    QuotaExceeded {
        /// Jobs queued now.
        queued: i64,
        /// The limit.
        max: i64,
    },
    /// The key was used before with a different body.
    #[error("idempotency key reused with a different request")]
    KeyReused,
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SubmitError {
    fn from(e: sqlx::Error) -> Self {
        SubmitError::Store(e.into())
    }
}

/// How the events about newly queued jobs leave the submit transaction, so that they are out
/// before any worker can claim the jobs (a `job.started` must never overtake `job.queued`).
pub enum SubmitEvents<'a> {
    /// PostgreSQL: `pg_notify(channel, payload)` for each payload, inside the transaction —
    /// delivered at commit, in commit order, and not at all if it rolls back.
    Notify {
        /// The `LISTEN` channel.
        channel: &'a str,
        /// Payloads for the created jobs.
        payloads: &'a (dyn Fn(&[Job]) -> Vec<String> + Sync),
    },
    /// An in-process hand-over, called just before commit (it must not block).
    Local(&'a (dyn Fn(&[Job]) + Sync)),
}

/// Queues jobs for `owner_id` in one transaction: checks the quota under the owner's fairness
/// row lock, assigns round-robin sequence numbers, records the idempotency key.
pub async fn submit(
    db: &Db,
    owner_id: Uuid,
    jobs: &[NewJob],
    limits: SubmitLimits,
    idempotency: Option<&Idempotency>,
) -> Result<Submitted, SubmitError> {
    submit_with_events(db, owner_id, jobs, limits, idempotency, None).await
}

/// [`submit`], sending the new jobs' events from inside the transaction (see [`SubmitEvents`]).
pub async fn submit_with_events(
    db: &Db,
    owner_id: Uuid,
    jobs: &[NewJob],
    limits: SubmitLimits,
    idempotency: Option<&Idempotency>,
    events: Option<&SubmitEvents<'_>>,
) -> Result<Submitted, SubmitError> {
    if let Some(idem) = idempotency
        && let Some(replay) = find_idempotent(db, owner_id, idem).await?
    {
        return Ok(replay);
    }
    match submit_tx(db, owner_id, jobs, limits, idempotency, events).await {
        // A concurrent request with the same key won the insert race: answer like a replay.
        Err(SubmitError::Store(StoreError::Conflict { .. })) if idempotency.is_some() => {
            let idem = idempotency.ok_or(SubmitError::KeyReused)?;
            find_idempotent(db, owner_id, idem).await?.ok_or(SubmitError::KeyReused)
        }
        other => other,
    }
}

async fn find_idempotent(db: &Db, owner_id: Uuid, idem: &Idempotency) -> Result<Option<Submitted>, SubmitError> {
    let row: Option<(String, Json<Vec<Uuid>>)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT request_hash, job_ids FROM idempotency_keys WHERE owner_id = $1 AND key = $2")
            .bind(owner_id)
            .bind(&idem.key)
            .fetch_optional(pool)
            .await?
    });
    let Some((hash, ids)) = row else { return Ok(None) };
    if hash != idem.request_hash {
        return Err(SubmitError::KeyReused);
    }
    let mut jobs = Vec::with_capacity(ids.0.len());
    for id in ids.0 {
        jobs.push(get(db, id).await?);
    }
    Ok(Some(Submitted::Replayed(jobs)))
}

/// The columns a new job row is written with (both databases, same order).
macro_rules! job_insert_columns {
    () => {
        "id, owner_id, job_type, status, priority, priority_rank, fair_seq, engine, model, persona_id, persona_version, \
         request, prompt, negative_prompt, attempt, max_attempts, run_after, cancel_requested, progress, retry_of, batch_id, \
         queued_at, updated_at, policy"
    };
}

/// Writes a submit's job rows inside its transaction, returning them in the order given.
/// `seqs` are the jobs' fairness sequence numbers.
trait InsertJobs {
    fn insert_jobs<'a>(
        &'a mut self,
        owner_id: Uuid,
        now: DateTime<Utc>,
        jobs: &'a [NewJob],
        seqs: &'a [i64],
    ) -> impl std::future::Future<Output = Result<Vec<JobRow>, sqlx::Error>> + Send + 'a;
}

impl InsertJobs for sqlx::SqliteConnection {
    /// One statement per job: in-process calls, cheap on SQLite.
    async fn insert_jobs<'a>(
        &'a mut self,
        owner_id: Uuid,
        now: DateTime<Utc>,
        jobs: &'a [NewJob],
        seqs: &'a [i64],
    ) -> Result<Vec<JobRow>, sqlx::Error> {
        let mut rows = Vec::with_capacity(jobs.len());
        for (job, seq) in jobs.iter().zip(seqs) {
            let row: JobRow = sqlx::query_as(concat!(
                "INSERT INTO jobs (",
                job_insert_columns!(),
                ") VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $15, FALSE, 0, $16, $17, $15, $15, $18) \
                 RETURNING ",
                columns!()
            ))
            .bind(job.id)
            .bind(owner_id)
            .bind(job.job_type.as_str())
            .bind(job.priority.as_str())
            .bind(job.priority.rank())
            .bind(seq)
            .bind(&job.engine)
            .bind(&job.model)
            .bind(job.persona_id)
            .bind(job.persona_version)
            .bind(Json(&job.request))
            .bind(&job.prompt)
            .bind(&job.negative_prompt)
            .bind(job.max_attempts)
            .bind(now)
            .bind(job.retry_of)
            .bind(job.batch_id)
            .bind(job.policy.as_ref().map(Json))
            .fetch_one(&mut *self)
            .await?;
            rows.push(row);
        }
        Ok(rows)
    }
}

impl InsertJobs for sqlx::PgConnection {
    /// One array statement for the whole submit: each `INSERT` statement also runs the
    /// per-owner counter trigger, so a batch of 8 was 8 trigger runs.
    async fn insert_jobs<'a>(
        &'a mut self,
        owner_id: Uuid,
        now: DateTime<Utc>,
        jobs: &'a [NewJob],
        seqs: &'a [i64],
    ) -> Result<Vec<JobRow>, sqlx::Error> {
        let col = |f: fn(&NewJob) -> &str| jobs.iter().map(f).collect::<Vec<_>>();
        let mut rows: Vec<JobRow> = sqlx::query_as(concat!(
            "INSERT INTO jobs (",
            job_insert_columns!(),
            ") SELECT id, $1, job_type, 'queued', priority, priority_rank, fair_seq, engine, model, persona_id, persona_version, \
             request, prompt, negative_prompt, 0, max_attempts, $2, FALSE, 0, retry_of, batch_id, $2, $2, policy \
             FROM unnest($3::uuid[], $4::text[], $5::text[], $6::int4[], $7::int8[], $8::text[], $9::text[], $10::uuid[], \
             $11::int4[], $12::jsonb[], $13::text[], $14::text[], $15::int4[], $16::uuid[], $17::uuid[], $18::jsonb[]) \
             AS j(id, job_type, priority, priority_rank, fair_seq, engine, model, persona_id, persona_version, request, prompt, \
             negative_prompt, max_attempts, retry_of, batch_id, policy) RETURNING ",
            columns!()
        ))
        .bind(owner_id)
        .bind(now)
        .bind(jobs.iter().map(|j| j.id).collect::<Vec<_>>())
        .bind(col(|j| j.job_type.as_str()))
        .bind(col(|j| j.priority.as_str()))
        .bind(jobs.iter().map(|j| j.priority.rank()).collect::<Vec<_>>())
        .bind(seqs)
        .bind(col(|j| &j.engine))
        .bind(col(|j| &j.model))
        .bind(jobs.iter().map(|j| j.persona_id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.persona_version).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| Json(&j.request)).collect::<Vec<_>>())
        .bind(col(|j| &j.prompt))
        .bind(col(|j| &j.negative_prompt))
        .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.retry_of).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.batch_id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.policy.as_ref().map(Json)).collect::<Vec<_>>())
        .fetch_all(&mut *self)
        .await?;
        // RETURNING's order is not promised: put the rows back in the submitted order.
        rows.sort_by_key(|r| jobs.iter().position(|j| j.id == r.id));
        Ok(rows)
    }
}

async fn submit_tx(
    db: &Db,
    owner_id: Uuid,
    jobs: &[NewJob],
    limits: SubmitLimits,
    idempotency: Option<&Idempotency>,
    events: Option<&SubmitEvents<'_>>,
) -> Result<Submitted, SubmitError> {
    let now = Utc::now();
    let new_count = i64::try_from(jobs.len()).unwrap_or(i64::MAX);
    let created: Vec<Job> = with_write_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        // Upsert-and-return takes the owner's row lock on PostgreSQL: concurrent submits of one
        // owner serialise here, so the quota count below cannot be raced. (SQLite: BEGIN IMMEDIATE.)
        let last_fair_seq: i64 = sqlx::query_scalar(
            "INSERT INTO queue_owners (owner_id, last_fair_seq) VALUES ($1, 0) \
             ON CONFLICT (owner_id) DO UPDATE SET last_fair_seq = queue_owners.last_fair_seq RETURNING last_fair_seq",
        )
        .bind(owner_id)
        .fetch_one(&mut *tx)
        .await?;
        let queued: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE owner_id = $1 AND status IN ('queued', 'retrying')")
                .bind(owner_id)
                .fetch_one(&mut *tx)
                .await?;
        if queued + new_count > limits.max_queued {
            return Err(SubmitError::QuotaExceeded { queued, max: limits.max_queued });
        }
        let mut seqs = Vec::with_capacity(jobs.len());
        let mut owner_seq = last_fair_seq;
        // The head of each class's line, read once per class per submit (our own inserts
        // below never move it back).
        let mut bases: Vec<(i32, i64)> = Vec::with_capacity(1);
        for job in jobs {
            let rank = job.priority.rank();
            let base = match bases.iter().find(|(r, _)| *r == rank) {
                Some((_, base)) => *base,
                None => {
                    // Round-robin: a newcomer starts at the head of the line, not behind everyone's backlog.
                    let base: i64 = sqlx::query_scalar(
                        // `ORDER BY … LIMIT 1` in the claim index's order (not `MIN`), so that
                        // SQLite without statistics walks the partial claim index instead of
                        // every finished job of the class (32 ms → 1 ms at 100k rows).
                        "SELECT COALESCE((SELECT fair_seq FROM jobs WHERE priority_rank = $1 AND status IN ('queued', 'retrying') \
                         ORDER BY priority_rank, fair_seq, queued_at LIMIT 1), \
                         (SELECT MAX(fair_seq) FROM jobs WHERE priority_rank = $1), 0)",
                    )
                    .bind(rank)
                    .fetch_one(&mut *tx)
                    .await?;
                    bases.push((rank, base));
                    base
                }
            };
            owner_seq = (owner_seq + 1).max(base);
            seqs.push(owner_seq);
        }
        let created: Vec<JobRow> = (*tx).insert_jobs(owner_id, now, jobs, &seqs).await?;
        sqlx::query("UPDATE queue_owners SET last_fair_seq = $1 WHERE owner_id = $2")
            .bind(owner_seq)
            .bind(owner_id)
            .execute(&mut *tx)
            .await?;
        if let Some(idem) = idempotency {
            let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
            sqlx::query(
                "INSERT INTO idempotency_keys (owner_id, key, request_hash, job_ids, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(owner_id)
            .bind(&idem.key)
            .bind(&idem.request_hash)
            .bind(Json(ids))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let created = rows_to_jobs(created)?;
        match events {
            Some(SubmitEvents::Notify { channel, payloads }) => {
                let payloads = payloads(&created);
                if !payloads.is_empty() {
                    let calls: Vec<String> = (0..payloads.len()).map(|i| format!("pg_notify($1, ${})", i + 2)).collect();
                    let sql = format!("SELECT {}", calls.join(", "));
                    // Assembled from fixed fragments; the channel and payloads are bound.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(*channel);
                    for p in &payloads {
                        q = q.bind(p.as_str());
                    }
                    q.execute(&mut *tx).await?;
                }
            }
            Some(SubmitEvents::Local(hand_over)) => hand_over(&created),
            None => {}
        }
        tx.commit().await?;
        created
    });
    Ok(Submitted::Created(created))
}

/// Fetches a job.
pub async fn get(db: &Db, id: Uuid) -> StoreResult<Job> {
    let sql = concat!("SELECT ", columns!(), " FROM jobs WHERE id = $1");
    let row: JobRow = with_pool!(db, pool => sqlx::query_as(sql).bind(id).fetch_one(pool).await?);
    row.try_into()
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this owner's jobs (None: everyone's, for admins).
    pub owner_id: Option<Uuid>,
    /// Status.
    pub status: Option<JobStatus>,
    /// Type.
    pub job_type: Option<JobType>,
    /// Persona.
    pub persona_id: Option<Uuid>,
    /// Batch.
    pub batch_id: Option<Uuid>,
    /// Case-insensitive substring of the prompt.
    pub search: Option<String>,
    /// Queued at or after.
    pub from: Option<DateTime<Utc>>,
    /// Queued before.
    pub to: Option<DateTime<Utc>>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// Lists jobs matching `filter`, with the total count.
///
/// The total of an unfiltered listing (one owner's jobs, or everyone's) comes from the
/// per-owner `queue_owners.job_count` kept by triggers, so paging through 100,000 jobs does
/// not count them on every page; a filtered listing counts its matches.
pub async fn list(db: &Db, filter: &JobFilter, limit: i64, offset: i64) -> StoreResult<(Vec<Job>, i64)> {
    let mut conditions = Conditions::default();
    if let Some(owner) = filter.owner_id {
        conditions.push(&|n| format!("owner_id = ${n}"), Bind::Uuid(owner));
    }
    let owner_only = conditions.next_placeholder();
    if let Some(status) = filter.status {
        conditions.push(&|n| format!("status = ${n}"), Bind::Text(status.as_str().to_owned()));
    }
    if let Some(job_type) = filter.job_type {
        conditions.push(&|n| format!("job_type = ${n}"), Bind::Text(job_type.as_str().to_owned()));
    }
    if let Some(persona) = filter.persona_id {
        conditions.push(&|n| format!("persona_id = ${n}"), Bind::Uuid(persona));
    }
    if let Some(batch) = filter.batch_id {
        conditions.push(&|n| format!("batch_id = ${n}"), Bind::Uuid(batch));
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
        conditions.push(&|n| format!("LOWER(prompt) LIKE ${n}"), Bind::Text(pattern));
    }
    if let Some(from) = filter.from {
        conditions.push(&|n| format!("queued_at >= ${n}"), Bind::Time(from));
    }
    if let Some(to) = filter.to {
        conditions.push(&|n| format!("queued_at < ${n}"), Bind::Time(to));
    }
    let narrowed = conditions.next_placeholder() > owner_only;
    let where_sql = conditions.where_clause();
    let order = if filter.oldest_first { "queued_at ASC, id ASC" } else { "queued_at DESC, id DESC" };
    // The total: counted under filters, else the per-owner counters kept by triggers (the owner
    // is always `$1` when there is one).
    let total = match (narrowed, filter.owner_id) {
        (true, _) => PageTotal::Count(format!("SELECT COUNT(*) FROM jobs{where_sql}")),
        (false, Some(_)) => PageTotal::Lookup("SELECT job_count FROM queue_owners WHERE owner_id = $1".to_owned()),
        (false, None) => PageTotal::Lookup("SELECT SUM(job_count) FROM queue_owners".to_owned()),
    };
    let sql = format!(
        "SELECT {}, {} FROM jobs{where_sql} ORDER BY {order}{}",
        columns!(),
        total.column(),
        total.limit_offset(limit, offset, conditions.next_placeholder())
    );
    let binds = &conditions.binds;
    let (rows, total) = with_pool!(db, pool => fetch_page!(pool, JobRow, sql.clone(), binds, total, limit, offset));
    Ok((rows_to_jobs(rows)?, total))
}

/// `%` and `_` in user text match literally (both databases treat `\` as the default-less escape
/// only when told; we strip them instead of escaping to keep one SQL text).
fn escape_like(s: &str) -> String {
    s.replace(['%', '_', '\\'], "")
}

/// Cancel request outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// It was queued or retrying: now cancelled.
    Cancelled(Job),
    /// It is running: the worker will stop it at its next heartbeat/step.
    Requested(Job),
    /// Already finished; nothing to do.
    AlreadyFinished(Job),
}

/// Cancels a job: at once when not running, by flagging it when running.
pub async fn request_cancel(db: &Db, id: Uuid) -> StoreResult<CancelOutcome> {
    for _ in 0..3 {
        let job = get(db, id).await?;
        if job.status.is_terminal() {
            return Ok(CancelOutcome::AlreadyFinished(job));
        }
        let to = next_status(job.status, JobEvent::Cancel, job.attempt, job.max_attempts)
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let now = Utc::now();
        if job.status == JobStatus::Running {
            let sql = concat!(
                "UPDATE jobs SET cancel_requested = TRUE, stage = 'cancelling', updated_at = $1 \
                 WHERE id = $2 AND status = 'running' RETURNING ",
                columns!()
            );
            let row: Option<JobRow> =
                with_write_pool!(db, pool => sqlx::query_as(sql).bind(now).bind(id).fetch_optional(pool).await?);
            if let Some(row) = row {
                return Ok(CancelOutcome::Requested(row.try_into()?));
            }
        } else {
            let sql = concat!(
                "UPDATE jobs SET status = $1, finished_at = $2, updated_at = $2, stage = 'cancelled', lease_owner = NULL, \
                 lease_expires_at = NULL WHERE id = $3 AND status = $4 RETURNING ",
                columns!()
            );
            let row: Option<JobRow> = with_write_pool!(db, pool => {
                sqlx::query_as(sql).bind(to.as_str()).bind(now).bind(id).bind(job.status.as_str()).fetch_optional(pool).await?
            });
            if let Some(row) = row {
                return Ok(CancelOutcome::Cancelled(row.try_into()?));
            }
        }
        // The status changed under us (claimed, finished): read again and decide again.
    }
    Err(StoreError::Unavailable("job status kept changing; retry the cancel".into()))
}

/// Claims the next job this worker can run: highest priority class first, round-robin between
/// owners inside a class, skipping owners at their running limit. `engines` are the engines
/// the worker has. PostgreSQL uses `FOR UPDATE SKIP LOCKED`; SQLite one `UPDATE … RETURNING`.
pub async fn claim(
    db: &Db,
    worker_id: Uuid,
    engines: &[String],
    lease: Duration,
    max_running_per_owner: i64,
) -> StoreResult<Option<Job>> {
    Ok(claim_batch(db, worker_id, engines, lease, max_running_per_owner, 1).await?.into_iter().next())
}

/// The claim's shape, shared by both databases: the first candidates in queue order (an index
/// walk over `jobs_claim_idx` that stops early), each ranked within its owner and added to
/// that owner's running jobs, so one statement can take several jobs without pushing an owner
/// over the running limit; then the picked rows, re-checked after locking. The running counts
/// are one grouped scan joined in (a correlated subquery ran once per candidate: 544 index
/// scans for a 64-slot claim).
macro_rules! claim_sql {
    ($engine_match:literal, $lock:literal) => {
        concat!(
            "WITH candidates AS MATERIALIZED (SELECT c.id, c.owner_id, c.priority_rank, c.fair_seq, c.queued_at FROM jobs c \
             WHERE c.status IN ('queued', 'retrying') AND c.run_after <= $3 AND c.cancel_requested = FALSE AND ",
            $engine_match,
            " ORDER BY c.priority_rank, c.fair_seq, c.queued_at LIMIT $6), \
             running AS MATERIALIZED (SELECT r.owner_id, COUNT(*) AS n FROM jobs r \
             WHERE r.status = 'running' AND r.owner_id IN (SELECT DISTINCT owner_id FROM candidates) GROUP BY r.owner_id), \
             ranked AS (SELECT k.id, k.priority_rank, k.fair_seq, k.queued_at, \
             ROW_NUMBER() OVER (PARTITION BY k.owner_id ORDER BY k.priority_rank, k.fair_seq, k.queued_at) \
             + COALESCE(run.n, 0) AS load FROM candidates k LEFT JOIN running run ON run.owner_id = k.owner_id), \
             picked AS (SELECT j.id FROM jobs j WHERE j.id IN (SELECT id FROM ranked WHERE load <= $5 \
             ORDER BY priority_rank, fair_seq, queued_at LIMIT $7) \
             AND j.status IN ('queued', 'retrying') AND j.cancel_requested = FALSE",
            $lock,
            ") UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2, \
             started_at = COALESCE(started_at, $3), updated_at = $3, stage = 'starting' \
             WHERE id IN (SELECT id FROM picked) RETURNING ",
            columns!()
        )
    };
}

/// How a claim transaction starts on PostgreSQL (both claim statements).
///
/// - No waiting for the WAL flush at commit (~3 ms on this machine, more on network disks): a
///   worker's claims are sequential, so a synchronous commit capped one worker near 300 claims
///   a second. A claim lost in a server crash is harmless — the job is back in the queue as if
///   its worker had died, and the first worker's completion is refused (its lease is gone).
/// - The queue order comes from `jobs_claim_idx`, never a bitmap scan of every waiting job:
///   after a burst of submits the statistics still say the queue is nearly empty, and the
///   planner then sorted the whole queue (9,000 rows: 15–60 ms) for every claim.
/// - No JIT: a claim is a few milliseconds of work, compiling it cost more.
const PG_CLAIM_BEGIN: &str =
    "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off";

/// Claims up to `max` jobs at once (see [`claim`]), in queue order. Taking several jobs per
/// statement is what lets one worker keep many slots busy: each claim is a write, and on
/// SQLite every write waits for the single writer.
pub async fn claim_batch(
    db: &Db,
    worker_id: Uuid,
    engines: &[String],
    lease: Duration,
    max_running_per_owner: i64,
    max: usize,
) -> StoreResult<Vec<Job>> {
    let now = Utc::now();
    let lease_until = now + lease;
    let max = i64::try_from(max.clamp(1, 64)).unwrap_or(1);
    // Owners at their limit are skipped inside this window of candidates; a full window of
    // them falls back to a per-row scan below, so they can never starve everyone else.
    let window = max * 8 + 32;
    let mut rows: Vec<JobRow> = match db {
        Db::Postgres(pool) => {
            let mut tx = pool.begin_with(PG_CLAIM_BEGIN).await?;
            let rows = sqlx::query_as(claim_sql!("c.engine = ANY($4)", " FOR UPDATE SKIP LOCKED"))
                .bind(worker_id)
                .bind(lease_until)
                .bind(now)
                .bind(engines)
                .bind(max_running_per_owner)
                .bind(window)
                .bind(max)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        }
        Db::Sqlite(sqlite) => {
            sqlx::query_as(claim_sql!("c.engine IN (SELECT value FROM json_each($4))", ""))
                .bind(worker_id)
                .bind(lease_until)
                .bind(now)
                .bind(Json(engines))
                .bind(max_running_per_owner)
                .bind(window)
                .bind(max)
                .fetch_all(&sqlite.write)
                .await?
        }
    };
    if rows.is_empty() {
        rows.extend(claim_deep(db, worker_id, engines, now, lease_until, max_running_per_owner).await?);
    }
    let mut jobs = rows_to_jobs(rows)?;
    jobs.sort_by_key(|j| (j.priority.rank(), j.fair_seq, j.queued_at));
    Ok(jobs)
}

/// One job, searching the whole queue for an owner below the limit (a correlated count per
/// candidate): the fallback when the first window of candidates is all at the limit.
async fn claim_deep(
    db: &Db,
    worker_id: Uuid,
    engines: &[String],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    max_running_per_owner: i64,
) -> StoreResult<Option<JobRow>> {
    macro_rules! claim_deep_sql {
        ($engine_match:literal, $lock:literal) => {
            concat!(
                "UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2, \
                 started_at = COALESCE(started_at, $3), updated_at = $3, stage = 'starting' \
                 WHERE id = (SELECT c.id FROM jobs c WHERE c.status IN ('queued', 'retrying') AND c.run_after <= $3 \
                 AND c.cancel_requested = FALSE AND ",
                $engine_match,
                " AND (SELECT COUNT(*) FROM jobs r WHERE r.owner_id = c.owner_id AND r.status = 'running') < $5 \
                 ORDER BY c.priority_rank, c.fair_seq, c.queued_at LIMIT 1",
                $lock,
                ") RETURNING ",
                columns!()
            )
        };
    }
    Ok(match db {
        Db::Postgres(pool) => {
            let mut tx = pool.begin_with(PG_CLAIM_BEGIN).await?;
            let row = sqlx::query_as(claim_deep_sql!("c.engine = ANY($4)", " FOR UPDATE SKIP LOCKED"))
                .bind(worker_id)
                .bind(lease_until)
                .bind(now)
                .bind(engines)
                .bind(max_running_per_owner)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        }
        Db::Sqlite(sqlite) => {
            sqlx::query_as(claim_deep_sql!("c.engine IN (SELECT value FROM json_each($4))", ""))
                .bind(worker_id)
                .bind(lease_until)
                .bind(now)
                .bind(Json(engines))
                .bind(max_running_per_owner)
                .fetch_optional(&sqlite.write)
                .await?
        }
    })
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Lease extended; carry on.
    Continue,
    /// Lease extended, but the owner asked to cancel.
    CancelRequested,
    /// The lease is no longer ours (expired and re-claimed, or cancelled): stop, keep nothing.
    LeaseLost,
}

/// Progress to record with a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// 0..=1.
    pub progress: f64,
    /// Stage message.
    pub stage: String,
    /// Seconds left, estimated.
    pub eta_secs: Option<i64>,
}

/// Extends the lease (and records progress); tells the worker whether to go on.
pub async fn heartbeat(
    db: &Db,
    id: Uuid,
    worker_id: Uuid,
    lease: Duration,
    progress: Option<&ProgressUpdate>,
) -> StoreResult<Heartbeat> {
    let now = Utc::now();
    let cancel: Option<bool> = with_write_pool!(db, pool => {
        match progress {
            Some(p) => sqlx::query_scalar(
                "UPDATE jobs SET lease_expires_at = $1, updated_at = $2, progress = $3, stage = $4, eta_secs = $5 \
                 WHERE id = $6 AND lease_owner = $7 AND status = 'running' RETURNING cancel_requested",
            )
            .bind(now + lease)
            .bind(now)
            .bind(p.progress)
            .bind(&p.stage)
            .bind(p.eta_secs)
            .bind(id)
            .bind(worker_id)
            .fetch_optional(pool)
            .await?,
            None => sqlx::query_scalar(
                "UPDATE jobs SET lease_expires_at = $1, updated_at = $2 \
                 WHERE id = $3 AND lease_owner = $4 AND status = 'running' RETURNING cancel_requested",
            )
            .bind(now + lease)
            .bind(now)
            .bind(id)
            .bind(worker_id)
            .fetch_optional(pool)
            .await?,
        }
    });
    Ok(match cancel {
        None => Heartbeat::LeaseLost,
        Some(true) => Heartbeat::CancelRequested,
        Some(false) => Heartbeat::Continue,
    })
}

/// An output to record with a successful job.
#[derive(Debug, Clone)]
pub struct NewMedia {
    /// Id.
    pub id: Uuid,
    /// Position in the job's outputs.
    pub position: i32,
    /// Storage key.
    pub storage_key: String,
    /// MIME type.
    pub mime: String,
    /// Size.
    pub bytes: i64,
    /// Width.
    pub width: Option<i32>,
    /// Height.
    pub height: Option<i32>,
    /// Hex SHA-256.
    pub sha256: String,
    /// Seed.
    pub seed: Option<i64>,
    /// Length of audio and video outputs, milliseconds.
    pub duration_ms: Option<i64>,
    /// The engine that produced it, when not the job's own (fail-over); the job's otherwise.
    pub engine: Option<String>,
}

fn durations(job: &Job, now: DateTime<Utc>) -> (Option<i64>, Option<i64>) {
    // started_at is the first claim; the wait of a retried job counts from its last queueing,
    // which we approximate with the first start (good enough for averages).
    let wait = job.started_at.map(|s| (s - job.queued_at).num_milliseconds().max(0));
    let run = job.started_at.map(|s| (now - s).num_milliseconds().max(0));
    (wait, run)
}

/// Marks a running job succeeded and records its outputs, atomically; `None` when the lease
/// was lost or a cancel arrived (the caller then deletes the stored objects).
pub async fn complete(db: &Db, job: &Job, worker_id: Uuid, outputs: &[NewMedia]) -> StoreResult<Option<Job>> {
    let done = complete_many(db, worker_id, &[Completion { job, outputs }], &|_| FollowUp::default()).await?;
    Ok(done.into_iter().next().and_then(|c| c.job))
}

/// A running job's successful attempt, to record with [`complete_many`].
#[derive(Debug, Clone, Copy)]
pub struct Completion<'a> {
    /// The job as claimed.
    pub job: &'a Job,
    /// Its stored outputs.
    pub outputs: &'a [NewMedia],
}

/// What a completed job writes besides itself, in the same transaction: the owner's
/// notification and the webhook outbox rows (so neither costs a transaction of its own).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FollowUp {
    /// A notification for the job's owner.
    pub notification: Option<crate::notifications::Draft>,
    /// A webhook event for the owner's endpoints.
    pub webhook: Option<crate::webhooks::OutboxEvent>,
}

/// The result of one [`Completion`].
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    /// The succeeded job; `None` when the lease was lost or a cancel arrived.
    pub job: Option<Job>,
    /// The notification written with it.
    pub notification: Option<crate::notifications::Notification>,
}

/// Completes several jobs in one write transaction: each job's status, its media rows and
/// what `follow_up` asks for the updated job. One commit for many jobs is what lets a worker
/// finish short jobs faster than the database commits (the single SQLite writer, PostgreSQL's
/// WAL flush). Results are in the order of `items`; a job whose lease was lost gets `None` and
/// writes nothing.
pub async fn complete_many(
    db: &Db,
    worker_id: Uuid,
    items: &[Completion<'_>],
    follow_up: &(dyn Fn(&Job) -> FollowUp + Sync),
) -> StoreResult<Vec<Completed>> {
    for item in items {
        next_status(item.job.status, JobEvent::Succeed, item.job.attempt, item.job.max_attempts)
            .map_err(|e| StoreError::Other(e.to_string()))?;
    }
    let now = Utc::now();
    match db {
        Db::Postgres(pool) => complete_many_pg(pool, worker_id, items, follow_up, now).await,
        Db::Sqlite(sqlite) => complete_many_sqlite(&sqlite.write, worker_id, items, follow_up, now).await,
    }
}

/// The columns a job output's media row is written with (both databases, same order).
macro_rules! media_insert_columns {
    () => {
        "id, owner_id, job_id, position, storage_key, mime, bytes, width, height, sha256, seed, created_at, \
         kind, source, prompt, negative_prompt, engine, model, parameters, persona_id, persona_version, updated_at, duration_ms"
    };
}

/// The job update of a completion; `$1` now, then the job's id, wait and run time, the worker.
macro_rules! complete_set {
    () => {
        "UPDATE jobs SET status = 'succeeded', progress = 1, stage = 'done', eta_secs = 0, finished_at = $1, updated_at = $1, \
         lease_owner = NULL, lease_expires_at = NULL, error = NULL, "
    };
}

/// SQLite: one statement per row inside the write transaction (statements are in-process calls,
/// so folding them would save little and cost a SQL text per batch size).
async fn complete_many_sqlite(
    pool: &sqlx::SqlitePool,
    worker_id: Uuid,
    items: &[Completion<'_>],
    follow_up: &(dyn Fn(&Job) -> FollowUp + Sync),
    now: DateTime<Utc>,
) -> StoreResult<Vec<Completed>> {
    let sql = concat!(
        complete_set!(),
        "wait_ms = $2, run_ms = $3 WHERE id = $4 AND lease_owner = $5 AND status = 'running' AND cancel_requested = FALSE RETURNING ",
        columns!()
    );
    let mut tx = pool.begin_write().await?;
    let mut done = Vec::with_capacity(items.len());
    for &Completion { job, outputs } in items {
        let (wait_ms, run_ms) = durations(job, now);
        let row: Option<JobRow> = sqlx::query_as(sql)
            .bind(now)
            .bind(wait_ms)
            .bind(run_ms)
            .bind(job.id)
            .bind(worker_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            done.push(Completed { job: None, notification: None });
            continue;
        };
        let finished = Job::try_from(row)?;
        for m in outputs {
            sqlx::query(concat!(
                "INSERT INTO media (",
                media_insert_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'generated', $14, $15, $16, $17, $18, $19, $20, $12, $21)"
            ))
            .bind(m.id)
            .bind(job.owner_id)
            .bind(job.id)
            .bind(m.position)
            .bind(&m.storage_key)
            .bind(&m.mime)
            .bind(m.bytes)
            .bind(m.width)
            .bind(m.height)
            .bind(&m.sha256)
            .bind(m.seed)
            .bind(now)
            .bind(crate::media::kind_of(&m.mime))
            .bind(&job.prompt)
            .bind(&job.negative_prompt)
            .bind(m.engine.as_deref().unwrap_or(&job.engine))
            .bind(&job.model)
            .bind(Json(&job.request))
            .bind(job.persona_id)
            .bind(job.persona_version)
            .bind(m.duration_ms)
            .execute(&mut *tx)
            .await?;
        }
        let extra = follow_up(&finished);
        let notification = match extra.notification {
            Some(draft) => {
                let n = draft.into_row(job.owner_id, now);
                crate::notifications::bind_insert!(sqlx::query(crate::notifications::INSERT_SQL), n)
                    .execute(&mut *tx)
                    .await?;
                Some(n)
            }
            None => None,
        };
        if let Some(hook) = &extra.webhook {
            crate::webhooks::bind_enqueue!(
                sqlx::query(crate::webhooks::ENQUEUE_SQL),
                job.owner_id,
                hook.event,
                &hook.payload,
                now
            )
            .execute(&mut *tx)
            .await?;
        }
        done.push(Completed { job: Some(finished), notification });
    }
    tx.commit().await?;
    Ok(done)
}

/// PostgreSQL: the whole batch in three array statements (jobs, media rows, notifications)
/// instead of a few per job. Every statement is a round trip and a plan execution in the
/// server, which under a stream of short jobs was most of PostgreSQL's CPU per job.
async fn complete_many_pg(
    pool: &sqlx::PgPool,
    worker_id: Uuid,
    items: &[Completion<'_>],
    follow_up: &(dyn Fn(&Job) -> FollowUp + Sync),
    now: DateTime<Utc>,
) -> StoreResult<Vec<Completed>> {
    let (mut ids, mut waits, mut runs) = (Vec::with_capacity(items.len()), Vec::new(), Vec::new());
    for c in items {
        let (wait_ms, run_ms) = durations(c.job, now);
        ids.push(c.job.id);
        waits.push(wait_ms);
        runs.push(run_ms);
    }
    let mut tx = pool.begin_write().await?;
    let rows: Vec<JobRow> = sqlx::query_as(concat!(
        complete_set!(),
        "wait_ms = u.w, run_ms = u.r FROM unnest($2::uuid[], $3::int8[], $4::int8[]) AS u(uid, w, r) \
         WHERE jobs.id = u.uid AND jobs.lease_owner = $5 AND jobs.status = 'running' AND jobs.cancel_requested = FALSE RETURNING ",
        columns!()
    ))
    .bind(now)
    .bind(&ids)
    .bind(&waits)
    .bind(&runs)
    .bind(worker_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut finished = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let job = Job::try_from(row)?;
        finished.insert(job.id, job);
    }

    let mut media = MediaColumns::default();
    for c in items.iter().filter(|c| finished.contains_key(&c.job.id)) {
        for m in c.outputs {
            media.push(c.job, m);
        }
    }
    if !media.id.is_empty() {
        sqlx::query(concat!(
            "INSERT INTO media (",
            media_insert_columns!(),
            ") SELECT id, owner_id, job_id, position, storage_key, mime, bytes, width, height, sha256, seed, $1, kind, 'generated', \
             prompt, negative_prompt, engine, model, parameters, persona_id, persona_version, $1, duration_ms \
             FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::int4[], $6::text[], $7::text[], $8::int8[], $9::int4[], \
             $10::int4[], $11::text[], $12::int8[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::jsonb[], \
             $19::uuid[], $20::int4[], $21::int8[]) AS m(id, owner_id, job_id, position, storage_key, mime, bytes, width, height, \
             sha256, seed, kind, prompt, negative_prompt, engine, model, parameters, persona_id, persona_version, duration_ms)"
        ))
        .bind(now)
        .bind(&media.id)
        .bind(&media.owner_id)
        .bind(&media.job_id)
        .bind(&media.position)
        .bind(&media.storage_key)
        .bind(&media.mime)
        .bind(&media.bytes)
        .bind(&media.width)
        .bind(&media.height)
        .bind(&media.sha256)
        .bind(&media.seed)
        .bind(&media.kind)
        .bind(&media.prompt)
        .bind(&media.negative_prompt)
        .bind(&media.engine)
        .bind(&media.model)
        .bind(&media.parameters)
        .bind(&media.persona_id)
        .bind(&media.persona_version)
        .bind(&media.duration_ms)
        .execute(&mut *tx)
        .await?;
    }

    let mut done = Vec::with_capacity(items.len());
    let (mut notifications, mut hooks) = (Vec::new(), Vec::new());
    for c in items {
        let Some(job) = finished.remove(&c.job.id) else {
            done.push(Completed { job: None, notification: None });
            continue;
        };
        let extra = follow_up(&job);
        hooks.extend(extra.webhook.map(|hook| (job.owner_id, hook)));
        let notification = extra.notification.map(|draft| draft.into_row(job.owner_id, now));
        notifications.extend(notification.clone());
        done.push(Completed { job: Some(job), notification });
    }
    crate::notifications::insert_many_pg(&mut tx, &notifications).await?;
    let hooks: Vec<(Uuid, &crate::webhooks::OutboxEvent)> = hooks.iter().map(|(owner, hook)| (*owner, hook)).collect();
    crate::webhooks::enqueue_many_pg(&mut tx, &hooks, now).await?;
    tx.commit().await?;
    Ok(done)
}

/// Job outputs as one array per media column, for [`complete_many_pg`]'s `unnest`.
#[derive(Default)]
struct MediaColumns<'a> {
    id: Vec<Uuid>,
    owner_id: Vec<Uuid>,
    job_id: Vec<Uuid>,
    position: Vec<i32>,
    storage_key: Vec<&'a str>,
    mime: Vec<&'a str>,
    bytes: Vec<i64>,
    width: Vec<Option<i32>>,
    height: Vec<Option<i32>>,
    sha256: Vec<&'a str>,
    seed: Vec<Option<i64>>,
    kind: Vec<&'static str>,
    prompt: Vec<&'a str>,
    negative_prompt: Vec<&'a str>,
    engine: Vec<&'a str>,
    model: Vec<&'a str>,
    parameters: Vec<Json<&'a RawJson>>,
    persona_id: Vec<Option<Uuid>>,
    persona_version: Vec<Option<i32>>,
    duration_ms: Vec<Option<i64>>,
}

impl<'a> MediaColumns<'a> {
    fn push(&mut self, job: &'a Job, m: &'a NewMedia) {
        self.id.push(m.id);
        self.owner_id.push(job.owner_id);
        self.job_id.push(job.id);
        self.position.push(m.position);
        self.storage_key.push(&m.storage_key);
        self.mime.push(&m.mime);
        self.bytes.push(m.bytes);
        self.width.push(m.width);
        self.height.push(m.height);
        self.sha256.push(&m.sha256);
        self.seed.push(m.seed);
        self.kind.push(crate::media::kind_of(&m.mime));
        self.prompt.push(&job.prompt);
        self.negative_prompt.push(&job.negative_prompt);
        self.engine.push(m.engine.as_deref().unwrap_or(&job.engine));
        self.model.push(&job.model);
        self.parameters.push(Json(&job.request));
        self.persona_id.push(job.persona_id);
        self.persona_version.push(job.persona_version);
        self.duration_ms.push(m.duration_ms);
    }
}

/// Applies a worker-side event (fail, cancel acknowledged, release) to a running job it holds.
/// Returns the updated job, or `None` when the lease was no longer ours.
pub async fn finish_attempt(
    db: &Db,
    job: &Job,
    worker_id: Uuid,
    event: JobEvent,
    error: Option<&JobError>,
) -> StoreResult<Option<Job>> {
    apply_attempt_event(db, job, worker_id, event, error, None).await
}

/// `finish_attempt`, optionally only if the lease expired before `expired_before` (so a worker
/// that heartbeats at the last moment keeps its job).
async fn apply_attempt_event(
    db: &Db,
    job: &Job,
    worker_id: Uuid,
    event: JobEvent,
    error: Option<&JobError>,
    expired_before: Option<DateTime<Utc>>,
) -> StoreResult<Option<Job>> {
    let to =
        next_status(job.status, event, job.attempt, job.max_attempts).map_err(|e| StoreError::Other(e.to_string()))?;
    let now = Utc::now();
    let (wait_ms, run_ms) = durations(job, now);
    let finished_at = to.is_terminal().then_some(now);
    let run_after = match to {
        JobStatus::Retrying => now + Duration::seconds(i64::try_from(backoff_secs(job.attempt)).unwrap_or(300)),
        _ => now,
    };
    // A released job gives its attempt back: shutting a worker down is not the job's fault.
    let attempt = if event == JobEvent::Release { job.attempt - 1 } else { job.attempt };
    let stage = to.as_str();
    let sql = concat!(
        "UPDATE jobs SET status = $1, finished_at = $2, updated_at = $3, run_after = $4, attempt = $5, error = $6, \
         stage = $7, lease_owner = NULL, lease_expires_at = NULL, wait_ms = $8, run_ms = $9 \
         WHERE id = $10 AND lease_owner = $11 AND status = 'running' AND ($12 IS NULL OR lease_expires_at < $12) RETURNING ",
        columns!()
    );
    let row: Option<JobRow> = with_write_pool!(db, pool => {
        sqlx::query_as(sql)
            .bind(to.as_str())
            .bind(finished_at)
            .bind(now)
            .bind(run_after)
            .bind(attempt)
            .bind(error.map(Json))
            .bind(stage)
            .bind(wait_ms)
            .bind(run_ms)
            .bind(job.id)
            .bind(worker_id)
            .bind(expired_before)
            .fetch_optional(pool)
            .await?
    });
    row.map(Job::try_from).transpose()
}

/// Running jobs whose lease expired before `now`: each goes back to the queue (retrying with
/// back-off), or fails when out of attempts, or is cancelled when a cancel was pending.
pub async fn reclaim_expired(db: &Db, now: DateTime<Utc>) -> StoreResult<Vec<Job>> {
    let sql = concat!("SELECT ", columns!(), " FROM jobs WHERE status = 'running' AND lease_expires_at < $1 LIMIT 500");
    let rows: Vec<JobRow> = with_pool!(db, pool => sqlx::query_as(sql).bind(now).fetch_all(pool).await?);
    let mut changed = Vec::new();
    for job in rows_to_jobs(rows)? {
        let (event, error) = if job.cancel_requested {
            (JobEvent::Cancel, None)
        } else {
            let exhausted = job.attempt >= job.max_attempts;
            let error = JobError {
                code: if exhausted { "max_attempts_exceeded" } else { "lease_expired" }.to_owned(),
                message: if exhausted {
                    format!("the worker stopped responding on the last of {} attempts", job.max_attempts)
                } else {
                    format!("the worker stopped responding (attempt {} of {}); retrying", job.attempt, job.max_attempts)
                },
                retryable: !exhausted,
            };
            (JobEvent::LeaseExpired, Some(error))
        };
        let Some(lease_owner) = job.lease_owner else { continue };
        if let Some(updated) = apply_attempt_event(db, &job, lease_owner, event, error.as_ref(), Some(now)).await? {
            changed.push(updated);
        }
    }
    Ok(changed)
}

/// Deletes finished jobs (and, by cascade, their media rows) older than `before`; returns how many.
pub async fn prune_finished(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query("DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

/// Deletes idempotency records older than `before`.
pub async fn prune_idempotency_keys(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(before).execute(pool).await?.rows_affected()
    }))
}

/// Jobs still queued or running for an owner (the WebSocket snapshot on connect).
pub async fn active_for_owner(db: &Db, owner_id: Uuid) -> StoreResult<Vec<Job>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM jobs WHERE owner_id = $1 AND status IN ('queued', 'running', 'retrying') ORDER BY queued_at LIMIT 500"
    );
    let rows: Vec<JobRow> = with_pool!(db, pool => sqlx::query_as(sql).bind(owner_id).fetch_all(pool).await?);
    rows_to_jobs(rows)
}

/// Counts by status and average durations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobStats {
    /// `(status, count)`.
    pub by_status: Vec<(JobStatus, i64)>,
    /// Mean queue wait of finished jobs, ms.
    pub avg_wait_ms: Option<f64>,
    /// Mean run time of succeeded jobs, ms.
    pub avg_run_ms: Option<f64>,
}

/// Statistics for an owner (None: all owners).
pub async fn stats(db: &Db, owner_id: Option<Uuid>) -> StoreResult<JobStats> {
    type Averages = (Option<f64>, Option<f64>);
    // One SQL text per case: `($1 IS NULL OR owner_id = $1)` cannot use the owner index, so
    // one user's stats read every user's jobs (68 ms on SQLite in the mixed benchmark).
    let (counts_sql, avgs_sql) = match owner_id {
        Some(_) => (
            "SELECT status, COUNT(*) FROM jobs WHERE owner_id = $1 GROUP BY status",
            "SELECT CAST(AVG(wait_ms) AS DOUBLE PRECISION), \
             CAST(AVG(CASE WHEN status = 'succeeded' THEN run_ms END) AS DOUBLE PRECISION) \
             FROM jobs WHERE owner_id = $1 AND finished_at IS NOT NULL",
        ),
        None => (
            "SELECT status, COUNT(*) FROM jobs GROUP BY status",
            "SELECT CAST(AVG(wait_ms) AS DOUBLE PRECISION), \
             CAST(AVG(CASE WHEN status = 'succeeded' THEN run_ms END) AS DOUBLE PRECISION) \
             FROM jobs WHERE finished_at IS NOT NULL",
        ),
    };
    let (counts, avgs): (Vec<(String, i64)>, Averages) = with_pool!(db, pool => {
        let mut counts = sqlx::query_as(counts_sql);
        let mut avgs = sqlx::query_as(avgs_sql);
        if let Some(owner) = owner_id {
            counts = counts.bind(owner);
            avgs = avgs.bind(owner);
        }
        (counts.fetch_all(pool).await?, avgs.fetch_one(pool).await?)
    });
    let by_status = counts.into_iter().filter_map(|(s, n)| JobStatus::parse(&s).map(|s| (s, n))).collect();
    Ok(JobStats { by_status, avg_wait_ms: avgs.0, avg_run_ms: avgs.1 })
}

/// Queue depth by priority class and the age of the oldest claimable job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDepth {
    /// `(class, queued or retrying count)`.
    pub by_class: Vec<(PriorityClass, i64)>,
    /// Running jobs.
    pub running: i64,
    /// When the oldest waiting job was queued.
    pub oldest_queued_at: Option<DateTime<Utc>>,
}

/// Current queue depth.
pub async fn queue_depth(db: &Db) -> StoreResult<QueueDepth> {
    type Depth = (Vec<(String, i64)>, i64, Option<DateTime<Utc>>);
    // Every scrape of /metrics runs these, so they must read only the waiting and running jobs
    // (the partial indexes), never the finished history. SQLite's planner otherwise walks
    // `jobs_queued_at_idx` through every finished job for the MIN, and counts running jobs by
    // scanning `jobs_owner_status_idx`: `+queued_at` and `INDEXED BY` keep it on the partial ones.
    let (running_sql, oldest_sql) = match db {
        Db::Postgres(_) => (
            "SELECT COUNT(*) FROM jobs WHERE status = 'running'",
            "SELECT MIN(queued_at) FROM jobs WHERE status IN ('queued', 'retrying')",
        ),
        Db::Sqlite(_) => (
            "SELECT COUNT(*) FROM jobs INDEXED BY jobs_lease_idx WHERE status = 'running'",
            "SELECT MIN(+queued_at) FROM jobs WHERE status IN ('queued', 'retrying')",
        ),
    };
    let (classes, running, oldest): Depth = with_pool!(db, pool => {
        let classes = sqlx::query_as(
            "SELECT priority, COUNT(*) FROM jobs WHERE status IN ('queued', 'retrying') GROUP BY priority",
        )
        .fetch_all(pool)
        .await?;
        let running = sqlx::query_scalar(running_sql).fetch_one(pool).await?;
        let oldest = sqlx::query_scalar(oldest_sql).fetch_one(pool).await?;
        (classes, running, oldest)
    });
    let by_class = classes.into_iter().filter_map(|(c, n)| PriorityClass::parse(&c).map(|c| (c, n))).collect();
    Ok(QueueDepth { by_class, running, oldest_queued_at: oldest })
}

#[cfg(test)]
mod tests {
    use seidra_core::job::{JobEvent, JobStatus, next_status};

    fn from_states(event: JobEvent) -> Vec<&'static str> {
        JobStatus::ALL.into_iter().filter(|s| next_status(*s, event, 1, 3).is_ok()).map(JobStatus::as_str).collect()
    }

    /// The literal status lists in the SQL above must match the state machine.
    #[test]
    fn sql_status_lists_match_the_state_machine() {
        assert_eq!(from_states(JobEvent::Claim), ["queued", "retrying"]);
        assert_eq!(from_states(JobEvent::Succeed), ["running"]);
        assert_eq!(from_states(JobEvent::Release), ["running"]);
        assert_eq!(from_states(JobEvent::LeaseExpired), ["running"]);
        assert_eq!(from_states(JobEvent::Cancel), ["queued", "running", "retrying"]);
    }
}
