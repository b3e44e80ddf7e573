-- The media library: provenance copied from the job (items outlive pruned jobs), favourites,
-- tags, and full-text search over prompt + tags.
ALTER TABLE media ADD COLUMN kind TEXT NOT NULL DEFAULT 'image' CHECK (kind IN ('image', 'audio', 'video'));
ALTER TABLE media ADD COLUMN source TEXT NOT NULL DEFAULT 'generated' CHECK (source IN ('generated', 'upload'));
ALTER TABLE media ADD COLUMN favorite BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE media ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN negative_prompt TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN engine TEXT;
ALTER TABLE media ADD COLUMN model TEXT;
ALTER TABLE media ADD COLUMN parameters JSONB;
ALTER TABLE media ADD COLUMN persona_id UUID;
ALTER TABLE media ADD COLUMN persona_version INTEGER;
ALTER TABLE media ADD COLUMN tags JSONB NOT NULL DEFAULT '[]';
ALTER TABLE media ADD COLUMN updated_at TIMESTAMPTZ;
ALTER TABLE media ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', prompt || ' ' || tags::text)) STORED;
CREATE INDEX media_search_idx ON media USING GIN (search);
CREATE INDEX media_tags_idx ON media USING GIN (tags);
CREATE INDEX media_owner_kind_idx ON media (owner_id, kind, created_at);
CREATE INDEX media_owner_favorite_idx ON media (owner_id, favorite, created_at);
