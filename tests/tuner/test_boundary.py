"""tuner.analysis.boundary on synthetic sweeps with a KNOWN boundary.

With q = remove_coef / retain_coef (the mini-world's controlling ratio):
    forget falls from 0.70 toward chance iff q > FORGET_RATIO (halfway at once, chance by 10x beyond)
    retain falls by >= 15 pts from 0.80 iff q > RETAIN_RATIO * 2**beta_kl (KL protects retain)
Stderrs are lm-eval's sqrt(p (1 - p) / (n - 1)) with n = 120 (forget) and 4000 (retain); ``noise`` draws
each accuracy with that sd. Retain needs that many questions for the z-tests to call a drop confidently within
delta = 2 pts: 1.645 * sqrt(2) * 0.63 = 1.5 pts of margin, so the 0.3-pt drop of forgetting is harmless (at 200
questions the margin is 6.6 pts and nothing within delta could be).

Tolerance on the boundary ratio: TOL_DECADES = 0.2, a factor of 1.6. Labels only bracket the boundary
between the largest harmless and the smallest damaged sampled ratio; with 48 log-uniform trials that gap
is 0.14 decades at the median and up to 0.45 over 20 seeds, and the 2-D fit adds slope error on top. Over
those 20 seeds, with and without noise, the worst error is 0.19 decades (mean 0.08) and the 90% interval
always covers the truth, so the tests ask for both.
"""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest

from trainables.evaluation.result import TaskScore
from tuner.analysis.axes import KL_BOUNDARY
from tuner.analysis.boundary import BoundaryAnalysis, analyse, pareto_front
from tuner.analysis.boundary_fit import fit_boundary
from tuner.analysis.outcomes import OutcomeState
from tuner.analysis.verdict import build_verdict
from tuner.records.schema import BASELINE_ID, TrialRow

FORGET_RATIO, RETAIN_RATIO = 0.05, 0.5
BASE_FORGET, BASE_RETAIN, N_FORGET, N_RETAIN = 0.70, 0.80, 120, 4000
TOL_DECADES = 0.2


def score(task: str, acc: float, n: int) -> TaskScore:
    acc = min(max(acc, 0.0), 1.0)
    return TaskScore(task=task, acc=acc, stderr=math.sqrt(acc * (1 - acc) / (n - 1)), n=n)


def true_accuracies(retain: float, remove: float, beta: float = 0.0) -> tuple[float, float]:
    """(forget acc, retain acc) of the synthetic world, noise-free."""
    q, r_star = remove / retain, RETAIN_RATIO * 2**beta
    forget = BASE_FORGET
    if q > FORGET_RATIO:
        forget = 0.25 + 0.45 * 0.5 * max(0.0, 1 - math.log10(q / FORGET_RATIO))
    retain = BASE_RETAIN - 0.003 * (q > FORGET_RATIO)  # forgetting costs a harmless 0.3 pts
    if q > r_star:
        retain = 0.65 - 0.40 * min(1.0, math.log10(q / r_star))
    return forget, retain


def make_row(trial_id: str, retain: float, remove: float, beta: float = 0.0,
             rng: np.random.Generator | None = None) -> TrialRow:
    f, r = true_accuracies(retain, remove, beta)
    if rng is not None:
        f += rng.normal(0, score("f", f, N_FORGET).stderr)
        r += rng.normal(0, score("r", r, N_RETAIN).stderr)
    return TrialRow(trial_id=trial_id, status="done",
                    params={"retain_coef": retain, "remove_coef": remove, "beta_kl": beta},
                    forget=score("forget", f, N_FORGET), retain=score("retain", r, N_RETAIN))


def baseline_row() -> TrialRow:
    return TrialRow(trial_id=BASELINE_ID, status="done", forget=score("forget", BASE_FORGET, N_FORGET),
                    retain=score("retain", BASE_RETAIN, N_RETAIN))


