"""Staged tables: the loaded rows whose patient is known, as views over the core tables."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.engines import Compute, DuckDBCompute
from pipelines.engines.plan import orphan_params, staging_file
from pipelines.metadata import report, table_metadata
from pipelines.sqlfiles import run_sql


def stage(con, contract, table: str, compute: Compute | None = None) -> int:
    """Stage one contract table (a view over core) on the chosen engine and quarantine its
    orphans in the warehouse: rows whose reference (the contract's `references:`) points to
    no row. Returns the orphans."""
    spec = contract.tables[table]
    sql_name, params = staging_file(spec)
    (compute or DuckDBCompute()).run(con, "staging", sql_name, **params)
    if (orphan := orphan_params(spec)) is None:
        return 0
    run_sql(con, "staging", "orphan_rows", **orphan)  # bookkeeping: in the warehouse
    return con.execute("SELECT count(*) FROM quality.orphan_rows WHERE table_name = ?", [table]).fetchall()[0][0]


def _staged_table_asset(table: str) -> dg.AssetsDefinition:
    deps = [f"loaded_{table}", "loaded_patients", "response_rules"]

    @dg.asset(name=f"staged_{table}", group_name="staging", deps=sorted(set(deps)),
              description=(f"Staged `{table}`: loaded rows whose patient is accepted (orphans are "
                           "quarantined, and adopted if the patient arrives in a later export)."
                           if table != "patients" else
                           "Staged patients, with the indication group from the rules file."))
    def _asset(context: dg.AssetExecutionContext, clinic: ClinicConfig, warehouse: DuckDBResource,
               compute: Compute) -> dg.MaterializeResult:
        with warehouse.get_connection() as con:
            orphans = stage(con, clinic.contract(), table, compute)
            meta = table_metadata(con, f"staging.{table}", orphan_rows_quarantined=orphans,
                                  engine=compute.engine)
        report(context, f"staged {table}: {meta['dagster/row_count']:,} rows"
                        + (f", {orphans:,} orphan rows quarantined" if orphans else ""))
        return dg.MaterializeResult(metadata=meta)

    return _asset


def staged_table_assets(tables: list[str]) -> list[dg.AssetsDefinition]:
    """One staged asset per contract table."""
    return [_staged_table_asset(t) for t in tables]
