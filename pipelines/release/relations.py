"""Relations an outsider knows between released counts (hand-written families; see disclosure.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

# The columns of each aggregate mart: its counts (what can be small), the columns computed from
# each count (NULL when it is), and the columns that name a row. pipelines/marts/assets.py builds
# its AggregateMart list from these, so there is one source of truth.
_PCTS = {c: (f"pct_{c}", f"pct_{c}_low", f"pct_{c}_high") for c in ("meaningful", "minimal", "intolerant")}
_EXPOSED = ("pct_exposed", "pct_exposed_low", "pct_exposed_high")
_SLEEP = ("pct_sleep_event", "pct_sleep_event_low", "pct_sleep_event_high")
_INTOLERANT = ("pct_intolerant", "pct_intolerant_low", "pct_intolerant_high")
_STATS = ("value_median", "value_p25", "value_p75", "pct_change_median", "pct_change_p25",
          "pct_change_p75")

COUNT_COLUMNS: dict[str, tuple[str, ...]] = {
    "response_by_indication": ("n_patients", "n_evaluable", "n_meaningful", "n_minimal", "n_intolerant",
                               "n_not_assessable"),
    "measure_trajectory": ("n_patients",),
    "tolerability": ("n_exposed", "n_patients", "n_discontinued"),
    "titration": ("n_patients", "n_sleep_event", "n_intolerant"),
    "cohort_flow": ("enrolled", "with_baseline", "reached_day_56", "assessed", "n_meaningful", "n_minimal",
                    "n_intolerant", "n_not_assessable"),
}
DERIVED_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "response_by_indication": {"n_meaningful": _PCTS["meaningful"], "n_minimal": _PCTS["minimal"],
                               "n_intolerant": _PCTS["intolerant"],
                               "n_evaluable": sum(_PCTS.values(), ())},
    "measure_trajectory": {"n_patients": _STATS},
    "tolerability": {"n_patients": _EXPOSED, "n_exposed": _EXPOSED},
    "titration": {"n_patients": (*_SLEEP, *_INTOLERANT), "n_sleep_event": _SLEEP, "n_intolerant": _INTOLERANT},
    "cohort_flow": {},
}
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "response_by_indication": ("level", "indication_group", "indication", "regimen"),
    "measure_trajectory": ("indication", "instrument", "visit_week", "category"),
    "tolerability": ("indication", "regimen", "event", "dose_band"),
    "titration": ("indication", "starting_dose_band"),
    "cohort_flow": ("indication",),
}
CATEGORY_COUNTS = {"meaningful": "n_meaningful", "minimal": "n_minimal", "intolerant": "n_intolerant",
                   "not_assessable": "n_not_assessable"}

RATED_COST = 3  # a count rates derive from costs this many times its value as a complement
_EPS = 1e-6  # LP tolerance when rounding bounds to the integers they stand for
_RESPONSE, _FLOW, _TOLERABILITY, _TITRATION, _TRAJECTORY = (
    "response_by_indication", "cohort_flow", "tolerability", "titration", "measure_trajectory")


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
    return [tuple(_key(v) for v in row) for row in zip(*(frame[c].tolist() for c in columns), strict=True)]


def _rows_by(frame: pd.DataFrame, columns: Sequence[str]) -> dict[tuple, list]:
    groups: dict[tuple, list] = defaultdict(list)
    for label, key in zip(frame.index, _keys(frame, columns), strict=True):
        groups[key].append(label)
    return groups


def _where(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    return frame[frame[column].eq(value).fillna(False).astype(bool)]


def _response_relations(r: pd.DataFrame, out: _Collector) -> None:
    counts, m = COUNT_COLUMNS[_RESPONSE], _RESPONSE
    for i in r.index:
        out.adds_up(Cell(m, i, "n_evaluable"), [Cell(m, i, c) for c in ("n_meaningful", "n_minimal",
                                                                         "n_intolerant")],
                    "response.categories")
        out.adds_up(Cell(m, i, "n_patients"), [Cell(m, i, "n_evaluable"), Cell(m, i, "n_not_assessable")],
                    "response.totals")
    kids_of = _rows_by(_where(r, "level", "indication"), ["indication_group"])
    groups = _where(r, "level", "indication_group")
    for key, parents in _rows_by(groups, ["indication_group"]).items():
        for p in parents:
            for c in counts:
                out.adds_up(Cell(m, p, c), [Cell(m, k, c) for k in kids_of.get(key, [])],
                            "response.indications_to_group")
    for a in _where(r, "level", "all").index:
        for c in counts:
            out.adds_up(Cell(m, a, c), [Cell(m, g, c) for g in groups.index], "response.groups_to_all")


def _flow_relations(f: pd.DataFrame, out: _Collector) -> None:
    counts, m = COUNT_COLUMNS[_FLOW], _FLOW
    for i in f.index:
        out.adds_up(Cell(m, i, "enrolled"), [Cell(m, i, CATEGORY_COUNTS[k]) for k in CATEGORY_COUNTS],
                    "flow.categories")
        for step in ("with_baseline", "reached_day_56", "assessed"):
            out.at_most([Cell(m, i, step)], Cell(m, i, "enrolled"), "flow.steps")
        for step in ("with_baseline", "assessed"):
            out.at_most([Cell(m, i, "n_meaningful")], Cell(m, i, step), "flow.meaningful_needs_values")
    is_all = f["indication"].eq("all").fillna(False).astype(bool)
    for a in f.index[is_all]:
        for c in counts:
            out.adds_up(Cell(m, a, c), [Cell(m, k, c) for k in f.index[~is_all]], "flow.indications_to_all")


_FLOW_TO_RESPONSE = (("enrolled", "n_patients"), *((c, c) for c in CATEGORY_COUNTS.values()))


def _flow_vs_response(f: pd.DataFrame, r: pd.DataFrame, out: _Collector) -> None:
    by_indication = _rows_by(_where(r, "level", "indication"), ["indication"])
    all_rows = list(_where(r, "level", "all").index)
    for i, (indication,) in zip(f.index, _keys(f, ["indication"]), strict=True):
        if indication == "all":
            matches, family = [[a] for a in all_rows], "flow_vs_response.all"
        else:
            found = by_indication.get((indication,))
            matches, family = ([found] if found else []), "flow_vs_response.indication"
        for rows in matches:
            for fc, rc in _FLOW_TO_RESPONSE:
                out.adds_up(Cell(_FLOW, i, fc), [Cell(_RESPONSE, k, rc) for k in rows], family)


def _exposure_rows(t: pd.DataFrame) -> dict[tuple, list]:
    """Tolerability rows by (indication, regimen, dose band): they repeat one n_exposed."""
    return _rows_by(t, ["indication", "regimen", "dose_band"])


def _tolerability_relations(t: pd.DataFrame, values: Mapping[Cell, int], out: _Collector) -> None:
    m = _TOLERABILITY
    for i in t.index:
        out.at_most([Cell(m, i, "n_discontinued")], Cell(m, i, "n_patients"), "tolerability.nested")
        out.at_most([Cell(m, i, "n_patients")], Cell(m, i, "n_exposed"), "tolerability.nested")
    exposure = _exposure_rows(t)
    for rows in exposure.values():
        for k in rows[1:]:
            out.adds_up(Cell(m, rows[0], "n_exposed"), [Cell(m, k, "n_exposed")],
                        "tolerability.exposed_repeated")
    names = dict(zip(t.index, _keys(t, ["indication"]), strict=True))  # once: t.loc per group was slow
    for rows in _rows_by(t, ["regimen", "event", "dose_band"]).values():
        kids = [k for k in rows if names[k] != ("all",)]
        for a in (k for k in rows if names[k] == ("all",)):
            for c in ("n_patients", "n_discontinued"):
                out.adds_up(Cell(m, a, c), [Cell(m, k, c) for k in kids], "tolerability.indications_to_all")
    by_band: dict[tuple, dict[str, object]] = defaultdict(dict)
    for (indication, regimen, band), rows in exposure.items():
        by_band[(regimen, band)][indication] = rows[0]
    for reps in by_band.values():
        if "all" not in reps:
            continue
        total = Cell(m, reps["all"], "n_exposed")
        parts = [Cell(m, k, "n_exposed") for name, k in reps.items() if name != "all"]
        whole = sum(values[p] for p in parts) == values[total]
        out.add([(total, -1), *((p, 1) for p in parts)], "==" if whole else "<=",
                "tolerability.exposed_to_all")


def _tolerability_vs_response(t: pd.DataFrame, r: pd.DataFrame, out: _Collector) -> None:
    response_rows = _rows_by(_where(r, "level", "indication"), ["indication", "regimen"])
    for (indication, regimen, _band), rows in _exposure_rows(t).items():
        for k in response_rows.get((indication, regimen), []):
            out.at_most([Cell(_TOLERABILITY, rows[0], "n_exposed")], Cell(_RESPONSE, k, "n_patients"),
                        "tolerability_vs_response.exposed")


def _titration_relations(ti: pd.DataFrame, out: _Collector) -> None:
    m = _TITRATION
    for i in ti.index:
        for c in ("n_sleep_event", "n_intolerant"):
            out.at_most([Cell(m, i, c)], Cell(m, i, "n_patients"), "titration.nested")
    names = dict(zip(ti.index, _keys(ti, ["indication"]), strict=True))
    for rows in _rows_by(ti, ["starting_dose_band"]).values():
        kids = [k for k in rows if names[k] != ("all",)]
        for a in (k for k in rows if names[k] == ("all",)):
            for c in COUNT_COLUMNS[m]:
                out.adds_up(Cell(m, a, c), [Cell(m, k, c) for k in kids], "titration.indications_to_all")


def _titration_vs_tolerability(ti: pd.DataFrame, t: pd.DataFrame, out: _Collector) -> None:
    exposure = _exposure_rows(t)
    for i, (indication, band) in zip(ti.index, _keys(ti, ["indication", "starting_dose_band"]), strict=True):
        rows = exposure.get((indication, "ldn", band))
        if rows:
            out.at_most([Cell(_TITRATION, i, "n_patients")], Cell(_TOLERABILITY, rows[0], "n_exposed"),
                        "titration_vs_tolerability.exposed")


def _titration_vs_response(ti: pd.DataFrame, r: pd.DataFrame, out: _Collector) -> None:
    response_rows = _rows_by(_where(r, "level", "indication"), ["indication", "regimen"])
    for (indication,), rows in _rows_by(ti, ["indication"]).items():
        if indication == "all":
            continue
        for k in response_rows.get((indication, "ldn"), []):
            for c in ("n_patients", "n_intolerant"):
                out.at_most([Cell(_TITRATION, i, c) for i in rows], Cell(_RESPONSE, k, c),
                            "titration_vs_response.ldn")


def _trajectory_vs_flow(mt: pd.DataFrame, f: pd.DataFrame, out: _Collector) -> None:
    flow_rows = _rows_by(f, ["indication"])
    for i, (indication, category) in zip(mt.index, _keys(mt, ["indication", "category"]), strict=True):
        if category in CATEGORY_COUNTS:
            for k in flow_rows.get((indication,), []):
                out.at_most([Cell(_TRAJECTORY, i, "n_patients")], Cell(_FLOW, k, CATEGORY_COUNTS[category]),
                            "trajectory_vs_flow.category")


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
    r, f, t, ti, mt = (marts.get(n) for n in (_RESPONSE, _FLOW, _TOLERABILITY, _TITRATION, _TRAJECTORY))
    out = _Collector()
    if r is not None:
        _response_relations(r, out)
    if f is not None:
        _flow_relations(f, out)
        if r is not None:
            _flow_vs_response(f, r, out)
    if t is not None:
        _tolerability_relations(t, values, out)
        if r is not None:
            _tolerability_vs_response(t, r, out)
    if ti is not None:
        _titration_relations(ti, out)
        if t is not None:
            _titration_vs_tolerability(ti, t, out)
        if r is not None:
            _titration_vs_response(ti, r, out)
    if mt is not None and f is not None:
        _trajectory_vs_flow(mt, f, out)
    return out.relations

