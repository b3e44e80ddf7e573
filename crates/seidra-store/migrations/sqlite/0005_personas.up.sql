-- Personas and their versions: every edit snapshots the spec, jobs record the version used.
-- Deleting a persona hides it (deleted_at) so the provenance of past jobs stays readable.
CREATE TABLE personas (
    id         BLOB PRIMARY KEY NOT NULL,
    owner_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    favorite   INTEGER NOT NULL DEFAULT 0,
    nsfw       INTEGER NOT NULL DEFAULT 0,
    tags       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX personas_owner_id_idx ON personas (owner_id, updated_at);

CREATE TABLE persona_versions (
    persona_id BLOB NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (persona_id, version)
);
