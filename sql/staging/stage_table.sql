-- The staged table: the current row per natural key, with rows whose patient is unknown
-- (after all exports are applied) held back. A view, so staging costs no copy.
CREATE OR REPLACE VIEW staging.${table_name} AS
SELECT c.* FROM core.${table_name} c SEMI JOIN core.patients p USING (patient_id);

-- Orphans are judged on the final state: a patient delivered later adopts earlier rows.
DELETE FROM quality.orphan_rows WHERE table_name = '${table_name}';
INSERT INTO quality.orphan_rows
SELECT c.export_id, '${table_name}', c.source_file, c.line_number, 'orphan_row', 'patient_id',
       'patient_id points to no accepted patient', 1
FROM core.${table_name} c ANTI JOIN core.patients p USING (patient_id);
