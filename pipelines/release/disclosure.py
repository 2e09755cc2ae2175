"""Disclosure audit of the release bundle: small-cell suppression checked across every mart at once.

Why: suppressing each count from 1 to min_cell_size - 1 and then protecting one equation at a
time (pipelines/marts/suppression.py) leaves cells an outsider recovers by combining equations
and marts: an indication's enrolled count is the all-patients row minus the other indications
in cohort_flow, and also the sum of its regimen rows in response_by_indication. Here every
linear relation an outsider knows between the released counts is collected as data
(`collect_relations`), a linear program bounds each suppressed cell under all of them at once
(`feasible_ranges`), and `protect` suppresses more cells until no small count can be narrowed
down. The internal marts stay unsuppressed; this module only shapes what leaves the clinic.

Relations have integer coefficients over cells (`sum(coef * cell) == rhs` or `<= rhs`, rhs 0 for
every relation collected from the marts). Families, by the name each relation carries:

response_by_indication (levels indication x regimen, indication_group, all)
- response.categories: n_meaningful + n_minimal + n_intolerant = n_evaluable, on every row.
- response.totals: n_evaluable + n_not_assessable = n_patients, on every row.
- response.indications_to_group: per count column, a group's indication x regimen rows add up
  to the group's row.
- response.groups_to_all: per count column, the group rows add up to the all-patients row.

cohort_flow (one row per indication, plus 'all')
- flow.categories: enrolled = n_meaningful + n_minimal + n_intolerant + n_not_assessable.
- flow.indications_to_all: per column, the indication rows add up to the 'all' row.
- flow.steps: with_baseline, reached_day_56 and assessed are each <= enrolled.
- flow.meaningful_needs_values: n_meaningful <= with_baseline and n_meaningful <= assessed (a
  patient is meaningful only with both a baseline and an assessment value).

cohort_flow against response_by_indication (the same patients, counted in two marts)
- flow_vs_response.indication: an indication's enrolled and each category = the sum over its
  regimens of response's n_patients and that category.
- flow_vs_response.all: the 'all' rows agree likewise.

tolerability (indication incl. 'all' x regimen x event x dose band; a row only where an event
happened)
- tolerability.nested: n_discontinued <= n_patients <= n_exposed, on every row.
- tolerability.exposed_repeated: n_exposed is one number per (indication, regimen, dose band),
  repeated on each of its event rows: those cells are equal.
- tolerability.indications_to_all: n_patients and n_discontinued of the indication rows add up
  to the 'all' row of the same regimen, event and dose band (a missing row is a zero).
- tolerability.exposed_to_all: the indications' n_exposed add up to the 'all' n_exposed of the
  same regimen and dose band. An indication exposed to a band without any event in it
  publishes no n_exposed there, so this is `<=`, or `=` where the published indications make up
  the whole 'all' count (an outsider may be able to tell; assuming so is the safe side).
- tolerability_vs_response.exposed: n_exposed of (indication, regimen, band) <= response's
  n_patients of (indication, regimen).

titration (indication incl. 'all' x LDN starting dose band)
- titration.nested: n_sleep_event <= n_patients and n_intolerant <= n_patients, on every row.
- titration.indications_to_all: per band and column, the indication rows add up to 'all'.
- titration_vs_tolerability.exposed: n_patients of (indication, band) <= tolerability's n_exposed
  of (indication, 'ldn', band) where that row is published (a patient starting in a band was
  exposed to it).
- titration_vs_response.ldn: an indication's n_patients and n_intolerant summed over starting
  bands are <= response's n_patients and n_intolerant of (indication, 'ldn').

measure_trajectory (indication x instrument x visit week x category)
- trajectory_vs_flow.category: n_patients <= cohort_flow's count of that category for the
  indication (a patient has one value per instrument and week).

The audit is the linear-programming relaxation that tau-Argus and statistical offices use:
published cells are fixed to their values, suppressed cells are variables >= 1 (zero is always
shown, so a hidden cell is known to be non-zero), and the LP minimum and maximum of a suppressed
cell bound what an outsider can infer about it. Relaxing integrality only widens the range, so
the integer range ([ceil(low), floor(high)], which is what the protection test uses) lies
inside the LP range. Suppressed cells linked by no chain of relations cannot inform each other,
so each connected component of suppressed cells is solved on its own, as a sparse LP (scipy's
`linprog`, HiGHS).

Protection: a primary cell (true count 1..min_cell_size - 1) is protected when its range covers
[floor, min_cell_size - 1], where `floor` is what the pattern of zeros alone says (its minimum
with every non-zero cell hidden). That floor is 1 for nearly every cell; a total of k non-zero
parts is at least k whatever else is hidden (zero is shown), so demanding 1 there could never
be met, and the outsider learns nothing from it that the zeros did not already say.
Complementary cells need no protection of their own.

`protect` suppresses every count 1..min_cell_size - 1 (zero is shown), then takes the disclosed
primary cells one at a time and suppresses published non-zero cells next to each (in a relation
with it first, and among those the ones in relations that bind its range) until it is protected:
the smallest that protects it on its own, else the smallest. Hiding a cell only widens ranges,
so a cell once protected stays so. The result has the release frames (counts Int64 with <NA>,
derived columns NaN, a `suppressed` flag per row), a report for the clinic, and a public report
for the manifest that does not say which hidden cells are the small ones (that would tell an
outsider they are at most min_cell_size - 1).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

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
    for rows in _rows_by(t, ["regimen", "event", "dose_band"]).values():
        names = dict(zip(rows, _keys(t.loc[rows], ["indication"]), strict=True))
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
    for rows in _rows_by(ti, ["starting_dose_band"]).values():
        names = dict(zip(rows, _keys(ti.loc[rows], ["indication"]), strict=True))
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


# --- the audit ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Optimum:
    value: float  # -inf when unbounded below
    x: np.ndarray
    binding: frozenset[int]  # relations whose dual is not zero: where a wider range must come from


@dataclass
class _LP:
    """One component's LP: its hidden cells as variables, published cells moved to the right side."""

    cells: list[Cell]
    col: dict[Cell, int]
    a_eq: csr_matrix | None
    b_eq: np.ndarray | None
    eq_relations: list[int]
    a_ub: csr_matrix | None
    b_ub: np.ndarray | None
    ub_relations: list[int]
    lower: float

    def minimum(self, objective: np.ndarray, caps: Mapping[int, float] | None = None) -> _Optimum:
        bounds = np.full((len(self.cells), 2), [self.lower, np.inf])
        for j, cap in (caps or {}).items():
            bounds[j, 1] = cap
        res = linprog(objective, A_ub=self.a_ub, b_ub=self.b_ub, A_eq=self.a_eq, b_eq=self.b_eq,
                      bounds=bounds, method="highs")
        if res.status in (2, 4):
            # HiGHS's presolve can call an unbounded LP infeasible ("infeasible or unbounded",
            # ERGO-Code/HiGHS#499); these LPs are feasible (the true counts satisfy them), so
            # ask the simplex without presolve, which tells the two apart.
            res = linprog(objective, A_ub=self.a_ub, b_ub=self.b_ub, A_eq=self.a_eq, b_eq=self.b_eq,
                          bounds=bounds, method="highs", options={"presolve": False})
        if res.status == 3:
            return _Optimum(-math.inf, np.array([]), frozenset())
        if res.status != 0:
            raise RuntimeError(f"disclosure LP failed ({res.message}); do published cells contradict "
                               "a relation?")
        binding = set()
        for relations, duals in ((self.eq_relations, res.eqlin), (self.ub_relations, res.ineqlin)):
            if relations:
                binding.update(k for k, y in zip(relations, duals.marginals, strict=True) if abs(y) > _EPS)
        return _Optimum(float(res.fun), res.x, frozenset(binding))

    def low(self, cell: Cell) -> _Optimum:
        objective = np.zeros(len(self.cells))
        objective[self.col[cell]] = 1.0
        return self.minimum(objective)

    def high(self, cell: Cell, cap: float | None = None) -> _Optimum:
        """The maximum (as a negated minimum), followed only up to cap if given."""
        objective = np.zeros(len(self.cells))
        objective[self.col[cell]] = -1.0
        return self.minimum(objective, None if cap is None else {self.col[cell]: cap})


