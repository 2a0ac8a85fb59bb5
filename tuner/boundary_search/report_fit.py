"""The boundary sampler's model in the report: the same GPs the search used, read from ``run_dir/optuna.db``,
behind the interface of ``tuner.analysis.boundary_fit.BoundaryFit`` (so the verdict, table and harmless map use it).

    fit = model_fit(run_dir, study_name="kl_boundary-miniworld", baseline_retain=0.99, delta=0.02)

Per beta_kl slice, at the trials' median retain_coef, the boundary is the remove/retain ratio where
P(harmless) crosses 0.5 along remove_coef; its interval runs from the 0.9 to the 0.1 crossing, and is
finite once the model has pinned the boundary inside the searched range. ``unpinned`` names the slices the
stopping rule still waits for (the report states an interval for every other slice).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import optuna

from search_spaces.facts import AMBIGUOUS, study_name
from tuner.boundary_search.crossing import first_crossing
from tuner.boundary_search.state import BoundaryState, ModelSpec

N_ALONG = 257
ALONG = "remove_coef"


@dataclass(frozen=True)
class ModelFit:
    P_LABEL: ClassVar[str] = "P(feasible)"  # the GP's P(retain drop <= delta)

    features: tuple[str, ...]
    at_retain: float
    at_beta: float | None
    ratio: float | None  # at (at_retain, at_beta); None when nothing in range damages
    ratio_ci: tuple[float, float]  # P = 0.9 and P = 0.1 crossings; inf when P stays above 0.1 in range
    by_beta: tuple[tuple[float, float | None], ...]
    intervals: tuple[tuple[float, float, float], ...]  # (beta_kl, lo, hi) ratios per slice
    ratio_range: tuple[float, float]  # remove/retain at the ends of remove_coef's range, at at_retain
    n_harmless: int  # trials with retain drop <= delta on the point estimate
    n_damaged: int

    def p_harmless(self, coords: Mapping[str, Any]) -> np.ndarray:
        defaults = {"retain_coef": self.at_retain, "beta_kl": self.at_beta}
        cols = {n: coords[n] if n in coords else defaults[n] for n in self._state.cube.names}
        return self._state.p_harmless(cols)

    def p_at(self, params: Mapping[str, Any]) -> float | None:
        if not all(isinstance(params.get(n), (int, float)) for n in self._state.cube.names):
            return None
        return float(self.p_harmless({n: params[n] for n in self._state.cube.names}))

    def describe(self) -> str:
        """Which model the boundary comes from (the verdict states the boundary itself)."""
        return (f"the boundary sampler's GP model of {self.n_harmless + self.n_damaged} trials "
                f"({self.n_harmless} with retain drop <= delta, {self.n_damaged} above)")

    def unpinned(self, max_width: float) -> tuple[float, ...]:
        """beta_kl slices whose boundary is not pinned yet. A slice is pinned when its 0.9..0.1 interval,
        clipped to the searched range, spans at most ``max_width`` decades of remove/retain and trials near that
        slice reach within ``max_width`` decades of both its ends (so a slice harmless, or damaged, along the
        whole range is pinned once trials come near that end of the range)."""
        levels = [b for b, _, _ in self.intervals]
        nearest = np.array([min(levels, key=lambda b: abs(b - t.params["beta_kl"])) for t in self._state.trials])
        ratios = np.array([t.params["remove_coef"] / t.params["retain_coef"] for t in self._state.trials])
        out = []
        for beta, lo, hi in self.intervals:
            sampled = ratios[nearest == beta]
            hi = min(hi, self.ratio_range[1])
            pinned = (len(sampled) > 0 and math.log10(hi / lo) <= max_width
                      and sampled.min() <= lo * 10**max_width and sampled.max() >= hi / 10**max_width)
            if not pinned:
                out.append(beta)
        return tuple(out)

    @classmethod
    def from_state(cls, state: BoundaryState) -> ModelFit:
        names = state.cube.names
        params = [t.params for t in state.trials]
        at_retain = float(np.median([p["retain_coef"] for p in params]))
        beta = state.cube.dists[names.index("beta_kl")] if "beta_kl" in names else None
        at_beta = float(np.median([p["beta_kl"] for p in params])) if beta else None
        levels = [beta.low, (beta.low + beta.high) / 2, beta.high] if beta else [None]
        d = state.cube.dists[names.index(ALONG)]
        x = np.geomspace(d.low, d.high, N_ALONG)

        def crossings(b: float | None) -> tuple[float | None, float, float]:
            cols = {"retain_coef": at_retain, ALONG: x} | ({"beta_kl": b} if b is not None else {})
            damage = 1 - state.p_harmless(cols)
            r = [10 ** first_crossing(np.log10(x), damage, 1 - level) / at_retain for level in (0.5, *AMBIGUOUS[::-1])]
            above = [bool((damage > 1 - level).any()) for level in (0.5, *AMBIGUOUS[::-1])]
            return (r[0] if above[0] else None, r[1], r[2] if above[2] else math.inf)

        at, *per_slice = [crossings(b) for b in [at_beta, *levels]]
        drops = state.obs.retain_drop <= state.spec.delta
        fit = cls(features=names, at_retain=at_retain, at_beta=at_beta, ratio=at[0], ratio_ci=(at[1], at[2]),
                  by_beta=tuple((b, c[0]) for b, c in zip(levels, per_slice, strict=True)) if beta else (),
                  intervals=tuple((b, c[1], c[2]) for b, c in zip(levels, per_slice, strict=True)) if beta else (),
                  ratio_range=(float(x[0] / at_retain), float(x[-1] / at_retain)),
                  n_harmless=int(drops.sum()), n_damaged=int((~drops).sum()))
        object.__setattr__(fit, "_state", state)
        return fit


def model_fit(run_dir: Path, study_name: str, baseline_retain: float, delta: float) -> ModelFit | None:
    """The model of the study in ``run_dir/optuna.db`` (None without a study or with < 2 completed trials)."""
    db = Path(run_dir) / "optuna.db"
    if not db.is_file():
        return None
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{db.resolve()}")
    state = BoundaryState.from_study(study, ModelSpec(baseline_retain=baseline_retain, delta=delta))
    return ModelFit.from_state(state) if state else None


def run_model_fit(run_dir: Path, config: Mapping[str, Any], baseline_retain: float | None,
                  delta: float) -> ModelFit | None:
    """The sampler's model for a run that searched with the boundary sampler (per its run_config.json)."""
    from search_spaces import get_space

    space = config.get("space")
    if baseline_retain is None or not space or get_space(space).sampler != "boundary":
        return None
    return model_fit(run_dir, study_name(space, config.get("preset")), baseline_retain, delta)
