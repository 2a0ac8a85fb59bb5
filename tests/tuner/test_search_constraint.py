"""The search's "retain drop <= delta" constraint: its sign, its wiring into every Optuna sampler, and the
kl_boundary default delta that tuner.run hands it."""

from __future__ import annotations

import pickle

import optuna
import pytest

from search_spaces import get_space
from search_spaces.facts import OBJECTIVE_METRICS as OBJECTIVES
from tuner.orchestration.cli import build_parser, validate
from tuner.orchestration.samplers import make_sampler, retain_constraint

KL = get_space("kl_boundary").boundary


def _trial(forget: float, retain: float) -> optuna.trial.FrozenTrial:
    values = {"eval_forget_acc": forget, "eval_retain_acc": retain}
    return optuna.trial.create_trial(values=[values[m] for m in OBJECTIVES])


@pytest.mark.parametrize(("retain", "feasible"), [(0.85, True), (0.79, True), (0.781, True), (0.77, False),
                                                  (0.5, False)])
def test_constraint_is_feasible_exactly_when_the_drop_is_within_delta(retain, feasible):
    (value,) = retain_constraint(_trial(0.3, retain), baseline_retain=0.80, delta=0.02)
    assert (value <= 0) == feasible
    assert value == pytest.approx(0.80 - retain - 0.02)


def test_no_baseline_or_no_values_is_feasible():
    assert retain_constraint(_trial(0.3, 0.1), baseline_retain=None, delta=0.02) == [0.0]


@pytest.mark.parametrize("name", ["tpe", "nsga2", "gp"])
def test_every_sampler_keeps_infeasible_trials_off_the_front(name):
    """A trial that forgets everything by wrecking retain must not reach Optuna's best trials (the sampler
    pickles: it travels in Tune's experiment state)."""
    sampler = make_sampler(name, seed=0, num_samples=4, baseline_retain=0.80, delta=0.02, boundary=KL)
    if name != "nsga2":  # Optuna's own NSGAIISampler holds a thread lock and never pickled
        sampler = pickle.loads(pickle.dumps(sampler))
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    wrecked, harmless = study.ask(), study.ask()
    study.tell(wrecked, [0.0, 0.30])
    study.tell(harmless, [0.60, 0.79])
    assert [t.number for t in study.best_trials] == [harmless.number]
    assert wrecked.number not in [t.number for t in study.best_trials]


def test_kl_boundary_delta_is_two_points_and_tuner_run_uses_it(tmp_path):
    space = get_space("kl_boundary")
    assert space.constraint_delta == 0.02 and "retain drop <= 2 pts" in space.description
    args = build_parser().parse_args(["--preset", "miniworld-small", "--run-dir", str(tmp_path / "run")])
    assert validate(args).delta == space.constraint_delta
