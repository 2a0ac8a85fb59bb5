"""The report's opening: a short structured verdict read off a ``BoundaryAnalysis``.

    v = build_verdict(a, trials, baseline, stop="ran to the budget cap (--num-samples 40)")
    v.items()   # [(label, text or list of texts)] in order: outcome, recommended, rule, boundary, next, stop, evidence

Rules it keeps:

* selection: lowest forget among trials that forgot and whose retain drop is <= delta on the point estimate
  (with the boundary sampler's model, those with P(feasible) >= CONFIDENT = 0.7 first); a trial that is only "not
  confidently damaged" is recommended only when no such trial exists, and is labelled so;
* no extrapolation: a boundary ratio is stated only inside the range of remove/retain ratios sampled near
  its beta_kl slice, an interval only when both ends are finite and inside that range; otherwise the slice
  says "beyond the sampled range" / "not resolved yet" and which ratios need trials;
* the next step moves only parameters the search varied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from search_spaces.facts import CONFIDENT
from tuner.analysis.boundary import BoundaryAnalysis, OutcomeState, feasible
from tuner.analysis.boundary_fit import BoundaryFit
from tuner.analysis.verdict_steps import next_step
from tuner.records.schema import BASELINE_ID, TrialRow

FOUND, UNCERTAIN, NOT_FOUND = ("harmless forgetting found", "only uncertain harmless forgetting found",
                               "no harmless forgetting in the sampled region")


@dataclass(frozen=True)
class Verdict:
    outcome: str
    recommended: str
    rule: str
    boundary: tuple[str, ...]
    next_step: str
    stopped: str
    evidence: str

    def items(self) -> list[tuple[str, str | tuple[str, ...]]]:
        return [("Outcome", self.outcome), ("Recommended", self.recommended), ("Selection rule", self.rule),
                ("Boundary", self.boundary), ("Next step", self.next_step), ("Why the search stopped", self.stopped),
                ("Evidence", self.evidence)]

    def text(self) -> str:
        """One line per item (boundary slices joined), for boundary.json and logs."""
        return "\n".join(f"{k}: {'; '.join(v) if isinstance(v, tuple) else v}" for k, v in self.items())

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "boundary": list(self.boundary)}


def build_verdict(a: BoundaryAnalysis, trials: Sequence[TrialRow], baseline: TrialRow | None,
                  stop: str) -> Verdict:
    scored = [t for t in trials if t.trial_id in a.states]
    searched = sorted({k for t in trials if not t.is_baseline for k in t.params})
    return Verdict(outcome=_outcome(a, scored, baseline), recommended=_recommended(a, scored, baseline),
                   rule=_rule(a), boundary=_boundary(a, scored), next_step=next_step(a, scored, searched),
                   stopped=stop or "unknown (no run_config.json or stop.json in the run directory)",
                   evidence=_evidence(a))


def _outcome(a: BoundaryAnalysis, scored: list[TrialRow], baseline: TrialRow | None) -> str:
    if a.n_trials == 0:
        return "no trials in the results table yet"
    if a.baseline_problem:
        return f"no verdict: {a.baseline_problem}; re-run the baseline evaluation"
    if not a.states:
        return f"no verdict: none of the {a.n_trials} trials has forget and retain scores ({_counts(a.unscored)})"
    if a.recommended is None:
        return NOT_FOUND
    best = next(t for t in scored if t.trial_id == a.recommended)
    return FOUND if feasible(best, baseline, a.delta) else UNCERTAIN


def _recommended(a: BoundaryAnalysis, scored: list[TrialRow], baseline: TrialRow | None) -> str:
    if a.recommended is None:
        near = "; ".join(a.summary[t] for t in a.nearest)
        return "none" + (f"; nearest candidates: {near}" if near else "")
    best = next(t for t in scored if t.trial_id == a.recommended)
    n_ok = sum(feasible(t, baseline, a.delta) and a.states[t.trial_id] is OutcomeState.FORGETS_HARMLESSLY
               for t in scored)
    if feasible(best, baseline, a.delta):
        why = f"lowest forget of the {n_ok} trials that forgot with retain drop ≤ δ"
    else:
        why = ("labelled only not confidently damaged: its retain drop exceeds δ on the point estimate but not "
               "significantly, and no trial that forgot meets δ")
    tie = f"; statistically tied: {', '.join(a.tied)}" if a.tied else ""
    return f"{a.summary[a.recommended]} — {why}{tie}"


def _rule(a: BoundaryAnalysis) -> str:
    model = a.fit is not None and not isinstance(a.fit, BoundaryFit)
    prefer = f", those with {a.fit.P_LABEL} ≥ {CONFIDENT:g} first" if model else ""
    return (f"lowest forget accuracy among trials that forgot significantly and whose retain drop is ≤ δ = "
            f"{100 * a.delta:g} pts on the point estimate{prefer}; a trial only not confidently damaged "
            "(drop above δ but within noise) is recommended only when no trial meets δ, and is labelled so")


def _boundary(a: BoundaryAnalysis, scored: list[TrialRow]) -> tuple[str, ...]:
    pts = [(_ratio(t), t.params.get("beta_kl"), a.states[t.trial_id].harmless) for t in scored if _ratio(t)]
    if not pts:
        return ("not resolved yet: no labelled trial with positive retain_coef and remove_coef",)
    if a.fit is None:
        return (f"not resolved yet: {a.fit_note} {_needed(pts)}",)
    fit = a.fit
    slices = fit.by_slice or ((fit.at_slice, fit.ratio),)
    intervals = {b: (lo, hi) for b, lo, hi in getattr(fit, "intervals", ())} or {fit.at_slice: fit.ratio_ci}
    levels = [b for b, _ in slices]
    lines = []
    for beta, ratio in slices:
        near = [p for p in pts if beta is None or p[1] is None or _nearest(p[1], levels) == beta]
        where = f"at beta_kl ≈ {beta:.3g}: " if beta is not None and len(slices) > 1 else ""
        if ratio is None and hasattr(fit, "ratio_range"):  # the sampler's model: harmless up to the range's end
            lines.append(where + f"no retain damage inside the searched range: P(harmless) ≥ 0.5 up to remove/retain "
                                 f"≈ {_g(fit.ratio_range[1])} (remove_coef's upper end at retain_coef "
                                 f"{_g(fit.held[fit.boundary.ratio_to])})")
        else:
            lines.append(where + _slice(ratio, intervals.get(beta), near))
    return tuple(lines)


def _slice(ratio: float | None, interval: tuple[float, float] | None,
           pts: list[tuple[float, object, bool]]) -> str:
    """One slice's boundary, never outside the remove/retain ratios sampled there."""
    if not pts:
        return "not resolved yet: no trials near this beta_kl; sample it"
    lo, hi = min(p[0] for p in pts), max(p[0] for p in pts)
    sampled = f"sampled remove/retain {_g(lo)}–{_g(hi)}" if lo < hi else f"single sampled remove/retain {_g(lo)}"
    if ratio is None:
        return f"not resolved yet: no boundary inside the {sampled}; {_needed(pts)}"
    if not lo <= ratio <= hi:
        return f"beyond the sampled range ({sampled}); {_needed(pts)}"
    text = f"retain damage sets in above remove/retain ≈ {_g(ratio)}"
    if interval and all(math.isfinite(x) and lo <= x <= hi for x in interval):
        return text + f" (interval {_g(interval[0])}–{_g(interval[1])})"
    return text + f"; interval not yet bounded inside the {sampled}"


