"""The report of a boundary-sampler run reads the sampler's own model: states from its P (no harmless state past
delta), feasible recommendations, next steps that never cross the boundary, and per-slice boundary lines that
claim only what the trials near each slice show (2 trials, all damaging, all harmless, a slice without trials)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import optuna

from tests.tuner.test_boundary_search import BASE, FAST, SPACE, SPEC, objective
from trainables.evaluation.result import TaskScore
from tuner.analysis.boundary import analyse
from tuner.analysis.report import render_report
from tuner.analysis.slices import Kind, boundary_slices
from tuner.analysis.verdict import NOT_FOUND, build_verdict
from tuner.boundary_search import BoundarySampler
from tuner.boundary_search.report_fit import ModelFit
from tuner.boundary_search.state import BoundaryState
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID, TrialRow


def row(trial_id: str, forget: float, retain: float, se: float = 0.01, **params: float) -> TrialRow:
    return TrialRow(trial_id, status="done", params=params, forget=TaskScore("f", forget, se, 80),
                    retain=TaskScore("r", retain, se, 80))


def test_report_uses_the_boundary_samplers_model(tmp_path: Path):
    study = optuna.create_study(directions=["minimize", "maximize"], study_name="kl_boundary-miniworld",
                                storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                sampler=BoundarySampler(SPEC, FAST, seed=0))
    table = ResultsTable(tmp_path)
    table.write(row(BASELINE_ID, 0.99, BASE))
    for _ in range(30):
        trial = study.ask(SPACE)
        forget, retain, fse, rse = objective(trial.params)
        trial.set_user_attr("forget_stderr", fse)
        trial.set_user_attr("retain_stderr", rse)
        study.tell(trial, [forget, retain])
        table.write(row(f"t{trial.number}", forget, retain, **trial.params))
    (tmp_path / "run_config.json").write_text(json.dumps({
        "space": "kl_boundary", "preset": "miniworld", "delta": 0.02,
        "extra": {"stop_reason": "stopped by itself: boundary pinned after 30 trials"}}))
    out = render_report(tmp_path)
    result = json.loads((out / "boundary.json").read_text())
    fit = result["fit"]
    assert len(fit["intervals"]) == 3 and fit["n_harmless"] + fit["n_damaged"] == 30
    # the true boundary ratio is 0.5 at every beta_kl: each slice's estimate and a finite interval around it
    for (_, ratio), (_, lo, hi) in zip(fit["by_slice"], fit["intervals"], strict=True):
        assert 0.5 / 2 < ratio < 0.5 * 2 and lo <= ratio <= hi < 10
    rows = {r.trial_id: r for r in ResultsTable(tmp_path).rows()}
    rec = rows[result["recommended"]]
    assert BASE - rec.retain.acc <= 0.02
    verdict = result["verdict"]
    assert "boundary sampler's GP model" in verdict["evidence"] and "P(drop ≤ δ)=" in verdict["recommended"]
    assert "boundary pinned" in verdict["stopped"] and len(verdict["boundary"]) == 3
    assert re.match(r"(confirm|accept|sample) ", verdict["next_step"]) and "raise" not in verdict["next_step"]
    assert (out / "harmless_map.png").stat().st_size > 10_000
    # one definition of harmless: each state's retain side is the model's P at the trial against delta
    sides = {"no_effect": "harmless", "forgets_harmlessly": "harmless", "damages": "damaging",
             "both_collapsed": "damaging"}
    for trial_id, state in result["states"].items():
        drop, p = BASE - rows[trial_id].retain.acc, result["p_harmless"][trial_id]
        side = "harmless" if drop <= 0.02 and p >= 0.9 else "damaging" if drop > 0.02 and p <= 0.1 else "uncertain"
        assert sides.get(state, "uncertain") == side, (trial_id, state, drop, p)
    assert {sides.get(s, "uncertain") for s in result["states"].values()} >= {"harmless", "damaging"}
    # the rule fired at 28 trials naming another point; the 2 trials running then moved the answer: the sentence
    # names the report's recommended point
    (tmp_path / "stop.json").write_text(json.dumps({"reason": "boundary pinned ...", "trials": 28,
                                                    "recommended": "t-other"}))
    stopped = json.loads((render_report(tmp_path) / "boundary.json").read_text())["verdict"]["stopped"]
    assert stopped == ("stopped by itself: boundary pinned ...; the 2 trials still running at the stop finished "
                       f"afterwards: the recommendation moved to trial {result['recommended']}")


def model_run(points: list[tuple[float, float, float]]) -> tuple[ModelFit, list[TrialRow]]:
    """The sampler's model of trials at (retain_coef, remove_coef, beta_kl) on the test objective (damage above
    remove/retain 0.5, forgetting above 0.05), and their rows, baseline first."""
    study = optuna.create_study(directions=["minimize", "maximize"])
    rows = [row(BASELINE_ID, 0.99, BASE)]
    for retain_coef, remove_coef, beta_kl in points:
        params = {"retain_coef": retain_coef, "remove_coef": remove_coef, "beta_kl": beta_kl}
        forget, retain, fse, rse = objective(params)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=SPACE, values=[forget, retain],
                                                  user_attrs={"forget_stderr": fse, "retain_stderr": rse}))
        rows.append(row(f"t{len(rows)}", forget, retain, **params))
    return ModelFit.from_state(BoundaryState.from_study(study, SPEC)), rows


def boundary_lines(points: list[tuple[float, float, float]]) -> tuple[ModelFit, tuple[str, ...], str]:
    fit, rows = model_run(points)
    v = build_verdict(analyse(rows, rows[0], 0.02, model=fit), rows[1:], rows[0], "")
    assert len(v.boundary) == 3 and "searched range" not in " ".join(v.boundary) and "raise" not in v.next_step
    return fit, v.boundary, v.next_step


def test_two_trials_state_only_their_own_slice():
    """Both trials near beta_kl 0, harmless at remove/retain 0.01 and 0.05: the other slices are not sampled."""
    _, (low, mid, high), step = boundary_lines([(10.0, 0.1, 0.05), (10.0, 0.5, 0.1)])
    assert low == ("at beta_kl ≈ 0: no retain drop above δ up to remove/retain ≈ 0.05 (the largest sampled near "
                   "this slice); the boundary lies above it")
    assert (mid, high) == ("at beta_kl ≈ 0.5: not sampled: no trial near this slice yet",
                           "at beta_kl ≈ 1: not sampled: no trial near this slice yet")
    assert step.startswith("sample beta_kl ≈ 0.5 and 1: no trial near them yet; sample remove/retain above 0.05 at "
                           "beta_kl ≈ 0")


def test_all_damaging_trials_put_the_boundary_below_the_smallest():
    points = [(1.0, m, b) for m in (2.0, 5.0, 20.0) for b in (0.05, 0.5, 0.95)]
    fit, rows = model_run(points)
    a = analyse(rows, rows[0], 0.02, model=fit)
    v = build_verdict(a, rows[1:], rows[0], "")
    assert v.outcome == NOT_FOUND and {s.value for s in a.states.values()} <= {"damages", "both_collapsed"}
    assert v.boundary == tuple(f"at beta_kl ≈ {b:g}: retain drop above δ already at remove/retain ≈ 2 (the smallest "
                               "sampled near this slice); the boundary lies below it" for b in (0, 0.5, 1))
    assert v.next_step.startswith("sample remove/retain below 2 at beta_kl ≈ 0: the retain drop is above δ")


def test_a_slice_harmless_up_to_its_largest_trial_says_so_without_extrapolating():
    """Damage only above remove/retain 0.5 while trials stay below 0.1: each slice states the largest ratio sampled
    near it, never the searched range's end."""
    rng = np.random.default_rng(0)
    u = rng.random((24, 3))  # retain 30..100, remove 0.1..3: ratios <= 0.1, all harmless
    points = [(30 * (100 / 30) ** a, 0.1 * 30 ** b, c) for a, b, c in u]
    fit, lines, step = boundary_lines(points)
    levels = (0.0, 0.5, 1.0)
    for level, line in zip(levels, lines, strict=True):
        near = [m / r for r, m, b in points if min(levels, key=lambda x: abs(x - b)) == level]
        assert line == (f"at beta_kl ≈ {level:g}: no retain drop above δ up to remove/retain ≈ {max(near):.3g} (the "
                        "largest sampled near this slice); the boundary lies above it")
        assert f"{fit.ratio_range[1]:.3g}" not in line
    assert step.startswith("sample remove/retain above") or step.startswith("sample remove/retain between")


