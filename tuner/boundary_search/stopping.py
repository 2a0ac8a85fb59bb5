"""When has the search found its answer? It stops by itself when, after at least ``min_trials``, both

  the boundary is pinned:
    share of the space with 0.1 < P(harmless) < 0.9   <=  max_ambiguous
    every slice of the report pinned                   (ModelFit.unpinned, by the report's test Slice.pinned: its
                                                        interval, clipped to the range, <= PINNED_WIDTH decades,
                                                        trials near both ends)
  and the recommendation has converged:
    recommended point (BoundaryState.recommend)        P(feasible) >= min_p_feasible, mean retain drop <= delta,
                                                       confirmed by >= confirm_runs runs (replicates: new seeds)
    max_x EI_f(x; its predicted forget) * P(harmless)  <  one eval stderr of forget (the median lm-eval stderr):
                                                       no point is expected to forget measurably more, harmlessly

The threshold is the smallest forget difference one evaluation resolves: a trial expected to gain less cannot
show its gain. Confirmation by replicates is what the measured training-seed noise asks for: at the edge one
run's forget varies by 6-18 points from seed to seed (docs/benchmarks.md), 5-7x lm-eval's stderr.

``--num-samples`` stays the budget cap; ``StopDecision.reason`` says why the rule fired, the searcher leaves it in
``run_dir/stop.json``, and ``stop_reason(run_dir, num_samples)`` is the sentence the console, MLflow, results.md
and the report show. Trials still running when the rule fires finish (no new ones start) and may move the answer:
the report recommends from every trial (``BoundaryState.recommend(CONFIRM_RUNS)``) and ends the sentence with
``after_stop``: which point that is now.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from search_spaces.facts import AMBIGUOUS, CONFIDENT, CONFIRM_RUNS
from tuner.boundary_search.report_fit import ModelFit
from tuner.boundary_search.state import BoundaryState

STOP_FILE = "stop.json"


@dataclass(frozen=True)
class StopRule:
    # calibrated on the default world's dense table (replay seeds, up to 56 trials): with 0.2 (and PINNED_WIDTH 0.5)
    # the rule fired in 9 of 10 seeds, each time with boundary error <= 0.22 decades and a feasible recommendation; at
    # 0.1 in 4 of 10
    max_ambiguous: float = 0.2
    min_p_feasible: float = CONFIDENT
    min_trials: int = 16
    confirm_runs: int = CONFIRM_RUNS  # runs of the recommended point (its first trial + replicates)
    min_improvement: float | None = None  # forget EI below which nothing is left to gain; None: one eval stderr


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str
    ambiguous_share: float | None = None
    p_feasible: float | None = None
    recommended: str | None = None  # the recommended trial's id (as in ``reason``)
    slices_pinned: int | None = None  # beta_kl slices of the report whose boundary is pinned, of ``slices``
    slices: int | None = None
    forget: float | None = None  # the recommended point's mean forget acc over its runs
    runs: int | None = None  # its runs: the first trial and its replicates
    trials: int | None = None  # completed trials the rule read


def decide(state: BoundaryState | None, rule: StopRule, trial_ids: Mapping[int, str] | None = None) -> StopDecision:
    """Evaluate ``rule`` on the current model; ``reason`` explains either way and names the recommended trial
    by its id in ``trial_ids`` (Optuna trial number -> Tune trial id), else by its Optuna number."""
    n = len(state.trials) if state else 0
    if state is None or n < rule.min_trials:
        return StopDecision(False, f"{n} of at least {rule.min_trials} trials complete", trials=n)
    share = state.ambiguous_share()
    fit = ModelFit.from_state(state)  # the report's view: its recommendation, slices and expected gain
    rec = fit.recommendation
    lo, hi = AMBIGUOUS
    where = f"ambiguous region ({lo:g} < P(harmless) < {hi:g}) covers {share:.1%} of the space"
    if rec is None:
        return StopDecision(False, f"{where}; no trial has forgotten with retain drop <= delta yet", share, trials=n)
    open_slices = fit.unpinned()
    located = share <= rule.max_ambiguous and not open_slices
    gain, resolvable = fit.expected_gain()
    enough = resolvable if rule.min_improvement is None else rule.min_improvement
    confirmed = len(rec.runs) >= rule.confirm_runs and rec.p_feasible >= rule.min_p_feasible
    converged = confirmed and gain < enough
    by = state.spec.boundary.slice_by or "the"
    slices = (f"boundary not yet pinned at {by} {', '.join(f'{b:.3g}' for b in open_slices)}" if open_slices
              else f"boundary pinned at every {by} slice")
    name = (trial_ids or {}).get(rec.trial_number, f"#{rec.trial_number}")
    text = (f"{where} (limit {rule.max_ambiguous:.0%}); {slices}; the recommendation so far, trial {name} "
            f"({rec.describe()}), has P(retain drop <= delta) = {rec.p_feasible:.2f} (needs {rule.min_p_feasible:g}) "
            f"and {len(rec.runs)} of {rule.confirm_runs} confirming runs; the model expects at most "
            f"{100 * gain:.1f} forget points more anywhere (needs < {100 * enough:.1f}, "
            f"{'one eval stderr' if rule.min_improvement is None else 'min_improvement'})")
    prefix = (f"boundary pinned and recommendation converged after {n} trials: " if located and converged else
              "boundary pinned, recommendation not yet converged: " if located else
              "recommendation converged, boundary not yet pinned: " if converged else "")
    return StopDecision(located and converged, prefix + text, share, rec.p_feasible, name,
                        len(fit.intervals) - len(open_slices), len(fit.intervals), rec.forget, len(rec.runs), n)


def stop_reason(run_dir: str | Path, num_samples: int, last_check: str | None = None,
                trials: int | None = None) -> str:
    """Why the search ended: the stopping rule's sentence from ``stop.json``, else the budget cap (or, with fewer
    than ``num_samples`` ``trials`` started, that it ended early) and what the rule's ``last_check`` still missed
    (its latest ``StopDecision.reason``, made when the last trial was suggested, so before the last trials
    completed)."""
    path = Path(run_dir) / STOP_FILE
    if path.is_file():
        return "stopped by itself: " + json.loads(path.read_text())["reason"]
    cap = (f"ended after {trials} of --num-samples {num_samples} trials" if trials is not None and
           trials < num_samples else f"ran to the budget cap (--num-samples {num_samples})")
    cap += " before the stopping rule fired"
    return f"{cap}; its last check, as the last trial was suggested: {last_check}" if last_check else cap


def after_stop(run_dir: str | Path, runs: list[str] | None, trials: int) -> str:
    """The stop sentence's end once the trials still running when the rule fired have finished: whether the
    search's answer over all ``trials`` (the report's recommended point, ``runs``: its trial ids) is still the
    point the rule named; "" when no trial finished after the stop (or the rule never fired)."""
    path = Path(run_dir) / STOP_FILE
    fired = json.loads(path.read_text()) if path.is_file() else {}
    later = trials - fired.get("trials", trials)
    if later <= 0:
        return ""
    named = fired.get("recommended")
    now = (f"trial {named} stays recommended" if named in (runs or []) else
           f"the recommendation moved to trial {runs[0]}" if runs else "no point is recommended now")
    return f"; the {later} trial{'s' if later > 1 else ''} still running at the stop finished afterwards: {now}"
