DROP TABLE leader_leases;
DROP TABLE workers;
DROP TABLE media;
DROP TABLE idempotency_keys;
DROP TABLE queue_owners;
DROP TABLE jobs;
