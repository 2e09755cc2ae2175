"""Summary marts for the clinic's own team: the SQL in sql/marts/, unsuppressed.

What leaves the clinic is the release bundle (pipelines/release/), built from these same
marts with small cells suppressed and audited across all of them at once.
"""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.engines import Compute
from pipelines.manifest import Manifest, Model
from pipelines.metadata import report, table_metadata
from pipelines.quality.catalogue import load_catalogue, write_catalogue
from pipelines.sqlfiles import run_sql
from pipelines.steps import in_dependency_order


def _stage_models_asset(manifest: Manifest, stage: str, models: list[Model]) -> dg.AssetsDefinition:
    """The models of one SQL stage, made from their .sql and .yml, as one step (the way
    dagster-dbt runs a project): each its own asset, grouped by its SQL folder, depending on the
    producers of the tables its SQL reads, run in dependency order after its stage's shared macros."""
    before = manifest.before_each_model(stage)
    by_key = {dg.AssetKey(m.asset): m for m in in_dependency_order(models, lambda m: m.asset, manifest.deps)}

    @dg.multi_asset(name=f"{stage}_models", can_subset=True, specs=[
        dg.AssetSpec(key, group_name=m.stage, deps=manifest.deps(m), description=m.description, skippable=True)
        for key, m in by_key.items()])
    def _models(context: dg.AssetExecutionContext, warehouse: DuckDBResource, compute: Compute):
        with warehouse.get_connection() as con:
            for key, model in by_key.items():
                if key not in context.selected_asset_keys:
                    continue
                for name in before:
                    compute.run(con, model.stage, name)
                compute.run(con, model.stage, model.sql_name)
                meta = table_metadata(con, model.relation, engine=compute.engine)
                # An internal model (published nowhere) is named by its warehouse table, which
                # `clinic sql` on the published snapshot does not hold.
                shown = f"{model.stage} {model.name}" if model.published_in else \
                    f"{model.relation} (internal, in the warehouse only)"
                report(context, f"{shown}: {meta['dagster/row_count']:,} rows")
                yield dg.MaterializeResult(asset_key=key, metadata=meta)

    return _models


def model_assets(manifest: Manifest) -> list[dg.AssetsDefinition]:
    """One multi-asset per SQL stage, of every model built from its SQL alone (the aggregate
    marts, dose_periods, a copied mart): nothing in Python names them."""
    stages: dict[str, list[Model]] = {}
    for m in manifest.generated():
        stages.setdefault(m.stage, []).append(m)
    return [_stage_models_asset(manifest, stage, models) for stage, models in stages.items()]


@dg.asset(group_name="marts",  # after every staged table (pipelines/definitions.py adds them from the contract)
          description="Every rejected row or file, with export, table, source file, line, rule, column "
                      "and a detail that never quotes text. Patient-level: analysts only, no chart.")
def quarantine(context: dg.AssetExecutionContext, warehouse: DuckDBResource,
               compute: Compute) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        compute.run(con, "marts", "quarantine")
        by_rule = dict(con.execute("SELECT rule, sum(rows_affected) FROM marts.quarantine "
                                   "GROUP BY rule ORDER BY rule").fetchall())
        meta = table_metadata(con, "marts.quarantine", quarantined_rows_by_rule=by_rule, engine=compute.engine)
    report(context, "quarantine: " + (", ".join(f"{k} {v}" for k, v in by_rule.items()) or "empty"))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(group_name="marts", deps=["quarantine", "scored_fiqr", "reconciliation", "dataset_expectations",
                                    "mart_expectations"],
          description="One row per export x table x check: the check catalogue (rules/quality_checks.yaml and "
                      "the Great Expectations suites) crossed with what the run found (contract rules, file "
                      "findings, reconciliation, FIQR scoring, expectations), with threshold, severity and "
                      "status: pass, fail, or not run (a declared check that produced no result).")
def data_quality(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                 warehouse: DuckDBResource) -> dg.MaterializeResult:
    rows = load_catalogue(Path(clinic.checks_file), clinic.contract(), Path(clinic.expectations_dir))
    with warehouse.get_connection() as con:
        write_catalogue(con, rows)
        run_sql(con, "quality", "check_results")
        run_sql(con, "quality", "data_quality")
        status = dict(con.execute("SELECT status, count(*) FROM marts.data_quality "
                                  "GROUP BY status").fetchall())
        meta = table_metadata(con, "marts.data_quality", checks_by_status=status, catalogue_checks=len(rows))
    report(context, "data quality: " + ", ".join(f"{n} {s}" for s, n in sorted(status.items())))
    return dg.MaterializeResult(metadata=meta)
