"""What the boundary model knows after the completed trials of a study: the fitted GPs, P(harmless),
the recommendation and the ambiguous share. The sampler, the stopping rule, the report and the replay
benchmark all read this one object.

    spec = ModelSpec(baseline_retain=0.99, boundary=get_space("kl_boundary").boundary, delta=0.02)
    state = BoundaryState.from_study(study, spec)
    state.p_harmless({"retain_coef": r, "remove_coef": x, "beta_kl": b})   # arrays broadcast
    state.recommend()          # lowest forget among trials with retain drop <= delta (point estimate)
                               # and P(feasible) >= CONFIDENT
    state.ambiguous_share()    # share of the space with 0.1 < P(harmless) < 0.9
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import norm, qmc

from search_spaces import Boundary
from search_spaces.facts import (
    AMBIGUOUS,
    CONFIDENT,
    DEFAULT_CONFIDENCE,
    DEFAULT_DELTA,
    FORGET_INDEX,
    RETAIN_INDEX,
    STDERR_ATTRS,
    retain_drop,
)
from tuner.boundary_search.cube import UnitCube
from tuner.boundary_search.gp import BoundaryModel, Observations


@dataclass(frozen=True)
class ModelSpec:
    """How to read a study: the baseline retain accuracy, the space's boundary, delta, which objective is which."""

    baseline_retain: float
    boundary: Boundary
    delta: float = DEFAULT_DELTA
    forget_index: int = FORGET_INDEX
    retain_index: int = RETAIN_INDEX
    noise_floor: float = 0.1  # smallest stderr used, as a fraction of delta (lm-eval reports 0 at acc 1.0)
    baseline_forget: tuple[float, float] | None = None  # (acc, stderr); given, only trials that forgot are recommended

    @property
    def ratio(self) -> tuple[str, str] | None:
        """The GP sees log(along / ratio_to) instead of log(along) when the boundary is a ratio: for kl_boundary
        the loss is remove * L_rm + retain * L_ret, so the ratio sets where the gradient points."""
        return (self.boundary.along, self.boundary.ratio_to) if self.boundary.ratio_to else None


@dataclass(frozen=True)
class Recommendation:
    trial_number: int
    params: dict[str, Any]
    forget: float
    retain_drop: float
    p_feasible: float  # model P(retain drop <= delta) at the trial's point
    age: int  # completed trials that finished after it: for so many trials nothing better was found


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]


class BoundaryState:
    """The model fitted to a study's completed trials (>= 2 of them)."""

    def __init__(self, cube: UnitCube, trials: list[FrozenTrial], spec: ModelSpec):
        self.cube, self.trials, self.spec = cube, trials, spec
        self.unit_x = cube.to_unit({n: [t.params[n] for t in trials] for n in cube.names})
        x = self.model_x(self.unit_x)
        values = np.array([t.values for t in trials], dtype=float)
        se = np.array([[t.user_attrs.get(k, math.nan) for k in STDERR_ATTRS] for t in trials], dtype=float)
        self.obs = Observations(x=x, retain_drop=retain_drop(spec.baseline_retain, values[:, spec.retain_index]),
                                forget=values[:, spec.forget_index], forget_se=se[:, 0], retain_se=se[:, 1])
        self.model = BoundaryModel(self.obs, spec.delta, spec.noise_floor)

    @classmethod
    def from_study(cls, study: optuna.Study, spec: ModelSpec) -> BoundaryState | None:
        trials = completed(study)
        space = {n: d for n, d in IntersectionSearchSpace().calculate(study).items() if not d.single()}
        if len(trials) < 2 or not space:
            return None
        return cls(UnitCube.from_space(space), trials, spec)

    def model_x(self, u: np.ndarray) -> np.ndarray:
        """The GP's inputs for unit-cube points (the ratio coordinate, when ``spec.ratio`` applies)."""
        ratio = self.spec.ratio
        return self.cube.ratio_coords(u, *ratio) if ratio and self.cube.has_log(*ratio) else u

    def p_harmless(self, columns: Mapping[str, Any]) -> np.ndarray:
        """P(retain drop <= delta) at parameter value columns (arrays broadcast, result in their shape)."""
        return self.model.p_harmless(self.model_x(self.cube.to_unit(columns))).reshape(self.cube.shape(columns))

    def recommend(self) -> Recommendation | None:
        """Among trials feasible on their point estimate that forgot (with ``spec.baseline_forget``: the report's
        one-sided test at DEFAULT_CONFIDENCE): the lowest forget with P(feasible) >= CONFIDENT, else the most
        probably feasible one. None when no trial qualifies."""
        p = self.model.p_harmless(self.obs.x)
        ok = np.flatnonzero((self.obs.retain_drop <= self.spec.delta) & self._forgot())
        if not len(ok):
            return None
        confident = ok[p[ok] >= CONFIDENT]
        i = int(confident[np.argmin(self.obs.forget[confident])] if len(confident) else ok[np.argmax(p[ok])])
        t = self.trials[i]
        age = sum(1 for o in self.trials if (o.datetime_complete, o.number) > (t.datetime_complete, t.number))
        return Recommendation(t.number, dict(t.params), float(self.obs.forget[i]), float(self.obs.retain_drop[i]),
                              float(p[i]), age)

    def _forgot(self) -> np.ndarray:
        """Per trial: baseline forget - forget > z * sqrt(se_b^2 + se_t^2) (all True without a baseline)."""
        if self.spec.baseline_forget is None:
            return np.ones(len(self.obs), dtype=bool)
        acc, se = self.spec.baseline_forget
        z = float(norm.ppf(DEFAULT_CONFIDENCE))
        return acc - self.obs.forget > z * np.hypot(se, np.nan_to_num(self.obs.forget_se))

    def ambiguous_share(self, n: int = 1024) -> float:
        """Share of the unit cube (a fixed scrambled Sobol set) where 0.1 < P(harmless) < 0.9."""
        u = qmc.Sobol(self.cube.dim, scramble=True, seed=0).random(n)
        p = self.model.p_harmless(self.model_x(u))
        return float(np.mean((p > AMBIGUOUS[0]) & (p < AMBIGUOUS[1])))
