-- One CSV file as text, one row per record (a FROM-clause fragment for classify_rows.sql).
-- Every field is read as text under a positional name (__field1, __field2, ...), so a bad
-- cell becomes a quarantine row, not a failed load, and no name in the file reaches the
-- checks: the select list maps the fields to contract columns and the extra columns' list. An
-- extra trailing field lands in __overflow, a missing one is NULL. The path is a literal
-- (glob characters bracketed), never a pattern.
(SELECT ${fields}
 FROM read_csv(${path}, header = true, auto_detect = false, columns = ${columns},
               delim = ',', quote = '"', escape = '"', null_padding = true,
               strict_mode = false, encoding = 'utf-8', parallel = ${parallel}))
