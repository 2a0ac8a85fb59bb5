"""Shared test setup. Nothing may reach the network or the user's Hugging Face cache.

huggingface_hub and datasets read these variables when they are imported, so they are set here, at import
time: pytest imports this file before any test module.

The README's command runs the suite on two pytest-xdist workers, a module at a time:
    python -m pytest -n 2
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_HF_HOME = tempfile.mkdtemp(prefix="pytest-hf-home-")
os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0",
                   "HF_HOME": _HF_HOME, "HF_DATASETS_CACHE": os.path.join(_HF_HOME, "datasets"),
                   "TQDM_DISABLE": "1", "RAY_USAGE_STATS_ENABLED": "0"})
# The mini-world is built once per machine (deterministic, keyed by its config hash) and shared by the
# tests and their Ray workers; a fresh clone builds it on first use.
os.environ.setdefault("UNLEARN_TUNER_CACHE", str(Path(__file__).resolve().parents[1] / ".cache"))


# The longest scopes, longest first (seconds on a two-worker fresh-clone run on 2 cores): xdist hands scopes out in
# collection order, so these start first and the many short modules fill in behind them (longest-first scheduling)
LONGEST = ("test_slurm_timelimit.py",                                  # 400: one-trial-at-a-time SLURM jobs
           "test_run.py::test_ctrl_c_stops_cleanly_and_resume_runs_every_trial_once",  # 200: 6 trials, mlflow server
           "test_slurm_cluster.py",                                    # 180: one SLURM + Ray cluster, shared
           "test_search_output.py",                                    # 130: one search, read by every test
           "test_failed_trials.py",                                    # 110: a trial's workers killed twice
           "test_run.py::test_resume_after_sigkill_of_the_driver",     # 100
           "test_train_loop.py")                                       # 100: two-worker and killed-worker runs


def xdist_scope(nodeid: str) -> str:
    """The tests one xdist worker runs together: a module (its fixtures are built once), except the long tests of
    ``test_run.py`` (no shared fixture: each its own), and the two browser tests (either may apt-get Chromium)."""
    module = nodeid.split("::")[0]
    if module.endswith("_browser.py"):
        return "browser"
    return nodeid if any(nodeid.endswith(long) for long in LONGEST if "::" in long) else module


def _rank(item: pytest.Item) -> int:
    scope = xdist_scope(item.nodeid)
    return next((i for i, long in enumerate(LONGEST) if scope.endswith(long)), len(LONGEST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest scopes first (``LONGEST``), the rest in collection order (a stable sort)."""
    items.sort(key=_rank)


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # called by pytest-xdist only, before its own
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``-n N``: xdist's load-scope scheduler with the scopes above, in collection order (longest first)."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    config.option.loadscopereorder = False
    return Scheduling(config, log)


_TIMINGS: dict[str, str] = {}


@pytest.fixture(scope="session")
def timings() -> dict[str, str]:
    """Measurements to print in the terminal summary (and with -s as they happen)."""
    return _TIMINGS


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workeroutput"):  # an xdist worker: hand them to the controller
        session.config.workeroutput["timings"] = _TIMINGS


@pytest.hookimpl(optionalhook=True)  # called by pytest-xdist only, in the controller
def pytest_testnodedown(node: object, error: object) -> None:
    _TIMINGS.update(getattr(node, "workeroutput", {}).get("timings", {}))


def pytest_terminal_summary(terminalreporter) -> None:
    if _TIMINGS:
        terminalreporter.section("SLURM / Ray timings")
        for name, value in _TIMINGS.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session", autouse=True)
def hf_home() -> Iterator[str]:
    """The throw-away ``HF_HOME`` of this test session."""
    yield _HF_HOME
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail any socket connection to a non-loopback address; returns the list of attempts."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if sock.family == socket.AF_UNIX or str(host) in ("127.0.0.1", "::1", "localhost"):
            return real_connect(sock, address)
        attempts.append(address)
        raise OSError(f"test tried to reach the network: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts
