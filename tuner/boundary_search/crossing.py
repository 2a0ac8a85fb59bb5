"""Where a sampled curve first crosses a level: the boundary along one axis, for the report and the benchmark.

    first_crossing(log10_remove, 1 - p_harmless, 0.5)   # log10 remove_coef where damage becomes likelier
"""

from __future__ import annotations

import numpy as np


def first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """x where y first exceeds ``level`` scanning up x, linearly interpolated; x[0] if y[0] already does,
    x[-1] if it never does."""
    above = np.flatnonzero(np.asarray(y) > level)
    if not len(above):
        return float(x[-1])
    i = int(above[0])
    if i == 0:
        return float(x[0])
    t = (level - y[i - 1]) / (y[i] - y[i - 1])
    return float(x[i - 1] + t * (x[i] - x[i - 1]))
