"""Ingest assets: which exports to apply, then one asset per contract table."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.ingest.contract import load_contract
from pipelines.ingest.load import ingest_table, plan_ingest
from pipelines.metadata import report, table_metadata
from pipelines.resources import ClinicConfig

TABLES = ["patients", "doses", "measurements", "fiqr_items", "adverse_events", "discontinuations"]


@dg.asset(group_name="ingest", description=(
    "The complete exports (folders with _READY) under the raw folder, in name order, and "
    "which of them this run applies. Exports already applied are skipped; an export that "
    "changed, vanished or sorts before applied ones rebuilds the warehouse from scratch."))
def export_plan(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                warehouse: DuckDBResource) -> dg.MaterializeResult:
    s = clinic.settings
    contract = load_contract(s.contract_file)
    with warehouse.get_connection() as con:
        plan = plan_ingest(con, s.raw_dir, contract)
        con.execute("CREATE OR REPLACE TABLE ingest.pending_exports (export_id VARCHAR, path VARCHAR)")
        for p in plan.pending:
            con.execute("INSERT INTO ingest.pending_exports VALUES (?, ?)", [p.name, str(p)])
        mode = "cold" if plan.rebuild_reason else "incremental"
        con.execute("CREATE OR REPLACE TABLE ingest.run_plan AS SELECT ? AS ingest_mode, "
                    "? AS rebuild_reason, ? AS exports_found, ? AS exports_new",
                    [mode, plan.rebuild_reason or "", ",".join(p.name for p in plan.exports),
                     ",".join(plan.pending_ids)])
    report(context, f"{len(plan.exports)} complete export(s) in {s.raw_dir}; applying "
                    f"{len(plan.pending)} ({mode}{': ' + plan.rebuild_reason if plan.rebuild_reason else ''})")
    return dg.MaterializeResult(metadata={
        "exports_found": [p.name for p in plan.exports],
        "exports_applied_now": plan.pending_ids,
        "ingest_mode": mode,
        "rebuild_reason": plan.rebuild_reason or "",
        "raw_dir": dg.MetadataValue.path(str(s.raw_dir)),
    })


def _loaded_table_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(name=f"loaded_{table}", group_name="ingest", deps=[export_plan],
              description=(f"Every accepted `{table}` row, latest version per natural key, with its "
                           "source export, file and line. Pending exports' files are read as text, "
                           "checked row by row against the contract (rules/contract.yaml); failing "
                           "rows go to quarantine, exact duplicates are counted."))
    def _asset(context: dg.AssetExecutionContext, clinic: ClinicConfig,
               warehouse: DuckDBResource) -> dg.MaterializeResult:
        from pathlib import Path

        s = clinic.settings
        contract = load_contract(s.contract_file)
        with warehouse.get_connection() as con:
            pending = [Path(p) for (p,) in con.execute(
                "SELECT path FROM ingest.pending_exports ORDER BY export_id").fetchall()]
            results = ingest_table(con, contract, table, pending, lambda m: report(context, m))
            meta = table_metadata(con, f"core.{table}")
        return dg.MaterializeResult(metadata={
            **meta,
            "files_applied": len(results),
            "rows_read": sum(r.rows_read for r in results),
            "rows_quarantined": sum(r.failed for r in results),
            "exact_duplicates": sum(r.duplicates for r in results),
            "files_rejected": [r.export_file.source_file for r in results if r.rejected],
        })

    return _asset


loaded_tables = [_loaded_table_asset(t) for t in TABLES]