class _System:
    """The relations indexed by cell, with the true values, for LPs over any set of hidden cells."""

    def __init__(self, values: Mapping[Cell, int], relations: Sequence[Relation]):
        self.values = values
        self.relations = list(relations)
        self.by_cell: dict[Cell, list[int]] = defaultdict(list)
        for k, relation in enumerate(self.relations):
            for cell, _ in relation.terms:
                self.by_cell[cell].append(k)

    def component(self, start: Cell, hidden: Collection[Cell]) -> tuple[list[Cell], list[int]]:
        """The hidden cells linked to `start` by relations through hidden cells, and those relations."""
        seen, rels, queue = {start}, set(), deque([start])
        while queue:
            for k in self.by_cell.get(queue.popleft(), ()):
                if k in rels:
                    continue
                rels.add(k)
                for cell, _ in self.relations[k].terms:
                    if cell in hidden and cell not in seen:
                        seen.add(cell)
                        queue.append(cell)
        return sorted(seen), sorted(rels)

    def components(self, hidden: Collection[Cell],
                   starts: Iterable[Cell]) -> list[tuple[list[Cell], list[int]]]:
        done: set[Cell] = set()
        found = []
        for start in starts:
            if start not in done:
                cells, rels = self.component(start, hidden)
                done.update(cells)
                found.append((cells, rels))
        return found

    def closed(self, rels: list[int], hidden: Collection[Cell]) -> bool:
        """True when no published non-zero count enters these relations: then the LP is the zero
        pattern's own (every minimum is its floor) and scaling a solution up keeps it feasible
        (every maximum is inf), so the cells are protected without solving anything."""
        return all(self.relations[k].rhs == 0 and all(c in hidden or self.values[c] == 0
                                                     for c, _ in self.relations[k].terms) for k in rels)

    def lp(self, cells: list[Cell], rels: list[int], hidden: Collection[Cell], lower: float) -> _LP:
        col = {c: j for j, c in enumerate(cells)}
        parts: dict[str, tuple[list, list, list, list, list]] = {"==": ([], [], [], [], []),
                                                                 "<=": ([], [], [], [], [])}
        for k in rels:
            relation = self.relations[k]
            rhs, entries = relation.rhs, []
            for cell, coef in relation.terms:
                if cell in hidden:
                    entries.append((col[cell], coef))
                else:
                    rhs -= coef * self.values[cell]
            if not entries:
                continue
            r_idx, c_idx, vals, b, owners = parts[relation.sense]
            for j, coef in entries:
                r_idx.append(len(b))
                c_idx.append(j)
                vals.append(coef)
            b.append(rhs)
            owners.append(k)

        def matrix(sense: str) -> tuple[csr_matrix | None, np.ndarray | None, list[int]]:
            r_idx, c_idx, vals, b, owners = parts[sense]
            if not b:
                return None, None, []
            return (csr_matrix((vals, (r_idx, c_idx)), shape=(len(b), len(cells)), dtype=float),
                    np.asarray(b, dtype=float), owners)

        return _LP(cells, col, *matrix("=="), *matrix("<="), lower)

    def ranges(self, cells: list[Cell], rels: list[int], hidden: Collection[Cell], targets: Iterable[Cell],
               lower: float) -> dict[Cell, tuple[float, float]]:
        """Exact LP range of each target in one component (maximum inf when unbounded)."""
        targets = list(targets)
        if not rels:  # nothing links these cells to anything: >= lower, no upper bound
            return {t: (lower, math.inf) for t in targets}
        lp = self.lp(cells, rels, hidden, lower)
        lows = dict.fromkeys(targets, -math.inf)
        if len(targets) > 1:  # a solution with a cell at its lower bound proves that is its minimum
            x = lp.minimum(np.ones(len(cells))).x
            lows.update({t: lower for t in targets if x[lp.col[t]] <= lower + _EPS})
        for t in targets:
            if lows[t] == -math.inf:
                lows[t] = lp.low(t).value
        if self.closed(rels, hidden) and lower > 0:  # homogeneous: any solution scales up
            return {t: (lows[t], math.inf) for t in targets}
        return {t: (lows[t], -lp.high(t).value) for t in targets}


