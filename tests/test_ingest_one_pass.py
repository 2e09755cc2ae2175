"""The ingest's shortcuts (issue 20, item 4) give what the full work gives: the guarded trim
equals trimming every cell, and reading a file without counting the line breaks in its fields,
then counting them only when its records and lines do not line up, numbers and quarantines
every row as counting them always does (which also checks every id row by row, where the
shortcut checks each distinct id once)."""

from __future__ import annotations

import re

import duckdb
import pytest

from pipelines.ingest.contract import load_contract
from pipelines.ingest.exports import export_files
from pipelines.ingest.lines import count_lines, scan
from pipelines.ingest.load import (
    IN_MEMORY,
    _read_and_classify,
    lines_of,
    number_lines,
    read_and_classify,
    trimmed,
)
from pipelines.settings import RULES_DIR
from pipelines.sqlfiles import run_sql

CONTRACT = load_contract(RULES_DIR / "contract.yaml")
SPACES = ["", " ", "  a", "a  ", " a b ", "\ta\t", "\u00a0a", "a\u3000", "\u2009", "é", "aé", "é ",
          "\u200ba", " \u00a0 ", "a\n", "\n", "P7BEA68-0000001", "!", " !", "\x1fa", None]


def test_the_guarded_trim_equals_trimming_every_cell():
    con = duckdb.connect()
    con.execute("CREATE TABLE cells (c VARCHAR)")
    con.executemany("INSERT INTO cells VALUES (?)", [[v] for v in SPACES])
    differing = con.execute(f"SELECT c FROM cells WHERE {trimmed('c')} IS DISTINCT FROM nullif(trim(c), '')"
                            ).fetchall()
    assert differing == []
    assert con.execute(f"SELECT count(*) FROM cells WHERE {trimmed('c')} IS NULL").fetchone()[0] == 5


MEASUREMENTS = {  # the file, and each record's (line_number, __failed_check)
    "plain, one line each": ('patient_id,study_day,instrument,value\nPAT0001,1,pain_nrs,5\n'
                             'PAT0001,2,pain_nrs,50\nPAT0001,3,pain_nrs,4',  # the last line is cut short
                             [(2, None), (3, 15), (4, 16)]),
    "quoted, one line each": ('"patient_id","study_day","instrument","value"\n"PAT0001",1,"pain_nrs",5\n'
                              '"PAT0001",2," pain_nrs ",50\n\n"PAT0001",3,"pain_nrs"," 4 "\n',
                              [(2, None), (3, 15), (5, None)]),  # line 4 is empty
    "CRLF, one line each": ('patient_id,study_day,instrument,value\r\nPAT0001,1,pain_nrs,5\r\n'
                            'PAT0001,2,pain_nrs,50\r\n', [(2, None), (3, 15)]),
    "CRLF, a quoted line break": ('patient_id,study_day,instrument,value\r\nPAT0001,1,pain_nrs,"1\r\n1"\r\n'
                                  'PAT0001,2,pain_nrs,3\r\n', [(2, 14), (4, None)]),
    "a quoted line break": ('patient_id,study_day,instrument,value\nPAT0001,1,pain_nrs,5\n'
                            '"PAT\n0001",2,pain_nrs,5\nPAT0001,3,pain_nrs,"1\n1"\nPAT0001,4,pain_nrs,3\n',
                            [(2, None), (3, 7), (5, 14), (7, None)]),  # a break in the id, in the value
    # An id's checks run once per distinct id, after the row's other checks, when no record spans
    # lines: the first failing check still wins, whichever of the two found it.
    "ids failing beside other checks": ('patient_id,study_day,instrument,value\n123-45-6789,1,pain_nrs,5\n'
                                        '123-45-6789,,pain_nrs,5\n-bad,1,pain_nrs,5\n-bad,9999,pain_nrs,5\n'
                                        '-bad,1,pain_nrs,5,extra\nPAT0001,1,pain_nrs,5\n'
                                        'PAT0001,1,pain_nrs,555-123-4567\n-bad,2,pain_nrs,555-123-4567\n',
                                        [(2, 1), (3, 1), (4, 7), (5, 7), (6, 5), (7, None), (8, 4), (9, 4)]),
}


