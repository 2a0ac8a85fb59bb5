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

    def to_unit(self, columns: Mapping[str, Any]) -> np.ndarray:
        """(n, dim) unit coordinates of value columns (scalars broadcast)."""
        cols = []
        for j, name in enumerate(self.names):
            low, high, log = self._ends(j)
            x = np.asarray(columns[name], dtype=float)
            cols.append((np.log(x) - np.log(low)) / np.log(high / low) if log else (x - low) / (high - low))
        return np.column_stack(np.broadcast_arrays(*cols)) if cols else np.empty((0, 0))

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
