DROP TRIGGER jobs_count_delete;
DROP TRIGGER jobs_count_insert;
ALTER TABLE queue_owners DROP COLUMN job_count;
