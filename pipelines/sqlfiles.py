"""SQL lives in sql/<stage>/<name>.sql; this reads it and fills its ${placeholders}.

Placeholders carry only what the contract or rules files generate (column lists,
file paths); every statement's shape stays in the .sql file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

from pipelines.settings import sql_dir


@cache
def _template(path: Path) -> Template:
    return Template(path.read_text(encoding="utf-8"))


def sql_path(stage: str, name: str) -> Path:
    """Where a .sql file of this run's SQL folder ($CLINIC_SQL_DIR) is."""
    return sql_dir() / stage / f"{name}.sql"


def sql(stage: str, name: str, **params: object) -> str:
    return _template(sql_path(stage, name)).substitute({k: str(v) for k, v in params.items()})


def run_sql(con, stage: str, name: str, **params: object):
    """Run a .sql file (one or more statements) on a DuckDB connection."""
    return con.execute(sql(stage, name, **params))


def quote_literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def has_table(con, schema: str, name: str) -> bool:
    """Whether the connection's database has the table `schema.name`."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                            [schema, name]).fetchall()[0][0])


def write_frame(con, relation: str, frame) -> None:
    """Replace a warehouse table with a small pandas frame (rules, suppressed aggregates)."""
    con.register("_frame_to_write", frame)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM _frame_to_write")
    finally:
        con.unregister("_frame_to_write")
