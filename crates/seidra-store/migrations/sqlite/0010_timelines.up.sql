-- Video-studio timelines: one JSON spec per row (tracks and clips), owned by a user.
CREATE TABLE timelines (
    id         BLOB PRIMARY KEY NOT NULL,
    owner_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX timelines_owner_id_idx ON timelines (owner_id, updated_at);
