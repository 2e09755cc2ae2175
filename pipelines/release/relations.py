"""Relations an outsider knows between released counts, generated from each mart's declaration.

Each released mart's dictionary file (sql/marts/<mart>.yml) ends in a `release:` block: the
columns naming a row (`keys`), the counts (what can be small), the columns computed from each
count (`derived`: NULL when it is), and `relations`, each one of:

- `row: {total, parts, sense}`: on every row, sum(parts) == total (or <= with sense "<=").
- `same: {column, by}`: the column's cells in rows equal on `by` are one number repeated.
- `sum: {parts, total, match, per, columns | columns_by, sense}`: the parts side (rows of a mart,
  default this one, filtered by `where` and optionally one row per `one_per`) grouped by `per`
  (default the parts columns of `match`), each group's sum against every total-side row whose
  `match` columns equal the group's: == (default), "<=" (parts at most total) or "== where it
  holds" (a relation by construction that holds unless the data has an exception: the
  outsider may assume it, so it is equality wherever it holds - the safe side). `columns`:
  count columns (a name, or [parts column, total column]; default every count of the parts
  mart); `columns_by` takes the total column from a parts key's value.

`where` maps a column to a value, or to {not: value}. A missing total row is not a relation; a
total with no parts is 0. COUNT_COLUMNS, DERIVED_COLUMNS and KEY_COLUMNS are read from the same
blocks when used, so adding a mart to the release is adding its block. A block may also declare
the release's `grain` (pipelines/release/grain.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from pipelines.declared import load_yaml
from pipelines.dictionary import dictionary_files
from pipelines.settings import sql_dir


def declarations() -> dict[str, dict]:
    """The `release:` block of every model that declares one, by name, from the models' .yml
    files in this process's SQL folder (the model manifest; the dictionary checks the rest),
    read again when $CLINIC_SQL_DIR points elsewhere."""
    return _declarations_in(str(sql_dir()))


@cache
def _declarations_in(root: str) -> dict[str, dict]:
    found = {}
    for path in dictionary_files(Path(root)):
        for name, entry in (load_yaml(path.read_text(encoding="utf-8")) or {}).items():
            if isinstance(entry, dict) and "release" in entry:
                found[name] = entry["release"]
    return found


# The order the release lists its marts in (response first: the others refer to it).
_ORDER = ("response_by_indication", "measure_trajectory", "tolerability", "titration", "cohort_flow")


@cache
def _parts_in(root: str) -> dict[str, dict]:
    found = _declarations_in(root)
    marts = sorted(found, key=lambda m: (_ORDER.index(m) if m in _ORDER else len(_ORDER), m))
    return {"counts": {m: tuple(found[m]["counts"]) for m in marts},
            "derived": {m: {c: tuple(d) for c, d in (found[m].get("derived") or {}).items()} for m in marts},
            "keys": {m: tuple(found[m]["keys"]) for m in marts}}


class _Declared(Mapping):
    """One part of every released mart's `release:` block, by mart in the release's order, read
    from this process's SQL folder when used (not at import: a changed $CLINIC_SQL_DIR holds)."""

    def __init__(self, part: str) -> None:
        self._part = part

    def _now(self) -> dict:
        return _parts_in(str(sql_dir()))[self._part]

    def __getitem__(self, mart: str):
        return self._now()[mart]

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())

    def __repr__(self) -> str:
        return f"{self._part} of the release: blocks: {self._now()!r}"


COUNT_COLUMNS: Mapping[str, tuple[str, ...]] = _Declared("counts")
DERIVED_COLUMNS: Mapping[str, Mapping[str, tuple[str, ...]]] = _Declared("derived")
KEY_COLUMNS: Mapping[str, tuple[str, ...]] = _Declared("keys")
CATEGORY_COUNTS = {"meaningful": "n_meaningful", "minimal": "n_minimal", "intolerant": "n_intolerant",
                   "not_assessable": "n_not_assessable"}


