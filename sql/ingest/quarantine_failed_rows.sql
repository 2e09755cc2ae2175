-- Failed rows to quarantine, at the physical line of the field holding the bad value (held in
-- batch_quarantine until the export's transaction writes it to ingest.quarantine).
INSERT INTO batch_quarantine
SELECT ${export_id}, ${table_name}, ${source_file}, c.line_number + c.__line_offset, k.rule,
       k.column_name, c.__failure_detail, 1
FROM classified_file c JOIN check_names k ON k.check_no = c.__failed_check;
