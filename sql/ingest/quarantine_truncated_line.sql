-- A file whose last line has no line break was cut short (a copy or a transfer stopped part-way):
-- its last record may be cut too (a `500` read as `5`), so it is quarantined at the file's last
-- line and not loaded (a record failing another check already is quarantined by that one).
-- Its check number follows the contract's checks.
INSERT INTO check_names SELECT coalesce(max(check_no), 0) + 1, 'truncated_line', '' FROM check_names;
UPDATE ${classified_rows} SET
    __failed_check = (SELECT max(check_no) FROM check_names),
    __failure_detail = 'the last line of the file has no line break: the file looks cut short here; deliver it whole',
    __line_offset = __inner_breaks
WHERE rowid = (SELECT max(rowid) FROM ${classified_rows}) AND __failed_check IS NULL;
