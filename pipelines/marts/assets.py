"""Summary marts: SQL in sql/marts/, then small-cell suppression on what leaves the clinic."""


from dataclasses import dataclass, field

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.marts.suppression import Rollup, SumGroup, suppress
from pipelines.metadata import report, table_metadata
from pipelines.quality.checks import gx_check, no_fatal_check_failed
from pipelines.release.disclosure import COUNT_COLUMNS, DERIVED_COLUMNS
from pipelines.resources import ClinicConfig
from pipelines.sqlfiles import run_sql, write_frame


@dataclass(frozen=True)
class AggregateMart:
    name: str
    description: str
    deps: tuple[str, ...]
    counts: tuple[str, ...]
    derived: dict = field(default_factory=dict)
    groups: tuple[SumGroup, ...] = ()
    prepare: tuple[str, ...] = ()  # sql/marts files to run first
    rollups: tuple[Rollup, ...] = ()  # rows that add up to other rows (for suppression)


# Indication rows add up to the 'all' row with the same other keys.
def _to_all(*by: str) -> tuple[Rollup, ...]:
    return (Rollup("indication != 'all'", "indication == 'all'", by),)


# Each mart's counts and the columns derived from them come from pipelines/release/disclosure.py,
# so the release's disclosure audit and this suppression name the same cells.
AGGREGATE_MARTS = [
    AggregateMart(
        "response_by_indication",
        "Categories per indication x regimen, per indication group and for all patients: counts, "
        "rates over evaluable patients with Wilson 95% intervals, small cells suppressed.",
        ("patient_response",),
        COUNT_COLUMNS["response_by_indication"], DERIVED_COLUMNS["response_by_indication"],
        (SumGroup("n_evaluable", ("n_meaningful", "n_minimal", "n_intolerant")),
         SumGroup("n_patients", ("n_evaluable", "n_not_assessable"), hide_total_first=True)),
        rollups=(Rollup("level == 'indication'", "level == 'indication_group'", ("indication_group",)),
                 Rollup("level == 'indication_group'", "level == 'all'")),
    ),
    AggregateMart(
        "measure_trajectory",
        "Every instrument by indication, visit week (0-52, nearest within 2 weeks) and category: "
        "median and quartiles of the value and of percent change from baseline.",
        ("patient_response", "trajectory_points"),
        COUNT_COLUMNS["measure_trajectory"], DERIVED_COLUMNS["measure_trajectory"],
    ),
    AggregateMart(
        "tolerability",
        "Adverse events by indication, regimen and the dose band in effect that day: patients "
        "with the event, share of patients exposed to the band, and discontinuations.",
        ("patient_response", "staged_doses", "staged_adverse_events"),
        COUNT_COLUMNS["tolerability"], DERIVED_COLUMNS["tolerability"],
        prepare=("dose_periods",), rollups=_to_all("regimen", "event", "dose_band"),
    ),
    AggregateMart(
        "titration",
        "LDN starting dose band vs sleep events (insomnia, vivid dreams) in the first 28 days "
        "and intolerance.",
        ("tolerability",),
        COUNT_COLUMNS["titration"], DERIVED_COLUMNS["titration"],
        rollups=_to_all("starting_dose_band"),
    ),
    AggregateMart(
        "cohort_flow",
        "Per indication: enrolled, with a baseline, reached day 56, assessed, and each category.",
        ("patient_response", "staged_discontinuations"),
        COUNT_COLUMNS["cohort_flow"], DERIVED_COLUMNS["cohort_flow"],
        groups=(SumGroup("enrolled", ("n_meaningful", "n_minimal", "n_intolerant", "n_not_assessable")),),
        rollups=_to_all(),
    ),
]


def _aggregate_asset(spec: AggregateMart) -> dg.AssetsDefinition:
    @dg.asset(name=spec.name, group_name="marts", deps=list(spec.deps), description=spec.description)
    def _asset(context: dg.AssetExecutionContext, clinic: ClinicConfig,
               warehouse: DuckDBResource) -> dg.MaterializeResult:
        with warehouse.get_connection() as con:
            for name in spec.prepare:
                run_sql(con, "marts", name)
            run_sql(con, "marts", spec.name)
            frame = con.execute(f"SELECT * FROM marts.{spec.name}").df()
            published = suppress(frame, spec.counts, spec.derived, spec.groups,
                                 clinic.settings.min_cell_size, spec.rollups)
            write_frame(con, f"marts.{spec.name}", published)
            meta = table_metadata(con, f"marts.{spec.name}",
                                  suppressed_rows=int(published["suppressed"].sum()))
        report(context, f"mart {spec.name}: {meta['dagster/row_count']} rows "
                        f"({meta['suppressed_rows']} with suppressed cells)")
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

    catalogue = yaml.safe_load(clinic.settings.checks_file.read_text(encoding="utf-8"))["checks"]
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