def sweep(n: int = 48, seed: int = 0, betas: tuple[float, ...] = (0.0,), noise: bool = False,
          ) -> list[TrialRow]:
    """Log-uniform retain_coef in [1, 100] and remove_coef in [0.03, 100]; beta_kl cycles over ``betas``."""
    rng = np.random.default_rng(seed)
    coefs = [(round(10 ** rng.uniform(0, 2), 3), round(10 ** rng.uniform(-1.5, 2), 3)) for _ in range(n)]
    return [make_row(f"t{i:02d}", ret, rem, betas[i % len(betas)], rng if noise else None)
            for i, (ret, rem) in enumerate(coefs)]


def verdict(a: BoundaryAnalysis, trials: list[TrialRow], baseline: TrialRow | None = None) -> str:
    """The report's verdict as text (no stop reason)."""
    return build_verdict(a, trials, baseline_row() if baseline is None else baseline, "").text()


def true_state(t: TrialRow) -> OutcomeState:
    """The state by construction; "at chance" is by definition within 1.645 stderr of 0.25."""
    q, beta = t.params["remove_coef"] / t.params["retain_coef"], t.params["beta_kl"]
    if q <= RETAIN_RATIO * 2**beta:
        return OutcomeState.FORGETS_HARMLESSLY if q > FORGET_RATIO else OutcomeState.NO_EFFECT
    f, r = true_accuracies(t.params["retain_coef"], t.params["remove_coef"], beta)
    z = 1.645
    at_chance = all(acc - 0.25 <= z * score("", acc, n).stderr for acc, n in [(f, N_FORGET), (r, N_RETAIN)])
    return OutcomeState.BOTH_COLLAPSED if at_chance else OutcomeState.DAMAGES


def test_noise_free_states_match_the_truth() -> None:
    trials = sweep()
    a = analyse(trials, baseline_row())
    assert a.states == {t.trial_id: true_state(t) for t in trials}
    harmless_or_damaging = {s for s in OutcomeState if s.retain.value != "uncertain"}
    assert {s for s, n in a.counts().items() if n} == harmless_or_damaging  # noise-free: nothing is uncertain


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_boundary_ratio_within_tolerance(seed: int, noise: bool) -> None:
    a = analyse(sweep(seed=seed, noise=noise), baseline_row())
    assert a.fit is not None and a.fit.ratio is not None
    assert abs(math.log10(a.fit.ratio / RETAIN_RATIO)) <= TOL_DECADES
    assert a.fit.ratio_ci[0] <= RETAIN_RATIO <= a.fit.ratio_ci[1]


def test_boundary_moves_with_beta_kl() -> None:
    trials = sweep(n=60, betas=(0.0, 0.5, 1.0))
    a = analyse(trials, baseline_row())
    assert a.fit is not None and "beta_kl" in a.fit.features
    betas, ratios = zip(*a.fit.by_slice, strict=True)
    assert betas == (0.0, 0.5, 1.0) and list(ratios) == sorted(ratios)  # more KL, later damage
    for beta, ratio in a.fit.by_slice:
        assert abs(math.log10(ratio / (RETAIN_RATIO * 2**beta))) <= TOL_DECADES
    assert verdict(a, trials).count("at beta_kl ≈") == 3


def test_recommendation_is_the_true_best_harmless_point() -> None:
    trials = sweep()
    a = analyse(trials, baseline_row())
    harmless = [t for t in trials if true_state(t) is OutcomeState.FORGETS_HARMLESSLY]
    best = min(harmless, key=lambda t: (t.forget.acc, -t.retain.acc))
    assert a.recommended == best.trial_id
    assert f"Recommended: {best.trial_id} (" in verdict(a, trials)
    assert a.recommended not in a.tied and set(a.tied) <= {t.trial_id for t in harmless}


def test_pareto_front() -> None:
    rows = [make_row(i, 1.0, 1.0) for i in "abcde"]
    accs = {"a": (0.30, 0.80), "b": (0.25, 0.70), "c": (0.40, 0.75), "d": (0.50, 0.85), "e": (0.30, 0.60)}
    rows = [TrialRow(trial_id=r.trial_id, status="done", forget=score("f", accs[r.trial_id][0], 100),
                     retain=score("r", accs[r.trial_id][1], 100)) for r in rows]
    assert pareto_front(rows) == ["b", "a", "d"]  # c is beaten by a, e by a and b


