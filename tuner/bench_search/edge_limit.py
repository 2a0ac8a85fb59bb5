"""How close to the edge the answer noise lets a recommendation go: the regret of a pick that must be truly
harmless in ``confidence`` of seeds when it is judged on k runs of its retain drop.

    regret_given_runs(answers, delta=0.02, runs=(2, 4, 8, 16))   # {k: forget points}

With sigma the sd of one retain answer at the truth's best harmless point (seed and eval noise, as the answer
model draws them), a pick read off k unbiased runs is harmless in ``confidence`` of seeds only where its true
drop is at most

    d_k = max(0, delta - z(confidence) * sigma / sqrt(k))

so it gives up  best feasible forget at d_k  -  best feasible forget at delta  forget points. A model that pools
neighbouring trials sees more than the point's own runs, so read k as the runs' worth of evidence at the answer:
the numbers say how much evidence the acceptance (regret <= 5 at >= 90 % harmless) asks for on a table, not
what any method must lose.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from search_spaces.facts import retain_drop
from tuner.bench_search.answers import RealisticAnswers

RUNS = (2, 4, 8, 16)
CONFIDENCE = 0.9  # the acceptance's share of truly harmless recommendations


def regret_given_runs(answers: RealisticAnswers, delta: float, runs: tuple[int, ...] = RUNS,
                      confidence: float = CONFIDENCE) -> dict[int, float]:
    """Forget points given up at ``confidence`` with k runs at the answer, per k (NaN when no point is that
    harmless, or none is harmless at all)."""
    surface = answers.surface
    best = surface.best_feasible_forget(delta)
    if np.isnan(best):
        return {k: float("nan") for k in runs}
    sigma = answers.answer_sd(_best_point(answers, delta))[1]
    z = float(norm.ppf(confidence))
    return {k: 100 * (surface.best_feasible_forget(max(0.0, delta - z * sigma / np.sqrt(k))) - best) for k in runs}


def _best_point(answers: RealisticAnswers, delta: float, per_axis: int = 41) -> dict[str, float]:
    """Params of the lowest truth forget with drop <= delta on a ``per_axis`` mesh of the table's range."""
    surface = answers.surface
    mesh = np.meshgrid(*(np.linspace(g[0], g[-1], per_axis) for g in surface.grid), indexing="ij")
    coords = np.stack([c.ravel() for c in mesh], axis=-1)
    forget, retain = surface.interp(coords)[:, :2].T
    ok = np.flatnonzero(retain_drop(surface.baseline_retain, retain) <= delta)
    at = coords[ok[np.argmin(forget[ok])]]
    return {a.name: float(10 ** c if a.log else c) for a, c in zip(surface.axes, at, strict=True)}