def feasible_ranges(values: Mapping[Cell, int], shown: Collection[Cell], relations: Sequence[Relation], *,
                    targets: Iterable[Cell] | None = None,
                    lower: float = 1) -> dict[Cell, tuple[float, float]]:
    """LP minimum and maximum of each suppressed cell given everything published.

    `values` holds every cell (those of suppressed cells are not used); `shown` the published
    ones, fixed to their values; every other cell is suppressed and at least `lower` (1: zero is
    always shown). The maximum is inf where nothing bounds the cell. Each connected component of
    suppressed cells is solved separately.
    """
    shown = set(shown)
    hidden = {c for c in values if c not in shown}
    wanted = sorted(hidden if targets is None else set(targets))
    if missing := [c for c in wanted if c not in hidden]:
        raise ValueError(f"not suppressed, nothing to bound: {missing[:3]}")
    wanted_set = set(wanted)
    system = _System(values, relations)
    out: dict[Cell, tuple[float, float]] = {}
    for cells, rels in system.components(hidden, wanted):
        out.update(system.ranges(cells, rels, hidden, [c for c in cells if c in wanted_set], lower))
    return out


def _int_low(value: float) -> float:
    return value if math.isinf(value) else math.ceil(value - _EPS)


def _int_high(value: float) -> float:
    return value if math.isinf(value) else math.floor(value + _EPS)


