"""Protection: complementary suppression until no small count can be pinned (see disclosure.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import highspy
import numpy as np
import pandas as pd

from pipelines.release.frames import Describer, hidden_cells, suppressed_frames
from pipelines.release.grain import with_pooled_rows
from pipelines.release.lp import _EPS, _Floors, _int_high, _int_low, _Model, _System, feasible_ranges
from pipelines.release.relations import (
    COUNT_COLUMNS,
    DERIVED_COLUMNS,
    KEY_COLUMNS,
    Cell,
    Relation,
    _keys,
    cell_values,
    collect_relations,
)

RATED_COST = 3  # a count rates derive from costs this many times its value as a complement


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
                 rated: Collection[Cell] = (), free: Collection[Cell] = (), locked: Collection[Cell] = (),
                 sent: Collection[Cell] = ()):
        self.system = _System(values, relations, free)
        # Cells that may never be hidden: what earlier releases showed, and what a release promises.
        self.locked = {self.system.id[c] for c in locked if c in self.system.id}
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
        # The floor: what the zeros, and what earlier releases showed (`sent`), already say.
        self.floor = _Floors(self.system, {ids[c] for c in sent if c in ids})

    @property
    def hidden(self) -> set[int]:
        return self.model.hidden

    def low_gap(self, cell: int, low: float) -> int:
        low_int = _int_low(low)
        if low_int <= 1:  # floor >= 1: skip its LP
            return 0
        return int(max(0, low_int - self.floor(cell)))

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
        pool = sorted((i for i in around if i not in self.hidden and i not in self.locked and value[i] > 0),
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

    def still_protected(self, cells: Collection[int]) -> bool:
        """Are these primary cells all protected under the current pattern?"""
        pending = self.certify({c: (True, True) for c in cells})
        return not any(any(self.side_bounds(c, low, high)[:2]) for c, (low, high) in pending.items())

    def prune(self, added: Sequence[int]) -> list[int]:
        """Publish again every complementary cell that no primary cell needs (the greedy adds
        cells one target at a time; a later one often makes an earlier one redundant): the most
        valuable first (largest, rates derived from it). Returns the cells kept hidden."""
        kept = set(added)
        worth = {i: self.system.value[i] * (RATED_COST if i in self.rated else 1) for i in added}
        for c in sorted(added, key=lambda i: (-worth[i], i)):
            cells, _ = self.system.component(c, self.hidden)
            around = [i for i in cells if i in self.primary]
            self.model.show([c])
            if self.still_protected(around):
                kept.discard(c)
            else:
                self.model.hide([c])
        return [c for c in added if c in kept]

    def side_cut(self, target: int, low: bool, variable: Sequence[int]) -> tuple[np.ndarray, float] | None:
        """A linear condition every protecting pattern meets, from the dual certificate of the
        target's side under the current pattern: sum(reduction * hidden) >= needed over the
        `variable` cells (others keep their current state). None when the side is protected."""
        cert = self.model.certificate(target, low, float(self.top))
        if cert.published.size == 0:
            return None
        # Protected: minimum <= max(floor, 1) (low), or maximum >= top (high, as -maximum <= -top).
        threshold = (max(self.floor(target), 1) if low else -self.top) + _EPS
        if cert.value <= threshold:
            return None
        state = np.zeros(len(cert.published), dtype=bool)
        state[list(self.hidden)] = True
        fixed = np.where(state, cert.hidden, cert.published)
        fixed[variable] = cert.published[variable]
        needed = cert.constant + fixed.sum() - threshold
        reduction = cert.published[variable] - cert.hidden[variable]
        return np.minimum(np.nan_to_num(reduction, posinf=needed), needed), needed

    def lower_bound(self, rounds: int) -> int:
        """A proven lower bound on how many more cells any protecting pattern hides: a master
        integer program (fewest cells) over the cells that may be hidden, cut by the dual
        certificate of every side the LP audit finds disclosed under its last answer (Fischetti
        and Salazar's Benders scheme, tau-Argus' optimal method), for `rounds` rounds. Every
        protecting pattern meets every cut, so the master's bound holds; it is the optimum if a
        round finds nothing disclosed. Leaves the model at the master's last pattern."""
        base = set(self.hidden)
        value = self.system.value
        variable = [i for i in range(len(value)) if value[i] > 0 and i not in base and i not in self.locked]
        if not variable:
            return 0
        master = highspy.Highs()
        master.setOptionValue("output_flag", False)
        ids = np.arange(len(variable), dtype=np.int32)
        master.addVars(len(variable), np.zeros(len(variable)), np.ones(len(variable)))
        master.changeColsCost(len(variable), ids, np.ones(len(variable)))
        master.changeColsIntegrality(len(variable), ids, np.full(len(variable), highspy.HighsVarType.kInteger))
        bound = 0
        for _ in range(rounds):
            sides = [(c, side) for c, (low, high) in self.unproven().items()
                     for side, asked in ((True, low), (False, high)) if asked]
            cuts = [cut for c, side in sides if (cut := self.side_cut(c, side, variable)) is not None]
            if not cuts:
                return len(self.hidden - base)
            for coefficients, needed in cuts:
                nonzero = np.flatnonzero(coefficients > _EPS)
                master.addRow(float(needed), highspy.kHighsInf, len(nonzero), nonzero.astype(np.int32),
                              coefficients[nonzero])
            master.run()
            if master.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                raise RuntimeError(f"the master problem stopped: {master.modelStatusToString(master.getModelStatus())}")
            bound = max(bound, int(_int_low(master.getInfo().mip_dual_bound)))
            chosen = {variable[k] for k, y in enumerate(master.getSolution().col_value) if y > 0.5}
            self.model.show(self.hidden - base - chosen)
            self.model.hide(chosen)
        return bound

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
    describe = Describer(marts)
    report = {**public, "primary_suppressed": len(primary), "complementary_added": len(added),
              "rounds": len(added), "primary_cells": [describe(c) for c in primary],
              "complementary_cells": [describe(c) for c in added]}
    hidden = [cell[i] for i in protector.hidden]
    return ReleaseResult(suppressed_frames(marts, hidden, derived), report, public, frozenset(primary),
                         tuple(added), values, relations)


