-- Two rows with one natural key and different values in one export contradict each
-- other: all of them go to quarantine, and the earlier exports' row stays as it was.
-- Candidates: with one file per table, only the keys repeated in it (export_repeated_keys);
-- with several files, every row. Equal rows from two files are not a conflict, hence
-- DISTINCT before counting rows per key.
CREATE OR REPLACE TEMP TABLE conflicting AS
SELECT b.* FROM export_batch b
SEMI JOIN (SELECT ${key} FROM (SELECT DISTINCT ${columns} FROM ${candidates})
           GROUP BY ${key} HAVING count(*) > 1) k USING (${key});

INSERT INTO ingest.quarantine
SELECT export_id, ${table_name}, source_file, line_number, 'conflicting_duplicate', '',
       'another row in this export has the same key (' || ${key_names} || ') and different values', 1
FROM conflicting;

DELETE FROM export_batch b USING conflicting c
WHERE b.source_file = c.source_file AND b.line_number = c.line_number;
