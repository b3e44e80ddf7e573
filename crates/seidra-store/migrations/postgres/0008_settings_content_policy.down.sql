ALTER TABLE jobs DROP COLUMN policy;
DROP TABLE content_policy;
DROP TABLE user_settings;
