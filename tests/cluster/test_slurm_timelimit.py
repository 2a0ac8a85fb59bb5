"""A search whose SLURM job hits its time limit stops cleanly, and the line the job prints resumes it.

    taskset -c 1 pytest tests/cluster/test_slurm_timelimit.py -s      # root (local SLURM); 4-6 min, 10 on a busy core

The job is `sbatch ray_cluster.sbatch -- python -m tuner.run` (9 kl_boundary trials on miniworld-small, one at a
time) with the template's own `--signal=B:TERM@60`. Once a trial is done and the next one runs, the test lowers the
job's limit (`scontrol update TimeLimit`, whole minutes) so that it ends 1-2 minutes later: slurmctld then sends
the signal at its next limit check (every 30 s), and the job stops by itself before the limit. The test sends no
signal and cancels nothing. It then runs the `ray_cluster: resume with:` line as printed, a second job.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tuner.records.results import ResultsTable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TEMPLATE = REPO / "cluster" / "slurm" / "ray_cluster.sbatch"
# Each trial ~13-19 s (150 steps at ~0.04-0.06 s, ~8-10 s of Ray): once one is done, 8 trials (104-150 s) remain,
# more than the latest the signal can come (the limit is set in whole minutes, slurmctld checks it every 30 s:
# 0-90 s), so the signal lands inside the search; the resume job runs what is left (~50-100 s). 3 trials of 12
# steps lost that race once, and 5 trials of 450 steps once in a clean-clone suite (the search ended before the
# signal). 7 trials of 450 steps (~25-38 s each) took 485 s here against ~250 s now. (The stopping rule needs 16+
# trials, so it never ends the search first.)
SMALL = ["--preset", "miniworld-small", "steps=150", "log_every=50", "per_device_batch=16"]
TRIALS = 9
RUNNING = ("queued", "training", "evaluating")
# Both jobs' --time; the test waits for the resume job until this limit would end it. Its trials take ~40 s
# each on an idle machine, ~80 s in one CI run (past the 480 s wait this replaced), and over 150 s beside a
# 2-worker benchmark (past a 15-minute limit).
JOB_MINUTES = 30

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def statuses(run_dir: Path) -> dict[str, str]:
    """Trial id -> latest status in results.jsonl, the baseline first."""
    return {row.trial_id: row.status for row in ResultsTable(run_dir).rows()}


def mlflow_runs(run_dir: Path) -> tuple[str, dict[str, list[str]]]:
    """(the parent run's status, trial id -> statuses of its child runs) from the run dir's sqlite store."""
    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    children: dict[str, list[str]] = {}
    for run in runs:
        if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id:
            children.setdefault(run.data.tags["trial_id"], []).append(run.info.status)
    assert len(runs) == 1 + sum(map(len, children.values())), "a run outside the search's parent"
    return parents[0].info.status, children


def wait_for_interruptible_point(slurm, job: str, run_dir: Path, timeout: float = 600) -> None:
    """Until one trial is done and another one is running (so that the signal lands inside Tune)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if run_dir.joinpath("results.jsonl").exists():
            trials = [s for t, s in statuses(run_dir).items() if t != "baseline"]
            if "done" in trials and any(s in RUNNING for s in trials):
                return
        if not slurm.is_active(job):
            pytest.fail(f"job {job} ended early:\n{slurm.output(job)[-5000:]}")
        time.sleep(0.5)
    pytest.fail(f"no trial done after {timeout} s:\n{slurm.output(job)[-5000:]}")


def job_time(slurm, job: str, field: str) -> datetime:
    """StartTime / EndTime of a job (local time, as scontrol prints it)."""
    return datetime.fromisoformat(re.search(rf"{field}=(\S+)", slurm.run("scontrol", "show", "job", "-o", job))[1])


def shorten_time_limit(slurm, job: str) -> datetime:
    """`scontrol update JobId=J TimeLimit=M`: the limit 1-2 min from now; returns the job's new end time."""
    elapsed = (datetime.now() - job_time(slurm, job, "StartTime")).total_seconds()
    slurm.run("scontrol", "update", f"JobId={job}", f"TimeLimit={int(elapsed // 60) + 2}")
    return job_time(slurm, job, "EndTime")


def printed(log: str, pattern: str) -> re.Match:
    found = re.search(pattern, log, re.MULTILINE)
    assert found, f"{pattern!r} not in the job output:\n{log[-5000:]}"
    return found


def submit_line(slurm, line: str) -> str:
    """Run a printed `cd ... && VAR=... sbatch ...` line in a shell; returns the new job id."""
    env = {k: v for k, v in slurm.env.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
                                                          "RAY_AUTH_MODE")}
    r = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return printed(r.stdout, r"^Submitted batch job (\d+)$")[1]


