"""The release preview a run builds for the clinic to look at, and its blocking disclosure audit.

A run never makes a release (that is `clinic release`, pipelines/release/ledger.py): it builds
`release-preview/`, what the next release would show, protected together with every release
in the ledger, and marked not for release in its folder name and manifest.
"""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from pipelines.config import RELEASE_PREVIEW as PREVIEW
from pipelines.config import ClinicConfig
from pipelines.metadata import report
from pipelines.publish.reuse import (
    digest_of,
    file_sha256,
    files_under,
    frames_digest,
    previous_set,
    record_part,
    reusable,
    reused_message,
    static_inputs,
)
from pipelines.publish.snapshot import building_dir

# The release modules (pandas, numpy, scipy, HiGHS) load in the steps that use them, not with the
# definitions; the released marts are added to release_preview's deps by pipelines/definitions.py
# from the model manifest (their .yml say `published_in: [..., release]`).

# Columns that would tie a release row to a patient or to the clinic's source files.
LINEAGE_COLUMNS = {"patient_id", "site_id", "export_id", "source_file", "line_number", "baseline_source",
                   "assessment_source", "decided_by_source", "detail"}
# What a released aggregate may hold besides its keys, counts and what derives from the counts
# (a column declared nowhere could carry a suppressed count through, e.g. an interval).
DESCRIPTIVE_COLUMNS = {"rules_version", "band_order", "suppressed", "suppressed_counts"}


def undeclared_columns(mart: str, columns: list[str]) -> list[str]:
    from pipelines.release.relations import COUNT_COLUMNS, DERIVED_COLUMNS, KEY_COLUMNS

    allowed = {*KEY_COLUMNS[mart], *COUNT_COLUMNS[mart], *DESCRIPTIVE_COLUMNS,
               *(d for ds in DERIVED_COLUMNS[mart].values() for d in ds)}
    return [c for c in columns if c not in allowed]


# The true marts at the release grain of the run in progress, computed by release_preview and
# read again by its audit in the same step (~1.4 s at 10^5 patients each time): one run's, a copy.
_true_at_grain: dict[str, dict] = {}


def _remember_truth(run_id: str, marts: dict) -> None:
    _true_at_grain.clear()
    _true_at_grain[run_id] = {name: frame.copy(deep=True) for name, frame in marts.items()}


def _truth(con, run_id: str) -> dict:
    """The run's true marts at the release grain: as release_preview computed them, or computed
    now (the audit run alone, say from the UI)."""
    from pipelines.release.grain import read_at_release_grain

    if run_id in _true_at_grain:
        return {name: frame.copy(deep=True) for name, frame in _true_at_grain[run_id].items()}
    return read_at_release_grain(con, published=False)


def _preview_dir(clinic: ClinicConfig, run_id: str) -> Path:
    return building_dir(Path(clinic.marts_dir), run_id) / PREVIEW


@dg.asset(group_name="publish", deps=["clinic_snapshot"],
          description="A preview of the next release, for the clinic to look at, NOT for release: the five "
                      "aggregate marts protected together with every release in the ledger (small counts "
                      "suppressed, and more cells until a linear-programming audit across marts and releases "
                      "pins none; pipelines/release/protection.py), with its own DuckDB file, Parquet files, "
                      "dashboards and a manifest that says it is a preview. Only `clinic release` makes a "
                      "release.")
