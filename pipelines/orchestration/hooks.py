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
