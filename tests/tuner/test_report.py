"""tuner.report on a synthetic run directory: files, Markdown content, self-contained HTML, CLI errors.

The run: a 4 x 5 grid of (retain_coef, remove_coef); forget falls to chance above remove/retain 0.05,
retain is damaged above 0.5 and collapses above 5. Trial "t00" is logged twice (training, then done),
"t99" failed; every trial has a metrics.jsonl curve. Each accuracy is scored on 4000 questions (stderr 0.6 pts at
80 %), enough for the z-tests to call an unchanged retain confidently within delta = 2 pts.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.evaluation.result import TaskScore
from tuner.analysis.boundary import analyse
from tuner.analysis.report import main, render_report
from tuner.analysis.run_data import load_run
from tuner.analysis.verdict import build_verdict
from tuner.records.schema import BASELINE_ID, TrialRow

ROOT = Path(__file__).resolve().parents[2]


def _score(acc: float, n: int = 4000) -> TaskScore:
    return TaskScore(task="t", acc=acc, stderr=math.sqrt(acc * (1 - acc) / (n - 1)), n=n)


def write_run(run_dir: Path) -> Path:
    """Write results.jsonl, trials/<id>/metrics.jsonl and run_config.json; returns ``run_dir``."""
    rows = [TrialRow(trial_id=BASELINE_ID, status="done", forget=_score(0.70), retain=_score(0.80))]
    grid = [(r, m) for r in (1.0, 3.0, 10.0, 30.0) for m in (0.1, 0.5, 2.0, 8.0, 30.0)]
    for i, (ret, rem) in enumerate(grid):
        q = rem / ret
        forget = 0.70 if q < 0.05 else 0.27
        retain = 0.80 if q <= 0.5 else 0.55 if q < 5 else 0.26
        rows.append(TrialRow(trial_id=f"t{i:02d}", status="done", forget=_score(forget), retain=_score(retain),
                             params={"retain_coef": ret, "remove_coef": rem, "beta_kl": 0.5},
                             train_metrics={"loss": 1 + q, "cb_loss": 1 / (1 + q), "retain_kl_loss": q}))
        curve = [{"step": s, "loss": 1 + q * (1 - s / 64), "cos_sim_mean": 1 / (1 + q * s / 64)}
                 for s in range(0, 65, 16)]
        (run_dir / "trials" / rows[-1].trial_id).mkdir(parents=True)
        (run_dir / "trials" / rows[-1].trial_id / "metrics.jsonl").write_text(
            "".join(json.dumps(c) + "\n" for c in curve))
    rows.insert(1, TrialRow(trial_id="t00", status="training", params=rows[1].params))  # superseded later
    rows.append(TrialRow(trial_id="t99", status="failed", params={"retain_coef": 1.0}, error="CUDA OOM"))
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    config = {"space": "kl_boundary", "preset": "miniworld", "seed": 0}
    (run_dir / "run_config.json").write_text(json.dumps(config))
    return run_dir


def test_report_files_and_markdown(tmp_path: Path) -> None:
    out = render_report(write_run(tmp_path))
    assert out == tmp_path / "report"
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "boundary.json",  # no temp files
                                                "tradeoff.png", "harmless_map.png", "training_curves.png"}
    md = (out / "report.md").read_text()
    data = load_run(tmp_path)
    a = analyse(data.trials, data.baseline)
    verdict = build_verdict(a, data.trials, data.baseline, data.stop)
    order = ["## Verdict", "## Forget vs retain", "## Outcomes", "## Training metrics"]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order)
    assert f"- **Outcome:** {verdict.outcome}" in md and f"- **Recommended:** {verdict.recommended}" in md
    outcomes = md.split("## Outcomes")[1].split("## ")[0]
    lines = [line for line in outcomes.splitlines() if line.startswith("| ")]
    assert lines[0] == ("| trial | state | forget % | retain % | Δ forget | retain drop vs δ = 2 | P(drop ≤ δ) | flags "
                        "| remove_coef | retain_coef | beta_kl |")
    assert lines[2].startswith("| baseline | done |") and lines[3].startswith("| t00 | forgets_harmlessly |")
    assert "| 0.0 ± 0.9 ≤ 2: harmless | 0.99 |" in lines[3] and "| 25.0 ± 1.0 > 2: damaging | 0.00 |" in outcomes
    assert "| t99 | failed |" in outcomes and "CUDA OOM" in md.split("## Not scored")[1]
    training = md.split("## Training metrics")[1]
    assert training.splitlines()[2].startswith("| trial | status | loss | cb_loss | retain_kl_loss |")
    assert "| preset | miniworld |" in md
    assert json.loads((out / "boundary.json").read_text())["verdict"] == verdict.to_dict()


def test_html_is_self_contained(tmp_path: Path) -> None:
    page = (render_report(write_run(tmp_path)) / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))
    assert "<script" not in page and "<link" not in page and "http" not in page.replace("http-equiv", "")


def test_delta_from_run_config_and_argument(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    (run / "run_config.json").write_text(json.dumps({"delta": 0.05}))
    assert "confidently within δ = 5.0 pts" in (render_report(run) / "report.md").read_text()
    assert "confidently within δ = 1.0 pts" in (render_report(run, delta=0.01) / "report.md").read_text()


def test_failed_baseline_still_renders(tmp_path: Path) -> None:
    rows = [TrialRow(trial_id=BASELINE_ID, status="failed", error="eval crashed"),
            TrialRow(trial_id="t0", status="diverged", params={"retain_coef": 1.0, "remove_coef": 9.0})]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    out = render_report(tmp_path)
    assert "eval crashed" in (out / "report.md").read_text() and (out / "report.html").is_file()
    assert not list(out.glob("*.png"))  # nothing scored: no figures, and no stale ones


@pytest.mark.parametrize("case", ["one_state", "no_baseline"])
def test_partial_runs_render_all_figures(tmp_path: Path, case: str) -> None:
    lines = (write_run(tmp_path) / "results.jsonl").read_text().splitlines()
    rows = [TrialRow.from_dict(json.loads(line)) for line in lines]
    if case == "one_state":  # only the no_effect corner of the grid: the boundary is not bracketed
        rows = [r for r in rows if r.is_baseline or r.params.get("remove_coef", 1) / r.params["retain_coef"] < 0.05]
    else:
        rows = [r for r in rows if not r.is_baseline]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    out = render_report(tmp_path)
    assert {p.name for p in out.glob("*.png")} == {"tradeoff.png", "harmless_map.png", "training_curves.png"}
    expected = "no retain drop above δ up to remove/retain ≈ 0.0333" if case == "one_state" else "No baseline row"
    assert expected in (out / "report.md").read_text()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuner.report", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_cli_prints_paths(tmp_path: Path) -> None:
    proc = run_cli(str(write_run(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "report"
    assert proc.stdout.split() == [str(out / "report.html"), str(out / "report.md")]


def test_cli_missing_dir_exits_2() -> None:
    proc = run_cli("/nonexistent/run")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "error: run directory /nonexistent/run does not exist\n"


@pytest.mark.parametrize("content", [None, '{"trial_id": "t0", "status": "done"}\nnot json\n'])
def test_bad_results_exit_2_and_write_nothing(tmp_path: Path, content: str | None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    if content is not None:
        (tmp_path / "results.jsonl").write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report").exists()


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "RUN_DIR" in capsys.readouterr().out
