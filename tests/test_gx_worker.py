"""The run validates through a Great Expectations worker process: the same outcomes as
GX in this process, and a clear error when the worker cannot answer."""

from __future__ import annotations

import json

import duckdb
import pytest

from pipelines.quality.gx_validation import validate_frame
from pipelines.quality.gx_worker import GxWorker

ROWS = """
SELECT 'P' || lpad(CAST(i AS VARCHAR), 6, '0') AS patient_id,
       CASE WHEN i % 7 = 0 THEN NULL ELSE i % 40 - 5 END AS study_day,
       CASE WHEN i % 5 = 0 THEN 'unknown' ELSE 'pain_nrs' END AS instrument,
       i / 3.0 AS value
FROM range(1000) r(i)
"""


@pytest.fixture()
def suite(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"name": "t", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "study_day"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "study_day", "min_value": 0, "max_value": 30}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "instrument", "value_set": ["pain_nrs"], "mostly": 0.7}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "patient_id"}},
    ]}))
    return path


@pytest.fixture()
def worker():
    w = GxWorker()
    yield w
    w.close()


def test_worker_outcomes_equal_in_process_outcomes(worker, suite):
    con = duckdb.connect()
    rows, outcomes = worker.validate(con, ROWS, suite, "t")
    assert rows == 1000
    assert outcomes == validate_frame(con.execute(ROWS).df(), suite, "t")
    failed = {o.check_name: o.rows_failed for o in outcomes if not o.success}
    nulls = sum(1 for i in range(1000) if i % 7 == 0)
    outside = sum(1 for i in range(1000) if i % 7 and not 0 <= i % 40 - 5 <= 30)
    assert failed == {"gx:expect_column_values_to_not_be_null(study_day)": nulls,
                      "gx:expect_column_values_to_be_between(study_day)": outside}


def test_a_missing_suite_is_named_in_the_error(worker, tmp_path):
    with pytest.raises(RuntimeError, match="no_such_suite.json"):
        worker.validate(duckdb.connect(), ROWS, tmp_path / "no_such_suite.json", "t")


def test_a_stopped_worker_says_what_to_check(worker, suite):
    worker._process.kill()
    worker._process.wait()
    with pytest.raises(RuntimeError, match="worker stopped.*python -m pipelines.quality.gx_worker"):
        worker.validate(duckdb.connect(), ROWS, suite, "t")


def test_a_parked_worker_serves_the_next_run_with_none_of_the_last_runs_validations(suite, tmp_path):
    """A finished run's worker is reset and kept for the next run in this process (GX's import is
    paid once): the next run's Data Docs show its own validations only."""
    from datetime import datetime

    from pipelines.quality import gx_worker

    first = gx_worker.take_or_start()
    first.name_run("aaaaaaaa-first", datetime(2026, 1, 1))
    first.validate(duckdb.connect(), ROWS, suite, "t")
    gx_worker.park(first)
    second = gx_worker.take_or_start()
    try:
        assert second is first and second._process.poll() is None  # the same process, not a new one
        second.name_run("bbbbbbbb-second", datetime(2026, 1, 2))
        second.validate(duckdb.connect(), ROWS, suite, "t")
        index = second.build_data_docs(tmp_path / "docs")
        site = "".join(p.read_text(errors="replace") for p in (tmp_path / "docs").rglob("*.html"))
        assert index.exists() and "run bbbbbbbb" in site
        assert "run aaaaaaaa" not in site
    finally:
        second.close()


def _suite(tmp_path, name, *expectations, meta=None):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "meta": meta or {}, "expectations": list(expectations)}))
    return path


def test_the_columns_a_suite_reads_are_those_its_expectations_name(tmp_path):
    """What the run hands GX: the columns named in kwargs, the words of row conditions, the
    suite's names_rows_by and the validation's group columns; everything for a suite that reads
    the table's columns as such, or that cannot be read (the worker then names the problem)."""
    from pipelines.quality.gx_validation import columns_read

    suite = _suite(tmp_path, "named",
                   {"type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "value", "min_value": 0, "row_condition": 'instrument == "pain_nrs"',
                               "condition_parser": "pandas"}},
                   {"type": "expect_column_pair_values_a_to_be_greater_than_b",
                    "kwargs": {"column_A": "study_day", "column_B": "baseline_day"}},
                   {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["patient_id", "visit"]}},
                   meta={"names_rows_by": "site"})
    assert columns_read(suite, ("export_id",)) == sorted(
        ["value", "instrument", "pain_nrs", "study_day", "baseline_day", "patient_id", "visit", "site", "export_id"])
    every = _suite(tmp_path, "every", {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
                   {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["a", "b"]}})
    assert columns_read(every) is None
    assert columns_read(tmp_path / "missing.json") is None


def test_a_narrowed_sample_gets_the_outcomes_of_the_whole_one(worker, tmp_path):
    """The worker gets only the columns the suite reads; its outcomes are those of GX on every
    column, row conditions included, and a suite that checks the table's columns gets them all."""
    con = duckdb.connect()
    wide = f"SELECT *, repeat('x', 200) AS unused_text, value * 2 AS unused_number FROM ({ROWS})"
    conditioned = _suite(tmp_path, "conditioned",
                         {"type": "expect_column_values_to_be_between",
                          "kwargs": {"column": "value", "min_value": 0, "max_value": 100,
                                     "row_condition": 'instrument == "pain_nrs"', "condition_parser": "pandas"}},
                         {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "study_day"}})
    rows, outcomes = worker.validate(con, wide, conditioned, "t")
    assert rows == 1000
    assert outcomes == validate_frame(con.execute(wide).df(), conditioned, "t")
    assert not outcomes[0].success and outcomes[0].rows_failed > 0  # the condition was applied, values above 100 fail
    columns = ["patient_id", "study_day", "instrument", "value", "unused_text", "unused_number"]
    table_wide = _suite(tmp_path, "table_wide",
                        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}},
                        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": columns}})
    _, [_, matched] = worker.validate(con, wide, table_wide, "t")
    assert matched.success


@pytest.mark.parametrize("large", [True, False])
def test_the_worker_steps_back_while_the_run_loads_a_large_file(monkeypatch, tmp_path, large):
    """A load at least LARGE_LOAD_BYTES lowers the GX worker's priority (its import then takes
    the cores DuckDB leaves idle); a smaller one leaves it as it was."""
    import dagster as dg

    from pipelines.ingest import assets as ingest_assets
    from pipelines.quality import gx_worker
    from pipelines.resources import build_resources
    from tests.conftest import DEMO_EXPORT, settings_for

    size = (DEMO_EXPORT / "measurements.csv").stat().st_size
    monkeypatch.setattr(ingest_assets, "LARGE_LOAD_BYTES", size if large else size + 1)
    monkeypatch.setattr(gx_worker, "_live", set())  # this test's worker only, not a parked one
    worker = GxWorker()
    try:
        before = worker.priority()  # this process's, inherited (0 unless the tests run niced)
        settings = settings_for(tmp_path, DEMO_EXPORT.parent)
        result = dg.materialize([ingest_assets.export_plan, *ingest_assets.loaded_table_assets(["measurements"])],
                                resources=build_resources(settings))
        assert result.success
        assert worker.priority() == (max(before, gx_worker.STEP_BACK_NICENESS) if large else before)
    finally:
        worker.close()
    assert worker not in gx_worker._live
