-- The staged table: the current row per natural key, with rows whose ${column_name} points to
-- no ${parent} row (after all exports are applied) held back: the foreign key comes from the
-- contract's `references:`. A view, so staging costs no copy.
CREATE OR REPLACE VIEW staging.${table_name} AS
SELECT c.* FROM core.${table_name} c SEMI JOIN core.${parent} p ON p.${column} = c.${column};

-- Orphans are judged on the final state: a patient delivered later adopts earlier rows.
DELETE FROM quality.orphan_rows WHERE table_name = '${table_name}';
INSERT INTO quality.orphan_rows
SELECT c.export_id, '${table_name}', c.source_file, c.line_number, 'orphan_row', '${column_name}',
       '${column_name} points to no accepted ${parent} row', 1
FROM core.${table_name} c ANTI JOIN core.${parent} p ON p.${column} = c.${column};
