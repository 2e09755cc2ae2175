"""The export contract (rules/contract.yaml) and the SQL expressions it implies.

Each column rule becomes one numbered check, tried in a fixed order (the first that
fails names the row's quarantine reason): identifier-looking value, malformed row,
missing value, wrong type or format, value outside its enum, value outside its range.
Like the OHDSI Data Quality Dashboard, the check is declared once as data and the
SQL is generated from that declaration.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

from pipelines.declared import declared_text, load_yaml
from pipelines.instruments import Instrument, InstrumentsError, load_instruments
from pipelines.sqlfiles import quote_ident, quote_literal

SQL_TYPES = {"text": "VARCHAR", "enum": "VARCHAR", "integer": "BIGINT", "decimal": "DOUBLE"}
# The pipeline's own working columns all start with "__"; a file's fields are renamed into
# that namespace before any check sees them (load.raw_source), so no column of an export,
# whatever it is called, can stand in for one of them.
OVERFLOW_COLUMN = "__overflow"
# The extra columns' cells, as one list in file order (text as read), and the 1-based index in
# it of the first that looks like an identifier (NULL when none does).
EXTRAS_COLUMN = "__extras"
EXTRA_IDENTIFIER = "__extra_identifier"
# Contract names: plain lower-case identifiers, never "__..." and never a provenance column.
CONTRACT_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PROVENANCE_NAMES = frozenset({"export_id", "source_file", "line_number", "file_order"})
# POSIX classes ([[:space:]]) mean a class in DuckDB's RE2 but a set of letters in Python's re.
POSIX_CLASS = re.compile(r"\[:[a-z]+:\]")


class ContractError(ValueError):
    """rules/contract.yaml is not usable; the message names the key."""


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
    references: dict = field(default_factory=dict, hash=False, compare=False)  # column -> table it points to

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
class IdentifierPattern:
    """A value pattern for a direct identifier, in the subset of regular expressions that
    DuckDB (RE2) and Python's `re` read alike; matched case-insensitively, anywhere in the
    trimmed text, on cells (in SQL) and on column names (in Python)."""

    label: str
    pattern: str
    matches: tuple[str, ...] = ()
    does_not_match: tuple[str, ...] = ()

    @cached_property  # compiled once: a header of 40,000 names is checked against every pattern
    def python(self) -> re.Pattern:
        return re.compile(self.pattern, re.IGNORECASE | re.ASCII)


# What an export name may ever be made of, whatever the contract's pattern says: it is printed,
# stored in every lineage column and opened in spreadsheets, so no formula lead (=, +, -, @), no
# control character, no path or pattern character.
SAFE_EXPORT_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]*$", re.ASCII)


@dataclass(frozen=True)
class ExportNames:
    """The declared grammar of export folder names (contract `exports`)."""

    pattern: str
    example: str

    @property
    def python(self) -> re.Pattern:
        return re.compile(self.pattern, re.ASCII)

    def why_unfit(self, name: str, contract: Contract) -> str | None:
        """Why an export name cannot be applied (in words that never repeat it), or None."""
        if not SAFE_EXPORT_NAME.match(name) or not (fit := self.python.fullmatch(name)):
            label = contract.identifier_label(name.split("_", 1)[-1])  # the timestamp is no identifier
            return (f"it looks like {label} and " if label else "it ") + \
                f"does not fit the export name <taken>_<site> (e.g. {self.example}; letters, digits, - and _)"
        label = contract.identifier_label(fit.group("site"))
        return f"its site part looks like {label}" if label else None


@dataclass(frozen=True)
class Extra:
    """A column the contract does not know: its name as it may be shown, and its field. Its
    values are read into one list with the other extras' (EXTRAS_COLUMN), so the file's name
    never reaches SQL and a header of any width costs one expression, not one per column."""

    name: str
    position: int  # 1-based field number in the file


@dataclass(frozen=True)
class Contract:
    version: str
    tables: dict[str, Table]
    identifier_columns: frozenset[str]
    identifier_values: tuple[IdentifierPattern, ...]
    text: str
    # The instrument registry the contract names (rules/instruments.yaml): measurements.instrument's
    # codes and each value's range.
    export_names: ExportNames
    instruments: dict[str, Instrument] = field(default_factory=dict, hash=False, compare=False)

    def is_identifier_column(self, name: str) -> bool:
        return re.sub(r"[^a-z0-9]", "", name.lower()) in self.identifier_columns

    def identifier_label(self, text: str) -> str | None:
        """What a text (a column name, a file name) looks like, if it looks like an identifier."""
        return next((p.label for p in self.identifier_values if p.python.search(text.strip())), None)


def _column(name: str, spec: dict, instruments: dict[str, Instrument]) -> Column:
    if spec.get("values_from") == "instruments":
        spec = {**spec, "values": list(instruments)}
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


def _check_name(where: str, name: str) -> None:
    if not CONTRACT_NAME.match(name) or name in PROVENANCE_NAMES:
        raise ContractError(f"{where}: {name!r} is not a usable name (lower-case letters, digits and "
                            f"single underscores, not {', '.join(sorted(PROVENANCE_NAMES))})")


def check_identifier_pattern(p: IdentifierPattern, con=None) -> None:
    """The pattern must mean the same to DuckDB and to Python, on its own examples. `con`: an
    in-memory DuckDB to ask (one for all the patterns: opening one costs ~40 ms, and every
    `clinic` command checks the contract first); a new one when None."""
    import duckdb

    where = f"privacy.identifier_values {p.label!r}"
    if POSIX_CLASS.search(p.pattern):
        raise ContractError(f"{where}: POSIX classes such as [:space:] mean something else in Python's re; "
                            "write \\s, [0-9] or [a-z] instead")
    try:
        compiled = p.python
    except re.error as error:
        raise ContractError(f"{where}: Python cannot read the pattern: {error}") from None
    if not p.matches:
        raise ContractError(f"{where}: give at least one example under `matches`")
    with contextlib.nullcontext(con) if con is not None else duckdb.connect() as con:  # closed only if opened here
        try:
            con.execute("SELECT regexp_matches('', ?, 'i')", [p.pattern]).fetchall()
        except duckdb.Error as error:
            raise ContractError(f"{where}: DuckDB cannot read the pattern: {str(error).splitlines()[0]}") from None
        for text in (*p.matches, *p.does_not_match):
            in_sql = con.execute("SELECT regexp_matches(trim(?), ?, 'i')", [text, p.pattern]).fetchall()[0][0]
            in_python = compiled.search(text.strip()) is not None
            expected = text in p.matches
            if in_sql != in_python or in_sql != expected:
                raise ContractError(f"{where}: example {text!r} should {'' if expected else 'not '}match; "
                                    f"DuckDB says {in_sql}, Python says {in_python}")


def _registry_path(path: Path, doc: dict) -> Path | None:
    """The instrument registry the contract names (`instruments:`, relative to the contract file)."""
    return Path(path).parent / doc["instruments"] if isinstance(doc, dict) and doc.get("instruments") else None


def contract_files(path: Path) -> list[Path]:
    """The files whose content is the contract: its own and the instrument registry it names
    (the measurements' codes and ranges). A contract that cannot be read is its file alone (the
    settings check says why)."""
    try:
        registry = _registry_path(path, load_yaml(declared_text(path, "contract", ContractError)))
    except (ContractError, ValueError, OSError):
        registry = None
    return [Path(path), *([registry] if registry is not None else [])]


def _instruments(path: Path, doc: dict) -> dict[str, Instrument]:
    registry = _registry_path(path, doc)
    if registry is None:
        return {}
    try:
        return load_instruments(registry)
    except InstrumentsError as error:
        raise ContractError(str(error)) from None


def _ranges(spec: dict, instruments: dict[str, Instrument]) -> dict:
    """A table's ranges by code: each instrument's min and max, for a column `range_by` it."""
    if any(c.get("range_by") for c in spec["columns"].values()):
        return {i.name: (i.minimum, i.maximum) for i in instruments.values()}
    return {}
def _export_names(doc: dict) -> ExportNames:
    """The `exports` grammar, checked on its own examples."""
    spec = doc.get("exports")
    if not isinstance(spec, dict):
        raise ContractError("exports: declare the export name grammar (name: a pattern with a (?P<site>...) "
                            "group, example: a name that fits)")
    where = "exports.name"
    try:
        grammar = ExportNames(str(spec["name"]), str(spec["example"]))
        compiled = grammar.python
    except KeyError as missing:
        raise ContractError(f"exports: give {missing.args[0]} (the name pattern and an example)") from None
    except re.error as error:
        raise ContractError(f"{where}: Python cannot read the pattern: {error}") from None
    if "site" not in compiled.groupindex:
        raise ContractError(f"{where}: name the site part (?P<site>...), so it can be checked for identifiers")
    for text in (grammar.example, *spec.get("matches", ())):
        if not compiled.fullmatch(str(text)) or not SAFE_EXPORT_NAME.match(str(text)):
            raise ContractError(f"{where}: example {str(text)!r} should fit, but does not (or holds a character "
                                "other than ASCII letters, digits, - and _, or does not start with one)")
    for text in spec.get("does_not_match", ()):
        if compiled.fullmatch(str(text)) and SAFE_EXPORT_NAME.match(str(text)):
            raise ContractError(f"{where}: example {str(text)!r} should not fit, but does")
    return grammar


@cache
def load_contract(path: Path) -> Contract:
    text = declared_text(path, "contract", ContractError)
    doc = load_yaml(text)
    instruments = _instruments(path, doc)
    tables = {}
    for name, spec in doc["tables"].items():
        _check_name("tables", name)
        for column in spec["columns"]:
            _check_name(f"tables.{name}.columns", column)
        tables[name] = Table(
            name=name,
            key=tuple(spec["key"]),
            columns=tuple(_column(c, s, instruments) for c, s in spec["columns"].items()),
            ranges=_ranges(spec, instruments),
            references={c: s["references"] for c, s in spec["columns"].items() if s.get("references")},
        )
    for table in tables.values():
        for column, parent in table.references.items():
            if parent not in tables or column not in tables[parent].column_names:
                raise ContractError(f"tables.{table.name}.columns.{column}: references {parent}, which is not a "
                                    f"contract table with a column {column}")
        if len(table.references) > 1:
            raise ContractError(f"tables.{table.name}: one reference per table is supported")
    privacy = doc["privacy"]
    patterns = tuple(IdentifierPattern(p["label"], p["pattern"], tuple(p.get("matches", ())),
                                       tuple(p.get("does_not_match", ())))
                     for p in privacy["identifier_values"])
    import duckdb

    with duckdb.connect() as con:
        for p in patterns:
            check_identifier_pattern(p, con)
    return Contract(
        version=str(doc["version"]),
        tables=tables,
        identifier_columns=frozenset(privacy["identifier_columns"]),
        identifier_values=patterns,
        text=text,
        instruments=instruments,
        export_names=_export_names(doc),
    )


# --- SQL generated from the contract ------------------------------------------------


def _num(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def _range_text(lo: float, hi: float) -> str:
    return f"{_num(lo)}-{_num(hi)}"


@dataclass(frozen=True)
class RowCheck:
    """One numbered check: the SQL condition that fails a row, and what quarantine says.

    With `columns`, a family of checks, one per extra column in file order, taking one check
    number each (so quarantine names the column) but tried as one condition: `which` is the SQL
    for the 1-based index of the column that fails first. A wide header thus adds no SQL."""

    rule: str
    column: str
    condition: str
    detail: str  # SQL expression; may quote a value only when it parsed as a number
    field: str = ""  # the contract column it reads; "" for the row or a family
    columns: tuple[str, ...] = ()
    which: str = ""
    # It reads one text cell and nothing else (looks like an identifier, matches the pattern):
    # the loader may try it once per distinct value instead of once per row (value_checks).
    value_only: bool = False

    @property
    def numbers(self) -> int:
        """How many check numbers it takes."""
        return len(self.columns) or 1


def numbered(checks: list[RowCheck]) -> list[tuple[int, RowCheck]]:
    """Each check with its first check number (1-based, consecutive over families)."""
    first, out = 1, []
    for check in checks:
        out.append((first, check))
        first += check.numbers
    return out


def _ref(name: str, suffix: str) -> str:
    """A working column derived from a cell: `__<suffix>:<column>` (the pipeline's namespace)."""
    return quote_ident(f"__{suffix}:{name}")


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
    if col.type == "enum":  # case-insensitive; a cell spelled as the contract spells it (nearly
        # every one) skips lower(), which copies the string: a third of the enum's cost
        exact = ", ".join(quote_literal(x) for x in col.values)
        cases = " ".join(f"WHEN {quote_literal(x.lower())} THEN {quote_literal(x)}" for x in col.values)
        return f"CASE WHEN {v} IN ({exact}) THEN {v} ELSE CASE lower({v}) {cases} END END"
    return v


def _identifier_pattern(contract: Contract) -> str:
    return "|".join(f"(?:{p.pattern})" for p in contract.identifier_values)


def _looks_like_identifier(contract: Contract, text: str, guard: str = "") -> str:
    """Whether the SQL text `text` looks like an identifier: at least 6 characters (and `guard`)
    and one of the privacy patterns. CASE, not AND: DuckDB evaluates both sides of AND in a
    projection, but a THEN branch only for the rows its WHEN selects, so most rows skip the regex."""
    when = f"length({text}) >= 6" + (f" AND {guard}" if guard else "")
    return (f"CASE WHEN {when} THEN coalesce(regexp_matches({text}, "
            f"{quote_literal(_identifier_pattern(contract))}, 'i'), false) ELSE false END")


def derived_columns(contract: Contract, table: Table, extras: list[Extra],
                    per_value: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """Select items computed once per row before the checks: numbers, typed values and
    whether a cell looks like an identifier. Two layers, as the typed values use the numbers.
    The extra columns are checked together, over their list: one expression for any width.
    A column in `per_value` is not looked at here (its value checks run per distinct value)."""
    numbers, derived = [], []
    for col in table.columns:
        v = quote_ident(col.name)
        if col.type in ("integer", "decimal"):
            # DuckDB reads digit separators ("1_0" as 10); a number in an export has none.
            numbers.append(f"CASE WHEN NOT contains({v}, '_') THEN TRY_CAST({v} AS DOUBLE) END"
                           f" AS {_ref(col.name, 'num')}")
        derived.append(f"{_typed_expr(col)} AS {typed_ref(col)}")
        derived.append("false AS " + _ref(col.name, "identifier") if col.name in per_value
                       else identifier_flag(contract, col))
    if extras:  # list_position: NULL when no cell matches
        looks = f"lambda x: {_looks_like_identifier(contract, 'trim(x)')}"
        derived.append(f"list_position(list_transform({EXTRAS_COLUMN}, {looks}), true) AS {EXTRA_IDENTIFIER}")
    return numbers, derived


def identifier_flag(contract: Contract, col: Column) -> str:
    """The select item saying whether a cell of `col` looks like an identifier."""
    v = quote_ident(col.name)
    # A valid number or code cannot be an identifier, except a long digit string (a phone).
    if col.type in ("integer", "decimal"):
        guard = f"({_ref(col.name, 'num')} IS NULL OR length({v}) >= 10)"
    elif col.type == "enum":
        guard = f"{typed_ref(col)} IS NULL"
    else:
        guard = ""
    return f"{_looks_like_identifier(contract, v, guard)} AS {_ref(col.name, 'identifier')}"


def _identifier_label(contract: Contract, v: str) -> str:
    cases = " ".join(
        f"WHEN regexp_matches({v}, {quote_literal(p.pattern)}, 'i') THEN {quote_literal(p.label)}"
        for p in contract.identifier_values
    )
    return f"CASE {cases} END"


def row_checks(contract: Contract, table: Table, extras: list[Extra]) -> list[RowCheck]:
    """Every row check for one file, in the order they are tried (over derived_columns).
    `column` is what quarantine names: the contract column, or an extra column's shown name
    (which passed the header's identifier check)."""
    checks: list[RowCheck] = []
    redacted = "'value redacted: looks like ' || "
    for col in table.columns:
        checks.append(RowCheck("identifier_value", col.name, _ref(col.name, "identifier"),
                               redacted + _identifier_label(contract, quote_ident(col.name)), col.name,
                               value_only=col.type == "text"))
    if extras:
        cell = f"trim({EXTRAS_COLUMN}[{EXTRA_IDENTIFIER}])"
        checks.append(RowCheck("identifier_value", "", f"{EXTRA_IDENTIFIER} IS NOT NULL",
                               redacted + _identifier_label(contract, cell),
                               columns=tuple(e.name for e in extras), which=EXTRA_IDENTIFIER))
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
            checks.append(RowCheck("missing_value", col.name, f"{v} IS NULL", f"'{col.name} is missing'",
                                   col.name))
        typed = typed_ref(col)
        if col.type in ("integer", "decimal"):
            num = _ref(col.name, "num")
            bad = f"{v} IS NOT NULL AND ({num} IS NULL OR NOT isfinite({num})"
            bad += f" OR {typed} IS NULL)" if col.type == "integer" else ")"
            what = "a whole number" if col.type == "integer" else "a number"
            checks.append(RowCheck("invalid_type", col.name, bad, f"'{col.name} is not {what}'", col.name))
        elif col.type == "text" and col.pattern:
            checks.append(
                RowCheck(
                    "invalid_format",
                    col.name,
                    f"{v} IS NOT NULL AND NOT regexp_full_match({v}, {quote_literal(col.pattern)})",
                    f"'{col.name} does not match ' || {quote_literal(col.pattern)}",
                    col.name,
                    value_only=True,
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
                    col.name,
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
    return [RowCheck(col.range_rule, col.name, cond, detail, col.name)]
