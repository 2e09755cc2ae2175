"""Staged tables: the loaded rows whose patient is known, as views over the core tables."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.ingest.assets import TABLES
from pipelines.metadata import report, table_metadata
from pipelines.sqlfiles import quote_ident, run_sql


def stage(con, contract, table: str) -> int:
    """Stage one contract table (a view over core) and quarantine its orphans: rows whose
    reference (the contract's `references:`) points to no row. Returns the orphans."""
    spec = contract.tables[table]
    if not spec.references:
        run_sql(con, "staging", "stage_patients" if table == "patients" else "stage_unreferenced",
                table_name=table)
        return 0
    (column, parent), = spec.references.items()
    run_sql(con, "staging", "stage_table", table_name=table, column=quote_ident(column), column_name=column,
            parent=parent)
    return con.execute("SELECT count(*) FROM quality.orphan_rows WHERE table_name = ?", [table]).fetchall()[0][0]


def _staged_table_asset(table: str) -> dg.AssetsDefinition:
    deps = [f"loaded_{table}", "loaded_patients", "response_rules"]

    @dg.asset(name=f"staged_{table}", group_name="staging", deps=sorted(set(deps)),
              description=(f"Staged `{table}`: loaded rows whose patient is accepted (orphans are "
                           "quarantined, and adopted if the patient arrives in a later export)."
                           if table != "patients" else
                           "Staged patients, with the indication group from the rules file."))
    def _asset(context: dg.AssetExecutionContext, clinic: ClinicConfig,
               warehouse: DuckDBResource) -> dg.MaterializeResult:
        with warehouse.get_connection() as con:
            orphans = stage(con, clinic.contract(), table)
            meta = table_metadata(con, f"staging.{table}", orphan_rows_quarantined=orphans)
        report(context, f"staged {table}: {meta['dagster/row_count']} rows"
                        + (f", {orphans} orphan rows quarantined" if orphans else ""))
        return dg.MaterializeResult(metadata=meta)

    return _asset


staged_tables = [_staged_table_asset(t) for t in TABLES]
