"""The report of a boundary-sampler run draws the sampler's own model; recommendations are feasible."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from tests.tuner.test_boundary_search import BASE, FAST, SPACE, SPEC, objective
from trainables.evaluation.result import TaskScore
from tuner.analysis.boundary import analyse
from tuner.analysis.report import render_report
from tuner.analysis.verdict import build_verdict
from tuner.boundary_search import BoundarySampler
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID, TrialRow


def row(trial_id: str, forget: float, retain: float, se: float = 0.01, **params: float) -> TrialRow:
    return TrialRow(trial_id, status="done", params=params, forget=TaskScore("f", forget, se, 80),
                    retain=TaskScore("r", retain, se, 80))


def test_a_merely_not_confidently_damaged_trial_is_not_recommended_over_a_feasible_one():
    base = row(BASELINE_ID, 0.99, 0.99)
    noisy = row("noisy", 0.30, 0.95, se=0.04, retain_coef=1.0, remove_coef=1.0)  # 4 pts down, not significant
    clean = row("clean", 0.50, 0.98, retain_coef=2.0, remove_coef=1.0)
    assert analyse([noisy, clean], base, 0.02).recommended == "clean"
    alone = analyse([noisy], base, 0.02)
    text = build_verdict(alone, [noisy], base, "").text()
    assert alone.recommended == "noisy" and "only uncertain harmless forgetting" in text
    assert "labelled only not confidently damaged" in text


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
    rec = next(r for r in ResultsTable(tmp_path).rows() if r.trial_id == result["recommended"])
    assert BASE - rec.retain.acc <= 0.02
    verdict = result["verdict"]
    assert "boundary sampler's GP model" in verdict["evidence"] and "P(feasible)=" in verdict["recommended"]
    assert "boundary pinned" in verdict["stopped"] and len(verdict["boundary"]) == 3
    assert (out / "harmless_map.png").stat().st_size > 10_000


def test_a_slice_harmless_up_to_the_range_end_says_so_without_extrapolating():
    """Damage only above remove/retain 0.5 while trials stay below: the model's P(harmless) >= 0.5 along the whole
    searched line at that slice, and the verdict states it up to the range's end, not a made-up boundary."""
    import numpy as np

    from tuner.boundary_search.report_fit import ModelFit
    from tuner.boundary_search.state import BoundaryState

    rng = np.random.default_rng(0)
    study = optuna.create_study(directions=["minimize", "maximize"])
    rows = [row(BASELINE_ID, 0.99, BASE)]
    for u in rng.random((24, 3)):  # retain 30..100, remove 0.1..3: ratios <= 0.1, all harmless
        params = {"retain_coef": 30 * (100 / 30) ** u[0], "remove_coef": 0.1 * 30 ** u[1], "beta_kl": u[2]}
        forget, retain, fse, rse = objective(params)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=SPACE, values=[forget, retain],
                                                  user_attrs={"forget_stderr": fse, "retain_stderr": rse}))
        rows.append(row(f"t{len(rows)}", forget, retain, **params))
    fit = ModelFit.from_state(BoundaryState.from_study(study, SPEC))
    assert all(ratio is None for _, ratio in fit.by_slice)
    a = analyse(rows, rows[0], 0.02, model=fit)
    lines = build_verdict(a, rows[1:], rows[0], "").boundary
    assert len(lines) == 3 and all("no retain damage inside the searched range" in line for line in lines)
    assert all(f"up to remove/retain ≈ {fit.ratio_range[1]:.3g}" in line for line in lines)
