-- Rows of the file that passed every check go to export_batch; exact duplicates (same
-- typed values in the same file) are dropped after their first occurrence and counted.
-- Only keys seen more than once (file_repeated_hashes: repeated_key_hashes.sql) can hold
-- duplicates or contradictions, so the grouping by every column runs on those few rows and
-- the rest streams through. Into a fresh warehouse with one file per table (a cold run),
-- the rows with a key seen once cannot contradict anything, so they go straight to the
-- core table instead of through export_batch (one copy of 10^7 rows fewer).
INSERT INTO ${single_key_rows_into}
SELECT ${columns}, ${export_id}, ${source_file}, line_number${file_order_column}
FROM classified_file c
WHERE c.__failed_check IS NULL AND hash(${key}) NOT IN (SELECT __key_hash FROM file_repeated_hashes);

INSERT INTO export_batch
SELECT ${columns}, ${export_id}, ${source_file}, min(line_number), ${file_order}
FROM classified_file c
WHERE c.__failed_check IS NULL AND hash(${key}) IN (SELECT __key_hash FROM file_repeated_hashes)
GROUP BY ${columns};

INSERT INTO export_repeated_keys
SELECT DISTINCT ${key} FROM classified_file
WHERE __failed_check IS NULL AND hash(${key}) IN (SELECT __key_hash FROM file_repeated_hashes);
