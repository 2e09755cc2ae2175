-- One row per export x table x check (the OHDSI DQD results table): every declared check
-- appears, failing or not. Great Expectations checks name the exports whose rows they
-- validated ('(all)': rows of every export, as for the marts). `detail` names what a
-- file- or export-level finding is about (a missing table, an unknown file, extra columns).
CREATE OR REPLACE TABLE marts.data_quality AS
WITH rows_checked AS (
    SELECT export_id, table_name, sum(rows_read) AS rows_checked
    FROM ingest.applied_files GROUP BY export_id, table_name
),
failed AS (
    SELECT export_id, table_name, rule AS check_name, sum(rows_affected) AS rows_failed
    FROM marts.quarantine GROUP BY export_id, table_name, rule
    UNION ALL
    SELECT export_id, table_name, 'exact_duplicate', sum(duplicates)
    FROM ingest.applied_files GROUP BY export_id, table_name
    UNION ALL
    SELECT export_id, table_name, 'reconciliation', sum(abs(unaccounted))
    FROM quality.reconciliation GROUP BY export_id, table_name
),
contract AS (
    SELECT r.export_id, r.table_name, c.check_name, c.kind, c.description, r.rows_checked,
           coalesce(f.rows_failed, 0) AS rows_failed, c.threshold_pct, c.severity, NULL AS detail
    FROM rows_checked r
    CROSS JOIN quality.check_catalogue c
    LEFT JOIN failed f ON f.export_id = r.export_id AND f.table_name = r.table_name
                      AND f.check_name = c.check_name
    WHERE c.kind IN ('contract', 'file', 'reconciliation')
),
-- Extra columns are counted per file (files of the table with extra columns), not against rows.
extra AS (
    SELECT a.export_id, a.table_name, c.check_name, c.kind, c.description,
           count(*) AS rows_checked, count(x.source_file) AS rows_failed, c.threshold_pct, c.severity,
           string_agg(x.columns, '; ' ORDER BY x.source_file) AS detail
    FROM ingest.applied_files a
    LEFT JOIN (SELECT source_file, string_agg(column_name, ', ' ORDER BY column_name) AS columns
               FROM ingest.extra_columns GROUP BY source_file) x USING (source_file)
    CROSS JOIN quality.check_catalogue c
    WHERE c.kind = 'columns'
    GROUP BY ALL
),
-- What an export lacks (tables: exports are deltas) or holds besides tables (unknown files),
-- one row per export, table and check, the names in detail.
findings AS (
    SELECT f.export_id, f.table_name, c.check_name, c.kind, c.description, count(*) AS rows_checked,
           count(*) AS rows_failed, c.threshold_pct, c.severity, string_agg(f.detail, '; ' ORDER BY f.detail)
    FROM ingest.export_findings f JOIN quality.check_catalogue c USING (check_name)
    WHERE f.export_id IN (SELECT export_id FROM ingest.applied_exports)
    GROUP BY ALL
),
fiqr AS (
    SELECT '(all)' AS export_id, 'fiqr_items' AS table_name, c.check_name, c.kind, c.description,
           (SELECT count(*) FROM response.fiqr_questionnaires) AS rows_checked,
           CASE c.check_name
               WHEN 'fiqr_unscorable' THEN (SELECT count(*) FROM response.fiqr_questionnaires WHERE NOT scorable)
               ELSE (SELECT count(*) FROM response.fiqr_disagreements) END AS rows_failed,
           c.threshold_pct, c.severity, NULL AS detail
    FROM quality.check_catalogue c WHERE c.kind = 'derived'
),
gx AS (
    SELECT export_id, table_name, check_name, 'great_expectations', description, rows_checked,
           rows_failed, threshold_pct, severity, NULL AS detail
    FROM quality.gx_outcomes
    -- The suites of this mart and of run_info run after it is built (they show in Dagster);
    -- what they found last run would describe a mart that is being replaced.
    WHERE table_name NOT IN ('marts.data_quality', 'marts.run_info')
),
all_checks AS (
    SELECT * FROM contract UNION ALL SELECT * FROM extra UNION ALL SELECT * FROM findings
    UNION ALL SELECT * FROM fiqr UNION ALL SELECT * FROM gx
)
SELECT export_id, table_name, check_name, kind, description, rows_checked, rows_failed,
       round(100.0 * rows_failed / NULLIF(rows_checked, 0), 4) AS pct_failed,
       threshold_pct, severity,
       CASE WHEN coalesce(100.0 * rows_failed / NULLIF(rows_checked, 0), 0) <= threshold_pct
                 AND NOT (threshold_pct = 0 AND rows_failed > 0)
            THEN 'pass' ELSE 'fail' END AS status,
       detail
FROM all_checks
ORDER BY export_id, table_name, check_name;
