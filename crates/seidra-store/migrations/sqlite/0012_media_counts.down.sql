DROP TRIGGER media_counts_update;
DROP TRIGGER media_counts_delete;
DROP TRIGGER media_counts_insert;
DROP TABLE media_counts;