def release_preview(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                    warehouse: DuckDBResource) -> dg.MaterializeResult:
    from pipelines.config import below_release_floor
    from pipelines.release.bundle import MANIFEST, PREVIEW_NOTE
    from pipelines.release.grain import read_at_release_grain
    from pipelines.release.ledger import (
        LEDGER,
        earlier_releases,
        fingerprints,
        ledger_dir,
        write_bundle,
    )
    from pipelines.release.protection import Refused, protect_release

    folder = _preview_dir(clinic, context.run_id)
    try:
        history, unreadable_history = earlier_releases(Path(clinic.marts_dir)), None
    except ValueError as error:  # a release in the ledger differs from what was sent: refused below
        history, unreadable_history = [], str(error)
    with warehouse.get_connection() as con:
        marts = read_at_release_grain(con, published=False)
        _remember_truth(context.run_id, marts)
        # The patients' states matter only against an earlier release (who was added or changed
        # since): before the first one, the preview is the marts' alone (~0.7 s at 10^5 patients saved).
        patients = fingerprints(con, "response.trajectory_points") if history else None
        static = static_inputs(con)  # the rules, min cell size and code among them
    ledger = ledger_dir(Path(clinic.marts_dir)) / LEDGER
    # What the preview shows: the aggregate marts, the patients' states (with an earlier release)
    # and the releases it is protected together with; the same as the published preview's means
    # the same preview.
    states = {} if patients is None else {"patients": patients}
    inputs = digest_of(static, frames_digest({**marts, **states}),
                       file_sha256(ledger) if ledger.exists() else None) if static else None
    info = {"release_id": "preview", "run_id": context.run_id,
            "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "rules_version": str(clinic.rules()["version"]), "min_cell_size": clinic.min_cell_size}
    below = below_release_floor(clinic.min_cell_size)  # built all the same, for the clinic, and marked
    marked = {"below_release_floor": f"{below}: `clinic release` refuses to make a release from it"} if below else {}
    if below:
        context.log.warning(f"release preview: {marked['below_release_floor']}")
    try:
        if unreadable_history:
            raise Refused(unreadable_history, None)
        found = reusable(previous_set(Path(clinic.marts_dir)), PREVIEW, inputs)
        if found:  # the disclosure audit below still reads and audits what is published
            record_part(folder.parent, context.run_id, PREVIEW, inputs, found.carry_into(folder.parent),
                        metadata=found.extra.get("metadata", {}))
            report(context, reused_message("release preview", found.run_id))
            return dg.MaterializeResult(metadata=_preview_metadata(found.extra.get("metadata", {}), found.run_id))
        # Without the release's last pass (re-publishing cells no small count needs), which would
        # add tens of seconds to every run: the preview may hide a few more cells than the release.
        result = protect_release(marts, clinic.min_cell_size, history=history, patients=patients, prune=False)
    except Refused as refused:
        folder.mkdir(parents=True)
        (folder / MANIFEST).write_text(json.dumps({
            "bundle": PREVIEW_NOTE, "for_release": False, "refused": refused.reason,
            "patients_needed": refused.needed, **marked, **{**info, "created_at": info["created_at"].isoformat()}},
            indent=2) + "\n", encoding="utf-8")
        report(context, f"release preview: `clinic release` would refuse now: {refused.reason}")
        return dg.MaterializeResult(metadata={"refused": refused.reason})
    write_bundle(folder, result.frames, info, result.public_report, clinic.rules(), preview=True)
    if marked:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        (folder / MANIFEST).write_text(json.dumps({**manifest, **marked}, indent=2) + "\n", encoding="utf-8")
    r = result.report
    report(context, f"release preview (not for release): {r['cells_suppressed']} of "
                    f"{r['utility']['count_cells']} counts suppressed ({r['primary_suppressed']} below "
                    f"{clinic.min_cell_size}, {r['complementary_added']} more to protect them), audited over "
                    f"{r['relations']} relations and {r['releases_protected_together'] - 1} earlier release(s)")
    # The split between small and complementary cells stays in the clinic (run metadata): in
    # the manifest it would tell an outsider how many hidden cells are small.
    metadata = {
        "path": str(Path(clinic.marts_dir) / PREVIEW),
        "cells_audited": r["cells_audited"], "relations": r["relations"],
        "cells_suppressed": r["cells_suppressed"], "primary_suppressed": r["primary_suppressed"],
        "complementary_added": r["complementary_added"], "min_cell_size": clinic.min_cell_size,
        "published_share": r["utility"]["published_share"],
    }
    record_part(folder.parent, context.run_id, PREVIEW, inputs, files_under(folder), metadata=metadata)
    return dg.MaterializeResult(metadata=_preview_metadata(metadata, ""))


def _preview_metadata(metadata: dict, reused_from_run: str) -> dict:
    """The preview step's metadata: the preview's figures (stored with it, so a preview carried
    over reports them too) and the run it was reused from ('' when built)."""
    return {**metadata, "path": dg.MetadataValue.path(str(metadata.get("path", ""))),
            "reused_from_run": reused_from_run}


@dg.asset_check(asset=release_preview, name="disclosure_audit", blocking=True,
                description="Reads the written preview as an outsider would and audits it against the true "
                            "marts: no count 1..min_cell_size-1 is shown, no suppressed small count can be "
                            "narrowed by the published cells and every relation between them, shown counts "
                            "are the true ones, no table or column carries patients or source lineage, and "
                            "every file matches its SHA-256 in the manifest.")
def release_disclosure_audit(context: dg.AssetCheckExecutionContext, clinic: ClinicConfig,
                             warehouse: DuckDBResource) -> dg.AssetCheckResult:
    from pipelines.release.bundle import MANIFEST, RELEASE_DB, RELEASE_MARTS, hidden_cells, read_marts
    from pipelines.release.protection import audit
    from pipelines.release.relations import COUNT_COLUMNS

    folder = _preview_dir(clinic, context.run.run_id)
    manifest = json.loads((folder / MANIFEST).read_text())
    if "refused" in manifest:
        return dg.AssetCheckResult(passed=True, description=f"nothing to audit: {manifest['refused']}")
    released_con = duckdb.connect(str(folder / RELEASE_DB), read_only=True)
    try:
        released = read_marts(released_con)
        columns = released_con.execute("SELECT table_name, column_name FROM duckdb_columns()").fetchall()
    finally:
        released_con.close()
    with warehouse.get_connection() as con:
        true = _truth(con, context.run.run_id)
    hidden = hidden_cells(released)
    given_away = audit(true, hidden, clinic.min_cell_size)
    altered = [f"{m}.{c}" for m in RELEASE_MARTS for c in COUNT_COLUMNS[m]
               if not released[m][c].dropna().astype("int64").equals(true[m][c][released[m][c].notna()].astype("int64"))]
    lineage = sorted({f"{t}.{c}" for t, c in columns if c in LINEAGE_COLUMNS})
    undeclared = [f"{m}.{c}" for m in RELEASE_MARTS for c in undeclared_columns(m, list(released[m].columns))]
    tampered = [f["path"] for f in manifest["files"] if file_sha256(folder / f["path"]) != f["sha256"]]
    problems = ([f"{len(given_away)} small count(s) can be narrowed down or are shown"] if given_away else []) + \
        ([f"counts differ from the marts: {', '.join(altered)}"] if altered else []) + \
        ([f"lineage columns: {', '.join(lineage)}"] if lineage else []) + \
        ([f"columns neither key, count nor derived from a count: {', '.join(undeclared)}"] if undeclared else []) + \
        ([f"files differ from the manifest: {', '.join(tampered)}"] if tampered else []) + \
        ([] if manifest.get("for_release") is False else ["the preview's manifest does not say it is not for release"])
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
        description="no released cell gives a small count away" if not problems else "; ".join(problems),
        metadata={"cells_hidden": len(hidden), "cells_given_away": len(given_away),
                  "min_cell_size": clinic.min_cell_size, "files_in_manifest": len(manifest["files"])},
    )
