-- A patient whose identifying attributes (the identity_conflict check's columns in
-- rules/quality_checks.yaml: sex, age at the first dose) differ between an earlier export
-- and this one is almost certainly another person under a reused pseudonym. The later
-- export still wins (the merge that follows applies it); each such patient is recorded as an
-- identity_conflict finding naming both source lines and the columns, never the values.
INSERT INTO ingest.export_findings
SELECT n.export_id, 'identity_conflict', ${table_literal},
       n.source_file || ':' || n.line_number || ' differs in ' || concat_ws(', ', ${differing}) ||
       ' from ' || c.source_file || ':' || c.line_number
FROM (SELECT * FROM export_batch
      QUALIFY row_number() OVER (PARTITION BY ${key} ORDER BY file_order, line_number) = 1) n
JOIN core.${table_name} c ON ${key_match}
WHERE ${any_differs};
