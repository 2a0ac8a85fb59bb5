"""The Optuna samplers a sampled space can name (``SearchSpace.sampler``), each seeded, and the constraint
"retain drop <= delta" they all honour. No Ray import here: the replay benchmark builds the same samplers.

    make_sampler("boundary", seed=0, num_samples=40, baseline_retain=0.99, delta=0.02, boundary=space.boundary)
    set_retain_constraint(trial, retain=0.95, baseline_retain=0.99, delta=0.02)   # before study.tell(trial, ...)

The constraint is Optuna's ``Trial.set_constraint`` (``constraints:retain_drop`` in the trial's system attrs),
set on each trial before it is told (``tuner.orchestration.searchers`` in a search); TPE, NSGA-II and
GP read it from the told trials, and ``study.best_trials`` keeps only feasible ones. The boundary sampler models
the same rule itself (``ModelSpec``). Objective order everywhere: (forget_acc, retain_acc), as
``search_spaces.facts.OBJECTIVES`` says.
"""

from __future__ import annotations

import optuna

from search_spaces import Boundary
from search_spaces.facts import FORGET_INDEX, RETAIN_INDEX, retain_drop
from tuner.boundary_search import BoundarySampler, ModelSpec

RETAIN_CONSTRAINT = "retain_drop"


def retain_violation(retain: float, baseline_retain: float | None, delta: float) -> float:
    """``baseline_retain - retain - delta``: <= 0 is feasible; 0 without a baseline retain score."""
    return 0.0 if baseline_retain is None else retain_drop(baseline_retain, retain) - delta


def set_retain_constraint(trial: optuna.Trial, retain: float, baseline_retain: float | None, delta: float) -> None:
    """"retain drop <= delta" on a trial that is still open (before ``study.tell``)."""
    trial.set_constraint(RETAIN_CONSTRAINT, retain_violation(retain, baseline_retain, delta))


def make_sampler(name: str, seed: int, num_samples: int, baseline_retain: float | None, delta: float,
                 boundary: Boundary | None = None,
                 baseline_forget: tuple[float, float] | None = None) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler; all but the boundary sampler (which needs the space's ``boundary``) take the
    constraint from the told trials."""
    if name == "boundary":
        if baseline_retain is None or boundary is None:
            raise ValueError("the boundary sampler needs the baseline's retain accuracy and the space's boundary")
        return BoundarySampler(ModelSpec(baseline_retain=baseline_retain, boundary=boundary, delta=delta,
                                         forget_index=FORGET_INDEX, retain_index=RETAIN_INDEX,
                                         baseline_forget=baseline_forget), seed=seed)
    startup = max(4, num_samples // 3)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)
