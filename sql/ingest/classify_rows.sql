-- Give every raw row of one file its typed values, the number of the first check it
-- fails (NULL when it passes) and that check's detail. The checks come from
-- rules/contract.yaml; a detail never quotes text, only values that parsed as numbers.
-- Numbers, typed values and identifier flags are computed once per row, then checked.
CREATE OR REPLACE TEMP TABLE classified_file AS
SELECT line_number, ${typed_columns}, failed_check,
       CASE failed_check ${detail_cases} END AS failure_detail
FROM (
    SELECT *, CASE ${failure_cases} END AS failed_check
    FROM (
        SELECT *, ${derived_columns}
        FROM (SELECT *, ${number_columns} FROM raw_file)
    )
);
