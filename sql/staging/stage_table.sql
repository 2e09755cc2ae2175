-- The staged table: the current row per natural key, with rows whose ${column_name} points to
-- no ${parent} row (after all exports are applied) held back: the foreign key comes from the
-- contract's `references:`. A view, so staging costs no copy (orphan_rows.sql records the
-- rows held back).
CREATE OR REPLACE VIEW staging.${table_name} AS
SELECT c.* FROM core.${table_name} c SEMI JOIN core.${parent} p ON p.${column} = c.${column};
