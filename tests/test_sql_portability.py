"""The business SQL (response and marts) transpiles from DuckDB to Spark SQL with sqlglot,
keeping the door to a distributed engine open (shared spec performance.md)."""

from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from pipelines.settings import SQL_DIR

BUSINESS_SQL = sorted((SQL_DIR / "response").glob("*.sql")) + sorted((SQL_DIR / "marts").glob("*.sql"))
NOT_PORTABLE = [r"read_csv\(", r"read_parquet\(", r"\blist\(", r"quantile_cont", r"union\s+by\s+name",
                r"\bqualify\b"]


@pytest.mark.parametrize("path", BUSINESS_SQL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_business_sql_transpiles_to_spark(path):
    text = re.sub(r"\$\{\w+\}", "'x'", path.read_text())
    code = re.sub(r"--[^\n]*", "", text)
    for pattern in NOT_PORTABLE:
        assert not re.search(pattern, code, re.I), f"{path.name} uses {pattern}"
    spark = sqlglot.transpile(code, read="duckdb", write="spark", unsupported_level=ErrorLevel.RAISE)
    assert spark and all(statement.strip() for statement in spark)
