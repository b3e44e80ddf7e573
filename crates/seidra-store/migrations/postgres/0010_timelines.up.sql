-- Video-studio timelines: one JSON spec per row (tracks and clips), owned by a user.
CREATE TABLE timelines (
    id         UUID PRIMARY KEY,
    owner_id   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    spec       JSONB NOT NULL,
    revision   INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX timelines_owner_id_idx ON timelines (owner_id, updated_at);
