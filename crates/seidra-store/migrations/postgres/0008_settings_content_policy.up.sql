-- Per-user settings (only the user's overrides of the defaults; `revision` for optimistic
-- concurrency), the instance content policy (one row; `version` bumps on every save and is what
-- API replicas poll to refresh their cache), and the policy decision recorded on each job.
CREATE TABLE user_settings (
    user_id    UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    doc        JSONB NOT NULL,
    revision   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE content_policy (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    version    BIGINT NOT NULL,
    document   JSONB NOT NULL,
    updated_by UUID REFERENCES users (id) ON DELETE SET NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

ALTER TABLE jobs ADD COLUMN policy JSONB;
