"""Fewer, fatter steps (pipelines/steps.py): a run is a handful of Dagster steps, each asset
still its own, selectable, with its metadata and checks, and a blocking check still stops
what depends on it."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import dagster as dg
import pytest

from pipelines.cli import run_job
from pipelines.definitions import build_definitions
from pipelines.demo.generator import generate
from pipelines.steps import fused
from tests.conftest import DEMO_EXPORT

MAX_STEPS = 12  # issue 20: a full run in at most 12 steps


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def test_a_full_run_is_a_few_steps_that_materialise_every_asset_and_check(demo_run):
    settings, result = demo_run
    assert result.success
    graph = build_definitions(settings).resolve_asset_graph()
    steps = _events(result, "STEP_START")
    assert 1 < len(steps) <= MAX_STEPS, [e.step_key for e in steps]
    materialised = [e.asset_key for e in _events(result, "ASSET_MATERIALIZATION")]
    assert sorted(materialised) == sorted(graph.get_all_asset_keys())  # each once, none missing
    evaluated = {(e.event_specific_data.asset_key, e.event_specific_data.check_name)
                 for e in _events(result, "ASSET_CHECK_EVALUATION")}
    assert evaluated == {(c.asset_key, c.name) for c in graph.asset_check_keys}
    # each asset keeps its own metadata inside a fused step
    by_key = {e.asset_key: e.event_specific_data.materialization.metadata
              for e in _events(result, "ASSET_MATERIALIZATION")}
    for key in (dg.AssetKey("loaded_measurements"), dg.AssetKey("staged_patients"), dg.AssetKey("titration")):
        assert by_key[key]["dagster/row_count"].value > 0
        assert "dagster/column_schema" in by_key[key]


def test_one_asset_or_one_check_of_a_fused_step_runs_alone(demo_copy):
    job = build_definitions(demo_copy).resolve_implicit_global_asset_job_def()
    subset = job.get_subset(asset_selection={dg.AssetKey("quarantine")})
    with dg.DagsterInstance.ephemeral() as instance:
        result = subset.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    assert [e.asset_key for e in _events(result, "ASSET_MATERIALIZATION")] == [dg.AssetKey("quarantine")]
    assert _events(result, "ASSET_CHECK_EVALUATION") == []  # reconciliation's check was not selected
    check = dg.AssetCheckKey(dg.AssetKey("reconciliation"), "rows_reconcile")  # the UI's "Execute" of a check
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.get_subset(asset_selection=set(), asset_check_selection={check}).execute_in_process(
            instance=instance, raise_on_error=False)
    assert result.success and _events(result, "ASSET_MATERIALIZATION") == []
    [evaluation] = _events(result, "ASSET_CHECK_EVALUATION")
    assert evaluation.event_specific_data.check_name == "rows_reconcile" and evaluation.event_specific_data.passed


@dg.asset
def checked() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 1})


@dg.asset(deps=[checked])
def after_checked() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset
def beside() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset(deps=[after_checked])
def later_step() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset_check(asset=checked, blocking=True)
def never_passes() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="on purpose")


@pytest.mark.parametrize("threads", [1, 3])
def test_a_failed_blocking_check_stops_what_depends_on_it_inside_and_after_its_step(threads):
    step = fused("gated", [after_checked, checked, beside], [never_passes], threads=threads)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([step, later_step], instance=instance, raise_on_error=False)
    assert not result.success
    assert {e.asset_key for e in _events(result, "ASSET_MATERIALIZATION")} == {dg.AssetKey("checked"),
                                                                                 dg.AssetKey("beside")}
    [check] = _events(result, "ASSET_CHECK_EVALUATION")
    assert not check.event_specific_data.passed and check.event_specific_data.check_name == "never_passes"
    assert len(_events(result, "STEP_START")) == 1  # later_step never started


def test_clinic_run_rebuild_reaches_export_plan_inside_the_ingest_step(demo_copy, tmp_path):
    """The run's config (`clinic run --rebuild`) is the fused ingest step's, given to export_plan:
    an applied export that is gone is dropped instead of stopping the run."""
    raw = Path(demo_copy.raw_dir)
    shutil.move(raw / DEMO_EXPORT.name, tmp_path / "elsewhere")
    generate(20, seed=5, id_prefix="S").write(raw / "2026-12-01_new")
    result = run_job(demo_copy, rebuild=True)
    assert result.success
    [plan] = [e for e in _events(result, "ASSET_MATERIALIZATION") if e.asset_key == dg.AssetKey("export_plan")]
    assert plan.event_specific_data.materialization.metadata["dropped_by_rebuild"].value != []


both_running = threading.Barrier(2, timeout=10)  # passed only when two members run at once
finished: list[str] = []


@dg.asset
def waits_for_its_neighbour() -> dg.MaterializeResult:
    both_running.wait()
    finished.append("waits_for_its_neighbour")
    return dg.MaterializeResult()


@dg.asset
def its_neighbour() -> dg.MaterializeResult:
    both_running.wait()
    finished.append("its_neighbour")
    return dg.MaterializeResult()


@dg.asset(deps=[waits_for_its_neighbour, its_neighbour])
def reads_both() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"ran_after": list(finished)})


@dg.asset(deps=[reads_both])
def fails() -> dg.MaterializeResult:
    raise RuntimeError("on purpose")


@dg.asset(deps=[fails])
def after_the_failure() -> dg.MaterializeResult:
    return dg.MaterializeResult()


def test_a_step_with_threads_runs_independent_members_at_once_and_reports_them_in_order():
    """Two members that each wait for the other finish only side by side; what reads them
    starts after both, and the events come in dependency order; a member that fails fails the
    step, and what depends on it never runs."""
    both_running.reset()
    finished.clear()
    step = fused("side_by_side", [after_the_failure, fails, reads_both, its_neighbour, waits_for_its_neighbour],
                 threads=2)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([step], instance=instance, raise_on_error=False)
    assert not result.success
    materialised = _events(result, "ASSET_MATERIALIZATION")
    assert [e.asset_key.to_user_string() for e in materialised] == [
        "its_neighbour", "waits_for_its_neighbour", "reads_both"]  # in the order fused put them
    assert sorted(materialised[-1].event_specific_data.materialization.metadata["ran_after"].value) == [
        "its_neighbour", "waits_for_its_neighbour"]
    [failure] = _events(result, "STEP_FAILURE")
    assert "on purpose" in failure.event_specific_data.error.to_string()


def test_two_page_builds_side_by_side_both_draw_with_plotly_white_and_put_the_default_back():
    """The publish step draws the pages and the release preview's pages at once: the first
    build to finish must not take plotly_white away from the other."""
    import plotly.io as pio

    from dashboards.build import PLOTLY_WHITE

    before = pio.templates.default
    both_inside, first_left = threading.Barrier(2, timeout=10), threading.Event()
    seen = []

    def first():
        with PLOTLY_WHITE:
            both_inside.wait()
        first_left.set()

    def second():
        with PLOTLY_WHITE:
            both_inside.wait()
            first_left.wait(10)
            seen.append(pio.templates.default)  # still drawing after the first build is done

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == ["plotly_white"]
    assert pio.templates.default == before


def test_drawing_a_page_warns_nothing_and_leaves_the_process_warning_filters_alone(tmp_path):
    """`warnings.catch_warnings` swaps the filters of the whole process: two pages drawn at once
    would each put back what the other changed. A page passes plotly only options it knows."""
    import warnings

    import plotly.graph_objects as go

    from dashboards.page import PLOT_CONFIG, RunLabel, write_page

    def draw():
        write_page(tmp_path / "p.html", RunLabel("r1", "2026-12-07 06:00", "1"), "outcomes", "Outcomes",
                   [go.Figure(go.Bar(x=[1], y=[2]))])

    draw()  # plotly adds filters of its own when its modules are first imported
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inside = list(warnings.filters)
        go.Figure().to_html(config=PLOT_CONFIG)  # plotly.py warns on an option it does not know
        draw()
        assert warnings.filters == inside
    assert "chart-0" in (tmp_path / "p.html").read_text(encoding="utf-8")


@dg.asset
def checked_by_a_broken_check() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 1})


@dg.asset_check(asset=checked_by_a_broken_check, blocking=True)
def raises() -> dg.AssetCheckResult:
    raise RuntimeError("the check itself broke")


@dg.asset(deps=[checked_by_a_broken_check])
def after_the_broken_check() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_check_that_raises_fails_the_step_after_its_asset_is_reported(threads):
    step = fused("broken_check", [after_the_broken_check, checked_by_a_broken_check], [raises], threads=threads)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([step], instance=instance, raise_on_error=False)
    assert not result.success
    assert [e.asset_key for e in _events(result, "ASSET_MATERIALIZATION")] == [dg.AssetKey("checked_by_a_broken_check")]
    [failure] = _events(result, "STEP_FAILURE")
    assert "the check itself broke" in failure.event_specific_data.error.to_string()
