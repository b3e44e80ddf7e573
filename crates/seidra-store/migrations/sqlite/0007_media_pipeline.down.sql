DROP TABLE media_exports;
DROP INDEX media_thumb_pending_idx;
ALTER TABLE media DROP COLUMN thumb_lease_until;
ALTER TABLE media DROP COLUMN thumb_attempts;
ALTER TABLE media DROP COLUMN thumb_768_key;
ALTER TABLE media DROP COLUMN thumb_256_key;
ALTER TABLE media DROP COLUMN thumb_state;
ALTER TABLE media DROP COLUMN duration_ms;
ALTER TABLE media DROP COLUMN original_name;
