"""Telling a damaged DuckDB file (cut short by a full disk or a copy, or with corrupt blocks)
from one that is merely busy, before a run trips over it at some later step.

DuckDB opens a damaged file without complaint; the damage shows only when a block is read.
So the file's length is checked against the blocks its header counts (a cut file is found at
once), and the tables asked for are read in full (every column: a corrupt block fails its
checksum). Nothing here writes: the file is attached read-only to an in-memory database.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.sqlfiles import quote_ident, quote_literal

HEADER_BYTES = 3 * 4096  # DuckDB's file header and its two database headers


def duckdb_file_damage(path: Path, read: tuple[str, ...] | None = None) -> str | None:
    """Why the DuckDB file at `path` is damaged (its cause, one line), or None. Reads in full
    the tables `read` names (a schema, or schema.table; None: every table). A lock held by another process is not
    damage: the error is raised for the caller to report."""
    con = duckdb.connect()
    try:
        try:
            con.execute(f"ATTACH {quote_literal(str(path))} AS checked (READ_ONLY)")
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise
            return _first_line(error)
        except duckdb.Error as error:
            return _first_line(error)
        try:
            # Used blocks, not total: DuckDB cuts free blocks off a file's end at a checkpoint
            # and still counts them in total_blocks (a healthy file is then "shorter").
            [(block_size, blocks)] = con.execute(
                "SELECT block_size, used_blocks FROM pragma_database_size() WHERE database_name = 'checked'"
            ).fetchall()
            needed = HEADER_BYTES + block_size * blocks
            size = Path(path).stat().st_size
            if size < needed:
                return f"the file is {size:,} bytes, shorter than the {needed:,} its blocks need (it was cut short)"
            tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                 "WHERE database_name = 'checked' ORDER BY ALL").fetchall()
            for schema, table in tables:
                if read is None or schema in read or f"{schema}.{table}" in read:
                    con.execute(f"SELECT max(hash(t)) FROM checked.{quote_ident(schema)}.{quote_ident(table)} t"
                                ).fetchall()
        except duckdb.Error as error:
            return _first_line(error)
        return None
    finally:
        con.close()


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
