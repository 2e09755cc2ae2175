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