class _Floors:
    """What the zero pattern alone says: a cell's minimum with every non-zero cell hidden."""

    def __init__(self, system: _System):
        self.system = system
        self.nonzero = {c for c, v in system.values.items() if v != 0}
        self.known: dict[Cell, int] = {}
        self.lp_of: dict[Cell, _LP] = {}

    def __call__(self, cell: Cell) -> int:
        if cell not in self.known and cell not in self.lp_of:
            cells, rels = self.system.component(cell, self.nonzero)
            if not rels:
                self.known[cell] = 1
                return 1
            lp = self.system.lp(cells, rels, self.nonzero, 1)
            x = lp.minimum(np.ones(len(cells))).x  # cells at 1 here have floor 1: one LP for most
            for c, j in lp.col.items():
                if x[j] <= 1 + _EPS:
                    self.known[c] = 1
                else:
                    self.lp_of[c] = lp
        if cell not in self.known:
            self.known[cell] = int(_int_low(self.lp_of.pop(cell).low(cell).value))
        return self.known[cell]


# --- protection -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReleaseResult:
    """What protect() gives: release frames, the audit report, and which cells were hidden why.

    `report` is for the clinic: it names the primary cells, and knowing which suppressed cells
    are below min_cell_size (or how many are not: with none complementary, every hidden cell is
    at most min_cell_size - 1) narrows them for an outsider. Only `public_report` (the threshold,
    the relations, how many cells are hidden, and that none is disclosed) may leave the clinic.
    `ranges` are the final LP ranges of the primary cells.
    """

    frames: dict[str, pd.DataFrame]
    report: dict
    public_report: dict
    primary: frozenset[Cell]
    complementary: tuple[Cell, ...]
    ranges: dict[Cell, tuple[float, float]]


