"""Replay one seeded method against a table, as a Tune run would drive it: ``study.ask`` until
``max_concurrent`` trials are pending, answer the oldest with its nearest table point (values and lm-eval
stderrs as user attrs), ``study.tell``, and score the method's beliefs after every completed trial.

    trace = replay("boundary", table, seed=0, max_concurrent=4, max_trials=64, delta=0.02)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import optuna

from tuner.bench_search.methods import Estimate, PFn, estimate, make
from tuner.bench_search.table import Table
from tuner.boundary_search import BoundarySampler
from tuner.boundary_search.crossing import first_crossing

N_ALONG = 129  # points per column where a model's boundary is read


@dataclass
class Trace:
    """Per completed-trial count n = 1..max_trials: the method's boundary error (decades), regret (points,
    NaN without a recommendation) and whether the recommendation is feasible; ``stopped_at`` is the n at which
    the boundary sampler's stopping rule first fired (None: never, or another method)."""

    method: str
    seed: int
    max_concurrent: int
    error: list[float] = field(default_factory=list)
    regret: list[float] = field(default_factory=list)
    feasible: list[bool] = field(default_factory=list)
    stopped_at: int | None = None


def replay(method: str, table: Table, seed: int, max_concurrent: int, max_trials: int, delta: float) -> Trace:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make(method, seed, max_trials, table.baseline_retain, delta)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    dists, pending, trace = table.distributions(), deque(), Trace(method, seed, max_concurrent)
    truth, best = table.boundary(delta), table.best_feasible_forget(delta)
    for n in range(1, max_trials + 1):
        while len(pending) < max_concurrent and n - 1 + len(pending) < max_trials:
            pending.append(study.ask(dists))
        trial = pending.popleft()
        i = table.nearest(trial.params)
        trial.set_user_attr("forget_stderr", float(table.forget_se[i]))
        trial.set_user_attr("retain_stderr", float(table.retain_se[i]))
        study.tell(trial, [float(table.forget[i]), float(table.retain[i])])
        est = estimate(sampler, study, (table.baseline_forget, table.baseline_retain), table.n_eval, delta)
        trace.error.append(boundary_error(table, est, truth))
        forget, drop = _recommended(study, est, table)
        trace.regret.append(100 * (forget - best))
        trace.feasible.append(bool(drop <= delta))
        if trace.stopped_at is None and isinstance(sampler, BoundarySampler) and sampler.stop_decision(study).stop:
            trace.stopped_at = n
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


def _recommended(study: optuna.Study, est: Estimate, table: Table) -> tuple[float, float]:
    """(forget, retain drop) of the recommended trial's table point; (NaN, inf) without one."""
    if est.recommended is None:
        return float("nan"), float("inf")
    i = table.nearest(study.trials[est.recommended].params)
    return float(table.forget[i]), float(table.baseline_retain - table.retain[i])
