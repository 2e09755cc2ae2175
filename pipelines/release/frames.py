"""The release frames: hidden counts NULL with what derives from them, and cells described."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.release.relations import COUNT_COLUMNS, DERIVED_COLUMNS, KEY_COLUMNS, Cell, _key


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


class Describer:
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



def hidden_cells(frames: Mapping[str, pd.DataFrame]) -> set[Cell]:
    """The cells a released table hides (a NULL count: counts are never NULL otherwise)."""
    return {Cell(mart, int(i), column) for mart, frame in frames.items() for column in COUNT_COLUMNS[mart]
            for i in frame.index[frame[column].isna()]}
