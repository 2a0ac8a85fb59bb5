"""What the boundary model knows after the completed trials of a study: the fitted GPs, P(harmless),
the recommendation and the ambiguous share. The sampler, the stopping rule, the report and the replay
benchmark all read this one object.

    spec = ModelSpec(baseline_retain=0.99, boundary=get_space("kl_boundary").boundary, delta=0.02)
    state = BoundaryState.from_study(study, spec)
    state.p_harmless({"retain_coef": r, "remove_coef": x, "beta_kl": b})   # arrays broadcast
    state.recommend()          # the sampled point (a trial and its replicates) with the lowest predicted forget
                               # among those with P(feasible) >= CONFIDENT and mean retain drop <= delta
    state.recommend(CONFIRM_RUNS)   # the search's answer: a confirmed point within one eval stderr of that, else it
    state.ambiguous_share()    # share of the space with 0.1 < P(harmless) < 0.9
    state.improvement(best)    # the most feasible forget any point is still expected to gain over ``best``
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
    REPLICATE_OF,
    RETAIN_INDEX,
    STDERR_ATTRS,
    retain_drop,
)
from tuner.boundary_search.cube import UnitCube
from tuner.boundary_search.gp import BoundaryModel, Observations, constrained_ei, harmless_p


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
    """A sampled point: its first trial and replicates (``runs``), their observed mean and sd, the model's view."""

    trial_number: int  # the point's first run
    params: dict[str, Any]
    runs: tuple[int, ...]  # trial numbers of the point's completed runs, the first one first
    forget: float  # mean forget acc over the runs
    forget_sd: float  # sd over the runs (NaN with one run)
    retain_drop: float  # mean retain drop over the runs
    retain_drop_sd: float
    predicted_forget: float  # the model's forget acc at the point (its posterior mean)
    predicted_forget_sd: float  # the model's posterior sd there
    p_feasible: float  # model P(retain drop <= delta) at the point

    def describe(self) -> str:
        """``2 runs: forget 41.2 ± 3.1 %, retain drop 0.8 ± 0.4 points; the model's forget there 43.0 ± 2.5 %``
        (one run: no ± sd on the runs). The runs' sd is the seed-to-seed spread of one run; the model's sd is
        its uncertainty about the point's mean forget, which pools the neighbouring trials."""
        def pm(mean: float, sd: float) -> str:
            return f"{100 * mean:.1f}" + (f" ± {100 * sd:.1f}" if len(self.runs) > 1 else "")
        n = len(self.runs)
        return (f"{n} run{'s' if n > 1 else ''}: forget {pm(self.forget, self.forget_sd)} %, retain drop "
                f"{pm(self.retain_drop, self.retain_drop_sd)} points; the model's forget there "
                f"{100 * self.predicted_forget:.1f} ± {100 * self.predicted_forget_sd:.1f} %")


def _points(trials: list[FrozenTrial]) -> tuple[tuple[int, ...], ...]:
    """Indices of ``trials`` grouped by sampled point: a trial, then its replicates (user attr REPLICATE_OF)."""
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(trials):
        groups.setdefault(int(t.user_attrs.get(REPLICATE_OF, t.number)), []).append(i)
    return tuple(map(tuple, groups.values()))


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
                                forget=values[:, spec.forget_index], forget_se=se[:, 0], retain_se=se[:, 1],
                                points=_points(trials))
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

    def recommend(self, min_runs: int = 1) -> Recommendation | None:
        """Among the sampled points whose runs' mean retain drop is <= delta and that forgot (with
        ``spec.baseline_forget``, by the model: baseline - predicted forget > z * sqrt(se_b^2 + sd^2) at
        DEFAULT_CONFIDENCE), those with P(feasible) >= CONFIDENT; of these, the ones whose predicted forget is
        within one eval stderr (``resolvable_gain``) of the lowest, a difference no run resolves; of those, the
        points with at least ``min_runs`` runs first, then the lowest predicted forget. Without a point at
        CONFIDENT, the most probably feasible one (``min_runs`` runs first). None when no point qualifies."""
        first = [runs[0] for runs in self.obs.points]
        mean, sd = self.model.predict(self.obs.x[first])
        p = harmless_p(mean, sd)
        drop = np.array([self.obs.retain_drop[list(runs)].mean() for runs in self.obs.points])
        ok = np.flatnonzero((drop <= self.spec.delta) & self._forgot(mean[:, 1], sd[:, 1]))
        if not len(ok):
            return None
        confident = ok[p[ok] >= CONFIDENT]
        if len(confident):  # within one eval stderr of the lowest predicted forget, ranked by predicted forget
            ok, rank = confident[mean[confident, 1] <= mean[confident, 1].min() + self.resolvable_gain()], mean[:, 1]
        else:  # ranked by P(feasible)
            rank = -p
        confirmed = ok[[len(self.obs.points[i]) >= min_runs for i in ok]]
        ok = confirmed if len(confirmed) else ok
        i = int(ok[np.argmin(rank[ok])])
        runs = self.obs.points[i]
        forget, drops = self.obs.forget[list(runs)], self.obs.retain_drop[list(runs)]
        return Recommendation(
            self.trials[runs[0]].number, dict(self.trials[runs[0]].params), tuple(self.trials[j].number for j in runs),
            float(forget.mean()), float(forget.std(ddof=1)) if len(runs) > 1 else math.nan, float(drops.mean()),
            float(drops.std(ddof=1)) if len(runs) > 1 else math.nan, float(mean[i, 1]), float(sd[i, 1]), float(p[i]))

    def _forgot(self, forget: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Per point: baseline forget - predicted forget > z * sqrt(se_b^2 + sd^2) (all True without a baseline)."""
        if self.spec.baseline_forget is None:
            return np.ones(len(forget), dtype=bool)
        acc, se = self.spec.baseline_forget
        return acc - forget > float(norm.ppf(DEFAULT_CONFIDENCE)) * np.hypot(se, sd)

    def improvement(self, best: float, n: int = 1024) -> float:
        """The largest expected improvement in feasible forget over ``best`` (an accuracy fraction) anywhere:
        max over a fixed scrambled Sobol set of EI_f(x; best) * P(harmless | x)."""
        u = qmc.Sobol(self.cube.dim, scramble=True, seed=1).random(n)
        mean, sd = self.model.predict(self.model_x(u))
        return float(np.max(constrained_ei(mean, sd, best)))

    def resolvable_gain(self) -> float:
        """The smallest forget gain one evaluation resolves: one eval stderr of forget (``forget_stderr``), the
        noise floor's when no trial has one."""
        se = self.forget_stderr()
        return self.spec.noise_floor * self.spec.delta if math.isnan(se) else se

    def forget_stderr(self) -> float:
        """One eval stderr of forget: the median lm-eval stderr of the trials (NaN when none has one)."""
        se = self.obs.forget_se[~np.isnan(self.obs.forget_se)]
        return float(np.median(se)) if len(se) else math.nan

    def ambiguous_share(self, n: int = 1024) -> float:
        """Share of the unit cube (a fixed scrambled Sobol set) where 0.1 < P(harmless) < 0.9."""
        u = qmc.Sobol(self.cube.dim, scramble=True, seed=0).random(n)
        p = self.model.p_harmless(self.model_x(u))
        return float(np.mean((p > AMBIGUOUS[0]) & (p < AMBIGUOUS[1])))