class Cell(NamedTuple):
    """One published count: (mart, row label in that mart's frame, column)."""

    mart: str
    row: int
    column: str


@dataclass(frozen=True)
class Relation:
    """A linear relation an outsider knows: sum(coef * cell) == rhs (or <= rhs)."""

    terms: tuple[tuple[Cell, int], ...]
    sense: Literal["==", "<="]
    rhs: int = 0
    family: str = ""

    def lhs(self, values: Mapping[Cell, int]) -> int:
        return sum(coef * values[cell] for cell, coef in self.terms)

    def holds(self, values: Mapping[Cell, int]) -> bool:
        lhs = self.lhs(values)
        return lhs == self.rhs if self.sense == "==" else lhs <= self.rhs


# --- relations ------------------------------------------------------------------------------------

class _Collector:
    """Builds relations, merging repeated cells and dropping ones with nothing left."""

    def __init__(self) -> None:
        self.relations: list[Relation] = []

    def add(self, terms: Iterable[tuple[Cell, int]], sense: Literal["==", "<="], family: str) -> None:
        merged: dict[Cell, int] = {}
        for cell, coef in terms:
            merged[cell] = merged.get(cell, 0) + coef
        kept = tuple((cell, coef) for cell, coef in merged.items() if coef)
        if kept:
            self.relations.append(Relation(kept, sense, 0, family))

    def adds_up(self, total: Cell, parts: Iterable[Cell], family: str) -> None:
        self.add([(total, -1), *((p, 1) for p in parts)], "==", family)

    def at_most(self, parts: Iterable[Cell], bound: Cell, family: str) -> None:
        self.add([*((p, 1) for p in parts), (bound, -1)], "<=", family)


def _key(value: object) -> object:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _keys(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple]:
    if not columns:
        return [()] * len(frame)
    return [tuple(_key(v) for v in row) for row in zip(*(frame[c].tolist() for c in columns), strict=True)]


def _rows_by(frame: pd.DataFrame, columns: Sequence[str]) -> dict[tuple, list]:
    groups: dict[tuple, list] = defaultdict(list)
    for label, key in zip(frame.index, _keys(frame, columns), strict=True):
        groups[key].append(label)
    return groups


def _add(out: _Collector, terms: list[tuple[Cell, int]], sense: str, family: str,
         values: Mapping[Cell, int]) -> None:
    """One relation `sum(parts) - total (sense) 0`; the data-dependent senses are settled here."""
    if sense in ("==", "<="):
        out.add(terms, sense, family)
        return
    holds = sum(k * values[c] for c, k in terms) == 0
    if sense == "== where it holds":
        out.add(terms, "==" if holds else "<=", family)
    elif sense == "= only where it holds":
        if holds:
            out.add(terms, "==", family)
    else:
        raise ValueError(f"{family}: sense {sense!r} is none of ==, <=, == where it holds, = only where it holds")


def _select(frame: pd.DataFrame, side: Mapping) -> pd.DataFrame:
    """The rows of one side of a declared relation: `where` filters, `one_per` keeps the first row
    of each group (a number repeated on several rows counts once)."""
    keep = np.ones(len(frame), dtype=bool)
    for column, wanted in (side.get("where") or {}).items():
        values = frame[column]
        if isinstance(wanted, Mapping):
            keep &= ~values.eq(str(wanted["not"])).fillna(False).to_numpy(dtype=bool)
        else:
            keep &= values.eq(str(wanted)).fillna(False).to_numpy(dtype=bool)
    rows = frame[keep]
    if side.get("one_per"):
        rows = rows[~rows.duplicated(list(side["one_per"]))]
    return rows


def _column_pairs(spec: Mapping, parts_mart: str) -> list[tuple[str, str]]:
    columns = spec.get("columns") or COUNT_COLUMNS[parts_mart]
    return [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]


