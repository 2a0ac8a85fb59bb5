"""The search methods the replay benchmark compares, each a seeded Optuna sampler plus its boundary model.

    random     RandomSampler                        + today's analysis (logistic P(harmless), z-test pick)
    tpe        today's kl_boundary: multivariate TPE  + today's analysis
    gp         Optuna GPSampler with the constraint   + today's analysis
    boundary   BoundarySampler                      + its own GP model and recommendation

``estimate`` returns what the method believes after the completed trials: P(harmless) over parameter
columns (None when it has no model) and the recommended trial number. ``shared_estimate`` reads every
method's trials through one estimator, the boundary sampler's model (``BoundaryState``), so that methods
are compared on where they put their trials, not on how their own analysis reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

from search_spaces import get_space
from search_spaces.facts import CONFIRM_RUNS, FORGET_INDEX, RETAIN_INDEX, STDERR_ATTRS
from trainables.evaluation.result import TaskScore
from tuner.analysis.boundary import analyse
from tuner.boundary_search import BoundarySampler, BoundaryState, ModelSpec
from tuner.orchestration.samplers import make_sampler
from tuner.records.schema import BASELINE_ID, TrialRow

METHODS = ("random", "tpe", "gp", "boundary")
PFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]
BOUNDARY = get_space("kl_boundary").boundary  # the tables are grids of kl_boundary's space


@dataclass(frozen=True)
class Estimate:
    p_harmless: PFn | None
    recommended: int | None  # trial number


def make(name: str, seed: int, budget: int, baseline_retain: float, delta: float,
         baseline_forget: tuple[float, float] | None = None) -> optuna.samplers.BaseSampler:
    """The method's sampler as a search builds it (``baseline_forget``: (acc, stderr), as the search has it)."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {METHODS}")
    return make_sampler(name, seed, budget, baseline_retain, delta, BOUNDARY, baseline_forget)


def estimate(sampler: optuna.samplers.BaseSampler, study: optuna.Study, baseline: tuple[float, float],
             n_eval: int, delta: float) -> Estimate:
    """The method's boundary model and recommendation after the study's completed trials."""
    if isinstance(sampler, BoundarySampler):
        return _state_estimate(sampler.state(study))
    return _analysis_estimate(study, baseline, n_eval, delta)


def shared_estimate(sampler: optuna.samplers.BaseSampler, study: optuna.Study, spec: ModelSpec) -> Estimate:
    """The boundary model with ``spec`` fitted on the study's completed trials (the sampler's own fit, when it
    is a boundary sampler with that spec)."""
    if isinstance(sampler, BoundarySampler) and sampler.spec == spec:
        return _state_estimate(sampler.state(study))
    return _state_estimate(BoundaryState.from_study(study, spec))


def shared_spec(baseline_retain: float, delta: float, baseline_forget: tuple[float, float] | None = None
                ) -> ModelSpec:
    return ModelSpec(baseline_retain=baseline_retain, boundary=BOUNDARY, delta=delta, forget_index=FORGET_INDEX,
                     retain_index=RETAIN_INDEX, baseline_forget=baseline_forget)


def _state_estimate(state: BoundaryState | None) -> Estimate:
    """The model and the search's answer (confirmed points first, as the report recommends)."""
    rec = state.recommend(CONFIRM_RUNS) if state else None
    return Estimate(state.p_harmless if state else None, rec.trial_number if rec else None)


def _analysis_estimate(study: optuna.Study, baseline: tuple[float, float], n_eval: int, delta: float) -> Estimate:
    """Today's report: ``tuner.analysis.boundary.analyse`` on the trials as results-table rows."""
    def score(task: str, acc: float, se: float) -> TaskScore:
        return TaskScore(task, acc, se, n_eval)

    def binomial(acc: float) -> float:
        return float(np.sqrt(acc * (1 - acc) / (n_eval - 1)))

    rows = [TrialRow(str(t.number), status="done", params=dict(t.params),
                     forget=score("forget", t.values[FORGET_INDEX], t.user_attrs.get(STDERR_ATTRS[FORGET_INDEX], 0.0)),
                     retain=score("retain", t.values[RETAIN_INDEX], t.user_attrs.get(STDERR_ATTRS[RETAIN_INDEX], 0.0)))
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    base = TrialRow(BASELINE_ID, status="done", forget=score("forget", baseline[0], binomial(baseline[0])),
                    retain=score("retain", baseline[1], binomial(baseline[1])))
    a = analyse(rows, base, delta)
    return Estimate(a.fit.p_harmless if a.fit else None, int(a.recommended) if a.recommended else None)
