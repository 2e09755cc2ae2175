"""Summary marts for the clinic's own team: the SQL in sql/marts/, unsuppressed.

What leaves the clinic is the release bundle (pipelines/release/), built from these same
marts with small cells suppressed and audited across all of them at once.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.engines import Compute
from pipelines.metadata import report, table_metadata
from pipelines.quality.catalogue import load_catalogue, write_catalogue
from pipelines.sqlfiles import run_sql


@dataclass(frozen=True)
class AggregateMart:
    name: str
    description: str
    deps: tuple[str, ...]


AGGREGATE_MARTS = [
    AggregateMart(
        "response_by_indication",
        "Categories per indication x regimen, per indication group and for all patients: counts, "
        "and rates over evaluable patients with Wilson 95% intervals.",
        ("patient_response",),
    ),
    AggregateMart(
        "measure_trajectory",
        "Every instrument by indication, visit week (0-52, nearest within 2 weeks) and category: "
        "median and quartiles of the value and of percent change from baseline.",
        ("patient_response", "trajectory_points"),
    ),
    AggregateMart(
        "tolerability",
        "Adverse events by indication, regimen and the dose band in effect that day: patients "
        "with the event, share of patients exposed to the band, and discontinuations.",
        ("patient_response", "dose_periods", "staged_adverse_events"),
    ),
    AggregateMart(
        "titration",
        "LDN starting dose band vs sleep events (insomnia, vivid dreams) in the first 28 days "
        "and intolerance.",
        ("patient_response", "dose_periods", "staged_adverse_events"),
    ),
    AggregateMart(
        "cohort_flow",
        "Per indication: enrolled, with a baseline, reached the assessment window, assessed, and each category.",
        ("patient_response", "staged_discontinuations"),
    ),
]


def _aggregate_asset(spec: AggregateMart) -> dg.AssetsDefinition:
    @dg.asset(name=spec.name, group_name="marts", deps=list(spec.deps), description=spec.description)
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBResource,
               compute: Compute) -> dg.MaterializeResult:
        with warehouse.get_connection() as con:
            compute.run(con, "marts", "functions")
            compute.run(con, "marts", spec.name)
            meta = table_metadata(con, f"marts.{spec.name}", engine=compute.engine)
        report(context, f"mart {spec.name}: {meta['dagster/row_count']} rows")
        return dg.MaterializeResult(metadata=meta)

    return _asset


@dg.asset(group_name="marts", deps=["staged_doses", "staged_patients"],
          description="Which dose each patient was on from day to day (response.dose_periods): a dose row "
                      "holds until the next; LDN doses get their band from the rules file, other regimens "
                      "are one band each. Tolerability and titration read it.")
def dose_periods(context: dg.AssetExecutionContext, warehouse: DuckDBResource,
                 compute: Compute) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        compute.run(con, "marts", "dose_periods")
        meta = table_metadata(con, "response.dose_periods", engine=compute.engine)
    return dg.MaterializeResult(metadata=meta)


aggregate_marts = [dose_periods, *(_aggregate_asset(s) for s in AGGREGATE_MARTS)]


@dg.asset(group_name="marts", deps=[f"staged_{t}" for t in (
    "patients", "doses", "measurements", "fiqr_items", "adverse_events", "discontinuations")],
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
