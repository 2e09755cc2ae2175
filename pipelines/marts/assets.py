"""Summary marts for the clinic's own team: the SQL in sql/marts/, unsuppressed.

What leaves the clinic is the release bundle (pipelines/release/), built from these same
marts with small cells suppressed and audited across all of them at once.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.metadata import report, table_metadata
from pipelines.quality.checks import gx_check, no_fatal_check_failed
from pipelines.sqlfiles import run_sql


@dataclass(frozen=True)
class AggregateMart:
    name: str
    description: str
    deps: tuple[str, ...]
    prepare: tuple[str, ...] = ()  # sql/marts files to run first


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
        ("patient_response", "staged_doses", "staged_adverse_events"),
        prepare=("dose_periods",),
    ),
    AggregateMart(
        "titration",
        "LDN starting dose band vs sleep events (insomnia, vivid dreams) in the first 28 days "
        "and intolerance.",
        ("tolerability",),
    ),
    AggregateMart(
        "cohort_flow",
        "Per indication: enrolled, with a baseline, reached day 56, assessed, and each category.",
        ("patient_response", "staged_discontinuations"),
    ),
]


def _aggregate_asset(spec: AggregateMart) -> dg.AssetsDefinition:
    @dg.asset(name=spec.name, group_name="marts", deps=list(spec.deps), description=spec.description)
    def _asset(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
        with warehouse.get_connection() as con:
            for name in spec.prepare:
                run_sql(con, "marts", name)
            run_sql(con, "marts", spec.name)
            meta = table_metadata(con, f"marts.{spec.name}")
        report(context, f"mart {spec.name}: {meta['dagster/row_count']} rows")
        return dg.MaterializeResult(metadata=meta)

    return _asset


aggregate_marts = [_aggregate_asset(s) for s in AGGREGATE_MARTS]


@dg.asset(group_name="marts", deps=[f"staged_{t}" for t in (
    "patients", "doses", "measurements", "fiqr_items", "adverse_events", "discontinuations")],
    description="Every rejected row or file, with export, table, source file, line, rule, column "
                "and a detail that never quotes text. Patient-level: analysts only, no chart.")
def quarantine(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        run_sql(con, "marts", "quarantine")
        by_rule = dict(con.execute("SELECT rule, sum(rows_affected) FROM marts.quarantine "
                                   "GROUP BY rule ORDER BY rule").fetchall())
        meta = table_metadata(con, "marts.quarantine", quarantined_rows_by_rule=by_rule)
    report(context, "quarantine: " + (", ".join(f"{k} {v}" for k, v in by_rule.items()) or "empty"))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(group_name="marts", deps=["quarantine", "scored_fiqr", "patient_response",
                                    *[s.name for s in AGGREGATE_MARTS]],
          description="One row per export x table x check (contract rules, reconciliation, FIQR "
                      "scoring, Great Expectations) with threshold, severity and status.")
def data_quality(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                 warehouse: DuckDBResource) -> dg.MaterializeResult:
    import yaml

    catalogue = yaml.safe_load(Path(clinic.checks_file).read_text(encoding="utf-8"))["checks"]
    with warehouse.get_connection() as con:
        con.execute("CREATE OR REPLACE TABLE quality.check_catalogue (check_name VARCHAR, "
                    "kind VARCHAR, description VARCHAR, threshold_pct DOUBLE, severity VARCHAR)")
        con.executemany("INSERT INTO quality.check_catalogue VALUES (?, ?, ?, ?, ?)", [
            (c["check"], c["kind"], c["description"], c["threshold_pct"], c["severity"])
            for c in catalogue])
        run_sql(con, "quality", "reconciliation")
        run_sql(con, "quality", "data_quality")
        status = dict(con.execute("SELECT status, count(*) FROM marts.data_quality "
                                  "GROUP BY status").fetchall())
        meta = table_metadata(con, "marts.data_quality", checks_by_status=status)
    report(context, f"data quality: {status.get('pass', 0)} checks pass, {status.get('fail', 0)} fail")
    return dg.MaterializeResult(metadata=meta)


# The quarantine's suite runs before data_quality is built, so its results are in that mart;
# data_quality's and run_info's own suites are shown in Dagster (they run after it).
mart_checks = [gx_check(name, f"marts.{name}", name)
               for name in [s.name for s in AGGREGATE_MARTS] + ["quarantine", "data_quality"]] + [
    no_fatal_check_failed]
