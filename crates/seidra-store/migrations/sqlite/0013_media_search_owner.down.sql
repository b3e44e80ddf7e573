DROP INDEX media_owner_bytes_idx;
DROP TRIGGER media_fts_insert;
DROP TRIGGER media_fts_delete;
DROP TRIGGER media_fts_update;
DROP TABLE media_fts;
ALTER TABLE media DROP COLUMN owner_token;
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
INSERT INTO media_fts (media_fts) VALUES ('rebuild');
