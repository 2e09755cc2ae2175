"""When the pipeline runs: every day (when something changed), and once for each new complete export.

Every way a run starts (the schedule, the sensor, the UI's launch button, `clinic run`)
executes this one job, in process: a process per step would re-import Dagster, reopen
the warehouse and restart the validation worker some fifty times (95 s instead of 5 s on
the demo export), and the run's resources (the warehouse held open, the GX worker) live
for the whole run only in process.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from pipelines.config import ClinicConfig
from pipelines.ingest.exports import complete_exports
from pipelines.ingest.load import applied_exports
from pipelines.orchestration.fingerprint import decide
from pipelines.orchestration.hooks import mark_run_failed
from pipelines.orchestration.nothing_new import nothing_new_message

clinic_job = dg.define_asset_job(
    "clinic_pipeline", selection=dg.AssetSelection.all(),
    description="Every asset: ingest, staging, response, marts, snapshot, dashboards, release preview.",
    executor_def=dg.in_process_executor,
    hooks={mark_run_failed},
    tags={"dagster/concurrency_key": "warehouse"},
)



@dg.schedule(name="clinic_daily", job=clinic_job, cron_schedule="0 6 * * *",
             execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
             description="The whole pipeline every day at 06:00 UTC, unless nothing changed since the "
                         "published set was built (same exports, rules, contract, checks, expectations, SQL, "
                         "code): then the tick is skipped, saying so, as `clinic run` does.")
def daily_schedule(context: dg.ScheduleEvaluationContext, clinic: ClinicConfig):
    try:
        decision = decide(clinic.values())
    except OSError as error:  # an input that cannot be read now: the run's own checks say what
        return dg.RunRequest(tags={"clinic/changed": f"unknown ({error.__class__.__name__})"})
    if decision.nothing_new:
        return dg.SkipReason(nothing_new_message(decision.previous_run))
    return dg.RunRequest(tags={"clinic/changed": ",".join(decision.changed) or "warehouse"})


@dg.sensor(job=clinic_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts one run for each complete export (folder with _READY) that the "
                       "warehouse has not applied, tagged with the export. The warehouse's ingest "
                       "ledger is the truth; the cursor only remembers exports already requested, so "
                       "a run still queued is not requested twice.")
def new_export_sensor(context: dg.SensorEvaluationContext, clinic: ClinicConfig) -> dg.SensorResult:
    raw_dir = Path(clinic.raw_dir)
    applied = applied_exports(Path(clinic.warehouse))
    if applied is None:
        return dg.SensorResult(skip_reason="a run is writing the warehouse; looking again at the next tick")
    requested = set(json.loads(context.cursor)) if context.cursor else set()
    waiting = [p.name for p in complete_exports(raw_dir) if p.name not in applied]
    new = [e for e in waiting if e not in requested]
    cursor = json.dumps(sorted(set(waiting) & (requested | set(new))))
    if not new:
        pending = sorted(set(waiting) & requested)  # requested once: a run that failed is not retried here
        return dg.SensorResult(skip_reason=(
            f"no complete export in {raw_dir} that the warehouse has not applied" if not pending else
            f"{len(pending)} complete export(s) not applied yet, each requested once already ({', '.join(pending)}): "
            "a queued run applies it, or, if its run failed, the daily run or `clinic run` after the cause is "
            "fixed"), cursor=cursor)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"export:{e}", tags={"clinic/export": e}) for e in new],
        cursor=cursor,
    )
