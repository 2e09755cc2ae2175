"""Quality assets: the tables the checks read are made by assets, so the graph shows them.

- `reconciliation`: rows read = accepted + quarantined + duplicates, per file (blocking).
- `export_profiles` -> `dataset_expectations`: Great Expectations on each export as a whole
  against the earlier exports (a unit change, lost rows, missing baselines, a stale feed):
  what the row contract cannot see (blocking on fatal expectations).
- `mart_expectations`: the mart suites on what this run built (blocking on fatal ones).
Checks only read what these assets wrote; marts.data_quality crosses it all with the
catalogue (pipelines/quality/catalogue.py). The contract's tables are read at run time; the
assets that read every staged table get those deps from pipelines/definitions.py, and the
mart suites come from the model manifest (pipelines/manifest.py).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.ingest.exports import READY_MARKER
from pipelines.manifest import Manifest, Model
from pipelines.metadata import report, table_metadata
from pipelines.quality.gx_validation import ExpectationOutcome, suite_path
from pipelines.resources import GreatExpectations
from pipelines.sqlfiles import quote_literal, run_sql, sql

ALL_EXPORTS = "(all)"
# The exports whose dataset checks a run performs (made by sql/quality/export_profiles.sql): the
# ones it applies and every applied export whose checks were never stored (its run died first).
EXPORTS_TO_CHECK = "quality.exports_to_check"


def store_outcomes(con, export_id: str, table_name: str, outcomes: list[ExpectationOutcome]) -> None:
    """Replace what a suite found for one export (or '(all)') and table in quality.gx_outcomes:
    outcomes persist per export, so earlier exports keep what the run that applied them found."""
    store_many_outcomes(con, [(export_id, table_name, outcomes)])


def store_many_outcomes(con, found: list[tuple[str, str, list[ExpectationOutcome]]]) -> None:
    """store_outcomes for many (export, table, outcomes) at once: two statements whatever their
    number, so a run checking 1,000 exports does not pay 1,000 round trips."""
    rows = [(export_id, table_name, o.check_name, o.description, o.rows_checked, o.rows_failed, o.threshold_pct,
             o.severity, o.detail) for export_id, table_name, outcomes in found for o in outcomes]
    if not rows:
        return
    import pandas as pd

    new_outcomes = pd.DataFrame(rows, columns=["export_id", "table_name", "check_name", "description",
                                               "rows_checked", "rows_failed", "threshold_pct", "severity",
                                               "detail"])
    con.register("new_gx_outcomes", new_outcomes)
    try:
        con.execute(f"DELETE FROM quality.gx_outcomes o USING new_gx_outcomes n WHERE o.table_name = n.table_name "
                    f"AND o.check_name = n.check_name AND (n.export_id = '{ALL_EXPORTS}' OR o.export_id = n.export_id)")
        con.execute("INSERT INTO quality.gx_outcomes BY NAME SELECT * FROM new_gx_outcomes")
    finally:
        con.unregister("new_gx_outcomes")


def mark_dataset_checked(con, export_ids: list[str]) -> None:
    """Record that every dataset suite stored its outcomes for this application of the exports;
    until then (a run killed or failed before), the next run checks them again."""
    con.execute("DELETE FROM quality.dataset_checked WHERE export_id IN (SELECT unnest(?))", [export_ids])
    con.execute("INSERT INTO quality.dataset_checked SELECT export_id, CAST(max(applied_at) AS VARCHAR) "
                "FROM ingest.applied_exports WHERE export_id IN (SELECT unnest(?)) GROUP BY export_id", [export_ids])


def fatal_failures(con, level_tables: list[str], exports_sql: str) -> list[tuple]:
    """Fatal expectations that failed for the given tables and exports."""
    return con.execute(
        f"SELECT export_id, table_name, check_name, rows_failed, description, detail FROM quality.gx_outcomes "
        f"WHERE severity = 'fatal' AND rows_failed > threshold_pct / 100.0 * rows_checked "
        f"AND (rows_failed > 0) AND table_name IN (SELECT unnest(?)) AND export_id IN ({exports_sql}) "
        "ORDER BY ALL", [level_tables]).fetchall()


def _no_fatal(failing: list[tuple], what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not failing, severity=dg.AssetCheckSeverity.ERROR,
        description=f"no fatal {what} expectation failed" if not failing else "fatal expectations failed: " + "; ".join(
            f"{c} on {t} in export {e} ({n} rows{': ' + d if d else ''}): {about}"
            for e, t, c, n, about, d in failing),
        metadata={"failed": [f"{e}/{t}/{c}" for e, t, c, *_ in failing]})


# --- reconciliation ---------------------------------------------------------------------------


@dg.asset(group_name="quality",
          description="Per file: rows read against accepted + quarantined + exact duplicates (quarantine "
                      "counted from the quarantine itself, orphans judged now); a file whose rows do not add "
                      "up stops the run.")
def reconciliation(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        run_sql(con, "quality", "reconciliation")
        meta = table_metadata(con, "quality.reconciliation")
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=reconciliation, name="rows_reconcile", blocking=True,
                description="Every raw row of every file is accounted for: rows read = accepted + "
                            "quarantined + exact duplicates.")
def rows_reconcile(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        rows = con.execute("SELECT table_name, source_file, rows_read, accepted, quarantined, duplicates, "
                           "unaccounted FROM quality.reconciliation ORDER BY ALL").fetchall()
    broken = [r for r in rows if r[6] != 0]
    return dg.AssetCheckResult(
        passed=not broken, severity=dg.AssetCheckSeverity.ERROR,
        description=("all files reconcile" if not broken else
                     "rows unaccounted for in " + ", ".join(f"{r[1]} ({r[6]})" for r in broken)
                     + ": the ingest lost or double-counted rows; report it with the file"),
        metadata={"files": len(rows), "rows_read": sum(r[2] for r in rows),
                  "files_not_reconciling": [r[1] for r in broken]})


# --- dataset-level expectations ---------------------------------------------------------------


@dg.asset(group_name="quality", deps=["measure_values"],
          description="One profile per export applied (quality.export_profiles): each instrument's mean and "
                      "90th percentile, rows and patients per table, and the share of patients with a "
                      "baseline of their primary measure, for the dataset expectations.")
def export_profiles(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                    warehouse: DuckDBResource) -> dg.MaterializeResult:
    volume = " UNION ALL ".join(sql("quality", "table_volume", table_name=t) for t in clinic.contract().tables)
    with warehouse.get_connection() as con:
        run_sql(con, "quality", "export_profiles", volume=volume, unchecked_exports=sql("quality", "unchecked_exports"))
        meta = table_metadata(con, "quality.export_profiles")
    return dg.MaterializeResult(metadata=meta)


@dataclass(frozen=True)
class DatasetSuite:
    suite: str
    frame: str  # the temp view of sql/quality/dataset_frames.sql it validates
    by_table: bool = False  # one validation per contract table (the frame has a table_name column)


DATASET_SUITES = [DatasetSuite("dataset_distribution", "frame_dataset_distribution"),
                  DatasetSuite("dataset_volume", "frame_dataset_volume", by_table=True),
                  DatasetSuite("dataset_completeness", "frame_dataset_completeness")]
SUITE_TABLES = {"dataset_distribution": "measurements", "dataset_completeness": "patients"}


def newest_export_age_days(raw_dir: Path, newest: str) -> float:
    """Days since the newest export was marked complete (its _READY file was written)."""
    return max(0.0, (time.time() - (raw_dir / newest / READY_MARKER).stat().st_mtime) / 86400)


@dg.asset(group_name="quality", deps=[export_profiles],
          description="Great Expectations on each export applied as a whole, against the exports before "
                      "it (expectations/dataset_*.json): distribution of each instrument's values (a unit "
                      "change), rows per patient per table, share of patients with a baseline, and the "
                      "newest export's age. Outcomes per export land in quality.gx_outcomes.")
def dataset_expectations(context: dg.AssetExecutionContext, clinic: ClinicConfig, warehouse: DuckDBResource,
                         great_expectations: GreatExpectations) -> dg.MaterializeResult:
    suites = Path(clinic.expectations_dir)
    contract_tables = list(clinic.contract().tables)
    checked = 0
    with warehouse.get_connection() as con:
        exports = [e for (e,) in con.execute(f"SELECT export_id FROM {EXPORTS_TO_CHECK} ORDER BY export_id")
                   .fetchall()]
        if exports:  # one validation per suite for all of them (its outcomes split per export)
            run_sql(con, "quality", "dataset_frames")
            found = []
            for s in DATASET_SUITES:
                tables = contract_tables if s.by_table else [SUITE_TABLES[s.suite]]
                group_by = ["export_id", "table_name"] if s.by_table else ["export_id"]
                groups = [(e, t) for e in exports for t in tables]
                _, per_group = great_expectations.validate_groups(
                    con, f"SELECT * FROM {s.frame}", suite_path(suites, s.suite),
                    "(each table)" if s.by_table else tables[0], group_by,
                    groups if s.by_table else [(e,) for e, _ in groups])
                found += [(e, t, outcomes) for (e, t), outcomes in zip(groups, per_group, strict=True)]
                checked += sum(len(outcomes) for outcomes in per_group)
            store_many_outcomes(con, found)
            mark_dataset_checked(con, exports)
        newest = con.execute("SELECT max(export_id) FROM ingest.applied_exports").fetchall()[0][0]
        if newest is not None:  # a feed's staleness is a property of now: checked every run
            con.execute("DELETE FROM quality.gx_outcomes WHERE table_name = '(export)'")
            age = newest_export_age_days(Path(clinic.raw_dir), newest)
            _, outcomes = great_expectations.validate(con, f"SELECT {quote_literal(newest)} AS export_id, "
                                                      f"{age} AS age_days", suite_path(suites, "dataset_freshness"),
                                                      "(export)")
            store_outcomes(con, newest, "(export)", outcomes)
        failing = fatal_failures(con, [*contract_tables, "(export)"], f"SELECT export_id FROM {EXPORTS_TO_CHECK}")
    report(context, f"dataset expectations: {len(exports):,} export(s) profiled, {checked:,} outcomes"
                    + (f", {len(failing)} fatal failure(s)" if failing else ""))
    return dg.MaterializeResult(metadata={"exports_validated": exports, "outcomes": checked,
                                          "fatal_failures": len(failing)})


@dg.asset_check(asset=dataset_expectations, name="no_fatal_expectation_failed", blocking=True,
                description="No fatal dataset expectation failed for the exports this run applied or checked "
                            "again (an export whose run died before its checks is checked now; a change "
                            "of unit or scale stops the run before anything is categorised or published).")
def dataset_expectations_pass(clinic: ClinicConfig, warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        failing = fatal_failures(con, [*clinic.contract().tables, "(export)"], f"SELECT export_id FROM {EXPORTS_TO_CHECK}")
    return _no_fatal(failing, "dataset")


# --- mart expectations ------------------------------------------------------------------------


def gx_sample_query(relation: str, total: int, max_rows: int, sample_key: str | None) -> str:
    """All rows, or above max_rows a deterministic hash sample of about max_rows (the same
    rows every run, so data_quality stays idempotent); SQL checks every row elsewhere."""
    if sample_key is None or total <= max_rows:
        return f"SELECT * FROM {relation}"
    per_100k = max(1, round(100_000 * max_rows / total))
    return f"SELECT * FROM {relation} WHERE hash({sample_key}) % 100000 < {per_100k}"


def mart_expectations_definitions(manifest: Manifest) -> list:
    """mart_expectations and its blocking check, over every model whose .yml names a suite
    (`expectations:`) to validate when it is built."""
    suites = manifest.suites()
    relations = [m.relation for m in suites]

    @dg.asset(group_name="quality", deps=sorted({m.asset for m in suites}),
              description="Great Expectations suites of the marts (expectations/<mart>.json) on what this run "
                          "built: every aggregate mart and the quarantine whole, patient_response for the "
                          "patients this run recomputed. Outcomes land in quality.gx_outcomes.")
    def mart_expectations(context: dg.AssetExecutionContext, clinic: ClinicConfig, warehouse: DuckDBResource,
                          great_expectations: GreatExpectations) -> dg.MaterializeResult:
        validated = {}
        with warehouse.get_connection() as con:
            for m in suites:
                n = validate_mart(con, clinic, great_expectations, m)
                if n is not None:
                    validated[m.name] = n
            failing = fatal_failures(con, relations, f"'{ALL_EXPORTS}'")
        kept = [m.name for m in suites if m.name not in validated]  # per-patient, no patient recomputed
        report(context, f"mart expectations: {len(validated)} suites"
               + (f" ({', '.join(kept)}: no patient recomputed, its last outcomes stand)" if kept else "")
               + (f", {len(failing)} fatal failure(s)" if failing else ""))
        return dg.MaterializeResult(metadata={"rows_validated": validated, "fatal_failures": len(failing)})

    @dg.asset_check(asset=mart_expectations, name="no_fatal_expectation_failed", blocking=True,
                    description="No fatal expectation of the mart suites failed.")
    def mart_expectations_pass(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            failing = fatal_failures(con, relations, f"'{ALL_EXPORTS}'")
        return _no_fatal(failing, "mart")

    return [mart_expectations, mart_expectations_pass]


def validate_mart(con, clinic: ClinicConfig, great_expectations: GreatExpectations, model: Model) -> int | None:
    """Validate a mart's suite on what this run built (for a per-patient mart, the patients it
    recomputed; None when there were none: earlier outcomes still describe the rows)."""
    changed = model.gx_condition()
    rows = f"(SELECT * FROM {model.relation} WHERE {changed})" if changed else model.relation
    total = con.execute(f"SELECT count(*) FROM {rows}").fetchall()[0][0]
    if changed and total == 0:
        return None
    n, outcomes = great_expectations.validate(
        con, gx_sample_query(rows, total, clinic.gx_max_rows, model.sample_key),
        suite_path(Path(clinic.expectations_dir), model.suite), model.relation)
    store_outcomes(con, ALL_EXPORTS, model.relation, outcomes)
    return n


def gx_check(model: Model) -> dg.AssetChecksDefinition:
    """A suite run as a read-only blocking check, for the marts built after data quality (the
    data_quality and run_info marts themselves, `as_check` in their .yml): it writes nothing an
    asset reads."""
    suite, relation = model.suite, model.relation

    @dg.asset_check(asset=model.asset, name=f"gx_{suite}", blocking=True,
                    description=f"Great Expectations suite expectations/{suite}.json on {relation}.")
    def _check(clinic: ClinicConfig, warehouse: DuckDBResource,
               great_expectations: GreatExpectations) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            n, outcomes = great_expectations.validate(con, f"SELECT * FROM {relation}",
                                                      suite_path(Path(clinic.expectations_dir), suite), relation)
        failed = [o for o in outcomes if not o.success and o.severity == "fatal"]
        return dg.AssetCheckResult(
            passed=not failed, severity=dg.AssetCheckSeverity.ERROR,
            description="all expectations met" if not failed else "failed: " + ", ".join(
                f"{o.check_name} ({o.rows_failed} rows)" for o in failed),
            metadata={"rows_validated": n, "failed_fatal": [o.check_name for o in failed]})

    return _check


@dg.asset_check(asset="data_quality", name="no_fatal_check_failed", blocking=True,
                description="No check declared fatal (rules/quality_checks.yaml, GX critical) failed, for any "
                            "export: a failed export keeps failing until it is fixed.")
def no_fatal_check_failed(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        failing = con.execute(
            "SELECT export_id, table_name, check_name, rows_failed FROM marts.data_quality "
            "WHERE severity = 'fatal' AND status = 'fail' ORDER BY ALL").fetchall()
    return dg.AssetCheckResult(
        passed=not failing,
        description="no fatal check failed" if not failing else "fatal checks failed: " + ", ".join(
            f"{t}.{c} in {e} ({n} rows)" for e, t, c, n in failing),
        metadata={"fatal_failures": [f"{e}/{t}/{c}" for e, t, c, _ in failing]},
    )


def quality_definitions(manifest: Manifest) -> tuple[list, list]:
    """The quality assets but reconciliation and export_profiles (pipelines/definitions.py adds
    the staged tables to their deps), and every quality check, with those the manifest's suites make."""
    mart_expectations, mart_expectations_pass = mart_expectations_definitions(manifest)
    return ([dataset_expectations, mart_expectations],
            [rows_reconcile, dataset_expectations_pass, mart_expectations_pass, no_fatal_check_failed,
             *(gx_check(m) for m in manifest.suites(as_check=True))])
