-- Append this run to the run log; marts.run_info is the whole log (one row per run).
INSERT INTO quality.run_log
SELECT ${run_id}, now(), p.ingest_mode, p.exports_found, p.exports_new,
       (SELECT max(rules_version) FROM response.rules), ${code_version},
       (SELECT sum(rows_read) FROM quality.reconciliation),
       (SELECT sum(accepted) FROM quality.reconciliation),
       (SELECT sum(quarantined) FROM quality.reconciliation),
       (SELECT sum(duplicates) FROM quality.reconciliation),
       (SELECT count(*) FROM marts.patient_response)
FROM ingest.run_plan p;

CREATE OR REPLACE TABLE marts.run_info AS
SELECT * FROM quality.run_log ORDER BY run_time;
