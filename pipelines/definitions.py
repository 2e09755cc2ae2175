"""The one Dagster `Definitions` of the project: every asset, check, job, schedule, sensor."""

from __future__ import annotations

import dagster as dg

from pipelines.config import ClinicConfig
from pipelines.ingest.assets import export_plan, loaded_tables
from pipelines.ingest.staging import staged_tables
from pipelines.marts.assets import aggregate_marts, data_quality, quarantine
from pipelines.orchestration.nothing_new import nothing_new_job
from pipelines.orchestration.schedules import clinic_job, daily_schedule, new_export_sensor
from pipelines.publish.assets import clinic_snapshot, dashboards, gx_data_docs, published_set, run_info
from pipelines.quality.assets import quality_assets, quality_checks
from pipelines.release.assets import release_bundle, release_disclosure_audit
from pipelines.resources import build_resources
from pipelines.response.assets import (
    measure_values,
    patient_response,
    response_rules,
    scored_fiqr,
    trajectory_points,
)

ASSETS = [export_plan, *loaded_tables, response_rules, *staged_tables, scored_fiqr, measure_values,
          *quality_assets, patient_response, trajectory_points, *aggregate_marts, quarantine, data_quality,
          run_info, clinic_snapshot, dashboards, gx_data_docs, release_bundle, published_set]
CHECKS = [*quality_checks, release_disclosure_audit]


def build_definitions(clinic: ClinicConfig | None = None) -> dg.Definitions:
    """Everything, with resources configured from `clinic` (from the environment when None)."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=[clinic_job, nothing_new_job],
        schedules=[daily_schedule],
        sensors=[new_export_sensor],
        resources=build_resources(clinic or ClinicConfig()),
        # The implicit asset job (the UI's "Materialize all", a selection, `dagster asset materialize`)
        # runs in one process like clinic_pipeline: a process per step re-imports everything ~45 times.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
