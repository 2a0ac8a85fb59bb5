"""The report's verdict: no boundary outside the sampled ratios, the selection rule, one definition of harmless
(no harmless state past delta), next steps over the boundary's parameters only, a space's own boundary names,
and why the search stopped (stop.json, the recorded reason, the budget cap)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np

from search_spaces.base import Boundary
from search_spaces.facts import PINNED_WIDTH
from tests.tuner.test_boundary import baseline_row, make_row, sweep
from trainables.evaluation.result import TaskScore
from tuner.analysis.boundary import analyse
from tuner.analysis.replicates import Replicates
from tuner.analysis.report_tables import outcome_table
from tuner.analysis.run_data import RunData, why_stopped
from tuner.analysis.verdict import FOUND, NOT_FOUND, SAFE_AS_GOOD, STRONGER_UNCERTAIN, UNCERTAIN, build_verdict
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


def test_an_interval_is_shown_only_when_pinned() -> None:
    """Shown when at most PINNED_WIDTH decades wide with trials near both ends (the stopping rule's test); else the
    line says which of those fails and prints no interval."""
    trials = sweep(n=48)
    a = analyse(trials, baseline_row())
    for ci, why in [((a.fit.ratio / 2, math.inf), "interval not yet bounded"),
                    ((a.fit.ratio / 2, 1e6), f"interval wider than {PINNED_WIDTH:g} decades")]:
        open_ended = dataclasses.replace(a, fit=dataclasses.replace(a.fit, ratio_ci=ci))
        (line,) = build_verdict(open_ended, trials, baseline_row(), "").boundary
        assert "inf" not in line and "1e+06" not in line and why in line


def test_an_unbracketed_boundary_names_the_ratios_that_need_trials() -> None:
    trials = [make_row(f"t{i}", ret, 0.01 * ret) for i, ret in enumerate([1.0, 3.0, 10.0])]  # all no_effect
    v = build_verdict(analyse(trials, baseline_row()), trials, baseline_row(), "")
    (line,) = v.boundary
    assert v.outcome == NOT_FOUND
    assert line.startswith("no retain drop above δ up to remove/retain ≈ 0.01 (the largest sampled near this slice)")
    assert v.next_step.startswith("sample remove/retain above 0.01")


def _row(trial_id: str, forget: float, retain: float, se: float = 0.01, **params: float) -> TrialRow:
    return TrialRow(trial_id, status="done", params=params, forget=TaskScore("f", forget, se, 80),
                    retain=TaskScore("r", retain, se, 80))


def test_the_selection_rule_recommends_only_within_delta_and_labels_an_uncertain_one() -> None:
    base = _row(BASELINE_ID, 0.99, 0.99, se=0.003)
    noisy = _row("noisy", 0.30, 0.95, se=0.04, retain_coef=1.0, remove_coef=1.0)  # 4 pts down, not significant
    clean = _row("clean", 0.50, 0.98, se=0.003, retain_coef=2.0, remove_coef=1.0)  # 1 +- 0.4 pts down
    close = _row("close", 0.40, 0.975, se=0.01, retain_coef=3.0, remove_coef=1.0)  # 1.5 +- 1 pts down
    both = build_verdict(analyse([noisy, clean], base, 0.02), [noisy, clean], base, "")
    assert both.outcome == FOUND and both.recommended.startswith("clean (")
    assert "forgets_harmlessly: lowest forget of the 1 trials that forgot with retain confidently within δ" in (
        both.recommended)
    assert "confidently within δ = 2.0 pts" in both.rule and "labelled forgets_uncertain" in both.rule
    a = analyse([noisy], base, 0.02)
    alone = build_verdict(a, [noisy], base, "")
    assert a.states["noisy"].value == "forgets_uncertain" and a.recommended is None and a.nearest == ["noisy"]
    assert alone.outcome == NOT_FOUND and "nearest candidates: noisy (" in alone.recommended
    _, header, rows = outcome_table(RunData([noisy], base, {}, {}, ""), a)
    assert rows[1][header.index("retain drop vs δ = 2")] == "4.0 ± 4.0 > 2: uncertain"
    a = analyse([close, noisy], base, 0.02)
    uncertain = build_verdict(a, [close, noisy], base, "")
    assert a.recommended == "close" and uncertain.outcome == UNCERTAIN
    assert "forgets_uncertain: retain drop 1.5 ± 1.0 pts is within δ on the point estimate" in uncertain.recommended
    assert uncertain.next_step.startswith("confirm close: re-evaluate it")
    a = analyse([clean, close], base, 0.02)
    stronger = build_verdict(a, [clean, close], base, "")
    assert (a.recommended, a.stronger) == ("clean", ["close"])
    assert stronger.next_step.startswith("confirm close: it forgot 10.0 pts more than clean")
    _, header, rows = outcome_table(RunData([clean, close], base, {}, {}, ""), a)
    assert [r[header.index("flags")] for r in rows] == ["", "recommended, Pareto", "confirm, Pareto"]


def test_an_uncertain_pick_is_said_to_forget_more_only_when_its_runs_did() -> None:
    """With the sampler's model, an uncertain pick beside a confidently harmless trial: "forgets more" only when
    its runs' mean forget is lower and the two are not statistically tied; else the outcome says the harmless
    trial forgot as much."""
    base = _row(BASELINE_ID, 0.99, 0.99, se=0.003)
    clean = _row("clean", 0.50, 0.98, se=0.003, retain_coef=2.0, remove_coef=1.0)
    close = _row("close", 0.40, 0.975, se=0.01, retain_coef=3.0, remove_coef=1.0)
    a = analyse([clean, close], base, 0.02)
    picked = dataclasses.replace(a, recommended="close", replicates=Replicates.of(close, [clean, close], base),
                                 tied=[], by_model=True)
    v = build_verdict(picked, [clean, close], base, "")
    assert v.outcome == STRONGER_UNCERTAIN
    assert f"forgets_uncertain: the model's P(drop ≤ δ) = {a.p_harmless['close']:.2f} is below 0.9" in v.recommended
    assert "the boundary sampler's rule: among the sampled points that forgot" in v.rule
    assert v.next_step.startswith("confirm close:")  # and why: the model's P, not the run's own test
    assert f"(the model's P(drop ≤ δ) there is {a.p_harmless['close']:.2f}, below 0.9)" in v.next_step
    own = build_verdict(dataclasses.replace(picked, by_model=False), [clean, close], base, "")
    assert "the first run's retain drop 1.5 ± 1.0 pts is within δ, not confidently)" in own.next_step
    tied = build_verdict(dataclasses.replace(picked, tied=["clean"]), [clean, close], base, "")
    assert tied.outcome == SAFE_AS_GOOD
    weaker = _row("close", 0.55, 0.975, se=0.01, retain_coef=3.0, remove_coef=1.0)
    behind = dataclasses.replace(picked, replicates=Replicates.of(weaker, [clean, weaker], base))
    assert build_verdict(behind, [clean, weaker], base, "").outcome == SAFE_AS_GOOD


def test_no_state_says_harmless_past_delta() -> None:
    """Random trials around delta, small and large stderrs: a harmless state has drop <= delta, a damaging one
    drop > delta, and each side agrees with its one-sided z-test."""
    rng = np.random.default_rng(0)
    base = _row(BASELINE_ID, 0.9, 0.95, se=0.005)
    trials = [_row(f"t{i}", rng.uniform(0.25, 0.9), 0.95 - rng.uniform(-0.01, 0.06), se=rng.choice([0.002, 0.02]),
                   retain_coef=1.0, remove_coef=float(rng.uniform(0.1, 10))) for i in range(200)]
    a = analyse(trials, base, 0.02)
    drops = {t.trial_id: 0.95 - t.retain.acc for t in trials}
    harmless = {i for i, s in a.states.items() if s.value in ("no_effect", "forgets_harmlessly")}
    damaging = {i for i, s in a.states.items() if s.value in ("damages", "both_collapsed")}
    assert not [(i, round(100 * drops[i], 1), a.states[i].value) for i in harmless if drops[i] > 0.02]
    assert not [(i, round(100 * drops[i], 1), a.states[i].value) for i in damaging if drops[i] <= 0.02]
    sides = {"harmless": 0, "uncertain": 0, "damaging": 0}
    for t in trials:
        drop, se = drops[t.trial_id], math.hypot(0.005, t.retain.stderr)
        assert (t.trial_id in harmless) == (0.02 - drop > 1.645 * se), t.trial_id
        assert (t.trial_id in damaging) == (drop - 0.02 > 1.645 * se), t.trial_id
        sides["harmless" if t.trial_id in harmless else "damaging" if t.trial_id in damaging else "uncertain"] += 1
    assert min(sides.values()) >= 20, sides  # all three outcomes are exercised


def test_the_next_step_names_only_searched_parameters() -> None:
    damaged = [_row(f"t{i}", 0.50, 0.60, remove_coef=m) for i, m in enumerate([1.0, 2.0])]
    base = _row(BASELINE_ID, 0.99, 0.99)
    step = build_verdict(analyse(damaged, base), damaged, base, "").next_step
    assert not {"lr", "retain_coef", "beta_kl", "raise"} & set(re.findall(r"\w+", step))
    assert step.startswith("sample remove_coef below 1: the retain drop is above δ already there")


def test_a_boundary_without_a_ratio_is_named_by_its_own_params() -> None:
    """A space's boundary along remove_coef, sliced by kl_temperature, retain_coef fixed: the verdict and table
    name those params, never remove/retain or beta_kl."""
    base = _row(BASELINE_ID, 0.9, 0.95, se=0.003)
    trials = [_row(f"t{i}{j}", 0.9 if rem < 1 else 0.4, 0.95 if rem < 3 * temp else 0.7, se=0.003,
                   remove_coef=rem, kl_temperature=temp)
              for i, rem in enumerate([0.3, 0.9, 2.0, 5.0, 12.0]) for j, temp in enumerate([1.0, 2.0, 4.0])]
    a = analyse(trials, base, 0.02, boundary=Boundary(along="remove_coef", slice_by="kl_temperature"))
    v = build_verdict(a, trials, base, "")
    assert a.boundary == Boundary(along="remove_coef", slice_by="kl_temperature")
    assert [line.split(":")[0] for line in v.boundary] == [f"at kl_temperature ≈ {t:g}" for t in (1, 2, 4)]
    assert all("remove_coef" in line for line in v.boundary)
    text = v.text()
    assert "remove/retain" not in text and "beta_kl" not in text and "retain_coef" not in text
    _, header, _ = outcome_table(RunData(trials, base, {}, {}, ""), a)
    assert header[-2:] == ["remove_coef", "kl_temperature"]


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


class _StubModel:
    """The boundary sampler's model as the analysis reads it: P(drop <= delta) per trial, no slices."""

    boundary = Boundary("remove_coef", ratio_to="retain_coef")
    by_slice, at_slice, ratio, ratio_ci = (), None, None, (math.inf, math.inf)

    def __init__(self, p_by_retain_coef: dict[float, float]) -> None:
        self.p = p_by_retain_coef

    def p_at(self, params: dict[str, float]) -> float:
        return self.p[params["retain_coef"]]

    def describe(self) -> str:
        return "a stub model"


def test_with_the_samplers_model_the_report_names_the_samplers_pick_and_the_safe_alternative() -> None:
    """The sampler's rule (lowest forget with P >= CONFIDENT) picks the stronger uncertain trial, as the stop
    sentence and console do; the outcome still says harmless forgetting was found, and names the confirmed one."""
    base = _row(BASELINE_ID, 0.99, 0.99, se=0.003)
    safe = _row("safe", 0.50, 0.98, se=0.003, retain_coef=2.0, remove_coef=1.0)  # P 0.95: harmless
    bold = _row("bold", 0.40, 0.975, se=0.01, retain_coef=3.0, remove_coef=1.0)  # P 0.8: uncertain, P >= 0.7
    risky = _row("risky", 0.30, 0.972, se=0.01, retain_coef=4.0, remove_coef=1.0)  # P 0.5: below CONFIDENT
    model = _StubModel({2.0: 0.95, 3.0: 0.8, 4.0: 0.5})
    a = analyse([safe, bold, risky], base, 0.02, model=model)
    states = [a.states[t].value for t in ("safe", "bold", "risky")]
    assert states == ["forgets_harmlessly", "forgets_uncertain", "forgets_uncertain"]
    assert a.recommended == "bold"
    v = build_verdict(a, [safe, bold, risky], base, "")
    assert v.outcome.startswith(FOUND) and v.outcome != FOUND
    assert "confirm it before use" in v.recommended
    assert "the lowest forget confidently harmless: safe (" in v.recommended


def test_a_slice_bracketed_by_runs_but_wide_in_the_model_asks_for_runs_across_the_models_interval() -> None:
    """A located slice whose single runs bracket the boundary within PINNED_WIDTH while the model's interval is wider
    (noisy runs): the step names the model's interval, not the runs' bracket, which sampling cannot narrow."""
    from types import SimpleNamespace

    from tuner.analysis.slices import Kind, Slice
    from tuner.analysis.verdict_steps import _sample

    a = SimpleNamespace(boundary=Boundary("remove_coef", ratio_to="retain_coef", slice_by="beta_kl"), fit=None)
    runs = ((0.01, True), (0.22, True), (0.25, False), (3.0, False))
    wide = Slice(level=0.1, estimate=0.24, interval=(0.03, 0.25), sampled=runs)
    assert wide.kind is Kind.LOCATED and not wide.pinned
    assert _sample(a, wide).startswith("sample remove/retain across 0.03–0.25 at beta_kl ≈ 0.1, the model's interval")
    assert "single runs bracket the boundary at 0.22–0.25" in _sample(a, wide)
    apart = Slice(level=0.1, estimate=0.24, interval=(0.03, 0.25), sampled=((0.01, True), (0.05, True), (3.0, False)))
    assert _sample(a, apart) == "sample remove/retain between 0.05 and 3 at beta_kl ≈ 0.1 to pin the boundary"
