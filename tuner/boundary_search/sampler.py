"""``BoundarySampler``: an Optuna sampler that maps the harmless boundary, then pushes forgetting inside it.

    sampler = BoundarySampler(ModelSpec(baseline_retain=0.99, boundary=space.boundary, delta=0.02), seed=0)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler, storage=...)

Trial numbers below ``n_startup``: Optuna's scrambled Sobol ``QMCSampler``. After that, on the GPs of
``BoundaryState`` (conditioned on the running trials' predicted means, the kriging believer), each trial
maximises over a candidate set (scrambled Sobol, plus a ``face_share`` of it copied onto the range's faces, edges and
corners, where the best harmless forget may sit and Sobol points never land) either

    straddle (Bryan et al. 2005)      1.96 sd_r(x) - |mu_r(x) - ln 2|           level set "retain drop = delta"
    constrained EI (Gardner 2014)     EI_f(x; best feasible forget) * P(harmless | x)

the latter on every ``exploit_every``-th model trial, unless the recommended point (``BoundaryState.recommend``)
has fewer than ``stop.confirm_runs`` runs, completed or running: that turn replicates it instead (the same
coefficients, user attrs REPLICATE_OF / REPLICATE), so the model sees the seed-to-seed noise at the answer before
the search stops on it. Training seeds (user attr SEED_OFFSET, which the searcher passes on: training seed =
``seed + offset``): with ``fresh_seeds`` (the default) every trial trains with its own, offset = its trial number,
so every observation is an independent draw of the seed noise and the model learns the seeds' mean landscape;
without, first runs share ``seed`` (one seed's landscape) and replicate k trains with ``seed + k``.

Candidates closer than ``min_distance`` (unit cube) to a completed, running or failed trial are skipped, so
parallel trials never repeat a point and a failed point (no values, not in the model) is not tried again. All
randomness comes from ``seed`` and the trial number: the same study history gives the same proposal, also after a
resume.
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
from scipy.stats import qmc

from search_spaces.facts import REPLICATE, REPLICATE_OF, SEED_OFFSET
from tuner.boundary_search.cube import UnitCube
from tuner.boundary_search.gp import THRESHOLD, constrained_ei
from tuner.boundary_search.state import BoundaryState, ModelSpec
from tuner.boundary_search.stopping import StopDecision, StopRule, decide


@dataclass(frozen=True)
class BoundarySamplerConfig:
    n_startup: int = 8
    exploit_every: int = 2
    n_candidates: int = 2048
    min_distance: float = 0.02
    fresh_seeds: bool = True  # every trial its own training seed (offset = trial number); False: first runs share one
    # candidates copied onto the range's faces, edges and corners (``_on_faces``), as a share of n_candidates. World 0
    # (calibration, 20 replay seeds): at the stop a regret of 6.6 forget points against 9.5 without (CONFIDENT 0.9:
    # 8.2 against 9.7), picks as often harmless; its best harmless forget sits in a corner of the range
    face_share: float = 0.25
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
        if self.config.fresh_seeds:
            study._storage.set_trial_user_attr(trial._trial_id, SEED_OFFSET, trial.number)
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
        u = _on_faces(qmc.Sobol(cube.dim, scramble=True, rng=rng).random(cfg.n_candidates), cfg.face_share, rng)
        model = state.model.with_pending(state.model_x(pending))
        mean, sd = model.predict(state.model_x(u))
        exploit = (trial.number - cfg.n_startup) % cfg.exploit_every == cfg.exploit_every - 1
        if exploit and (replicate := self._replicate(study, trial, state)) is not None:
            return replicate
        score = self._constrained_ei(state, model, pending, mean, sd) if exploit else \
            1.96 * sd[:, 0] - np.abs(mean[:, 0] - THRESHOLD)
        taken = np.vstack([state.unit_x, pending,
                           _unit_points(cube, study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))])
        dist = np.min(np.linalg.norm(u[:, None, :] - taken[None, :, :], axis=-1), axis=1)
        score = np.where(dist >= cfg.min_distance, score, -np.inf)
        return cube.from_unit(u[int(np.argmax(score))])

    def _constrained_ei(self, state: BoundaryState, model: Any, pending: np.ndarray, mean: np.ndarray,
                        sd: np.ndarray) -> np.ndarray:
        """``constrained_ei`` over the best feasible forget: the lowest posterior mean at the completed and
        running trials the model calls harmless (plug-in EI for noisy observations)."""
        im, _ = model.predict(state.model_x(np.vstack([state.unit_x, pending])))
        feasible = im[im[:, 0] <= THRESHOLD, 1]
        return constrained_ei(mean, sd, float(feasible.min()) if len(feasible) else None)

    def _replicate(self, study: optuna.Study, trial: FrozenTrial, state: BoundaryState) -> dict[str, Any] | None:
        """The recommended point's coefficients again, as replicate k (one more than any earlier run of it has),
        when it has fewer than ``stop.confirm_runs`` runs completed or running; else None."""
        rec = state.recommend()
        if rec is None:
            return None
        runs = [t for t in study.get_trials(deepcopy=False)
                if t.number != trial.number and rec.trial_number in (t.number, t.user_attrs.get(REPLICATE_OF))]
        alive = [t for t in runs if t.state in (TrialState.COMPLETE, TrialState.RUNNING)]
        if len(alive) >= self.config.stop.confirm_runs:
            return None
        k = 1 + max(int(t.user_attrs.get(REPLICATE, 0)) for t in runs)
        study._storage.set_trial_user_attr(trial._trial_id, REPLICATE_OF, rec.trial_number)
        study._storage.set_trial_user_attr(trial._trial_id, REPLICATE, k)
        if not self.config.fresh_seeds:
            study._storage.set_trial_user_attr(trial._trial_id, SEED_OFFSET, k)
        return dict(rec.params)


def _unit_points(cube: UnitCube, trials: list[FrozenTrial]) -> np.ndarray:
    """The unit-cube points of the trials that have every searched parameter, (0, dim) for none."""
    trials = [t for t in trials if all(n in t.params for n in cube.names)]
    return cube.to_unit({n: [t.params[n] for t in trials] for n in cube.names}) if trials else np.empty((0, cube.dim))


def _on_faces(u: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """``u`` plus copies of its first ``share`` of rows with each coordinate, with probability 1/dim, moved to the
    nearer end of its range (0 or 1): points on the range's faces, edges and corners."""
    faces = u[: int(share * len(u))].copy()
    move = rng.random(faces.shape) < 1 / u.shape[1]
    faces[move] = np.round(faces[move])
    return np.vstack([u, faces])