class _Protector:
    """Greedy complementary suppression until every primary cell's range covers [floor, top]."""

    def __init__(self, values: Mapping[Cell, int], relations: Sequence[Relation], min_cell_size: int,
                 max_candidates: int):
        self.system = _System(values, relations)
        self.values = values
        self.top = min_cell_size - 1
        self.max_candidates = max_candidates
        self.primary = {c for c, v in values.items() if 0 < v < min_cell_size}
        self.hidden = set(self.primary)
        self.floor = _Floors(self.system)

    def low_gap(self, cell: Cell, low: float) -> int:
        low_int = _int_low(low)
        return 0 if low_int <= 1 else int(max(0, low_int - self.floor(cell)))  # floor >= 1: skip its LP

    def high_gap(self, high: float) -> int:
        return int(max(0, self.top - _int_high(high)))

    def floor_of(self, cell: Cell, low: float) -> int:
        return 1 if _int_low(low) <= 1 else self.floor(cell)  # floor <= low

    def certify(self, cells: list[Cell], rels: list[int],
                pending: Mapping[Cell, tuple[bool, bool]]) -> dict[Cell, tuple[bool, bool]]:
        """Drop the sides that witness solutions prove: one LP pushes every pending cell down to 1
        (or up to top) at once, and any cell that gets there is proven; repeated on the rest
        while it proves some. Returns the sides (low, high) still unproven."""
        sides = {c: list(s) for c, s in pending.items()}
        if not rels or self.system.closed(rels, self.hidden):
            return {}  # unlinked, or linked to nothing published but zeros: [floor, inf)
        lp = self.system.lp(cells, rels, self.hidden, 1)
        for low in (True, False):
            todo = [c for c, (lo, hi) in sides.items() if (lo if low else hi)]
            while todo:
                objective = np.zeros(len(cells))
                objective[[lp.col[c] for c in todo]] = 1.0 if low else -1.0
                x = lp.minimum(objective, None if low else {lp.col[c]: float(self.top) for c in todo}).x
                at = {c: x[lp.col[c]] for c in todo}
                proven = {c for c in todo if (at[c] <= 1 + _EPS if low else at[c] >= self.top - _EPS)}
                for c in proven:
                    sides[c][0 if low else 1] = False
                if not proven:
                    break
                todo = [c for c in todo if c not in proven]
        return {c: (lo, hi) for c, (lo, hi) in sides.items() if lo or hi}

    def side_bounds(self, target: Cell, low: bool, high: bool) -> tuple[int, int, frozenset[int]]:
        """The target's gaps below and above (for the sides asked) and the relations binding them."""
        cells, rels = self.system.component(target, self.hidden)
        if not rels:
            return 0, 0, frozenset()
        lp = self.system.lp(cells, rels, self.hidden, 1)
        low_gap, high_gap, binding = 0, 0, frozenset()
        if low:
            found = lp.low(target)
            low_gap, binding = self.low_gap(target, found.value), binding | found.binding
        if high:
            found = lp.high(target, cap=self.top)
            high_gap, binding = self.high_gap(-found.value), binding | found.binding
        return low_gap, high_gap, binding

    def protects(self, candidates: Collection[Cell], target: Cell, low: bool, high: bool) -> bool:
        """Would hiding these cells as well protect the target?"""
        extra = [c for c in candidates if c not in self.hidden]
        self.hidden.update(extra)
        try:
            return not (low and self.side_bounds(target, True, False)[0]
                        or high and self.side_bounds(target, False, True)[1])
        finally:
            self.hidden.difference_update(extra)

    def complement_for(self, target: Cell, low: bool, high: bool, binding: frozenset[int]) -> Cell:
        """The cell to suppress next so that `target` widens: a published non-zero cell in a
        relation with it (else around its component), the smallest that protects it on its own,
        else the smallest; cells in relations that bind its range (non-zero dual) come first."""
        _, rels = self.system.component(target, self.hidden)
        direct = {c for k in self.system.by_cell[target] for c, _ in self.system.relations[k].terms}
        tight = {c for k in binding for c, _ in self.system.relations[k].terms}
        around = {c for k in rels for c, _ in self.system.relations[k].terms}
        pool = sorted((c for c in around if c not in self.hidden and self.values[c] > 0),
                      key=lambda c: (c not in direct, c not in tight, self.values[c], c))
        if not pool:
            raise RuntimeError(f"{target} is disclosed and nothing around it can be suppressed")
        # Relaxing a relation whose dual is zero leaves the bound where it is: only try binding
        # ones. Hiding more only widens, so if all of them at once do not protect, none alone does.
        trials = [c for c in pool if c in tight][:self.max_candidates]
        if len(trials) > 1 and not self.protects(trials, target, low, high):
            return pool[0]
        return next((c for c in trials if self.protects([c], target, low, high)), pool[0])

    def run(self) -> list[Cell]:
        """Protect the primary cells one at a time; returns the complementary cells in the order
        added. Hiding more only widens ranges, so a cell once protected stays so."""
        pending: dict[Cell, tuple[bool, bool]] = {}
        for cells, rels in self.system.components(self.hidden, sorted(self.primary)):
            pending.update(self.certify(cells, rels, {c: (True, True) for c in cells if c in self.primary}))
        added: list[Cell] = []
        while pending:
            target = min(pending)
            low, high = pending.pop(target)
            needed_complements = False
            while True:
                low_gap, high_gap, binding = self.side_bounds(target, low, high)
                low, high = low_gap > 0, high_gap > 0
                if not (low or high):
                    break
                pick = self.complement_for(target, low, high, binding)
                self.hidden.add(pick)
                added.append(pick)
                needed_complements = True
            if needed_complements:  # what was hidden for it may have protected others in its component
                cells, rels = self.system.component(target, self.hidden)
                around = {c: pending.pop(c) for c in cells if c in pending}
                pending.update(self.certify(cells, rels, around))
        return added

    def final_ranges(self) -> dict[Cell, tuple[float, float]]:
        """Exact LP range of every primary cell, for the report and the last check."""
        ranges: dict[Cell, tuple[float, float]] = {}
        for cells, rels in self.system.components(self.hidden, sorted(self.primary)):
            targets = [c for c in cells if c in self.primary]
            ranges.update(self.system.ranges(cells, rels, self.hidden, targets, 1))
        return ranges


