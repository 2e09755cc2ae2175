"""Materialisation metadata every asset reports: row count, column schema, where it lives."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from importlib.metadata import version

import dagster as dg

from pipelines.dictionary import column_descriptions
from pipelines.settings import REPO_ROOT


def table_metadata(con, relation: str, **extra) -> dict:
    """Row count, and the column schema with each column's description from the data
    dictionary (pipelines/dictionary.py) when the relation is published."""
    rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    described = con.execute(f"DESCRIBE {relation}").fetchall()
    meanings = column_descriptions(relation)
    schema = dg.TableSchema(columns=[dg.TableColumn(name=r[0], type=r[1], description=meanings.get(r[0]))
                                     for r in described])
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": schema,
        "dagster/relation_identifier": relation,
        **extra,
    }


def report(context, message: str) -> None:
    """Progress for people: to Dagster's log and, under `clinic run`, to the terminal."""
    context.log.info(message)
    if os.environ.get("CLINIC_PROGRESS") == "1":
        print(f"  {message}", file=sys.stderr, flush=True)


@cache
def code_version() -> str:
    """Package version and, in a git checkout, the commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return version("clinic-outcomes") + (f"+{commit}" if commit else "")
