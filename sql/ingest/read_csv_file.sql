-- One CSV file as text, one row per record, with its line number (the header is line 1).
-- Every column is read as text so a bad cell becomes a quarantine row, not a failed load;
-- an extra trailing field lands in __overflow, a missing one is NULL.
CREATE OR REPLACE TEMP VIEW raw_file AS
SELECT row_number() OVER () + 1 AS line_number, ${trimmed_columns}
FROM read_csv(${path}, header = true, auto_detect = false, columns = ${columns},
              delim = ',', quote = '"', escape = '"', null_padding = true,
              strict_mode = false, encoding = 'utf-8', parallel = ${parallel});
