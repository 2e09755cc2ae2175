"""Publish assets: the run log, the snapshot and Parquet files, the dashboards, and the switch
that publishes them together."""

import json
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.config import ClinicConfig
from pipelines.diagnosis import duckdb_file_damage
from pipelines.manifest import Manifest, load_manifest
from pipelines.metadata import report, table_metadata
from pipelines.orchestration.fingerprint import write_fingerprint
from pipelines.publish.reuse import (
    digest_of,
    files_under,
    mart_files_digest,
    previous_set,
    record_part,
    reusable,
    reused_message,
    static_inputs,
)
from pipelines.publish.snapshot import (
    building_dir,
    published_marts,
    start_building,
    switch_to,
    write_snapshot,
)
from pipelines.quality.data_docs import make_offline
from pipelines.resources import GreatExpectations
from pipelines.response.rules import rules_content
from pipelines.sqlfiles import quote_literal, run_sql

# What the front page's "what changed" reads from the previous snapshot (dashboards/front_page.py).
COMPARED_WITH_PREVIOUS = ("marts.patient_response", "marts.run_info")
DATA_DOCS = "data_docs"  # the Data Docs' folder in a published set


@dg.asset(group_name="marts", deps=["data_quality"],
          description="One row per run: when, exports found and applied, rules and code version, the "
                      "rows this run read (accepted, quarantined, duplicates), patients out, and status "
                      "(published, failed, or interrupted when a run stopped without saying why).")
def run_info(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
    with warehouse.get_connection() as con:
        run_sql(con, "marts", "run_info", run_id=quote_literal(context.run_id))
        meta = table_metadata(con, "marts.run_info")
    return dg.MaterializeResult(metadata=meta)


def clinic_snapshot_asset(manifest: Manifest) -> dg.AssetsDefinition:
    """The snapshot asset, depending on the asset of every model published in it."""

    @dg.asset(name="clinic_snapshot", group_name="publish",
              deps=sorted({m.asset for m in published_marts(manifest)}),
              description="The marts as a read-only DuckDB snapshot (clinic.duckdb) and one Parquet file "
                          "each, written into this run's new publication folder (switched in by "
                          "published_set once everything in it is built), with the data dictionary "
                          "(sql/**/*.yml) as table and column comments: every model whose .yml says "
                          "`published_in: [snapshot]`.")
    def clinic_snapshot(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                        warehouse: DuckDBResource) -> dg.MaterializeResult:
        folder = start_building(Path(clinic.marts_dir), context.run_id)
        with warehouse.get_connection() as con:
            written, documented = write_snapshot(con, folder, context.run_id, manifest)
        report(context, f"snapshot and {len(written) - 1} Parquet files built in {folder}")
        if not documented.complete:
            report(context, f"data dictionary: no description for {', '.join(documented.undocumented) or '-'}; "
                            f"described but not published: {', '.join(documented.absent) or '-'}")
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(clinic.snapshot)),
            "files": [p.name for p in written.values()],
            "undocumented_columns": documented.undocumented,
        })

    return clinic_snapshot


@dg.asset(group_name="publish", deps=["clinic_snapshot"],
          description="The Plotly dashboards, the data dictionary page and the front page (index.html: "
                      "the answer per indication against the clinic's belief, the run, what changed since "
                      "the snapshot published before), offline (one shared local plotly.min.js), built "
                      "from this run's snapshot. A page whose marts, rules and code are those of the "
                      "published set is carried over from it (the front page is drawn every run).")
