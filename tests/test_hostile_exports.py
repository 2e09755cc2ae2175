"""Exports written by a careless or hostile supplier (issue: hostile exports).

Most tests drive the ingest stage itself on a real DuckDB file (it is where a file's
shape meets the checks, and it is fast); the rules-file tests go through `clinic run`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.ingest.contract import (
    ContractError,
    IdentifierPattern,
    check_identifier_pattern,
    load_contract,
)
from pipelines.ingest.load import ingest_table, plan_ingest
from pipelines.ingest.staging import stage
from pipelines.response.rules import RulesError, load_rules
from pipelines.settings import RULES_DIR
from pipelines.sqlfiles import run_sql

CONTRACT = load_contract(RULES_DIR / "contract.yaml")
PATIENTS_HEADER = "patient_id,site_id,indication,regimen,sex,age_years,start_year"
GOOD_PATIENT = "PAT0001,site-a,fibromyalgia,ldn,F,50,2024"


def ingest(raw: Path, warehouse: Path) -> duckdb.DuckDBPyConnection:
    """Apply every complete export under `raw` to a warehouse file, as the loaded_* assets do,
    then reconcile (the rows_reconcile check's SQL)."""
    con = duckdb.connect(str(warehouse))
    plan = plan_ingest(con, raw, CONTRACT)
    for table in CONTRACT.tables:
        ingest_table(con, CONTRACT, table, plan.pending)
    stage(con, CONTRACT, "measurements")
    run_sql(con, "quality", "reconciliation")
    return con


def export(raw: Path, name: str, files: dict[str, bytes | str]) -> Path:
    folder = raw / name
    folder.mkdir(parents=True)
    for file, content in files.items():
        (folder / file).write_bytes(content.encode() if isinstance(content, str) else content)
    (folder / "_READY").touch()
    return folder


def quarantine(con) -> set[tuple]:
    return set(con.execute("SELECT table_name, line_number, rule, column_name FROM ingest.quarantine").fetchall())


def every_file_reconciles(con) -> None:
    broken = con.execute("SELECT source_file, unaccounted FROM quality.reconciliation WHERE unaccounted <> 0"
                         ).fetchall()
    assert not broken


# --- 1. a file's columns live in their own namespace -----------------------------------------

INTERNAL_NAMES = ["failed_check", "failure_detail", "key_hash", "line_number", "export_id", "source_file",
                  "file_order", "rowid", "__failed_check", "__failure_detail", "__key_hash", "__line_offset",
                  "__inner_breaks", "__overflow", "__field1", "__field2", "__extra1", "__extra8",
                  "__no_numbers"]
for _col in [c for t in CONTRACT.tables.values() for c in t.column_names]:
    INTERNAL_NAMES += [f"{_col}__identifier", f"{_col}__typed", f"{_col}__num", f"__identifier:{_col}",
                       f"__typed:{_col}", f"__num:{_col}", f"__offset:{_col}"]
SHADOWS = sorted(set(INTERNAL_NAMES) | {n.upper() for n in INTERNAL_NAMES} | {n.title() for n in INTERNAL_NAMES})
HOSTILE_VALUES = ["false", "0", "", "true", "1", "NULL"]


def test_no_column_name_can_switch_a_check_off(tmp_path):
    # Every working column the pipeline uses, in three cases, as extra columns holding
    # values that would pass any check they stood in for.
    extras = ",".join(SHADOWS)
    pad = ",".join(HOSTILE_VALUES[i % len(HOSTILE_VALUES)] for i in range(len(SHADOWS)))
    export(tmp_path / "raw", "2026-01-05_hostile", {
        "patients.csv": f"{PATIENTS_HEADER},{extras}\n"
                        f"123-45-6789,site-a,fibromyalgia,ldn,F,50,2024,{pad}\n"  # line 2: an SSN as id
                        f"PAT0002,555 123 4567,fibromyalgia,ldn,F,50,2024,{pad}\n"  # line 3: a phone as site
                        f"{GOOD_PATIENT},{pad}\n",  # line 4: fine
        "measurements.csv": f"patient_id,study_day,instrument,value,{extras}\n"
                            f"PAT0001,-7,fiqr_total,130,{pad}\n"  # line 2: out of range
                            f"PAT0001,170,fiqr_total,1_0,{pad}\n"  # line 3: not a number of the contract
                            f"PAT0001,168,fiqr_total,36,{pad}\n",  # line 4: fine
    })
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    assert {("patients", 2, "identifier_value", "patient_id"), ("patients", 3, "identifier_value", "site_id"),
            ("measurements", 2, "out_of_range", "value"),
            ("measurements", 3, "invalid_type", "value")} <= quarantine(con)
    assert con.execute("SELECT patient_id, site_id FROM core.patients").fetchall() == [("PAT0001", "site-a")]
    assert con.execute("SELECT study_day, value FROM core.measurements").fetchall() == [(168, 36.0)]
    every_file_reconciles(con)
    # Extra columns are listed by name once they passed the identifier checks.
    listed = {r[0] for r in con.execute("SELECT column_name FROM ingest.extra_columns").fetchall()}
    assert "failed_check" in listed and "__num:value" in listed


# --- 2. one pattern dialect, for headers as for cells -------------------------------------------


@pytest.mark.parametrize("pattern", CONTRACT.identifier_values, ids=lambda p: p.label + " " + p.pattern[:12])
def test_each_identifier_pattern_means_the_same_in_sql_and_python(pattern: IdentifierPattern):
    con = duckdb.connect()
    for text in (*pattern.matches, *pattern.does_not_match):
        in_sql = con.execute("SELECT regexp_matches(trim(?), ?, 'i')", [text, pattern.pattern]).fetchall()[0][0]
        in_python = pattern.python.search(text.strip()) is not None
        assert in_sql == in_python == (text in pattern.matches), text


def test_a_posix_class_or_disagreeing_pattern_stops_the_contract_loading():
    with pytest.raises(ContractError, match="POSIX"):
        check_identifier_pattern(IdentifierPattern("e-mail", r"[^@[:space:]]+@x\.org", ("a@x.org",)))
    with pytest.raises(ContractError, match="DuckDB cannot read"):
        check_identifier_pattern(IdentifierPattern("look-ahead", r"(?=a)a", ("a",)))
    with pytest.raises(ContractError, match="should match"):
        check_identifier_pattern(IdentifierPattern("digits", r"^[0-9]{3}$", ("12",)))


def test_an_email_address_as_a_column_name_rejects_the_file_and_is_never_stored(tmp_path):
    planted = "jane.doe@example.com"
    export(tmp_path / "raw", "2026-01-05_a", {
        "patients.csv": f"{PATIENTS_HEADER},{planted}\n{GOOD_PATIENT},x\n"})
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    assert quarantine(con) == {("patients", None, "identifier_column", "")}
    every_file_reconciles(con)
    con.execute("CHECKPOINT")
    con.close()
    assert planted.encode() not in (tmp_path / "wh.duckdb").read_bytes()


# --- 4. paths are literals ----------------------------------------------------------------------


@pytest.mark.parametrize("hostile", ["2026-01-0*", "2026-01-0?_a", "2026-01-0[5]_a", "2026-01-*"])
def test_an_export_name_is_never_a_pattern(tmp_path, hostile):
    rows = [f"PAT{i:04d},site-a,fibromyalgia,ldn,F,50,2024" for i in range(200)]
    other = [f"OTH{i:04d},site-b,crps,ldn,M,40,2023" for i in range(200)]
    export(tmp_path / "raw", "2026-01-05_a", {"patients.csv": "\n".join([PATIENTS_HEADER, *rows]) + "\n"})
    export(tmp_path / "raw", hostile, {"patients.csv": "\n".join([PATIENTS_HEADER, *other]) + "\n"})
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    read = dict(con.execute("SELECT export_id, rows_read FROM ingest.applied_files").fetchall())
    assert read == {"2026-01-05_a": 200, hostile: 200}
    credited = dict(con.execute("SELECT export_id, count(*) FROM core.patients GROUP BY ALL").fetchall())
    assert credited == {"2026-01-05_a": 200, hostile: 200}
    every_file_reconciles(con)


# --- 5, 6. physical line numbers --------------------------------------------------------------


def physical_line(data: bytes, offset: int) -> int:
    """The line an editor shows for a byte offset: LF, CRLF and a lone CR each end a line."""
    return 1 + len(re.findall(rb"\r\n|\r|\n", data[:offset]))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_line_numbers_are_physical_through_blank_lines_and_any_line_ending(tmp_path, newline):
    lines = ["patient_id,study_day,instrument,value,notes",
             "PAT0001,-7,fiqr_total,60,",
             "",                                   # line 3: blank
             "   ",                                # line 4: whitespace only (a record with no values)
             'PAT0001,60,fiqr_total,55,"two',      # line 5: a quoted newline...
             'lines"',                             # line 6: ...ends here
             "",                                   # line 7: blank
             "PAT0001,170,fiqr_total,130,",        # line 8: out of range
             'PAT0001,200,fiqr_total,"',           # line 9: a quoted value over two lines
             '140",',                              # line 10
             "PAT0001,168,fiqr_total,36,", ""]     # line 11
    export(tmp_path / "raw", "2026-01-05_a", {
        "patients.csv": f"{PATIENTS_HEADER}\n{GOOD_PATIENT}\n",
        "measurements.csv": newline.join(lines)})
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    assert {(line, rule) for _, line, rule, _ in quarantine(con)} == {
        (4, "missing_value"), (8, "out_of_range"), (9, "out_of_range")}
    assert con.execute("SELECT study_day, line_number FROM core.measurements ORDER BY 1").fetchall() == [
        (-7, 2), (60, 5), (168, 11)]
    every_file_reconciles(con)


def test_cr_cr_lf_never_crashes_a_run(tmp_path):
    # CR CR LF (a file converted twice): an editor sees an empty line after each record,
    # DuckDB reads the LF as the start of the next record's first value.
    export(tmp_path / "raw", "2026-01-05_a", {
        "patients.csv": f"{PATIENTS_HEADER}\r\r\n{GOOD_PATIENT}\r\r\nPAT0002,site-a,crps,ldn,M,40,2024"})
    export(tmp_path / "raw", "2026-01-06_b", {
        "patients.csv": f'{PATIENTS_HEADER}\r\r\nPAT0003,site-a,"crps",ldn,F,40,2024\r\r\nPAT0004,x,crps,ldn,F,40,2024'})
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    # Without quotes the records line up with the editor's lines: the odd value is quarantined
    # on the line that shows it. With quotes the split cannot be lined up: the file is rejected.
    assert con.execute("SELECT patient_id, line_number FROM core.patients").fetchall() == [("PAT0001", 3)]
    found = con.execute("SELECT source_file, line_number, rule, detail, rows_affected FROM ingest.quarantine "
                        "ORDER BY source_file").fetchall()
    assert found[0][:3] == ("2026-01-05_a/patients.csv", 5, "invalid_format")
    assert found[1][:3] == ("2026-01-06_b/patients.csv", None, "unreadable_file")
    assert "cannot be split into lines" in found[1][3] and found[1][4] == 2
    every_file_reconciles(con)


# --- 7. the rules file is checked before any work ----------------------------------------------

RULES = (RULES_DIR / "response_rules.yaml").read_text()
BROKEN_RULES = {
    "missing indication": ("\n".join(x for x in RULES.splitlines() if not x.strip().startswith("crps:")),
                           "indications", "missing: crps"),
    "negative threshold": (RULES.replace("relative_reduction_pct: 30,", "relative_reduction_pct: -30,", 1),
                           "indications.fibromyalgia.relative_reduction_pct", "greater than 0"),
    "misspelt measure": (RULES.replace("primary_measure: msis29_physical", "primary_measure: msis29_phys"),
                         "indications.multiple_sclerosis.primary_measure", "not an instrument"),
    "reversed window": (RULES.replace("assessment: {from_day: 56, to_day: 252",
                                      "assessment: {from_day: 252, to_day: 56"), "windows.assessment", "after"),
    "percentage above 100": (RULES.replace("relative_reduction_pct: 50, remission_below",
                                           "relative_reduction_pct: 150, remission_below"),
                             "indications.crohns_disease.relative_reduction_pct", "less than or equal to 100"),
    "unknown sleep event": (RULES.replace("events: [insomnia, vivid_dreams]", "events: [insomnia, nightmares]"),
                            "early_sleep_events.events", "nightmares"),
}


@pytest.mark.parametrize("case", BROKEN_RULES)
def test_a_broken_rules_file_names_the_key_and_its_line(tmp_path, case):
    text, key, words = BROKEN_RULES[case]
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as raised:
        load_rules(path, CONTRACT)
    message = str(raised.value)
    line = int(re.search(rf", line (\d+): {re.escape(key)}:", message).group(1))
    assert words in message
    assert key.split(".")[-1] in text.splitlines()[line - 1] or key.split(".")[1] in text.splitlines()[line - 1]


def test_clinic_run_with_a_broken_rules_file_stops_before_any_work(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(Path(__file__).parent.parent / "data" / "raw" / "demo", raw / "demo")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("relative_reduction_pct: 30,", "relative_reduction_pct: -30,", 1))
    yaml_error = tmp_path / "bad_yaml.yaml"
    yaml_error.write_text(RULES.replace("version: \"1\"", "version: [1", 1))
    for bad, says in ((rules, "relative_reduction_pct"), (yaml_error, "not valid YAML: line")):
        out = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--raw", str(raw), "--marts",
                              str(tmp_path / "marts"), "--warehouse", str(tmp_path / "wh.duckdb"), "--rules",
                              str(bad)], capture_output=True, text=True, timeout=300)
        assert out.returncode == 2, out.stderr
        assert says in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "marts").exists() and not (tmp_path / "wh.duckdb").exists()


