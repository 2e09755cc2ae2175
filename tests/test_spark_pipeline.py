"""The whole pipeline with --engine spark publishes what the DuckDB run publishes.

On the committed demo export and on the messy fixtures, the Spark run's published marts
(patient_response with its categories, reasons, criteria, values and source lines, the
aggregate marts, data quality, quarantine, the trajectories) equal the DuckDB run's, column,
type and row (numbers to 1e-9 relative: the quartiles' interpolation rounds differently in
the last bit); run_info says which engine ran.
"""

from __future__ import annotations

import shutil

import pytest

from pipelines.cli import main
from pipelines.engines import plan
from pipelines.publish.snapshot import published_marts
from pipelines.settings import SQL_DIR
from tests.conftest import DEMO_EXPORT, FIXTURES, materialization, query_snapshot, run_pipeline, settings_for
from tests.engine_compare import differences, needs_spark, relation

MARTS = [m.name for m in published_marts()]  # the snapshot's marts, from their .yml

pytestmark = pytest.mark.xdist_group("spark")  # one worker, one Spark session for every Spark test

COMPARED = [m for m in MARTS if m != "run_info"]


def published(settings) -> dict:
    import duckdb

    con = duckdb.connect(str(settings.snapshot), read_only=True)
    try:
        return {m: relation(con, f"marts.{m}") for m in COMPARED}
    finally:
        con.close()


def assert_same_marts(on_duckdb, on_spark) -> None:
    expected, got = published(on_duckdb), published(on_spark)
    found = {m: differences(expected[m], got[m]) for m in COMPARED}
    assert not any(found.values()), {m: d for m, d in found.items() if d}
    assert all(expected[m][1] for m in ("patient_response", "response_by_indication", "quarantine"))


def engine_of_runs(settings) -> list[str]:
    return [e for (e,) in query_snapshot(settings, "SELECT engine FROM marts.run_info ORDER BY run_time")]


@needs_spark
def test_the_demo_export_publishes_the_same_marts_on_spark(demo_run, spark_session, tmp_path):
    on_duckdb, duckdb_result = demo_run
    assert duckdb_result.success
    raw = tmp_path / "raw"
    shutil.copytree(DEMO_EXPORT, raw / DEMO_EXPORT.name)
    on_spark = settings_for(tmp_path, raw, engine="spark")
    result = run_pipeline(on_spark)
    assert result.success
    assert_same_marts(on_duckdb, on_spark)
    assert engine_of_runs(on_spark) == ["spark"] and engine_of_runs(on_duckdb) == ["duckdb"]
    meta = materialization(result, "patient_response").metadata
    assert meta["engine"].value == "spark" and meta["refresh"].value == "full"
    assert not (tmp_path / "warehouse.duckdb.spark").exists()  # the exchange folder is removed


@needs_spark
def test_the_messy_fixtures_publish_the_same_marts_and_quarantine_on_spark(spark_session, tmp_path):
    runs = {}
    for engine in ("duckdb", "spark"):
        shutil.copytree(FIXTURES / "messy", tmp_path / engine / "raw")
        runs[engine] = settings_for(tmp_path / engine, tmp_path / engine / "raw", engine=engine)
        assert run_pipeline(runs[engine]).success, engine
    assert_same_marts(runs["duckdb"], runs["spark"])
    assert query_snapshot(runs["spark"], "SELECT count(*) FROM marts.quarantine")[0][0] > 0


def test_a_file_spark_cannot_run_stops_clinic_run_before_any_work(tmp_path, monkeypatch, capsys):
    """Transpiled when the run starts: a business file with a statement Spark cannot run
    (here the orphan bookkeeping, DELETE/INSERT) stops it with exit 2, naming the file."""
    shutil.copytree(DEMO_EXPORT, tmp_path / "raw" / DEMO_EXPORT.name)
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    listed = tmp_path / "sql" / "staging" / "_files.yml"
    listed.write_text(listed.read_text().replace("runs_on: warehouse", "runs_on: engine"))
    monkeypatch.setenv("CLINIC_SQL_DIR", str(tmp_path / "sql"))
    monkeypatch.setattr(plan, "staging_file", lambda table: ("orphan_rows", {
        "table_name": table.name, "column": '"patient_id"', "column_name": "patient_id", "parent": "patients"}))
    code = main(["run", "--engine", "spark", "--raw", str(tmp_path / "raw"), "--warehouse",
                 str(tmp_path / "warehouse.duckdb"), "--marts", str(tmp_path / "marts")])
    assert code == 2
    assert "sql/staging/orphan_rows.sql cannot run on Spark" in capsys.readouterr().err
    assert not (tmp_path / "warehouse.duckdb").exists() and not (tmp_path / "marts").exists()


@pytest.mark.parametrize("remote", ["spark://host:7077", "http://host"])
def test_a_remote_that_is_not_spark_connect_is_refused(tmp_path, capsys, remote):
    code = main(["run", "--engine", "spark", "--spark-remote", remote, "--raw", str(DEMO_EXPORT.parent),
                 "--warehouse", str(tmp_path / "w.duckdb"), "--marts", str(tmp_path / "marts")])
    assert code == 2 and "Spark Connect URL" in capsys.readouterr().err
