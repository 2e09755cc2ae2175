-- What every check found, one row per export x table x check (the right-hand side of
-- marts.data_quality; the catalogue is the left). rows_checked is what the check looked at:
-- the rows read, the files, the questionnaires; detail names columns, files or tables.
CREATE OR REPLACE TABLE quality.check_results AS
-- A rejected file whose rows cannot be counted (empty, a Parquet file without its footer)
-- counts as one row, checked and failed: at 0 of 0 its check would pass, and the file is lost.
WITH rows_read AS (
    SELECT export_id, table_name, sum(rows_read) + count(*) FILTER (WHERE rejected_file AND rows_read = 0) AS rows_read,
           count(*) AS files
    FROM ingest.applied_files GROUP BY export_id, table_name
),
quarantined AS (  -- row and file rules, with the columns they hit
    SELECT export_id, table_name, rule, sum(rows_affected) AS rows_failed,
           string_agg(CASE WHEN column_name <> '' THEN column_name || ' ' || n END, ', ' ORDER BY column_name) AS detail
    FROM (SELECT export_id, table_name, rule, column_name, sum(rows_affected) AS n,
                 sum(CASE WHEN line_number IS NULL THEN greatest(rows_affected, 1) ELSE rows_affected END)
                     AS rows_affected
          FROM marts.quarantine GROUP BY ALL)
    GROUP BY export_id, table_name, rule
),
extra AS (
    SELECT f.export_id, f.table_name, count(*) AS files, count(x.source_file) AS with_extras,
           string_agg(x.columns, '; ' ORDER BY x.source_file) AS detail
    FROM ingest.applied_files f
    LEFT JOIN (SELECT source_file, string_agg(column_name, ', ' ORDER BY column_name) AS columns
               FROM ingest.extra_columns GROUP BY source_file) x USING (source_file)
    GROUP BY f.export_id, f.table_name
)
SELECT q.export_id, q.table_name, q.rule AS check_name, r.rows_read AS rows_checked, q.rows_failed, q.detail
FROM quarantined q LEFT JOIN rows_read r USING (export_id, table_name)
UNION ALL
SELECT export_id, table_name, 'exact_duplicate', sum(rows_read), sum(duplicates), NULL
FROM ingest.applied_files GROUP BY export_id, table_name
UNION ALL
SELECT export_id, table_name, 'reconciliation', sum(rows_read), sum(abs(unaccounted)),
       string_agg(CASE WHEN unaccounted <> 0 THEN source_file END, ', ')
FROM quality.reconciliation GROUP BY export_id, table_name
UNION ALL
SELECT export_id, table_name, 'extra_column', files, with_extras, detail FROM extra
UNION ALL
-- Findings per export: a table's rows read are what identity_conflict looked at; the first
-- five details are named, the rest counted.
SELECT f.export_id, f.table_name, f.check_name, coalesce(any_value(r.rows_read), count(*)), count(*),
       array_to_string(list(f.detail ORDER BY f.detail)[1:5], '; ')
       || CASE WHEN count(*) > 5 THEN '; ... and ' || (count(*) - 5) || ' more' ELSE '' END
FROM ingest.export_findings f LEFT JOIN rows_read r USING (export_id, table_name)
WHERE f.export_id IN (SELECT export_id FROM ingest.applied_exports)
GROUP BY f.export_id, f.table_name, f.check_name
UNION ALL
SELECT '(all)', '(export)', 'export_name', count(*) + (SELECT count(DISTINCT export_id) FROM ingest.applied_exports),
       count(*), string_agg(detail, '; ' ORDER BY detail)
FROM ingest.unfit_exports
UNION ALL
SELECT '(all)', 'fiqr_items', 'fiqr_unscorable', count(*), count(CASE WHEN NOT scorable THEN 1 END), NULL
FROM response.fiqr_questionnaires
UNION ALL
SELECT '(all)', 'fiqr_items', 'fiqr_total_disagrees', (SELECT count(*) FROM response.fiqr_questionnaires),
       count(*), NULL
FROM response.fiqr_disagreements
UNION ALL
SELECT export_id, table_name, check_name, rows_checked, rows_failed, nullif(detail, '') FROM quality.gx_outcomes
-- The suites of this mart and of run_info run after it is built (they show in Dagster).
WHERE table_name NOT IN ('marts.data_quality', 'marts.run_info');
