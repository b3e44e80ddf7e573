-- The media pipeline: thumbnails made in a follow-up step (the pending state is written in the
-- same transaction as the media row; workers sweep pending rows under a short lease, so a
-- crashed worker's thumbnails are picked up again), upload metadata, and ZIP exports.
ALTER TABLE media ADD COLUMN original_name TEXT;
ALTER TABLE media ADD COLUMN duration_ms BIGINT;
ALTER TABLE media ADD COLUMN thumb_state TEXT NOT NULL DEFAULT 'pending'
    CHECK (thumb_state IN ('pending', 'ready', 'failed', 'none'));
ALTER TABLE media ADD COLUMN thumb_256_key TEXT;
ALTER TABLE media ADD COLUMN thumb_768_key TEXT;
ALTER TABLE media ADD COLUMN thumb_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media ADD COLUMN thumb_lease_until TIMESTAMPTZ;
UPDATE media SET thumb_state = 'none' WHERE kind <> 'image';
CREATE INDEX media_thumb_pending_idx ON media (created_at) WHERE thumb_state = 'pending';

-- Finished ZIP exports (export jobs): where the archive is and until when it is kept.
CREATE TABLE media_exports (
    job_id      UUID PRIMARY KEY,
    owner_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    storage_key TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    items       INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX media_exports_expires_at_idx ON media_exports (expires_at);
