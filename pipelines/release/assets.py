"""The release bundle (what may leave the clinic) and its blocking disclosure audit."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.metadata import report
from pipelines.publish.snapshot import building_dir
from pipelines.release.bundle import (
    MANIFEST,
    RELEASE_DB,
    RELEASE_MARTS,
    hidden_cells,
    read_marts,
    sha256,
    write_manifest,
    write_release_database,
)
from pipelines.release.disclosure import COUNT_COLUMNS, DERIVED_COLUMNS, KEY_COLUMNS, audit, protect

# Columns that would tie a release row to a patient or to the clinic's source files.
LINEAGE_COLUMNS = {"patient_id", "site_id", "export_id", "source_file", "line_number", "baseline_source",
                   "assessment_source", "detail"}
# What a released aggregate may hold besides its keys, counts and what derives from the counts
# (a column declared nowhere could carry a suppressed count through, e.g. an interval).
DESCRIPTIVE_COLUMNS = {"rules_version", "band_order", "suppressed", "suppressed_counts"}


def undeclared_columns(mart: str, columns: list[str]) -> list[str]:
    allowed = {*KEY_COLUMNS[mart], *COUNT_COLUMNS[mart], *DESCRIPTIVE_COLUMNS,
               *(d for ds in DERIVED_COLUMNS[mart].values() for d in ds)}
    return [c for c in columns if c not in allowed]


def _release_dir(clinic: ClinicConfig, run_id: str) -> Path:
    return building_dir(Path(clinic.marts_dir), run_id) / "release"


@dg.asset(group_name="publish", deps=[*RELEASE_MARTS, "clinic_snapshot"],
          description="What may leave the clinic, built from the same marts as the internal outputs: "
                      "the five aggregate marts with every count from 1 to min_cell_size - 1 suppressed, "
                      "and more cells suppressed until a linear-programming audit across all of them at "
                      "once pins none (pipelines/release/disclosure.py); its own DuckDB file, Parquet "
                      "files, dashboards and manifest.json (SHA-256 of each file, run, rules version, "
                      "threshold, audit result). No patient-level table, no source lineage, no free text.")
def release_bundle(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                   warehouse: DuckDBResource) -> dg.MaterializeResult:
    folder = _release_dir(clinic, context.run_id)
    rules = clinic.rules()
    with warehouse.get_connection() as con:
        marts = read_marts(con)
        result = protect(marts, clinic.min_cell_size)
        info = {"run_id": context.run_id, "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
                "rules_version": str(rules["version"]), "min_cell_size": clinic.min_cell_size}
        write_release_database(con, folder, result.frames, info)
    from dashboards.build import build_dashboards  # pandas and plotly: only this step needs them

    build_dashboards(folder / RELEASE_DB, folder / "dashboards", rules)
    write_manifest(folder, {**info, "created_at": info["created_at"].isoformat(timespec="seconds") + "Z"},
                   result.public_report)
    r = result.report
    report(context, f"release bundle: {r['cells_suppressed']} of {r['cells_audited']} counts suppressed "
                    f"({r['primary_suppressed']} below {clinic.min_cell_size}, {r['complementary_added']} more "
                    f"to protect them), audited over {r['relations']} relations")
    # The split between small and complementary cells stays in the clinic (run metadata): in
    # the manifest it would tell an outsider how many hidden cells are small.
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(clinic.release_dir)),
        "cells_audited": r["cells_audited"], "relations": r["relations"],
        "cells_suppressed": r["cells_suppressed"], "primary_suppressed": r["primary_suppressed"],
        "complementary_added": r["complementary_added"], "min_cell_size": clinic.min_cell_size,
    })


@dg.asset_check(asset=release_bundle, name="disclosure_audit", blocking=True,
                description="Reads the written release as an outsider would and audits it against the true "
                            "marts: no count 1..min_cell_size-1 is shown, no suppressed small count can be "
                            "narrowed by the published cells and every relation between them, shown counts "
                            "are the true ones, no table or column carries patients or source lineage, and "
                            "every file matches its SHA-256 in the manifest.")
def release_disclosure_audit(context: dg.AssetCheckExecutionContext, clinic: ClinicConfig,
                             warehouse: DuckDBResource) -> dg.AssetCheckResult:
    import json

    folder = _release_dir(clinic, context.run.run_id)
    released_con = duckdb.connect(str(folder / RELEASE_DB), read_only=True)
    try:
        released = read_marts(released_con)
        columns = released_con.execute("SELECT table_name, column_name FROM duckdb_columns()").fetchall()
    finally:
        released_con.close()
    with warehouse.get_connection() as con:
        true = read_marts(con)
    hidden = hidden_cells(released)
    given_away = audit(true, hidden, clinic.min_cell_size)
    altered = [f"{m}.{c}" for m in RELEASE_MARTS for c in COUNT_COLUMNS[m]
               if not released[m][c].dropna().astype("int64").equals(true[m][c][released[m][c].notna()].astype("int64"))]
    lineage = sorted({f"{t}.{c}" for t, c in columns if c in LINEAGE_COLUMNS})
    undeclared = [f"{m}.{c}" for m in RELEASE_MARTS for c in undeclared_columns(m, list(released[m].columns))]
    manifest = json.loads((folder / MANIFEST).read_text())
    tampered = [f["path"] for f in manifest["files"] if sha256(folder / f["path"]) != f["sha256"]]
    problems = ([f"{len(given_away)} small count(s) can be narrowed down or are shown"] if given_away else []) + \
        ([f"counts differ from the marts: {', '.join(altered)}"] if altered else []) + \
        ([f"lineage columns: {', '.join(lineage)}"] if lineage else []) + \
        ([f"columns neither key, count nor derived from a count: {', '.join(undeclared)}"] if undeclared else []) + \
        ([f"files differ from the manifest: {', '.join(tampered)}"] if tampered else [])
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
        description="no released cell gives a small count away" if not problems else "; ".join(problems),
        metadata={"cells_hidden": len(hidden), "cells_given_away": len(given_away),
                  "min_cell_size": clinic.min_cell_size, "files_in_manifest": len(manifest["files"])},
    )
