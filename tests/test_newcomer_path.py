"""A new user's path through the README: demo exports written into one raw folder keep their
patients apart, and a reused id whose sex or age changes is flagged, not silently merged."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipelines.cli import print_summary
from tests.conftest import DEMO_EXPORT, query_snapshot, run_pipeline, settings_for

SITE_A = "2026-11-01T0600_site-a"  # written as the README writes it: no --id-prefix
# Two exports of different people under one prefix (as the demo's `P` once was): ids collide.
# Both sort apart from the demo wherever its folder sorts, so the later one is SITE_C.
SITE_B, SITE_C = "2026-11-02T0600_site-b", "2026-11-03T0600_site-c"


def _demo_data(out, *extra: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "demo-data", "--patients", "60", "--seed", "1",
                           "--out", str(out), *extra], check=True, capture_output=True, text=True)
    return done.stderr


@pytest.fixture(scope="module")
def three_exports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("newcomer")
    raw = tmp / "raw"
    shutil.copytree(DEMO_EXPORT, raw / DEMO_EXPORT.name)
    told = _demo_data(raw / SITE_A)
    (raw / SITE_A / "notes.txt").write_text("sent by hand\n", encoding="utf-8")  # an export-level finding
    _demo_data(raw / SITE_B, "--id-prefix", "Q")
    _demo_data(raw / SITE_C, "--id-prefix", "Q", "--seed", "2", "--patients", "80")  # 20 new ids
    settings = settings_for(tmp, raw)
    result = run_pipeline(settings)
    return settings, result, told


def _ids(export) -> set[str]:
    return set(pd.read_csv(export / "patients.csv", dtype=str)["patient_id"])


def test_demo_data_gives_each_export_its_own_ids_and_says_which(three_exports, tmp_path):
    settings, result, told = three_exports
    raw = Path(settings.raw_dir)
    site_a = _ids(raw / SITE_A)
    assert site_a.isdisjoint(_ids(raw / DEMO_EXPORT.name))
    prefix = sorted(site_a)[0][:-7]
    assert prefix != "P" and f"ids {prefix}0000001" in told
    _demo_data(tmp_path / SITE_A)  # the same folder name and seed: the same ids, so re-writing is harmless
    assert _ids(tmp_path / SITE_A) == site_a
    _demo_data(tmp_path / "2026-11-03T0600_site-c")
    assert _ids(tmp_path / "2026-11-03T0600_site-c").isdisjoint(site_a)


def test_a_reused_id_with_another_sex_or_age_is_an_identity_conflict(three_exports):
    settings, result, _ = three_exports
    assert result.success
    # Independently: the two exports' files, and what the warehouse kept.
    site_b, site_c = (pd.read_csv(Path(settings.raw_dir) / e / "patients.csv", dtype={"patient_id": str})
                      for e in (SITE_B, SITE_C))
    both = site_b.merge(site_c, on="patient_id", suffixes=("_b", "_c"))
    expected = int(((both.sex_b != both.sex_c) | (both.age_years_b != both.age_years_c)).sum())
    assert expected > 0
    rows = query_snapshot(settings, """
        SELECT export_id, severity, status, rows_failed, rows_checked, description, detail
        FROM marts.data_quality WHERE check_name = 'identity_conflict' AND rows_failed > 0""")
    assert len(rows) == 1
    export, severity, status, failed, checked, description, detail = rows[0]
    assert (export, severity, status, failed) == (SITE_C, "warning", "fail", expected)
    assert checked > failed  # the patients read, not the findings
    assert "another person" in description and f"from {SITE_B}/patients.csv:" in detail
    # The later export still wins.
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    kept = con.execute("SELECT patient_id, export_id FROM core.patients").df()
    con.close()
    assert set(kept[kept.patient_id.isin(both.patient_id)].export_id) == {SITE_C}
    # Exports with their own ids pass the check.
    passing = query_snapshot(settings, f"""SELECT status FROM marts.data_quality
        WHERE check_name = 'identity_conflict' AND export_id = '{SITE_A}'""")
    assert passing == [("pass",)]


# A unit change naming its instrument and what the check means: tests/test_quality_catalogue.py
# (test_a_unit_change_fails_its_check_and_publishes_nothing), one run for both.


def test_the_run_summary_lines_up_says_what_each_check_means_and_what_to_do_next(three_exports):
    import yaml

    from pipelines.settings import RULES_DIR

    settings, result, _ = three_exports
    buffer = io.StringIO()
    print_summary(settings, result.run_id, buffer)
    text = buffer.getvalue()
    lines = text.splitlines()
    failing = query_snapshot(settings, "SELECT check_name, table_name, export_id, description FROM marts.data_quality "
                                       "WHERE status = 'fail'")
    assert {"identity_conflict", "unknown_file"} <= {c for c, *_ in failing}
    header = lines.index(next(t for t in lines if t.split() == ["severity", "check", "table", "export", "failed",
                                                                  "where"]))
    rows = lines[header + 1: header + 1 + len(failing)]
    for name in ("check", "table", "export", "failed"):
        column = lines[header].index(name)
        assert all(row[column - 1] == " " and row[column] != " " for row in rows), name
    by_check = {row.split()[1]: row for row in rows}
    assert by_check["identity_conflict"][lines[header].index("export"):].startswith(SITE_C)
    assert by_check["unknown_file"][lines[header].index("failed"):].startswith("- ")  # no "1 row" for a file
    assert "row(s)" not in text and " 1 rows" not in text
    meanings = lines[lines.index("What they mean:") + 1:]
    catalogue = {c["check"]: c["description"] for c in
                 yaml.safe_load((RULES_DIR / "quality_checks.yaml").read_text())["checks"]}
    for check in ("identity_conflict", "unknown_file"):
        assert any(t.split()[0] == f"{check}:" and t.endswith(catalogue[check]) for t in meanings), check
    shown = meanings[:len({c for c, *_ in failing})]
    assert len({len(t) - len(t.split(":", 1)[1].lstrip()) for t in shown}) == 1  # the meanings line up
    tail = text[text.index("Next:"):]
    # Each suggested command reaches this run's marts (not the project's default), as printed.
    where = f"--marts {settings.marts_dir}"
    for step in (f"clinic sql {where} ", f"clinic explain {where} <patient_id>",
                 str(Path(settings.marts_dir) / "data_docs" / "index.html"),
                 f"clinic release {where} --warehouse {settings.warehouse} ", str(settings.release_dir)):
        assert step in tail, step
    # The suggested query for the failing checks still shows which check failed on an 80-column
    # terminal (clinic sql shows the leading columns that fit).
    from pipelines.sql_shell import display_value, fit_columns

    query = tail.split(f'sql {where} "', 1)[1].split('"', 1)[0]
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    try:
        con.execute("SET search_path = 'marts'")
        result = con.execute(query)
        names, rows = [d[0] for d in result.description], result.fetchall()
    finally:
        con.close()
    widths = [max([len(n), *(len(display_value(r[i])) for r in rows)]) for i, n in enumerate(names)]
    assert rows and names[0] == "check_name" and 0 in fit_columns(widths, 80)
    assert len(set(rows)) == len(rows)  # one check failing in several tables or columns: rows told apart
    # The release line says what `clinic release` would do with this set, as its preview found.
    preview = json.loads((settings.release_preview_dir / "manifest.json").read_text())
    assert (f"would refuse now: {preview['refused']}" if "refused" in preview
            else "makes the next release into") in tail


def test_the_summary_names_a_refusal_the_preview_found(tmp_path):
    from pipelines.cli import _preview_refusal

    assert _preview_refusal(tmp_path) is None  # no preview
    (tmp_path / "manifest.json").write_text(json.dumps({"for_release": False}))
    assert _preview_refusal(tmp_path) is None
    (tmp_path / "manifest.json").write_text(json.dumps({"refused": "only 3 patient(s) were added"}))
    assert _preview_refusal(tmp_path) == "only 3 patient(s) were added"


def test_demo_data_never_writes_over_an_export(tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "raw" / "2026-11-01T0600_site-a"
    assert main(["demo-data", "--patients", "20", "--seed", "1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["demo-data", "--patients", "20", "--seed", "2", "--out", str(out)]) == 2
    assert "exists and is not empty; nothing was written" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_pages_link_the_data_docs_and_say_how_many_rows_passing_checks_quarantined(three_exports):
    from dashboards.page import DATA_DOCS_LINK

    settings, _, _ = three_exports
    pages = Path(settings.dashboards_dir)
    assert (pages / DATA_DOCS_LINK).resolve().is_file()
    [(under_passing,)] = query_snapshot(settings, """
        SELECT sum(rows_affected) FROM marts.quarantine q WHERE NOT EXISTS (
            SELECT 1 FROM marts.data_quality d WHERE d.status = 'fail' AND d.export_id = q.export_id
            AND d.table_name = q.table_name AND d.check_name = q.rule)""")
    [(fails, passes)] = query_snapshot(settings, "SELECT count(*) FILTER (status = 'fail'), "
                                                 "count(*) FILTER (status = 'pass') FROM marts.data_quality")
    assert under_passing > 0
    sentence = f"{fails} checks fail ("
    for page in ("index.html", "data_quality.html"):
        text = (pages / page).read_text()
        assert f"href='{DATA_DOCS_LINK}'" in text, page
        assert sentence in text and f"{passes} pass ({under_passing:,} rows quarantined under checks that pass" in text
    quality = (pages / "data_quality.html").read_text()
    assert "identity_conflict" in quality and "probably another person under a reused id" in quality


def test_the_all_patients_row_is_indication_all_in_every_mart(three_exports):
    settings, _, _ = three_exports
    [(n,)] = query_snapshot(settings, "SELECT count(*) FROM marts.patient_response")
    for mart, count in [("response_by_indication", "n_patients"), ("cohort_flow", "enrolled")]:
        assert query_snapshot(settings, f"SELECT {count} FROM marts.{mart} WHERE indication = 'all'") == [(n,)], mart
    for mart in ("tolerability", "titration"):
        assert query_snapshot(settings, f"SELECT count(*) FROM marts.{mart} WHERE indication = 'all'")[0][0] > 0
    assert query_snapshot(settings, "SELECT level, indication_group FROM marts.response_by_indication "
                                    "WHERE indication = 'all'") == [("all", None)]
    # A join on indication keeps the all-patients row.
    joined = query_snapshot(settings, """SELECT r.indication, r.n_patients = f.enrolled FROM marts.response_by_indication r
        JOIN marts.cohort_flow f USING (indication) WHERE r.level IN ('indication', 'all') AND r.indication = 'all'""")
    assert joined == [("all", True)]


def test_parquet_files_keep_counts_and_days_integers(three_exports):
    from pipelines.publish.snapshot import published_marts

    marts = [m.name for m in published_marts()]

    settings, _, _ = three_exports
    preview = settings.release_preview_dir
    # The internal marts, and the release's (its suppressed counts are NULL: float64 before).
    for database, folder, tables in ((settings.snapshot, Path(settings.marts_dir), marts),
                                     (preview / "clinic_release.duckdb", preview, None)):
        con, checked = duckdb.connect(str(database), read_only=True), 0
        try:
            for mart in tables or [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]:
                integers = [c for c, t in con.execute(f"SELECT column_name, data_type FROM duckdb_columns() "
                                                      f"WHERE schema_name = 'marts' AND table_name = '{mart}'").fetchall()
                            if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT")]
                frame = pd.read_parquet(folder / f"{mart}.parquet")
                checked += len(integers)
                assert {c: str(frame[c].dtype) for c in integers} == dict.fromkeys(integers, "Int64"), mart
        finally:
            con.close()
        assert checked, database  # the release's counts are among them
    patients = pd.read_parquet(Path(settings.marts_dir) / "patient_response.parquet")
    assert patients.assessment_day.isna().any() and patients.assessment_day.dropna().gt(0).all()


def test_what_changed_compares_with_the_run_published_just_before(demo_run, demo_copy):
    """After the demo run (whose front page says "first published run", tests/test_dashboards_browser.py),
    each run's front page compares with the run published just before it."""
    from pipelines.demo.generator import generate

    settings = demo_copy
    published = [demo_run[1].run_id]
    for day, prefix in ((2, "B"), (3, "C")):
        generate(40, seed=day, id_prefix=prefix).write(Path(settings.raw_dir) / f"2026-11-0{day}T0600_site")
        result = run_pipeline(settings)
        assert result.success
        published.append(result.run_id)
        front = (Path(settings.dashboards_dir) / "index.html").read_text()
        changes = front[front.index("What changed since the previous run"):]
        assert f"Compared with run {published[-2][:8]} " in changes, (published, changes[:300])


