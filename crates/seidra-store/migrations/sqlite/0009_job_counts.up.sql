-- Per-owner job totals, kept by triggers, so listing jobs does not count the whole table on
-- every page.
ALTER TABLE queue_owners ADD COLUMN job_count INTEGER NOT NULL DEFAULT 0;
INSERT INTO queue_owners (owner_id, last_fair_seq, job_count)
SELECT owner_id, 0, COUNT(*) FROM jobs WHERE true GROUP BY owner_id
ON CONFLICT (owner_id) DO UPDATE SET job_count = excluded.job_count;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO queue_owners (owner_id, last_fair_seq, job_count) VALUES (new.owner_id, 0, 1)
    ON CONFLICT (owner_id) DO UPDATE SET job_count = job_count + 1;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE queue_owners SET job_count = job_count - 1 WHERE owner_id = old.owner_id;
END;
