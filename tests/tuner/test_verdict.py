"""The report's verdict: no boundary outside the sampled ratios, the selection rule, next steps over searched
parameters only, and why the search stopped (stop.json, the recorded reason, the budget cap)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from tests.tuner.test_boundary import baseline_row, make_row, sweep
from trainables.evaluation.result import TaskScore
from tuner.analysis.boundary import analyse
from tuner.analysis.report_tables import outcome_table
from tuner.analysis.run_data import RunData, why_stopped
from tuner.analysis.verdict import FOUND, NOT_FOUND, UNCERTAIN, build_verdict
from tuner.records.results import to_markdown
from tuner.records.schema import BASELINE_ID, TrialRow


def _sampled(trials: list[TrialRow]) -> tuple[float, float]:
    ratios = [t.params["remove_coef"] / t.params["retain_coef"] for t in trials]
    return min(ratios), max(ratios)


def test_a_boundary_outside_the_sampled_ratios_is_refused() -> None:
    trials = sweep(n=48)
    a = analyse(trials, baseline_row())
    assert a.fit is not None and a.fit.ratio is not None
    lo, hi = _sampled(trials)
    (inside,) = build_verdict(a, trials, baseline_row(), "").boundary
    assert f"≈ {a.fit.ratio:.3g}" in inside and "interval" in inside
    far = dataclasses.replace(a, fit=dataclasses.replace(a.fit, ratio=713.0))
    (line,) = build_verdict(far, trials, baseline_row(), "").boundary
    assert line.startswith("beyond the sampled range") and "713" not in line and f"{hi:.3g}" in line


def test_an_interval_is_shown_only_when_finite_and_inside_the_sampled_range() -> None:
    trials = sweep(n=48)
    a = analyse(trials, baseline_row())
    for ci in [(a.fit.ratio / 2, math.inf), (a.fit.ratio / 2, 1e6)]:
        open_ended = dataclasses.replace(a, fit=dataclasses.replace(a.fit, ratio_ci=ci))
        (line,) = build_verdict(open_ended, trials, baseline_row(), "").boundary
        assert "inf" not in line and "1e+06" not in line and "interval not yet bounded" in line


def test_an_unbracketed_boundary_names_the_ratios_that_need_trials() -> None:
    trials = [make_row(f"t{i}", ret, 0.01 * ret) for i, ret in enumerate([1.0, 3.0, 10.0])]  # all no_effect
    v = build_verdict(analyse(trials, baseline_row()), trials, baseline_row(), "")
    (line,) = v.boundary
    assert v.outcome == NOT_FOUND and line.startswith("not resolved yet") and "above 0.01" in line


def _row(trial_id: str, forget: float, retain: float, se: float = 0.01, **params: float) -> TrialRow:
    return TrialRow(trial_id, status="done", params=params, forget=TaskScore("f", forget, se, 80),
                    retain=TaskScore("r", retain, se, 80))


def test_the_selection_rule_prefers_a_feasible_trial_and_labels_an_uncertain_one() -> None:
    base = _row(BASELINE_ID, 0.99, 0.99)
    noisy = _row("noisy", 0.30, 0.95, se=0.04, retain_coef=1.0, remove_coef=1.0)  # 4 pts down, not significant
    clean = _row("clean", 0.50, 0.98, retain_coef=2.0, remove_coef=1.0)
    both = build_verdict(analyse([noisy, clean], base, 0.02), [noisy, clean], base, "")
    assert both.outcome == FOUND and both.recommended.startswith("clean (")
    assert "lowest forget of the 1 trials that forgot with retain drop ≤ δ" in both.recommended
    assert "≤ δ = 2 pts on the point estimate" in both.rule and "labelled so" in both.rule
    a = analyse([noisy], base, 0.02)
    alone = build_verdict(a, [noisy], base, "")
    assert alone.outcome == UNCERTAIN and "labelled only not confidently damaged" in alone.recommended
    _, header, rows = outcome_table(RunData([noisy], base, {}, {}, ""), a)
    assert rows[1][header.index("flags")] == "recommended, Pareto, only not confidently damaged"


def test_the_next_step_names_only_searched_parameters() -> None:
    damaged = [_row(f"t{i}", 0.50, 0.60, remove_coef=m) for i, m in enumerate([1.0, 2.0])]
    base = _row(BASELINE_ID, 0.99, 0.99)
    step = build_verdict(analyse(damaged, base), damaged, base, "").next_step
    assert "lr" not in step and "retain_coef" not in step and "beta_kl" not in step
    assert "remove_coef" in step


def test_why_the_search_stopped(tmp_path: Path) -> None:
    config = {"num_samples": 40, "extra": {"stop_reason": "ran to the budget cap (--num-samples 40) ..."}}
    assert why_stopped(tmp_path, {}, 3) == ""
    assert why_stopped(tmp_path, {"num_samples": 40}, 40) == "ran to the budget cap (--num-samples 40)"
    assert "interrupted or is still running" in why_stopped(tmp_path, {"num_samples": 40}, 12)
    assert why_stopped(tmp_path, config, 12) == config["extra"]["stop_reason"]
    (tmp_path / "stop.json").write_text(json.dumps({"reason": "boundary pinned after 18 trials: ..."}))
    assert why_stopped(tmp_path, config, 18) == "stopped by itself: boundary pinned after 18 trials: ..."
    trials = sweep(n=8)
    v = build_verdict(analyse(trials, baseline_row()), trials, baseline_row(), why_stopped(tmp_path, config, 8))
    assert "Why the search stopped: stopped by itself: boundary pinned" in v.text()
    assert "unknown" in build_verdict(analyse(trials, baseline_row()), trials, baseline_row(), "").stopped


def test_results_md_ends_with_the_stop_line() -> None:
    rows = [baseline_row(), *sweep(n=2)]
    assert "stopped" not in to_markdown(rows)
    assert to_markdown(rows, "ran to the budget cap (--num-samples 2)").endswith(
        "\n\nSearch stopped: ran to the budget cap (--num-samples 2)\n")
