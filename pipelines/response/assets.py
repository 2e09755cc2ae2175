"""Response assets: the rules as a table, scored FIQR questionnaires, each patient's category."""


from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.engines import Compute
from pipelines.ingest.load import ensure_warehouse
from pipelines.metadata import report, table_metadata
from pipelines.orchestration.fingerprint import published_fingerprint
from pipelines.response.incremental import Refresh, fingerprint, refresh_per_patient
from pipelines.response.rules import rules_content, write_rules_table
from pipelines.sqlfiles import write_frame


def write_reporting_tables(con, rules: dict) -> None:
    """Visit weeks, LDN dose bands and early sleep events from the rules file, as tables."""
    import pandas as pd  # only this step needs it

    t = rules["trajectory"]
    weeks = pd.DataFrame({"visit_week": t["visit_weeks"], "window_days": t["window_days"]})
    bands = pd.DataFrame(rules["ldn_dose_bands"]).assign(sort_order=lambda f: range(1, len(f) + 1))
    # A band's lower bound belongs to the band below when that one includes its upper bound.
    bands["from_taken_by_previous"] = (bands.to_inclusive.shift(fill_value=False)
                                       & (bands.to_mg.shift() == bands.from_mg))
    sleep = pd.DataFrame({"event": rules["early_sleep_events"]["events"],
                          "within_days": rules["early_sleep_events"]["within_days"]})
    for name, frame in (("visit_weeks", weeks), ("dose_bands", bands), ("early_sleep_events", sleep)):
        write_frame(con, f"response.{name}", frame)


@dg.asset(group_name="response", description=(
    "The response rules file (windows, primary measure and threshold per indication, "
    "reporting bands) and each instrument's direction (the instrument registry) as warehouse "
    "tables; rules_version is stamped on every mart row."))
def response_rules(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                   warehouse: DuckDBResource) -> dg.MaterializeResult:
    rules, contract = clinic.rules(), clinic.contract()
    with warehouse.get_connection() as con:
        ensure_warehouse(con, contract)
        write_rules_table(con, rules, contract)
        write_reporting_tables(con, rules)
        meta = table_metadata(con, "response.rules", rules_version=str(rules["version"]),
                              rules_file=dg.MetadataValue.path(clinic.rules_file))
    report(context, f"response rules version {rules['version']} from {clinic.rules_file}")
    reused = version_reused(rules, published_fingerprint(Path(clinic.marts_dir)))
    if reused:
        context.log.warning(reused)
        report(context, f"WARNING: {reused}")
    return dg.MaterializeResult(metadata={**meta, "rules_changed_under_the_same_version": bool(reused)})


def version_reused(rules: dict, published: dict | None) -> str | None:
    """What to say when the rules differ from those the published set was built with but keep
    its version (every mart row and each release names only the version); None otherwise."""
    if not published or str(published.get("rules_version")) != str(rules["version"]):
        return None
    if published.get("rules_content") in (None, rules_content(rules)):
        return None
    return (f"the response rules differ from those of the published set but keep its version {rules['version']}: "
            f"marts and releases would name both version {rules['version']}; give the changed rules a new "
            "`version` in the rules file")


@dg.asset(group_name="response", deps=["staged_fiqr_items", "staged_measurements"],
          description=("FIQR questionnaires scored from item answers (Bennett 2009, one missing "
                       "function item prorated), and the scored-vs-delivered disagreements."))
def scored_fiqr(context: dg.AssetExecutionContext, warehouse: DuckDBResource,
                compute: Compute) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        compute.run(con, "response", "fiqr_scores")
        unscorable, disagree = con.execute(
            "SELECT (SELECT count(*) FROM response.fiqr_questionnaires WHERE NOT scorable), "
            "(SELECT count(*) FROM response.fiqr_disagreements)").fetchone()
        meta = table_metadata(con, "response.fiqr_questionnaires", unscorable=unscorable,
                              disagreements_over_1_point=disagree, engine=compute.engine)
    report(context, f"scored {meta['dagster/row_count']:,} FIQR questionnaires "
                    f"({unscorable} unscorable, {disagree} disagree with fiqr_total)")
    return dg.MaterializeResult(metadata=meta)


@dg.asset(group_name="response", deps=[scored_fiqr, "staged_measurements"],
          description=("Every measurement value the response rules and trajectories use, with its source "
                       "row: delivered rows (`<export>/<file>:<line>`) and scored FIQR questionnaires "
                       "(`<export>/fiqr_items.csv`), a scored one replacing a delivered fiqr_total on the "
                       "same day (a view, sql/response/measure_values.sql)."))
def measure_values(context: dg.AssetExecutionContext, warehouse: DuckDBResource,
                   compute: Compute) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        compute.run(con, "response", "measure_values")
        meta = table_metadata(con, "response.measure_values", engine=compute.engine)
    return dg.MaterializeResult(metadata=meta)


# Categories are computed only from data whose files reconcile and whose exports pass the
# dataset expectations (both blocking): the graph shows the gate.
VALIDATED = ["reconciliation", "dataset_expectations"]


def _refresh(clinic: ClinicConfig, compute: Compute, con, table_name: str, sql_name: str) -> Refresh:
    contract = clinic.contract()
    return refresh_per_patient(con, table_name, sql_name, fingerprint(Path(clinic.rules_file), contract),
                               list(contract.tables), compute)


@dg.asset(group_name="response", deps=[measure_values, "staged_patients", "staged_discontinuations",
                                       "staged_adverse_events", "response_rules", *VALIDATED],
          description=("One row per patient: baseline and assessment of the primary measure, "
                       "change, category (meaningful, minimal, intolerant, not_assessable), reason "
                       "and the source rows of both values (sql/response/patient_response.sql). "
                       "Recomputed for the patients new exports touched (response/incremental.py)."))
def patient_response(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                     warehouse: DuckDBResource, compute: Compute) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        done = _refresh(clinic, compute, con, "marts.patient_response", "patient_response")
        counts = dict(con.execute("SELECT category, count(*) FROM marts.patient_response "
                                  "GROUP BY category ORDER BY category").fetchall())
        meta = table_metadata(con, "marts.patient_response", categories=counts, engine=compute.engine,
                              **done.metadata())
    report(context, f"categorised {meta['dagster/row_count']:,} patients ({done.mode}: {done.patients:,} "
                    f"recomputed, {done.reason}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return dg.MaterializeResult(metadata=meta)


@dg.asset(group_name="response", deps=[measure_values, "staged_patients", "response_rules", *VALIDATED],
          description=("One row per patient, instrument and visit week: the value nearest the "
                       "week's day and its percent change from the instrument's baseline "
                       "(sql/response/trajectory_points.sql); measure_trajectory sums these up. "
                       "Recomputed for the patients new exports touched (response/incremental.py)."))
def trajectory_points(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                      warehouse: DuckDBResource, compute: Compute) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        done = _refresh(clinic, compute, con, "response.trajectory_points", "trajectory_points")
        meta = table_metadata(con, "response.trajectory_points", engine=compute.engine, **done.metadata())
    report(context, f"trajectory points: {meta['dagster/row_count']:,} ({done.mode}: {done.patients:,} "
                    f"patients recomputed)")
    return dg.MaterializeResult(metadata=meta)