def complement_lower_bound(marts: Mapping[str, pd.DataFrame], min_cell_size: int = 11, rounds: int = 25) -> int:
    """How many cells besides the counts 1..min_cell_size - 1 any safe suppression of these
    marts must hide, at least (proven; see _Protector.lower_bound): how far the greedy is from
    the best suppression can do, and what share of cells suppression can publish at most."""
    protector = _Protector(cell_values(marts), collect_relations(marts), min_cell_size, 0)
    return protector.lower_bound(rounds)


# --- a release among releases -----------------------------------------------------------------------

NEW = "new"  # the tag of the release being made, among the ledger's ids
REFUSE_BELOW_SHARE = 0.25  # a release showing fewer count cells than this is "hiding nearly everything"
# What a release always shows: every category's count over all patients and their denominator, so
# each category's all-patients share is published. Never chosen to hide another cell; a release
# where one of them is itself small is refused. (The all-patients totals may be hidden: with a
# small not-assessable count they would pin it.)
_SHARES = ("n_evaluable", "n_meaningful", "n_minimal", "n_intolerant")
ALWAYS_SHOWN = {"response_by_indication": (("level", "all"), _SHARES),
                "cohort_flow": (("indication", "all"), _SHARES[1:])}


class Refused(Exception):
    """A release that cannot be made safe: why, and how many more patients it needs (None: unknown)."""

    def __init__(self, reason: str, needed: int | None):
        super().__init__(reason)
        self.reason, self.needed = reason, needed


