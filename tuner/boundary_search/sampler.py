"""``BoundarySampler``: an Optuna sampler that maps the harmless boundary, then pushes forgetting inside it.

    sampler = BoundarySampler(ModelSpec(baseline_retain=0.99, boundary=space.boundary, delta=0.02), seed=0)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler, storage=...)

Trial numbers below ``n_startup``: Optuna's scrambled Sobol ``QMCSampler``. After that, on the GPs of
``BoundaryState`` (conditioned on the running trials' predicted means, the kriging believer), each trial
maximises over a scrambled Sobol candidate set either

    straddle (Bryan et al. 2005)      1.96 sd_r(x) - |mu_r(x) - ln 2|           level set "retain drop = delta"
    constrained EI (Gardner 2014)     EI_f(x; best feasible forget) * P(harmless | x)

the latter on every ``exploit_every``-th model trial. Candidates closer than ``min_distance`` (unit cube)
to a completed, running or failed trial are skipped, so parallel trials never repeat a point and a failed
point (no values, not in the model) is not tried again. All randomness comes
from ``seed`` and the trial number: the same study history gives the same proposal, also after a resume.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, QMCSampler
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import norm, qmc

from tuner.boundary_search.cube import UnitCube
from tuner.boundary_search.gp import THRESHOLD
from tuner.boundary_search.state import BoundaryState, ModelSpec
from tuner.boundary_search.stopping import StopDecision, StopRule, decide


@dataclass(frozen=True)
class BoundarySamplerConfig:
    n_startup: int = 8
    exploit_every: int = 2
    n_candidates: int = 2048
    min_distance: float = 0.02
    stop: StopRule = field(default_factory=StopRule)


class BoundarySampler(BaseSampler):
    def __init__(self, spec: ModelSpec, config: BoundarySamplerConfig | None = None, seed: int | None = None):
        self.spec, self.config = spec, config or BoundarySamplerConfig()
        self._seed = random.SystemRandom().randrange(2**31) if seed is None else seed
        with warnings.catch_warnings():  # Optuna flags QMCSampler experimental; its use here is tested
            warnings.filterwarnings("ignore", message=r"QMCSampler is experimental", category=ExperimentalWarning)
            self._qmc = QMCSampler(scramble=True, seed=self._seed, warn_independent_sampling=False)
        self._cache: dict[tuple[int, ...], BoundaryState] = {}

    def __getstate__(self) -> dict[str, Any]:  # pickled into Tune's searcher state: drop the fitted models
        return {**self.__dict__, "_cache": {}}

    # --- the model ----------------------------------------------------------------------------------------
    def state(self, study: optuna.Study) -> BoundaryState | None:
        """The model of the study's completed trials (cached per set of completed trials)."""
        key = tuple(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if key not in self._cache:
            self._cache = {key: BoundaryState.from_study(study, self.spec)}
        return self._cache[key]

    def stop_decision(self, study: optuna.Study, trial_ids: Mapping[int, str] | None = None) -> StopDecision:
        return decide(self.state(study), self.config.stop, trial_ids)

    # --- Optuna's sampler interface ------------------------------------------------------------------------
    def _modelled(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return trial.number >= self.config.n_startup and self.state(study) is not None

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if not self._modelled(study, trial):
            return self._qmc.infer_relative_search_space(study, trial)
        cube = self.state(study).cube
        return dict(zip(cube.names, cube.dists, strict=True))

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        if not self._modelled(study, trial):
            return self._qmc.sample_relative(study, trial, search_space)
        return self._propose(study, trial)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._qmc.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._qmc.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._qmc.after_trial(study, trial, state, values)

    # --- acquisition -------------------------------------------------------------------------------------
    def _propose(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        state = self.state(study)
        cube, cfg = state.cube, self.config
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.number != trial.number]
        pending = _unit_points(cube, running)
        rng = np.random.default_rng([self._seed, trial.number])
        u = qmc.Sobol(cube.dim, scramble=True, rng=rng).random(cfg.n_candidates)
        model = state.model.with_pending(state.model_x(pending))
        mean, sd = model.predict(state.model_x(u))
        exploit = (trial.number - cfg.n_startup) % cfg.exploit_every == cfg.exploit_every - 1
        score = self._constrained_ei(state, model, pending, mean, sd) if exploit else \
            1.96 * sd[:, 0] - np.abs(mean[:, 0] - THRESHOLD)
        taken = np.vstack([state.unit_x, pending,
                           _unit_points(cube, study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))])
        dist = np.min(np.linalg.norm(u[:, None, :] - taken[None, :, :], axis=-1), axis=1)
        score = np.where(dist >= cfg.min_distance, score, -np.inf)
        return cube.from_unit(u[int(np.argmax(score))])

    def _constrained_ei(self, state: BoundaryState, model: Any, pending: np.ndarray, mean: np.ndarray,
                        sd: np.ndarray) -> np.ndarray:
        """EI of forget (lower is better) over the best feasible forget, times P(harmless); P alone when
        nothing is feasible yet. Incumbents are posterior means (plug-in EI for noisy observations) at the
        completed and running trials the model calls harmless."""
        p = norm.cdf((THRESHOLD - mean[:, 0]) / sd[:, 0])
        im, _ = model.predict(state.model_x(np.vstack([state.unit_x, pending])))
        feasible = im[im[:, 0] <= THRESHOLD, 1]
        if not len(feasible):
            return p
        z = (feasible.min() - mean[:, 1]) / sd[:, 1]
        return sd[:, 1] * (z * norm.cdf(z) + norm.pdf(z)) * p


def _unit_points(cube: UnitCube, trials: list[FrozenTrial]) -> np.ndarray:
    """The unit-cube points of the trials that have every searched parameter, (0, dim) for none."""
    trials = [t for t in trials if all(n in t.params for n in cube.names)]
    return cube.to_unit({n: [t.params[n] for t in trials] for n in cube.names}) if trials else np.empty((0, cube.dim))
