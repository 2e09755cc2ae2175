-- Complete this run's row of the run log (started by export_plan, sql/quality/run_started.sql):
-- the rows this run read, from the files of the exports it applied (every export in a
-- cold run), and the patients it publishes. marts.run_info is the whole log.
CREATE OR REPLACE TEMP VIEW this_run_files AS
SELECT * FROM quality.reconciliation
WHERE export_id IN (SELECT export_id FROM ingest.pending_exports);

UPDATE quality.run_log SET
    rows_in = coalesce((SELECT sum(rows_read) FROM this_run_files), 0),
    rows_accepted = coalesce((SELECT sum(accepted) FROM this_run_files), 0),
    rows_quarantined = coalesce((SELECT sum(quarantined) FROM this_run_files), 0),
    rows_duplicate = coalesce((SELECT sum(duplicates) FROM this_run_files), 0),
    patients_out = (SELECT count(*) FROM marts.patient_response)
WHERE run_id = ${run_id};

CREATE OR REPLACE TABLE marts.run_info AS
SELECT * FROM quality.run_log ORDER BY run_time;
