-- Per-owner job totals, kept by triggers, so listing jobs does not count the whole table on
-- every page. Statement-level triggers with transition tables: one UPDATE per statement, even
-- when the maintenance loop prunes thousands of rows at once.
ALTER TABLE queue_owners ADD COLUMN job_count BIGINT NOT NULL DEFAULT 0;
INSERT INTO queue_owners (owner_id, last_fair_seq, job_count)
SELECT owner_id, 0, COUNT(*) FROM jobs GROUP BY owner_id
ON CONFLICT (owner_id) DO UPDATE SET job_count = EXCLUDED.job_count;

CREATE FUNCTION jobs_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_owners (owner_id, last_fair_seq, job_count)
    SELECT owner_id, 0, COUNT(*) FROM inserted_jobs GROUP BY owner_id
    ON CONFLICT (owner_id) DO UPDATE SET job_count = queue_owners.job_count + EXCLUDED.job_count;
    RETURN NULL;
END
$$;
CREATE FUNCTION jobs_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE queue_owners q SET job_count = q.job_count - d.n
    FROM (SELECT owner_id, COUNT(*) AS n FROM deleted_jobs GROUP BY owner_id) d
    WHERE q.owner_id = d.owner_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS inserted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_inserted();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_deleted();
