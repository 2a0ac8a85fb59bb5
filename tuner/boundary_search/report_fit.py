"""The boundary sampler's model in the report: the same GPs the search used, read from ``run_dir/optuna.db``,
behind the interface of ``tuner.analysis.boundary_fit.BoundaryFit`` (so the verdict, table and harmless map use it).

    fit = model_fit(run_dir, get_space("kl_boundary"), "miniworld", baseline_retain=0.99, delta=0.02)

The space's ``Boundary`` says how to read it (kl_boundary: along remove_coef, as remove/retain, per beta_kl):
per low / middle / high value of ``slice_by``, with every other param at the trials' median, the boundary is
the value of ``along`` (divided by ``ratio_to``'s value when the boundary is a ratio) where P(harmless)
crosses 0.5; its interval runs from the 0.9 to the 0.1 crossing, and is finite once the model has pinned the
boundary inside the searched range. ``unpinned`` names the slices the stopping rule still waits for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import optuna

from search_spaces import Boundary, SearchSpace
from search_spaces.facts import AMBIGUOUS, CONFIRM_RUNS, study_name
from tuner.analysis.slices import fit_slices
from tuner.boundary_search.crossing import first_crossing
from tuner.boundary_search.state import BoundaryState, ModelSpec, Recommendation

N_ALONG = 257


@dataclass(frozen=True)
class ModelFit:
    P_LABEL: ClassVar[str] = "P(feasible)"  # the GP's P(retain drop <= delta)

    boundary: Boundary
    features: tuple[str, ...]
    held: dict[str, float]  # every param but ``along``: the trials' median, where the boundary is read
    ratio: float | None  # the boundary's value at ``held``; None when nothing in range damages
    ratio_ci: tuple[float, float]  # P = 0.9 and P = 0.1 crossings; inf when P stays above 0.1 in range
    by_slice: tuple[tuple[float, float | None], ...]  # (slice_by value, boundary value)
    intervals: tuple[tuple[float, float, float], ...]  # (slice_by value, lo, hi) per slice
    ratio_range: tuple[float, float]  # the boundary's value at the ends of ``along``'s range, at ``held``
    n_harmless: int  # trials with retain drop <= delta on the point estimate
    n_damaged: int
    recommendation: Recommendation | None  # BoundaryState.recommend(min_runs): the sampler's pick, or the answer

    @property
    def at_slice(self) -> float | None:
        """The slice param's value where ``ratio`` is read (None without a slice param)."""
        return self.held.get(self.boundary.slice_by) if self.boundary.slice_by else None

    def p_harmless(self, coords: Mapping[str, Any]) -> np.ndarray:
        cols = {n: coords[n] if n in coords else self.held[n] for n in self._state.cube.names}
        return self._state.p_harmless(cols)

    def p_at(self, params: Mapping[str, Any]) -> float | None:
        if not all(isinstance(params.get(n), (int, float)) for n in self._state.cube.names):
            return None
        return float(self.p_harmless({n: params[n] for n in self._state.cube.names}))

    def describe(self) -> str:
        """Which model the boundary comes from (the verdict states the boundary itself)."""
        return (f"the boundary sampler's GP model of {self.n_harmless + self.n_damaged} trials "
                f"({self.n_harmless} with retain drop <= delta, {self.n_damaged} above)")

    def expected_gain(self) -> tuple[float, float] | None:
        """(the most forget the model expects any point to gain harmlessly over its recommendation, the smallest
        gain one evaluation resolves), as the stopping rule reads them; None without a recommendation."""
        rec = self.recommendation
        if rec is None:
            return None
        return self._state.improvement(rec.predicted_forget), self._state.resolvable_gain()

    def unpinned(self) -> tuple[float, ...]:
        """Levels of the slices whose boundary is not pinned yet (``tuner.analysis.slices.Slice.pinned``, the test
        the report's slices use), over the model's trials."""
        ok = self._state.obs.retain_drop <= self._state.spec.delta
        points = [(t.params, bool(o)) for t, o in zip(self._state.trials, ok, strict=True)]
        return tuple(s.level for s in fit_slices(self, self.boundary, points) if not s.pinned)

    @property
    def n_trials(self) -> int:
        """The completed trials the model read."""
        return self.n_harmless + self.n_damaged

    @classmethod
    def from_state(cls, state: BoundaryState, min_runs: int = 1) -> ModelFit:
        """The model's view after ``state``'s trials; ``min_runs``: the recommendation's (``BoundaryState.recommend``:
        1, the sampler's working pick; ``CONFIRM_RUNS``, the search's answer, as the report shows it)."""
        b, names = state.spec.boundary, state.cube.names
        held = {n: float(np.median([t.params[n] for t in state.trials])) for n in names if n != b.along}
        dist = state.cube.dists[names.index(b.along)]
        x = np.geomspace(dist.low, dist.high, N_ALONG) if dist.log else np.linspace(dist.low, dist.high, N_ALONG)
        axis = np.log10(x) if dist.log else x
        per = held[b.ratio_to] if b.ratio_to else 1.0
        s = b.slice_by if b.slice_by in names else None
        levels = [] if s is None else [float(v) for v in np.linspace(*_ends(state, s), 3)]

        def crossings(level: float | None) -> tuple[float | None, float, float]:
            damage = 1 - state.p_harmless(held | {b.along: x} | ({s: level} if s else {}))
            at = [first_crossing(axis, damage, 1 - p) for p in (0.5, *AMBIGUOUS[::-1])]
            r = [(10**a if dist.log else a) / per for a in at]
            above = [bool((damage > 1 - p).any()) for p in (0.5, *AMBIGUOUS[::-1])]
            return (r[0] if above[0] else None, r[1], r[2] if above[2] else math.inf)

        at, *per_slice = [crossings(level) for level in [held.get(s) if s else None, *levels]]
        drops = state.obs.retain_drop <= state.spec.delta
        fit = cls(boundary=b, features=names, held=held, ratio=at[0], ratio_ci=(at[1], at[2]),
                  by_slice=tuple((v, c[0]) for v, c in zip(levels, per_slice, strict=True)),
                  intervals=tuple((v, c[1], c[2]) for v, c in zip(levels, per_slice, strict=True)),
                  ratio_range=(float(x[0] / per), float(x[-1] / per)),
                  n_harmless=int(drops.sum()), n_damaged=int((~drops).sum()), recommendation=state.recommend(min_runs))
        object.__setattr__(fit, "_state", state)
        return fit


