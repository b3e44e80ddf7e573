DROP TRIGGER jobs_count_delete ON jobs;
DROP TRIGGER jobs_count_insert ON jobs;
DROP FUNCTION jobs_count_deleted();
DROP FUNCTION jobs_count_inserted();
ALTER TABLE queue_owners DROP COLUMN job_count;
