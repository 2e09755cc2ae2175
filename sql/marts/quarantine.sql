-- Every rejected row or file: found at ingest, plus orphans judged on the final state.
-- `detail` never quotes text (it may hold an identifier); `rows_affected` is the number
-- of data rows a file-level entry stands for (1 for a row).
CREATE OR REPLACE TABLE marts.quarantine AS
SELECT export_id, table_name, source_file, line_number, rule, column_name, detail, rows_affected
FROM (SELECT * FROM ingest.quarantine UNION ALL SELECT * FROM quality.orphan_rows)
ORDER BY export_id, table_name, source_file, line_number NULLS FIRST, rule;
