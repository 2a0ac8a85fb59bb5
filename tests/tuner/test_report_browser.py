"""The HTML report in headless Chromium: every image decodes at its own size (no downscaled text), every link
resolves, the verdict comes first, the outcome table fits without horizontal scrolling, every plotted trial is
labelled, a screenshot renders.

    chromium --headless ... --window-size=1280,2000 --dump-dom check.html   # check.html = report.html + CHECK_SCRIPT
    chromium --headless ... --screenshot=shot.png --window-size=1280,2000 report.html

Needs Debian's Chromium at /usr/bin/chromium (`apt-get install -y chromium`); fails, never skips, without it.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from trainables.evaluation.result import TaskScore
from tuner.analysis.report import render_report
from tuner.records.schema import BASELINE_ID, TrialRow

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# After load: images decoded, in-page links pointing at existing ids, no external resource of any kind; section
# order, the outcome table's overflow, each figure's trial-id label count and displayed vs natural image width.
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const links = [...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href"));
  const broken = links.filter(h => !(h.startsWith("#") && document.getElementById(h.slice(1))));
  const external = [...document.querySelectorAll("[src], link[href]")]
    .map(e => e.getAttribute("src") || e.getAttribute("href")).filter(u => !u.startsWith("data:"));
  document.body.setAttribute("data-check", JSON.stringify({
    images: images.length, loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    links: links.length, broken, external,
    sections: [...document.querySelectorAll("section")].map(s => s.id),
    outcomeOverflow: (d => d.scrollWidth - d.clientWidth)(document.querySelector("#outcomes .scroll")),
    labels: Object.fromEntries([...document.querySelectorAll("section figure")]
      .map(f => [f.parentElement.id, Number(f.dataset.labels)])),
    scaled: images.filter(i => i.width !== i.naturalWidth).map(i => i.alt)}));
});
</script>"""


def _score(acc: float, n: int = 150) -> TaskScore:
    return TaskScore(task="t", acc=acc, stderr=math.sqrt(acc * (1 - acc) / (n - 1)), n=n)


N_TRIALS = 25


def _run_dir(root: Path) -> Path:
    """A 5 x 5 grid; forget falls above remove/retain 0.05, retain above 0.5; one curve per trial."""
    rows = [TrialRow(trial_id=BASELINE_ID, status="done", forget=_score(0.7), retain=_score(0.8))]
    for i, (ret, rem) in enumerate((r, m) for r in (1, 3, 10, 30, 100) for m in (0.1, 0.3, 1, 3, 10)):
        q = rem / ret
        rows.append(TrialRow(trial_id=f"t{i:02d}", status="done", params={"retain_coef": ret, "remove_coef": rem},
                             forget=_score(0.7 if q < 0.05 else 0.27), retain=_score(0.8 if q <= 0.5 else 0.4)))
        (root / "trials" / rows[-1].trial_id).mkdir(parents=True)
        (root / "trials" / rows[-1].trial_id / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": s, "loss": 1 + q / (1 + s)}) + "\n" for s in range(0, 64, 8)))
    assert len(rows) == N_TRIALS + 1
    (root / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    return root


def _install_chromium() -> None:
    """Debian's Chromium, installed on first use when running as root (a fresh CI machine)."""
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env,
                       capture_output=True, timeout=900)


def _chromium(tmp_path: Path, *args: str) -> str:
    if shutil.which(CHROMIUM) is None:
        _install_chromium()
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} not found: install Debian's Chromium with "
                    "`apt-get update && apt-get install -y chromium` to run the browser test")
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow  # installs Debian's Chromium (root, network) on first use
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    page = render_report(_run_dir(tmp_path / "run")) / "report.html"
    check = tmp_path / "check.html"
    check.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--window-size=1280,2000", "--dump-dom", check.as_uri())
    found = re.search(r'data-check="([^"]*)"', dom)
    assert found, "the check script did not run:\n" + dom[:500]
    result = json.loads(html.unescape(found.group(1)))
    assert result["images"] == 3 and result["loaded"] == 3, result
    assert result["links"] >= 5 and result["broken"] == [] and result["external"] == [], result
    assert result["sections"][0] == "verdict" and result["sections"][4] == "outcomes", result
    assert result["outcomeOverflow"] <= 0, result  # no horizontal scroll in the outcome table
    assert result["labels"]["tradeoff"] == result["labels"]["harmless-map"] == N_TRIALS, result
    assert result["scaled"] == [], result  # figures shown at their own width: text at its plotted size

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
