-- Security-relevant actions: who, what, on what, from where, and whether it worked.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    actor_id BLOB REFERENCES users (id) ON DELETE SET NULL,
    action   TEXT NOT NULL,
    target   TEXT,
    outcome  TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    ip       TEXT,
    details  TEXT NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_id_idx ON audit_log (actor_id);
