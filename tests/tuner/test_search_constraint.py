"""The search's "retain drop <= delta" constraint: its sign, Optuna's ``Trial.set_constraint`` set by the
searcher before each tell, every sampler keeping infeasible trials off the front, no deprecation or
missing-package warning on the way, and the kl_boundary default delta that tuner.run hands it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.study._constrained_optimization import _get_feasible_trials

from search_spaces import get_space
from search_spaces.facts import OBJECTIVE_METRICS as OBJECTIVES
from tuner.orchestration.cli import build_parser, validate
from tuner.orchestration.samplers import RETAIN_CONSTRAINT, make_sampler, retain_violation
from tuner.orchestration.searchers import ConstrainedOptunaSearch

BASELINE_RETAIN, DELTA = 0.80, 0.02
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("retain", "feasible"), [(0.85, True), (0.79, True), (0.781, True), (0.77, False),
                                                  (0.5, False)])
def test_constraint_is_feasible_exactly_when_the_drop_is_within_delta(retain, feasible):
    value = retain_violation(retain, baseline_retain=BASELINE_RETAIN, delta=DELTA)
    assert (value <= 0) == feasible
    assert value == pytest.approx(BASELINE_RETAIN - retain - DELTA)


def test_no_baseline_is_feasible():
    assert retain_violation(0.1, baseline_retain=None, delta=DELTA) == 0.0


def retain_of(x: float) -> float:
    """The made-up objective: retain falls with x, so x above 0.5 breaks "retain drop <= delta"."""
    return BASELINE_RETAIN - DELTA - 0.1 * (x - 0.5)


def run_study(name: str, n_trials: int, pickled: bool = False) -> optuna.Study:
    """A study driven as a search drives it: Tune's ``OptunaSearch`` suggests, each result is completed with
    forget = 1 - x and ``retain_of(x)``, past the sampler's startup trials so its model reads the constraint."""
    sampler = make_sampler(name, seed=0, num_samples=4, baseline_retain=BASELINE_RETAIN, delta=DELTA)
    if pickled:  # the searcher travels in Tune's experiment state
        sampler = pickle.loads(pickle.dumps(sampler))
    searcher = ConstrainedOptunaSearch(space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
                                       metric=list(OBJECTIVES), mode=["min", "max"], sampler=sampler,
                                       baseline_retain=BASELINE_RETAIN, delta=DELTA)
    for i in range(n_trials):
        x = searcher.suggest(f"t{i}")["x"]
        searcher.on_trial_complete(f"t{i}", {"eval_forget_acc": 1 - x, "eval_retain_acc": retain_of(x)})
    return searcher._ot_study


@pytest.mark.parametrize("name", ["tpe", "nsga2", "gp"])
def test_every_sampler_keeps_infeasible_trials_off_the_front(name):
    """Each told trial carries its constraint; Optuna's feasibility and best trials follow the rule, and trials
    that forget more by wrecking retain never reach the front."""
    study = run_study(name, n_trials=8, pickled=name != "nsga2")  # NSGAIISampler holds a lock, never pickled
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 8
    for trial in trials:
        assert trial.constraints == {RETAIN_CONSTRAINT: pytest.approx(retain_violation(
            trial.values[1], BASELINE_RETAIN, DELTA))}
    feasible = {t.number for t in trials if t.params["x"] <= 0.5}
    assert 0 < len(feasible) < len(trials)  # the test sees both kinds
    assert {t.number for t in _get_feasible_trials(trials)} == feasible
    assert {t.number for t in study.best_trials} == feasible  # a trade-off: unconstrained, every trial is on it


def test_constrained_studies_warn_nothing():
    """A fresh process (import-time warnings included) runs all three samplers with the constraint: no
    FutureWarning (``constraints_func``), ExperimentalWarning, missing-package warning (greenlet) or any other
    Python warning or Optuna log warning."""
    code = ("import json, logging, warnings\n"
            "warnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    import optuna\n"
            "    records = []\n"
            "    handler = logging.Handler(logging.WARNING)\n"
            "    handler.emit = records.append\n"
            "    logging.getLogger('optuna').addHandler(handler)\n"
            "    from tests.tuner.test_search_constraint import run_study\n"
            "    for name in ('tpe', 'nsga2', 'gp'):\n"
            "        run_study(name, n_trials=6)\n"
            "print(json.dumps([f'{w.category.__name__}: {w.message}' for w in caught]\n"
            "                 + [f'optuna log: {r.getMessage()}' for r in records]))\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []
    assert "greenlet" not in out.stderr and "Warning" not in out.stderr, out.stderr


def test_kl_boundary_delta_is_two_points_and_tuner_run_uses_it(tmp_path):
    space = get_space("kl_boundary")
    assert space.constraint_delta == 0.02 and "retain drop <= 2 pts" in space.description
    args = build_parser().parse_args(["--preset", "miniworld-small", "--run-dir", str(tmp_path / "run")])
    assert validate(args).delta == space.constraint_delta
