"""Comparing what two engines computed: the same columns, the same types, the same rows.

Rows are compared as sets (sorted), numbers equal to 1e-9 relative (Spark and DuckDB may
sum doubles in a different order); everything else exactly, NULL included.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from pipelines.engines.spark import spark_unavailable

SPARK_MISSING = spark_unavailable("local[*]")
needs_spark = pytest.mark.skipif(SPARK_MISSING is not None, reason=f"Spark cannot run here: {SPARK_MISSING}")


def _sort_key(row: tuple) -> tuple:
    """NULLs last; doubles rounded, so a last-bit difference does not reorder rows."""
    return tuple((True, 0) if v is None else (False, round(v, 6) if isinstance(v, float) else v) for v in row)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b and type(a) is type(b)


def relation(con, name: str) -> tuple[list[tuple[str, str]], list[tuple]]:
    """(column names and DuckDB types, rows) of a warehouse relation."""
    schema = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {name}").fetchall()]
    return schema, con.execute(f"SELECT * FROM {name}").fetchall()


def differences(expected: tuple[list, list], got: tuple[list, list], limit: int = 5) -> list[str]:
    """What differs between two relations (empty when they are the same)."""
    (schema_a, rows_a), (schema_b, rows_b) = expected, got
    if schema_a != schema_b:
        if [c for c, _ in schema_a] != [c for c, _ in schema_b]:
            return [f"columns differ: {[c for c, _ in schema_a]} vs {[c for c, _ in schema_b]}"]
        return [f"types differ: {[(a, b) for a, b in zip(schema_a, schema_b, strict=True) if a != b]}"]
    found = []
    if len(rows_a) != len(rows_b):
        found.append(f"{len(rows_a)} rows vs {len(rows_b)}")
    for a, b in zip(sorted(rows_a, key=_sort_key), sorted(rows_b, key=_sort_key), strict=False):
        if len(found) >= limit:
            break
        if not all(_same(x, y) for x, y in zip(a, b, strict=True)):
            cols = [schema_a[i][0] for i, (x, y) in enumerate(zip(a, b, strict=True)) if not _same(x, y)]
            found.append(f"row differs in {cols}: {a} vs {b}")
    return found


def copy_warehouse(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return target
