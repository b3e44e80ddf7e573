-- Per-owner library totals by kind and favourite flag, kept by triggers, so a library page
-- (unfiltered, or filtered by type and/or favourites — the common cases) does not count the
-- owner's whole library for its `total`. Other filters still count their (smaller) match set.
-- Statement-level triggers with transition tables: one upsert per statement, however many
-- rows a bulk insert, bulk delete or bulk favourite touches.
CREATE TABLE media_counts (
    owner_id   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    favorite   BOOLEAN NOT NULL,
    item_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (owner_id, kind, favorite)
);
INSERT INTO media_counts (owner_id, kind, favorite, item_count)
SELECT owner_id, kind, favorite, COUNT(*) FROM media GROUP BY owner_id, kind, favorite;

CREATE FUNCTION media_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO media_counts (owner_id, kind, favorite, item_count)
    SELECT owner_id, kind, favorite, COUNT(*) FROM inserted_media GROUP BY owner_id, kind, favorite
    ORDER BY owner_id, kind, favorite
    ON CONFLICT (owner_id, kind, favorite) DO UPDATE SET item_count = media_counts.item_count + EXCLUDED.item_count;
    RETURN NULL;
END
$$;
CREATE FUNCTION media_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE media_counts c SET item_count = c.item_count - d.n
    FROM (SELECT owner_id, kind, favorite, COUNT(*) AS n FROM deleted_media GROUP BY owner_id, kind, favorite) d
    WHERE c.owner_id = d.owner_id AND c.kind = d.kind AND c.favorite = d.favorite;
    RETURN NULL;
END
$$;
-- Only rows whose kind or flag changed move between counters; the thumbnail sweep's and tag
-- edits' updates touch no counter row (and take no lock on one).
CREATE FUNCTION media_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        SELECT o.owner_id, o.kind AS old_kind, o.favorite AS old_favorite, n.kind AS new_kind, n.favorite AS new_favorite
        FROM old_media o JOIN new_media n ON n.id = o.id
        WHERE o.kind IS DISTINCT FROM n.kind OR o.favorite IS DISTINCT FROM n.favorite
    ), delta AS (
        SELECT owner_id, old_kind AS kind, old_favorite AS favorite, -1 AS d FROM moved
        UNION ALL
        SELECT owner_id, new_kind, new_favorite, 1 FROM moved
    )
    INSERT INTO media_counts (owner_id, kind, favorite, item_count)
    SELECT owner_id, kind, favorite, SUM(d) FROM delta GROUP BY owner_id, kind, favorite
    ORDER BY owner_id, kind, favorite
    ON CONFLICT (owner_id, kind, favorite) DO UPDATE SET item_count = media_counts.item_count + EXCLUDED.item_count;
    RETURN NULL;
END
$$;
CREATE TRIGGER media_counts_insert AFTER INSERT ON media REFERENCING NEW TABLE AS inserted_media
    FOR EACH STATEMENT EXECUTE FUNCTION media_counts_inserted();
CREATE TRIGGER media_counts_delete AFTER DELETE ON media REFERENCING OLD TABLE AS deleted_media
    FOR EACH STATEMENT EXECUTE FUNCTION media_counts_deleted();
CREATE TRIGGER media_counts_update AFTER UPDATE ON media REFERENCING OLD TABLE AS old_media NEW TABLE AS new_media
    FOR EACH STATEMENT EXECUTE FUNCTION media_counts_updated();
