"""Where a `clinic run` spends its time: seconds per Dagster step, from the run's event log.

    python -m benchmarks.profile RAW WORK [--warm]   # one in-process run, then its steps

The benchmark reads the steps of the cold run it has just timed from that run's Dagster
instance (`last_run_steps`), so profiling costs no extra run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dagster as dg


def steps_of(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds per step of one recorded run, slowest first."""
    begun, steps = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            begun[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            steps[event.step_key] = round(entry.timestamp - begun[event.step_key], 3)
    return dict(sorted(steps.items(), key=lambda kv: -kv[1]))


def summary(wall: float, steps: dict[str, float]) -> dict:
    return {"wall_seconds": round(wall, 3), "steps_total": round(sum(steps.values()), 3),
            "outside_steps": round(wall - sum(steps.values()), 3), "steps": steps}


def last_run_steps(dagster_home: Path, wall: float) -> dict:
    """The steps of the newest run recorded in a Dagster home (`clinic run` records there),
    with `wall`, the run's timed seconds, for the overhead outside the steps."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        [run] = instance.get_runs(limit=1)
        return summary(wall, steps_of(instance, run.run_id))


def step_seconds(raw: Path, work: Path, cold: bool = True) -> dict:
    """One in-process run (cold: from an empty work folder); returns wall time and seconds
    per step, slowest first."""
    import shutil

    from pipelines.cli import run_job
    from pipelines.config import ClinicConfig
    from pipelines.quality.gx_worker import start_early

    start_early()  # as `clinic run` does
    if cold:
        shutil.rmtree(work, ignore_errors=True)
    clinic = ClinicConfig.with_overrides(raw_dir=raw, marts_dir=work / "marts", warehouse=work / "wh.duckdb")
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = run_job(clinic, instance)
        return summary(time.perf_counter() - started, steps_of(instance, result.run_id))


if __name__ == "__main__":
    import json

    warm = "--warm" in sys.argv
    raw, work = (Path(a) for a in sys.argv[1:] if a != "--warm")
    print(json.dumps(step_seconds(raw, work, cold=not warm), indent=2))