def test_a_slice_without_trials_is_not_sampled():
    """Trials bracket the boundary at beta_kl <= 0.2 only: that slice gets an estimate, the others none."""
    points = [(r, r * q, b) for r in (2.0, 6.0) for q in (0.05, 0.2, 0.4, 0.7, 1.5, 4.0) for b in (0.0, 0.2)]
    _, (low, mid, high), step = boundary_lines(points)
    assert low.startswith("at beta_kl ≈ 0: the retain drop crosses δ at remove/retain ≈ ")
    assert 0.4 <= float(re.search(r"≈ ([\d.]+)", low.split(": ", 1)[1]).group(1)) <= 0.7
    assert mid == "at beta_kl ≈ 0.5: not sampled: no trial near this slice yet"
    assert high == "at beta_kl ≈ 1: not sampled: no trial near this slice yet"
    assert step.startswith(("sample beta_kl ≈ 0.5 and 1: no trial near them yet", "confirm", "accept"))


def test_the_report_and_the_stopping_rule_call_the_same_slices_pinned():
    """One test of "pinned" (``Slice.pinned``): on random trials, and on trials whose largest ratio (0.53) lies
    just inside the model's interval's top (the case the report once called "located" while the rule stopped),
    the slices the stopping rule still waits for are exactly the report's slices that are not PINNED, and the
    report asks to sample only those."""
    kinds = []
    random = [[(0.3 * (100 / 0.3) ** a, 0.1 * 300**b, c) for a, b, c in np.random.default_rng(seed).random((n, 3))]
              for seed, n in [(0, 8), (1, 16), (2, 30), (3, 60)]]
    near_top = [(r, r * q, b) for r in (3.0, 10.0) for q in (0.04, 0.1, 0.3, 0.45, 0.53) for b in (0, 0.5, 1)]
    for points in [*random, near_top]:
        fit, rows = model_run(points)
        a = analyse(rows, rows[0], 0.02, model=fit)
        slices = boundary_slices(a, rows[1:], rows[0])
        assert set(fit.unpinned()) == {s.level for s in slices if s.kind is not Kind.PINNED}
        step = build_verdict(a, rows[1:], rows[0], "").next_step
        for s in slices:
            assert (f"at beta_kl ≈ {s.level:.3g}" in step) <= (s.kind is not Kind.PINNED), (s, step)
        kinds += [s.kind for s in slices]
    assert kinds[-3:] == [Kind.PINNED] * 3 and set(kinds) - {Kind.PINNED}, kinds