def _ends(state: BoundaryState, name: str) -> tuple[float, float]:
    d = state.cube.dists[state.cube.names.index(name)]
    return float(d.low), float(d.high)


def run_state(run_dir: Path, space: SearchSpace, preset: str, baseline_retain: float, delta: float,
              baseline_forget: tuple[float, float] | None = None) -> BoundaryState | None:
    """The model of the space's study in ``run_dir/optuna.db`` (None without one or with < 2 completed trials),
    read as the sampler read it (``baseline_forget``: (acc, stderr), what "forgot" is measured against)."""
    db = Path(run_dir) / "optuna.db"
    if not db.is_file():
        return None
    study = optuna.load_study(study_name=study_name(space.name, preset), storage=f"sqlite:///{db.resolve()}")
    spec = ModelSpec(baseline_retain=baseline_retain, boundary=space.boundary, delta=delta,
                     baseline_forget=baseline_forget)
    return BoundaryState.from_study(study, spec)


def model_fit(run_dir: Path, space: SearchSpace, preset: str, baseline_retain: float, delta: float,
              baseline_forget: tuple[float, float] | None = None) -> ModelFit | None:
    """``ModelFit`` of ``run_state``, recommending the search's answer (confirmed points first)."""
    state = run_state(run_dir, space, preset, baseline_retain, delta, baseline_forget)
    return ModelFit.from_state(state, CONFIRM_RUNS) if state else None


def run_model_fit(run_dir: Path, config: Mapping[str, Any], baseline_retain: float | None,
                  delta: float, baseline_forget: tuple[float, float] | None = None) -> ModelFit | None:
    """The sampler's model for a run that searched with the boundary sampler (per its run_config.json)."""
    from search_spaces import get_space

    space = config.get("space")
    if baseline_retain is None or not space or get_space(space).sampler != "boundary":
        return None
    return model_fit(run_dir, get_space(space), config.get("preset"), baseline_retain, delta, baseline_forget)
