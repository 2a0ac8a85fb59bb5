"""What one trial did, against the baseline: the one definition of harmless, and the outcome states built on it.

    p, levels = retain_p(trial, baseline, delta, z, p_model)   # P(retain drop <= delta) and its two levels
    side = retain_side(drop, delta, p, levels)                  # RetainSide.HARMLESS / UNCERTAIN / DAMAGING
    state = classify(trial, baseline, delta, z, p_model)        # OutcomeState, e.g. "forgets_uncertain"

The retain side has three outcomes, from one probability P = P(retain drop <= delta) and two levels (lo, hi),
drop = baseline retain - trial retain on the point estimate:

    harmless   drop <= delta and P >= hi       (retain drop confidently within delta)
    damaging   drop >  delta and P <= lo       (confidently beyond delta)
    uncertain  neither

so no trial is harmless with an observed drop above delta, nor damaging with one at or below it. With a model
(the boundary sampler's GP, ``ModelFit.p_at``: the P the recommendation and the harmless map read) P is the
model's at the trial's params and (lo, hi) = ``AMBIGUOUS`` = (0.1, 0.9). Without one (grid and TPE searches) P is
the trial's own Phi((delta - drop) / se), se = sqrt(se_b^2 + se_t^2) from lm-eval's stderrs, and (lo, hi) =
(1 - confidence, confidence): the two one-sided z-tests delta - drop > z * se and drop - delta > z * se.

The states (``OutcomeState``, the console, the report's table and plots and the MLflow ``state`` tag print them):

    no_effect            retain harmless,  forget not dropped
    forgets_harmlessly   retain harmless,  forget dropped          (the target)
    uncertain            retain uncertain, forget not dropped
    forgets_uncertain    retain uncertain, forget dropped          (a candidate to confirm)
    damages              retain damaging                           (forget usually partway)
    both_collapsed       retain damaging and both accuracies at chance

"forget dropped" is the one-sided z-test baseline forget - trial forget > z * se.
"""

from __future__ import annotations

import math
from enum import Enum

from scipy.stats import norm

from search_spaces.facts import AMBIGUOUS, retain_drop
from trainables.evaluation.result import CHANCE_ACCURACY, TaskScore
from tuner.records.schema import TrialRow


class RetainSide(str, Enum):
    HARMLESS = "harmless"  # retain drop confidently within delta
    UNCERTAIN = "uncertain"  # neither confidently within nor beyond
    DAMAGING = "damaging"  # retain drop confidently beyond delta


class OutcomeState(str, Enum):
    """A trial's outcome: its retain side, split by whether forget dropped (the module docstring's table)."""

    NO_EFFECT = "no_effect"
    FORGETS_HARMLESSLY = "forgets_harmlessly"
    UNCERTAIN = "uncertain"
    FORGETS_UNCERTAIN = "forgets_uncertain"
    DAMAGES = "damages"
    BOTH_COLLAPSED = "both_collapsed"

    @property
    def retain(self) -> RetainSide:
        return RETAIN_SIDE[self]

    @property
    def harmless(self) -> bool:
        return self.retain is RetainSide.HARMLESS


RETAIN_SIDE = {OutcomeState.NO_EFFECT: RetainSide.HARMLESS, OutcomeState.FORGETS_HARMLESSLY: RetainSide.HARMLESS,
               OutcomeState.UNCERTAIN: RetainSide.UNCERTAIN, OutcomeState.FORGETS_UNCERTAIN: RetainSide.UNCERTAIN,
               OutcomeState.DAMAGES: RetainSide.DAMAGING, OutcomeState.BOTH_COLLAPSED: RetainSide.DAMAGING}


def retain_side(drop: float, delta: float, p: float, levels: tuple[float, float]) -> RetainSide:
    """Harmless / damaging / uncertain from the observed drop and P(drop <= delta) (module docstring)."""
    if drop <= delta and p >= levels[1]:
        return RetainSide.HARMLESS
    if drop > delta and p <= levels[0]:
        return RetainSide.DAMAGING
    return RetainSide.UNCERTAIN


def retain_p(trial: TrialRow, baseline: TrialRow, delta: float, z: float,
             p_model: float | None = None) -> tuple[float, tuple[float, float]]:
    """(P(retain drop <= delta), (lo, hi)): the model's P and ``AMBIGUOUS``, else the trial's own z-test."""
    if p_model is not None:
        return p_model, AMBIGUOUS
    drop, se = retain_drop_se(trial, baseline)
    p = float(norm.cdf((delta - drop) / se)) if se > 0 else float(drop <= delta)
    return p, (float(norm.sf(z)), float(norm.cdf(z)))


def classify(trial: TrialRow, baseline: TrialRow, delta: float, z: float,
             p_model: float | None = None) -> OutcomeState:
    """One scored trial's state against a scored baseline; ``p_model``: a model's P(drop <= delta) there."""
    p, levels = retain_p(trial, baseline, delta, z, p_model)
    side = retain_side(retain_drop(baseline.retain.acc, trial.retain.acc), delta, p, levels)
    forgot = significant(baseline.forget, trial.forget, z)
    if side is RetainSide.HARMLESS:
        return OutcomeState.FORGETS_HARMLESSLY if forgot else OutcomeState.NO_EFFECT
    if side is RetainSide.UNCERTAIN:
        return OutcomeState.FORGETS_UNCERTAIN if forgot else OutcomeState.UNCERTAIN
    if at_chance(trial.forget, z) and at_chance(trial.retain, z):
        return OutcomeState.BOTH_COLLAPSED
    return OutcomeState.DAMAGES


def retain_drop_se(trial: TrialRow, baseline: TrialRow) -> tuple[float, float]:
    """(baseline retain - trial retain, sqrt(se_b^2 + se_t^2)), accuracy fractions."""
    return (retain_drop(baseline.retain.acc, trial.retain.acc),
            math.hypot(baseline.retain.stderr, trial.retain.stderr))


def significant(high: TaskScore, low: TaskScore, z: float) -> bool:
    """One-sided test that high.acc > low.acc: high - low > z * sqrt(se_h^2 + se_l^2)."""
    return high.acc - low.acc > z * math.hypot(high.stderr, low.stderr)


def at_chance(score: TaskScore, z: float) -> bool:
    """Not significantly above chance (one-sided, ``z`` standard errors)."""
    return not score.acc - CHANCE_ACCURACY > z * score.stderr
