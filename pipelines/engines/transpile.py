"""The business SQL, as written for DuckDB, turned into Spark SQL by sqlglot.

There is one copy of the logic: the `.sql` files under `sql/`. This module is the small,
named engine-specific piece between them and Spark, and does four things only:

1. splits a file into its statements and classifies each: `CREATE VIEW` and
   `CREATE TABLE ... AS` run on Spark, `CREATE MACRO` is expanded into the statements that
   call it (Spark SQL has no macros: the macros of sql/marts/functions.sql are inlined,
   argument by argument, before transpiling); anything else (DELETE, INSERT, UPDATE) cannot
   run on Spark, whose plain tables cannot be changed in place, and stops the run;
2. maps the warehouse's schema-qualified names (`staging.patients`) to the Spark session's
   temporary views (`staging__patients`), so nothing is created in a cluster's catalog;
3. writes `percentile_cont(q) WITHIN GROUP (ORDER BY x)` as Spark's exact `percentile(x, q)`:
   sqlglot 30 writes PERCENTILE_APPROX, an approximation that silently differs (Spark 3.4+
   has the exact function; both interpolate linearly between the two nearest ranks);
4. transpiles with sqlglot (DuckDB -> Spark), raising on anything sqlglot cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import TokenType

from pipelines.sqlfiles import sql, sql_path

MACRO_FILE = ("marts", "functions")  # the macros every mart may call


class NotPortable(ValueError):
    """A business SQL file cannot run on Spark; the message names the file and why."""


@dataclass(frozen=True)
class SparkStatement:
    kind: str  # "view" (a lazy definition) or "table" (computed and written back)
    target: str  # the warehouse relation it defines, schema.name
    spark_sql: str  # the query, in Spark SQL, reading Spark's names
    reads: tuple[str, ...]  # the warehouse relations the query reads, schema.name
    duckdb_sql: str  # the statement as written, for a view's twin in the warehouse


def spark_name(relation: str) -> str:
    """The Spark temporary view standing for a warehouse relation: `staging.patients` ->
    `staging__patients` (temporary views cannot be schema-qualified)."""
    schema, name = relation.split(".")
    return f"{schema}__{name}"


def split_statements(text: str) -> list[str]:
    """The statements of a file, cut at the semicolons sqlglot's tokenizer finds (so a
    semicolon in a comment or a string does not cut), each as written."""
    pieces, start = [], 0
    for token in sqlglot.tokenize(text, read="duckdb"):
        if token.token_type == TokenType.SEMICOLON:
            pieces.append(text[start:token.start])
            start = token.end + 1
    pieces.append(text[start:])
    return [p.strip() for p in pieces if sqlglot.tokenize(p, read="duckdb")]


def _relation(table: exp.Table) -> str | None:
    return f"{table.db}.{table.name}" if table.db else None


@dataclass(frozen=True)
class Macro:
    params: tuple[str, ...]
    body: exp.Expression


def _macro(create: exp.Create) -> tuple[str, Macro]:
    udf = create.this
    return udf.this.name.lower(), Macro(tuple(p.name for p in udf.expressions), create.expression)


@cache
def file_macros(stage: str, name: str) -> dict[str, Macro]:
    """The macros a file defines (CREATE MACRO), by lower-case name."""
    macros = {}
    for text in split_statements(sql(stage, name)):
        tree = sqlglot.parse_one(text, read="duckdb")
        if isinstance(tree, exp.Create) and str(tree.args.get("kind")).upper() == "MACRO":
            key, macro = _macro(tree)
            macros[key] = macro
    return macros


def expand_macros(tree: exp.Expression, macros: dict[str, Macro]) -> exp.Expression:
    """Every call of a macro replaced by its body, its parameters by the call's arguments
    (parenthesised, so `pct_of(a + b, n)` keeps its meaning)."""
    def replace(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Anonymous) or str(node.this).lower() not in macros:
            return node
        macro = macros[str(node.this).lower()]
        if len(node.expressions) != len(macro.params):
            raise NotPortable(f"macro {node.this} takes {len(macro.params)} arguments, "
                              f"called with {len(node.expressions)}")
        args = {p: a if isinstance(a, exp.Column | exp.Literal) else exp.Paren(this=a.copy())
                for p, a in zip(macro.params, node.expressions, strict=True)}

        def bind(inner: exp.Expression) -> exp.Expression:
            if isinstance(inner, exp.Column) and not inner.table and inner.name in args:
                return args[inner.name].copy()
            return inner

        return exp.Paren(this=macro.body.copy().transform(bind))

    return tree.transform(replace)


def exact_percentiles(tree: exp.Expression) -> exp.Expression:
    """`percentile_cont(q) WITHIN GROUP (ORDER BY x)` -> Spark's exact `percentile(x, q)`."""
    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont):
            order = node.expression.expressions
            if len(order) != 1 or order[0].args.get("desc"):
                raise NotPortable("percentile_cont needs one ascending ORDER BY key")
            return exp.Anonymous(this="percentile", expressions=[order[0].this.copy(), node.this.this.copy()])
        return node

    return tree.transform(replace)


def map_names(tree: exp.Expression) -> tuple[exp.Expression, set[str]]:
    """Schema-qualified tables -> Spark's temporary views; returns the relations read."""
    reads: set[str] = set()

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and (relation := _relation(node)):
            reads.add(relation)
            mapped = exp.Table(this=exp.to_identifier(spark_name(relation)))
            if node.alias:
                mapped.set("alias", node.args["alias"].copy())
            return mapped
        return node

    return tree.transform(replace), reads


def to_spark_sql(tree: exp.Expression) -> str:
    return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)


def _statement(text: str, macros: dict[str, Macro]) -> SparkStatement | tuple[str, Macro] | None:
    tree = sqlglot.parse_one(text, read="duckdb")
    kind = str(tree.args.get("kind") or "").upper() if isinstance(tree, exp.Create) else ""
    if kind == "MACRO":
        return _macro(tree)
    if kind not in ("VIEW", "TABLE") or tree.expression is None or not isinstance(tree.this, exp.Table):
        raise NotPortable(f"`{text.splitlines()[-1].strip()[:60]}...`: only CREATE VIEW, CREATE TABLE ... AS "
                          "and CREATE MACRO run on Spark (its plain tables cannot DELETE, INSERT or UPDATE); "
                          "keep such statements in a file the warehouse runs (pipelines/engines/plan.py)")
    target = _relation(tree.this)
    if target is None:
        raise NotPortable(f"{tree.this.name}: the relation a statement creates must be schema-qualified")
    query = exact_percentiles(expand_macros(tree.expression.copy(), macros))
    query, reads = map_names(query)
    return SparkStatement("view" if kind == "VIEW" else "table", target, to_spark_sql(query),
                          tuple(sorted(reads - {target})), text)


@cache
def transpile_file(stage: str, name: str, params: tuple[tuple[str, str], ...] = ()) -> tuple[SparkStatement, ...]:
    """A business .sql file (placeholders filled) as the Spark statements that compute it."""
    source = f"sql/{stage}/{name}.sql"
    if not sql_path(stage, name).exists():
        raise NotPortable(f"{source} does not exist")
    macros = dict(file_macros(*MACRO_FILE))
    statements = []
    try:
        for text in split_statements(sql(stage, name, **dict(params))):
            done = _statement(text, macros)
            if isinstance(done, tuple):  # a macro: inlined into the statements after it
                macros[done[0]] = done[1]
            else:
                statements.append(done)
    except (SqlglotError, NotPortable) as error:
        raise NotPortable(f"{source} cannot run on Spark: {str(error).strip()}") from None
    return tuple(statements)
