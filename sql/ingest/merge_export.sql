-- Apply one export's accepted rows: a row with a key already loaded replaces it when its
-- values differ; an equal row changes nothing (the first loaded keeps its provenance).
-- Keys are unique within one file; with several files of a table the first file wins
-- (the QUALIFY clause the loader adds then; a single file needs none).
CREATE OR REPLACE TEMP VIEW export_rows AS
SELECT * FROM export_batch
${first_file_wins};

DELETE FROM core.${table_name} c USING export_rows n
WHERE ${key_match} AND NOT (${same_values});

INSERT INTO core.${table_name}
SELECT n.* EXCLUDE (file_order) FROM export_rows n
ANTI JOIN core.${table_name} c ON ${key_match};

DROP TABLE export_batch;
