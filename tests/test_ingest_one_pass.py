"""The ingest's shortcuts (issue 20, item 4) give what the full work gives: the guarded trim
equals trimming every cell, and flagging rows with line breaks, then counting them only when
one holds a break, numbers and quarantines every row as counting them always does."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.ingest.contract import load_contract
from pipelines.ingest.exports import export_files
from pipelines.ingest.load import _read_and_classify, number_lines, read_and_classify, trimmed
from pipelines.settings import RULES_DIR

CONTRACT = load_contract(RULES_DIR / "contract.yaml")
SPACES = ["", " ", "  a", "a  ", " a b ", "\ta\t", "\u00a0a", "a\u3000", "\u2009", "é", "aé", "é ",
          "\u200ba", " \u00a0 ", "a\n", "\n", "P7BEA68-0000001", None]


def test_the_guarded_trim_equals_trimming_every_cell():
    con = duckdb.connect()
    con.execute("CREATE TABLE cells (c VARCHAR)")
    con.executemany("INSERT INTO cells VALUES (?)", [[v] for v in SPACES])
    differing = con.execute(f"SELECT c FROM cells WHERE {trimmed('c')} IS DISTINCT FROM nullif(trim(c), '')"
                            ).fetchall()
    assert differing == []
    assert con.execute(f"SELECT count(*) FROM cells WHERE {trimmed('c')} IS NULL").fetchone()[0] == 5


MEASUREMENTS = {
    "quoted, one line each": '"patient_id","study_day","instrument","value"\n"PAT0001",1,"pain_nrs",5\n'
                             '"PAT0001",2," pain_nrs ",50\n\n"PAT0001",3,"pain_nrs"," 4 "\n',
    "a quoted line break": 'patient_id,study_day,instrument,value\nPAT0001,1,pain_nrs,5\n'
                           '"PAT\n0001",2,pain_nrs,5\nPAT0001,3,pain_nrs,"1\n1"\nPAT0001,4,pain_nrs,3\n',
}


@pytest.mark.parametrize("case", sorted(MEASUREMENTS))
def test_flagging_line_breaks_first_numbers_rows_as_counting_them_always(tmp_path, case):
    folder = tmp_path / "2026-01-05_a"
    folder.mkdir()
    (folder / "measurements.csv").write_text(MEASUREMENTS[case])
    table = CONTRACT.tables["measurements"]
    ef = next(f for f in export_files(folder, list(CONTRACT.tables)) if f.table == "measurements")
    rows = "SELECT * EXCLUDE (__key_hash) FROM classified_file ORDER BY line_number"
    con = duckdb.connect()
    number_lines(con, _read_and_classify(con, CONTRACT, table, ef, count_breaks=True))
    always = con.execute(rows).fetchall()
    read_and_classify(con, CONTRACT, table, ef)
    assert con.execute(rows).fetchall() == always
    lines_and_checks = [(row[0], row[-4]) for row in always]  # line_number, __failed_check
    expected = [(2, None), (3, 15), (5, None)] if case == "quoted, one line each" else [
        (2, None), (3, 7), (5, 14), (7, None)]  # out of range; a break in the id, in the value
    assert lines_and_checks == expected

