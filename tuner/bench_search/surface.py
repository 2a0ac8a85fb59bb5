"""A table read as a continuous function: its four arrays multilinear in the table's coordinates (log10 retain_coef,
log10 remove_coef, beta_kl), the retain drop as ``table.drop_effect`` where a scale is given.

    surface = Surface(table, drop_scale=0.01)
    forget, retain, forget_se, retain_se = surface(params)
    surface.values({"retain_coef": array, ...})       # (n, 4)
    surface.best_feasible_forget(delta)                # the lowest forget with retain drop <= delta

The replay's truth and answers (``answers.py``), the real searches' scores (``real.py``) and the answer model's
check (``interpolation.py``) all read a table through it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from search_spaces.facts import retain_drop
from tuner.bench_search.table import Table, drop_effect, drop_from_effect

REFINE = 8  # the truth's best feasible forget is searched on the grid refined this many times per axis


class Surface:
    """The table's four arrays, multilinear in its coordinates over the axes with more than one grid value (a
    single-valued axis is constant; with ``drop_scale`` retain as ``drop_effect``); params outside the grid are
    clipped onto it."""

    def __init__(self, table: Table, drop_scale: float | None = None):
        self.axes = [a for a in table.axes if len(a.values) > 1]
        self.grid = tuple(a.coord(a.values) for a in self.axes)
        flat = tuple(slice(None) if len(a.values) > 1 else 0 for a in table.axes)
        effect = drop_effect(table.retain_drop(), drop_scale)
        values = np.stack([table.forget, effect, table.forget_se, table.retain_se], axis=-1)[flat]
        self._interp = RegularGridInterpolator(self.grid, values, method="linear")
        self.baseline_retain, self.drop_scale = table.baseline_retain, drop_scale
        self.best_feasible_forget = cache(self._best_feasible_forget)

    def interp(self, coords: np.ndarray) -> np.ndarray:
        """(n, 4) at table coordinates: forget, retain, forget stderr, retain stderr."""
        v = self._interp(coords)
        v[:, 1] = self.baseline_retain - drop_from_effect(v[:, 1], self.drop_scale)
        return v

    def coords(self, columns: dict[str, Any]) -> np.ndarray:
        """(n, dim) table coordinates of parameter columns (scalars or arrays)."""
        cols = [np.clip(a.coord(columns[a.name]), g[0], g[-1]) for a, g in zip(self.axes, self.grid, strict=True)]
        return np.stack([np.ravel(c) for c in np.broadcast_arrays(*cols)], axis=-1)

    def values(self, columns: dict[str, Any]) -> np.ndarray:
        """(n, 4): forget, retain, forget stderr, retain stderr."""
        return self.interp(self.coords(columns))

    def __call__(self, params: dict[str, Any]) -> tuple[float, float, float, float]:
        forget, retain, forget_se, retain_se = self.values(params)[0]
        return float(forget), float(retain), float(forget_se), float(retain_se)

    def _best_feasible_forget(self, delta: float) -> float:
        """Lowest forget where retain drop <= delta, over the grid refined ``REFINE`` times per axis: its points
        and, on every edge between a feasible and an infeasible point, the crossing (both linear there; with
        ``drop_scale`` the drop only nearly so, within a refined step)."""
        fine = [np.unique(np.concatenate([np.linspace(a, b, REFINE + 1) for a, b in zip(g[:-1], g[1:], strict=True)]))
                for g in self.grid]
        mesh = np.meshgrid(*fine, indexing="ij")
        v = self.interp(np.stack([c.ravel() for c in mesh], axis=-1)).reshape(*mesh[0].shape, -1)
        forget, drop = v[..., 0], retain_drop(self.baseline_retain, v[..., 1])
        candidates = [forget[drop <= delta]]
        for k in range(len(fine)):
            lo, hi = (tuple(s if j == k else slice(None) for j in range(len(fine)))
                      for s in (slice(0, -1), slice(1, None)))
            cross = (drop[lo] <= delta) != (drop[hi] <= delta)
            t = (delta - drop[lo][cross]) / (drop[hi][cross] - drop[lo][cross])
            candidates.append(forget[lo][cross] + t * (forget[hi][cross] - forget[lo][cross]))
        ok = np.concatenate(candidates)
        return float(ok.min()) if len(ok) else float("nan")
