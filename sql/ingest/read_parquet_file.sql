-- One Parquet file as text (a FROM-clause fragment for classify_rows.sql).
(SELECT ${trimmed_columns}, CAST(NULL AS VARCHAR) AS __overflow FROM read_parquet(${path}))
