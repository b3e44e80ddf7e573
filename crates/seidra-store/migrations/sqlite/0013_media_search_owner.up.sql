-- Library search, owner-first: the full-text index also holds each item's owner as a token,
-- so a search is answered for one owner inside FTS5 (its count without reading a media row),
-- instead of matching every owner's items and then reading each match to check its owner.
ALTER TABLE media ADD COLUMN owner_token TEXT GENERATED ALWAYS AS (lower(hex(owner_id))) VIRTUAL;

DROP TRIGGER media_fts_insert;
DROP TRIGGER media_fts_delete;
DROP TRIGGER media_fts_update;
DROP TABLE media_fts;
CREATE VIRTUAL TABLE media_fts USING fts5(
    prompt, tags, owner_token, content = 'media', content_rowid = 'rowid', tokenize = 'unicode61'
);
CREATE TRIGGER media_fts_insert AFTER INSERT ON media BEGIN
    INSERT INTO media_fts (rowid, prompt, tags, owner_token) VALUES (new.rowid, new.prompt, new.tags, new.owner_token);
END;
CREATE TRIGGER media_fts_delete AFTER DELETE ON media BEGIN
    INSERT INTO media_fts (media_fts, rowid, prompt, tags, owner_token)
    VALUES ('delete', old.rowid, old.prompt, old.tags, old.owner_token);
END;
CREATE TRIGGER media_fts_update AFTER UPDATE OF prompt, tags ON media BEGIN
    INSERT INTO media_fts (media_fts, rowid, prompt, tags, owner_token)
    VALUES ('delete', old.rowid, old.prompt, old.tags, old.owner_token);
    INSERT INTO media_fts (rowid, prompt, tags, owner_token) VALUES (new.rowid, new.prompt, new.tags, new.owner_token);
END;
INSERT INTO media_fts (media_fts) VALUES ('rebuild');

-- "Largest first" pages walk an index instead of sorting the owner's whole library.
CREATE INDEX media_owner_bytes_idx ON media (owner_id, bytes);