def audit(marts: Mapping[str, pd.DataFrame], hidden: Collection[Cell], min_cell_size: int = 11) -> list[Cell]:
    """The small counts a release gives away, given its true marts and which cells it hides:
    those shown, and those hidden whose range an outsider can narrow below [floor,
    min_cell_size - 1]. Empty for a safe release; the blocking check of the release bundle."""
    relations, values = collect_relations(marts), cell_values(marts)
    if broken := [r for r in relations if not r.holds(values)]:
        raise ValueError(f"{len(broken)} relations do not hold on the marts, e.g. {broken[0].family}")
    protector = _Protector(values, relations, min_cell_size, 0)
    hidden = set(hidden)
    shown_small = sorted(protector.primary - hidden)
    protector.primary &= hidden
    protector.hidden = hidden
    ranges = protector.final_ranges()
    narrowed = sorted(c for c in protector.primary
                      if protector.low_gap(c, ranges[c][0]) or protector.high_gap(ranges[c][1]))
    return shown_small + narrowed


def suppressed_frames(marts: Mapping[str, pd.DataFrame], hidden: Collection[Cell],
                      derived: Mapping[str, Mapping[str, Sequence[str]]] = DERIVED_COLUMNS,
                      ) -> dict[str, pd.DataFrame]:
    """Copies of the marts with hidden counts <NA> (Int64), what derives from them NaN, and
    a `suppressed` flag per row."""
    hidden = set(hidden)
    frames = {}
    for name, frame in marts.items():
        out = frame.copy()
        any_hidden = np.zeros(len(out), dtype=bool)
        for column in COUNT_COLUMNS[name]:
            out[column] = out[column].astype("Int64")
            mask = np.fromiter((Cell(name, i, column) in hidden for i in out.index), dtype=bool,
                               count=len(out))
            if mask.any():
                out.loc[mask, column] = pd.NA
                for d in derived.get(name, {}).get(column, ()):
                    if d in out.columns:
                        out.loc[mask, d] = np.nan
            any_hidden |= mask
        out["suppressed"] = any_hidden
        frames[name] = out
    return frames


