-- Run logs from before the Spark engine: which engine ran the business SQL.
ALTER TABLE quality.run_log ADD COLUMN IF NOT EXISTS engine VARCHAR;
