-- One Parquet file as text (a FROM-clause fragment for classify_rows.sql): ${fields} maps
-- the file's columns, by name, to contract columns and extra-column aliases.
(SELECT ${fields}, CAST(NULL AS VARCHAR) AS __overflow FROM read_parquet(${path}))
