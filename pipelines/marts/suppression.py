"""Small-cell suppression for aggregates that leave the clinic (outputs.md, "Small cells").

A count from 1 to min_cell_size - 1 is suppressed (NULL), with the percentages and
statistics derived from it. Where a row's cells add up to a shown total, one suppressed
cell could be recomputed from the others, so the next smallest non-zero cell of that
group is suppressed too (complementary suppression), repeated until nothing can be
recomputed. Zero is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class SumGroup:
    """Cells that add up to a total in the same row (e.g. categories to n_patients)."""

    total: str
    parts: tuple[str, ...]
    hide_total_first: bool = False  # complement by hiding the total (keeps rate denominators)


def suppressed_cells(row: dict, counts: Sequence[str], groups: Sequence[SumGroup],
                     min_cell_size: int) -> set[str]:
    hidden = {c for c in counts if row[c] is not None and 0 < row[c] < min_cell_size}
    changed = True
    while changed:
        changed = False
        for g in groups:
            hidden_parts = [p for p in g.parts if p in hidden]
            if g.total not in hidden and len(hidden_parts) == 1:
                candidates = sorted((row[p], i, p) for i, p in enumerate(g.parts)
                                    if p not in hidden and row[p])
                pick = candidates[0][2] if candidates and not g.hide_total_first else g.total
                hidden.add(pick)
                changed = True
    return hidden


def suppress(frame: pd.DataFrame, counts: Sequence[str], derived: dict[str, Sequence[str]],
             groups: Sequence[SumGroup] = (), min_cell_size: int = 11) -> pd.DataFrame:
    """Return a copy with suppressed counts (and what derives from them) set to NULL.

    `derived` maps a count to the columns computed from it (its percentages, intervals,
    medians); `suppressed` says whether anything in the row was hidden.
    """
    out = frame.copy()
    for c in counts:
        out[c] = out[c].astype("Int64")
    flags = []
    for idx, row in frame.iterrows():
        values = {c: (None if pd.isna(row[c]) else int(row[c])) for c in counts}
        hidden = suppressed_cells(values, counts, groups, min_cell_size)
        for c in hidden:
            out.at[idx, c] = pd.NA
            for d in derived.get(c, ()):
                out.at[idx, d] = None
        flags.append(bool(hidden))
    out["suppressed"] = flags
    return out
