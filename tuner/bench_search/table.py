"""A dense tabular benchmark: final forget / retain accuracy (± stderr) on a product grid of the search space.

    table = Table.load(path)                    # table.json written by ``build_table`` (or ``synthetic``)
    i = table.nearest(params)                   # nearest grid point in (log retain, log remove, beta_kl)
    table.boundary(delta)                       # log10 remove* per (other coords), where drop crosses delta
    table.best_feasible_forget(delta)
    Table.mean_of([t0, t1, t2])                 # the mean over training seeds; the seeds' tables kept in .seeds
    drop_effect(drop, scale)                    # asinh(drop / scale): the retain drop as interpolated with a scale

``remove*`` is log-interpolated between the last harmless and the first damaging grid value along the
boundary axis; a column that never crosses gets the axis' upper end, one damaged already at the lowest
value its lower end, so every column has a finite value to compare.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from optuna.distributions import FloatDistribution

from search_spaces.facts import retain_drop
from tuner.boundary_search.crossing import first_crossing


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[float, ...]
    low: float  # the searched range, which the grid spans
    high: float
    log: bool

    def coord(self, x: Any) -> np.ndarray:
        return np.log10(np.asarray(x, dtype=float)) if self.log else np.asarray(x, dtype=float)

    def distribution(self) -> FloatDistribution:
        return FloatDistribution(self.low, self.high, log=self.log)


@dataclass
class Table:
    """Arrays are indexed by the axes in order; accuracies are fractions. ``key`` names the source world. A table
    built with several training seeds is their mean, and keeps each seed's table in ``seeds`` (in seed order)."""

    axes: tuple[Axis, ...]
    along: str  # the axis the boundary is read along (remove_coef)
    forget: np.ndarray
    forget_se: np.ndarray
    retain: np.ndarray
    retain_se: np.ndarray
    baseline_forget: float
    baseline_retain: float
    n_eval: int
    key: str = ""
    seeds: tuple[Table, ...] = ()

    @classmethod
    def mean_of(cls, tables: list[Table]) -> Table:
        """The per-point mean of one world's tables trained with different seeds (accuracies and lm-eval stderrs;
        the baseline, the unadapted model, is the first's), keeping the tables as ``seeds``."""
        first = tables[0]
        for t in tables[1:]:
            if t.axes != first.axes or t.n_eval != first.n_eval:
                raise ValueError(f"table {t.key} has another grid or eval set than {first.key}: not one world's seeds")

        def mean(name: str) -> np.ndarray:
            return np.mean([getattr(t, name) for t in tables], axis=0)

        return cls(axes=first.axes, along=first.along, forget=mean("forget"), forget_se=mean("forget_se"),
                   retain=mean("retain"), retain_se=mean("retain_se"), baseline_forget=first.baseline_forget,
                   baseline_retain=first.baseline_retain, n_eval=first.n_eval,
                   key="+".join(t.key for t in tables), seeds=tuple(tables))

    @property
    def size(self) -> int:
        return int(self.forget.size)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    def distributions(self) -> dict[str, FloatDistribution]:
        return {a.name: a.distribution() for a in self.axes}

    def points(self) -> list[dict[str, float]]:
        """Every grid point as params, in C order of the arrays."""
        return [dict(zip(self.names, p, strict=True)) for p in itertools.product(*(a.values for a in self.axes))]

    def nearest(self, params: dict[str, Any]) -> tuple[int, ...]:
        """Index of the nearest grid point (per axis, in log space for log axes: a product grid)."""
        return tuple(int(np.argmin(np.abs(a.coord(a.values) - a.coord(params[a.name])))) for a in self.axes)

    def retain_drop(self) -> np.ndarray:
        return retain_drop(self.baseline_retain, self.retain)

    def boundary(self, delta: float, drop_scale: float | None = None) -> np.ndarray:
        """log10 remove* per column: array over the other axes (in order) of the boundary coordinate; with
        ``drop_scale`` the drop is interpolated as ``drop_effect`` (as ``surface.Surface`` reads it)."""
        j = self.names.index(self.along)
        x = self.axes[j].coord(self.axes[j].values)
        drop = np.moveaxis(drop_effect(self.retain_drop(), drop_scale), j, -1)
        level = drop_effect(np.asarray(delta), drop_scale)
        return np.apply_along_axis(lambda d: first_crossing(x, d, level), -1, drop)

    def columns(self) -> dict[str, np.ndarray]:
        """The other axes' values, broadcast to the shape of ``boundary``'s result."""
        others = [a for a in self.axes if a.name != self.along]
        grids = np.meshgrid(*(np.asarray(a.values) for a in others), indexing="ij")
        return {a.name: g for a, g in zip(others, grids, strict=True)}

    def best_feasible_forget(self, delta: float) -> float:
        ok = self.retain_drop() <= delta
        return float(self.forget[ok].min()) if ok.any() else float("nan")

    # --- JSON ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.__dict__.items()}
        d["axes"] = [asdict(a) for a in self.axes]
        d["seeds"] = [t.to_dict() for t in self.seeds]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Table:
        arrays = {k: np.asarray(d[k], dtype=float) for k in ("forget", "forget_se", "retain", "retain_se")}
        axes = tuple(Axis(**{**a, "values": tuple(a["values"])}) for a in d["axes"])
        return cls(axes=axes, along=d["along"], baseline_forget=float(d["baseline_forget"]),
                   baseline_retain=float(d["baseline_retain"]), n_eval=int(d["n_eval"]), key=d.get("key", ""),
                   seeds=tuple(cls.from_dict(t) for t in d.get("seeds", ())), **arrays)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> Table:
        return cls.from_dict(json.loads(Path(path).read_text()))


def drop_effect(drop: np.ndarray, scale: float | None) -> np.ndarray:
    """asinh(drop / scale): linear below ``scale``, logarithmic above, so interpolating it between a harmless and a
    damaging grid value keeps the drop low until near the damaging one (a kink, as the real mini-world has it);
    the drop itself when ``scale`` is None."""
    return drop if scale is None else np.arcsinh(drop / scale)


def drop_from_effect(effect: np.ndarray, scale: float | None) -> np.ndarray:
    """The inverse of ``drop_effect``."""
    return effect if scale is None else scale * np.sinh(effect)
