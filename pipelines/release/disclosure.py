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
- flow.steps: with_baseline, reached_assessment_window and assessed are each <= enrolled.
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
so each connected component of suppressed cells is solved on its own. All of them live in one
HiGHS model (highspy) over every cell, published cells fixed by their bounds: hiding a cell or
asking about another changes bounds and costs only, and each solve starts from the last basis
(a few simplex iterations instead of an LP built and solved from scratch).

Protection: a primary cell (true count 1..min_cell_size - 1) is protected when its range covers
[floor, min_cell_size - 1], where `floor` is what the pattern of zeros alone says (its minimum
with every non-zero cell hidden). That floor is 1 for nearly every cell; a total of k non-zero
parts is at least k whatever else is hidden (zero is shown), so demanding 1 there could never
be met, and the outsider learns nothing from it that the zeros did not already say.
Complementary cells need no protection of their own. Most sides are proven by a witness: one
LP pushes every cell in question down to 1 (or up to min_cell_size - 1) at once, and a cell
that gets there is protected on that side; only the others need their exact bound. `audit` and
protect's last check give the same answer as the exact range of every cell, for a few LPs.

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
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

if TYPE_CHECKING:  # pandas, scipy and highspy load when the audit runs, not with the definitions
    import highspy
    import pandas as pd
    from scipy.sparse import csc_matrix

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
    "cohort_flow": ("enrolled", "with_baseline", "reached_assessment_window", "assessed", "n_meaningful", "n_minimal",
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
    import pandas as pd

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
        for step in ("with_baseline", "reached_assessment_window", "assessed"):
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


# --- the audit ------------------------------------------------------------------------------------

class _Optimum(NamedTuple):
    value: float  # -inf when unbounded below
    x: np.ndarray  # a minimising solution, one value per cell id (empty unless asked for, or unbounded)
    duals: np.ndarray  # one per relation (likewise)

    def binding(self) -> frozenset[int]:
        """The relations whose dual is not zero: where a wider range must come from."""
        return frozenset(np.flatnonzero(np.abs(self.duals) > _EPS).tolist())


class _System:
    """The relations over every cell, cells by integer id, indexed both ways to find components.

    Ids follow the sorted cells, so ordering ids orders cells (the greedy's tie-breaks stay the
    same); sets of ints and lists instead of Cell tuples keep the many component searches cheap.
    """

    def __init__(self, values: Mapping[Cell, int], relations: Sequence[Relation]):
        self.cells = sorted(values)
        self.id = {c: i for i, c in enumerate(self.cells)}
        self.value = [values[c] for c in self.cells]
        self.relations = list(relations)
        self.terms = [[self.id[c] for c, _ in r.terms] for r in self.relations]
        self.by_cell: list[list[int]] = [[] for _ in self.cells]
        for k, ids in enumerate(self.terms):
            for i in ids:
                self.by_cell[i].append(k)

    def matrix(self) -> csc_matrix:
        """Relations x cells, repeated cells summed."""
        lengths = [len(ids) for ids in self.terms]
        rows = np.repeat(np.arange(len(self.terms)), lengths)
        cols = np.fromiter((i for ids in self.terms for i in ids), dtype=np.int64, count=sum(lengths))
        coefs = np.fromiter((coef for r in self.relations for _, coef in r.terms), dtype=float,
                            count=sum(lengths))
        from scipy.sparse import csc_matrix

        matrix = csc_matrix((coefs, (rows, cols)), shape=(len(self.terms), len(self.cells)))
        matrix.eliminate_zeros()  # a cell repeated with opposite signs
        return matrix

    def component(self, start: int, hidden: Collection[int]) -> tuple[list[int], list[int]]:
        """The hidden cells linked to `start` by relations through hidden cells, and those relations."""
        seen, rels, queue = {start}, set(), [start]
        while queue:
            for k in self.by_cell[queue.pop()]:
                if k in rels:
                    continue
                rels.add(k)
                for i in self.terms[k]:
                    if i in hidden and i not in seen:
                        seen.add(i)
                        queue.append(i)
        return sorted(seen), sorted(rels)

    def components(self, hidden: Collection[int], starts: Iterable[int]) -> list[tuple[list[int], list[int]]]:
        done: set[int] = set()
        found = []
        for start in starts:
            if start not in done:
                cells, rels = self.component(start, hidden)
                done.update(cells)
                found.append((cells, rels))
        return found

    def closed(self, rels: list[int], hidden: Collection[int]) -> bool:
        """True when no published non-zero count enters these relations: then the LP is the zero
        pattern's own (every minimum is its floor) and scaling a solution up keeps it feasible
        (every maximum is inf), so the cells are protected without solving anything."""
        return all(self.relations[k].rhs == 0
                   and all(i in hidden or self.value[i] == 0 for i in self.terms[k]) for k in rels)


_INF = math.inf  # highspy.kHighsInf


class _Model:
    """Every cell a column of one HiGHS LP: published cells fixed to their values, hidden ones in
    [lower, inf).

    Why one model for everything: hiding a cell, asking about another or capping one only
    changes bounds and costs, and each solve starts from the last basis, so most take a few
    simplex iterations (scipy's linprog rebuilt and solved every LP from scratch, ~8 ms each).
    An objective over one component's cells leaves the others where they are, so its optimum is
    that component's own. Presolve is off: a warm start needs the model's own basis, and the
    simplex alone tells an unbounded LP from an infeasible one (ERGO-Code/HiGHS#499).
    """

    def __init__(self, system: _System, hidden: Iterable[int], lower: float):
        self.system, self.lower = system, float(lower)
        self.hidden: set[int] = set()
        a = system.matrix()
        import highspy

        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
        lp.col_cost_ = np.zeros(a.shape[1])
        lp.col_lower_ = lp.col_upper_ = np.asarray(system.value, dtype=float)
        is_eq = np.array([r.sense == "==" for r in system.relations], dtype=bool)
        rhs = np.array([r.rhs for r in system.relations], dtype=float)
        lp.row_lower_, lp.row_upper_ = np.where(is_eq, rhs, -_INF), rhs
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("presolve", "off")
        self.highs.passModel(lp)
        self.hide(hidden)

    def _bounds(self, ids: Sequence[int], lower: Sequence[float] | float,
                upper: Sequence[float] | float) -> None:
        def floats(bound: Sequence[float] | float) -> np.ndarray:
            return np.full(len(ids), bound) if isinstance(bound, float) else np.asarray(bound, dtype=float)

        if ids:
            self.highs.changeColsBounds(len(ids), np.asarray(ids, dtype=np.int32), floats(lower),
                                        floats(upper))

    def hide(self, ids: Iterable[int]) -> None:
        new = [i for i in ids if i not in self.hidden]
        self.hidden.update(new)
        self._bounds(new, self.lower, _INF)

    def show(self, ids: Iterable[int]) -> None:
        gone = [i for i in ids if i in self.hidden]
        self.hidden.difference_update(gone)
        values = [float(self.system.value[i]) for i in gone]
        self._bounds(gone, values, values)

    def minimum(self, costs: Mapping[int, float], caps: Mapping[int, float] | None = None, *,
                with_x: bool = False, with_duals: bool = False) -> _Optimum:
        """Minimise sum(cost * cell) over hidden cells, those in caps also at most their cap. The
        solution and duals are read only when asked for (each is a list copied out of HiGHS)."""
        idx = np.fromiter(costs, dtype=np.int32, count=len(costs))
        self.highs.changeColsCost(len(idx), idx, np.fromiter(costs.values(), dtype=float, count=len(idx)))
        caps = caps or {}
        capped = list(caps)
        self._bounds(capped, self.lower, [caps[i] for i in capped])
        try:
            status = self._run()
            import highspy

            if status == highspy.HighsModelStatus.kUnbounded:
                return _Optimum(-math.inf, np.array([]), np.array([]))
            solution = self.highs.getSolution() if with_x or with_duals else None
            return _Optimum(self.highs.getObjectiveValue(),
                            np.array(solution.col_value if with_x else [], dtype=float),
                            np.array(solution.row_dual if with_duals else [], dtype=float))
        finally:
            self.highs.changeColsCost(len(idx), idx, np.zeros(len(idx)))
            self._bounds(capped, self.lower, _INF)

    def _run(self) -> highspy.HighsModelStatus:
        import highspy

        ok = (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded)
        self.highs.run()
        if self.highs.getModelStatus() not in ok:
            self.highs.clearSolver()  # from scratch, in case the warm start was the trouble
            self.highs.run()
        status = self.highs.getModelStatus()
        if status not in ok:
            raise RuntimeError(f"disclosure LP failed ({self.highs.modelStatusToString(status)}); do "
                               "published cells contradict a relation?")
        return status

    def low(self, cell: int, with_duals: bool = False) -> _Optimum:
        return self.minimum({cell: 1.0}, with_duals=with_duals)

    def high(self, cell: int, cap: float | None = None, with_duals: bool = False) -> _Optimum:
        """The maximum (as a negated minimum), followed only up to cap if given."""
        return self.minimum({cell: -1.0}, None if cap is None else {cell: cap}, with_duals=with_duals)

    def ranges(self, cells: list[int], rels: list[int], targets: list[int]) -> dict[int, tuple[float, float]]:
        """Exact LP range of each target in one component (maximum inf when unbounded)."""
        if not rels:  # nothing links these cells to anything: >= lower, no upper bound
            return {t: (self.lower, math.inf) for t in targets}
        lows: dict[int, float] = {}
        if len(targets) > 1:  # a solution with a cell at its lower bound proves that is its minimum
            x = self.minimum(dict.fromkeys(cells, 1.0), with_x=True).x
            lows = {t: self.lower for t in targets if x[t] <= self.lower + _EPS}
        for t in targets:
            if t not in lows:
                lows[t] = self.low(t).value
        if self.system.closed(rels, self.hidden) and self.lower > 0:  # homogeneous: any solution scales up
            return {t: (lows[t], math.inf) for t in targets}
        return {t: (lows[t], -self.high(t).value) for t in targets}


def feasible_ranges(values: Mapping[Cell, int], shown: Collection[Cell], relations: Sequence[Relation], *,
                    targets: Iterable[Cell] | None = None,
                    lower: float = 1) -> dict[Cell, tuple[float, float]]:
    """LP minimum and maximum of each suppressed cell given everything published.

    `values` holds every cell (those of suppressed cells are not used); `shown` the published
    ones, fixed to their values; every other cell is suppressed and at least `lower` (1: zero is
    always shown). The maximum is inf where nothing bounds the cell. Connected components of
    suppressed cells are solved one at a time (in one model, see _Model).
    """
    shown = set(shown)
    hidden = {c for c in values if c not in shown}
    wanted = sorted(hidden if targets is None else set(targets))
    if missing := [c for c in wanted if c not in hidden]:
        raise ValueError(f"not suppressed, nothing to bound: {missing[:3]}")
    system = _System(values, relations)
    model = _Model(system, (system.id[c] for c in hidden), lower)
    wanted_ids = [system.id[c] for c in wanted]
    wanted_set = set(wanted_ids)
    out: dict[Cell, tuple[float, float]] = {}
    for cells, rels in system.components(model.hidden, wanted_ids):
        found = model.ranges(cells, rels, [i for i in cells if i in wanted_set])
        out.update((system.cells[i], bounds) for i, bounds in found.items())
    return out


def _int_low(value: float) -> float:
    return value if math.isinf(value) else math.ceil(value - _EPS)


def _int_high(value: float) -> float:
    return value if math.isinf(value) else math.floor(value + _EPS)


class _Floors:
    """What the zero pattern alone says: a cell's minimum with every non-zero cell hidden."""

    def __init__(self, system: _System):
        self.system = system
        self.model: _Model | None = None  # built when first needed: most cells never need a floor
        self.known: dict[int, int] = {}

    def __call__(self, cell: int) -> int:
        if self.model is None:
            nonzero = [i for i, v in enumerate(self.system.value) if v != 0]
            self.model = _Model(self.system, nonzero, 1)
            # cells at 1 here have floor 1: one LP for most
            x = self.model.minimum(dict.fromkeys(nonzero, 1.0), with_x=True).x
            self.known = {i: 1 for i in nonzero if x[i] <= 1 + _EPS}
        if cell not in self.known:
            self.known[cell] = int(_int_low(self.model.low(cell).value))
        return self.known[cell]


# --- protection -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReleaseResult:
    """What protect() gives: release frames, the audit report, and which cells were hidden why.

    `report` is for the clinic: it names the primary cells, and knowing which suppressed cells
    are below min_cell_size (or how many are not: with none complementary, every hidden cell is
    at most min_cell_size - 1) narrows them for an outsider. Only `public_report` (the threshold,
    the relations, how many cells are hidden, and that none is disclosed) may leave the clinic.
    `ranges` are the final LP ranges of the primary cells, solved when first asked for: protection
    is proven without them (most cells by witness solutions), and nothing in a run needs them.
    """

    frames: dict[str, pd.DataFrame]
    report: dict
    public_report: dict
    primary: frozenset[Cell]
    complementary: tuple[Cell, ...]
    values: Mapping[Cell, int] = field(repr=False)
    relations: Sequence[Relation] = field(repr=False)

    @cached_property
    def ranges(self) -> dict[Cell, tuple[float, float]]:
        hidden = self.primary.union(self.complementary)
        return feasible_ranges(self.values, [c for c in self.values if c not in hidden], self.relations,
                               targets=self.primary)


class _Protector:
    """Greedy complementary suppression until every primary cell's range covers [floor, top].

    Works on cell ids of its _System; `hidden` (default: the primary cells) is the suppression
    pattern to start from, and the primary cells are the small counts in it.
    """

    def __init__(self, values: Mapping[Cell, int], relations: Sequence[Relation], min_cell_size: int,
                 max_candidates: int, hidden: Collection[Cell] | None = None,
                 rated: Collection[Cell] = ()):
        self.system = _System(values, relations)
        # Counts that published rates derive from (a rate's numerator or denominator): hiding one
        # hides its rates and intervals too, so a complement prefers other cells.
        self.rated = {self.system.id[c] for c in rated if c in self.system.id}
        self.top = min_cell_size - 1
        self.max_candidates = max_candidates
        small = {i for i, v in enumerate(self.system.value) if 0 < v < min_cell_size}
        ids = self.system.id
        start = small if hidden is None else {ids[c] for c in hidden if c in ids}
        self.primary = small & start
        self.model = _Model(self.system, start, 1)
        self.floor = _Floors(self.system)

    @property
    def hidden(self) -> set[int]:
        return self.model.hidden

    def low_gap(self, cell: int, low: float) -> int:
        low_int = _int_low(low)
        return 0 if low_int <= 1 else int(max(0, low_int - self.floor(cell)))  # floor >= 1: skip its LP

    def high_gap(self, high: float) -> int:
        return int(max(0, self.top - _int_high(high)))

    def needs_lp(self, rels: list[int]) -> bool:
        """False for a component linked to nothing, or to nothing published but zeros: its ranges
        are [floor, inf) and every cell in it is protected."""
        return bool(rels) and not self.system.closed(rels, self.hidden)

    def certify(self, pending: Mapping[int, tuple[bool, bool]]) -> dict[int, tuple[bool, bool]]:
        """Drop the sides that witness solutions prove: one LP pushes every pending cell down to 1
        (or up to top) at once, and any cell that gets there is proven; repeated on the rest
        while it proves some. The cells may lie in any components: one LP serves them all, as
        components are independent. Returns the sides (low, high) still unproven."""
        sides = {c: list(s) for c, s in pending.items()}
        for low in (True, False):
            todo = [c for c, (lo, hi) in sides.items() if (lo if low else hi)]
            while todo:
                if low:
                    x = self.model.minimum(dict.fromkeys(todo, 1.0), with_x=True).x
                else:
                    x = self.model.minimum(dict.fromkeys(todo, -1.0), dict.fromkeys(todo, float(self.top)),
                                           with_x=True).x
                proven = {c for c in todo if (x[c] <= 1 + _EPS if low else x[c] >= self.top - _EPS)}
                for c in proven:
                    sides[c][0 if low else 1] = False
                if not proven:
                    break
                todo = [c for c in todo if c not in proven]
        return {c: (lo, hi) for c, (lo, hi) in sides.items() if lo or hi}

    def unproven(self) -> dict[int, tuple[bool, bool]]:
        """The sides (low, high) of primary cells that certify() does not prove."""
        pending: dict[int, tuple[bool, bool]] = {}
        for cells, rels in self.system.components(self.hidden, sorted(self.primary)):
            if self.needs_lp(rels):
                pending.update((c, (True, True)) for c in cells if c in self.primary)
        return self.certify(pending)

    def disclosed(self) -> list[int]:
        """The primary cells whose range does not cover [floor, top]: witnesses settle most sides
        in a few LPs, exact bounds the rest (the same answer as the exact range of every cell)."""
        return sorted(c for c, (low, high) in self.unproven().items()
                      if any(self.side_bounds(c, low, high)[:2]))

    def side_bounds(self, target: int, low: bool, high: bool,
                    with_binding: bool = False) -> tuple[int, int, frozenset[int]]:
        """The target's gaps below and above (for the sides asked) and, if asked for, the
        relations binding them."""
        if not self.system.by_cell[target]:  # in no relation: [1, inf)
            return 0, 0, frozenset()
        low_gap, high_gap, binding = 0, 0, frozenset()
        if low:
            found = self.model.low(target, with_duals=with_binding)
            low_gap, binding = self.low_gap(target, found.value), binding | found.binding()
        if high:
            found = self.model.high(target, cap=self.top, with_duals=with_binding)
            high_gap, binding = self.high_gap(-found.value), binding | found.binding()
        return low_gap, high_gap, binding

    def protects(self, candidates: Collection[int], target: int, low: bool, high: bool) -> bool:
        """Would hiding these cells as well protect the target?"""
        extra = [c for c in candidates if c not in self.hidden]
        self.model.hide(extra)
        try:
            return not (low and self.side_bounds(target, True, False)[0]
                        or high and self.side_bounds(target, False, True)[1])
        finally:
            self.model.show(extra)

    def complement_for(self, target: int, low: bool, high: bool,
                       binding: frozenset[int]) -> tuple[int, bool]:
        """The cell to suppress next so that `target` widens: a published non-zero cell in a
        relation with it (else around its component), the smallest that protects it on its own,
        else the smallest; cells in relations that bind its range (non-zero dual) come first.
        Also says whether it is known to protect the target (then nothing is left to check)."""
        _, rels = self.system.component(target, self.hidden)
        terms, value = self.system.terms, self.system.value
        direct = {i for k in self.system.by_cell[target] for i in terms[k]}
        tight = {i for k in binding.intersection(rels) for i in terms[k]}
        around = {i for k in rels for i in terms[k]}
        pool = sorted((i for i in around if i not in self.hidden and value[i] > 0),
                      key=lambda i: (i not in direct, i not in tight, value[i] * (RATED_COST if i in self.rated else 1), i))
        if not pool:
            raise RuntimeError(f"{self.system.cells[target]} is disclosed and nothing around it can be "
                               "suppressed")
        # Relaxing a relation whose dual is zero leaves the bound where it is: only try binding
        # ones. Hiding more only widens, so if all of them at once do not protect, none alone does.
        trials = [i for i in pool if i in tight][:self.max_candidates]
        if len(trials) > 1 and not self.protects(trials, target, low, high):
            return pool[0], False
        return next(((i, True) for i in trials if self.protects([i], target, low, high)), (pool[0], False))

    def run(self) -> list[int]:
        """Protect the primary cells one at a time; returns the complementary cells in the order
        added. Hiding more only widens ranges, so a cell once protected stays so."""
        pending = self.unproven()
        added: list[int] = []
        while pending:
            target = min(pending)
            low, high = pending.pop(target)
            needed_complements, protected = False, False
            while not protected:
                low_gap, high_gap, binding = self.side_bounds(target, low, high, with_binding=True)
                low, high = low_gap > 0, high_gap > 0
                if not (low or high):
                    break
                pick, protected = self.complement_for(target, low, high, binding)
                self.model.hide([pick])
                added.append(pick)
                needed_complements = True
            if needed_complements:  # what was hidden for it may have protected others in its component
                cells, rels = self.system.component(target, self.hidden)
                around = {c: pending.pop(c) for c in cells if c in pending}
                pending.update(self.certify(around) if self.needs_lp(rels) else {})
        return added


def audit(marts: Mapping[str, pd.DataFrame], hidden: Collection[Cell], min_cell_size: int = 11) -> list[Cell]:
    """The small counts a release gives away, given its true marts and which cells it hides:
    those shown, and those hidden whose range an outsider can narrow below [floor,
    min_cell_size - 1]. Empty for a safe release; the blocking check of the release bundle.
    Raises if a relation does not hold on the marts or a hidden cell is zero (a release shows
    every zero, and the audit takes a hidden cell to be at least 1)."""
    relations, values = collect_relations(marts), cell_values(marts)
    if broken := [r for r in relations if not r.holds(values)]:
        raise ValueError(f"{len(broken)} relations do not hold on the marts, e.g. {broken[0].family}")
    hidden = set(hidden)
    if zeros := sorted(c for c in hidden if values.get(c) == 0):
        raise ValueError(f"{len(zeros)} hidden cells are zero, e.g. {zeros[0]}: a release shows every zero")
    shown_small = sorted(c for c, v in values.items() if 0 < v < min_cell_size and c not in hidden)
    protector = _Protector(values, relations, min_cell_size, 0, hidden)
    return shown_small + [protector.system.cells[i] for i in protector.disclosed()]


def suppressed_frames(marts: Mapping[str, pd.DataFrame], hidden: Collection[Cell],
                      derived: Mapping[str, Mapping[str, Sequence[str]]] = DERIVED_COLUMNS,
                      ) -> dict[str, pd.DataFrame]:
    """Copies of the marts with hidden counts <NA> (Int64), what derives from them NaN, and
    a `suppressed` flag per row."""
    import pandas as pd

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


class _Describer:
    """A cell for the clinic's report: its mart, row label, column and the values naming its row
    (read once per mart: looking each cell's row up in its frame was a tenth of a second)."""

    def __init__(self, marts: Mapping[str, pd.DataFrame]):
        self.keys: dict[str, dict] = {}
        for name, frame in marts.items():
            columns = [k for k in KEY_COLUMNS[name] if k in frame.columns]
            values = [[_json_key(v) for v in frame[k].tolist()] for k in columns]
            self.keys[name] = {label: {k: column[n] for k, column in zip(columns, values, strict=True)}
                               for n, label in enumerate(frame.index)}

    def __call__(self, cell: Cell) -> dict:
        return {"mart": cell.mart, "row": _json_key(cell.row), "column": cell.column,
                "key": self.keys[cell.mart][cell.row]}


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
    rated = [c for c in values if derived.get(c.mart, {}).get(c.column)]
    protector = _Protector(values, relations, min_cell_size, max_candidates, rated=rated)
    cell = protector.system.cells
    added = [cell[i] for i in protector.run()]
    if still := [cell[i] for i in protector.disclosed()]:
        raise RuntimeError(f"disclosure audit: {len(still)} cells still disclosed after protection, "
                           f"e.g. {still[0]}")
    method = ("LP relaxation (HiGHS) per connected component of suppressed cells; a small count is "
              "protected when its range covers [floor, min_cell_size - 1]")
    public = {"min_cell_size": min_cell_size, "method": method, "cells_audited": len(values),
              "relations": len(relations),
              "relations_by_family": dict(sorted(Counter(r.family for r in relations).items())),
              "cells_suppressed": len(protector.hidden), "disclosed_after_protection": len(still)}
    primary = sorted(cell[i] for i in protector.primary)
    describe = _Describer(marts)
    report = {**public, "primary_suppressed": len(primary), "complementary_added": len(added),
              "rounds": len(added), "primary_cells": [describe(c) for c in primary],
              "complementary_cells": [describe(c) for c in added]}
    hidden = [cell[i] for i in protector.hidden]
    return ReleaseResult(suppressed_frames(marts, hidden, derived), report, public, frozenset(primary),
                         tuple(added), values, relations)
