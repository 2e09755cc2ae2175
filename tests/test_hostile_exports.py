"""Exports written by a careless or hostile supplier (issue: hostile exports).

Most tests drive the ingest stage itself on a real DuckDB file (it is where a file's
shape meets the checks, and it is fast); the rules-file tests go through `clinic run`.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.csv_safe import neutralise
from pipelines.demo.generator import generate
from pipelines.ingest.contract import (
    ContractError,
    IdentifierPattern,
    _export_names,
    check_identifier_pattern,
    load_contract,
)
from pipelines.ingest.exports import complete_exports, shown_name, unfit_exports
from pipelines.ingest.load import ingest_table, plan_ingest
from pipelines.ingest.staging import stage
from pipelines.response.rules import RulesError, load_rules
from pipelines.settings import RULES_DIR
from pipelines.sqlfiles import run_sql
from tests.conftest import DEMO_EXPORT

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
                  "__no_numbers", "__extras", "__extra_identifier", "__breaks", "__any_break"]
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
    # Extra columns are listed by name once they passed the identifier checks, if their name is plain.
    listed = {r[0] for r in con.execute("SELECT column_name FROM ingest.extra_columns").fetchall()}
    assert "failed_check" in listed and "__num:value" not in listed
    assert any(name.endswith("its name not shown)") for name in listed)


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


@pytest.mark.parametrize("hostile", ["raw*", "ra?", "ra[w]", "r*"])
def test_a_raw_folder_path_is_never_a_pattern(tmp_path, hostile):
    """Export names are plain (the grammar), but the raw folder's own path may hold glob characters:
    read as a pattern, `raw*/2026-01-05_a/patients.csv` would also read `raww/...`."""
    rows = [f"PAT{i:04d},site-a,fibromyalgia,ldn,F,50,2024" for i in range(200)]
    other = [f"OTH{i:04d},site-b,crps,ldn,M,40,2023" for i in range(200)]
    export(tmp_path / hostile, "2026-01-05_a", {"patients.csv": "\n".join([PATIENTS_HEADER, *rows]) + "\n"})
    export(tmp_path / "raww", "2026-01-05_a", {"patients.csv": "\n".join([PATIENTS_HEADER, *other]) + "\n"})
    con = ingest(tmp_path / hostile, tmp_path / "wh.duckdb")
    read = dict(con.execute("SELECT export_id, rows_read FROM ingest.applied_files").fetchall())
    assert read == {"2026-01-05_a": 200}
    assert con.execute("SELECT count(*) FROM core.patients WHERE patient_id LIKE 'OTH%'").fetchone() == (0,)
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


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_quote_that_never_closes_rejects_the_file_with_every_line_counted(tmp_path, newline):
    """One stray quote made the rest of the file the text of one record: 1 row quarantined, the
    other lines neither loaded nor quarantined, and the counts still reconciled (they count
    records). Such a file is rejected whole, its data lines counted; a quote inside a value (an
    odd number of them, but nothing spanning lines) is text, as before."""
    rows = [f"PAT0001,{day},pain_nrs,5" for day in range(10, 20)]
    rows[3] = rows[3].replace(",5", ',"5')  # line 5 (after the header and three rows)
    export(tmp_path / "raw", "2026-01-05_a", {
        "patients.csv": f"{PATIENTS_HEADER}\n{GOOD_PATIENT}\n",
        "measurements.csv": newline.join(["patient_id,study_day,instrument,value,notes", *rows]) + newline})
    export(tmp_path / "raw", "2026-01-06_b", {
        "measurements.csv": 'patient_id,study_day,instrument,value,notes\nPAT0001,30,pain_nrs,5,a 2" cut\n'})
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    [(source, rule, detail, rows_affected)] = con.execute(
        "SELECT source_file, rule, detail, rows_affected FROM ingest.quarantine").fetchall()
    assert (source, rule, rows_affected) == ("2026-01-05_a/measurements.csv", "unreadable_file", 10)
    assert "is never closed" in detail and ("on line 5" in detail or newline == "\r\n")
    assert con.execute("SELECT study_day FROM core.measurements").fetchall() == [(30,)]
    every_file_reconciles(con)


def test_a_files_progress_line_counts_its_conflicting_duplicates_as_quarantined(tmp_path):
    """Rows sharing a key with other values are quarantined after the file's own checks; the
    file's line said '0 quarantined' for them while the run's totals counted them."""
    export(tmp_path / "raw", "2026-01-05_a", {"patients.csv": "\n".join([
        PATIENTS_HEADER, "PAT0001,site-a,crps,ldn,F,40,2024", "PAT0001,site-a,crps,ldn,M,40,2024",
        "PAT0002,site-a,crps,ldn,F,41,2024", "PAT0002,site-a,crps,ldn,F,41,2024", "PAT0003,site-a,crps,ldn,F,42,2024"]) + "\n"})
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    plan = plan_ingest(con, tmp_path / "raw", CONTRACT)
    said = []
    ingest_table(con, CONTRACT, "patients", plan.pending, progress=said.append)
    assert said == ["2026-01-05_a/patients.csv: 5 rows read, 2 quarantined, 1 duplicates"]
    assert con.execute("SELECT rule, count(*) FROM ingest.quarantine GROUP BY ALL").fetchall() == [
        ("conflicting_duplicate", 2)]


def test_the_same_rows_in_two_files_of_one_table_count_once_then_as_exact_duplicates(tmp_path):
    """patients.csv and a Parquet copy of it in one export: the copy's rows were counted as
    accepted though the merge kept the first file's (found by an operator probe)."""
    rows = [PATIENTS_HEADER, GOOD_PATIENT, "PAT0002,site-a,crps,ldn,F,41,2024"]
    folder = export(tmp_path / "raw", "2026-01-05_a", {"patients.csv": "\n".join(rows) + "\n"})
    duckdb.execute(f"COPY (FROM read_csv('{folder / 'patients.csv'}', all_varchar = true)) "
                   f"TO '{folder / 'patients.parquet'}' (FORMAT parquet)")
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    files = con.execute("SELECT source_file, rows_read, accepted, quarantined, duplicates FROM ingest.applied_files "
                        "WHERE table_name = 'patients' ORDER BY source_file").fetchall()
    assert files == [("2026-01-05_a/patients.csv", 2, 2, 0, 0), ("2026-01-05_a/patients.parquet", 2, 0, 0, 2)]
    assert con.execute("SELECT count(*) FROM core.patients").fetchall() == [(2,)]
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
    "belief above all patients": (RULES.replace("clinic_belief: {meaningful: 60, minimal: 20,",
                                                "clinic_belief: {meaningful: 60, minimal: 30,"),
                                  "clinic_belief", "add up to 110%"),
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
    shutil.copytree(DEMO_EXPORT, raw / DEMO_EXPORT.name)
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
@given(hostile_measurements(), st.sampled_from(["2026-01-05_a", "2026-01-05T0600_b-1", "0000-00-00_c_d"]))
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


