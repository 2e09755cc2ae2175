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


def _model_asset(manifest: Manifest, model: Model) -> dg.AssetsDefinition:
    """A model's asset, made from its .sql and .yml: grouped by its SQL folder, depending on
    the producers of the tables its SQL reads, run after its stage's shared macros."""
    before = manifest.before_each_model(model.stage)

    @dg.asset(name=model.asset, group_name=model.stage, deps=manifest.deps(model), description=model.description)
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBResource,
               compute: Compute) -> dg.MaterializeResult:
        with warehouse.get_connection() as con:
            for name in before:
                compute.run(con, model.stage, name)
            compute.run(con, model.stage, model.sql_name)
            meta = table_metadata(con, model.relation, engine=compute.engine)
        report(context, f"{model.stage} {model.name}: {meta['dagster/row_count']} rows")
        return dg.MaterializeResult(metadata=meta)

    return _asset


def model_assets(manifest: Manifest) -> list[dg.AssetsDefinition]:
    """The asset of every model built from its SQL alone (the aggregate marts, dose_periods, a
    copied mart): nothing in Python names them."""
    return [_model_asset(manifest, m) for m in manifest.generated()]


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
