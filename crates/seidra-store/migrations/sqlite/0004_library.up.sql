-- The media library: provenance copied from the job (items outlive pruned jobs), favourites,
-- tags, and full-text search over prompt + tags (FTS5, kept in sync by triggers).
ALTER TABLE media ADD COLUMN kind TEXT NOT NULL DEFAULT 'image' CHECK (kind IN ('image', 'audio', 'video'));
ALTER TABLE media ADD COLUMN source TEXT NOT NULL DEFAULT 'generated' CHECK (source IN ('generated', 'upload'));
ALTER TABLE media ADD COLUMN favorite INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN negative_prompt TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN engine TEXT;
ALTER TABLE media ADD COLUMN model TEXT;
ALTER TABLE media ADD COLUMN parameters TEXT;
ALTER TABLE media ADD COLUMN persona_id BLOB;
ALTER TABLE media ADD COLUMN persona_version INTEGER;
ALTER TABLE media ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE media ADD COLUMN updated_at TEXT;
CREATE INDEX media_owner_kind_idx ON media (owner_id, kind, created_at);
CREATE INDEX media_owner_favorite_idx ON media (owner_id, favorite, created_at);

CREATE VIRTUAL TABLE media_fts USING fts5(prompt, tags, content = 'media', content_rowid = 'rowid', tokenize = 'unicode61');
CREATE TRIGGER media_fts_insert AFTER INSERT ON media BEGIN
    INSERT INTO media_fts (rowid, prompt, tags) VALUES (new.rowid, new.prompt, new.tags);
END;
CREATE TRIGGER media_fts_delete AFTER DELETE ON media BEGIN
    INSERT INTO media_fts (media_fts, rowid, prompt, tags) VALUES ('delete', old.rowid, old.prompt, old.tags);
END;
CREATE TRIGGER media_fts_update AFTER UPDATE OF prompt, tags ON media BEGIN
    INSERT INTO media_fts (media_fts, rowid, prompt, tags) VALUES ('delete', old.rowid, old.prompt, old.tags);
    INSERT INTO media_fts (rowid, prompt, tags) VALUES (new.rowid, new.prompt, new.tags);
END;
INSERT INTO media_fts (rowid, prompt, tags) SELECT rowid, prompt, tags FROM media;
