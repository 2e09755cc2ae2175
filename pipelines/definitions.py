"""The one Dagster `Definitions` of the project: every asset, check, job, schedule, sensor.

Built when Dagster (or `clinic run`) asks, never at import: the contract names the tables
(one loaded and one staged asset each) and the model manifest (pipelines/manifest.py) the
models, their deps, what is published and which suites validate them.
"""

from __future__ import annotations

import functools
import sys

import dagster as dg

from pipelines.config import ClinicConfig
from pipelines.ingest.assets import export_plan, loaded_table_assets
from pipelines.ingest.staging import staged_table_assets
from pipelines.manifest import ManifestError, load_manifest
from pipelines.marts.assets import data_quality, model_assets, quarantine
from pipelines.orchestration.nothing_new import nothing_new_job
from pipelines.orchestration.schedules import clinic_job, daily_schedule, new_export_sensor
from pipelines.publish.assets import clinic_snapshot_asset, dashboards, gx_data_docs, published_set, run_info
from pipelines.quality.assets import export_profiles, quality_definitions, reconciliation
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
from pipelines.steps import fused

# Assets that read every staged contract table (their deps are added per contract table).
READS_EVERY_STAGED_TABLE = (reconciliation, export_profiles, quarantine)


def _with_deps(asset: dg.AssetsDefinition, more: list[str]) -> dg.AssetsDefinition:
    """The asset again, depending on `more` as well (known only from the contract or the
    manifest). Declared anew rather than with map_asset_specs: Dagster 1.13 adds the deps to
    the spec but does not wire them into the job (the step ran before what it reads)."""
    spec = asset.get_asset_spec()
    return dg.asset(name=spec.key.to_user_string(), group_name=spec.group_name, description=spec.description,
                    deps=[*spec.deps, *(dg.AssetDep(d) for d in more if d != spec.key.to_user_string())])(asset.op.compute_fn.decorated_fn)


# The step that plans the ingest: its config (rebuild) is the run's (`clinic run --rebuild`).
INGEST_STEP = "ingest"


# Steps whose members run side by side (after the snapshot: the pages, the Data Docs, built by
# the GX worker process, and the release preview, whose grain rebuild is DuckDB's): 0.6 s less
# of a 4.6 s publish step on a warm run at M. Not the others: the response step's members share
# working tables (a write-write conflict), and staging and validation were no faster.
THREADS = {"publish": 3}


def _steps(manifest, tables: list[str], quality_assets: list) -> dict[str, list[dg.AssetsDefinition]]:
    """The run's steps, each a list of assets run as one Dagster step (pipelines/steps.py): a
    step costs event-log writes and overhead, so a run is a handful of them, cut where a
    blocking check gates what follows."""
    reads_staged = [_with_deps(a, [f"staged_{t}" for t in tables]) for a in READS_EVERY_STAGED_TABLE]
    preview = _with_deps(release_preview, [m.asset for m in manifest.published("release")])
    dataset_expectations, mart_expectations = quality_assets
    return {
        INGEST_STEP: [export_plan, *loaded_table_assets(tables)],
        "staging": [response_rules, *staged_table_assets(tables), scored_fiqr, measure_values],
        "validation": [*reads_staged, dataset_expectations],  # the gates of the categories
        "response": [patient_response, trajectory_points],
        "quality": [mart_expectations, data_quality, run_info],
        "publish": [clinic_snapshot_asset(manifest), dashboards, gx_data_docs, preview, published_set],
    }


def build_definitions(clinic: ClinicConfig | None = None) -> dg.Definitions:
    """Everything, with resources configured from `clinic` (from the environment when None)."""
    clinic = clinic or ClinicConfig()
    tables = list(clinic.contract().tables)
    manifest = load_manifest()
    quality_assets, quality_checks = quality_definitions(manifest)
    checks = [*quality_checks, release_disclosure_audit]
    assets = [*model_assets(manifest)]  # one step per SQL stage
    for name, members in _steps(manifest, tables, quality_assets).items():
        keys = {a.key for a in members}
        mine = [c for c in checks if next(iter(c.check_keys)).asset_key in keys]
        checks = [c for c in checks if c not in mine]
        assets.append(fused(name, members, mine, threads=THREADS.get(name, 1)))
    names = {key.to_user_string() for a in assets for key in a.keys}
    unbuilt = sorted({m.asset for m in manifest.models.values()} - names)
    if unbuilt:
        raise ManifestError(f"the .yml of {', '.join(unbuilt)} names a `built_by` asset that does not exist: "
                            "name an asset of pipelines/, or drop `built_by` to build it from its .sql")
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,  # those of assets in no fused step (none today)
        jobs=[clinic_job, nothing_new_job, release_job],
        schedules=[daily_schedule, release_schedule],
        sensors=[new_export_sensor],
        resources=build_resources(clinic),
        # The implicit asset job (the UI's "Materialize all", a selection, `dagster asset materialize`)
        # runs in one process like clinic_pipeline: a process per step re-imports everything ~45 times.
        executor=dg.in_process_executor,
    )


# The Dagster commands that run a job in the process that loads these definitions (the UI's
# and the daemon's runs go through `dagster api execute_run`).
RUNS_IN_THIS_PROCESS = (("asset", "materialize"), ("job", "execute"), ("api", "execute_run"), ("api", "resume_run"))


@dg.definitions
@functools.cache
def defs() -> dg.Definitions:
    """What `dagster dev -m pipelines.definitions` loads, from the environment's settings.
    Built once per process: Dagster asks for it a dozen times while it loads and plans a run
    (0.4 s of every run from the UI or a schedule). A process that is about to run a job starts
    the Great Expectations worker first, as `clinic run` does: its ~2.5 s import then overlaps
    the run's start and ingest instead of holding up the dataset expectations (0.9 s against
    1.6 s for the validation step at demo size); the UI's code server, which never runs one,
    keeps none."""
    if tuple(sys.argv[1:3]) in RUNS_IN_THIS_PROCESS:
        from pipelines.quality.gx_worker import start_early

        start_early()
    return build_definitions()
