-- Rows of the file that passed every check, exact duplicates (same typed values in the
-- same file) dropped after their first occurrence and counted.
INSERT INTO export_batch
SELECT ${columns}, ${export_id} AS export_id, ${source_file} AS source_file,
       min(line_number) AS line_number, ${file_order} AS file_order
FROM classified_file WHERE failed_check IS NULL
GROUP BY ${columns};
