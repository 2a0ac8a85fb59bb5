"""The Optuna samplers a sampled space can name (``SearchSpace.sampler``), each seeded and constrained by
"retain drop <= delta" (``tuner.orchestration.constrained_samplers``: Optuna's own samplers would evaluate the
constraint before the trial's values exist). No Ray import here: the replay benchmark builds the same samplers.

    make_sampler("boundary", seed=0, num_samples=40, baseline_retain=0.99, delta=0.02, boundary=space.boundary)

Objective order everywhere: (forget_acc, retain_acc), as ``search_spaces.facts.OBJECTIVES`` says.
"""

from __future__ import annotations

import functools

import optuna

from search_spaces import Boundary
from search_spaces.facts import FORGET_INDEX, RETAIN_INDEX, retain_drop
from tuner.boundary_search import BoundarySampler, ModelSpec
from tuner.orchestration import constrained_samplers as constrained


def retain_constraint(trial: optuna.trial.FrozenTrial, baseline_retain: float | None, delta: float) -> list[float]:
    """Optuna ``constraints_func``: ``baseline_retain - retain - delta`` (<= 0 is feasible); a module-level
    function (bound with ``functools.partial``) so the searcher pickles into Tune's experiment state."""
    if baseline_retain is None or not trial.values:
        return [0.0]
    return [retain_drop(baseline_retain, trial.values[RETAIN_INDEX]) - delta]


def make_sampler(name: str, seed: int, num_samples: int, baseline_retain: float | None, delta: float,
                 boundary: Boundary | None = None) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler with the "retain drop <= delta" constraint."""
    if name == "boundary":
        if baseline_retain is None or boundary is None:
            raise ValueError("the boundary sampler needs the baseline's retain accuracy and the space's boundary")
        return BoundarySampler(ModelSpec(baseline_retain=baseline_retain, boundary=boundary, delta=delta,
                                         forget_index=FORGET_INDEX, retain_index=RETAIN_INDEX), seed=seed)
    constraints = functools.partial(retain_constraint, baseline_retain=baseline_retain, delta=delta)
    startup = max(4, num_samples // 3)
    if name == "nsga2":
        return constrained.NSGAIISampler(seed=seed, constraints_func=constraints,
                                         population_size=max(4, num_samples // 3))
    if name == "gp":
        return constrained.GPSampler(seed=seed, constraints_func=constraints, n_startup_trials=startup)
    return constrained.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup,
                                  constraints_func=constraints)