def check_interrupted(run_dir: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every trial done or interrupted (none left running), some left to run, and MLflow agrees: nothing RUNNING.
    Returns the trials' statuses and their MLflow child runs' statuses."""
    table = statuses(run_dir)
    trials = {t: s for t, s in table.items() if t != "baseline"}
    # the signal lands inside the search: a trial cut off (interrupted), or between two trials (none in flight)
    assert table["baseline"] == "done" and set(trials.values()) <= {"done", "interrupted"}, table
    assert len(trials) < TRIALS or "interrupted" in trials.values(), f"the search ended before the signal: {table}"
    assert ResultsTable(run_dir).csv.read_text().count("\n") == len(table) + 1  # the CSV mirror: header + rows
    parent, children = mlflow_runs(run_dir)
    assert parent == "KILLED" and children.pop("baseline") == ["FINISHED"], (parent, children)  # baseline child run
    assert set(children) <= set(trials), (parent, children)
    for trial, status in trials.items():
        want = ["FINISHED"] if status == "done" else ["KILLED"]
        assert children.get(trial, want) == want, (trial, status, children)
    return trials, children


def test_time_limit_stops_the_search_and_the_printed_line_resumes_it(slurm, timings):
    run_dir = slurm.shared / "timelimit-run"
    t0 = time.monotonic()
    job = slurm.sbatch("--nodes=1", f"--time={JOB_MINUTES}", str(TEMPLATE), "--", "python", "-m", "tuner.run",
                       "--space", "kl_boundary", "--num-samples", str(TRIALS), "--max-concurrent", "1", "--run-dir",
                       str(run_dir), *SMALL, env=slurm.ray_env())
    wait_for_interruptible_point(slurm, job, run_dir)
    limit_end = shorten_time_limit(slurm, job)
    state = slurm.wait(job, 240)
    log = slurm.output(job)
    assert state == ("FAILED", "143:0"), log[-5000:]  # the script's own exit 143, before the limit's hard kill
    caught = datetime.fromisoformat(printed(log, r"^ray_cluster: caught SIGTERM at (\S+)")[1])
    lead = (limit_end - caught).total_seconds()
    # --signal=B:TERM@60, sent by slurmctld's periodic limit check (late under load); the hard kill would be ~0
    assert 20 <= lead <= 125, f"SIGTERM {lead:.0f} s before the limit: not the template's --signal=B:TERM@60"
    grace = int(printed(log, r"^ray_cluster: the driver exited with 143 after (\d+) ms")[1]) / 1000
    assert grace < 45, "the driver needed more than RAY_DRIVER_GRACE_S"
    printed(log, rf"^interrupted: the search stopped on SIGTERM; continue with: python -m tuner.run --resume "
                 rf"{re.escape(str(run_dir))} \(the sbatch job prints")
    line = printed(log, r"^ray_cluster: resume with: (.+)$")[1]
    assert line.startswith(f"cd {REPO} && ") and f" --output={slurm.shared}/%j.out " in line, line
    assert " --nodes=1 " in line and f" --time=00:{JOB_MINUTES}:00 " in line, line  # as submitted, not as lowered
    assert line.endswith(f" {TEMPLATE} -- python -m tuner.run --resume {run_dir}"), line
    assert not slurm.ray_pids(f"{slurm.base}/rayj-{job}")
    before, children_before = check_interrupted(run_dir)
    t_first = time.monotonic() - t0

    job2 = submit_line(slurm, line)
    state2 = slurm.wait(job2, JOB_MINUTES * 60 + 60)
    log2 = slurm.output(job2)
    assert state2 == ("COMPLETED", "0:0"), log2[-5000:]
    table = statuses(run_dir)
    assert list(table)[0] == "baseline" and len(table) == TRIALS + 1 and set(table.values()) == {"done"}, table
    assert set(before) <= set(table)  # the same trial ids, each once: interrupted ones were re-run, not added
    assert ResultsTable(run_dir).csv.read_text().count("\n") == TRIALS + 2
    parent, children = mlflow_runs(run_dir)
    assert parent == "FINISHED" and children == {t: ["FINISHED"] for t in table}, children  # baseline included

    kept = sum(s == "done" for s in before.values())
    summary = (f"SIGTERM {lead:.0f} s before the limit, driver stopped in {grace:.1f} s; {kept} of {len(before)} "
               f"trials kept; MLflow before {sorted(children_before.items())} parent KILLED -> after "
               f"{TRIALS} FINISHED, parent FINISHED; first job {t_first:.0f} s, resume job "
               f"{time.monotonic() - t0 - t_first:.0f} s")
    timings[f"time limit -> resume ({TRIALS} trials)"] = summary
    print("\n" + summary)