def _needed(pts: list[tuple[float, object, bool]]) -> str:
    """Which remove/retain ratios would resolve the boundary, from the labels alone."""
    harmless = [q for q, _, h in pts if h]
    damaged = [q for q, _, h in pts if not h]
    if not damaged:
        return f"needs trials at remove/retain above {_g(max(harmless))} (the largest sampled, still harmless)"
    if not harmless:
        return f"needs trials at remove/retain below {_g(min(damaged))} (the smallest sampled, already damaging)"
    return (f"needs trials between remove/retain {_g(max(harmless))} (largest harmless) and "
            f"{_g(min(damaged))} (smallest damaging)")


def _evidence(a: BoundaryAnalysis) -> str:
    if not a.states:
        return f"{a.n_trials} trials" + (f"; not scored: {_counts(a.unscored)}" if a.unscored else "")
    counts = ", ".join(f"{n} {s.value}" for s, n in a.counts().items() if n)
    failed = f"; not scored: {_counts(a.unscored)}" if a.unscored else ""
    return (f"{len(a.states)} of {a.n_trials} trials scored ({counts}{failed}) against the baseline "
            f"({a.summary[BASELINE_ID]}); harmless = retain not confidently ({a.confidence:.0%}, one-sided) more "
            f"than {100 * a.delta:.1f} pts below the baseline; at these sample sizes a true drop of "
            f"{100 * (a.detectable_drop or 0):.1f} pts is flagged only half of the time"
            + (f"; boundary from {a.fit.describe()}" if a.fit else ""))


def _ratio(t: TrialRow) -> float | None:
    ret, rem = t.params.get("retain_coef"), t.params.get("remove_coef")
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (ret, rem))
    return rem / ret if ok else None


def _nearest(value: object, levels: list[float | None]) -> float | None:
    return min(levels, key=lambda b: abs(float(b) - float(value)))


def _counts(unscored: dict[str, str]) -> str:
    return ", ".join(f"{sum(v == s for v in unscored.values())} {s}" for s in sorted(set(unscored.values())))


def _g(x: float) -> str:
    return f"{x:.3g}"
