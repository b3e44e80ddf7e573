-- The model catalogue: files found in (or downloaded to) the model directory.
CREATE TABLE models (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('base', 'lora', 'vae', 'unknown')),
    architecture  TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('safetensors', 'diffusers')),
    rel_path      TEXT NOT NULL UNIQUE,
    bytes         BIGINT NOT NULL,
    sha256        TEXT,
    metadata      JSONB NOT NULL DEFAULT '{}',
    source        TEXT NOT NULL CHECK (source IN ('scan', 'download', 'registered')),
    source_url    TEXT,
    description   TEXT NOT NULL DEFAULT '',
    file_modified BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX models_kind_name_idx ON models (kind, name);
