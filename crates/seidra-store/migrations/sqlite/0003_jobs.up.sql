-- SQLite twin of the PostgreSQL migration (BLOB uuids, TEXT timestamps/JSON).
-- The job queue lives on the jobs table itself (no broker). Claims order by priority class,
-- then fair_seq (round-robin between owners, assigned at submit), then queue time.
CREATE TABLE jobs (
    id               BLOB PRIMARY KEY NOT NULL,
    owner_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    job_type         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    priority         TEXT NOT NULL CHECK (priority IN ('interactive', 'batch')),
    priority_rank    INTEGER NOT NULL,
    fair_seq         BIGINT NOT NULL,
    engine           TEXT NOT NULL,
    model            TEXT NOT NULL,
    persona_id       BLOB,
    persona_version  INTEGER,
    request          TEXT NOT NULL,
    prompt           TEXT NOT NULL,
    negative_prompt  TEXT NOT NULL,
    error            TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    lease_owner      BLOB,
    lease_expires_at TEXT,
    run_after        TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress         REAL NOT NULL DEFAULT 0,
    stage            TEXT,
    eta_secs         BIGINT,
    retry_of         BLOB REFERENCES jobs (id) ON DELETE SET NULL,
    batch_id         BLOB,
    wait_ms          BIGINT,
    run_ms           BIGINT,
    queued_at        TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    updated_at       TEXT NOT NULL
);
CREATE INDEX jobs_claim_idx ON jobs (priority_rank, fair_seq, queued_at) WHERE status IN ('queued', 'retrying');
CREATE INDEX jobs_fair_seq_idx ON jobs (priority_rank, fair_seq);
CREATE INDEX jobs_owner_id_idx ON jobs (owner_id, queued_at);
CREATE INDEX jobs_owner_status_idx ON jobs (owner_id, status);
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_queued_at_idx ON jobs (queued_at);
CREATE INDEX jobs_batch_id_idx ON jobs (batch_id);
CREATE INDEX jobs_retry_of_idx ON jobs (retry_of);

-- Per-owner fairness state; its row is also the lock that makes quota checks atomic.
CREATE TABLE queue_owners (
    owner_id      BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_fair_seq BIGINT NOT NULL
);

-- Idempotency-Key on submit: same key + same body → the same jobs.
CREATE TABLE idempotency_keys (
    owner_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    job_ids      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (owner_id, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- Outputs of jobs (the library grows this table later).
CREATE TABLE media (
    id          BLOB PRIMARY KEY NOT NULL,
    owner_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    job_id      BLOB REFERENCES jobs (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    storage_key TEXT NOT NULL UNIQUE,
    mime        TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    width       INTEGER,
    height      INTEGER,
    sha256      TEXT NOT NULL,
    seed        BIGINT,
    created_at  TEXT NOT NULL
);
CREATE INDEX media_owner_id_idx ON media (owner_id, created_at);
CREATE INDEX media_job_id_idx ON media (job_id);

-- Registered worker processes.
CREATE TABLE workers (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    host         TEXT NOT NULL,
    version      TEXT NOT NULL,
    engines      TEXT NOT NULL,
    models       TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'draining', 'stopped', 'dead')),
    current_jobs TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    stopped_at   TEXT
);
CREATE INDEX workers_status_idx ON workers (status, heartbeat_at);

-- Singleton roles across processes (the maintenance loop).
CREATE TABLE leader_leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     BLOB NOT NULL,
    expires_at TEXT NOT NULL
);
