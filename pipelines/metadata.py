"""Materialisation metadata every asset reports: row count, column schema, where it lives."""

from __future__ import annotations

import os
import sys

import dagster as dg


def table_metadata(con, relation: str, **extra) -> dict:
    rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    described = con.execute(f"DESCRIBE {relation}").fetchall()
    schema = dg.TableSchema(columns=[dg.TableColumn(name=r[0], type=r[1]) for r in described])
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