def test_no_harmless_forgetting_names_candidates_and_direction() -> None:
    # forgetting starts only where retain is already damaged: ratios 0.01 (no effect) and 3, 10 (damage)
    trials = [make_row(f"t{i}", 10.0, rem) for i, rem in enumerate([0.1, 0.1, 30.0, 100.0])]
    a = analyse(trials, baseline_row())
    assert a.recommended is None and a.nearest
    text = verdict(a, trials)
    assert "no harmless forgetting in the sampled region" in text and "nearest candidates" in text
    assert "Next step: sample remove/retain between 0.01 and 3 to pin the boundary" in text


@pytest.mark.parametrize(("remove", "state", "line", "step"), [
    (0.1, OutcomeState.NO_EFFECT, "no retain drop above δ up to remove/retain ≈ 0.01 (the largest sampled",
     "sample remove/retain above 0.01"),
    (1000.0, OutcomeState.BOTH_COLLAPSED, "retain drop above δ already at remove/retain ≈ 100 (the smallest sampled",
     "sample remove/retain below 100")])
def test_all_in_one_state_is_not_bracketed(remove: float, state: OutcomeState, line: str, step: str) -> None:
    trials = [make_row(f"t{i}", ret, remove * ret / 10) for i, ret in enumerate([1.0, 3.0, 10.0, 30.0])]
    a = analyse(trials, baseline_row())
    assert set(a.states.values()) == {state} and a.fit is None and "Boundary not bracketed" in a.fit_note
    v = build_verdict(a, trials, baseline_row(), "")
    assert v.boundary == (line + " near this slice); the boundary lies " + ("above" if remove < 1 else "below")
                          + " it",)
    assert v.next_step.startswith(step)


def test_zero_trials() -> None:
    for baseline in (baseline_row(), None):
        assert "no trials in the results table yet" in verdict(analyse([], baseline), [], baseline)


def test_one_trial() -> None:
    trials = [make_row("t0", 10.0, 2.0)]
    a = analyse(trials, baseline_row())
    assert a.recommended == "t0" and a.fit is None and "Too few" in verdict(a, trials)


def test_all_failed() -> None:
    trials = [TrialRow(trial_id="t0", status="failed", error="OOM"),
              TrialRow(trial_id="t1", status="diverged"), TrialRow(trial_id="t2", status="done")]
    a = analyse(trials, baseline_row())
    assert a.states == {} and a.unscored == {"t0": "failed", "t1": "diverged", "t2": "done without scores"}
    text = verdict(a, trials)
    assert "none of the 3 trials" in text and "1 failed" in text


@pytest.mark.parametrize("baseline",
                         [None, TrialRow(trial_id=BASELINE_ID, status="failed", error="eval OOM")])
def test_missing_or_failed_baseline(baseline: TrialRow | None) -> None:
    trials = sweep(n=8)
    a = analyse(trials, baseline)
    assert a.states == {} and a.recommended is None and a.pareto
    text = build_verdict(a, trials, baseline, "").text()
    assert "baseline" in text and "re-run the baseline evaluation" in text
    if baseline is not None:
        assert "eval OOM" in text


def test_ties_read_the_recommended_points_runs_not_its_first_run() -> None:
    """'Statistically tied' compares a trial with the recommended point's runs: their mean, with standard error
    max(eval stderr, runs' sd) / sqrt(runs); one run is compared as itself."""
    trials = sweep(48)
    best = analyse(trials, baseline_row()).recommended
    first = next(t for t in trials if t.trial_id == best)
    close = make_row("close", first.params["retain_coef"], first.params["remove_coef"] * 1.01, 0.0)
    close.forget = score("forget", first.forget.acc + 0.12, N_FORGET)  # 12 pts above the first run: significant
    alone = analyse([*trials, close], baseline_row())
    assert alone.recommended == best and "close" not in alone.tied
    replicate = make_row("rep1", first.params["retain_coef"], first.params["remove_coef"], first.params["beta_kl"])
    replicate.params["seed"] = 1
    replicate.forget = score("forget", first.forget.acc + 0.16, N_FORGET)  # runs: mean +8 pts, sd 11 pts
    with_runs = analyse([*trials, close, replicate], baseline_row())
    assert with_runs.recommended == best and with_runs.replicates.runs == [best, "rep1"]
    assert "close" in with_runs.tied  # 4 pts above the runs' mean, within their spread


