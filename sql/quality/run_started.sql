-- A run starts: runs still marked running never finished (they were killed, or stopped
-- before they could say why; one run writes at a time, so none is running now), and this
-- run is logged as running until published_set marks it published (or the failure hook
-- marks it failed).
UPDATE quality.run_log SET status = 'interrupted' WHERE status = 'running';
INSERT INTO quality.run_log (run_id, run_time, ingest_mode, exports_applied, exports_new,
                             rules_version, code_version, status, engine)
SELECT ${run_id}, now(), ingest_mode, exports_found, exports_new, ${rules_version}, ${code_version},
       'running', ${engine}
FROM ingest.run_plan;
