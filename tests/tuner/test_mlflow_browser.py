"""The MLflow runs table in headless Chromium, served by a real ``mlflow server`` on 127.0.0.1: the link the
service prints opens the table; with the parent run expanded, every child row (``t00 retain=1 remove=0.1
beta_kl=0.5``, ``baseline``) is in the DOM, and a 1600 px screenshot goes to docs/screenshots/mlflow_runs.png.

Drives Chromium through the DevTools protocol (aiohttp's websocket client, an MLflow dependency): before the page
loads, the UI's own localStorage state expands the parent, picks the columns and keeps the MLflow Assistant shut.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.tuner.test_report_browser import CHROMIUM, FLAGS, _chromium
from tuner.records.tracking import runs_link

SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "mlflow_runs.png"
COLUMNS = ["tags.`state`", "metrics.`eval/forget_acc`", "metrics.`eval/retain_acc`", "params.`retain_coef`",
           "params.`remove_coef`", "params.`beta_kl`"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 120) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


async def _browse(port: int, url: str, storage: dict[str, str], rows: list[str]) -> tuple[str, bytes]:
    """Open ``url`` with ``storage`` preset; once every name in ``rows`` shows, return (DOM, PNG screenshot)."""
    async with aiohttp.ClientSession() as session:
        tabs = json.loads(await asyncio.to_thread(_wait, f"http://127.0.0.1:{port}/json"))
        tab = next(t for t in tabs if t["type"] == "page")
        async with session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = itertools.count(1)

            async def call(method: str, **params: object) -> dict:
                await ws.send_json({"id": (i := next(ids)), "method": method, "params": params})
                async for msg in ws:
                    if (reply := json.loads(msg.data)).get("id") == i:
                        assert "error" not in reply, reply
                        return reply["result"]
                raise ConnectionError("DevTools closed the connection")

            async def text() -> str:
                result = await call("Runtime.evaluate", expression="document.body?.innerText ?? ''", returnByValue=True)
                return result["result"]["value"]

            preset = f"for (const [k, v] of Object.entries({json.dumps(storage)})) localStorage.setItem(k, v);"
            await call("Page.enable")
            await call("Page.addScriptToEvaluateOnNewDocument", source=preset)
            await call("Page.navigate", url=url)
            for _ in range(120):
                page = await text()
                if all(r in page for r in rows):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1)  # fonts, column sizing
            dom = await call("Runtime.evaluate", expression="document.documentElement.outerHTML", returnByValue=True)
            shot = await call("Page.captureScreenshot", format="png")
            return dom["result"]["value"], base64.b64decode(shot["data"])


@pytest.mark.slow  # installs Debian's Chromium (root, network) on first use
def test_mlflow_runs_table_in_chromium(logged_run, tmp_path: Path) -> None:
    _chromium(tmp_path, "--version")  # installs it, or fails with how to
    server_port, devtools_port = _free_port(), _free_port()
    db = logged_run.run_dir / "mlflow.db"
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
                               str(server_port), "--backend-store-uri", f"sqlite:///{db}", "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    browser = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1600,700",
                                f"--remote-debugging-port={devtools_port}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert _wait(f"http://127.0.0.1:{server_port}/health") == b"OK"
        exp = logged_run.tracker.experiment_id
        url = runs_link(f"http://127.0.0.1:{server_port}", exp)
        state = {"runsExpanded": {logged_run.tracker.parent_run_id: True}, "selectedColumns": COLUMNS,
                 "columnOrder": ["attributes.`Run Name`", "tags.`state`"],  # widen these two
                 "columnWidths": {"attributes.`Run Name`": 340, "tags.`state`": 170}}
        storage = {f'MLflowLocalStorage-1.1-ExperimentPage-["{exp}"]-ReactComponentState': json.dumps(state),
                   "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true", "mlflow.assistant.panelOpen_v1": "false"}
        names = ["baseline", "t00 retain=1 remove=0.1 beta_kl=0.5", "t09 retain=3 remove=30 beta_kl=0.5"]
        dom, png = asyncio.run(_browse(devtools_port, url, storage, names))
    finally:
        for proc in (browser, server):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert all(f">{name}<" in dom for name in names), dom[-3000:]
    assert "mlflow.assistant.chat_panel.close" not in dom  # the Assistant side panel stayed shut
    SHOT.parent.mkdir(parents=True, exist_ok=True)
    SHOT.write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000
