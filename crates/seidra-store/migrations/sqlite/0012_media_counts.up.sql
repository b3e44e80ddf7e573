-- Per-owner library totals by kind and favourite flag, kept by triggers, so a library page
-- (unfiltered, or filtered by type and/or favourites — the common cases) does not count the
-- owner's whole library for its `total`. Other filters still count their (smaller) match set.
CREATE TABLE media_counts (
    owner_id   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    favorite   INTEGER NOT NULL,
    item_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner_id, kind, favorite)
) WITHOUT ROWID;
INSERT INTO media_counts (owner_id, kind, favorite, item_count)
SELECT owner_id, kind, favorite, COUNT(*) FROM media GROUP BY owner_id, kind, favorite;

CREATE TRIGGER media_counts_insert AFTER INSERT ON media BEGIN
    INSERT INTO media_counts (owner_id, kind, favorite, item_count) VALUES (new.owner_id, new.kind, new.favorite, 1)
    ON CONFLICT (owner_id, kind, favorite) DO UPDATE SET item_count = item_count + 1;
END;
CREATE TRIGGER media_counts_delete AFTER DELETE ON media BEGIN
    UPDATE media_counts SET item_count = item_count - 1
    WHERE owner_id = old.owner_id AND kind = old.kind AND favorite = old.favorite;
END;
CREATE TRIGGER media_counts_update AFTER UPDATE OF kind, favorite ON media
WHEN old.kind IS NOT new.kind OR old.favorite IS NOT new.favorite BEGIN
    UPDATE media_counts SET item_count = item_count - 1
    WHERE owner_id = old.owner_id AND kind = old.kind AND favorite = old.favorite;
    INSERT INTO media_counts (owner_id, kind, favorite, item_count) VALUES (new.owner_id, new.kind, new.favorite, 1)
    ON CONFLICT (owner_id, kind, favorite) DO UPDATE SET item_count = item_count + 1;
END;
