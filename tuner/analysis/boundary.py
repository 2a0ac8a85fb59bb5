"""Where does unlearning stop being harmless? Outcome states, Pareto front, boundary fit, recommendation.

    a = analyse(trials, baseline, delta=0.02, confidence=0.95, model=None, boundary=KL_BOUNDARY)

reads the results table (``TrialRow``s) and returns one ``BoundaryAnalysis``. Each scored trial gets its state
from ``tuner.analysis.outcomes.classify`` (the one definition of harmless: the boundary sampler's ``model`` P when
there is one, else the trial's own z-test at ``confidence``). Without a model, a logistic fit of "retain drop <=
delta" (``boundary_fit``) gives the harmless map and the boundary.

Recommended: the lowest forget among ``forgets_harmlessly`` trials; when there is none, among ``forgets_uncertain``
trials with retain drop <= delta on the point estimate, and the verdict says it is uncertain. With the boundary
sampler's model, the search's answer (``BoundaryState.recommend(CONFIRM_RUNS)``: of the points within one eval
stderr of the lowest predicted forget, confirmed points first, then the lowest predicted forget), else its rule
over the rows: among both, the lowest forget with P >= CONFIDENT first. ``replicates``: the recommended point's
runs (the trial and its replicates). ``tied`` and ``stronger`` compare trials with those runs (their mean and
spread, ``Replicates.forget_score``): ``stronger`` lists the uncertain candidates that forgot significantly more,
which confirming would improve the answer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from scipy.stats import norm

from search_spaces.base import Boundary
from search_spaces.facts import CONFIDENT, DEFAULT_CONFIDENCE, DEFAULT_DELTA
from search_spaces.facts import feasible as feasible_drop
from trainables.evaluation.result import TaskScore
from tuner.analysis.axes import KL_BOUNDARY, restrict
from tuner.analysis.boundary_fit import BoundaryFit, fit_boundary
from tuner.analysis.outcomes import OutcomeState, RetainSide, classify, retain_p, significant
from tuner.analysis.replicates import Replicates
from tuner.records.schema import BASELINE_ID, TrialRow

P_LABEL = "P(drop ≤ δ)"  # the P a state read: the model's, else the trial's own z-test


@dataclass(frozen=True)
class BoundaryAnalysis:
    """Everything the report shows (``tuner.analysis.verdict`` words it); ``to_dict`` is JSON-safe."""

    delta: float
    confidence: float
    boundary: Boundary  # the run's boundary, restricted to the params the trials carry
    n_trials: int
    baseline_problem: str  # "" when the baseline is scored
    states: dict[str, OutcomeState]  # scored trials only
    unscored: dict[str, str]  # trial_id -> status (failed, diverged, queued, ... or done without scores)
    pareto: list[str]  # non-dominated trials (forget acc down, retain acc up), by forget acc
    fit: BoundaryFit | Any | None  # the boundary sampler's model, else the logistic fit
    by_model: bool  # states read the sampler's model P (else each trial's own z-test)
    fit_note: str  # why there is no fit, or "" when there is
    recommended: str | None
    replicates: Replicates | None  # the recommended point's runs: count, mean ± sd
    tied: list[str]  # other candidate trials whose forget is not significantly above the recommended point's runs
    stronger: list[str]  # forgets_uncertain trials (drop <= delta) that forgot significantly more than its runs
    nearest: list[str]  # when nothing is recommended: the closest candidates
    undecided: tuple[float, float] | None  # z-test only: drops between these are uncertain at the median stderr
    summary: dict[str, str]  # trial_id (and "baseline") -> one-line description used in the verdict
    p_harmless: dict[str, float] = field(default_factory=dict)  # scored trial -> the P(drop <= delta) its state read

    def counts(self) -> dict[OutcomeState, int]:
        return {s: sum(v is s for v in self.states.values()) for s in OutcomeState}

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


def analyse(trials: list[TrialRow], baseline: TrialRow | None, delta: float = DEFAULT_DELTA,
            confidence: float = DEFAULT_CONFIDENCE, model: Any = None,
            boundary: Boundary | None = None) -> BoundaryAnalysis:
    """Label, fit and recommend. ``trials`` may contain the baseline row; it is ignored there. ``model`` (with
    ``BoundaryFit``'s interface: the boundary sampler's ``ModelFit``) decides the states and replaces the logistic
    fit; ``boundary`` (default: the model's, else ``KL_BOUNDARY``) names the coordinates."""
    trials = [t for t in trials if not t.is_baseline]
    z = float(norm.ppf(confidence))
    scored = [t for t in trials if t.status == "done" and t.scored]
    unscored = {t.trial_id: t.status if t.status != "done" else "done without scores"
                for t in trials if not (t.status == "done" and t.scored)}
    base = baseline if baseline is not None and baseline.scored else None
    problem = "" if base else ("No baseline row in the results table" if baseline is None else
                               f"The baseline row has no forget/retain scores (status {baseline.status}"
                               + (f": {baseline.error}" if baseline.error else "") + ")")
    boundary = restrict(boundary or getattr(model, "boundary", None) or KL_BOUNDARY, [t.params for t in scored])
    p_model = {t.trial_id: model.p_at(t.params) for t in scored} if model is not None else {}
    states = {t.trial_id: classify(t, base, delta, z, p_model.get(t.trial_id)) for t in scored} if base else {}
    labelled = [t for t in scored if t.trial_id in states]
    fit, fit_note = (model, "") if model is not None else fit_boundary(
        [t.params for t in labelled], [feasible(t, base, delta) for t in labelled], boundary)
    p_used = {t.trial_id: retain_p(t, base, delta, z, p_model.get(t.trial_id))[0] for t in labelled}

    def rank(t: TrialRow) -> tuple[bool, float, float, float]:
        """With a ``model``, P >= CONFIDENT first; then lowest forget acc, highest retain acc, highest P."""
        return model is not None and p_used[t.trial_id] < CONFIDENT, t.forget.acc, -t.retain.acc, -p_used[t.trial_id]

    harmless = sorted((t for t in labelled if states[t.trial_id] is OutcomeState.FORGETS_HARMLESSLY), key=rank)
    uncertain = sorted((t for t in labelled if states[t.trial_id] is OutcomeState.FORGETS_UNCERTAIN
                        and feasible(t, base, delta)), key=rank)
    # with the sampler's model and no pick of its own among the rows, its rule: lowest forget with P >= CONFIDENT
    pool = sorted(harmless + uncertain, key=rank) if model is not None else harmless or uncertain
    best = _model_pick(model, [t for t in labelled if t in pool]) or (pool[0] if pool else None)
    replicates = Replicates.of(best, scored, base) if best else None
    point = replicates.forget_score(best.forget) if best else None  # the point's runs, not its first run alone
    tied = [t.trial_id for t in pool if best and t.trial_id not in replicates.runs
            and not significant(t.forget, point, z)]
    stronger = [t.trial_id for t in sorted(uncertain, key=lambda t: t.forget.acc)
                if best is not None and t.trial_id not in replicates.runs and significant(point, t.forget, z)]
    summary = {t.trial_id: _describe(t, base, p_used.get(t.trial_id)) for t in scored}
    if base:
        summary[BASELINE_ID] = f"{_score(base.forget)} forget, {_score(base.retain)} retain"
    return BoundaryAnalysis(
        delta=delta, confidence=confidence, boundary=boundary, n_trials=len(trials), baseline_problem=problem,
        states=states, unscored=unscored, pareto=pareto_front(scored), fit=fit, by_model=model is not None,
        fit_note=fit_note, recommended=best.trial_id if best else None,
        replicates=replicates, tied=tied, stronger=stronger,
        nearest=[] if best or not states else _nearest(labelled, states, base, z),
        undecided=None if model is not None else _undecided(labelled, base, delta, z), summary=summary,
        p_harmless=p_used)


def _model_pick(model: Any, pool: list[TrialRow]) -> TrialRow | None:
    """The first candidate row (in trial order: the point's first run, as the stop sentence names it, unless its
    own drop put it out) at the boundary sampler's recommended point (None without one)."""
    params = getattr(getattr(model, "recommendation", None), "params", None)
    if not params:
        return None
    return next((t for t in pool if all(t.params.get(k) == v for k, v in params.items())), None)


def pareto_front(trials: list[TrialRow]) -> list[str]:
    """Scored trials no other trial beats on both forget (lower) and retain (higher), by forget acc."""
    pts = [(t.forget.acc, -t.retain.acc, t.trial_id) for t in trials if t.scored]
    front = [p for p in pts if not any(q[0] <= p[0] and q[1] <= p[1] and q[:2] != p[:2] for q in pts)]
    return [p[2] for p in sorted(front)]


def feasible(t: TrialRow, base: TrialRow | None, delta: float) -> bool:
    """Retain drop <= delta on the point estimate."""
    return feasible_drop(base.retain.acc if base is not None else None, t.retain.acc, delta)


def _nearest(scored: list[TrialRow], states: dict[str, OutcomeState], base: TrialRow, z: float) -> list[str]:
    """The two trials that forgot significantly with the least retain loss, and the two non-damaging ones that did
    not forget with the lowest forget acc."""
    forgot = sorted((t for t in scored if significant(base.forget, t.forget, z)), key=lambda t: -t.retain.acc)
    kept = sorted((t for t in scored if t not in forgot and states[t.trial_id].retain is not RetainSide.DAMAGING),
                  key=lambda t: t.forget.acc)
    return [t.trial_id for t in forgot[:2] + kept[:2]]


def _describe(t: TrialRow, base: TrialRow | None, p: float | None) -> str:
    """'t07 (retain_coef=5, ...): 26.0±4.0% forget (-44.0 pts), 78.6±2.9% retain (-1.4 pts), P(drop ≤ δ)=0.93'"""
    params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    text = f"{t.trial_id} ({params}): {_score(t.forget)} forget"
    text += f" ({_pts(t.forget.acc - base.forget.acc)} pts)" if base else ""
    text += f", {_score(t.retain)} retain"
    text += f" ({_pts(t.retain.acc - base.retain.acc)} pts)" if base else ""
    return text + (f", {P_LABEL}={p:.2f}" if p is not None else "")


def _undecided(scored: list[TrialRow], base: TrialRow | None, delta: float, z: float) -> tuple[float, float] | None:
    """(delta - z * se, delta + z * se) at the median se = sqrt(se_b^2 + se_t^2): the z-tests' undecided drops."""
    if base is None or not scored:
        return None
    se = float(np.median([math.hypot(base.retain.stderr, t.retain.stderr) for t in scored]))
    return delta - z * se, delta + z * se


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
