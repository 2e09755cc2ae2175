"""The one Dagster `Definitions` of the project: every asset, check, job, schedule, sensor."""

from __future__ import annotations

import dagster as dg

from pipelines.config import ClinicConfig
from pipelines.ingest.assets import export_plan, loaded_tables
from pipelines.ingest.staging import staged_tables
from pipelines.marts.assets import aggregate_marts, data_quality, quarantine
from pipelines.orchestration.schedules import clinic_job, daily_schedule, new_export_sensor
from pipelines.publish.assets import clinic_snapshot, dashboards, gx_data_docs, published_set, run_info
from pipelines.quality.assets import quality_assets, quality_checks
from pipelines.release.assets import release_disclosure_audit, release_preview
from pipelines.release.schedule import release_job, release_schedule
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
          run_info, clinic_snapshot, dashboards, gx_data_docs, release_preview, published_set]
CHECKS = [*quality_checks, release_disclosure_audit]


def build_definitions(clinic: ClinicConfig | None = None) -> dg.Definitions:
    """Everything, with resources configured from `clinic` (from the environment when None)."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        jobs=[clinic_job, release_job],
        schedules=[daily_schedule, release_schedule],
        sensors=[new_export_sensor],
        resources=build_resources(clinic or ClinicConfig()),
    )


defs = build_definitions()
