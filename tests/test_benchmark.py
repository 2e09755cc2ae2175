"""The benchmark works end to end at scale demo (it times nothing the suite asserts on), and
its runs are the suite's check of every way of starting the job: `clinic run`, the scheduled
path (`dagster job execute`, what the daemon does for a schedule or sensor tick) and the UI's
"Materialize all" (`dagster asset materialize --select '*'`, the implicit asset job) each run
in one process and publish the same marts, all in one run history."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from benchmarks.run import FLOOR_RUNS_AT_LEAST, SCALES, dagster_home_of, main, outputs_of
from pipelines.definitions import INGEST_STEP
from pipelines.orchestration.fingerprint import published_fingerprint
from tests.conftest import mart_contents, query_snapshot, settings_for

pytestmark = pytest.mark.slow  # every contender of the benchmark at demo scale


@pytest.fixture(scope="module")
def benchmark_at_demo(tmp_path_factory):
    """One benchmark run at demo scale (one repeat): its JSON and its working folder."""
    tmp = tmp_path_factory.mktemp("benchmark")
    out = tmp / "demo.json"
    assert main(["--scale", "demo", "--repeats", "1", "--work", str(tmp / "work"), "--out", str(out)]) == 0
    return json.loads(out.read_text()), tmp / "work" / "demo"


def test_the_benchmark_times_every_contender_at_demo_scale(benchmark_at_demo):
    result, _ = benchmark_at_demo
    assert set(result["ratios"]) == {"clinic_cold/floor", "clinic_warm/clinic_cold", "peer/clinic_cold",
                                     "scheduled/clinic_cold", "ui/clinic_cold", "nothing_new/clinic_cold"}
    assert all(result[k]["seconds"] > 0 and result[k]["peak_mib"] > 0
               for k in ("floor", "clinic_cold", "clinic_nothing_new", "scheduled_cold", "ui_cold", "clinic_warm",
                         "peer", "dagster_alone"))
    assert len(result["floor"]["runs"]) == FLOOR_RUNS_AT_LEAST > 1  # the noisy denominator: a median, not one reading
    steps = result["clinic_cold_steps"]["steps"]
    assert INGEST_STEP in steps and "publish" in steps  # the fused steps (pipelines/definitions.py)


def _outputs(work: Path, tag: str):
    """The settings of the benchmark's `tag` runs (their warehouse and published set)."""
    warehouse, marts = outputs_of(work, tag)
    return settings_for(work / tag, work / "raw", warehouse=warehouse, marts_dir=marts)


def test_every_way_of_starting_the_job_publishes_the_same_marts_in_one_process(benchmark_at_demo):
    _, work = benchmark_at_demo
    cold, scheduled, ui = (_outputs(work, tag) for tag in ("cold", "scheduled", "ui"))
    assert mart_contents(scheduled) == mart_contents(cold) == mart_contents(ui)
    assert query_snapshot(ui, "SELECT count(*) FROM marts.patient_response") == [(SCALES["demo"],)]
    assert published_fingerprint(Path(ui.marts_dir)) is not None
    with dg.DagsterInstance.from_config(str(dagster_home_of(work))) as instance:
        history = instance.get_runs()
        steps = {run.run_id: instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.STEP_START).records for run in history}
        engine = {run.run_id: instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records for run in history}
    assert all(run.is_success for run in history)
    started = sorted((run.job_name, run.tags.get("clinic/started_by") or "") for run in history)
    # clinic run cold, then with nothing new, then warm; the scheduled path (no tag); the UI's path
    assert started == [("__ASSET_JOB", ""), ("clinic_nothing_new", "clinic run"), ("clinic_pipeline", ""),
                       ("clinic_pipeline", "clinic run"), ("clinic_pipeline", "clinic run")]
    for run in history:
        if run.tags.get("clinic/started_by"):
            continue  # clinic run: its own process by construction (run_job in process)
        assert len(steps[run.run_id]) > 1 and len({r.event_log_entry.dagster_event.pid
                                                   for r in steps[run.run_id]}) == 1, run.job_name
        assert any("in process" in (r.event_log_entry.user_message or "").lower() for r in engine[run.run_id])


