DROP INDEX timelines_owner_id_idx;
DROP TABLE timelines;
