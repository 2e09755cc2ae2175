-- The checks that read one text cell and nothing else (does it look like an identifier, does
-- it match the column's pattern), tried once per distinct value of the column instead of once
-- per row: a patient's id repeats on each of their ~90 measurement rows, and these regular
-- expressions took a fifth of classifying measurements (9.7 s of 47 s at 10^8 rows).
-- classify_rows.sql leaves them out for ${column}; a row whose value fails one gets it when it
-- comes before the check the row failed there (checks are tried in number order, so the first
-- that fails is the lowest number), with its detail.
CREATE OR REPLACE TEMP TABLE value_failures AS
SELECT ${column} AS __value, __failed_check, CASE ${detail_cases} END AS __failure_detail
FROM (
    SELECT *, CASE ${failure_cases} END AS __failed_check
    FROM (SELECT ${column}, ${identifier} FROM (SELECT DISTINCT ${column} FROM ${classified_rows}))
)
WHERE __failed_check IS NOT NULL;

UPDATE ${classified_rows} AS c
SET __failed_check = f.__failed_check, __failure_detail = f.__failure_detail
FROM value_failures f
WHERE c.${column} = f.__value AND coalesce(c.__failed_check > f.__failed_check, true);