# --- names are data: export names, ids and every CSV the project writes ----------------------

HOSTILE_NAMES = {
    "address": "2026-11-02T0600_jane.doe@example.com",
    "escapes": "2026-11-02T0700_\x1b[2J\x1b[Hzz9 fake text\x07",
    "formula": '=HYPERLINK("x.example","click")',
}
TRACES = [b"jane.doe", b"example.com", b"\x1b[2J", b"\x1b[H", b"zz9 fake", b"HYPERLINK", b"x.example", b"-2-3-4"]


@pytest.mark.parametrize("name", ["0000-00-00T0000_demo", "2026-11-02T0600_site-a", "2026-11-01_clean"])
def test_names_that_fit_the_grammar_are_applied(tmp_path, name):
    export(tmp_path, name, {"patients.csv": f"{PATIENTS_HEADER}\n{GOOD_PATIENT}\n"})
    assert [p.name for p in complete_exports(tmp_path, CONTRACT)] == [name]
    assert unfit_exports(tmp_path, CONTRACT) == []


@pytest.mark.parametrize("name", [*HOSTILE_NAMES.values(), "demo", "2026-11-02T0600_-a", "2026-11-02T0600_1961-04-12",
                                  "2026-11-02T0600_5551234567", "2026-11-02T0600_site a", "-2026-11-02T0600_a"])