def _sum_relations(mart: str, spec: Mapping, family: str, marts: Mapping[str, pd.DataFrame],
                   values: Mapping[Cell, int], out: _Collector) -> None:
    parts_mart, total_mart = spec["parts"].get("mart", mart), spec["total"].get("mart", mart)
    if parts_mart not in marts or total_mart not in marts:
        return
    parts, totals = _select(marts[parts_mart], spec["parts"]), _select(marts[total_mart], spec["total"])
    match = dict(spec.get("match") or {})
    per = list(spec.get("per") or match)
    sense = spec.get("sense", "==")
    groups = _rows_by(parts, per)
    total_rows = _rows_by(totals, list(match.values()))
    if per == list(match):  # a total without parts is 0
        for key in total_rows:
            groups.setdefault(key, [])
    by = spec.get("columns_by")
    key_of = dict(zip(parts.index, _keys(parts, [by["key"]]), strict=True)) if by else {}
    for key, rows in groups.items():
        wanted = tuple(key[per.index(c)] for c in match)
        for t in total_rows.get(wanted, []):
            if by:
                pairs = {(by["from"], by["columns"][key_of[r][0]]) for r in rows if key_of[r][0] in by["columns"]}
            else:
                pairs = _column_pairs(spec, parts_mart)
            for pc, tc in pairs:
                terms = [(Cell(total_mart, t, tc), -1), *((Cell(parts_mart, r, pc), 1) for r in rows)]
                _add(out, terms, sense, family, values)


def _declared_relations(mart: str, decl: Mapping, marts: Mapping[str, pd.DataFrame],
                        values: Mapping[Cell, int], out: _Collector) -> None:
    frame = marts[mart]
    for spec in decl.get("relations") or []:
        family = spec["family"]
        if "row" in spec:
            row = spec["row"]
            for i in frame.index:
                _add(out, [(Cell(mart, i, row["total"]), -1), *((Cell(mart, i, p), 1) for p in row["parts"])],
                     row.get("sense", "=="), family, values)
        elif "same" in spec:
            for rows in _rows_by(frame, spec["same"]["by"]).values():
                for k in rows[1:]:
                    out.adds_up(Cell(mart, rows[0], spec["same"]["column"]), [Cell(mart, k, spec["same"]["column"])],
                                family)
        elif "sum" in spec:
            _sum_relations(mart, spec["sum"], family, marts, values, out)
        else:
            raise ValueError(f"{mart}: release relation {family} is none of row, same, sum")


def _check_marts(marts: Mapping[str, pd.DataFrame]) -> None:
    unknown = sorted(set(marts) - set(COUNT_COLUMNS))
    if unknown:
        raise ValueError(f"not an aggregate mart this audit knows: {', '.join(unknown)}")
    for name, frame in marts.items():
        if not frame.index.is_unique:
            raise ValueError(f"{name}: row labels must be unique (a cell is named by its row label)")


def cell_values(marts: Mapping[str, pd.DataFrame]) -> dict[Cell, int]:
    """Every count cell of the marts with its (unsuppressed) value."""
    _check_marts(marts)
    values: dict[Cell, int] = {}
    for name, frame in marts.items():
        for column in COUNT_COLUMNS[name]:
            if frame[column].isna().any():
                raise ValueError(f"{name}.{column} has NULL counts: the audit needs the unsuppressed mart")
            for label, v in zip(frame.index, frame[column].tolist(), strict=True):
                values[Cell(name, label, column)] = int(v)
    return values


def collect_relations(marts: Mapping[str, pd.DataFrame]) -> list[Relation]:
    """Every linear relation an outsider knows between the cells of the given marts.

    Any subset of the five aggregate marts may be given (each family needs its marts); the
    frames are as the SQL in sql/marts/ makes them, with unsuppressed counts.
    """
    values = cell_values(marts)
    out = _Collector()
    for mart in marts:
        _declared_relations(mart, declarations()[mart], marts, values, out)
    return out.relations
