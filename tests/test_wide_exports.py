"""Wide headers (issue 22, case 7): the work on a file grows linearly with its number of columns.

DuckDB plans a projection in time that grows faster than its number of expressions, so a statement
with a few expressions per extra column made 5,000 columns take minutes. The extra columns are read
into one list and checked by one expression; these tests load real wide exports and check that the
statement names each field a constant number of times, whatever the width.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest.contract import load_contract
from pipelines.ingest.exports import export_files
from pipelines.ingest.load import HEADER_BYTES, classify_sql, ingest_table, plan_ingest, raw_source
from pipelines.settings import RULES_DIR

CONTRACT = load_contract(RULES_DIR / "contract.yaml")
PATIENTS = "patient_id,site_id,indication,regimen,sex,age_years,start_year\nPAT0001,site-a,fibromyalgia,ldn,F,50,2024\n"


def wide_export(raw: Path, name: str, extras: int) -> Path:
    """A measurements.csv with `extras` extra columns and tiny rows: line 2 holds a quoted line
    break in the first extra column and a date (an identifier value) in the next-to-last one,
    which starts on line 3; line 4 is clean; line 5 has a date in the second extra column."""
    folder = raw / name
    folder.mkdir(parents=True)
    header = "patient_id,study_day,instrument,value," + ",".join(f"note_{i}" for i in range(1, extras + 1))

    def row(day: int, cells: dict[int, str]) -> str:
        return f"PAT0001,{day},pain_nrs,5," + ",".join(cells.get(i, f"n{i}") for i in range(1, extras + 1))

    lines = [header, row(1, {1: '"two\nlines"', extras - 1: "1961-04-12"}), row(2, {}), row(3, {2: "1961-04-12"})]
    (folder / "measurements.csv").write_text("\n".join(lines) + "\n")
    (folder / "patients.csv").write_text(PATIENTS)
    (folder / "_READY").touch()
    return folder


def classify_statement(folder: Path) -> str:
    table = CONTRACT.tables["measurements"]
    ef = next(f for f in export_files(folder, list(CONTRACT.tables)) if f.table == "measurements")
    # the widest statement: the one that also lists each field's line breaks
    return classify_sql(CONTRACT, table, raw_source(CONTRACT, table, ef, duckdb.connect(), count_breaks=True))[1]


def loads_with_its_findings(raw: Path, warehouse: Path, extras: int) -> None:
    """The export of wide_export loads: its two identifier cells quarantined at the physical line
    of their field and named by their column, the clean row kept, every extra column listed."""
    con = duckdb.connect(str(warehouse))
    plan = plan_ingest(con, raw, CONTRACT)
    for table in CONTRACT.tables:
        ingest_table(con, CONTRACT, table, plan.pending)
    quarantined = con.execute("SELECT line_number, rule, column_name, detail FROM ingest.quarantine "
                              "ORDER BY line_number").fetchall()
    assert quarantined == [
        (3, "identifier_value", f"note_{extras - 1}", "value redacted: looks like a calendar date"),
        (5, "identifier_value", "note_2", "value redacted: looks like a calendar date")]
    assert con.execute("SELECT study_day FROM core.measurements").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM ingest.extra_columns").fetchone()[0] == extras
    assert con.execute("SELECT rows_read, quarantined FROM ingest.applied_files "
                       "WHERE table_name = 'measurements'").fetchall() == [(3, 2)]
    con.close()


def test_a_wide_header_loads_with_sql_linear_in_its_width(tmp_path):
    sizes = {}
    for extras in (1_250, 5_000):  # 5,000: the width that took minutes
        raw = tmp_path / f"raw{extras}"
        folder = wide_export(raw, "2026-01-05_wide", extras)
        statement = classify_statement(folder)
        # Each field is named a constant number of times (its type, its list, its line breaks).
        code = re.sub(r"--[^\n]*", "", statement)  # the SQL files' comments name a few fields too
        per_field = Counter(re.findall(r"__field(\d+)\b", code))
        assert len(per_field) == 4 + extras and max(per_field.values()) <= 3
        sizes[extras] = len(statement)

        loads_with_its_findings(raw, tmp_path / f"wh{extras}.duckdb", extras)
    # Four times the columns, about four times the SQL (a quadratic statement would be sixteen).
    assert sizes[5_000] < 4.5 * sizes[1_250]


@pytest.mark.parametrize("extras", [3, 6])
def test_a_narrow_file_with_extra_columns_checks_them_the_same_way(tmp_path, extras):
    folder = wide_export(tmp_path / "raw", "2026-01-05_narrow", extras)
    assert classify_statement(folder).count("regexp_matches(trim(x)") == 1  # one check for every extra column
    loads_with_its_findings(tmp_path / "raw", tmp_path / "wh.duckdb", extras)


def test_a_header_that_does_not_end_within_its_limit_rejects_the_file(tmp_path):
    folder = tmp_path / "raw" / "2026-01-05_long"
    folder.mkdir(parents=True)
    names = ",".join(f"c{i}" for i in range(HEADER_BYTES // 4))  # well over the limit, on one line
    (folder / "measurements.csv").write_text(f"patient_id,study_day,instrument,value,{names}\n")
    (folder / "patients.csv").write_text(PATIENTS)
    (folder / "_READY").touch()
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    plan = plan_ingest(con, tmp_path / "raw", CONTRACT)
    ingest_table(con, CONTRACT, "measurements", plan.pending)
    (rule, detail), = con.execute("SELECT rule, detail FROM ingest.quarantine").fetchall()
    assert rule == "unreadable_file" and "header row does not end" in detail


# --- many exports: the dataset checks are one validation per suite ------------------------------


def profiled_exports(con, raw: Path, count: int) -> list[str]:
    """`count` applied exports with profiles (pipelines/quality/assets.py reads them), all to check
    but the first, with every kind of outcome: a unit change (export 3's calprotectin /1000), an
    instrument missing from one, too few rows to judge, lost volume, no baseline profile (export 2)."""
    from pipelines.migrations import migrate

    migrate(con)
    exports = [f"2026-11-{d:02d}T0600_site-a" for d in range(1, count + 1)]
    for i, e in enumerate(exports):
        (raw / e).mkdir(parents=True)
        (raw / e / "_READY").write_text("")
        con.execute("INSERT INTO ingest.applied_exports VALUES (?, 'patients', now())", [e])
        for j, m in enumerate(["pain_nrs", "calprotectin_ug_g", "crp_mg_l"]):
            if (i, m) == (3, "crp_mg_l"):
                continue
            scale = 0.001 if (i, m) == (2, "calprotectin_ug_g") else 1
            con.execute("INSERT INTO quality.export_profiles VALUES (?, 'measurements', ?, ?, 10, ?, ?, NULL)",
                        [e, m, 100 if scale < 1 else [5, 40, 100][(i + j) % 3], (2 + (i + j) % 3) * scale,
                         (6 + i % 2) * scale])
        for j, t in enumerate(CONTRACT.tables):
            con.execute("INSERT INTO quality.export_profiles VALUES (?, ?, '(rows)', ?, ?, NULL, NULL, NULL)",
                        [e, t, [30, 200, 2000][(i * 2 + j) % 3], [10, 25, 60][(i + j) % 3]])
        if i != 1:
            con.execute("INSERT INTO quality.export_profiles VALUES (?, 'patients', 'baseline', 30, 30, NULL, NULL, ?)",
                        [e, [3, 29][i % 2]])
    con.execute("CREATE OR REPLACE TABLE quality.exports_to_check AS SELECT unnest(?) AS export_id", [exports[1:]])
    return exports


@pytest.mark.slow
def test_many_exports_are_checked_in_one_validation_per_suite_each_export_as_if_alone(tmp_path, monkeypatch):
    import dagster as dg

    from pipelines.config import ClinicConfig
    from pipelines.quality.assets import DATASET_SUITES, SUITE_TABLES, dataset_expectations
    from pipelines.quality.gx_validation import suite_path, validate_frame
    from pipelines.quality.gx_worker import GxWorker
    from pipelines.resources import GreatExpectations, Warehouse
    from pipelines.sqlfiles import run_sql

    requests = []
    real_ask = GxWorker._ask
    monkeypatch.setattr(GxWorker, "_ask", lambda self, request: requests.append(request) or real_ask(self, request))
    outcomes, asked = {}, {}
    gx = GreatExpectations()
    try:
        for count in (2, 4):
            raw, warehouse = tmp_path / f"raw{count}", tmp_path / f"wh{count}.duckdb"
            with duckdb.connect(str(warehouse)) as con:
                exports = profiled_exports(con, raw, count)
            clinic = ClinicConfig.with_overrides(raw_dir=raw, marts_dir=tmp_path / f"marts{count}",
                                                 warehouse=warehouse)
            requests.clear()
            dataset_expectations(dg.build_asset_context(), clinic=clinic,
                                 warehouse=Warehouse(database=str(warehouse)), great_expectations=gx)
            asked[count] = sum(1 for r in requests if "data" in r)  # validations (not a worker's reset)
            with duckdb.connect(str(warehouse)) as con:
                outcomes[count] = con.execute(
                    "SELECT export_id, table_name, check_name, rows_checked, rows_failed, detail "
                    "FROM quality.gx_outcomes WHERE table_name <> '(export)' ORDER BY ALL").fetchall()
                checked = {e for (e,) in con.execute("SELECT export_id FROM quality.dataset_checked").fetchall()}
                assert checked == set(exports[1:])
    finally:
        gx.teardown_after_execution(None)
    assert asked[2] == asked[4] == len(DATASET_SUITES) + 1  # + the newest export's freshness
    assert outcomes[2] == [o for o in outcomes[4] if o[0] == exports[1]]  # whatever is checked with it
    [unit_change] = [o[3:] for o in outcomes[4] if o[0] == exports[2] and o[2].endswith("(p90_ratio)")]
    assert unit_change == (3, 1, "calprotectin_ug_g")  # found, and named

    # Each export's outcomes are those its rows get validated alone (the per-export way).
    with duckdb.connect(str(warehouse)) as con:
        run_sql(con, "quality", "dataset_frames")
        alone = []
        for s in DATASET_SUITES:
            for e in exports[1:]:
                for t in (CONTRACT.tables if s.by_table else [SUITE_TABLES[s.suite]]):
                    where = f"export_id = '{e}'" + (f" AND table_name = '{t}'" if s.by_table else "")
                    frame = con.execute(f"SELECT * FROM {s.frame} WHERE {where}").df()
                    alone += [(e, t, o.check_name, o.rows_checked, o.rows_failed, o.detail)
                              for o in validate_frame(frame, suite_path(clinic.expectations_dir, s.suite), t)]
    assert outcomes[4] == sorted(alone)
    assert {(o[3] > 0, o[4] > 0) for o in outcomes[4]} == {(False, False), (True, False), (True, True)}
