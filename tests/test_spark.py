"""Spark runs the business SQL as DuckDB does: file by file, and as a whole pipeline.

File by file: a small fixture (60 generated patients plus hand-made patients at the edges the
portability rules name: a zero baseline, ties on the assessment day and between visit
weeks, a prorated FIQR questionnaire beside a delivered total, two adverse events ending
treatment on one day, doses on the band boundaries, orphans) is ingested once by DuckDB.
Then, on two copies of that warehouse, each file the engine runs (pipelines/engines/plan.py)
is executed in a run's order, by DuckDB on one and by Spark (transpiled by sqlglot) on the
other, and each relation it defines is compared: columns, types and rows. A view is
evaluated by Spark itself, not by its twin in the warehouse.

Whole pipeline: on the committed demo export, the Spark run's published marts
(patient_response with its categories, reasons, criteria, values and source lines, the
aggregate marts, data quality, quarantine, the trajectories) equal the DuckDB run's, column,
type and row (numbers to 1e-9 relative: the quartiles' interpolation rounds differently in
the last bit); run_info says which engine ran. (Ingest, and so the quarantine, is DuckDB's
on both engines by design; the messy fixtures' odd rows reach the business files through the
file-by-file fixture's defects and edges.)

One file, so one xdist worker (--dist=loadfile) and one Spark session (the JVM starts once).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import pytest
import sqlglot

from pipelines.cli import main
from pipelines.demo.generator import generate
from pipelines.engines import DuckDBCompute, plan
from pipelines.engines.plan import engine_files
from pipelines.engines.spark import SparkCompute
from pipelines.engines.transpile import (
    NotPortable,
    exact_percentiles,
    spark_name,
    to_spark_sql,
    transpile_file,
)
from pipelines.ingest.contract import load_contract
from pipelines.manifest import ENGINE_STAGES, load_manifest
from pipelines.publish.snapshot import published_marts
from pipelines.settings import RULES_DIR, SQL_DIR
from tests.conftest import DEMO_EXPORT, materialization, query_snapshot, run_pipeline, settings_for
from tests.engine_compare import copy_warehouse, differences, needs_spark, relation

CONTRACT = load_contract(RULES_DIR / "contract.yaml")
PLAN = list(engine_files(CONTRACT))


def _file_id(stage: str, name: str, params: dict) -> str:
    suffix = params.get("table_name", "")
    return f"{stage}/{name}.sql" + (f"[{suffix}]" if suffix and name != "stage_patients" else "")


# --- the edge cases -------------------------------------------------------------------------

EDGES = {
    "patients": (["patient_id", "site_id", "indication", "regimen", "sex", "age_years", "start_year"], [
        ["E0001", "site-e", "fibromyalgia", "ldn", "F", "95", "2024"],    # 90+, prorated FIQR
        ["E0002", "site-e", "crps", "ldn", "M", "29", "2024"],           # zero baseline
        ["E0003", "site-e", "mechanical_pain", "ldn", "X", "30", "2025"],  # assessment tie, two AE stops
        ["E0004", "site-e", "crohns_disease", "ldn", "U", "47", "2025"],  # no baseline
        ["E0005", "site-e", "multiple_sclerosis", "ldn", "F", "61", "2024"],  # stopped for lack of effect
        ["E0006", "site-e", "alcohol_use_disorder", "standard_oral", "M", "39", "2023"],  # assessment 0
        ["E0007", "site-e", "opioid_use_disorder", "xr_injectable", "F", "18", "2025"],
    ]),
    "measurements": (["patient_id", "study_day", "instrument", "value"], [
        ["E0001", "-5", "fiqr_total", "40.0"],        # replaced by the scored questionnaire (disagrees)
        ["E0001", "26", "pain_nrs", "6"], ["E0001", "30", "pain_nrs", "5"],  # week 4 (day 28): a tie
        ["E0001", "-3", "pain_nrs", "7"],
        ["E0002", "-1", "pain_nrs", "0"], ["E0002", "168", "pain_nrs", "3"], ["E0002", "28", "pain_nrs", "2"],
        ["E0003", "-2", "pain_nrs", "8"], ["E0003", "160", "pain_nrs", "4"], ["E0003", "176", "pain_nrs", "6"],
        ["E0004", "170", "calprotectin_ug_g", "120"],
        ["E0005", "0", "msis29_physical", "55.5"], ["E0005", "84", "msis29_physical", "50.25"],
        ["E0006", "-10", "heavy_drinking_days_30d", "12"], ["E0006", "168", "heavy_drinking_days_30d", "0"],
        ["E0007", "-1", "opioid_use_days_30d", "20"], ["E0007", "56", "opioid_use_days_30d", "20"],
        ["E0007", "252", "opioid_use_days_30d", "10"],
        ["E9999", "0", "pain_nrs", "5"],              # an orphan
    ]),
    "fiqr_items": (["patient_id", "study_day", "item", "value"],
                   # day -5: function item 4 missing (prorated 9/8); day 168: complete; day 84: unscorable
                   [["E0001", "-5", str(i), str(i % 10)] for i in range(1, 22) if i != 4]
                   + [["E0001", "168", str(i), str((i * 7) % 11)] for i in range(1, 22)]
                   + [["E0001", "84", str(i), "3"] for i in range(1, 20)]),
    "doses": (["patient_id", "study_day", "dose_mg", "formulation"], [
        ["E0001", "0", "0.5", "liquid"], ["E0001", "7", "1.5", "liquid"], ["E0001", "14", "3", "liquid"],
        ["E0001", "21", "4.5", "liquid"], ["E0001", "28", "4.6", "liquid"],
        ["E0002", "0", "4.5", "capsule"], ["E0003", "0", "1.4999", "capsule"], ["E0003", "30", "3.0", "capsule"],
        ["E0005", "0", "3", "capsule"], ["E0006", "0", "50", "tablet"], ["E0007", "0", "380", "injection"],
        ["E9999", "0", "3", "capsule"],               # an orphan
    ]),
    "adverse_events": (["patient_id", "study_day", "event", "severity", "action"], [
        ["E0003", "40", "nausea", "moderate", "discontinued"], ["E0003", "40", "dizziness", "mild", "discontinued"],
        ["E0003", "12", "insomnia", "mild", "none"], ["E0001", "3", "vivid_dreams", "mild", "none"],
        ["E0001", "23", "insomnia", "mild", "dose_reduced"], ["E0002", "27", "vivid_dreams", "mild", "none"],
    ]),
    "discontinuations": (["patient_id", "study_day", "reason"], [
        ["E0005", "90", "lack_of_effect"], ["E0003", "41", "adverse_event"],
    ]),
}


def write_edges(folder: Path) -> None:
    folder.mkdir(parents=True)
    for table, (header, rows) in EDGES.items():
        with (folder / f"{table}.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows([header, *rows])
    (folder / "_READY").touch()


# --- both engines, file by file ----------------------------------------------------------------


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory, spark_session):
    """{file id: [(relation, DuckDB's (schema, rows), Spark's (schema, rows))], or Spark's error}."""
    tmp = tmp_path_factory.mktemp("spark_sql")
    raw = tmp / "raw"
    generate(60, seed=11, defects=0.02).write(raw / "2026-11-01T0600_generated")
    write_edges(raw / "2026-11-02T0600_edges")
    settings = settings_for(tmp, raw)
    assert run_pipeline(settings).success  # ingest (and a DuckDB run) on the fixture
    duck = duckdb.connect(str(copy_warehouse(Path(settings.warehouse), tmp / "duck.duckdb")))
    spark_db = duckdb.connect(str(copy_warehouse(Path(settings.warehouse), tmp / "spark.duckdb")))
    on_duckdb, on_spark = DuckDBCompute(), SparkCompute(mirror_dir=str(tmp / "mirror"))
    on_spark.setup_for_execution()
    compared = {}
    try:
        for n, (stage, name, params) in enumerate(PLAN):
            on_duckdb.run(duck, stage, name, **params)
            try:
                on_spark.run(spark_db, stage, name, **params)
            except Exception as error:  # reported by this file's test; later files read DuckDB's
                compared[_file_id(stage, name, params)] = f"{type(error).__name__}: {error}"
                continue
            results = []
            for statement in transpile_file(stage, name, tuple(sorted(params.items()))):
                got = statement.target
                if statement.kind == "view":  # evaluated by Spark, not by its twin in the warehouse
                    folder = tmp / "views" / f"{n}-{statement.target}"
                    on_spark.session.sql(f"SELECT * FROM {spark_name(statement.target)}").write.parquet(str(folder))
                    got = f"spark_view_{n}"
                    spark_db.execute(f"CREATE TEMP TABLE {got} AS SELECT * FROM read_parquet('{folder}/*.parquet')")
                results.append((statement.target, relation(duck, statement.target), relation(spark_db, got)))
            compared[_file_id(stage, name, params)] = results
    finally:
        on_spark.teardown_after_execution()
        duck.close()
        spark_db.close()
    return compared


@needs_spark
@pytest.mark.parametrize("file_id", [_file_id(*p) for p in PLAN if p[1] != "functions"])
def test_business_sql_gives_the_same_answer_on_spark(both_engines, file_id):
    results = both_engines[file_id]
    assert not isinstance(results, str), f"{file_id} failed on Spark: {results}"
    assert results, f"{file_id} defines nothing"
    for target, on_duckdb, on_spark in results:
        assert on_duckdb[1], f"{target} is empty on the fixture: it would prove nothing"
        assert not differences(on_duckdb, on_spark), f"{file_id} -> {target}: {differences(on_duckdb, on_spark)}"


@needs_spark
def test_the_fixture_reaches_the_edges(both_engines):
    """The edge cases are in the answer both engines agree on (a zero baseline, a tie, ...)."""
    [(_, (schema, rows), _)] = both_engines["response/rebuild_per_patient.sql[marts.patient_response]"]
    by_patient = {r[0]: dict(zip([c for c, _ in schema], r, strict=True)) for r in rows}
    assert by_patient["E0002"]["reason"] == "baseline_zero"
    assert by_patient["E0003"]["assessment_day"] == 176  # the later day on a tie
    assert by_patient["E0003"]["criterion"].startswith("discontinuation adverse_event")
    assert by_patient["E0001"]["baseline_source"].endswith("/fiqr_items.csv")  # the scored questionnaire
    assert by_patient["E0004"]["reason"] == "no_baseline"
    assert by_patient["E0005"]["reason"] == "stopped_for_lack_of_effect"
    assert by_patient["E0006"]["criterion"] and by_patient["E0001"]["age_band"] == "90+"


# --- what runs where ---------------------------------------------------------------------------


def test_every_business_file_runs_on_the_engine_or_in_the_warehouse_by_name():
    manifest = load_manifest(SQL_DIR)
    on_engine, in_warehouse = manifest.engine_files(), manifest.warehouse_files()
    files = {(p.parent.name, p.stem) for stage in ENGINE_STAGES for p in (SQL_DIR / stage).glob("*.sql")}
    assert files == set(on_engine) | set(in_warehouse)
    assert not set(on_engine) & set(in_warehouse)
    assert all(in_warehouse.values()), "a business file kept in the warehouse says why"


def test_a_statement_spark_cannot_run_is_refused_naming_the_file():
    params = {"table_name": "doses", "column": '"patient_id"', "column_name": "patient_id", "parent": "patients"}
    with pytest.raises(NotPortable, match=r"sql/staging/orphan_rows\.sql cannot run on Spark: .*DELETE"):
        transpile_file("staging", "orphan_rows", tuple(sorted(params.items())))


def test_macros_are_expanded_and_percentiles_exact():
    [mart] = transpile_file("marts", "response_by_indication")
    assert "WILSON" not in mart.spark_sql.upper() and "PCT_OF" not in mart.spark_sql.upper()
    [trajectory] = transpile_file("marts", "measure_trajectory")
    assert "RANK_QUANTILE" not in trajectory.spark_sql.upper()
    exact = exact_percentiles(sqlglot.parse_one(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY value) FROM t", read="duckdb"))
    assert "PERCENTILE(value, 0.5)" in to_spark_sql(exact) and "APPROX" not in to_spark_sql(exact).upper()


# --- the whole pipeline ----------------------------------------------------------------------

MARTS = [m.name for m in published_marts()]  # the snapshot's marts, from their .yml
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
