"""The export contract (rules/contract.yaml) and the SQL expressions it implies.

Each column rule becomes one numbered check, tried in a fixed order (the first that
fails names the row's quarantine reason): identifier-looking value, malformed row,
missing value, wrong type or format, value outside its enum, value outside its range.
Like the OHDSI Data Quality Dashboard, the check is declared once as data and the
SQL is generated from that declaration.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from pipelines.sqlfiles import quote_ident, quote_literal

SQL_TYPES = {"text": "VARCHAR", "enum": "VARCHAR", "integer": "BIGINT", "decimal": "DOUBLE"}
OVERFLOW_COLUMN = "__overflow"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = True
    values: tuple[str, ...] = ()
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False
    range_rule: str = "out_of_range"
    ranges_by: str | None = None

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    ranges: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def value_columns(self) -> list[str]:
        return [c for c in self.column_names if c not in self.key]


@dataclass(frozen=True)
class Contract:
    version: str
    tables: dict[str, Table]
    identifier_columns: frozenset[str]
    identifier_values: tuple[tuple[str, str], ...]
    text: str

    def is_identifier_column(self, name: str) -> bool:
        return re.sub(r"[^a-z0-9]", "", name.lower()) in self.identifier_columns


def _column(name: str, spec: dict) -> Column:
    maximum = spec.get("max")
    if maximum == "current_year":
        maximum = dt.date.today().year
    minimum = spec.get("min", spec.get("min_exclusive"))
    return Column(
        name=name,
        type=spec["type"],
        required=spec.get("required", True),
        values=tuple(spec.get("values", ())),
        pattern=spec.get("pattern"),
        minimum=minimum,
        maximum=maximum,
        min_exclusive="min_exclusive" in spec,
        range_rule=spec.get("rule", "out_of_range"),
        ranges_by=spec.get("range_by"),
    )


@cache
def load_contract(path: Path) -> Contract:
    text = Path(path).read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    tables = {
        name: Table(
            name=name,
            key=tuple(spec["key"]),
            columns=tuple(_column(c, s) for c, s in spec["columns"].items()),
            ranges=spec.get("ranges", {}),
        )
        for name, spec in doc["tables"].items()
    }
    privacy = doc["privacy"]
    return Contract(
        version=str(doc["version"]),
        tables=tables,
        identifier_columns=frozenset(privacy["identifier_columns"]),
        identifier_values=tuple((p["label"], p["pattern"]) for p in privacy["identifier_values"]),
        text=text,
    )


# --- SQL generated from the contract ------------------------------------------------


def _num(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def _range_text(lo: float, hi: float) -> str:
    return f"{_num(lo)}-{_num(hi)}"


@dataclass(frozen=True)
class RowCheck:
    """One numbered check: the SQL condition that fails a row, and what quarantine says."""

    rule: str
    column: str
    condition: str
    detail: str  # SQL expression; may quote a value only when it parsed as a number


def _ref(name: str, suffix: str) -> str:
    return quote_ident(f"{name}__{suffix}")


def typed_ref(col: Column) -> str:
    """The derived column holding a cell's typed value (see derived_columns)."""
    return _ref(col.name, "typed")


def _typed_expr(col: Column) -> str:
    v = quote_ident(col.name)
    if col.type == "integer":
        num = _ref(col.name, "num")
        return f"CASE WHEN {num} = round({num}) THEN TRY_CAST({num} AS BIGINT) END"
    if col.type == "decimal":
        return _ref(col.name, "num")
    if col.type == "enum":
        cases = " ".join(f"WHEN {quote_literal(x.lower())} THEN {quote_literal(x)}" for x in col.values)
        return f"CASE lower({v}) {cases} END"
    return v


def _identifier_pattern(contract: Contract) -> str:
    return "|".join(f"(?:{p})" for _, p in contract.identifier_values)


def derived_columns(contract: Contract, table: Table, extra_columns: list[str]) -> tuple[list[str], list[str]]:
    """Select items computed once per row before the checks: numbers, typed values and
    whether a cell looks like an identifier. Two layers, as the typed values use the numbers."""
    numbers, derived = [], []
    cols = {c.name: c for c in table.columns}
    pattern = quote_literal(_identifier_pattern(contract))
    for name in table.column_names + extra_columns:
        col, v = cols.get(name), quote_ident(name)
        if col is not None and col.type in ("integer", "decimal"):
            numbers.append(f"TRY_CAST({v} AS DOUBLE) AS {_ref(name, 'num')}")
        if col is not None:
            derived.append(f"{_typed_expr(col)} AS {typed_ref(col)}")
        # A valid number or code cannot be an identifier, except a long digit string (a phone).
        if col is not None and col.type in ("integer", "decimal"):
            guard = f"({_ref(name, 'num')} IS NULL OR length({v}) >= 10)"
        elif col is not None and col.type == "enum":
            guard = f"{typed_ref(col)} IS NULL"
        else:
            guard = "true"
        # CASE, not AND: DuckDB evaluates both sides of AND in a projection, but a THEN
        # branch only for the rows its WHEN selects, so most rows skip the regex.
        derived.append(f"CASE WHEN length({v}) >= 6 AND {guard} "
                       f"THEN coalesce(regexp_matches({v}, {pattern}, 'i'), false) ELSE false END"
                       f" AS {_ref(name, 'identifier')}")
    return numbers, derived


