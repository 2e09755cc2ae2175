-- One row per export x table x check (the OHDSI DQD results table): the check catalogue
-- (quality.check_catalogue: rules/quality_checks.yaml and the Great Expectations suites)
-- crossed with what the checks found (quality.check_results). A check that ran and found
-- nothing passes; a declared check that produced no result is "not run", never passing; a
-- finding that no catalogue entry declares is a fatal failure, so nothing disappears.
CREATE OR REPLACE TABLE marts.data_quality AS
WITH applied AS (
    SELECT DISTINCT export_id FROM ingest.applied_exports
),
delivered AS (  -- the tables each export held a file for
    SELECT DISTINCT export_id, table_name FROM ingest.applied_files
),
expected AS (
    -- Row and file checks run on every file an export delivered.
    SELECT d.export_id, c.* FROM quality.check_catalogue c JOIN delivered d USING (table_name)
    WHERE c.implemented_by IN ('contract', 'ingest', 'staging', 'reconciliation')
      AND c.check_name NOT IN ('missing_table', 'unknown_file')
    UNION ALL
    -- What an export lacks or holds besides tables: looked at for every export.
    SELECT a.export_id, c.* FROM quality.check_catalogue c, applied a
    WHERE c.check_name IN ('missing_table', 'unknown_file')
    UNION ALL
    -- Findings over all exports at once, and the mart suites.
    SELECT '(all)', c.* FROM quality.check_catalogue c
    WHERE c.implemented_by = 'derived'
       OR (c.level = 'mart' AND c.table_name NOT IN ('marts.data_quality', 'marts.run_info'))
    UNION ALL
    -- Dataset suites: every export and table; freshness for the newest export only.
    SELECT a.export_id, c.* FROM quality.check_catalogue c, applied a
    WHERE c.level = 'dataset'
      AND (c.table_name <> '(export)' OR a.export_id = (SELECT max(export_id) FROM applied))
),
judged AS (
    SELECT e.export_id, e.table_name, e.column_name, e.check_name, e.level, e.implemented_by, e.description,
           CAST(coalesce(r.rows_checked, CASE WHEN e.implemented_by <> 'great_expectations' THEN
                (SELECT sum(rows_read) FROM ingest.applied_files f
                 WHERE f.export_id = e.export_id AND f.table_name = e.table_name) END) AS BIGINT) AS rows_checked,
           CAST(CASE WHEN r.check_name IS NOT NULL OR e.implemented_by <> 'great_expectations'
                     THEN coalesce(r.rows_failed, 0) END AS BIGINT) AS rows_failed,
           e.threshold_pct, e.severity,
           r.check_name IS NULL AND e.implemented_by = 'great_expectations' AS not_run, r.detail
    FROM expected e
    LEFT JOIN quality.check_results r
      ON r.export_id = e.export_id AND r.table_name = e.table_name AND r.check_name = e.check_name
    UNION ALL
    SELECT r.export_id, r.table_name, '', r.check_name, 'row', 'unknown',
           'found by the pipeline but not declared in the check catalogue (rules/quality_checks.yaml)',
           CAST(r.rows_checked AS BIGINT), CAST(r.rows_failed AS BIGINT), 0, 'fatal', false, r.detail
    FROM quality.check_results r
    WHERE r.rows_failed > 0 AND NOT EXISTS (
        SELECT 1 FROM quality.check_catalogue c WHERE c.check_name = r.check_name AND c.table_name = r.table_name)
)
SELECT export_id, table_name, column_name, check_name, level, implemented_by, description,
       rows_checked, rows_failed,
       round(100.0 * rows_failed / NULLIF(rows_checked, 0), 4) AS pct_failed,
       threshold_pct, severity,
       CASE WHEN not_run THEN 'not run'
            WHEN coalesce(100.0 * rows_failed / NULLIF(rows_checked, 0), 0) <= threshold_pct
                 AND NOT (threshold_pct = 0 AND rows_failed > 0) THEN 'pass'
            ELSE 'fail' END AS status,
       detail
FROM judged
ORDER BY export_id, table_name, check_name;
