-- Apply one export's accepted rows: a row with a key already loaded replaces it when its
-- values differ; an equal row changes nothing (the first loaded keeps its provenance).
CREATE OR REPLACE TEMP TABLE export_rows AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY ${key} ORDER BY file_order, line_number) AS rn
    FROM export_batch
) WHERE rn = 1;

DELETE FROM core.${table_name} c USING export_rows n
WHERE ${key_match} AND NOT (${same_values});

INSERT INTO core.${table_name}
SELECT n.* EXCLUDE (file_order) FROM export_rows n
ANTI JOIN core.${table_name} c ON ${key_match};
