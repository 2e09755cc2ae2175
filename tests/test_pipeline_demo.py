"""The whole pipeline on the demo export, materialised in process with real Dagster."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.publish import snapshot
from pipelines.publish.snapshot import published_marts, sort_keys

MARTS = [m.name for m in published_marts()]  # the snapshot's marts, from their .yml


def test_materialisation_succeeds_with_every_check_passing(demo_run):
    settings, result = demo_run
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    names = {e.check_name for e in evaluations}
    assert {"rows_reconcile", "no_fatal_expectation_failed", "gx_data_quality", "no_fatal_check_failed",
            "disclosure_audit"} <= names


def test_snapshot_holds_every_mart_with_rules_version(demo_run):
    settings, _ = demo_run
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    for mart in MARTS:
        assert con.execute(f"SELECT count(*) FROM marts.{mart}").fetchone()[0] > 0, mart
        assert (Path(settings.marts_dir) / f"{mart}.parquet").exists()
    for mart in ["patient_response", "response_by_indication", "measure_trajectory",
                 "tolerability", "titration", "cohort_flow", "run_info"]:
        missing = con.execute(f"SELECT count(*) FROM marts.{mart} WHERE rules_version IS NULL "
                              "OR rules_version <> '1'").fetchone()[0]
        assert missing == 0, mart


def test_snapshot_stores_each_mart_in_its_publish_order(demo_run):
    settings, _ = demo_run
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    ordered = [m for m in published_marts() if m.publish_order]
    assert "patient_trajectory" in {m.name for m in ordered}
    for mart in ordered:
        stored = con.execute(f"SELECT * FROM marts.{mart.name}").fetchall()
        assert stored == con.execute(f"SELECT * FROM marts.{mart.name} ORDER BY {mart.publish_order}").fetchall()


@pytest.mark.parametrize("most_values", [1000, 2])
def test_sort_keys_give_the_publish_order_as_text_sorts(monkeypatch, most_values):
    """A text key compared as an ENUM sorts as the text does (byte order: capitals first,
    accents last, NULL last); one with more values than the limit stays text."""
    monkeypatch.setattr(snapshot, "ENUM_KEY_MAX_VALUES", most_values)
    con = duckdb.connect()
    con.execute("CREATE TABLE m (p VARCHAR, k VARCHAR, w INTEGER)")
    con.execute("INSERT INTO m VALUES ('b', 'beta', 2), ('a', 'Zeta', 1), ('b', NULL, 1), ('a', 'élan', 0), "
                "('a', 'alpha', 3), ('b', 'beta', 1), ('a', 'Zeta', 0), ('c', 'alpha', 9), ('b', 'alpha', 4)")
    keys = sort_keys(con, "m", "p, k, w")
    assert ("ENUM" in keys) == (most_values >= 4)
    assert (con.execute(f"SELECT * FROM m ORDER BY {keys}").fetchall()
            == con.execute("SELECT * FROM m ORDER BY p, k, w").fetchall())


def test_every_demo_patient_gets_one_category_and_sources_point_at_real_lines(demo_run):
    settings, _ = demo_run
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    n, distinct, bad = con.execute(
        "SELECT count(*), count(DISTINCT patient_id), count(CASE WHEN category NOT IN "
        "('meaningful','minimal','intolerant','not_assessable') THEN 1 END) "
        "FROM marts.patient_response").fetchone()
    assert n == distinct == 230 and bad == 0
    source, day, value = con.execute(
        "SELECT assessment_source, assessment_day, assessment_value FROM marts.patient_response "
        "WHERE assessment_source LIKE '%measurements.csv:%' LIMIT 1").fetchone()
    export_file, line = source.rsplit(":", 1)
    text = (Path(settings.raw_dir) / export_file).read_text().splitlines()[int(line) - 1]
    raw = next(csv.reader([text]))
    assert int(raw[1]) == day
    assert float(raw[3]) == value


def test_demo_reproduces_the_clinics_experience(demo_run):
    settings, _ = demo_run
    con = duckdb.connect(str(settings.snapshot), read_only=True)
    meaningful, minimal, intolerant = con.execute(
        "SELECT avg((category = 'meaningful')::INT), avg((category = 'minimal')::INT), "
        "avg((category = 'intolerant')::INT) FROM marts.patient_response "
        "WHERE regimen = 'ldn' AND category <> 'not_assessable'").fetchone()
    assert 0.5 <= meaningful <= 0.7 and 0.12 <= minimal <= 0.3 and 0.12 <= intolerant <= 0.3
    by_group = dict(con.execute(
        "SELECT indication_group, avg((category = 'meaningful')::INT) FROM marts.patient_response "
        "WHERE category <> 'not_assessable' GROUP BY ALL").fetchall())
    assert by_group["autoimmune"] > by_group["mechanical"]
    assert by_group["central_sensitisation"] > by_group["mechanical"]


def test_snapshot_is_queryable_while_the_warehouse_is_held_open(demo_run):
    settings, _ = demo_run
    writer = duckdb.connect(str(settings.warehouse))  # holds the warehouse's write lock
    try:
        writer.execute("CREATE OR REPLACE TABLE marts.lock_probe AS SELECT 1 AS x")
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "sql", "--marts", str(settings.marts_dir),
             "SELECT indication, category, count(*) AS n FROM marts.patient_response GROUP BY ALL "
             "ORDER BY ALL"],
            capture_output=True, text=True, timeout=120)
    finally:
        writer.close()
    assert out.returncode == 0, out.stderr
    assert "fibromyalgia" in out.stdout and "meaningful" in out.stdout


def test_dashboards_are_written_with_a_local_plotly(demo_run):
    settings, _ = demo_run
    pages = {p.name for p in settings.dashboards_dir.iterdir()}
    assert {"index.html", "outcomes.html", "trajectories.html", "tolerability.html",
            "cohort_flow.html", "data_quality.html", "plotly.min.js"} <= pages
    outcomes = (settings.dashboards_dir / "outcomes.html").read_text()
    assert 'src="plotly.min.js"' in outcomes and "cdn.plot.ly" not in outcomes


def test_interactive_sql_reads_statements_until_end_of_input(demo_run):
    settings, _ = demo_run
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "sql", "--marts", str(settings.marts_dir)],
                         input="SELECT count(*) AS patients\nFROM patient_response;\nSELECT 1 +;\n",
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1  # a statement failed: the exit status says so
    assert "230" in out.stdout
    assert "SQL error" in out.stderr and "(statement 2, line 3)" in out.stderr  # reported, the session goes on
