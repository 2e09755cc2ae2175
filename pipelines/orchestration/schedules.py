"""When the pipeline runs: every day, and once for each new complete export."""


import json

import dagster as dg

from pipelines.ingest.exports import complete_exports
from pipelines.settings import ClinicSettings

clinic_job = dg.define_asset_job(
    "clinic_pipeline", selection=dg.AssetSelection.all(),
    description="Every asset: ingest, staging, response, marts, snapshot, dashboards.",
    tags={"dagster/concurrency_key": "warehouse"},
)

daily_schedule = dg.ScheduleDefinition(
    name="clinic_daily", job=clinic_job, cron_schedule="0 6 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The whole pipeline every day at 06:00 UTC.",
)


@dg.sensor(job=clinic_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts a run once for each new complete export (folder with _READY). "
                       "The cursor remembers exports already seen, so a restart re-runs nothing; "
                       "a folder still being written (no _READY) is not picked up.")
def new_export_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    raw_dir = ClinicSettings.from_env().raw_dir
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    ready = [p.name for p in complete_exports(raw_dir)]
    new = [e for e in ready if e not in seen]
    if not new:
        return dg.SensorResult(skip_reason=f"no new complete export in {raw_dir}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"export:{e}", tags={"clinic/export": e}) for e in new],
        cursor=json.dumps(sorted(seen | set(new))),
    )