def test_the_summary_says_where_a_check_failed_in_words():
    """The "where" column names what a failure concerns: columns with their rows, an instrument
    (what the distribution suite's failing rows are, read from the suite), a file, or the finding."""
    from pipelines.quality.findings import failing_checks, where_text

    assert where_text("out_of_range", "measurements", "value", "value 1200") == "column value (1,200 rows)"
    assert where_text("missing_value", "patients", "", "age_years 1, sex 2") == \
        "columns age_years (1 row), sex (2 rows)"
    assert where_text("reconciliation", "doses", "", "2026-11-01_a/doses.csv") == "file 2026-11-01_a/doses.csv"
    assert where_text("unknown_file", "(export)", "", "notes.txt is not a table of the contract and was not read") \
        == "notes.txt is not a table of the contract and was not read"
    assert where_text("freshness", "(export)", "", "") == "the export as a whole"
    assert where_text("malformed_row", "doses", "", "", level="row") == "whole rows"
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.execute("""CREATE TABLE marts.data_quality AS SELECT * FROM (VALUES
        ('warning', 'gx:expect_column_values_to_be_between(mean_ratio)', 'measurements', '2026-11-02_b',
         'mean_ratio', 'dataset', 2, 5, 'each instrument''s mean ...', 'calprotectin_ug_g, hbi', 'fail'),
        ('warning', 'gx:expect_column_values_to_be_between(volume_ratio)', 'measurements', '2026-11-02_b',
         'volume_ratio', 'dataset', 1, 1, 'rows per patient ...', NULL, 'fail')
        ) t(severity, check_name, table_name, export_id, column_name, level, rows_failed, rows_checked,
            description, detail, status)""")
    where = {f.column: f.where for f in failing_checks(con)}
    assert where == {"mean_ratio": "instruments calprotectin_ug_g, hbi (column mean_ratio)",
                     "volume_ratio": "column volume_ratio"}


def test_ingest_progress_writes_counts_with_thousands_separators(tmp_path):
    """Progress is for people: 1,350 rows read, not 1350 (the stored counts stay numbers)."""
    from pipelines.demo.generator import generate
    from pipelines.ingest.contract import load_contract
    from pipelines.ingest.load import ensure_warehouse, ingest_table
    from pipelines.settings import RULES_DIR

    export = tmp_path / "2026-11-01T0600_site-a"
    counts = generate(150, seed=3, id_prefix="T").write(export)
    assert counts["measurements"] >= 1000
    contract = load_contract(RULES_DIR / "contract.yaml")
    con = duckdb.connect()
    ensure_warehouse(con, contract)
    said = []
    ingest_table(con, contract, "measurements", [export], said.append)
    assert said == [f"{export.name}/measurements.csv: {counts['measurements']:,} rows read, 0 quarantined, "
                    "0 duplicates"]
    assert "," in said[0].split(":")[1].split()[0]
    assert con.execute("SELECT sum(rows_read) FROM ingest.applied_files").fetchone()[0] == counts["measurements"]
