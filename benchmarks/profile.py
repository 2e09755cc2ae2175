"""Where a `clinic run` spends its time: seconds per Dagster step, from the run's event log."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dagster as dg


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
        wall = time.perf_counter() - started
        begun, steps = {}, {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                begun[event.step_key] = entry.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                steps[event.step_key] = round(entry.timestamp - begun[event.step_key], 3)
    ordered = dict(sorted(steps.items(), key=lambda kv: -kv[1]))
    return {"wall_seconds": round(wall, 3), "steps_total": round(sum(steps.values()), 3),
            "dagster_overhead": round(wall - sum(steps.values()), 3), "steps": ordered}


if __name__ == "__main__":
    import json

    warm = "--warm" in sys.argv
    raw, work = (Path(a) for a in sys.argv[1:] if a != "--warm")
    print(json.dumps(step_seconds(raw, work, cold=not warm), indent=2))