def test_names_that_do_not_fit_are_not_applied_and_described_without_the_name(tmp_path, name):
    export(tmp_path, "2026-11-01T0600_site-a", {"patients.csv": f"{PATIENTS_HEADER}\n{GOOD_PATIENT}\n"})
    export(tmp_path, name, {"patients.csv": f"{PATIENTS_HEADER}\n{GOOD_PATIENT}\n"})
    assert [p.name for p in complete_exports(tmp_path, CONTRACT)] == ["2026-11-01T0600_site-a"]
    [said] = unfit_exports(tmp_path, CONTRACT)
    assert "not applied" in said and f"{len(name)} characters" in said and "sorting " in said
    site = name.split("_", 1)[-1]
    assert name not in said and (len(site) < 3 or site not in said)
    assert all(ch.isprintable() for ch in said)


def test_the_export_grammar_is_checked_when_the_contract_loads():
    good = {"name": r"^(?P<taken>[0-9]{8})_(?P<site>[a-z]+)$", "example": "20261102_a"}
    assert _export_names({"exports": good}).example == "20261102_a"
    for broken, says in (({}, "declare the export name grammar"),
                         ({**good, "name": "^[0-9]{8}_[a-z]+$"}, "(?P<site>"),
                         ({**good, "name": "^(?P<site>[0-9"}, "cannot read"),
                         ({**good, "matches": ["2026110_a"]}, "should fit"),
                         # a loose pattern may not let an unsafe character through
                         ({**good, "name": r"^(?P<site>.+)$", "example": "=cmd"}, "should fit"),
                         ({**good, "does_not_match": ["20261102_b"]}, "should not fit")):
        with pytest.raises(ContractError, match=re.escape(says)):
            _export_names({"exports": broken} if broken else {})


def test_ids_start_with_a_letter_or_a_digit(tmp_path):
    export(tmp_path / "raw", "2026-01-05_a", {"patients.csv": "\n".join(
        [PATIENTS_HEADER, GOOD_PATIENT, "-2-3-4,site-a,crps,ldn,F,50,2024", "=1+2,site-a,crps,ldn,F,50,2024",
         "PAT0002,+site,crps,ldn,F,50,2024", "PAT0003,@site,crps,ldn,F,50,2024"]) + "\n"})
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    assert con.execute("SELECT patient_id FROM core.patients").fetchall() == [("PAT0001",)]
    assert {(r[1], r[2], r[3]) for r in quarantine(con)} == {
        (3, "invalid_format", "patient_id"), (4, "invalid_format", "patient_id"),
        (5, "invalid_format", "site_id"), (6, "invalid_format", "site_id")}


