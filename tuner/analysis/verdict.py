"""The report's opening: a short structured verdict read off a ``BoundaryAnalysis``.

    v = build_verdict(a, trials, baseline, stop="ran to the budget cap (--num-samples 40)")
    v.items()   # [(label, text or list of texts)] in order: outcome, recommended, rule, boundary, next, stop, evidence

Rules it keeps:

* one definition of harmless: states, recommendation and wording read ``tuner.analysis.outcomes``;
* selection: lowest forget among ``forgets_harmlessly`` trials; when there is none, the best ``forgets_uncertain``
  trial with retain drop <= delta on the point estimate, labelled uncertain; with the sampler's model, its own
  pick, which is "forgets more" than the best confidently harmless trial only when its runs' mean forget is lower
  and the two are not statistically tied (a trial against the point's runs: ``Replicates.forget_score``);
* no claim past the evidence: each slice's boundary line says what its trials show (``tuner.analysis.slices``):
  the estimate and its interval where the slice is pinned (the stopping rule's test: a narrow interval with trials
  near both its ends), an estimate without an interval where trials on both sides bracket it, "no retain drop
  above δ up to X (the largest sampled near this slice)", "not sampled";
* the next step (``verdict_steps``) comes from where the answer can still improve, never across the boundary.

Coordinates are named from the run's boundary (``a.boundary``): "remove/retain" and "beta_kl" for the default
space, "remove_coef" and "kl_temperature" for a boundary along remove_coef sliced by kl_temperature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from search_spaces.facts import AMBIGUOUS, CONFIDENT, CONFIRM_RUNS, PINNED_WIDTH
from tuner.analysis.boundary import P_LABEL, BoundaryAnalysis
from tuner.analysis.outcomes import OutcomeState, retain_drop_se
from tuner.analysis.slices import Kind, Slice, boundary_slices
from tuner.analysis.verdict_steps import next_step
from tuner.records.schema import BASELINE_ID, TrialRow

FOUND, UNCERTAIN, NOT_FOUND = ("harmless forgetting found", "only uncertain harmless forgetting found",
                               "no harmless forgetting in the sampled region")
STRONGER_UNCERTAIN = "harmless forgetting found; the recommended point forgets more but is not yet confidently harmless"
SAFE_AS_GOOD = ("harmless forgetting found; the recommended point is not yet confidently harmless, and a confidently "
                "harmless trial forgot as much")


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
    slices = boundary_slices(a, scored, baseline)
    return Verdict(outcome=_outcome(a, scored), recommended=_recommended(a, scored, baseline), rule=_rule(a),
                   boundary=_boundary(a, slices), next_step=next_step(a, scored, baseline, slices),
                   stopped=stop or "unknown (no run_config.json or stop.json in the run directory)",
                   evidence=_evidence(a))


def _outcome(a: BoundaryAnalysis, scored: list[TrialRow]) -> str:
    if a.n_trials == 0:
        return "no trials in the results table yet"
    if a.baseline_problem:
        return f"no verdict: {a.baseline_problem}; re-run the baseline evaluation"
    if not a.states:
        return f"no verdict: none of the {a.n_trials} trials has forget and retain scores ({_counts(a.unscored)})"
    if a.recommended is None:
        return NOT_FOUND
    if a.states[a.recommended] is OutcomeState.FORGETS_HARMLESSLY:
        return FOUND
    safe = _best_harmless(a, scored)
    if safe is None:
        return UNCERTAIN
    return STRONGER_UNCERTAIN if _forgets_more(a, safe) else SAFE_AS_GOOD


def _forgets_more(a: BoundaryAnalysis, safe: TrialRow) -> bool:
    """The recommended point's runs forgot more (lower mean forget) than ``safe``, which is not statistically tied
    with it."""
    return safe.trial_id not in a.tied and a.replicates.forget_mean < safe.forget.acc


def _recommended(a: BoundaryAnalysis, scored: list[TrialRow], baseline: TrialRow | None) -> str:
    if a.recommended is None:
        near = "; ".join(f"{a.summary[t]} ({a.states[t].value})" for t in a.nearest)
        return "none" + (f"; nearest candidates: {near}" if near else "")
    best = next(t for t in scored if t.trial_id == a.recommended)
    if a.states[best.trial_id] is OutcomeState.FORGETS_HARMLESSLY and a.by_model:
        why = f"forgets_harmlessly: retain confidently within δ ({_harmless_rule(a)}), picked by the selection rule"
    elif a.states[best.trial_id] is OutcomeState.FORGETS_HARMLESSLY:
        n = sum(s is OutcomeState.FORGETS_HARMLESSLY for s in a.states.values())
        why = f"forgets_harmlessly: lowest forget of the {n} trials that forgot with retain confidently within δ"
    else:
        drop, se = retain_drop_se(best, baseline)
        unsure = (f"forgets_uncertain: the model's {P_LABEL} = {a.p_harmless[best.trial_id]:.2f} is below "
                  f"{AMBIGUOUS[1]:g}, so retain is within δ but not confidently (its first run's retain drop "
                  f"{_pts(drop)} ± {_pts(se)} pts)" if a.by_model else
                  f"forgets_uncertain: retain drop {_pts(drop)} ± {_pts(se)} pts is within δ on the point estimate "
                  "but not confidently")
        safe = _best_harmless(a, scored)
        why = unsure + ("; the lowest forget the model rates likely harmless: confirm it before use" if a.by_model
                        else "; no trial that forgot is confidently within δ")
        why += f"; the lowest forget confidently harmless: {a.summary[safe.trial_id]}" if safe else ""
    tie = f"; statistically tied: {', '.join(a.tied)}" if a.tied else ""
    return f"{a.summary[a.recommended]}; {a.replicates.describe()} — {why}{tie}"


def _best_harmless(a: BoundaryAnalysis, scored: list[TrialRow]) -> TrialRow | None:
    """The lowest-forget forgets_harmlessly trial (the safe alternative to an uncertain recommendation)."""
    safe = [t for t in scored if a.states.get(t.trial_id) is OutcomeState.FORGETS_HARMLESSLY]
    return min(safe, key=lambda t: t.forget.acc, default=None)


def _rule(a: BoundaryAnalysis) -> str:
    if a.by_model:
        return (f"the boundary sampler's rule: among the sampled points that forgot (by the model) and whose runs' "
                f"mean retain drop is ≤ δ = {_pts(a.delta)} pts, those with {P_LABEL} ≥ {CONFIDENT:g} whose "
                f"predicted forget is within one eval stderr of the lowest (a difference no run resolves), those "
                f"confirmed by {CONFIRM_RUNS} runs first, then the lowest predicted forget; with no point at "
                f"{CONFIDENT:g}, the most probably harmless (when that point has no candidate row, the lowest "
                f"observed forget with retain drop ≤ δ, those with {P_LABEL} ≥ {CONFIDENT:g} first); labelled "
                f"forgets_harmlessly when retain is confidently within δ ({_harmless_rule(a)}), else "
                "forgets_uncertain")
    return (f"lowest forget accuracy among trials that forgot significantly and whose retain drop is confidently "
            f"within δ = {_pts(a.delta)} pts ({_harmless_rule(a)}); when there is none, the lowest-forget trial "
            "that forgot with retain drop ≤ δ on the point estimate, labelled forgets_uncertain")


def _boundary(a: BoundaryAnalysis, slices: list[Slice]) -> tuple[str, ...]:
    b = a.boundary
    if not any(s.sampled for s in slices):
        return (f"none: no scored trial has a positive {' and '.join(n for n in (b.along, b.ratio_to) if n)}, so "
                f"this search cannot place a boundary along {b.along}",)
    if a.fit is None and a.fit_note and not a.fit_note.startswith("Boundary not bracketed"):
        return (f"not resolved yet: {a.fit_note}",)
    several = len(slices) > 1
    return tuple((f"at {b.slice_by} ≈ {s.level:.3g}: " if several and s.level is not None else "")
                 + _slice(s, b.label()) for s in slices)


def _slice(s: Slice, named: str) -> str:
    """One slice's boundary line: what its trials show, never a value outside the sampled positions."""
    kind = s.kind
    if kind is Kind.NOT_SAMPLED:
        return "not sampled: no trial near this slice yet"
    lo, hi = s.span
    sampled = f"sampled {named} {_g(lo)}–{_g(hi)}" if lo < hi else f"single sampled {named} {_g(lo)}"
    if kind is Kind.BELOW:
        return (f"no retain drop above δ up to {named} ≈ {_g(hi)} (the largest sampled near this slice); the "
                "boundary lies above it")
    if kind is Kind.ABOVE:
        return (f"retain drop above δ already at {named} ≈ {_g(lo)} (the smallest sampled near this slice); the "
                "boundary lies below it")
    if kind is Kind.OPEN:
        where = "not resolved yet" if s.estimate is None or lo <= s.estimate <= hi else "beyond the sampled range"
        return f"{where} ({sampled}); {needed(s, named)}"
    if kind is Kind.PINNED and s.estimate is None:
        return f"by the model, no retain drop above δ up to the searched range's end {named} ≈ {_g(s.clipped[1])}"
    text = f"the retain drop crosses δ at {named} ≈ {_g(s.estimate)}"
    if kind is Kind.PINNED:
        return text + f" (interval {_g(s.clipped[0])}–{_g(s.clipped[1])})"
    return text + f"; {_unpinned(s)} ({sampled})"


