DROP INDEX media_owner_bytes_idx;
