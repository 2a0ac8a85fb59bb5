"""The verdict's next step: where to search, by the anchors' rules (docs/architecture.md#outcome-states),
naming only searched parameters (a search over the coefficients never tells the user to "lower lr")."""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import norm

from tuner.analysis.boundary import BoundaryAnalysis, OutcomeState, at_chance
from tuner.records.schema import TrialRow

Move = tuple[str, str]  # (parameter, how: "raise {}" / "lower {}" / "raise {} slightly")
MOVES: dict[OutcomeState, tuple[Move, ...]] = {  # which way to move when a state dominates
    OutcomeState.NO_EFFECT: (("retain_coef", "lower {}"), ("remove_coef", "raise {}"), ("lr", "raise {}")),
    OutcomeState.BOTH_DEGRADED: (("retain_coef", "raise {}"), ("beta_kl", "raise {}"), ("lr", "lower {}"),
                                 ("remove_coef", "raise {} slightly")),
    OutcomeState.BOTH_COLLAPSED: (("retain_coef", "raise {}"), ("beta_kl", "raise {}"), ("remove_coef", "lower {}"),
                                  ("lr", "lower {}")),
}
STRONGER_FORGETTING: tuple[Move, ...] = (("lr", "lower {}"), ("remove_coef", "raise {} slightly"))


def next_step(a: BoundaryAnalysis, scored: Sequence[TrialRow], searched: Sequence[str]) -> str:
    """One sentence; without a baseline or scores it says what is missing."""
    if a.baseline_problem:
        return "re-run the baseline evaluation, then re-render the report"
    if not a.states:
        return "get at least one trial scored (see the not-scored table for the errors)"
    best = next((t for t in scored if t.trial_id == a.recommended), None)
    if best is not None:
        if at_chance(best.forget, float(norm.ppf(a.confidence))):
            return "forget is at chance with retain intact; confirm the recommended point with 2-3 seeds"
        return "forget is still above chance; " + moves(STRONGER_FORGETTING, searched)
    present = set(a.states.values())
    if OutcomeState.NO_EFFECT in present and present - {OutcomeState.NO_EFFECT}:
        return ("forgetting sets in only together with retain damage; sample between the no_effect and the "
                "damaged trials and " + moves(MOVES[OutcomeState.BOTH_DEGRADED], searched))
    top = max(present, key=lambda s: sum(v is s for v in a.states.values()))
    return moves(MOVES[top], searched)  # top is never forgets_harmlessly: that one is recommended


def moves(options: Sequence[Move], searched: Sequence[str]) -> str:
    """'raise retain_coef or raise beta_kl' over the searched parameters only."""
    kept = [how.format(name) for name, how in options if name in searched]
    if kept:
        return " or ".join(kept)
    return f"widen the searched ranges of {', '.join(searched) or 'the coefficients'}: none moves this way"
