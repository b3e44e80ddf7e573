-- Personas and their versions: every edit snapshots the spec, jobs record the version used.
-- Deleting a persona hides it (deleted_at) so the provenance of past jobs stays readable.
CREATE TABLE personas (
    id         UUID PRIMARY KEY,
    owner_id   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    spec       JSONB NOT NULL,
    version    INTEGER NOT NULL,
    favorite   BOOLEAN NOT NULL DEFAULT FALSE,
    nsfw       BOOLEAN NOT NULL DEFAULT FALSE,
    tags       JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ
);
CREATE INDEX personas_owner_id_idx ON personas (owner_id, updated_at);

CREATE TABLE persona_versions (
    persona_id UUID NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    spec       JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (persona_id, version)
);
