"""Which SQL runs on the chosen engine and which always runs in the warehouse (DuckDB).

The boundary (docs/scale-out.md): ingest (reading files, row checks, physical line numbers,
quarantine, the incremental merge with DELETE/INSERT), the warehouse's bookkeeping and the
data-quality, publishing and dashboard SQL stay in DuckDB: Spark's plain tables cannot
DELETE or UPDATE, and line numbers need one pass over each file. What runs on the engine is
the business logic after ingest, listed here; every file under sql/staging, sql/response and
sql/marts is in exactly one of the two lists (tests/test_spark_sql.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterator

from pipelines.ingest.contract import Contract, Table
from pipelines.sqlfiles import quote_ident

# The business SQL, in the order a run executes it (each file's placeholders from staging_file
# and PER_PATIENT_TABLES).
ENGINE_FILES = [
    ("staging", "stage_patients"), ("staging", "stage_unreferenced"), ("staging", "stage_table"),
    ("response", "fiqr_scores"), ("response", "measure_values"),
    ("response", "score_every_patient"), ("response", "patient_response"), ("response", "trajectory_points"),
    ("response", "rebuild_per_patient"),
    ("marts", "dose_periods"), ("marts", "functions"), ("marts", "response_by_indication"),
    ("marts", "measure_trajectory"), ("marts", "tolerability"), ("marts", "titration"), ("marts", "cohort_flow"),
    ("marts", "quarantine"),
]
# Always DuckDB, and why.
WAREHOUSE_FILES = {
    ("staging", "orphan_rows"): "bookkeeping: DELETE/INSERT into quality.orphan_rows",
    ("response", "changed_patients"): "the incremental per-patient refresh (a DuckDB optimisation)",
    ("response", "refresh_per_patient"): "the incremental per-patient refresh: DELETE/INSERT",
    ("marts", "run_info"): "bookkeeping: UPDATE of the run log",
}
# The per-patient tables and the views their SQL defines over response.patients_to_score.
PER_PATIENT_TABLES = {"patient_response": "marts.patient_response",
                      "trajectory_points": "response.trajectory_points"}


def staging_file(table: Table) -> tuple[str, dict[str, str]]:
    """The staging .sql file for a contract table and its placeholders."""
    if table.name == "patients":
        return "stage_patients", {"table_name": table.name}
    if not table.references:
        return "stage_unreferenced", {"table_name": table.name}
    (column, parent), = table.references.items()
    return "stage_table", {"table_name": table.name, "column": quote_ident(column), "column_name": column,
                           "parent": parent}


def orphan_params(table: Table) -> dict[str, str] | None:
    """orphan_rows.sql's placeholders for a table with a foreign key, else None."""
    name, params = staging_file(table)
    return params if name == "stage_table" else None


def engine_files(contract: Contract) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Every (stage, name, placeholders) a run hands to the engine, in order."""
    for stage, name in ENGINE_FILES:
        if stage == "staging":
            for table in contract.tables.values():
                file_name, params = staging_file(table)
                if file_name == name:
                    yield stage, name, params
        elif name == "rebuild_per_patient":
            for sql_name, table_name in PER_PATIENT_TABLES.items():
                yield stage, name, {"table_name": table_name, "scoped_view": f"response.{sql_name}_to_score"}
        else:
            yield stage, name, {}