@pytest.mark.parametrize(("field", "written"), [
    ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("-2-3-4", "'-2-3-4"), ("+1+1", "'+1+1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("-5", "-5"), ("+1.5e3", "+1.5e3"), ("-0.25", "-0.25"), ("P0001", "P0001"), ("", ""),
    ("a=b", "a=b")])
def test_csv_fields_that_would_start_a_formula_are_neutralised(field, written):
    assert neutralise(field) == written


def test_entry_names_are_shown_only_when_safe():
    assert shown_name("notes.csv", CONTRACT) == "'notes.csv'"
    for hostile in ("=cmd.csv", "\x1b[2J.csv", "jane@example.com.csv", "a b.csv"):
        assert hostile not in shown_name(hostile, CONTRACT)


def test_hostile_names_leave_no_trace_in_what_a_run_prints_stores_or_exports(tmp_path):
    """Through the real `clinic run` and `clinic sql --format csv`: three hostile export names and
    a patient id that starts with a dash; afterwards no byte of them is in the output, the
    warehouse, the published folder or the Dagster instance, and no CSV field starts a formula."""
    raw, home = tmp_path / "raw", tmp_path / "dagster_home"
    generate(40, seed=3, id_prefix="H").write(raw / "2026-11-01T0600_site-a")
    with (raw / "2026-11-01T0600_site-a" / "patients.csv").open("a") as fh:
        fh.write("-2-3-4,site-a,crps,ldn,F,50,2024\n")
    for name in HOSTILE_NAMES.values():
        generate(5, seed=4, id_prefix="Z").write(raw / name)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    where = ["--raw", str(raw), "--marts", str(tmp_path / "marts"), "--warehouse", str(tmp_path / "wh.duckdb")]
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", *where], capture_output=True, env=env,
                         timeout=900)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    printed = run.stdout + run.stderr
    assert b"export_name" in printed and b"was not applied" in printed
    csv_out = subprocess.run([sys.executable, "-m", "pipelines.cli", "sql", "--marts", str(tmp_path / "marts"),
                              "--format", "csv",
                              "FROM data_quality; FROM run_info; FROM quarantine; FROM patient_response;"
                              "SELECT '-9-9-9' AS planted, -5 AS n"],
                             capture_output=True, env=env, timeout=300)
    assert csv_out.returncode == 0, csv_out.stderr
    fields = [f for row in csv.reader(csv_out.stdout.decode().splitlines()) for f in row]
    assert "'-9-9-9" in fields and "-5" in fields
    assert not [f for f in fields if f[:1] in ("=", "+", "-", "@") and not neutralise(f) == f]
    failing = subprocess.run([sys.executable, "-m", "pipelines.cli", "sql", "--marts", str(tmp_path / "marts"),
                              "--format", "csv", "SELECT rows_failed, status FROM data_quality "
                              "WHERE check_name = 'export_name'"], capture_output=True, env=env, timeout=300)
    assert failing.stdout.decode().splitlines()[1:] == ["3,fail"]
    stored = [p for folder in (tmp_path / "marts", home) for p in folder.rglob("*") if p.is_file()]
    stored.append(tmp_path / "wh.duckdb")
    for data in [printed, csv_out.stdout, csv_out.stderr, *(p.read_bytes() for p in stored)]:
        assert not [t for t in TRACES if t in data]


def test_extra_column_names_are_stored_only_when_plain(tmp_path):
    header = PATIENTS_HEADER + ',notes,"=HYPERLINK(""x.example"")",\x1b[2Jzz9 fake,-2-3-4'
    export(tmp_path / "raw", "2026-01-05_a", {"patients.csv": f"{header}\n{GOOD_PATIENT},a,b,c,d\n"})
    con = ingest(tmp_path / "raw", tmp_path / "wh.duckdb")
    stored = sorted(r[0] for r in con.execute("SELECT column_name FROM ingest.extra_columns").fetchall())
    assert stored == ["(column 10, its name not shown)", "(column 11, its name not shown)",
                      "(column 9, its name not shown)", "notes"]
    assert con.execute("SELECT patient_id FROM core.patients").fetchall() == [("PAT0001",)]


def test_a_raw_folder_of_only_unfit_names_says_so(tmp_path):
    from pipelines.ingest.load import InputsMissing

    export(tmp_path / "raw", HOSTILE_NAMES["address"], {"patients.csv": f"{PATIENTS_HEADER}\n{GOOD_PATIENT}\n"})
    with pytest.raises(InputsMissing) as refused:
        plan_ingest(duckdb.connect(str(tmp_path / "wh.duckdb")), tmp_path / "raw", CONTRACT)
    assert "fits the export grammar" in str(refused.value) and "e-mail address" in str(refused.value)
    assert "jane" not in str(refused.value)


def test_demo_data_warns_when_its_folder_would_not_be_applied(tmp_path):
    for name, warned in (("demo", True), ("2026-11-02T0600_site-a", False)):
        done = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo-data", "--patients", "3", "--out",
                               str(tmp_path / name)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and ("will not apply it" in done.stderr) == warned, done.stderr
        assert ("apply it with" in done.stderr) != warned  # not both: one says what to do next
