"""Fixtures for the SLURM tests: a real SLURM (slurmctld + slurmd + munge, no systemd) started
by `slurm_local.sh` in a fresh /tmp/slt-* directory, with two fake nodes n1, n2 on this host,
and a Ray cluster started in it by `cluster/slurm/ray_cluster.sbatch`.

The Debian packages (slurmctld slurmd slurm-client munge) are apt-get installed when missing;
that needs root. The jobs find `ray` and `python` in the bin directory of the interpreter running
the tests (first on PATH), so `.venv/bin/python -m pytest` works without activating the venv.
Teardown cancels our jobs, stops only the daemons of our directory (pid files) and removes the
directory, Ray's temp dirs included.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "slurm_local.sh"
TEMPLATE = REPO / "cluster" / "slurm" / "ray_cluster.sbatch"
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "munged", "mungekey", "sbatch", "srun", "scontrol", "scancel", "sinfo"]
# A job's final JobStates; any other (PENDING, RUNNING, COMPLETING, and transient ones such as SIGNALING while
# slurmctld delivers --signal, which once ended a wait early) means it is still active.
ENDED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
         "OUT_OF_MEMORY"}


def interpreter_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's bin directory (not resolved: a venv's python is a symlink) first on PATH."""
    return {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])}


@pytest.fixture(scope="session")
def job_env() -> dict[str, str]:
    """The environment the SLURM daemons and jobs get: this one, with this interpreter's tools first."""
    return interpreter_env(os.environ)


def _install_slurm() -> None:
    """apt-get the packages; a temporary policy-rc.d keeps their postinst from starting daemons."""
    if all(shutil.which(b) for b in BINARIES):
        return
    if not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and there is no apt-get: install " + " ".join(PACKAGES))
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
        ):
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if r.returncode:
                pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
    finally:
        if ours:
            policy.unlink()


