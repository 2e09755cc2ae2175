-- Per file: rows read against accepted + quarantined + exact duplicates. Quarantined rows
-- are counted from the quarantine itself (and the orphans judged now), not from the ledger.
CREATE OR REPLACE TABLE quality.reconciliation AS
WITH q AS (
    SELECT source_file, table_name, sum(rows_affected) AS quarantined_now
    FROM ingest.quarantine GROUP BY source_file, table_name
),
o AS (
    SELECT source_file, table_name, count(*) AS orphans
    FROM quality.orphan_rows GROUP BY source_file, table_name
)
SELECT f.export_id, f.table_name, f.source_file, f.rows_read,
       f.accepted - coalesce(o.orphans, 0) AS accepted,
       coalesce(q.quarantined_now, 0) + coalesce(o.orphans, 0) AS quarantined,
       f.duplicates,
       f.rows_read - (f.accepted + coalesce(q.quarantined_now, 0) + f.duplicates) AS unaccounted
FROM ingest.applied_files f
LEFT JOIN q USING (source_file, table_name)
LEFT JOIN o USING (source_file, table_name)
ORDER BY f.export_id, f.table_name, f.source_file;
