"""Publish assets: the run log, the read-only snapshot with Parquet files, the dashboards."""


import subprocess
from functools import cache
from importlib.metadata import version

import dagster as dg
from dagster_duckdb import DuckDBResource

from dashboards.build import build_dashboards
from pipelines.metadata import report, table_metadata
from pipelines.publish.snapshot import MARTS, publish_snapshot
from pipelines.quality.checks import gx_check
from pipelines.resources import ClinicConfig
from pipelines.response.rules import load_rules
from pipelines.settings import REPO_ROOT
from pipelines.sqlfiles import quote_literal, run_sql


@cache
def code_version() -> str:
    """Package version and, in a git checkout, the commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return version("clinic-outcomes") + (f"+{commit}" if commit else "")


@dg.asset(group_name="marts", deps=["data_quality"],
          description="One row per run: time, exports applied, rules and code version, rows in "
                      "and out.")
def run_info(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        run_sql(con, "marts", "run_info", run_id=quote_literal(context.run_id),
                code_version=quote_literal(code_version()))
        meta = table_metadata(con, "marts.run_info")
    return dg.MaterializeResult(metadata=meta)


run_info_checks = [gx_check("run_info", "marts.run_info", "run_info")]


@dg.asset(group_name="publish", deps=["run_info", *MARTS],
          description="The marts published to the marts folder: clinic.duckdb (read-only "
                      "snapshot for ad-hoc SQL, swapped in atomically) and one Parquet file each.")
def clinic_snapshot(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                    warehouse: DuckDBResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        written = publish_snapshot(con, clinic.settings.marts_dir)
    report(context, f"published {clinic.settings.snapshot} and {len(written) - 1} Parquet files")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(clinic.settings.snapshot)),
        "files": [str(p) for p in written.values()],
    })


@dg.asset(group_name="publish", deps=[clinic_snapshot],
          description="The five Plotly dashboards and index.html, offline (one shared local "
                      "plotly.min.js), built from the published snapshot.")
def dashboards(context: dg.AssetExecutionContext, clinic: ClinicConfig) -> dg.MaterializeResult:
    s = clinic.settings
    belief = load_rules(s.rules_file)["clinic_belief"]
    pages = build_dashboards(s.snapshot, s.dashboards_dir, belief)
    report(context, f"dashboards: {s.dashboards_dir / 'index.html'}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(s.dashboards_dir / "index.html")),
        "pages": [p.name for p in pages],
    })
