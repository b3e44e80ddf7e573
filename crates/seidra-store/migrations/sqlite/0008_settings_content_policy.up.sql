-- Per-user settings (only the user's overrides of the defaults; `revision` for optimistic
-- concurrency), the instance content policy (one row; `version` bumps on every save and is what
-- API replicas poll to refresh their cache), and the policy decision recorded on each job.
CREATE TABLE user_settings (
    user_id    BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    doc        TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE content_policy (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version    INTEGER NOT NULL,
    document   TEXT NOT NULL,
    updated_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    updated_at TEXT NOT NULL
);

ALTER TABLE jobs ADD COLUMN policy TEXT;
