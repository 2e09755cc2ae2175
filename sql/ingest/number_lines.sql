-- The classified rows with each record's physical line number. The copy keeps the file's
-- order, so a row's rowid is its record number; the line is rowid + the first data line
-- (header = line 1 in a CSV; row 1 in Parquet), plus the shift that empty lines and line
-- breaks inside quoted fields add (pipelines/ingest/lines.py; a plain file has none, and
-- no join). No window function, which would make the whole pass serial.
CREATE OR REPLACE TEMP VIEW classified_file AS
SELECT c.rowid + ${first_line} + ${shift} AS line_number, c.*
FROM ${classified_rows} c ${shifts};