@pytest.mark.parametrize("case", sorted(MEASUREMENTS))
def test_counting_line_breaks_only_when_lines_disagree_numbers_rows_as_counting_them_always(tmp_path, case):
    text, expected = MEASUREMENTS[case]
    folder = tmp_path / "2026-01-05_a"
    folder.mkdir()
    (folder / "measurements.csv").write_bytes(text.encode())
    table = CONTRACT.tables["measurements"]
    ef = next(f for f in export_files(folder, list(CONTRACT.tables)) if f.table == "measurements")
    rows = "SELECT * FROM classified_file ORDER BY line_number"
    con = duckdb.connect()
    line_map, unterminated = lines_of(con, _read_and_classify(con, CONTRACT, table, ef, count_breaks=True))
    number_lines(con, line_map)
    if unterminated:
        run_sql(con, "ingest", "quarantine_truncated_line", classified_rows=IN_MEMORY.name)
    always = con.execute(rows).fetchall()
    read_and_classify(con, CONTRACT, table, ef)
    assert con.execute(rows).fetchall() == always
    assert [(row[0], row[-4]) for row in always] == expected  # line_number, __failed_check


@pytest.mark.parametrize("data", [b"", b"a", b"a\n", b"a \nb", "a\n\u00e9".encode(), b"a\nb", b"a\n\nb\n\n", b"\n", b"a\r\nb", b"a\rb\r",
                                  b'"a\nb",c\n', b"a\n" * 100_000 + b"b"])
def test_counting_lines_agrees_with_the_scan_or_leaves_the_file_to_it(tmp_path, data):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    counted, shape = count_lines(path), scan(path)
    if b"\r" in data or not data:
        assert counted is None  # the scan's work
        return
    lines = len(re.findall(rb"\n", data)) + (not data.endswith(b"\n"))  # as an editor shows them
    assert (counted.lines, counted.unterminated) == (lines, shape.unterminated)
    assert counted.spaceless_ascii == (b" " not in data and data.isascii())
    assert counted.lines >= shape.last_content_line


@pytest.mark.parametrize("case", ["quoted, one line each", "CRLF, a quoted line break", "a quoted line break"])
def test_a_file_is_scanned_at_most_once_even_when_read_twice(tmp_path, monkeypatch, case):
    import pipelines.ingest.load as load

    scans = []
    monkeypatch.setattr(load, "scan", lambda path: scans.append(path) or scan(path))
    folder = tmp_path / "2026-01-05_a"
    folder.mkdir()
    (folder / "measurements.csv").write_bytes(MEASUREMENTS[case][0].encode())
    ef = next(f for f in export_files(folder, list(CONTRACT.tables)) if f.table == "measurements")
    read_and_classify(duckdb.connect(), CONTRACT, CONTRACT.tables["measurements"], ef)
    assert scans == [ef.path]


@pytest.mark.parametrize("cells, expected", [
    (["pain_nrs", "PAIN_NRS", "Pain_Nrs", "pain nrs", "hbi", "HBI "],  # a file with spaces: trimmed
     ["pain_nrs", "pain_nrs", "pain_nrs", None, "hbi", "hbi"]),
    (["pain_nrs", "PAIN_NRS", "Pain_Nrs", "painnrs", "hbi", "HBI"],  # none: trimmed nowhere
     ["pain_nrs", "pain_nrs", "pain_nrs", None, "hbi", "hbi"])])
def test_an_enum_matches_in_any_case_and_keeps_the_contracts_spelling(tmp_path, cells, expected):
    """Cells spelled as the contract spells them skip lower() (contract._typed_expr): the
    others still match case-insensitively, and every match is stored in the contract's spelling."""
    folder = tmp_path / "2026-01-05_a"
    folder.mkdir()
    (folder / "measurements.csv").write_text("patient_id,study_day,instrument,value\n" + "".join(
        f"PAT0001,{day},{cell},5\n" for day, cell in enumerate(cells, 1)))
    ef = next(f for f in export_files(folder, list(CONTRACT.tables)) if f.table == "measurements")
    con = duckdb.connect()
    read_and_classify(con, CONTRACT, CONTRACT.tables["measurements"], ef)
    assert [r[0] for r in con.execute("SELECT instrument FROM classified_file ORDER BY line_number").fetchall()
            ] == expected
