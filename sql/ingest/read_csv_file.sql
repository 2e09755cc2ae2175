-- One CSV file as text, one row per record. Every column is read as text so a bad cell
-- becomes a quarantine row, not a failed load; an extra trailing field lands in
-- __overflow, a missing one is NULL. (A FROM-clause fragment for classify_rows.sql.)
(SELECT ${trimmed_columns}
 FROM read_csv(${path}, header = true, auto_detect = false, columns = ${columns},
               delim = ',', quote = '"', escape = '"', null_padding = true,
               strict_mode = false, encoding = 'utf-8', parallel = ${parallel}))
