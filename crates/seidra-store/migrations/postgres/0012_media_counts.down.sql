DROP TRIGGER media_counts_update ON media;
DROP TRIGGER media_counts_delete ON media;
DROP TRIGGER media_counts_insert ON media;
DROP FUNCTION media_counts_updated();
DROP FUNCTION media_counts_deleted();
DROP FUNCTION media_counts_inserted();
DROP TABLE media_counts;
