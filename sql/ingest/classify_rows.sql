-- Read one file and give every row its typed values, the number of the first check it
-- fails (NULL when it passes) and that check's detail, in one pass. The checks come from
-- rules/contract.yaml; a detail never quotes text, only values that parsed as numbers.
-- Numbers, typed values and identifier flags are computed once per row, then checked;
-- the hash of the natural key rides along for the search for repeated keys.
SET preserve_insertion_order = true;
CREATE OR REPLACE TEMP TABLE classified_rows AS
SELECT ${typed_columns}, hash(${typed_key}) AS key_hash, failed_check,
       CASE failed_check ${detail_cases} END AS failure_detail
FROM (
    SELECT *, CASE ${failure_cases} END AS failed_check
    FROM (
        SELECT *, ${derived_columns}
        FROM (SELECT *, ${number_columns} FROM ${source})
    )
);
-- The copy keeps the file's order, so a row's rowid is its record number: the line
-- number (header = line 1 in a CSV; the 1-based row in Parquet) without a window, which
-- would make the whole pass serial.
CREATE OR REPLACE TEMP VIEW classified_file AS
SELECT rowid + ${first_line} AS line_number, * FROM classified_rows;
