"""The SLURM -> Ray -> job-submit path on a real local SLURM (see conftest.py).

Run: pytest tests/cluster -m slurm -s   (the tuner.run end-to-end search: -k tuner_run)
Tests run in file order; the last one cancels the module's keep-alive cluster.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TEMPLATE = REPO / "cluster" / "slurm" / "ray_cluster.sbatch"

pytestmark = pytest.mark.slurm


def client_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "HF_", "MLFLOW_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def submit(cluster, *args: str, token_path: str | None = None, timeout: float = 300):
    """python -m cluster.submit against the cluster; returns (CompletedProcess, wall seconds)."""
    cmd = [
        sys.executable,
        "-m",
        "cluster.submit",
        "--address",
        cluster.address,
        "--token-path",
        token_path or cluster.token_path,
        *args,
    ]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=REPO, env=client_env(), capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def standin_result(out: Path) -> dict:
    return json.loads((out / "standin.json").read_text())


def http_status(url: str, method: str = "GET", token: str | None = None) -> int:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.slow
def test_driver_mode_runs_the_entrypoint_then_cleans_up(slurm, timings):
    """`sbatch ray_cluster.sbatch -- python -m ...`: the driver runs on the head against the
    job's cluster, its exit status is the job's, and nothing of the job is left afterwards."""
    out = slurm.shared / "driver-mode"
    t0 = time.monotonic()
    job = slurm.sbatch(
        "--nodes=1",
        str(TEMPLATE),
        "--",
        "python",
        "-m",
        "tests.cluster.standin_job",
        "--out",
        str(out),
        env=slurm.ray_env(),
    )
    state, code = slurm.wait(job, 240)
    timings["sbatch -- standin driver (1 node), until the job ended"] = f"{time.monotonic() - t0:.1f} s"
    log = slurm.output(job)
    assert (state, code) == ("COMPLETED", "0:0"), log
    assert "STANDIN OK 4 tasks" in log
    res = standin_result(out)
    tmpdir = f"{slurm.base}/rayj-{job}"
    assert res["tasks"] == 4 and res["sum_sq"] == 14 and res["nodes"] == 1
    assert res["session_dir"].startswith(tmpdir + "/ray/session_")
    assert res["driver_env"]["RAY_AUTH_MODE"] == "token"
    assert res["cwd"] == str(REPO)
    assert not slurm.ray_pids(tmpdir), slurm.ray_pids(tmpdir)
    assert not Path(tmpdir).exists()
    assert not (slurm.shared / f"slurm-{job}" / "auth_token").exists()


@pytest.mark.slow
def test_submit_standin_job_to_keepalive_cluster(ray_cluster, slurm):
    """sbatch (no args) keeps a 2-node cluster up; cluster.submit runs a job on it with the
    working dir uploaded, our env_vars, token auth; status and logs report it."""
    out = slurm.shared / "standin-submit"
    sid = f"standin-{uuid.uuid4().hex[:8]}"
    r, wall = submit(
        ray_cluster,
        "--hf-offline",
        "--submission-id",
        sid,
        "--",
        "python",
        "-m",
        "tests.cluster.standin_job",
        "--out",
        str(out),
        "--tasks",
        "8",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"job {sid} SUCCEEDED" in r.stdout and "STANDIN OK 8 tasks" in r.stdout
    res = standin_result(out)
    assert res["nodes"] == 2 and res["task_nodes"] == 2, res  # SPREAD over head and worker
    assert res["task_tmpdirs"] == [ray_cluster.tmpdir, ray_cluster.tmpdir + "-w1"]
    assert res["session_dir"].startswith(ray_cluster.tmpdir + "/ray/session_")
    assert "/runtime_resources/working_dir_files/" in res["cwd"]  # the uploaded snapshot
    env = res["driver_env"]
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    assert env["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "0.5" and env["RAY_AUTH_MODE"] == "token"
    assert res["task_env"]["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "0.5"

    r, _ = submit(ray_cluster, "status", sid)
    assert r.returncode == 0 and f"job {sid} SUCCEEDED" in r.stdout, r.stdout + r.stderr
    r, _ = submit(ray_cluster, "logs", sid)
    assert r.returncode == 0 and "STANDIN OK 8 tasks" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_no_wait_then_stop(ray_cluster):
    sid = f"sleeper-{uuid.uuid4().hex[:8]}"
    r, _ = submit(
        ray_cluster, "--no-wait", "--submission-id", sid, "--", "python", "-c", "import time; time.sleep(120)"
    )
    assert r.returncode == 0 and f"job {sid} submitted" in r.stdout, r.stdout + r.stderr
    r, _ = submit(ray_cluster, "stop", sid)
    assert r.returncode == 0 and "stop requested" in r.stdout, r.stdout + r.stderr
    for _ in range(120):
        r, _ = submit(ray_cluster, "status", sid)
        if "STOPPED" in r.stdout:
            break
        time.sleep(0.5)
    assert r.returncode == 1 and f"job {sid} STOPPED" in r.stdout, r.stdout + r.stderr


@pytest.mark.slow
def test_job_submit_overhead_vs_direct_driver(ray_cluster, slurm, timings):
    """The same stand-in entrypoint through `ray job submit` and as a plain driver."""
    r, t_job = submit(
        ray_cluster, "--", "python", "-m", "tests.cluster.standin_job", "--out", str(slurm.shared / "overhead-job")
    )
    assert r.returncode == 0, r.stdout + r.stderr
    env = client_env(
        RAY_ADDRESS=ray_cluster.info["RAY_GCS_ADDRESS"],
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=ray_cluster.token_path,
    )
    out = slurm.shared / "overhead-direct"
    t0 = time.monotonic()
    d = subprocess.run(
        [sys.executable, "-m", "tests.cluster.standin_job", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    t_direct = time.monotonic() - t0
    assert d.returncode == 0, d.stdout + d.stderr
    assert standin_result(out)["tasks"] == 4
    msg = f"{t_job:.1f} s via cluster.submit vs {t_direct:.1f} s direct: overhead {t_job - t_direct:.1f} s"
    timings["job submit overhead (stand-in, warm cluster)"] = msg
    print(f"\n{msg}")


@pytest.mark.slow
def test_job_api_rejects_requests_without_the_token(ray_cluster):
    url = ray_cluster.address + "/api/jobs/"
    token = Path(ray_cluster.token_path).read_text().strip()
    assert http_status(url) == 401
    assert http_status(url, "POST") == 401  # a submission without a token
    assert http_status(url, "POST", token="0" * 64) == 403
    assert http_status(url, token=token) == 200
    assert oct(Path(ray_cluster.token_path).stat().st_mode & 0o777) == "0o600"
    assert oct(ray_cluster.job_dir.stat().st_mode & 0o777) == "0o700"


@pytest.mark.slow
def test_submit_with_a_wrong_token_fails_cleanly(ray_cluster, tmp_path):
    wrong = tmp_path / "token"
    wrong.write_text("f" * 64)
    r, _ = submit(ray_cluster, "--", "python", "-c", "print('must not run')", token_path=str(wrong))
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("cluster.submit: error:")]
    assert len(errors) == 1 and "Authentication" in errors[0], r.stderr
    from ray.job_submission import JobSubmissionClient

    token = Path(ray_cluster.token_path).read_text().strip()
    jobs = JobSubmissionClient(ray_cluster.address, headers={"Authorization": f"Bearer {token}"}).list_jobs()
    assert not [j for j in jobs if "must not run" in j.entrypoint]


@pytest.mark.slow
def test_dashboard_listens_on_localhost_only(ray_cluster):
    port = int(ray_cluster.info["RAY_DASHBOARD_PORT"])
    listening = [c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port]
    assert listening and set(listening) == {"127.0.0.1"}, listening


@pytest.mark.slow
def test_tuner_run_search_via_job_submit(ray_cluster, slurm):
    """The real target: a 2-trial kl_boundary search submitted to the SLURM-hosted cluster."""
    if importlib.util.find_spec("tuner.run") is None:
        pytest.fail("tuner.run does not exist yet: this end-to-end test needs `python -m tuner.run`")
    run_dir = slurm.shared / "run"
    r, wall = submit(
        ray_cluster,
        "--hf-offline",
        "--",
        "python",
        "-m",
        "tuner.run",
        "--space",
        "kl_boundary",
        "--preset",
        "miniworld-small",
        "--num-samples",
        "2",
        "--run-dir",
        str(run_dir),
        timeout=1800,
    )
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
    print(f"\ntuner.run via cluster.submit: {wall:.1f} s")
    from tuner.records.results import ResultsTable

    rows = ResultsTable(run_dir).rows()  # the last line per trial: the baseline, then one row per trial
    assert [r.trial_id for r in rows][0] == "baseline" and len(rows) == 3, rows
    assert {r.status for r in rows} == {"done"} and all(r.scored for r in rows), rows
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{run_dir}/mlflow.db")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parents = [x for x in runs if "mlflow.parentRunId" not in x.data.tags]
    assert len(parents) == 1, [x.info.run_name for x in runs]
    children = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 3 and len(runs) == 4, [x.info.run_name for x in runs]  # 2 trials + the baseline


@pytest.mark.slow
def test_scancel_leaves_no_ray_process_and_no_temp_dir(ray_cluster, slurm, timings):
    """Last: cancels the module's cluster. Head and worker clean up inside SLURM's KillWait."""
    tmpdir = ray_cluster.tmpdir
    assert slurm.ray_pids(tmpdir), "the cluster should be running"
    t0 = time.monotonic()
    slurm.run("scancel", ray_cluster.job_id)
    left, t_procs = slurm.ray_pids(tmpdir), None
    while time.monotonic() - t0 < 60 and (left or slurm.is_active(ray_cluster.job_id)):
        time.sleep(0.25)
        left = slurm.ray_pids(tmpdir)
        if not left and t_procs is None:
            t_procs = time.monotonic() - t0
    t_job = time.monotonic() - t0
    timings["scancel -> no Ray process left / job ended"] = f"{t_procs or t_job:.1f} s / {t_job:.1f} s"
    assert not left, left
    # the job script cleaned up itself (exit 143 from its TERM trap), it was not SIGKILLed at KillWait
    assert slurm.state(ray_cluster.job_id) == ("CANCELLED", "143:0"), slurm.output(ray_cluster.job_id)
    assert "ray_cluster: stopping this job's Ray processes" in slurm.output(ray_cluster.job_id)
    assert not Path(tmpdir).exists() and not Path(tmpdir + "-w1").exists()
    assert not Path(ray_cluster.token_path).exists()