def _unpinned(s: Slice) -> str:
    """Why a bracketed slice is not pinned: its interval unbounded, too wide, or without trials near an end."""
    if s.clipped is None or not math.isfinite(s.clipped[1]):
        return "interval not yet bounded"
    lo, hi = s.clipped
    if hi > lo * 10**PINNED_WIDTH:
        return f"interval wider than {PINNED_WIDTH:g} decades"
    return f"interval not pinned: no trial within {PINNED_WIDTH:g} decades of both its ends"


def needed(s: Slice, named: str) -> str:
    """Which positions would resolve a slice whose trials do not bracket the estimate, from the labels alone."""
    ok, bad = s.largest(True), s.smallest(False)
    return (f"needs trials between {named} {_g(min(ok, bad))} and {_g(max(ok, bad))} (largest with retain drop "
            f"≤ δ: {_g(ok)}, smallest above δ: {_g(bad)})")


def _evidence(a: BoundaryAnalysis) -> str:
    if not a.states:
        return f"{a.n_trials} trials" + (f"; not scored: {_counts(a.unscored)}" if a.unscored else "")
    counts = ", ".join(f"{n} {s.value}" for s, n in a.counts().items() if n)
    failed = f"; not scored: {_counts(a.unscored)}" if a.unscored else ""
    text = (f"{len(a.states)} of {a.n_trials} trials scored ({counts}{failed}) against the baseline "
            f"({a.summary[BASELINE_ID]}); {_sides(a)}")
    if a.undecided:
        low, high = a.undecided
        text += (f"; at the median stderr a trial is harmless only below a drop of {_pts(low)} pts and damaging "
                 f"only above {_pts(high)} pts")
    return text + (f"; boundary from {a.fit.describe()}" if a.fit else "")


def _harmless_rule(a: BoundaryAnalysis) -> str:
    """How this analysis decided "confidently within δ"."""
    if a.by_model:
        return f"drop ≤ δ observed and the model's {P_LABEL} ≥ {AMBIGUOUS[1]:g}"
    return f"one-sided {a.confidence:.0%} z-test on the lm-eval stderrs"


def _sides(a: BoundaryAnalysis) -> str:
    """The three retain outcomes, as this analysis decided them."""
    if a.by_model:
        return (f"retain harmless = {_harmless_rule(a)}, damaging = drop > δ observed and {P_LABEL} ≤ "
                f"{AMBIGUOUS[0]:g}, uncertain otherwise")
    return (f"retain harmless = drop confidently ≤ δ, damaging = confidently > δ ({_harmless_rule(a)}s), uncertain "
            "otherwise")


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def _counts(unscored: dict[str, str]) -> str:
    return ", ".join(f"{sum(v == s for v in unscored.values())} {s}" for s in sorted(set(unscored.values())))


def _g(x: float) -> str:
    return f"{x:.3g}"