# --- hostile headers and line endings, fuzzed -----------------------------------------------

IDENTIFIERS = ["123-45-6789", "jane.doe@example.com", "+44 1632 960123", "1961-04-12"]
MEASUREMENT_COLUMNS = ["patient_id", "study_day", "instrument", "value"]


@st.composite
def hostile_measurements(draw):
    """A measurements.csv with random extra, duplicate-named and colliding columns in random
    order, blank and whitespace lines, mixed line endings, quoted line breaks and planted bad
    values; returns the bytes and, per planted defect, the physical line of the bad field."""
    extras = draw(st.lists(st.sampled_from(SHADOWS[:40] + ["notes", "notes", "", "Comment", "x[1]", "*"]),
                           max_size=4))
    columns = draw(st.permutations(MEASUREMENT_COLUMNS + [f"extra:{i}:{n}" for i, n in enumerate(extras)]))
    header = [c.split(":", 2)[2] if c.startswith("extra:") else c.upper() if draw(st.booleans()) else c
              for c in columns]
    data = bytearray()
    expected: dict[int, str] = {}  # line of the bad field -> rule
    planted: list[str] = []

    def newline():
        return draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))

    data += ",".join(header).encode() + b"\n"
    for i in range(draw(st.integers(1, 8))):
        while draw(st.integers(0, 4)) == 0:  # blank or whitespace-only lines between records
            blank = draw(st.sampled_from([b"", b"  "]))
            if blank:  # a line of spaces is a record with no values: quarantined where it is
                expected[physical_line(bytes(data), len(data))] = "missing_value"
            data += blank + b"\n"
        kind = draw(st.sampled_from(["good", "good", "range", "identifier"]))
        values = {"patient_id": "PAT0001", "study_day": str(100 + i), "instrument": "pain_nrs", "value": "5"}
        if kind == "range":
            values["value"] = "11"
        elif kind == "identifier":
            values["value"] = draw(st.sampled_from(IDENTIFIERS))
            planted.append(values["value"])
        fields = []
        for c in columns:
            if c.startswith("extra:"):
                fields.append(draw(st.sampled_from(['', 'x', '"multi\nline"', '"a\r\nb"', '"q""uote"'])))
            else:
                fields.append(values[c])
        record_start = len(data)
        for j, (c, f) in enumerate(zip(columns, fields, strict=True)):
            if c == "value" and kind != "good":
                expected[physical_line(bytes(data), len(data))] = (
                    "out_of_range" if kind == "range" else "identifier_value")
            data += f.encode() + (b"," if j < len(fields) - 1 else b"")
        assert record_start < len(data)
        data += newline()
    return bytes(data), expected, planted


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                             HealthCheck.large_base_example, HealthCheck.too_slow])
@given(hostile_measurements(), st.sampled_from(["2026-01-05_a", "2026-01-0*", "x[1]", "a?b"]))
def test_fuzzed_headers_and_line_endings(tmp_path_factory, case, export_name):
    data, expected, planted = case
    tmp = tmp_path_factory.mktemp("fuzz")
    export(tmp / "raw", export_name, {"patients.csv": f"{PATIENTS_HEADER}\n{GOOD_PATIENT}\n",
                                      "measurements.csv": data})
    con = ingest(tmp / "raw", tmp / "wh.duckdb")
    every_file_reconciles(con)
    rows = con.execute("SELECT line_number, rule FROM ingest.quarantine WHERE table_name = 'measurements'"
                       ).fetchall()
    assert dict(rows) == expected, (data, rows)
    con.execute("CHECKPOINT")
    con.close()
    written = (tmp / "wh.duckdb").read_bytes()
    for value in planted:
        assert value.encode() not in written
