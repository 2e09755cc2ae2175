-- Read one file and give every row its typed values, the number of the first check it
-- fails (NULL when it passes) and that check's detail, in one pass (into a temp table, or for
-- a file too big for memory a table of a scratch database: classified_rows_for in load.py).
-- The checks come from rules/contract.yaml; a detail never quotes text, only values that
-- parsed as numbers.
-- Numbers, typed values and identifier flags are computed once per row, then checked. Every
-- working column starts with "__" and the source fragment holds only contract columns
-- and "__" aliases, so a file's column can never stand in for one of them.
-- __line_offset: how many lines below the record's first line the failing field starts
-- (a quoted field before it may hold line breaks); __inner_breaks: the record's breaks.
-- The extra columns are one list (__extras) checked by one expression, and the line breaks one
-- list (__breaks), so the statement grows linearly with the width of the file (DuckDB plans a
-- projection in time growing faster than its number of expressions: 5,000 columns took minutes).
-- The contract columns arrive as text and are trimmed first (empty is NULL), before any check.
SET preserve_insertion_order = true;
CREATE OR REPLACE ${create} ${classified_rows} AS
SELECT ${typed_columns}, __failed_check,
       CASE ${detail_cases} END AS __failure_detail,
       ${line_offset} AS __line_offset, ${inner_breaks} AS __inner_breaks
FROM (
    SELECT *, CASE ${failure_cases} END AS __failed_check
    FROM (
        SELECT *, ${derived_columns}
        FROM (SELECT *, ${number_columns} FROM (SELECT * REPLACE (${trimmed_columns}) FROM ${source}))
    )
);
