"""``python -m tuner.run``: bad input fails fast; end-to-end searches with files, MLflow (sqlite and a real
server) and resume after SIGKILL of the driver."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tuner.orchestration.interrupt import LOST

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--preset", "miniworld-small", "steps=12", "log_every=4", "per_device_batch=16"]


def run_cli(*args: str, cwd: Path, timeout: int = 900,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tuner.run", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


BAD_INPUT = {  # case: (arguments, extra environment, what the one error line must say)
    "unknown space": (["--space", "no_such_space"], {}, "unknown search space 'no_such_space'"),
    "negative coefficient": (["retain_coef=-1"], {}, "retain_coef"),
    "no samples": (["--num-samples", "0"], {}, "--num-samples must be >= 1"),
    "missing data file": (["forget.source=file", "forget.path=/nonexistent/forget.jsonl"], {},
                          "/nonexistent/forget.jsonl"),
    "unknown preset": (["--preset", "gpt-5"], {}, "unknown preset"),
    "delta out of range": (["--delta", "5"], {}, "--delta must be in (0, 1) (got 5)"),
    "searched key overridden": (["retain_coef=5"], {}, "search space 'kl_boundary' searches retain_coef"),
    "fixed key overridden": (["--space", "seed_grid", "beta_kl=0.5"], {},
                             "search space 'seed_grid' fixes (beta_kl=1.0) beta_kl"),
    "unreachable cluster": (["--address", f"127.0.0.1:{_closed_port()}"], {}, "no Ray cluster answers"),
    "unreachable MLflow": (["--mlflow-uri", f"http://127.0.0.1:{_closed_port()}"], {}, "no MLflow server answers"),
    "GPUs that do not exist": (["--gpus-per-worker", "1"], {"CUDA_VISIBLE_DEVICES": ""},
                               "needs 1 GPU(s), but this machine has 0"),
    "offline without weights": (["--preset", "deep-ignorance"], {"HF_HUB_OFFLINE": "1"},
                                "model=EleutherAI/deep-ignorance-unfiltered: no config.json + weights"),
    "unusable cache": ([], {"UNLEARN_TUNER_CACHE": "/proc/no-such-dir/cache"}, "(UNLEARN_TUNER_CACHE) is not usable"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_exits_nonzero_with_one_line_and_no_run_dir(tmp_path, case):
    args, env, needle = BAD_INPUT[case]
    result = run_cli("--preset", "miniworld-small", *args, "--run-dir", str(tmp_path / "run"), cwd=tmp_path,
                     timeout=120, env=env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("error: "), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run dir, no runs/, nothing else


@pytest.mark.parametrize("run_dir, needle", [("file", "is not a directory"),
                                             ("/proc/no-such-dir/run", "cannot write in /proc")])
def test_unusable_run_dir_is_one_line(tmp_path, run_dir, needle):
    (tmp_path / "file").write_text("x")
    result = run_cli("--preset", "miniworld-small", "--run-dir", run_dir, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: run directory ") and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_list_spaces(tmp_path):
    result = run_cli("--list-spaces", cwd=tmp_path, timeout=120)
    assert result.returncode == 0
    assert [line.split()[0].rstrip("*") for line in result.stdout.splitlines()] == [
        "kl_boundary", "kl_temperature_boundary", "seed_grid", "beta_kl_ablation", "alpha_hpo"]


def check_run(run_dir: Path, trials: int, uri: str, sampled: bool = True) -> None:
    import mlflow

    rows = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows[row["trial_id"]] = row
    lost = {trial_id for trial_id, row in rows.items() if row["status"] == "failed" and row["error"] == LOST}
    rows = {trial_id: row for trial_id, row in rows.items() if trial_id not in lost}
    assert "baseline" in rows and len(rows) == trials + 1
    for trial_id, row in rows.items():
        assert row["status"] == "done", row
        assert 0 <= row["forget"]["acc"] <= 1 and row["retain"]["n"] > 0
        assert row["phase_seconds"]["evaluation"] > 0 and min(row["phase_seconds"].values()) >= 0
        if trial_id != "baseline":
            assert row["train_metrics"]["step"] == 12 and row["mlflow_run_id"]
            assert (run_dir / "trials" / trial_id / "metrics.jsonl").exists()
    assert "## Evaluation" in (run_dir / "results.md").read_text()
    assert (run_dir / "results.csv").read_text().count("\n") == trials + 2 + len(lost)
    assert (run_dir / "report" / "report.html").exists()
    assert (run_dir / "optuna.db").exists() == sampled  # grid spaces run their points without Optuna
    search_phases = json.loads((run_dir / "search_phases.json").read_text())
    assert {"ray_start", "baseline", "tune_fit", "finish"} <= set(search_phases)

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["unlearn-tuner"])
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    lost_runs = children["tags.trial_id"].isin(lost)
    assert (children[lost_runs]["status"] == "FAILED").all()
    children = children[~lost_runs]
    assert len(parents) == 1 and len(children) == trials + 1  # the trials and the baseline
    assert set(children["tags.mlflow.parentRunId"]) == set(parents["run_id"])
    assert set(children["status"]) == set(parents["status"]) == {"FINISHED"}
    trial_runs = children[children["tags.trial_id"] != "baseline"]
    assert len(trial_runs) == trials and (children["tags.trial_id"] == "baseline").sum() == 1
    assert children["metrics.eval/forget_acc"].notna().all() and trial_runs["metrics.train/cb_loss"].notna().all()
    assert children["metrics.time/evaluation"].notna().all()
    history = mlflow.MlflowClient(uri).get_metric_history(trial_runs["run_id"].iloc[0], "train/loss")
    assert [m.step for m in history] == [4, 8, 12]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--workers", "1",
                             "--default-artifact-root", str(tmp_path / "artifacts")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    yield uri
    _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it is still there after 30 s; gone already is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_resume_after_sigkill_of_the_driver(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-m", "tuner.run", "--space", "kl_boundary", "--num-samples", "3",
                               "--max-concurrent", "1", "--run-dir", str(run_dir), *SMALL], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not _first_trial_done(run_dir):
        time.sleep(1)
    os.killpg(driver.pid, signal.SIGKILL)   # the driver and everything it started
    driver.wait()
    assert _first_trial_done(run_dir), "no trial finished before the kill"
    result = run_cli("--resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_run(run_dir, 3, f"sqlite:///{run_dir}/mlflow.db")
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir}/optuna.db")
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "FAIL"}  # a trial lost with the driver: FAIL
    # every trial trained with its own training seed, the config's plus the sampler's offset (its trial number),
    # a trial re-run after the kill with the seed it was given
    rows = {row["trial_id"]: row for row in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
    base = json.loads((run_dir / "run_config.json").read_text())["train_config"]["seed"]
    seeds = [row["params"].get("seed", base) for trial_id, row in rows.items()
             if trial_id != "baseline" and row["status"] == "done"]
    offsets = {t.user_attrs["seed_offset"] for t in study.trials if t.state.name == "COMPLETE"}
    assert len(seeds) == 3 and {s - base for s in seeds} == offsets and len(offsets) == 3


def _first_trial_done(run_dir: Path) -> bool:
    path = run_dir / "results.jsonl"
    return path.exists() and any(json.loads(line)["status"] == "done" and json.loads(line)["trial_id"] != "baseline"
                                 for line in path.read_text().splitlines())


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resume_runs_every_trial_once(tmp_path, mlflow_server):
    """Ctrl+C at the terminal (SIGINT to the driver's whole process group): the driver exits 130 within the
    grace, unfinished trials are marked for re-run (not failed as lost), no MLflow run is left RUNNING; --resume
    completes the search with every trial once in the table and in MLflow. The search is a grid (seed_grid's 6
    points, run without Optuna) logging to a real ``mlflow server``, whose results.md has seed 002's shape.
    SIGTERM takes the same path (unit tests in test_interrupt.py), end to end in the SLURM time-limit test."""
    import mlflow

    run_dir, uri = tmp_path / "run", mlflow_server
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen([sys.executable, "-m", "tuner.run", "--space", "seed_grid", "--max-concurrent", "1",
                                   "--run-dir", str(run_dir), "--mlflow-uri", uri, *SMALL], cwd=tmp_path,
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 900
        while time.time() < deadline and not (_first_trial_done(run_dir) and _a_trial_running(run_dir)):
            time.sleep(0.2)
        assert _first_trial_done(run_dir) and _a_trial_running(run_dir), "no trial to interrupt"
        sent = time.monotonic()
        os.killpg(driver.pid, signal.SIGINT)  # what a terminal's Ctrl+C sends
        driver.wait(timeout=60)
        grace = time.monotonic() - sent
    finally:
        with contextlib.suppress(ProcessLookupError):  # a clean shutdown leaves no process group behind
            os.killpg(driver.pid, signal.SIGKILL)
    stderr = log.read_text()
    rows = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        rows[json.loads(line)["trial_id"]] = json.loads(line)
    statuses = {row["status"] for row in rows.values()}
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["unlearn-tuner"])
    print(f"\nCtrl+C -> exit {driver.returncode} in {grace:.1f} s; rows {sorted(statuses)}; "
          f"MLflow {sorted(runs['status'])}")
    assert driver.returncode == 130 and grace < 60, stderr[-3000:]
    assert f"stopped on SIGINT; continue with: python -m tuner.run --resume {run_dir}" in stderr
    assert statuses == {"done", "interrupted"} and "RUNNING" not in set(runs["status"])
    assert runs[runs["tags.mlflow.parentRunId"].isna()]["status"].tolist() == ["KILLED"]

    result = run_cli("--resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_run(run_dir, 6, uri, sampled=False)
    md = (run_dir / "results.md").read_text()  # seed 002's shape: baseline + 6 rows, training + eval tables
    assert md.count("| done |") == 6 + 7 and "retain_kl_loss" in md and "cb_loss" in md


def _a_trial_running(run_dir: Path) -> bool:
    latest = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        latest[json.loads(line)["trial_id"]] = json.loads(line)["status"]
    return any(status in ("queued", "training", "evaluating") for status in latest.values())
