-- Run logs from before the run status: the column the run_info mart reads.
ALTER TABLE quality.run_log ADD COLUMN IF NOT EXISTS status VARCHAR;
