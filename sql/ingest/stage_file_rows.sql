-- Rows of the file that passed every check, exact duplicates (same typed values in the
-- same file) dropped after their first occurrence and counted.
INSERT INTO export_batch
SELECT ${columns}, ${export_id} AS export_id, ${source_file} AS source_file, line_number,
       ${file_order} AS file_order
FROM (
    SELECT *, row_number() OVER (PARTITION BY ${columns} ORDER BY line_number) AS occurrence
    FROM classified_file WHERE failed_check IS NULL
) WHERE occurrence = 1;