class History(Protocol):
    release_id: str
    true_marts: Mapping[str, pd.DataFrame]
    released: Mapping[str, pd.DataFrame]
    patients: pd.DataFrame


def _tagged(cell: Cell, tag: str) -> Cell:
    return Cell(f"{tag}/{cell.mart}", cell.row, cell.column)


def _untagged(cell: Cell) -> Cell:
    return Cell(cell.mart.split("/", 1)[1], cell.row, cell.column)


def _rows_by_key(frame: pd.DataFrame, mart: str) -> dict[tuple, object]:
    return dict(zip(_keys(frame, KEY_COLUMNS[mart]), frame.index, strict=True))


def _differences(a: str, marts_a: Mapping[str, pd.DataFrame], b: str, marts_b: Mapping[str, pd.DataFrame],
                 values: dict[Cell, int]) -> tuple[list[Relation], list[Cell]]:
    """One cell per count that two releases both describe (a row missing in one counts 0): the
    difference of the two, the count of the patients added or changed between them in that
    cell. Oriented so that its true value is >= 0, and at least 0 in the LP: the safe side is
    to assume the outsider knows whether a count went up or down."""
    relations, cells = [], []
    for mart in marts_b:
        rows_a, rows_b = _rows_by_key(marts_a[mart], mart), _rows_by_key(marts_b[mart], mart)
        for n, key in enumerate(sorted(set(rows_a) | set(rows_b), key=repr)):
            for column in COUNT_COLUMNS[mart]:
                old = _tagged(Cell(mart, rows_a[key], column), a) if key in rows_a else None
                new = _tagged(Cell(mart, rows_b[key], column), b) if key in rows_b else None
                diff = (values[new] if new else 0) - (values[old] if old else 0)
                sign = 1 if diff >= 0 else -1
                cell = Cell(f"{b}-{a}/{mart}", n, column)
                values[cell] = abs(diff)
                terms = [(cell, -sign), *([(new, 1)] if new else []), *([(old, -1)] if old else [])]
                relations.append(Relation(tuple(terms), "==", 0, "releases.difference"))
                cells.append(cell)
    return relations, cells


def _always_shown(marts: Mapping[str, pd.DataFrame]) -> list[Cell]:
    return [Cell(mart, i, c) for mart, ((column, value), counts) in ALWAYS_SHOWN.items() if mart in marts
            for i in marts[mart].index[marts[mart][column].eq(value).fillna(False).astype(bool)]
            for c in counts]


def utility(marts: Mapping[str, pd.DataFrame], hidden: Collection[Cell]) -> dict:
    """What a release carries: count cells published (exact) of all, per mart, and whether every
    category's all-patients share is published."""
    hidden = set(hidden)
    per_mart = {}
    for mart, frame in marts.items():
        total = len(frame) * len(COUNT_COLUMNS[mart])
        shown = total - sum(1 for c in hidden if c.mart == mart)
        per_mart[mart] = {"cells": total, "published": shown}
    cells = sum(m["cells"] for m in per_mart.values())
    published = sum(m["published"] for m in per_mart.values())
    shares = [c for c in _always_shown(marts) if c.mart == "response_by_indication"]
    return {"count_cells": cells, "published_exact": published,
            "published_share": round(published / cells, 4) if cells else 1.0,
            "all_patients_shares_published": bool(shares) and not any(c in hidden for c in shares),
            "by_mart": per_mart, "perturbed": 0, "error_bound": 0}


def _needed_for_all_patients(marts: Mapping[str, pd.DataFrame], min_cell_size: int) -> int | None:
    small = [int(marts[m].loc[c.row, c.column]) for c in _always_shown(marts) for m in [c.mart]
             if 0 < int(marts[m].loc[c.row, c.column]) < min_cell_size]
    return min_cell_size - min(small) if small else None


