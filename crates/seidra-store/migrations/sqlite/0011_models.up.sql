-- The model catalogue: files found in (or downloaded to) the model directory.
CREATE TABLE models (
    id            BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('base', 'lora', 'vae', 'unknown')),
    architecture  TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('safetensors', 'diffusers')),
    rel_path      TEXT NOT NULL UNIQUE,
    bytes         INTEGER NOT NULL,
    sha256        TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    source        TEXT NOT NULL CHECK (source IN ('scan', 'download', 'registered')),
    source_url    TEXT,
    description   TEXT NOT NULL DEFAULT '',
    file_modified INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX models_kind_name_idx ON models (kind, name);
