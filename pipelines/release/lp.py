"""The LP audit engine (HiGHS): the range of each hidden cell under every relation (see disclosure.py)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

import highspy
import numpy as np
from scipy.sparse import csc_matrix

from pipelines.release.relations import Cell, Relation

_EPS = 1e-6  # LP tolerance when rounding bounds to the integers they stand for


class _Optimum(NamedTuple):
    value: float  # -inf when unbounded below
    x: np.ndarray  # a minimising solution, one value per cell id (empty unless asked for, or unbounded)
    duals: np.ndarray  # one per relation (likewise)

    def binding(self) -> frozenset[int]:
        """The relations whose dual is not zero: where a wider range must come from."""
        return frozenset(np.flatnonzero(np.abs(self.duals) > _EPS).tolist())


class _Certificate(NamedTuple):
    """A side's optimum and its dual bound: constant + sum over cells of `published` or `hidden`
    (each cell's term as it is published or hidden; -inf where hiding it unbounds the side)."""

    value: float
    constant: float
    published: np.ndarray
    hidden: np.ndarray


class _System:
    """The relations over every cell, cells by integer id, indexed both ways to find components.

    Ids follow the sorted cells, so ordering ids orders cells (the greedy's tie-breaks stay the
    same); sets of ints and lists instead of Cell tuples keep the many component searches cheap.
    """

    def __init__(self, values: Mapping[Cell, int], relations: Sequence[Relation], free: Collection[Cell] = ()):
        self.cells = sorted(values)
        self.id = {c: i for i, c in enumerate(self.cells)}
        self.value = [values[c] for c in self.cells]
        # Differences between releases: at least 0 when hidden (the outsider may know their sign;
        # each is oriented so its true value is >= 0), where any other hidden cell is at least 1.
        self.free = {self.id[c] for c in free if c in self.id}
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


_INF = highspy.kHighsInf


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
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
        lp.col_cost_ = np.zeros(a.shape[1])
        lp.col_lower_ = lp.col_upper_ = np.asarray(system.value, dtype=float)
        is_eq = np.array([r.sense == "==" for r in system.relations], dtype=bool)
        rhs = np.array([r.rhs for r in system.relations], dtype=float)
        lp.row_lower_, lp.row_upper_ = np.where(is_eq, rhs, -_INF), rhs
        self.row_lower, self.row_upper = np.asarray(lp.row_lower_, dtype=float), np.asarray(rhs, dtype=float)
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

    def lowers(self, ids: Sequence[int]) -> list[float]:
        """The lower bound of each hidden cell: `lower`, or 0 for a difference between releases."""
        return [0.0 if i in self.system.free else self.lower for i in ids]

    def hide(self, ids: Iterable[int]) -> None:
        new = [i for i in ids if i not in self.hidden]
        self.hidden.update(new)
        self._bounds(new, self.lowers(new), _INF)

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
        self._bounds(capped, self.lowers(capped), [caps[i] for i in capped])
        try:
            status = self._run()
            if status == highspy.HighsModelStatus.kUnbounded:
                return _Optimum(-math.inf, np.array([]), np.array([]))
            solution = self.highs.getSolution() if with_x or with_duals else None
            return _Optimum(self.highs.getObjectiveValue(),
                            np.array(solution.col_value if with_x else [], dtype=float),
                            np.array(solution.row_dual if with_duals else [], dtype=float))
        finally:
            self.highs.changeColsCost(len(idx), idx, np.zeros(len(idx)))
            self._bounds(capped, self.lowers(capped), _INF)

    def _run(self) -> highspy.HighsModelStatus:
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

    def certificate(self, cell: int, low: bool, cap: float) -> _Certificate:
        """The optimum of one side of a cell (its minimum, or its maximum as a negated minimum
        followed up to cap) with the dual certificate that bounds it under any other pattern.

        Why: for duals u (rows) and reduced costs d (cells), c.x = u.Ax + d.x for every x, so the
        optimum under any bounds is at least the sum of each term's minimum over its range. A cell
        published contributes d * value, hidden d * its lower bound (d > 0) or -inf (d < 0): how
        much hiding it would lower the bound is what a pattern must add up to (a Benders cut)."""
        system = self.system
        costs = {cell: 1.0 if low else -1.0}
        caps = {} if low else {cell: cap}
        self.highs.changeColsCost(1, np.array([cell], dtype=np.int32), np.array([costs[cell]]))
        self._bounds(list(caps), self.lowers(list(caps)), list(caps.values()))
        try:
            if self._run() == highspy.HighsModelStatus.kUnbounded:
                return _Certificate(-math.inf, 0.0, np.array([]), np.array([]))
            solution = self.highs.getSolution()
            value = self.highs.getObjectiveValue()
        finally:
            self.highs.changeColsCost(1, np.array([cell], dtype=np.int32), np.zeros(1))
            self._bounds(list(caps), self.lowers(list(caps)), _INF)
        u = np.asarray(solution.row_dual, dtype=float)
        d = np.asarray(solution.col_dual, dtype=float)
        u[np.abs(u) < _EPS * 1e-3] = 0.0
        d[np.abs(d) < _EPS * 1e-3] = 0.0
        with np.errstate(invalid="ignore"):
            rows = np.where(u > 0, u * self.row_lower, np.where(u < 0, u * self.row_upper, 0.0))
        if np.isnan(rows).any() or np.isinf(rows).any():
            return _Certificate(value, -math.inf, np.array([]), np.array([]))
        published = d * np.asarray(system.value, dtype=float)
        lower = np.asarray(self.lowers(range(len(system.cells))), dtype=float)
        upper = np.full(len(system.cells), math.inf)
        upper[cell] = math.inf if low else cap
        with np.errstate(invalid="ignore"):
            hidden = np.where(d > 0, d * lower, np.where(d < 0, d * upper, 0.0))
        return _Certificate(value, float(rows.sum()), published, np.nan_to_num(hidden, nan=0.0, neginf=-math.inf))

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
    """What the zero pattern alone says: a cell's minimum with every non-zero cell hidden (but
    `sent`: what earlier releases showed, which a new release cannot take back)."""

    def __init__(self, system: _System, sent: Collection[int] = ()):
        self.system = system
        self.sent = set(sent)
        self.model: _Model | None = None  # built when first needed: most cells never need a floor
        self.known: dict[int, int] = {}

    def __call__(self, cell: int) -> int:
        if self.model is None:
            nonzero = [i for i, v in enumerate(self.system.value) if v != 0 and i not in self.sent]
            self.model = _Model(self.system, nonzero, 1)
            # cells at 1 here have floor 1: one LP for most
            x = self.model.minimum(dict.fromkeys(nonzero, 1.0), with_x=True).x
            self.known = {i: 1 for i in nonzero if x[i] <= 1 + _EPS}
        if cell not in self.known:
            self.known[cell] = int(_int_low(self.model.low(cell).value))
        return self.known[cell]

