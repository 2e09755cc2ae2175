INSERT INTO ingest.quarantine
SELECT ${export_id}, ${table_name}, ${source_file}, c.line_number, k.rule, k.column_name,
       c.failure_detail, 1
FROM classified_file c JOIN check_names k ON k.check_no = c.failed_check;
