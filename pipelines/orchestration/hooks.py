"""What a failed run leaves in the run log: its row says failed, and which step stopped it."""

from pathlib import Path

import dagster as dg

from pipelines.publish.snapshot import discard_building


@dg.failure_hook(required_resource_keys={"warehouse", "clinic"})
def mark_run_failed(context: dg.HookContext) -> None:
    """On any failed step: this run's row of quality.run_log says `failed: <step>` (a run
    killed outright cannot say so; the next run marks it interrupted), and the set it was
    building is removed."""
    discard_building(Path(context.resources.clinic.marts_dir), context.run_id)
    try:
        with context.resources.warehouse.get_connection() as con:
            con.execute("UPDATE quality.run_log SET status = ? WHERE run_id = ? AND status = 'running'",
                        [f"failed: {context.step_key}", context.run_id])
    except Exception as error:  # noqa: BLE001 - the run has failed already; say so, do not mask it
        context.log.warning(f"could not mark the run failed in the run log: {error}")


def close_interrupted_runs(instance: dg.DagsterInstance, run_ids: list[str], by_run: str) -> list[str]:
    """The Dagster runs of `run_ids` (runs the warehouse's run log found still running when a new
    one started: killed, or the machine stopped) marked failed where Dagster still has them
    unfinished: a run killed outright stays STARTED in the run history, and the UI's queue, which
    runs one at a time, would wait on it for ever. Returns the ids marked."""
    marked = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
            instance.report_run_failed(run, f"interrupted: its process stopped before the run finished (killed, or "
                                            f"the machine stopped); found by run {by_run}, which started after it")
            marked.append(run_id)
    return marked
