"""``--resume``: it takes no flag it would ignore, names a broken run_config.json, works in the directory it is
given (moved or copied), and a search that fails after its directory exists stays resumable with its MLflow
parent run FAILED. Ray is replaced by stubs here; the real resume is test_run's slow end-to-end test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

import tuner.orchestration.trial
from tuner.orchestration.cli import build_parser, main, resume_context, validate
from tuner.orchestration.context import SearchContext, default_uri
from tuner.orchestration.service import run_search
from tuner.records.tracking import Tracker, relocate_store

SMALL = ["--preset", "miniworld-small", "steps=4", "log_every=2", "per_device_batch=8"]


def new_run(run_dir: Path, *flags: str) -> SearchContext:
    """What ``tuner.run`` validates and saves before Ray starts."""
    ctx = validate(build_parser().parse_args([*SMALL, "--num-samples", "1", "--run-dir", str(run_dir), *flags]))
    ctx.path.mkdir(parents=True)
    ctx.save()
    return ctx


@pytest.mark.parametrize("flags", [["--num-samples", "40"], ["retain_coef=5"], ["--space", "seed_grid", "--seed", "3"]])
def test_resume_rejects_flags_it_would_ignore(tmp_path, flags, capsys):
    new_run(tmp_path / "run")
    before = (tmp_path / "run" / "run_config.json").read_text()
    assert main(["--resume", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --resume continues the search")
    assert all(flag in err[0] for flag in flags if flag.startswith(("--", "retain")))
    assert (tmp_path / "run" / "run_config.json").read_text() == before


def test_resume_applies_a_new_address(tmp_path, capsys):
    new_run(tmp_path / "run")
    args = build_parser().parse_args(["--resume", str(tmp_path / "run"), "--address", "10.0.0.9:6379"])
    assert resume_context(args, build_parser()).address == "10.0.0.9:6379"
    assert "--address 10.0.0.9:6379 replaces the stored address None" in capsys.readouterr().out


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda text: text.replace('"seed"', '"se\x01ed"'), "not valid JSON (Invalid control character"),
    (lambda text: json.dumps({**json.loads(text), "colour": "red"}), "unknown field(s) ['colour']"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "space"}),
     "missing field(s) ['space']"),
    (lambda text: json.dumps({**json.loads(text), "train_config": {**json.loads(text)["train_config"], "lr": -1}}),
     "config field 'lr': must be >= 0"),
])
def test_broken_run_config_is_named(tmp_path, edit, needle, capsys):
    path = new_run(tmp_path / "run").path / "run_config.json"
    path.write_text(edit(path.read_text()))
    assert main(["--resume", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and needle in err[0], err


def test_load_derives_paths_from_where_the_directory_is(tmp_path):
    new_run(tmp_path / "old")
    new_run(tmp_path / "server", "--mlflow-uri", "http://mlflow.example:5000")
    shutil.move(tmp_path / "old", tmp_path / "new")
    ctx = SearchContext.load(tmp_path / "new")
    assert ctx.run_dir == str((tmp_path / "new").resolve()) and ctx.mlflow_uri == default_uri(tmp_path / "new")
    assert ctx.extra["moved_from"] == str((tmp_path / "old").resolve())
    shutil.copytree(tmp_path / "server", tmp_path / "copy")
    copied = SearchContext.load(tmp_path / "copy")
    assert copied.run_dir == str((tmp_path / "copy").resolve())
    assert copied.mlflow_uri == "http://mlflow.example:5000"  # a server is not part of the directory
    assert SearchContext.load(tmp_path / "server").extra == {}  # not moved: nothing to note


def test_relocated_store_writes_artifacts_into_the_new_directory(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    tracker = Tracker.open(default_uri(old), "exp", "parent", artifact_root=old / "mlartifacts")
    child, _ = tracker.child_run("t1", "t1 a=1", {"a": 1})
    shutil.move(old, new)
    assert relocate_store(new / "mlflow.db", old, new) == 3  # the experiment, the parent and the child
    client = MlflowClient(default_uri(new))
    assert client.get_experiment(tracker.experiment_id).artifact_location == (new / "mlartifacts").as_uri()
    (tmp_path / "note.txt").write_text("x")
    Tracker(default_uri(new), tracker.experiment_id, tracker.parent_run_id).log_artifacts(child, tmp_path / "note.txt")
    assert list(new.glob(f"mlartifacts/{child}/artifacts/note.txt")) and not old.exists()
    (tmp_path / "empty").mkdir()
    assert relocate_store(tmp_path / "empty" / "mlflow.db", old, new) == 0  # never opened: nothing to do
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.fixture
def stub_ray(monkeypatch):
    """``ray.init`` and friends as no-ops on a 2-CPU "cluster"; returns the resources dict to edit."""
    resources = {"CPU": 2.0}
    monkeypatch.setattr(ray, "init", lambda **kwargs: None)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: dict(resources))
    return resources


def _failing_baseline(ctx):
    raise RuntimeError("boom")


def _parent_status(run_dir: Path, run_id: str) -> str:
    return MlflowClient(default_uri(run_dir)).get_run(run_id).info.status


def test_failure_after_the_run_dir_exists_is_resumable_and_marks_the_parent_failed(tmp_path, stub_ray, monkeypatch,
                                                                                   capsys):
    monkeypatch.setattr(tuner.orchestration.trial, "score_baseline", _failing_baseline)
    ctx = validate(build_parser().parse_args([*SMALL, "--run-dir", str(tmp_path / "old")]))
    assert run_search(ctx, resume=False) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: the search stopped (RuntimeError: boom); the run directory is kept, continue with: "
                       f"python -m tuner.run --resume {tmp_path / 'old'}")
    saved = json.loads((tmp_path / "old" / "run_config.json").read_text())
    assert saved["parent_run_id"] and _parent_status(tmp_path / "old", saved["parent_run_id"]) == "FAILED"

    shutil.move(tmp_path / "old", tmp_path / "new")  # resume where the directory is now
    resumed = resume_context(build_parser().parse_args(["--resume", str(tmp_path / "new")]), build_parser())
    assert run_search(resumed, resume=True) == 1
    assert not (tmp_path / "old").exists()
    again = json.loads((tmp_path / "new" / "run_config.json").read_text())
    assert again["run_dir"] == str(tmp_path / "new") and again["parent_run_id"] == saved["parent_run_id"]
    assert _parent_status(tmp_path / "new", saved["parent_run_id"]) == "FAILED"
    experiment = MlflowClient(default_uri(tmp_path / "new")).get_experiment(again["extra"]["experiment_id"])
    assert experiment.artifact_location == (tmp_path / "new" / "mlartifacts").as_uri()


def test_cluster_without_the_gpus_fails_before_anything_is_created(tmp_path, stub_ray, capsys):
    stub_ray["GPU"] = 1.0
    ctx = validate(build_parser().parse_args([*SMALL, "--run-dir", str(tmp_path / "run"), "--gpus-per-worker", "1",
                                              "--workers-per-trial", "2"]))
    assert run_search(ctx, resume=False) == 2
    assert capsys.readouterr().err.strip() == ("error: --gpus-per-worker 1 x 2 worker(s) needs 2 GPU(s), but the Ray "
                                               "cluster has 1; lower them, or pass --gpus-per-worker 0 for CPU")
    assert not (tmp_path / "run").exists()
