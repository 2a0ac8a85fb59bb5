"""Where does unlearning stop being harmless? Outcome states, Pareto front, boundary fit, recommendation.

``analyse(trials, baseline)`` reads the results table (``TrialRow``s) and returns one ``BoundaryAnalysis``.
Every decision is a one-sided z-test at ``confidence`` (default 0.95, z = 1.645) on lm-eval stderrs:

    retain damaged:  b_ret - t_ret - delta > z * sqrt(se_b^2 + se_t^2)
    forget dropped:  b_fgt - t_fgt         > z * sqrt(se_b^2 + se_t^2)
    at chance:       not (acc - 0.25       > z * se)

"Harmless" means *not confidently worse than delta*. The stricter "confidently within delta" needs
se << delta, i.e. thousands of questions; at n = 100..200 (se of 3-5 points) it would call nothing
harmless. ``detectable_drop`` states the price: the retain drop that is flagged half of the time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from scipy.stats import norm

from search_spaces.facts import CONFIDENT, DEFAULT_CONFIDENCE, DEFAULT_DELTA, retain_drop
from trainables.evaluation.result import CHANCE_ACCURACY, TaskScore
from tuner.analysis.boundary_fit import BoundaryFit, fit_boundary
from tuner.records.schema import BASELINE_ID, TrialRow


class OutcomeState(str, Enum):
    """The four outcomes of the anchors' taxonomy (docs/architecture.md#outcome-states), named for what they mean."""

    FORGETS_HARMLESSLY = "forgets_harmlessly"  # forget dropped, retain within delta: the target
    NO_EFFECT = "no_effect"  # retain within delta, forget not dropped
    BOTH_DEGRADED = "both_degraded"  # retain more than delta below baseline (forget usually partway)
    BOTH_COLLAPSED = "both_collapsed"  # retain damaged and both accuracies at chance

    @property
    def harmless(self) -> bool:
        return self in (OutcomeState.FORGETS_HARMLESSLY, OutcomeState.NO_EFFECT)


@dataclass(frozen=True)
class BoundaryAnalysis:
    """Everything the report shows (``tuner.analysis.verdict`` words it); ``to_dict`` is JSON-safe."""

    delta: float
    confidence: float
    n_trials: int
    baseline_problem: str  # "" when the baseline is scored
    states: dict[str, OutcomeState]  # scored trials only
    unscored: dict[str, str]  # trial_id -> status (failed, diverged, queued, ... or done without scores)
    pareto: list[str]  # non-dominated trials (forget acc down, retain acc up), by forget acc
    fit: BoundaryFit | None
    fit_note: str  # why there is no fit, or "" when there is
    recommended: str | None  # strongest forgetting among forgets_harmlessly trials
    tied: list[str]  # other forgets_harmlessly trials whose forget acc is not significantly higher
    nearest: list[str]  # when nothing forgets harmlessly: the closest candidates
    detectable_drop: float | None  # retain drop (fraction) flagged as damage with probability 1/2
    summary: dict[str, str]  # trial_id (and "baseline") -> one-line description used in the verdict
    p_harmless: dict[str, float | None] = field(default_factory=dict)  # scored trial -> the fit's P at its params

    def counts(self) -> dict[OutcomeState, int]:
        return {s: sum(v is s for v in self.states.values()) for s in OutcomeState}

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


def analyse(trials: list[TrialRow], baseline: TrialRow | None, delta: float = DEFAULT_DELTA,
            confidence: float = DEFAULT_CONFIDENCE, model: Any = None) -> BoundaryAnalysis:
    """Label, fit and recommend. ``trials`` may contain the baseline row; it is ignored there. ``model`` (with
    ``BoundaryFit``'s interface, e.g. the boundary sampler's ``ModelFit``) replaces the logistic fit.

    The recommendation is the lowest forget among forgets_harmlessly trials whose retain drop is <= delta on
    the point estimate; one that is only "not confidently damaged" is recommended only when no such trial
    exists, and is labelled so."""
    trials = [t for t in trials if not t.is_baseline]
    z = float(norm.ppf(confidence))
    scored = [t for t in trials if t.status == "done" and t.scored]
    unscored = {t.trial_id: t.status if t.status != "done" else "done without scores"
                for t in trials if not (t.status == "done" and t.scored)}
    base = baseline if baseline is not None and baseline.scored else None
    problem = "" if base else ("No baseline row in the results table" if baseline is None else
                               f"The baseline row has no forget/retain scores (status {baseline.status}"
                               + (f": {baseline.error}" if baseline.error else "") + ")")
    states = {t.trial_id: classify(t, base, delta, z) for t in scored} if base else {}
    fit, fit_note = (model, "") if model is not None else fit_boundary(
        [t.params for t in scored if t.trial_id in states],
        [states[t.trial_id].harmless for t in scored if t.trial_id in states])

    def rank(t: TrialRow) -> tuple[bool, bool, float, float, float]:
        """Feasible on the point estimate first, then (with a ``model``) P(feasible) >= CONFIDENT, then lowest
        forget acc, highest retain acc, highest P."""
        p = fit.p_at(t.params) if fit else None
        unsure = model is not None and (p or 0.0) < CONFIDENT
        return not feasible(t, base, delta), unsure, t.forget.acc, -t.retain.acc, -(p or 0.0)

    by_forget = sorted((t for t in scored if states.get(t.trial_id) is OutcomeState.FORGETS_HARMLESSLY), key=rank)
    best = by_forget[0] if by_forget else None
    tied = [t.trial_id for t in by_forget[1:] if not _significant(t.forget, best.forget, 0.0, z)]
    nearest = [] if best or not states else _nearest(scored, states, base)
    summary = {t.trial_id: _describe(t, base, fit) for t in scored}
    if base:
        summary[BASELINE_ID] = f"{_score(base.forget)} forget, {_score(base.retain)} retain"
    return BoundaryAnalysis(
        delta=delta, confidence=confidence, n_trials=len(trials), baseline_problem=problem, states=states,
        unscored=unscored, pareto=pareto_front(scored), fit=fit, fit_note=fit_note,
        recommended=best.trial_id if best else None, tied=tied, nearest=nearest,
        detectable_drop=_detectable_drop(scored, base, delta, z), summary=summary,
        p_harmless={t.trial_id: fit.p_at(t.params) for t in scored} if fit else {})


