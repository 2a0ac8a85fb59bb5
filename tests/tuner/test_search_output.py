"""What a real 2-trial search shows and records: its table, report and MLflow runs (``check_run``), the console
(baseline line, one line per finished trial, the progress line at most once a minute, the verdict and the summary
last, no Tune table and no worker-internal line), ``logs/`` (where those
lines went) and MLflow read through its API (run names, params, train/ and eval/ metrics, analysis tags, the
parent's verdict), again after tuner.report.

    pytest -m slow tests/tuner/test_search_output.py      # ~3-6 min on 2 busy cores
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.tuner.test_run import ROOT, SMALL, check_run, run_cli
from tuner.records.mlflow_analysis import verdict_note

WORKER_LINES = ("TrainingReport(", "Building contexts", "PreemptionWatcher", "RayTrainWorker pid=",
                "`pretrained` model kwarg", "PYTHON worker processes have been started", "Token authentication")


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("search")
    run_dir = tmp / "run"
    result = run_cli("--space", "kl_boundary", "--num-samples", "2", "--run-dir", str(run_dir), *SMALL, cwd=tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, (result.stdout + result.stderr).splitlines()


@pytest.mark.slow
def test_search_end_to_end_sqlite(search):
    run_dir, lines = search
    check_run(run_dir, 2, f"sqlite:///{run_dir}/mlflow.db")
    assert any("mlflow ui --backend-store-uri sqlite:///" in line for line in lines)
    statuses = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        statuses.setdefault(json.loads(line)["trial_id"], []).append(json.loads(line)["status"])
    for trial_id, sequence in statuses.items():  # the driver's TrialProgress marks the live phases
        if trial_id != "baseline":
            assert [s for i, s in enumerate(sequence) if i == 0 or s != sequence[i - 1]] == [
                "queued", "training", "evaluating", "done"], sequence


@pytest.mark.slow
def test_console_shows_the_search_and_logs_hold_the_rest(search):
    run_dir, lines = search
    trials = [json.loads(line)["trial_id"] for line in (run_dir / "results.jsonl").read_text().splitlines()]
    trials = sorted(set(trials) - {"baseline"})
    assert sum(line.startswith("baseline: forget ") for line in lines) == 1
    for trial_id in trials:
        finished = [line for line in lines if re.match(rf"{trial_id} done  \w+  forget [\d.]+±[\d.]+% ", line)]
        assert len(finished) == 1, lines
    assert lines[-1].strip().endswith("/runs?workflowType=machine_learning") and lines[-2].startswith("MLflow ")
    progress = [line for line in lines if line.startswith("progress ")]  # at most one a minute (not a terminal)
    tune_fit = json.loads((run_dir / "search_phases.json").read_text())["tune_fit"]
    assert len(progress) <= tune_fit / 60 and all(re.match(r"progress \d+/2 done, \d+ running", p) for p in progress)
    assert any(line.startswith("outcome       : ") for line in lines)  # the verdict, not the results table
    # at the cap, the stop line quotes the rule's last check instead of claiming what it did not find
    stop = [line for line in lines if line.startswith("stop          : ")]
    assert stop == ["stop          : ran to the budget cap (--num-samples 2) before the stopping rule fired; its last "
                    "check, as the last trial was suggested: 0 of at least 16 trials complete"], stop
    assert not any("== Status ==" in line or "| trial |" in line for line in lines)
    assert "== Status ==" in (run_dir / "logs" / "driver.log").read_text()  # Tune's table stays in the log
    leaked = [line for line in lines if any(w in line for w in WORKER_LINES)]
    assert not leaked, leaked
    workers = (run_dir / "logs" / "workers.log").read_text()
    assert "Building contexts" in workers and "RayTrainWorker" in workers
    assert "mlflow" in (run_dir / "logs" / "driver.log").read_text()


@pytest.mark.slow
def test_mlflow_runs_table(search):
    run_dir, _ = search
    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    config = json.loads((run_dir / "run_config.json").read_text())
    children = {r.data.tags["trial_id"]: r for r in client.search_runs(
        [config["extra"]["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{config['parent_run_id']}'")}
    assert "baseline" in children and len(children) == 3
    for trial_id, run in children.items():
        assert {"eval/forget_acc", "eval/forget_stderr", "eval/retain_acc", "eval/retain_stderr"} <= set(
            run.data.metrics)
        if trial_id == "baseline":
            continue
        # the boundary sampler's trials after the first train with seed + their trial number: the name says so
        assert re.fullmatch(rf"{trial_id} retain=\S+ remove=\S+ beta_kl=\S+( seed=\d+)?", run.info.run_name)
        assert {"retain_coef", "remove_coef", "beta_kl", "lr", "total_steps"} <= set(run.data.params)
        assert len(run.data.params["retain_coef"].replace(".", "").lstrip("0")) <= 4
        assert "train/loss" in run.data.metrics and not any(k.startswith("final_") for k in run.data.metrics)
        assert not {"train/lr", "train/total_steps"} & set(run.data.metrics) and "config.lr" not in run.data.params
        assert {"state", "p_harmless", "recommended", "pareto"} <= set(run.data.tags)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.json", "adapter", "lm_eval"} <= artifacts
        readme = Path(client.download_artifacts(run.info.run_id, "adapter/README.md", str(run_dir / "dl")))
        assert f"trial {trial_id}" in readme.read_text() and "retain_coef" in readme.read_text()
    parent = client.get_run(config["parent_run_id"]).data
    assert parent.tags["mlflow.note.content"] and "search.retain_coef" in parent.params
    assert "config.retain_coef" not in parent.params and "baseline/retain_acc" in parent.metrics

    subprocess.run([sys.executable, "-m", "tuner.report", str(run_dir), "--delta", "0.3"], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    verdict = json.loads((run_dir / "report" / "boundary.json").read_text())["verdict"]
    assert client.get_run(config["parent_run_id"]).data.tags["mlflow.note.content"] == verdict_note(verdict)
