-- One Parquet file as text, with its row number (1-based) standing for the line number.
CREATE OR REPLACE TEMP VIEW raw_file AS
SELECT file_row_number + 1 AS line_number, ${trimmed_columns}, CAST(NULL AS VARCHAR) AS __overflow
FROM read_parquet(${path}, file_row_number = true);
