"""The one Wilson score interval of the dashboards: an interval for a share drawn from the
counts shown beside it (tolerability, titration), so a chart never shows a rate without
the uncertainty its n implies. The marts compute the same formula in SQL
(sql/marts/response_by_indication.sql) for the response rates they publish."""

from __future__ import annotations

import numpy as np

Z95 = 1.959963984540054  # two-sided 95%


def wilson(k, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds, in percent, of the Wilson score interval for k successes out of n
    (arrays or scalars). NaN where k or n is missing (a suppressed count) or n is 0."""
    k = np.asarray(k, dtype="float64")
    n = np.asarray(n, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        low, high = 100 * np.clip(centre - half, 0, 1), 100 * np.clip(centre + half, 0, 1)
    bad = ~(n > 0) | np.isnan(k)
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)
