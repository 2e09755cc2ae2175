"""Small-cell suppression on crafted cohorts; the schedule and the new-export sensor."""

from __future__ import annotations

import pandas as pd

from pipelines.marts.assets import AGGREGATE_MARTS
from pipelines.marts.suppression import Rollup, SumGroup, equations, suppress
from pipelines.orchestration.schedules import daily_schedule
from tests.conftest import query_snapshot

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


def test_a_small_cell_cannot_be_recovered_by_subtracting_rows():
    # Two indications and their group: 35 meaningful in the group minus B's 30 would give
    # away A's suppressed 5, so B's count is suppressed too; the group's stays.
    frame = pd.DataFrame({"level": ["indication", "indication", "group"], "group": ["g", "g", "g"],
                          "n_patients": [40, 60, 100], "n_meaningful": [5, 30, 35]})
    out = suppress(frame, ("n_patients", "n_meaningful"), {}, (),
                   rollups=(Rollup("level == 'indication'", "level == 'group'", ("group",)),))
    assert out.n_meaningful.isna().tolist() == [True, True, False]
    assert out.n_patients.tolist() == [40, 60, 100] and out.suppressed.tolist() == [True, True, False]


def test_no_published_equation_gives_a_suppressed_cell_away(demo_run):
    """On the demo's published marts, no row total and no sum of rows holds exactly one
    suppressed (NULL) count, so none can be recomputed from what is shown."""
    settings, result = demo_run
    assert result.success
    checked, with_hidden = 0, 0
    for spec in AGGREGATE_MARTS:
        columns = [r[0] for r in query_snapshot(settings, f"DESCRIBE marts.{spec.name}")]
        frame = pd.DataFrame(query_snapshot(settings, f"SELECT * FROM marts.{spec.name}"), columns=columns)
        for eq in equations(frame, spec.counts, spec.groups, spec.rollups):
            cells = (eq.total, *eq.parts)
            hidden = sum(pd.isna(frame.at[i, c]) for i, c in cells)
            assert hidden != 1, (spec.name, eq)
            checked, with_hidden = checked + 1, with_hidden + (hidden > 1)
    assert checked > 100 and with_hidden > 10


def test_schedule_targets_the_whole_pipeline_daily():
    assert daily_schedule.cron_schedule == "0 6 * * *"
    assert daily_schedule.job_name == "clinic_pipeline"


def test_small_not_assessable_hides_the_total_not_the_rate_denominator():
    row = _row(n_patients=60, n_evaluable=57, n_meaningful=35, n_minimal=11, n_intolerant=11,
               n_not_assessable=3)
    assert pd.isna(row.n_not_assessable) and pd.isna(row.n_patients)
    assert row.n_evaluable == 57 and row.pct_minimal == 100.0 * 11 / 57
