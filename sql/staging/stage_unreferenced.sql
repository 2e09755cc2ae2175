-- A contract table that references no other: staged as loaded.
CREATE OR REPLACE VIEW staging.${table_name} AS SELECT * FROM core.${table_name};