def _json_key(value: object) -> object:
    value = _key(value)
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _describe(marts: Mapping[str, pd.DataFrame], cell: Cell) -> dict:
    frame = marts[cell.mart]
    row = _json_key(cell.row)
    return {"mart": cell.mart, "row": row, "column": cell.column,
            "key": {k: _json_key(frame.at[cell.row, k]) for k in KEY_COLUMNS[cell.mart]
                    if k in frame.columns}}


def _range_json(low: float, high: float) -> dict:
    return {"low": _int_low(low), "high": None if math.isinf(high) else int(_int_high(high))}


def protect(marts: Mapping[str, pd.DataFrame], min_cell_size: int = 11, *,
            derived: Mapping[str, Mapping[str, Sequence[str]]] = DERIVED_COLUMNS,
            max_candidates: int = 8) -> ReleaseResult:
    """Suppress every count 1..min_cell_size - 1, then more cells until the audit finds none disclosed.

    Disclosed primary cells are taken one at a time; each round suppresses one published
    non-zero cell in a relation with it (else around its component of suppressed cells): the
    smallest of those whose relation binds its range that protects it on its own (at most
    max_candidates tried), else the smallest. Zeros are never suppressed. Raises if a relation
    does not hold on the data (the relations would be wrong) or if a cell stays disclosed.
    """
    relations = collect_relations(marts)
    values = cell_values(marts)
    if broken := [r for r in relations if not r.holds(values)]:
        raise ValueError(f"{len(broken)} relations do not hold on the marts, e.g. {broken[0].family}: "
                         f"{broken[0].terms}")
    protector = _Protector(values, relations, min_cell_size, max_candidates)
    added = protector.run()
    ranges = protector.final_ranges()
    still = sorted(c for c in protector.primary
                   if protector.low_gap(c, ranges[c][0]) or protector.high_gap(ranges[c][1]))
    if still:
        raise RuntimeError(f"disclosure audit: {len(still)} cells still disclosed after protection, "
                           f"e.g. {still[0]}")
    method = ("LP relaxation (scipy.optimize.linprog, HiGHS) per connected component of suppressed "
              "cells; a small count is protected when its range covers [floor, min_cell_size - 1]")
    public = {"min_cell_size": min_cell_size, "method": method, "cells_audited": len(values),
              "relations": len(relations),
              "relations_by_family": dict(sorted(Counter(r.family for r in relations).items())),
              "cells_suppressed": len(protector.hidden), "disclosed_after_protection": len(still)}
    report = {**public, "primary_suppressed": len(protector.primary), "complementary_added": len(added),
              "rounds": len(added),
              "primary_cells": [{**_describe(marts, c), **_range_json(*ranges[c]),
                                 "floor": protector.floor_of(c, ranges[c][0])}
                                for c in sorted(protector.primary)],
              "complementary_cells": [_describe(marts, c) for c in added]}
    return ReleaseResult(suppressed_frames(marts, protector.hidden, derived), report, public,
                         frozenset(protector.primary), tuple(added), ranges)
