"""A failed, diverged or out-of-memory trial stays out of every model: Optuna is told FAIL (never values), the
boundary GPs and their noise ignore it, the boundary sampler does not propose its point again, and one missing
stderr changes no other trial's noise. The last test kills a trial's Train workers in a real search."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import psutil
import pytest
import torch
from optuna.trial import TrialState, create_trial

from search_spaces.facts import OBJECTIVE_METRICS, SEED_FIELD, SEED_OFFSET, STDERR_ATTRS
from tests.tuner.test_boundary_search import BASE, FAST, KL, SPACE, SPEC, new_study, run
from tests.tuner.test_run import SMALL, run_cli
from tuner.boundary_search import ModelSpec
from tuner.boundary_search.cube import UnitCube
from tuner.boundary_search.searcher import FAILURE_ATTR, BoundaryOptunaSearch, ResumableOptunaSearch
from tuner.boundary_search.state import BoundaryState
from tuner.orchestration.interrupt import FINAL
from tuner.orchestration.samplers import make_sampler


def _study(trials: list[optuna.trial.FrozenTrial]) -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.add_trials(trials)
    return study


def _noise(state: BoundaryState) -> torch.Tensor:
    """The fixed observation noise the fitted GPs use, (2, n) in standardised units (the lm-eval part; the learned
    training-seed noise is added on top)."""
    return state.model.gp.likelihood.noise_covar.noise.detach()


def test_a_failed_trial_changes_neither_the_noise_nor_the_ambiguous_share():
    completed = new_study(0)
    run(completed, 12)
    failed = create_trial(params=completed.ask(SPACE).params, distributions=SPACE, state=TrialState.FAIL)
    without = BoundaryState.from_study(_study(completed.get_trials(states=(TrialState.COMPLETE,))), SPEC)
    with_failed = BoundaryState.from_study(_study([*completed.get_trials(states=(TrialState.COMPLETE,)), failed]),
                                           SPEC)
    assert len(with_failed.trials) == len(without.trials) == 12
    assert torch.equal(_noise(with_failed), _noise(without))
    assert with_failed.ambiguous_share() == without.ambiguous_share()


def _binomial_stderrs(trial: optuna.trial.FrozenTrial, n: int = 300) -> dict[str, float]:
    """Stderrs that differ from trial to trial (lm-eval's at n items), so the fallback has a median to take."""
    return {attr: math.sqrt(acc * (1 - acc) / (n - 1)) for attr, acc in zip(STDERR_ATTRS, trial.values, strict=True)}


def test_a_trial_without_stderrs_leaves_the_other_trials_noise_unchanged():
    source = new_study(1)
    run(source, 12)
    full = [create_trial(params=t.params, distributions=t.distributions, values=t.values,
                         user_attrs=_binomial_stderrs(t)) for t in source.get_trials()]
    k = 5
    missing = [create_trial(params=t.params, distributions=t.distributions, values=t.values,
                            user_attrs={} if i == k else t.user_attrs) for i, t in enumerate(full)]
    a, b = (BoundaryState.from_study(_study(trials), SPEC) for trials in (full, missing))
    others = np.arange(12) != k
    assert not np.isclose(a.model.noise_se[:, 1], a.model.noise_se[0, 1]).all()  # the stderrs do differ
    np.testing.assert_array_equal(b.model.noise_se[others], a.model.noise_se[others])
    assert torch.equal(_noise(b)[:, torch.as_tensor(others)], _noise(a)[:, torch.as_tensor(others)])
    # the fallback: the median of the other trials' stderrs, through the same floor and delta method
    floor = SPEC.noise_floor * SPEC.delta
    forget_se, retain_se = (np.median([full[i].user_attrs[attr] for i in range(12) if i != k]) for attr in STDERR_ATTRS)
    scaled = abs(b.obs.retain_drop[k]) / SPEC.delta
    assert b.model.noise_se[k, 1] == pytest.approx(max(forget_se, floor))
    assert b.model.noise_se[k, 0] == pytest.approx(max(retain_se, floor) / (SPEC.delta * (1 + scaled)))


def test_the_sampler_never_proposes_near_a_failed_trial():
    """Same completed history and trial number, once with a failed trial at the point the sampler proposes
    next: it proposes elsewhere, at least ``min_distance`` away, and the failed trial is not in its model."""
    reference = new_study(3)
    run(reference, 10)
    reference.add_trial(create_trial(state=TrialState.FAIL))  # failed before it had params: nothing to avoid
    point = reference.ask(SPACE).params
    study = new_study(3)
    run(study, 10)
    study.add_trial(create_trial(params=point, distributions=SPACE, state=TrialState.FAIL))
    proposed = study.ask(SPACE)
    assert proposed.number == 11 and len(study.sampler.state(study).trials) == 10
    cube = UnitCube.from_space(SPACE)
    u = cube.to_unit({n: [point[n], proposed.params[n]] for n in cube.names})
    assert np.linalg.norm(u[0] - u[1]) >= FAST.min_distance


RESULTS = {  # trial: (final result or None, error) as Tune hands them to the searcher
    "done": ({"eval_forget_acc": 0.4, "eval_retain_acc": 0.97, "eval_forget_stderr": 0.02,
              "eval_retain_stderr": 0.01, "diverged": 0, "failed": 0}, False),
    "failed": ({"diverged": 0, "failed": 1}, False),  # the driver caught an exception (OOM, a killed worker)
    "diverged": ({"diverged": 1, "failed": 0}, False),
    "error": (None, True),  # the trial driver itself died
    "unscored": ({"eval_forget_acc": float("nan"), "eval_retain_acc": 0.9}, False),
}


@pytest.mark.parametrize("sampler", ["boundary", "tpe", "gp", "nsga2"])
def test_every_searcher_tells_optuna_fail_without_values(sampler):
    kwargs = dict(space=SPACE, metric=list(OBJECTIVE_METRICS), mode=["min", "max"],
                  sampler=make_sampler(sampler, seed=0, num_samples=8, baseline_retain=BASE, delta=0.02, boundary=KL))
    searcher = BoundaryOptunaSearch(**kwargs, run_dir="unused") if sampler == "boundary" else \
        ResumableOptunaSearch(**kwargs)
    for name, (result, error) in RESULTS.items():
        assert searcher.suggest(name) is not None
        searcher.on_trial_complete(name, result, error=error)
    trials = {name: searcher._ot_study.trials[searcher._ot_trials[name].number] for name in RESULTS}
    assert trials["done"].state is TrialState.COMPLETE and trials["done"].values == [0.4, 0.97]
    for name in ("failed", "diverged", "error", "unscored"):
        assert trials[name].state is TrialState.FAIL and trials[name].values is None
        offset = {SEED_OFFSET: trials[name].number} if sampler == "boundary" else {}  # its training seed
        assert trials[name].user_attrs == {FAILURE_ATTR: name, **offset}
    assert isinstance(searcher.suggest("next"), dict)  # the sampler goes on with the failed trials in the study


def _rows(run_dir: Path) -> dict[str, dict]:
    """The results table, latest row per trial, in the order the trials first appeared."""
    path, rows = run_dir / "results.jsonl", {}
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        rows[row["trial_id"]] = row
    return rows


def _kill_first_trial_workers(run_dir: Path, killed: list[int], done: threading.Event) -> None:
    """SIGKILL the first trial's Train workers after each new checkpoint (what an out-of-memory kill does)
    until its row is final: Train retries once (``max_failures=1``), the second kill fails the trial."""
    seen: set[str] = set()
    deadline = time.time() + 900
    while not done.is_set() and time.time() < deadline:
        trial = next((t for t in _rows(run_dir) if t != "baseline"), None)
        if trial is not None and _rows(run_dir)[trial]["status"] in FINAL:
            return
        checkpoints = {p.name for p in (run_dir / "ray" / f"train-{trial}").glob("checkpoint_*")} if trial else set()
        if checkpoints - seen:
            seen |= checkpoints
            for proc in psutil.process_iter(["pid", "cmdline"]):
                if any("RayTrainWorker" in part for part in proc.info["cmdline"] or []) and _of_run(proc, run_dir):
                    os.kill(proc.info["pid"], signal.SIGKILL)
                    killed.append(proc.info["pid"])
        time.sleep(0.05)


def _of_run(proc: psutil.Process, run_dir: Path) -> bool:
    """Whether ``proc`` descends from this test's driver (``tuner.run ... --run-dir run_dir``): never another Ray's
    workers on the machine."""
    try:
        return any(str(run_dir) in " ".join(parent.cmdline()) for parent in proc.parents())
    except psutil.Error:
        return False


@pytest.mark.slow
def test_a_trial_whose_workers_are_killed_fails_and_the_others_complete(tmp_path):
    import mlflow

    run_dir = tmp_path / "run"
    killed: list[int] = []
    done = threading.Event()
    watcher = threading.Thread(target=_kill_first_trial_workers, args=(run_dir, killed, done))
    watcher.start()
    try:
        result = run_cli("--space", "kl_boundary", "--num-samples", "3", "--max-concurrent", "1", "--run-dir",
                         str(run_dir), *SMALL, "steps=16", "checkpoint_every=4", cwd=tmp_path)
    finally:
        done.set()
        watcher.join()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = _rows(run_dir)
    first, *others = [t for t in rows if t != "baseline"]
    print(f"\nkilled {len(killed)} worker(s); rows {[(t, r['status']) for t, r in rows.items()]}; "
          f"{first}: {rows[first]['error'][:200]}")
    assert len(killed) >= 2 and len(others) == 2
    assert rows[first]["status"] == "failed" and rows[first]["error"] and rows[first]["forget"] is None
    assert all(rows[t]["status"] == "done" for t in others)

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir}/optuna.db")
    by_params = {json.dumps(t.params, sort_keys=True): t for t in study.trials}
    searched = {t: {k: v for k, v in rows[t]["params"].items() if k != SEED_FIELD} for t in [first, *others]}
    optuna_trial = {t: by_params[json.dumps(searched[t], sort_keys=True)] for t in [first, *others]}
    assert optuna_trial[first].state is TrialState.FAIL and optuna_trial[first].values is None
    assert optuna_trial[first].user_attrs == {FAILURE_ATTR: "failed", SEED_OFFSET: optuna_trial[first].number}
    assert all(optuna_trial[t].state is TrialState.COMPLETE for t in others)
    assert all(set(STDERR_ATTRS) <= set(optuna_trial[t].user_attrs) for t in others)
    state = BoundaryState.from_study(study, ModelSpec(baseline_retain=rows["baseline"]["retain"]["acc"], boundary=KL))
    assert sorted(t.number for t in state.trials) == sorted(optuna_trial[t].number for t in others)

    runs = mlflow.MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    info = {t: runs.get_run(rows[t]["mlflow_run_id"]) for t in [first, *others]}
    assert info[first].info.status == "FAILED" and info[first].data.tags["status"] == "failed"
    assert "Error" in info[first].data.tags["error"]
    assert all(info[t].info.status == "FINISHED" for t in others)
    assert all("eval/forget_acc" in info[t].data.metrics for t in others)
    assert not any(metric.startswith("eval/") for metric in info[first].data.metrics)
