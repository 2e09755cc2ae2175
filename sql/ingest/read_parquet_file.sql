-- One Parquet file as text (a FROM-clause fragment for classify_rows.sql): the select list
-- maps the file's columns, by name, to contract columns and the extra columns' list.
(SELECT ${fields}, CAST(NULL AS VARCHAR) AS __overflow FROM read_parquet(${path}))
