"""Shared test setup. Nothing may reach the network or the user's Hugging Face cache.

huggingface_hub and datasets read these variables when they are imported, so they are set here, at import
time: pytest imports this file before any test module.
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