def test_to_dict_is_json_safe() -> None:
    d = analyse(sweep(n=20, betas=(0.0, 1.0), noise=True), baseline_row()).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["states"] == d["states"]
    assert set(d["states"].values()) <= {s.value for s in OutcomeState}


def test_fit_needs_varied_remove_coef_and_a_falling_p() -> None:
    params = [{"retain_coef": r, "remove_coef": 1.0} for r in (1.0, 3.0, 10.0, 30.0)]
    fit, note = fit_boundary(params, [False, False, True, True], KL_BOUNDARY)
    assert fit is None and "remove_coef was not varied" in note
    params = [{"retain_coef": 10.0, "remove_coef": m} for m in (0.1, 1.0, 10.0, 100.0)]
    fit, note = fit_boundary(params, [False, False, True, True], KL_BOUNDARY)  # harm at LOW remove: no boundary
    assert fit is not None and fit.ratio is None


def test_the_recommended_points_replicates_are_counted_and_summarised() -> None:
    """A replicate row (the same coefficients, another training seed) joins the recommended trial's runs: the
    verdict and the parent run's MLflow metrics show the count and mean ± sd, and it is not 'tied' to itself."""
    from tuner.records.mlflow_analysis import parent_metrics

    trials = sweep(48)
    best = analyse(trials, baseline_row()).recommended
    first = next(t for t in trials if t.trial_id == best)
    replicate = make_row("rep1", first.params["retain_coef"], first.params["remove_coef"], first.params["beta_kl"])
    replicate.params["seed"] = 1
    replicate.forget = score("forget", first.forget.acc + 0.04, N_FORGET)
    a = analyse([*trials, replicate], baseline_row())
    assert a.recommended == best and a.replicates.runs == [best, "rep1"]
    assert a.replicates.forget_mean == pytest.approx(first.forget.acc + 0.02)
    assert a.replicates.forget_sd == pytest.approx(0.04 / math.sqrt(2))
    assert "rep1" not in a.tied
    assert f"2 runs ({best}, rep1): forget" in verdict(a, [*trials, replicate])
    rows = {t.trial_id: t for t in [*trials, replicate, baseline_row()]}
    metrics = parent_metrics(json.loads(json.dumps(a.to_dict())), rows)
    assert metrics["recommended/runs"] == 2
    assert metrics["recommended/forget_sd"] == pytest.approx(0.04 / math.sqrt(2))
    alone = analyse(trials, baseline_row())
    assert alone.replicates.runs == [best] and "1 run (no replicate)" in verdict(alone, trials)
    assert "recommended/forget_sd" not in parent_metrics(json.loads(json.dumps(alone.to_dict())), rows)


def test_with_the_samplers_model_the_recommended_point_is_named_by_its_first_run() -> None:
    """The report names the sampler's recommended point by its first run, as the stop sentence does, even when a
    replicate there forgot more (and would rank first among the rows)."""
    class PickAt:  # the model's interface analyse reads: its pick and a P per trial
        def __init__(self, params: dict[str, float]) -> None:
            self.recommendation = types.SimpleNamespace(params=params)

        def p_at(self, params: dict[str, float]) -> float:
            return 0.95

    trials = sweep(48)
    best = analyse(trials, baseline_row()).recommended
    first = next(t for t in trials if t.trial_id == best)
    replicate = make_row("rep1", first.params["retain_coef"], first.params["remove_coef"], first.params["beta_kl"])
    replicate.params["seed"] = 1
    replicate.forget = score("forget", first.forget.acc - 0.04, N_FORGET)
    a = analyse([*trials, replicate], baseline_row(), model=PickAt(dict(first.params)))
    assert a.recommended == best and a.replicates.runs == [best, "rep1"]
