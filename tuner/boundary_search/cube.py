"""The search space as a unit cube: log-scaled floats and ints map linearly onto [0, 1].

    u = (log x - log low) / (log high - log low)      # FloatDistribution(log=True)
    u = (x - low) / (high - low)                      # otherwise

Vectorised over columns of values, so a model can be evaluated on thousands of points at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution


@dataclass(frozen=True)
class UnitCube:
    """Named numeric dimensions of an Optuna search space, in sorted name order."""

    names: tuple[str, ...]
    dists: tuple[FloatDistribution | IntDistribution, ...]

    @classmethod
    def from_space(cls, space: Mapping[str, BaseDistribution]) -> UnitCube:
        bad = [n for n, d in space.items() if not isinstance(d, (FloatDistribution, IntDistribution))]
        if bad:
            raise ValueError(f"the boundary sampler models numeric parameters only; not numeric: {bad}")
        names = tuple(sorted(space))
        return cls(names, tuple(space[n] for n in names))  # type: ignore[misc]

    @property
    def dim(self) -> int:
        return len(self.names)

    def _ends(self, j: int) -> tuple[float, float, bool]:
        d = self.dists[j]
        return float(d.low), float(d.high), bool(d.log)

    def shape(self, columns: Mapping[str, Any]) -> tuple[int, ...]:
        """The broadcast shape of the value columns (``to_unit`` flattens it to n rows)."""
        return np.broadcast_shapes(*(np.shape(columns[n]) for n in self.names))

    def to_unit(self, columns: Mapping[str, Any]) -> np.ndarray:
        """(n, dim) unit coordinates of value columns (arrays broadcast, then flattened)."""
        cols = []
        for j, name in enumerate(self.names):
            low, high, log = self._ends(j)
            x = np.asarray(columns[name], dtype=float)
            cols.append((np.log(x) - np.log(low)) / np.log(high / low) if log else (x - low) / (high - low))
        return np.column_stack([c.ravel() for c in np.broadcast_arrays(*cols)])

    def from_unit(self, u: np.ndarray) -> dict[str, Any]:
        """Parameter values of one unit point, clipped into the distributions' ranges."""
        out: dict[str, Any] = {}
        for j, name in enumerate(self.names):
            low, high, log = self._ends(j)
            t = float(np.clip(u[j], 0.0, 1.0))
            value = low * (high / low) ** t if log else low + t * (high - low)
            out[name] = (int(np.clip(round(value), low, high)) if isinstance(self.dists[j], IntDistribution)
                         else float(np.clip(value, low, high)))
        return out

    def ratio_coords(self, u: np.ndarray, num: str, den: str) -> np.ndarray:
        """Unit coords with ``num``'s column replaced by log(num / den), rescaled to [0, 1] over the box
        (both must be log-scaled): a boundary along the ratio becomes axis-aligned for an ARD kernel."""
        i, j = self.names.index(num), self.names.index(den)
        (ni, nh, _), (di, dh, _) = self._ends(i), self._ends(j)
        log_ratio = np.log(ni) + u[:, i] * np.log(nh / ni) - np.log(di) - u[:, j] * np.log(dh / di)
        out = u.copy()
        out[:, i] = (log_ratio - np.log(ni / dh)) / np.log((nh / ni) * (dh / di))
        return out

    def has_log(self, *names: str) -> bool:
        return all(n in self.names and self._ends(self.names.index(n))[2] for n in names)
