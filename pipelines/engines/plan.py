"""Which SQL runs on the chosen engine and which always runs in the warehouse (DuckDB).

The boundary (docs/scale-out.md): ingest (reading files, row checks, physical line numbers,
quarantine, the incremental merge with DELETE/INSERT), the warehouse's bookkeeping and the
data-quality, publishing and dashboard SQL stay in DuckDB: Spark's plain tables cannot
DELETE or UPDATE, and line numbers need one pass over each file. What runs on the engine is
the business logic after ingest: every file under sql/staging, sql/response and sql/marts
says `runs_on: engine` or `runs_on: warehouse` (with why) in its .yml, or in its stage's
_files.yml when it is not a model (pipelines/manifest.py; tests/test_spark.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterator

from pipelines.ingest.contract import Contract, Table
from pipelines.manifest import Manifest, load_manifest
from pipelines.sqlfiles import quote_ident

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


def engine_files(contract: Contract, manifest: Manifest | None = None) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Every (stage, name, placeholders) a run hands to the engine, stage by stage."""
    for stage, name in (manifest or load_manifest()).engine_files():
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
