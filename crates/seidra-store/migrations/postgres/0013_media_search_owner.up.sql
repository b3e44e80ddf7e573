-- "Largest first" pages walk an index instead of sorting the owner's whole library. (SQLite's
-- migration 0013 also puts the owner into its full-text index; PostgreSQL's GIN search needs no
-- change.)
CREATE INDEX media_owner_bytes_idx ON media (owner_id, bytes);