def free_port_block(size: int = 200) -> int:
    """A start for the template's port-block search whose `size` TCP ports are all free now."""
    starts = list(range(10000, 32000 - size, size))
    random.shuffle(starts)
    for start in starts:
        ok = True
        for port in range(start, start + size):
            with socket.socket() as s:
                try:
                    s.bind(("", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return start
    raise RuntimeError("no free port block")


def ray_pids(tmpdir: str) -> list[tuple[int, str]]:
    """Live processes of the Ray cluster whose head RAY_TMPDIR is `tmpdir` (workers: tmpdir-wN):
    found by RAY_TMPDIR in /proc/PID/environ or the directory in /proc/PID/cmdline."""
    d = re.escape(tmpdir.encode())
    in_env = re.compile(rb"(?:^|\0)RAY_TMPDIR=" + d + rb"(?:-w\d+)?(?:\0|$)")
    in_cmd = re.compile(d + rb"(?:-w\d+)?(?:/|\0|$)")
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            env, cmd = (p / "environ").read_bytes(), (p / "cmdline").read_bytes()
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # zombies wait for a late reaper (PID 1)
            continue
        if in_env.search(env) or in_cmd.search(cmd):
            found.append((int(p.name), cmd.replace(b"\0", b" ")[:120].decode(errors="replace")))
    return found


@dataclass
class Slurm:
    """A running local SLURM; `env` is the environment for its clients (SLURM_CONF set)."""

    base: Path
    env: dict[str, str]
    shared: Path = field(init=False)

    def __post_init__(self) -> None:
        self.shared = self.base / "shared"  # stands in for the cluster's shared file system
        self.shared.mkdir(exist_ok=True)

    def run(self, *cmd: str, timeout: float = 60) -> str:
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"
        return r.stdout

    def sbatch(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Submit the Ray cluster template; returns the job id. Output: shared/<id>.out."""
        job_env = {**self.env, **(env or {})}
        for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
            job_env.pop(k, None)
        r = subprocess.run(
            ["sbatch", "--parsable", "-o", f"{self.shared}/%j.out", *args],
            env=job_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().split(";")[0]

    def state(self, job_id: str) -> tuple[str, str]:
        """(JobState, ExitCode) from scontrol; finished jobs stay visible for MinJobAge."""
        line = self.run("scontrol", "show", "job", "-o", job_id)
        state = re.search(r"JobState=(\S+)", line)
        code = re.search(r"ExitCode=(\S+)", line)
        return (state.group(1) if state else "?"), (code.group(1) if code else "?")

    def wait(self, job_id: str, timeout: float) -> tuple[str, str]:
        """Poll scontrol (faster than sbatch --wait) until the job is no longer active."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.state(job_id)
            if st[0] in ENDED:
                return st
            time.sleep(0.25)
        return self.state(job_id)

    def is_active(self, job_id: str) -> bool:
        return self.state(job_id)[0] not in ENDED

    def ray_env(self) -> dict[str, str]:
        """Environment for the Ray template: shared dir, short node-local dir, a free port block."""
        return {
            "RUN_ROOT": str(self.shared),
            "RAY_TMP_ROOT": str(self.base),
            "REPO_DIR": str(REPO),
            "RAY_PORT_BASE": str(free_port_block()),
        }

    ray_pids = staticmethod(ray_pids)

    def output(self, job_id: str) -> str:
        f = self.shared / f"{job_id}.out"
        return f.read_text(errors="replace") if f.exists() else "(no output file)"


@pytest.fixture(scope="session")
def slurm(job_env: dict[str, str], timings: dict[str, str]) -> Iterator[Slurm]:
    if os.geteuid() != 0:
        pytest.skip("the local SLURM needs root (slurmd, munged)")
    base = tempfile.mkdtemp(prefix="slt-", dir="/tmp")  # short: munge / Ray socket paths
    env = dict(job_env, SLURM_LOCAL_BASE=base, SLURM_LOCAL_NODES="2")
    with open("/tmp/slurm_local.lock", "w") as lock:  # xdist workers (one SLURM each): one apt-get, one port pick
        fcntl.flock(lock, fcntl.LOCK_EX)
        _install_slurm()
        t0 = time.monotonic()
        r = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert r.returncode == 0, f"slurm_local.sh start failed: {r.stdout}{r.stderr}"
        timings["slurm_local.sh start (2 fake nodes)"] = f"{time.monotonic() - t0:.1f} s"
        yield Slurm(Path(base), dict(env, SLURM_CONF=f"{base}/etc/slurm.conf"))
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=180)
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class RayCluster:
    """A keep-alive Ray cluster job; `info` is its cluster.env."""

    job_id: str
    job_dir: Path
    info: dict[str, str]

    @property
    def address(self) -> str:
        return self.info["RAY_DASHBOARD_ADDRESS"]

    @property
    def token_path(self) -> str:
        return self.info["RAY_AUTH_TOKEN_PATH"]

    @property
    def tmpdir(self) -> str:
        return self.info["RAY_TMPDIR"]


def start_cluster(slurm: Slurm, *sbatch_args: str, timeout: float = 300) -> tuple[str, dict[str, float]]:
    """sbatch the template (keep-alive) and wait for its cluster.env; returns the job id and
    the seconds from sbatch to a running head (GCS address written) and to all nodes ready."""
    t0 = time.monotonic()
    job_id = slurm.sbatch(*sbatch_args, str(TEMPLATE), env=slurm.ray_env())
    head_file = slurm.base / f"rayj-{job_id}" / "ray" / "ray_current_cluster"
    ready_file = slurm.shared / f"slurm-{job_id}" / "cluster.env"
    times: dict[str, float] = {}
    while time.monotonic() - t0 < timeout:
        if "head" not in times and head_file.exists():
            times["head"] = time.monotonic() - t0
        if ready_file.exists():
            times["ready"] = time.monotonic() - t0
            times.setdefault("head", times["ready"])
            return job_id, times
        if not slurm.is_active(job_id):
            pytest.fail(f"cluster job {job_id} ended before it was ready:\n{slurm.output(job_id)}")
        time.sleep(0.1)
    pytest.fail(f"cluster job {job_id} not ready after {timeout} s:\n{slurm.output(job_id)}")


@pytest.fixture(scope="module")
def ray_cluster(slurm: Slurm, timings: dict[str, str]) -> Iterator[RayCluster]:
    """A 2-node keep-alive Ray cluster (head on n1, worker on n2) for the module's tests."""
    job_id, times = start_cluster(slurm, "--nodes=2")
    job_dir = slurm.shared / f"slurm-{job_id}"
    info = dict(line.split("=", 1) for line in (job_dir / "cluster.env").read_text().splitlines() if line)
    msg = f"{times['head']:.1f} s to a running head, {times['ready']:.1f} s until both nodes joined"
    timings["sbatch -> Ray cluster (2 nodes, keep-alive)"] = msg
    print(f"\nsbatch -> Ray cluster: {msg}")
    try:
        yield RayCluster(job_id, job_dir, info)
    finally:
        if slurm.is_active(job_id):
            subprocess.run(["scancel", job_id], env=slurm.env, timeout=30)
            slurm.wait(job_id, 60)
