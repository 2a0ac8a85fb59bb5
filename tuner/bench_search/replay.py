"""Replay one seeded method against a table, as a Tune run would drive it: ``study.ask`` until
``max_concurrent`` trials are pending, answer the oldest (``answers``: by default the landscape of the training seed
the sampler gave the trial, interpolated, plus fresh eval noise; with ``snap`` the nearest grid point's frozen
values; lm-eval stderrs as user attrs), ``study.tell``, and score after every completed trial, against the
noise-free truth, both the method's own beliefs and those of the shared estimator (the boundary model fitted on
the method's trials).

    trace = replay("boundary", table, seed=0, max_concurrent=4, max_trials=64, delta=0.02)
    trace = replay("tpe", table, seed=0, max_concurrent=1, max_trials=64, delta=0.02, snap=True)

Each sampler is built as a real search with ``--num-samples max_trials`` would build it (TPE and GP: random
startup for max(4, max_trials // 3) trials; the boundary sampler: its fixed Sobol start).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import optuna

from search_spaces.facts import SEED_OFFSET, STDERR_ATTRS, retain_drop
from tuner.bench_search.answers import AnswerModel, Answers, make_answers
from tuner.bench_search.methods import Estimate, PFn, estimate, make, shared_estimate, shared_spec
from tuner.bench_search.synthetic import binomial_se
from tuner.bench_search.table import Table
from tuner.boundary_search import BoundarySampler
from tuner.boundary_search.crossing import first_crossing
from tuner.orchestration.samplers import set_retain_constraint

N_ALONG = 129  # points per column where a model's boundary is read


@dataclass
class Trace:
    """Per completed-trial count n = 1..max_trials: the method's boundary error (decades), regret (points,
    NaN without a recommendation) and whether the recommendation is feasible, on the truth; ``shared_*`` the
    same through the shared estimator; ``p_feasible`` the method's own P(retain drop <= delta) at its
    recommendation (NaN without one or without a model), which ``metrics.calibration`` holds against the truth;
    ``stopped_at`` is the n at which a search whose boundary sampler's stopping rule first fired ends: the trials
    pending then finish, no new ones start (None: never, or another method)."""

    method: str
    seed: int
    max_concurrent: int
    error: list[float] = field(default_factory=list)
    regret: list[float] = field(default_factory=list)
    feasible: list[bool] = field(default_factory=list)
    p_feasible: list[float] = field(default_factory=list)
    stopped_at: int | None = None
    shared_error: list[float] = field(default_factory=list)
    shared_regret: list[float] = field(default_factory=list)
    shared_feasible: list[bool] = field(default_factory=list)

    def add(self, own: tuple[float, float, bool], shared: tuple[float, float, bool], p_feasible: float) -> None:
        """One completed trial's (error, regret, feasible), by the method's own estimate and the shared one, and
        the own estimate's P(harmless) at its recommendation."""
        for name, v in zip(("error", "regret", "feasible", "shared_error", "shared_regret", "shared_feasible",
                            "p_feasible"), (*own, *shared, p_feasible), strict=True):
            getattr(self, name).append(v)

    def shared(self) -> Trace:
        """This trace as scored through the shared estimator (no stopping rule of its own)."""
        return Trace(self.method, self.seed, self.max_concurrent, self.shared_error, self.shared_regret,
                     self.shared_feasible)


def replay(method: str, table: Table, seed: int, max_concurrent: int, max_trials: int, delta: float,
           snap: bool = False, model: AnswerModel | None = None) -> Trace:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base_forget = (table.baseline_forget, float(binomial_se(table.baseline_forget, table.n_eval)))  # as lm-eval has it
    sampler = make(method, seed, max_trials, table.baseline_retain, delta, base_forget)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    answers = make_answers(table, seed, snap, model)
    dists, pending, trace = table.distributions(), deque(), Trace(method, seed, max_concurrent)
    truth, best = answers.boundary(delta), answers.best_feasible_forget(delta)
    spec = shared_spec(table.baseline_retain, delta, base_forget)

    def score(est: Estimate) -> tuple[float, float, bool]:
        forget, retain = _recommended(study, est, answers)
        feasible = bool(retain_drop(table.baseline_retain, retain) <= delta)
        return boundary_error(table, est, truth), 100 * (forget - best), feasible

    for n in range(1, max_trials + 1):
        while len(pending) < max_concurrent and n - 1 + len(pending) < max_trials:
            pending.append(study.ask(dists))
        trial = pending.popleft()
        # the training seed offset the sampler gave the trial (the searcher's): set in storage after the Trial object
        # cached its own attrs
        offset = int(study.get_trials(deepcopy=False)[trial.number].user_attrs.get(SEED_OFFSET, 0))
        a = answers.answer(trial.params, offset)
        for attr, se in zip(STDERR_ATTRS, (a.forget_se, a.retain_se), strict=True):
            trial.set_user_attr(attr, se)
        set_retain_constraint(trial, a.retain, table.baseline_retain, delta)  # as the search's searcher does
        study.tell(trial, [a.forget, a.retain])
        own = estimate(sampler, study, (table.baseline_forget, table.baseline_retain), table.n_eval, delta)
        trace.add(score(own), score(shared_estimate(sampler, study, spec)), _p_at_recommended(study, own))
        if trace.stopped_at is None and isinstance(sampler, BoundarySampler) and sampler.stop_decision(study).stop:
            trace.stopped_at = n + len(pending)  # the pending trials still finish (they complete next, oldest first)
    return trace


def model_boundary(table: Table, p_harmless: PFn | None) -> np.ndarray:
    """log10 remove* per table column where the model's P(harmless) first falls below 1/2 (upper end if never)."""
    axis = table.axes[table.names.index(table.along)]
    cols = {k: v.ravel() for k, v in table.columns().items()}
    n_cols = len(next(iter(cols.values())))
    x = np.linspace(axis.coord(axis.low), axis.coord(axis.high), N_ALONG)
    if p_harmless is None:
        return np.full(table.boundary(0.0).shape, x[-1])
    grid = {k: np.repeat(v, N_ALONG) for k, v in cols.items()} | {table.along: np.tile(10.0 ** x, n_cols)}
    p = np.asarray(p_harmless(grid)).reshape(n_cols, N_ALONG)
    out = np.array([first_crossing(x, 1 - row, 0.5) for row in p])
    return out.reshape(next(iter(table.columns().values())).shape)


def boundary_error(table: Table, est: Estimate, truth: np.ndarray) -> float:
    """Mean over the table's columns of |log10 remove*_model - log10 remove*_table| (decades)."""
    return float(np.mean(np.abs(model_boundary(table, est.p_harmless) - truth)))


def _p_at_recommended(study: optuna.Study, est: Estimate) -> float:
    """The estimate's P(harmless) at its recommended trial's params; NaN without a recommendation or a model."""
    if est.recommended is None or est.p_harmless is None:
        return float("nan")
    params = study.trials[est.recommended].params
    return float(np.asarray(est.p_harmless({k: np.array([v]) for k, v in params.items()})).ravel()[0])


def _recommended(study: optuna.Study, est: Estimate, answers: Answers) -> tuple[float, float]:
    """True (forget, retain) at the recommended trial's params; (NaN, -inf) without one."""
    if est.recommended is None:
        return float("nan"), -float("inf")
    return answers.truth(study.trials[est.recommended].params)
