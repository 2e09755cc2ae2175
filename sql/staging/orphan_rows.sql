-- Orphans are judged on the final state: a patient delivered later adopts earlier rows.
-- Warehouse bookkeeping (DELETE/INSERT), so it runs in DuckDB whatever the engine.
DELETE FROM quality.orphan_rows WHERE table_name = '${table_name}';
INSERT INTO quality.orphan_rows
SELECT c.export_id, '${table_name}', c.source_file, c.line_number, 'orphan_row', '${column_name}',
       '${column_name} points to no accepted ${parent} row', 1
FROM core.${table_name} c ANTI JOIN core.${parent} p ON p.${column} = c.${column};
