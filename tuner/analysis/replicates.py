"""A sampled point's runs: the trial and its replicates (the same coefficients, other training seeds).

    r = Replicates.of(best, scored, baseline)   # runs at best's coefficients: ids, mean ± sd of forget and drop
    r.describe()                                # "2 runs (a1, b2): forget 41.2 ± 3.1 %, retain drop 0.8 ± 0.4 pts"
    r.forget_score(best.forget)                 # the point's forget as one score, for the tie tests

The boundary sampler replicates the point it recommends before it stops (``tuner.boundary_search.sampler``); a
replicate's row carries the training ``seed`` it ran with (as does every row the sampler gave a seed offset), every
other param equal to the first run's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from search_spaces.facts import SEED_FIELD, retain_drop
from trainables.evaluation.result import TaskScore
from tuner.records.schema import TrialRow


@dataclass(frozen=True)
class Replicates:
    runs: list[str]  # trial ids, the recommended one first
    forget_mean: float  # accuracy fractions
    forget_sd: float  # NaN with one run
    retain_drop_mean: float
    retain_drop_sd: float

    @classmethod
    def of(cls, best: TrialRow, scored: list[TrialRow], baseline: TrialRow) -> Replicates:
        point = _coefficients(best)
        runs = [best] + [t for t in scored if t is not best and _coefficients(t) == point]
        forget = np.array([t.forget.acc for t in runs])
        drop = np.array([retain_drop(baseline.retain.acc, t.retain.acc) for t in runs])

        def sd(x: np.ndarray) -> float:
            return float(x.std(ddof=1)) if len(x) > 1 else math.nan
        return cls([t.trial_id for t in runs], float(forget.mean()), sd(forget), float(drop.mean()), sd(drop))

    def forget_score(self, first: TaskScore) -> TaskScore:
        """The point's forget: the runs' mean, with standard error max(eval stderr, runs' sd) / sqrt(runs) (a run
        varies by at least its eval stderr); one run: ``first``, the run's own score."""
        n = len(self.runs)
        if n == 1:
            return first
        return replace(first, acc=self.forget_mean, stderr=max(first.stderr, self.forget_sd) / math.sqrt(n))

    def describe(self) -> str:
        if len(self.runs) == 1:
            return "1 run (no replicate)"

        def pm(mean: float, sd: float) -> str:
            return f"{100 * mean:.1f} ± {100 * sd:.1f}"
        return (f"{len(self.runs)} runs ({', '.join(self.runs)}): forget {pm(self.forget_mean, self.forget_sd)} %, "
                f"retain drop {pm(self.retain_drop_mean, self.retain_drop_sd)} pts")


def _coefficients(t: TrialRow) -> dict[str, object]:
    return {k: v for k, v in t.params.items() if k != SEED_FIELD}
