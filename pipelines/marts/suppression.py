"""Small-cell suppression for aggregates that leave the clinic (outputs.md, "Small cells").

A count from 1 to min_cell_size - 1 is suppressed (NULL), with the percentages and
statistics derived from it. Cells that add up to another cell form an equation: a row's
categories to its total (SumGroup), and a column of child rows to their parent row
(Rollup: indications to their group, groups to all patients). An equation with exactly
one suppressed cell would give that cell away, so its next smallest non-zero cell is
suppressed too (complementary suppression), repeated until no equation has exactly one.
Zero is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

Cell = tuple[int, str]  # (row index, column)


@dataclass(frozen=True)
class SumGroup:
    """Cells that add up to a total in the same row (e.g. categories to n_patients)."""

    total: str
    parts: tuple[str, ...]
    hide_total_first: bool = False  # complement by hiding the total (keeps rate denominators)


@dataclass(frozen=True)
class Rollup:
    """Rows whose counts add up, column by column, to another row of the same mart."""

    children: str  # a pandas query selecting the child rows
    parent: str  # a pandas query selecting the rows they add up to
    by: tuple[str, ...] = ()  # columns a child shares with its parent


@dataclass(frozen=True)
class Equation:
    total: Cell
    parts: tuple[Cell, ...]
    hide_total_first: bool = False


def equations(frame: pd.DataFrame, counts: Sequence[str], groups: Sequence[SumGroup] = (),
              rollups: Sequence[Rollup] = ()) -> list[Equation]:
    found = [Equation((i, g.total), tuple((i, p) for p in g.parts), g.hide_total_first)
             for i in frame.index for g in groups]
    for r in rollups:
        children = frame.query(r.children)
        for p, parent in frame.query(r.parent).iterrows():
            key = tuple(parent[b] for b in r.by)
            kids = [k for k, child in children.iterrows() if tuple(child[b] for b in r.by) == key]
            found += [Equation((p, c), tuple((k, c) for k in kids)) for c in counts]
    return found


def suppressed_cells(values: dict[Cell, int | None], eqs: Sequence[Equation],
                     min_cell_size: int) -> set[Cell]:
    hidden = {cell for cell, v in values.items() if v is not None and 0 < v < min_cell_size}
    changed = True
    while changed:
        changed = False
        for eq in eqs:
            if sum(cell in hidden for cell in (eq.total, *eq.parts)) != 1:
                continue
            parts = sorted((values[c], n, c) for n, c in enumerate(eq.parts) if c not in hidden and values[c])
            total_shown = eq.total not in hidden and bool(values[eq.total])
            if total_shown and (eq.hide_total_first or not parts):
                hidden.add(eq.total)
            elif parts:
                hidden.add(parts[0][2])
            else:
                continue  # every other cell is zero: the hidden one is zero too, nothing to give away
            changed = True
    return hidden


def suppress(frame: pd.DataFrame, counts: Sequence[str], derived: dict[str, Sequence[str]],
             groups: Sequence[SumGroup] = (), min_cell_size: int = 11,
             rollups: Sequence[Rollup] = ()) -> pd.DataFrame:
    """Return a copy with suppressed counts (and what derives from them) set to NULL.

    `derived` maps a count to the columns computed from it (its percentages, intervals,
    medians); `suppressed` says whether anything in the row was hidden.
    """
    out = frame.copy()
    for c in counts:
        out[c] = out[c].astype("Int64")
    values = {(i, c): (None if pd.isna(frame.at[i, c]) else int(frame.at[i, c]))
              for i in frame.index for c in counts}
    hidden = suppressed_cells(values, equations(frame, counts, groups, rollups), min_cell_size)
    for i, c in hidden:
        out.at[i, c] = pd.NA
        for d in derived.get(c, ()):
            out.at[i, d] = None
    out["suppressed"] = [any((i, c) in hidden for c in counts) for i in frame.index]
    return out
