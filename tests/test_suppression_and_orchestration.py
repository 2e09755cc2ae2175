"""Small-cell suppression on crafted cohorts; the schedule and the new-export sensor."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from pipelines.marts.suppression import SumGroup, suppress
from pipelines.orchestration.schedules import daily_schedule, new_export_sensor

GROUPS = (SumGroup("n_evaluable", ("n_meaningful", "n_minimal", "n_intolerant")),
          SumGroup("n_patients", ("n_evaluable", "n_not_assessable"), hide_total_first=True))
COUNTS = ("n_patients", "n_evaluable", "n_meaningful", "n_minimal", "n_intolerant", "n_not_assessable")


def _row(**kw):
    frame = pd.DataFrame([kw])
    frame["pct_minimal"] = 100.0 * frame.n_minimal / frame.n_evaluable
    return suppress(frame, COUNTS, {"n_minimal": ("pct_minimal",)}, GROUPS).iloc[0]


def test_small_count_and_its_complement_are_suppressed_zero_is_shown():
    row = _row(n_patients=60, n_evaluable=60, n_meaningful=40, n_minimal=5, n_intolerant=15,
               n_not_assessable=0)
    assert pd.isna(row.n_minimal) and pd.isna(row.pct_minimal)
    assert pd.isna(row.n_intolerant)          # next smallest: 5 cannot be recomputed from 60-40
    assert row.n_meaningful == 40 and row.n_not_assessable == 0 and row.suppressed


def test_nothing_suppressed_when_every_cell_is_zero_or_large():
    row = _row(n_patients=50, n_evaluable=50, n_meaningful=30, n_minimal=20, n_intolerant=0,
               n_not_assessable=0)
    assert not row.suppressed and row.n_minimal == 20


def test_single_small_cell_with_only_zeros_beside_it_hides_the_total():
    row = _row(n_patients=25, n_evaluable=25, n_meaningful=20, n_minimal=5, n_intolerant=0,
               n_not_assessable=0)
    assert pd.isna(row.n_minimal) and pd.isna(row.n_meaningful)


def test_schedule_targets_the_whole_pipeline_daily():
    assert daily_schedule.cron_schedule == "0 6 * * *"
    assert daily_schedule.job_name == "clinic_pipeline"


def test_sensor_requests_one_run_per_new_complete_export(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_RAW_DIR", str(tmp_path))
    (tmp_path / "2026-11-01_a").mkdir()
    (tmp_path / "2026-11-01_a" / "_READY").touch()
    (tmp_path / "2026-11-02_b").mkdir()  # still being written: no _READY
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance)
        first = new_export_sensor(ctx)
        assert [r.run_key for r in first.run_requests] == ["export:2026-11-01_a"]
        again = new_export_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert not again.run_requests
        (tmp_path / "2026-11-02_b" / "_READY").touch()
        third = new_export_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert [r.run_key for r in third.run_requests] == ["export:2026-11-02_b"]
        assert json.loads(third.cursor) == ["2026-11-01_a", "2026-11-02_b"]


def test_small_not_assessable_hides_the_total_not_the_rate_denominator():
    row = _row(n_patients=60, n_evaluable=57, n_meaningful=35, n_minimal=11, n_intolerant=11,
               n_not_assessable=3)
    assert pd.isna(row.n_not_assessable) and pd.isna(row.n_patients)
    assert row.n_evaluable == 57 and row.pct_minimal == 100.0 * 11 / 57