def dashboards(context: dg.AssetExecutionContext, clinic: ClinicConfig,
               warehouse: DuckDBResource) -> dg.MaterializeResult:
    from dashboards.build import PAGE_MARTS, CarriedPages, build_dashboards  # pandas, plotly: this step only

    marts_dir = Path(clinic.marts_dir)
    folder = building_dir(marts_dir, context.run_id)
    published = previous_set(marts_dir)  # still the last published set
    previous = published / "clinic.duckdb" if published and (published / "clinic.duckdb").exists() else None
    damage = duckdb_file_damage(previous, COMPARED_WITH_PREVIOUS) if previous else None
    if damage:  # never stuck on it: this run's set replaces it
        report(context, f"the previous snapshot {previous} is damaged ({damage}): the dashboards leave out "
                        "what changed since it; this run's set replaces it")
    with warehouse.get_connection() as con:
        static = static_inputs(con)
    inputs = {}  # what each page draws: the run's rules and code, the content of its marts
    for slug, marts in PAGE_MARTS.items():
        data = mart_files_digest(folder, marts)
        inputs[slug] = digest_of(static, slug, data) if static and data else None
    found = {slug: reusable(published, f"dashboards/{slug}.html", digest) for slug, digest in inputs.items()}
    found = {slug: part for slug, part in found.items() if part}
    carry = CarriedPages({slug: (part.folder / f"dashboards/{slug}.html", str(part.extra.get("stamp", "")))
                          for slug, part in found.items()})
    pages = build_dashboards(folder / "clinic.duckdb", folder / "dashboards", clinic.rules(),
                             previous=None if damage else previous, carry=carry)
    for page in pages:
        if page.stem in inputs:
            record_part(folder, context.run_id, f"dashboards/{page.name}", inputs[page.stem], [page],
                        stamp=carry.new_stamp)
    drawn = [p.stem for p in pages if p.stem not in carry.carried]
    reused_from = next((found[slug].run_id for slug in carry.carried), "")
    if carry.carried:
        report(context, reused_message(f"dashboards {', '.join(carry.carried)}", reused_from)
               + f"; drawn: {', '.join(drawn)}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(clinic.dashboards_dir / "index.html")),
        "pages": [p.name for p in pages],
        "pages_reused": carry.carried,
        "pages_drawn": drawn,
        "reused_from_run": reused_from,
        "previous_snapshot_damaged": damage or "",
    })


@dg.asset(group_name="publish", deps=["clinic_snapshot", "dataset_expectations", "mart_expectations"],
          description="Great Expectations' own Data Docs site of this run's validations (the dataset and "
                      "mart suites), published beside the dashboards (data_docs/index.html) and made to open "
                      "offline: GX's references to public CDNs are removed. Carried over from the published "
                      "set when the validation outcomes, suites and code are the same.")
def gx_data_docs(context: dg.AssetExecutionContext, clinic: ClinicConfig, warehouse: DuckDBResource,
                 great_expectations: GreatExpectations) -> dg.MaterializeResult:
    marts_dir = Path(clinic.marts_dir)
    folder = building_dir(marts_dir, context.run_id)
    with warehouse.get_connection() as con:
        static = static_inputs(con)
        outcomes = con.execute("SELECT * FROM quality.gx_outcomes ORDER BY ALL").fetchall()
    # What the site shows: the validation outcomes, and the marts validated (their observed values).
    validated = mart_files_digest(folder, [m.name for m in load_manifest().suites()])
    inputs = digest_of(static, outcomes, validated) if static and validated else None
    found = reusable(previous_set(marts_dir), DATA_DOCS, inputs)
    if found:
        files = found.carry_into(folder)
        report(context, reused_message("Data Docs", found.run_id))
    else:
        great_expectations.build_data_docs(folder / DATA_DOCS)
        make_offline(folder / DATA_DOCS)
        files = files_under(folder / DATA_DOCS)
    record_part(folder, context.run_id, DATA_DOCS, inputs, files)
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(marts_dir / DATA_DOCS)),
                                          "index": "index.html", "files": len(files),
                                          "reused_from_run": found.run_id if found else ""})


@dg.asset(group_name="publish", deps=["clinic_snapshot", dashboards, gx_data_docs, "release_preview"],
          description="What analysts, dashboards and recipients read: the marts folder's `current` "
                      "switched to this run's complete set in one atomic rename (clinic.duckdb, the "
                      "Parquet files, dashboards/, release-preview/, and the fingerprint of the inputs it was built "
                      "from, run_fingerprint.json), then the run marked published in run_info.")
def published_set(context: dg.AssetExecutionContext, clinic: ClinicConfig,
                  warehouse: DuckDBResource) -> dg.MaterializeResult:
    marts_dir = Path(clinic.marts_dir)
    folder = building_dir(marts_dir, context.run_id)
    with warehouse.get_connection() as con:
        [inputs] = con.execute("SELECT input_fingerprint FROM ingest.run_plan").fetchone()
        rules = clinic.rules()  # its version and content: a later run warns of one changed without the other
        write_fingerprint(folder, context.run_id, {**json.loads(inputs), "rules_version": str(rules["version"]),
                                                   "rules_content": rules_content(rules)})  # what a later run compares with
        final = switch_to(marts_dir, folder, context.run_id)
        con.execute("UPDATE quality.run_log SET status = 'published' WHERE run_id = ?", [context.run_id])
    report(context, f"published {final.name}: {clinic.snapshot}, dashboards {clinic.dashboards_dir / 'index.html'}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(final)),
        "snapshot": dg.MetadataValue.path(str(clinic.snapshot)),
        "dashboards": dg.MetadataValue.path(str(clinic.dashboards_dir / "index.html")),
    })