def _identifier_label(contract: Contract, v: str) -> str:
    cases = " ".join(
        f"WHEN regexp_matches({v}, {quote_literal(p)}, 'i') THEN {quote_literal(label)}"
        for label, p in contract.identifier_values
    )
    return f"CASE {cases} END"


def row_checks(contract: Contract, table: Table, extra_columns: list[str]) -> list[RowCheck]:
    """Every row check for one file, in the order they are tried (over derived_columns)."""
    checks: list[RowCheck] = []
    for name in table.column_names + extra_columns:
        checks.append(
            RowCheck(
                "identifier_value",
                name,
                _ref(name, "identifier"),
                f"'value redacted: looks like ' || {_identifier_label(contract, quote_ident(name))}",
            )
        )
    checks.append(
        RowCheck(
            "malformed_row",
            "",
            f"{quote_ident(OVERFLOW_COLUMN)} IS NOT NULL",
            "'the line has more fields than the header'",
        )
    )
    for col in table.columns:
        v = quote_ident(col.name)
        if col.required:
            checks.append(RowCheck("missing_value", col.name, f"{v} IS NULL", f"'{col.name} is missing'"))
        typed = typed_ref(col)
        if col.type in ("integer", "decimal"):
            num = _ref(col.name, "num")
            bad = f"{v} IS NOT NULL AND ({num} IS NULL OR NOT isfinite({num})"
            bad += f" OR {typed} IS NULL)" if col.type == "integer" else ")"
            what = "a whole number" if col.type == "integer" else "a number"
            checks.append(RowCheck("invalid_type", col.name, bad, f"'{col.name} is not {what}'"))
        elif col.type == "text" and col.pattern:
            checks.append(
                RowCheck(
                    "invalid_format",
                    col.name,
                    f"{v} IS NOT NULL AND NOT regexp_full_match({v}, {quote_literal(col.pattern)})",
                    f"'{col.name} does not match ' || {quote_literal(col.pattern)}",
                )
            )
        elif col.type == "enum":
            allowed = ", ".join(col.values)
            checks.append(
                RowCheck(
                    "invalid_enum",
                    col.name,
                    f"{v} IS NOT NULL AND {typed} IS NULL",
                    f"'{col.name} is not one of {allowed}'",
                )
            )
        checks.extend(_range_checks(table, col, typed))
    return checks


def _number_text(typed: str) -> str:
    return (f"CASE WHEN {typed} = round({typed}) AND abs({typed}) < 1e15 "
            f"THEN CAST(CAST({typed} AS BIGINT) AS VARCHAR) ELSE CAST({typed} AS VARCHAR) END")


def _range_checks(table: Table, col: Column, typed: str) -> list[RowCheck]:
    """Range rule; the detail quotes the value, which parsed as a number (never text)."""
    if col.ranges_by:
        by = typed_ref(next(c for c in table.columns if c.name == col.ranges_by))

        def per_instrument(pick) -> str:
            whens = " ".join(f"WHEN {quote_literal(k)} THEN {pick(k, r)}" for k, r in table.ranges.items())
            return f"CASE {by} {whens} END"

        lo = per_instrument(lambda k, r: _num(r[0]))
        hi = per_instrument(lambda k, r: _num(r[1]))
        bounds = per_instrument(lambda k, r: quote_literal(_range_text(*r)))
        label, lo_op = by, "<"
        cond = f"{typed} IS NOT NULL AND {by} IS NOT NULL AND ({typed} < {lo} OR {typed} > {hi})"
    elif col.minimum is None and col.maximum is None:
        return []
    else:
        lo, hi = _num(col.minimum), _num(col.maximum)
        lo_op = "<=" if col.min_exclusive else "<"
        shown = f"{'more than ' if col.min_exclusive else ''}{lo} to {hi}"
        bounds, label = quote_literal(shown), quote_literal(col.name)
        cond = f"{typed} IS NOT NULL AND ({typed} {lo_op} {lo} OR {typed} > {hi})"
    detail = (f"{label} || ' ' || {_number_text(typed)} || "
              f"CASE WHEN {typed} {lo_op} {lo} THEN ' is below ' ELSE ' is above ' END || {bounds}")
    return [RowCheck(col.range_rule, col.name, cond, detail)]