def test_the_report_answers_the_loading_target_from_the_ingest_profile(tmp_path):
    """benchmarks.report reads ingest_profile's output at L beside the runs' JSON files."""
    from benchmarks.report import report

    run = {"floor": {"seconds": 10.0, "peak_mib": 700.0}, "clinic_cold": {"seconds": 120.0, "peak_mib": 1900.0}}
    (tmp_path / "L.json").write_text(json.dumps(run))
    assert "loading measurements" not in report(tmp_path)
    profile = {"scale": "L", "table": "measurements", "floor_read_seconds": 15.0, "loading_seconds": 63.0,
               "loading/floor_read, cpu": 3.9}
    (tmp_path / "ingest_L.json").write_text(json.dumps(profile))
    table = report(tmp_path)
    assert "| loading measurements at L / the floor's read of them <= 4 | 4.20 (CPU 3.90) | **no** |" in table
    assert table.splitlines()[0] == "| contender | L |"  # the profile is no contender column


def test_the_job_with_no_work_has_the_real_steps_assets_and_checks(tmp_path):
    """benchmarks.dagster_alone times the project's own graph, not a stand-in: the same steps,
    asset keys, deps and checks as the real Definitions, every asset materialised and every
    check passed in one process, on a persistent instance; and nothing is built."""
    import subprocess
    import sys

    from benchmarks.dagster_alone import hollow_definitions
    from pipelines.definitions import build_definitions

    def shape(definitions):
        graph = definitions.resolve_asset_graph()
        return ({key: set(graph.get(key).parent_keys) for key in graph.get_all_asset_keys()},
                set(graph.asset_check_keys),
                {step.op.name: set(step.keys) for step in definitions.assets})

    assert shape(hollow_definitions()) == shape(build_definitions())
    home = tmp_path / "home"
    home.mkdir()
    # in its own process, as the benchmark runs and times it
    done = subprocess.run([sys.executable, "-m", "benchmarks.dagster_alone", str(home)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0 and ": ok, " in done.stdout, done.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        materialised = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        checked = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    graph = build_definitions().resolve_asset_graph()
    assert {r.event_log_entry.dagster_event.asset_key for r in materialised.records} == graph.get_all_asset_keys()
    assert len(checked.records) == len(graph.asset_check_keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_the_report_says_what_the_targets_at_m_leave_for_the_work(tmp_path):
    """The ratio targets at M as seconds, minus the job with no work in it."""
    from benchmarks.report import report

    run = {k: {"seconds": v, "peak_mib": 100.0} for k, v in
           {"floor": 1.0, "clinic_cold": 15.0, "clinic_warm": 8.0, "peer": 21.0, "dagster_alone": 3.5}.items()}
    (tmp_path / "M.json").write_text(json.dumps(run))
    text = report(tmp_path)
    assert "| the same job with no work (Dagster's start, definitions, event log) | 3.5 s, 100 MiB |" in text
    assert ("At M a run with no work in it takes 3.5 s. Within 8 x the floor a cold run has 8.0 s, 4.5 s of it for "
            "its work; half the peer's time is 10.5 s, 7.0 s for the work; a warm run within half of a cold run at "
            "that bound has 4.0 s, 0.5 s for its work; measured: the cold run's work 11.5 s, the warm run's 4.5 s.") in text


def test_peak_memory_counts_the_whole_process_tree():
    """A parent whose child holds ~200 MiB: the tree's figure has the child's memory, and the
    parent alone has not (the clinic's GX worker is such a child)."""
    import os
    import signal
    import subprocess
    import sys

    from benchmarks.run import tree_rss_kb

    child = "import time; block = bytearray(200 * 2**20); print('ready', flush=True); time.sleep(30)"
    parent = (f"import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=sys.stdout); "
              "c.wait()")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with open(f"/proc/{proc.pid}/status") as fh:
            parent_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        assert parent_kb < 100 * 1024
        assert tree_rss_kb(proc.pid) >= parent_kb + 200 * 1024
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its child
        proc.wait()
