"""The verdict's next step: where the answer can still improve, read off the analysis and its slices
(``tuner.analysis.slices``); it names only the boundary's coordinates and never moves across an estimated boundary.

The first that applies:

    re-run the baseline / get a trial scored     nothing to decide on yet
    confirm <recommended>                        the recommended trial is only forgets_uncertain (saying why: the
                                                 model's P, or its own z-test)
    accept <recommended>: forget at chance       forgetting cannot improve
    confirm <stronger>                           an uncertain trial forgot significantly more than the recommended
    vary <along>                                 the search keeps the boundary's coordinate fixed
    sample the unresolved slices                 slices not sampled first, then per slice: below the boundary -> between
                                                 the largest sampled and the estimate (or above it, to the range's
                                                 end); above -> below the smallest sampled; open / located ->
                                                 between the largest with drop <= delta and the smallest above
                                                 (located with those two within PINNED_WIDTH but the model's
                                                 interval wider: across the model's interval, for more runs)
    sample where the model expects more          every slice pinned, but the boundary sampler's model expects a gain
                                                 of at least one eval stderr (the stopping rule's test)
    accept <recommended>: the frontier           every slice pinned and nothing left to confirm or gain
    sample just below the boundary               every slice pinned and nothing forgot within delta: between the
                                                 largest trial with drop <= delta and the boundary
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import norm

from search_spaces.facts import AMBIGUOUS, PINNED_WIDTH
from tuner.analysis.boundary import BoundaryAnalysis
from tuner.analysis.outcomes import OutcomeState, at_chance, retain_drop_se
from tuner.analysis.slices import Kind, Slice
from tuner.records.schema import TrialRow

CONFIRM = "re-evaluate it with more questions or 2-3 seeds"


def next_step(a: BoundaryAnalysis, scored: Sequence[TrialRow], baseline: TrialRow | None,
              slices: Sequence[Slice]) -> str:
    """One sentence; without a baseline or scores it says what is missing."""
    if a.baseline_problem:
        return "re-run the baseline evaluation, then re-render the report"
    if not a.states:
        return "get at least one trial scored (see the not-scored table for the errors)"
    by_id = {t.trial_id: t for t in scored}
    best = by_id.get(a.recommended or "")
    if best is not None and a.states[best.trial_id] is OutcomeState.FORGETS_UNCERTAIN:
        r = a.replicates  # set whenever a trial is recommended
        why = (f"the model's P(drop ≤ δ) there is {a.p_harmless[best.trial_id]:.2f}, below {AMBIGUOUS[1]:g}"
               if a.by_model else f"the first run's {_drop(best, baseline)} is within δ, not confidently")
        if len(r.runs) > 1:
            return (f"confirm {best.trial_id}: its {len(r.runs)} runs' retain drop is {_pts(r.retain_drop_mean)} ± "
                    f"{_pts(r.retain_drop_sd)} pts (mean ± sd over training seeds), and {why}; add a seed or "
                    "re-evaluate with more questions")
        return f"confirm {best.trial_id}: {CONFIRM} ({why})"
    if best is not None and at_chance(best.forget, float(norm.ppf(a.confidence))):
        return (f"accept {best.trial_id}: forget is at chance with retain confidently within δ; confirm it with "
                "2-3 seeds")
    if a.stronger:
        other, runs = by_id[a.stronger[0]], len(a.replicates.runs)  # stronger: against the point's runs' mean
        than = f"{best.trial_id}'s {runs} runs" if runs > 1 else best.trial_id
        return (f"confirm {other.trial_id}: it forgot {_pts(a.replicates.forget_mean - other.forget.acc)} pts more "
                f"than {than} but its {_drop(other, baseline)} is not confidently within δ; {CONFIRM}")
    along = a.boundary.along
    if len({repr(t.params.get(along)) for t in scored}) < 2:
        return f"vary {along}: this search keeps it fixed, so it cannot locate the boundary"
    empty = [s for s in slices if s.kind is Kind.NOT_SAMPLED]
    todo = ([_unsampled(a, empty)] if empty else []) + [step for s in slices if (step := _sample(a, s))]
    if todo:
        return "; ".join(todo)
    gain = a.fit.expected_gain() if hasattr(a.fit, "expected_gain") else None
    if best is not None and gain is not None and gain[0] >= gain[1]:
        return (f"sample where the boundary sampler's model expects more harmless forgetting: up to "
                f"{_pts(gain[0])} forget points over {best.trial_id} (one eval stderr: {_pts(gain[1])}); the "
                "boundary is pinned at every slice, and a search with a larger --num-samples would go on there")
    if best is not None:
        return (f"accept {best.trial_id}: the frontier is reached (the boundary is pinned at every slice and no "
                "uncertain trial forgets more" + (", nor does the model expect a measurable gain)" if gain else ")"))
    return "; ".join(_below_boundary(a, s) for s in slices)


def _sample(a: BoundaryAnalysis, s: Slice) -> str:
    """Where to sample one slice, or "" when it is pinned."""
    b, named, at = a.boundary, a.boundary.label(), _at(a, s)
    kind = s.kind
    if kind in (Kind.NOT_SAMPLED, Kind.PINNED):
        return ""
    lo, hi = s.span
    if kind is Kind.ABOVE:
        return f"sample {named} below {_g(lo)}{at}: the retain drop is above δ already there"
    if kind is Kind.BELOW:
        if s.estimate is not None and s.estimate > hi:
            return (f"sample {named} between {_g(hi)} and {_g(s.estimate)}{at}: no retain drop above δ up to "
                    f"{_g(hi)}, and the model places the boundary at {_g(s.estimate)}")
        top = getattr(a.fit, "ratio_range", None)
        end = f", up to the searched range's end ≈ {_g(top[1])} (then extend {b.along}'s range)" if top else ""
        return f"sample {named} above {_g(hi)}{at}{end}: no retain drop above δ up to there"
    estimate = s.estimate if kind is Kind.LOCATED else None
    ok = s.largest(True, below=estimate) if estimate is not None else s.largest(True)
    bad = s.smallest(False, above=estimate) if estimate is not None else s.smallest(False)
    low, high = sorted((ok, bad))
    wide = s.clipped if kind is Kind.LOCATED else None
    if wide is not None and 0 < low and high / low <= 10**PINNED_WIDTH < wide[1] / wide[0]:
        return (f"sample {named} across {_g(wide[0])}–{_g(wide[1])}{at}, the model's interval (wider than "
                f"{PINNED_WIDTH:g} decades although single runs bracket the boundary at {_g(low)}–{_g(high)}: "
                "more runs there can narrow it)")
    return f"sample {named} between {_g(low)} and {_g(high)}{at} to pin the boundary"


def _unsampled(a: BoundaryAnalysis, empty: list[Slice]) -> str:
    """'sample beta_kl ≈ 0.5 and 1: no trial near them yet'."""
    levels = " and ".join(f"{s.level:.3g}" for s in empty)
    return f"sample {a.boundary.slice_by} ≈ {levels}: no trial near {'them' if len(empty) > 1 else 'it'} yet"


def _below_boundary(a: BoundaryAnalysis, s: Slice) -> str:
    """A pinned slice where nothing forgot within delta: the gap between its largest trial with drop <= delta and
    the boundary (or the searched range's end, for a slice harmless to the end) is where forgetting could still
    set in."""
    edge = (f"the boundary ≈ {_g(s.estimate)}" if s.estimate is not None
            else f"the searched range's end ≈ {_g(s.clipped[1])}")
    ok = s.largest(True, below=s.estimate if s.estimate is not None else math.inf)
    where = f"between {_g(ok)} and {edge}" if ok is not None else f"up to {edge}"
    return f"sample {a.boundary.label()} {where}{_at(a, s)}: no trial forgot with retain drop ≤ δ yet"


def _at(a: BoundaryAnalysis, s: Slice) -> str:
    return f" at {a.boundary.slice_by} ≈ {s.level:.3g}" if a.boundary.slice_by and s.level is not None else ""


def _drop(t: TrialRow, baseline: TrialRow | None) -> str:
    drop, se = retain_drop_se(t, baseline)
    return f"retain drop {_pts(drop)} ± {_pts(se)} pts"


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def _g(x: float) -> str:
    return f"{x:.3g}"