def _small_moves_of_shown(marts: Mapping[str, pd.DataFrame], history: Sequence[History],
                          min_cell_size: int) -> list[tuple[str, str, int]]:
    """(release, column, how many) where an always-shown count moved by 1..min_cell_size - 1
    since an earlier release: both releases show it, so the move is pinned."""
    found = []
    for earlier in history:
        for cell in _always_shown(marts):
            rows = _rows_by_key(earlier.true_marts[cell.mart], cell.mart)
            key = _keys(marts[cell.mart].loc[[cell.row]], KEY_COLUMNS[cell.mart])[0]
            before = int(earlier.true_marts[cell.mart].at[rows[key], cell.column]) if key in rows else 0
            moved = abs(int(marts[cell.mart].at[cell.row, cell.column]) - before)
            if 0 < moved < min_cell_size:
                found.append((earlier.release_id, f"{cell.mart}.{cell.column}", moved))
    return found


def protect_release(marts: Mapping[str, pd.DataFrame], min_cell_size: int = 11, *,
                    history: Sequence[History] = (), patients: pd.DataFrame | None = None,
                    derived: Mapping[str, Mapping[str, Sequence[str]]] = DERIVED_COLUMNS,
                    max_candidates: int = 8, prune: bool = True) -> ReleaseResult:
    """The next release, protected together with every earlier one; raises Refused.

    One LP system holds every release's cells (each release's own relations), and for every
    pair of releases one difference cell per count: the count of the patients added or changed
    between them there, a primary cell like any other when it is 1..min_cell_size - 1 (its range
    must cover [1, min_cell_size - 1]). Earlier releases' cells are fixed as they were sent
    (shown or hidden); only the new release's cells can be hidden, and never its all-patients
    rows. Refused: when 1..min_cell_size - 1 patients were added or changed since the last
    release (their count over all patients would be pinned by the all-patients rows), when an
    all-patients count is itself small, when protection needs an all-patients cell, or when
    fewer than REFUSE_BELOW_SHARE of the count cells would be left. `prune`: publish again the
    complementary cells no small count needs (more published, some tens of seconds more).
    """
    from pipelines.release.ledger import changed_patients

    changed = None
    if history and patients is not None:
        changed = changed_patients(history[-1].patients, patients)
        if changed == 0:
            raise Refused(f"no patient was added or changed since release {history[-1].release_id}: a release of "
                          "the same data adds nothing, and two differently protected releases of it could "
                          f"reveal each other's hidden cells. Wait for at least {min_cell_size} new or changed "
                          "patients.", min_cell_size)
        if 0 < changed < min_cell_size:
            raise Refused(f"only {changed} patient(s) were added or changed since release {history[-1].release_id}: "
                          f"the difference of the two releases' all-patients counts would show a group of fewer "
                          f"than {min_cell_size}. Wait for {min_cell_size - changed} more new or changed "
                          "patients.", min_cell_size - changed)
    if small_moves := _small_moves_of_shown(marts, history, min_cell_size):
        release_id, column, moved = small_moves[0]
        needed = max(min_cell_size - m for _, _, m in small_moves)
        raise Refused(f"since release {release_id}, {moved} patient(s) joined or left `{column}` over all patients: "
                      "every release publishes each category's all-patients count, so the difference would show "
                      f"that group of fewer than {min_cell_size}. It needs at least {needed} more new or changed "
                      "patients in that category (each category the group touches needs "
                      f"{min_cell_size} or more).", needed)
    if (needed := _needed_for_all_patients(marts, min_cell_size)) is not None:
        raise Refused(f"an all-patients count is below {min_cell_size}: the release could not publish "
                      f"every category's share over all patients. It needs at least {needed} more patients "
                      "in that category.", needed)
    # An earlier release made before a mart's release grain was declared is seen at the grain too.
    releases = [(h.release_id, *with_pooled_rows(h.true_marts, h.released)) for h in history] + [(NEW, marts, None)]
    values: dict[Cell, int] = {}
    relations: list[Relation] = []
    start: set[Cell] = set()
    locked = {_tagged(c, NEW) for c in _always_shown(marts)}
    sent: set[Cell] = set()  # what earlier releases showed
    free: list[Cell] = []
    for tag, true, sent_frames in releases:
        own = cell_values(true)
        values.update((_tagged(c, tag), v) for c, v in own.items())
        relations += [Relation(tuple((_tagged(c, tag), k) for c, k in r.terms), r.sense, r.rhs, r.family)
                      for r in collect_relations(true)]
        if sent_frames is None:
            start.update(_tagged(c, tag) for c, v in own.items() if 0 < v < min_cell_size)
        else:
            hidden = {_tagged(c, tag) for c in hidden_cells(sent_frames)}
            start |= hidden
            sent.update(_tagged(c, tag) for c in own if _tagged(c, tag) not in hidden)
    locked |= sent
    for j, (b, marts_b, _) in enumerate(releases):
        for a, marts_a, _ in releases[:j]:
            links, cells = _differences(a, marts_a, b, marts_b, values)
            relations += links
            free += cells
    start.update(free)
    if broken := [r for r in relations if not r.holds(values)]:
        raise ValueError(f"{len(broken)} relations do not hold on the marts, e.g. {broken[0].family}")
    locked -= {c for c in locked if 0 < values[c] < min_cell_size}
    rated = [_tagged(c, NEW) for c in cell_values(marts) if derived.get(c.mart, {}).get(c.column)]
    protector = _Protector(values, relations, min_cell_size, max_candidates, start, rated, free, locked, sent)
    cell = protector.system.cells
    try:
        found = protector.run()
        added = [cell[i] for i in (protector.prune(found) if prune else found)]
        still = [cell[i] for i in protector.disclosed()]
    except RuntimeError as error:
        raise Refused(f"the release cannot be protected without hiding its all-patients rows or changing what "
                      f"earlier releases showed ({error}). More patients in the small groups would help.",
                      None) from None
    if still:
        raise Refused(f"{len(still)} small counts stay disclosed across the releases in the ledger.", None)
    hidden_new = sorted(_untagged(c) for i in protector.hidden for c in [cell[i]] if c.mart.startswith(f"{NEW}/"))
    use = utility(marts, hidden_new)
    if use["published_share"] < REFUSE_BELOW_SHARE:
        raise Refused(f"only {use['published_share']:.0%} of the count cells could be published safely "
                      f"(below {REFUSE_BELOW_SHARE:.0%}): the release would hide nearly everything.", None)
    method = ("cell suppression with a linear-programming audit (HiGHS) over this release and every earlier "
              "release in the ledger at once, the differences between releases included; a count of 1 to "
              f"{min_cell_size - 1} patients (also of the patients added or changed between two releases) is "
              f"protected when an outsider's range for it covers [floor, {min_cell_size - 1}]; a release after "
              f"fewer than {min_cell_size} added or changed patients is refused")
    public = {"min_cell_size": min_cell_size, "method": method, "releases_protected_together": len(releases),
              "cells_audited": len(values), "relations": len(relations),
              "relations_by_family": dict(sorted(Counter(r.family for r in relations).items())),
              "cells_suppressed": len(hidden_new), "disclosed_after_protection": 0, "utility": use}
    primary = sorted(_untagged(cell[i]) for i in protector.primary if cell[i].mart.startswith(f"{NEW}/"))
    added_new = [_untagged(c) for c in added if c.mart.startswith(f"{NEW}/")]
    describe = Describer(marts)
    report = {**public, "changed_patients": changed, "primary_suppressed": len(primary),
              "complementary_added": len(added_new), "primary_cells": [describe(c) for c in primary],
              "complementary_cells": [describe(c) for c in added_new]}
    own_values = cell_values(marts)
    own_relations = collect_relations(marts)
    return ReleaseResult(suppressed_frames(marts, hidden_new, derived), report, public, frozenset(primary),
                         tuple(added_new), own_values, own_relations)
