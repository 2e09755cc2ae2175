-- Rows of the file that passed every check go to export_batch; exact duplicates (same
-- typed values in the same file) are dropped after their first occurrence and counted.
-- Only keys seen more than once can hold duplicates or contradictions, so the costly
-- grouping by every column runs on those few rows, and the rest streams through.
CREATE OR REPLACE TEMP TABLE file_repeated_keys AS
SELECT ${key} FROM classified_file WHERE failed_check IS NULL
GROUP BY ${key} HAVING count(*) > 1;

INSERT INTO export_batch
SELECT ${columns}, ${export_id}, ${source_file}, line_number, ${file_order}
FROM classified_file c ANTI JOIN file_repeated_keys r USING (${key})
WHERE c.failed_check IS NULL
UNION ALL
SELECT ${columns}, ${export_id}, ${source_file}, min(line_number), ${file_order}
FROM classified_file c SEMI JOIN file_repeated_keys r USING (${key})
WHERE c.failed_check IS NULL
GROUP BY ${columns};

INSERT INTO export_repeated_keys SELECT * FROM file_repeated_keys;
