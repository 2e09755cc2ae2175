"""Ingest assets: which exports to apply, then one asset per contract table."""

import contextlib
import json
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from pipelines.cli import EXIT_INPUTS_MISSING
from pipelines.config import ClinicConfig
from pipelines.engines import Compute
from pipelines.ingest.exports import export_files, export_findings, unfit_exports
from pipelines.ingest.load import InputsMissing, ingest_table, pending_for_table, plan_ingest
from pipelines.metadata import code_version, report, table_metadata
from pipelines.orchestration.fingerprint import input_fingerprint
from pipelines.orchestration.hooks import close_interrupted_runs
from pipelines.quality.catalogue import declared_columns
from pipelines.quality.gx_worker import step_back
from pipelines.sqlfiles import quote_literal, run_sql


class ExportPlanConfig(dg.Config):
    rebuild: bool = Field(
        default=False, description="Rebuild the warehouse from the exports present, dropping exports (or files) "
                           "applied before that are gone or changed. Without it such a run stops.")


@dg.asset(group_name="ingest", description=(
    "The complete exports (folders with _READY) under the raw folder, in name order, and which "
    "of them this run applies. A raw folder that is missing or empty, or that lost or changed "
    "exports applied before, stops the run before anything changes (config rebuild: true drops "
    "them on purpose); a changed contract or an export sorting before applied ones rebuilds from "
    "the exports present. Missing tables, unknown files and folders whose name does not fit the "
    "export name grammar (not applied) are recorded as findings."))
def export_plan(context: dg.AssetExecutionContext, config: ExportPlanConfig, clinic: ClinicConfig,
                warehouse: DuckDBResource, compute: Compute) -> dg.MaterializeResult:
    contract = clinic.contract()
    inputs = input_fingerprint(clinic.values())  # before the plan: what arrives later makes the next run work
    with warehouse.get_connection() as con:
        try:
            plan = plan_ingest(con, Path(clinic.raw_dir), contract, rebuild=config.rebuild)
        except InputsMissing as refused:
            raise dg.Failure(description=str(refused),
                             metadata={"clinic/exit_code": EXIT_INPUTS_MISSING}) from None
        con.execute("CREATE OR REPLACE TABLE ingest.pending_exports (export_id VARCHAR, path VARCHAR)")
        findings = unfit_exports(Path(clinic.raw_dir), contract)
        con.execute("CREATE OR REPLACE TABLE ingest.unfit_exports (detail VARCHAR)")
        for finding in findings:
            con.execute("INSERT INTO ingest.unfit_exports VALUES (?)", [finding])
        for p in plan.pending:
            con.execute("INSERT INTO ingest.pending_exports VALUES (?, ?)", [p.name, str(p)])
            con.execute("DELETE FROM ingest.export_findings WHERE export_id = ?", [p.name])
            for check, table, detail in export_findings(p, contract):
                con.execute("INSERT INTO ingest.export_findings VALUES (?, ?, ?, ?)", [p.name, check, table, detail])
                findings.append(f"{p.name}: {detail}")
        mode = "cold" if plan.rebuild_reason else "incremental"
        con.execute("CREATE OR REPLACE TABLE ingest.run_plan AS SELECT ? AS ingest_mode, "
                    "? AS rebuild_reason, ? AS exports_found, ? AS exports_new, ? AS input_fingerprint",
                    [mode, plan.rebuild_reason or "", ",".join(p.name for p in plan.exports),
                     ",".join(plan.pending_ids), json.dumps({"digest": inputs.digest, "parts": inputs.parts})])
        unfinished = [r for (r,) in con.execute("SELECT run_id FROM quality.run_log WHERE status = 'running' "
                                                 "AND run_id <> ?", [context.run_id]).fetchall()]
        run_sql(con, "quality", "run_started", run_id=quote_literal(context.run_id),
                rules_version=quote_literal(clinic.rules()["version"]), code_version=quote_literal(code_version()),
                engine=quote_literal(compute.engine))
    for run_id in close_interrupted_runs(context.instance, unfinished, context.run_id):
        report(context, f"run {run_id[:8]} was interrupted: marked failed in the run history")
    report(context, f"{len(plan.exports)} complete export(s) in {clinic.raw_dir}; applying "
                    f"{len(plan.pending)} ({mode}{': ' + plan.rebuild_reason if plan.rebuild_reason else ''})")
    for line in findings:
        report(context, line)
    return dg.MaterializeResult(metadata={
        "exports_found": [p.name for p in plan.exports],
        "exports_applied_now": plan.pending_ids,
        "ingest_mode": mode,
        "rebuild_reason": plan.rebuild_reason or "",
        "dropped_by_rebuild": list(plan.dropped),
        "export_findings": findings,
        "raw_dir": dg.MetadataValue.path(clinic.raw_dir),
        "engine": compute.engine,
    })


# A table's pending files this large keep DuckDB on every core for seconds (10^7 measurement
# rows, 350 MB of CSV: ~4 s on 2 cores); the run's background work steps back meanwhile.
LARGE_LOAD_BYTES = 100 * 2**20


def pending_bytes(exports: list[Path], table: str) -> int:
    """The size of `table`'s files in the pending exports (a file gone since the plan counts
    0 here: its load says what happened to it)."""
    total = 0
    for found in (f for e in exports for f in export_files(e, [table])):
        with contextlib.suppress(OSError):
            total += found.path.stat().st_size
    return total


def _loaded_table_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(name=f"loaded_{table}", group_name="ingest", deps=[export_plan],
              description=(f"Every accepted `{table}` row, latest version per natural key, with its "
                           "source export, file and physical line. Pending exports' files are read as "
                           "text, checked row by row against the contract (rules/contract.yaml); failing "
                           "rows go to quarantine, exact duplicates are counted."))
    def _asset(context: dg.AssetExecutionContext, clinic: ClinicConfig,
               warehouse: DuckDBResource) -> dg.MaterializeResult:
        contract = clinic.contract()
        with warehouse.get_connection() as con:
            exports = pending_for_table(con, table)
            if pending_bytes(exports, table) >= LARGE_LOAD_BYTES:
                step_back()  # the GX worker's import waits for the cores DuckDB leaves idle
            results = ingest_table(con, contract, table, exports,
                                   lambda m: report(context, m),
                                   declared_columns(Path(clinic.checks_file), "identity_conflict").get(table, ()))
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


def loaded_table_assets(tables: list[str]) -> list[dg.AssetsDefinition]:
    """One asset per contract table (the table list is declared only in rules/contract.yaml)."""
    return [_loaded_table_asset(t) for t in tables]
