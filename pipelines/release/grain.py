"""The release's grain: a mart may be released coarser than the clinic's own table.

Why: at a clinic's size a table whose fine level is nearly all 1..10 is nearly all hidden and
tells an outsider nothing (measure_trajectory by category: docs/decisions.md, "Releases"). A
mart's `release:` block may declare `grain: {pool: {column: value}}`: the release holds the
mart rebuilt by its own SQL (sql/marts/<mart>.sql, unchanged) over its inputs with that column
set to the value for every patient, e.g. every category pooled to 'all'. The internal mart keeps
its split; the release's true counts, its protection, its audit and the ledger's copies are all
at the declared grain, and the grain is declared in the .yml only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipelines.release.relations import KEY_COLUMNS, declarations
from pipelines.sqlfiles import quote_ident, quote_literal, run_sql

if TYPE_CHECKING:
    import pandas as pd

_SCRATCH = "release_grain"  # an in-memory database attached for the rebuild, detached after


def grains() -> dict[str, dict]:
    """The declared grain of every released mart that has one, by mart."""
    return {mart: decl["grain"] for mart, decl in declarations().items() if decl.get("grain")}


def _source(relation: str, published: bool) -> str:
    """Where an input relation is: as named in the warehouse; in the published snapshot under
    its dictionary name in schema marts (response.trajectory_points is marts.patient_trajectory)."""
    if not published:
        return relation
    from pipelines.dictionary import load_dictionary

    entry = load_dictionary().for_relation(relation)
    return f"marts.{entry.name}" if entry else relation


def _columns(con, catalog: str, relation: str) -> list[str]:
    schema, table = relation.split(".")
    return [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND table_name = ? "
        "ORDER BY column_index", [catalog, schema, table]).fetchall()]


def rebuild_at_grain(con, mart: str, grain: Mapping, published: bool) -> pd.DataFrame:
    """The mart at its release grain: its own SQL run in a scratch database whose inputs are
    views over this connection's, with each pooled column replaced by its value (in rows
    ordered as `bundle.read_marts` orders them)."""
    from pipelines.manifest import load_manifest

    model = load_manifest().models[mart]
    pool = {str(c): str(v) for c, v in grain["pool"].items()}
    catalog = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"ATTACH ':memory:' AS {_SCRATCH} (READ_WRITE)")  # also from a read-only snapshot
    try:
        for relation in model.reads:
            schema, table = relation.split(".")
            source = _source(relation, published)
            columns = _columns(con, catalog, source)
            if not columns:
                raise ValueError(f"{mart}'s release grain: its input {source} is not in the database read")
            select = ", ".join(f"{quote_literal(pool[c])} AS {quote_ident(c)}" if c in pool else quote_ident(c)
                               for c in columns)
            s_schema, s_table = source.split(".")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_SCRATCH}.{quote_ident(schema)}")
            con.execute(f"CREATE VIEW {_SCRATCH}.{quote_ident(schema)}.{quote_ident(table)} AS SELECT {select} "
                        f"FROM {quote_ident(catalog)}.{quote_ident(s_schema)}.{quote_ident(s_table)}")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_SCRATCH}.marts")
        con.execute(f"USE {_SCRATCH}")
        try:
            run_sql(con, "marts", "functions")
            run_sql(con, model.stage, model.sql_name)
        finally:
            con.execute(f"USE {quote_ident(catalog)}")
        order = ", ".join(f"{quote_ident(k)} NULLS FIRST" for k in KEY_COLUMNS[mart])
        schema, table = model.relation.split(".")
        return con.execute(f"SELECT * FROM {_SCRATCH}.{quote_ident(schema)}.{quote_ident(table)} "
                           f"ORDER BY {order}").df()
    finally:
        con.execute(f"DETACH {_SCRATCH}")


def read_at_release_grain(con, published: bool) -> dict[str, pd.DataFrame]:
    """The released marts with their true counts at the release's grain, from the warehouse
    (`published` False) or the published snapshot (True); a release bundle is read with
    `bundle.read_marts`, being at the grain already."""
    from pipelines.release.bundle import read_marts

    marts = read_marts(con)
    for mart, grain in grains().items():
        marts[mart] = rebuild_at_grain(con, mart, grain, published)
    return marts


def with_pooled_rows(true: Mapping[str, pd.DataFrame], released: Mapping[str, pd.DataFrame],
                     ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """An earlier release made before a mart's grain was declared (rows by category), as the
    protection of a later one must see it: per group, a pooled row whose true counts are the sum
    of the group's rows, hidden in what was sent (the outsider did not see it, but works it out
    from the parts they saw through the mart's declared relation `trajectory.pooled`), so the
    later release's pooled rows are compared with it. A release at the grain is returned as is."""
    import numpy as np
    import pandas as pd

    from pipelines.release.relations import COUNT_COLUMNS

    true, released = dict(true), dict(released)
    for mart, grain in grains().items():
        if mart not in true:
            continue
        frame, pool = true[mart], {str(c): str(v) for c, v in grain["pool"].items()}
        pooled = np.logical_and.reduce([frame[c].astype(str).eq(v).to_numpy() for c, v in pool.items()])
        if pooled.all():
            continue
        keys = [k for k in KEY_COLUMNS[mart] if k not in pool]
        counts = list(COUNT_COLUMNS[mart])
        sums = frame[~pooled].groupby(keys, dropna=False, sort=True)[counts].sum().reset_index().assign(**pool)
        have = set(frame[pooled][keys].itertuples(index=False, name=None))
        sums = sums[[k not in have for k in sums[keys].itertuples(index=False, name=None)]]
        sums.index = pd.RangeIndex(frame.index.max() + 1, frame.index.max() + 1 + len(sums))
        true[mart] = pd.concat([frame, sums])
        released[mart] = pd.concat([released[mart], sums.assign(**{c: pd.NA for c in counts})])
    return true, released
