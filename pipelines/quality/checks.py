"""Blocking asset checks: row reconciliation, Great Expectations suites, fatal data quality.

A failing blocking check stops everything downstream and makes `clinic run` exit non-zero.
"""


from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.quality.gx_validation import suite_path
from pipelines.resources import GreatExpectations
from pipelines.sqlfiles import run_sql


def reconciliation_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=f"staged_{table}", name="rows_reconcile", blocking=True,
                    description="Every raw row of every file is accounted for: rows read = "
                                "accepted + quarantined + exact duplicates.")
    def _check(warehouse: DuckDBResource) -> dg.AssetCheckResult:
        with warehouse.get_connection() as con:
            run_sql(con, "quality", "reconciliation")
            rows = con.execute(
                "SELECT source_file, rows_read, accepted, quarantined, duplicates, unaccounted "
                "FROM quality.reconciliation WHERE table_name = ?", [table]).fetchall()
        broken = [r for r in rows if r[5] != 0]
        totals = [sum(r[i] for r in rows) for i in range(1, 5)]
        return dg.AssetCheckResult(
            passed=not broken,
            severity=dg.AssetCheckSeverity.ERROR,
            description=("all files reconcile" if not broken else
                         "rows unaccounted for in " + ", ".join(f"{r[0]} ({r[5]})" for r in broken)
                         + ": the ingest lost or double-counted rows; report it with the file"),
            metadata={"files": len(rows), "rows_read": totals[0], "accepted": totals[1],
                      "quarantined": totals[2], "exact_duplicates": totals[3],
                      "files_not_reconciling": [r[0] for r in broken]},
        )

    return _check


ALL_EXPORTS = "'(all)'"  # as SQL


@dataclass(frozen=True)
class ChangedRows:
    """The rows of a relation this run added or recomputed (a SQL condition on it), and the
    SQL naming their exports in data_quality. Rows an earlier run validated are not
    validated again: GX checks what changed."""

    condition: str
    exports: str = ALL_EXPORTS
    rebuilt: str = "false"  # SQL: whether this run rebuilt the whole relation


# Staged rows from the exports applied in this run: every row in a cold run.
ROWS_OF_APPLIED_EXPORTS = ChangedRows(
    "export_id IN (SELECT export_id FROM ingest.pending_exports)",
    "(SELECT CASE WHEN ingest_mode = 'cold' THEN '(all)' ELSE exports_new END FROM ingest.run_plan)",
    "(SELECT ingest_mode = 'cold' FROM ingest.run_plan)")


def rows_of_refreshed_patients(table_name: str) -> ChangedRows:
    """A per-patient table's rows for the patients its refresh recomputed."""
    return ChangedRows("patient_id IN (SELECT patient_id FROM response.refreshed_patients "
                       f"WHERE table_name = '{table_name}')")


def gx_sample_query(relation: str, total: int, max_rows: int, sample_key: str | None) -> str:
    """All rows, or above max_rows a deterministic hash sample of about max_rows (the same
    rows every run, so data_quality stays idempotent); the contract SQL checks every row."""
    if sample_key is None or total <= max_rows:
        return f"SELECT * FROM {relation}"
    per_100k = max(1, round(100_000 * max_rows / total))
    return f"SELECT * FROM {relation} WHERE hash({sample_key}) % 100000 < {per_100k}"


def gx_check(asset: str, relation: str, suite: str, sample_key: str | None = None,
             changed: ChangedRows | None = None) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=f"gx_{suite}", blocking=True,
                    description=f"Great Expectations suite expectations/{suite}.json on {relation}"
                                + (" (the rows this run changed)." if changed else "."))
    def _check(clinic: ClinicConfig, warehouse: DuckDBResource,
               great_expectations: GreatExpectations) -> dg.AssetCheckResult:
        rows = f"(SELECT * FROM {relation} WHERE {changed.condition})" if changed else relation
        with warehouse.get_connection() as con:
            total = con.execute(f"SELECT count(*) FROM {rows}").fetchone()[0]
            if changed and total == 0 and not con.execute(f"SELECT {changed.rebuilt}").fetchone()[0]:
                # Nothing new to validate: the outcomes of earlier runs still describe the rows.
                return dg.AssetCheckResult(passed=True, description="no rows changed in this run",
                                           metadata={"rows_validated": 0})
            exports = con.execute(f"SELECT {changed.exports if changed else ALL_EXPORTS}").fetchone()[0]
            validated, outcomes = great_expectations.validate(
                con, gx_sample_query(rows, total, clinic.gx_max_rows, sample_key),
                suite_path(Path(clinic.expectations_dir), suite), relation)
            sampled = validated < total
            # Outcomes for every export replace all of the table's; for some, those exports'.
            con.execute("DELETE FROM quality.gx_outcomes WHERE table_name = ? AND (? = '(all)' OR "
                        "export_id = ?)", [relation, exports, exports])
            con.executemany("INSERT INTO quality.gx_outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                (exports, o.table_name, o.check_name, o.description, o.rows_checked, o.rows_failed,
                 o.threshold_pct, o.severity) for o in outcomes])
        failed = [o for o in outcomes if not o.success and o.severity == "fatal"]
        warned = [o for o in outcomes if not o.success and o.severity != "fatal"]
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=("all expectations met" if not (failed or warned) else
                         "failed: " + ", ".join(f"{o.check_name} ({o.rows_failed} rows)"
                                                 for o in failed + warned)),
            metadata={"expectations": len(outcomes), "failed_fatal": [o.check_name for o in failed],
                      "failed_warning": [o.check_name for o in warned], "rows_validated": validated,
                      "rows_in_scope": total, "scope": "rows changed in this run" if changed else
                      "whole table", "exports": exports, "sampled": sampled},
        )

    return _check


@dg.asset_check(asset="data_quality", name="no_fatal_check_failed", blocking=True,
                description="No check declared fatal (rules/quality_checks.yaml, GX critical) failed.")
def no_fatal_check_failed(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        failing = con.execute(
            "SELECT export_id, table_name, check_name, rows_failed FROM marts.data_quality "
            "WHERE severity = 'fatal' AND status = 'fail'").fetchall()
    return dg.AssetCheckResult(
        passed=not failing,
        description="no fatal check failed" if not failing else "fatal checks failed: " + ", ".join(
            f"{t}.{c} in {e} ({n} rows)" for e, t, c, n in failing),
        metadata={"fatal_failures": [f"{e}/{t}/{c}" for e, t, c, _ in failing]},
    )
