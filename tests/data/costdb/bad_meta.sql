-- Bad input: profiles may not touch the meta table (the schema version is the build's).
INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '2');
