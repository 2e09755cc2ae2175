-- Give every raw row of one file its typed values and the number of the first check it
-- fails (NULL when it passes). The checks come from rules/contract.yaml.
CREATE OR REPLACE TEMP TABLE classified_file AS
SELECT line_number, ${typed_columns},
       CASE ${failure_cases} END AS failed_check,
       CASE ${detail_cases} END AS failure_detail
FROM raw_file;
