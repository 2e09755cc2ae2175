"""The release bundle: what may leave the clinic, written as files.

Made by `clinic release` (pipelines/release/ledger.py) from the published marts, after
`protection.protect_release` has protected them together with every earlier release (a run
builds the same as a preview, marked not for release): its own DuckDB file (schema
`marts`, so the dashboards and any SQL read it like the internal snapshot), one Parquet
file per table, the dashboards, and `manifest.json` with each file's SHA-256, the run, the
rules version, the threshold and the audit result. No patient-level table, no source
lineage (no export, file or line), no free text.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config import RELEASE_MANIFEST as MANIFEST
from pipelines.dictionary import write_comments
from pipelines.publish.reuse import file_sha256, files_under
from pipelines.publish.snapshot import write_parquet
from pipelines.release.frames import hidden_cells
from pipelines.release.relations import COUNT_COLUMNS, KEY_COLUMNS
from pipelines.sqlfiles import quote_ident, quote_literal, write_frame

if TYPE_CHECKING:  # pandas loads when the bundle is written, not with the definitions
    import pandas as pd

__all__ = ["hidden_cells"]  # read here by the release check
RELEASE_MARTS = COUNT_COLUMNS  # the released aggregate marts (their names, read when used)
RELEASE_DB = "clinic_release.duckdb"
PREVIEW_NOTE = ("PREVIEW - NOT FOR RELEASE: what the next release would show, built by a run for the clinic "
                "to look at; only `clinic release` makes a release (and records it in the release ledger)")


def read_marts(con, schema: str = "marts") -> dict[str, pd.DataFrame]:
    """The aggregate marts in a stable row order (their key columns), so two reads line up."""
    frames = {}
    for mart in RELEASE_MARTS:
        order = ", ".join(f"{k} NULLS FIRST" for k in KEY_COLUMNS[mart])
        frames[mart] = con.execute(f"SELECT * FROM {schema}.{mart} ORDER BY {order}").df()
    return frames


def _with_marks(frame: pd.DataFrame, mart: str) -> pd.DataFrame:
    """Name each row's hidden counts beside the flag: `suppressed_counts`, e.g. 'n_minimal, n_intolerant'."""
    hidden = [frame[c].isna() for c in COUNT_COLUMNS[mart]]
    names = [", ".join(c for c, h in zip(COUNT_COLUMNS[mart], row, strict=True) if h)
             for row in zip(*hidden, strict=True)] if hidden else []
    return frame.assign(suppressed_counts=[n or None for n in names])


def write_release_database(con, folder: Path, frames: dict[str, pd.DataFrame], info: dict) -> Path:
    """clinic_release.duckdb (schema marts: the suppressed tables and release_info, with the
    data dictionary as table and column comments) and one Parquet file per table, in `folder`."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RELEASE_DB
    con.execute(f"ATTACH {quote_literal(str(path))} AS release_target")
    try:
        con.execute("CREATE SCHEMA release_target.marts")
        for mart, frame in frames.items():
            write_frame(con, f"release_target.marts.{mart}", _with_marks(frame, mart))
        write_frame(con, "release_target.marts.release_info", pd.DataFrame([info]))
        write_comments(con, "release_target", "release")
        _describe_grains(con, "release_target", frames)
        for table in [*frames, "release_info"]:
            write_parquet(con, f"SELECT * FROM release_target.marts.{table}", folder / f"{table}.parquet")
    finally:
        con.execute("DETACH release_target")
    return path


def _describe_grains(con, database: str, frames: dict[str, pd.DataFrame]) -> None:
    """A mart released at a coarser grain (pipelines/release/grain.py) is described as the
    recipient has it: the grain's description in place of the mart's, and each pooled column
    as the one value it holds."""
    from pipelines.dictionary import load_dictionary
    from pipelines.release.grain import grains

    dictionary = load_dictionary()
    for mart, grain in grains().items():
        if mart not in frames:
            continue
        relation = f"{quote_ident(database)}.marts.{quote_ident(mart)}"
        comment = dictionary.table_comment(mart, "release") or ""
        own = dictionary.tables[mart].description.strip()
        con.execute(f"COMMENT ON TABLE {relation} IS "
                    f"{quote_literal(comment.replace(own, ' '.join(grain['description'].split())))}")
        for column, value in grain["pool"].items():
            con.execute(f"COMMENT ON COLUMN {relation}.{quote_ident(column)} IS "
                        f"{quote_literal(f'{value!s} on every row: the release counts every {column} together.')}")


def write_manifest(folder: Path, info: dict, audit: dict, preview: bool = False) -> Path:
    """manifest.json: the run, the rules version, the threshold, the release's grain, the audit
    result, the utility, and every file of the bundle with its size and SHA-256 (so a recipient can check what
    arrived). A preview (what a run builds for the clinic to look at) says it is not for release."""
    from pipelines.release.grain import grains

    files = [p for p in files_under(folder) if p.name != MANIFEST]
    manifest = {
        "bundle": PREVIEW_NOTE if preview else "clinic outcomes release (protected and audited; may leave the clinic)",
        "for_release": not preview,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **info,
        # Marts released coarser than the clinic's own (pipelines/release/grain.py): what is pooled.
        "release_grain": {mart: {"pooled": dict(grain["pool"])} for mart, grain in grains().items()},
        "disclosure_audit": audit,
        "files": [{"path": str(p.relative_to(folder)), "bytes": p.stat().st_size, "sha256": file_sha256(p)}
                  for p in files],
    }
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path