def classify(trial: TrialRow, baseline: TrialRow, delta: float, z: float) -> OutcomeState:
    """One scored trial's state: harmless first (retain not confidently > delta below baseline)."""
    forget_dropped = _significant(baseline.forget, trial.forget, 0.0, z)
    if not _significant(baseline.retain, trial.retain, delta, z):
        return OutcomeState.FORGETS_HARMLESSLY if forget_dropped else OutcomeState.NO_EFFECT
    if at_chance(trial.forget, z) and at_chance(trial.retain, z):
        return OutcomeState.BOTH_COLLAPSED
    return OutcomeState.BOTH_DEGRADED


def pareto_front(trials: list[TrialRow]) -> list[str]:
    """Scored trials no other trial beats on both forget (lower) and retain (higher), by forget acc."""
    pts = [(t.forget.acc, -t.retain.acc, t.trial_id) for t in trials if t.scored]
    front = [p for p in pts if not any(q[0] <= p[0] and q[1] <= p[1] and q[:2] != p[:2] for q in pts)]
    return [p[2] for p in sorted(front)]


def feasible(t: TrialRow, base: TrialRow | None, delta: float) -> bool:
    """Retain drop <= delta on the point estimate."""
    return base is not None and retain_drop(base.retain.acc, t.retain.acc) <= delta


def _significant(high: TaskScore, low: TaskScore, margin: float, z: float) -> bool:
    """One-sided test that high.acc - low.acc > margin: (diff - margin) > z * sqrt(se_h^2 + se_l^2)."""
    return high.acc - low.acc - margin > z * math.hypot(high.stderr, low.stderr)


def at_chance(score: TaskScore, z: float) -> bool:
    """Not significantly above chance (one-sided, ``z`` standard errors)."""
    return not score.acc - CHANCE_ACCURACY > z * score.stderr


def _nearest(scored: list[TrialRow], states: dict[str, OutcomeState], base: TrialRow) -> list[str]:
    """The two damaged trials that forgot with the least retain loss, and the two mildest harmless ones."""
    forgot = sorted((t for t in scored if not states[t.trial_id].harmless and t.forget.acc < base.forget.acc),
                    key=lambda t: -t.retain.acc)
    harmless = sorted((t for t in scored if states[t.trial_id].harmless), key=lambda t: t.forget.acc)
    return [t.trial_id for t in forgot[:2] + harmless[:2]]


def _describe(t: TrialRow, base: TrialRow | None, fit: BoundaryFit | None) -> str:
    """'t07 (retain_coef=5, ...): 26.0±4.0% forget (-44.0 pts), 78.6±2.9% retain (-1.4 pts)'"""
    params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    text = f"{t.trial_id} ({params}): {_score(t.forget)} forget"
    text += f" ({_pts(t.forget.acc - base.forget.acc)} pts)" if base else ""
    text += f", {_score(t.retain)} retain"
    text += f" ({_pts(t.retain.acc - base.retain.acc)} pts)" if base else ""
    p = fit.p_at(t.params) if fit else None
    return text + (f", {fit.P_LABEL}={p:.2f}" if p is not None else "")


def _detectable_drop(scored: list[TrialRow], base: TrialRow | None, delta: float, z: float) -> float | None:
    """delta + z * median sqrt(se_b^2 + se_t^2): the true retain drop the test flags half of the time."""
    if base is None or not scored:
        return None
    return delta + z * float(np.median([math.hypot(base.retain.stderr, t.retain.stderr) for t in scored]))


def _score(s: TaskScore) -> str:
    return f"{100 * s.acc:.1f}±{100 * s.stderr:.1f}%"


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _json_safe(obj: Any) -> Any:
    """Enums to values, tuples to lists, non-finite floats to None."""
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k.value if isinstance(k, Enum) else k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
