"""``python -m tuner.evaluate``: loads a saved model (+ adapter), prints the table, exits 2 on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainables.evaluation import cli
from trainables.evaluation.cli import main
from trainables.evaluation.result import EvalResult

REPO = Path(__file__).resolve().parents[3]


def test_cli_scores_saved_model_with_adapter(tiny_model_dir: Path, tiny_peft: Any, hub_root: Path,
                                             peft_result: EvalResult, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "result.json"  # its folder is created
    rc = main(["--model", str(tiny_model_dir), "--adapter", str(tiny_peft[1]), "--data-root", str(hub_root),
               "--batch-size", "16", "--json", str(out)])
    assert rc == 0
    assert capsys.readouterr().out.startswith("| task | accuracy (%) | n |\n|---|---:|---:|\n| wmdp_bio |")
    loaded = EvalResult.from_dict(json.loads(out.read_text()))
    assert {k: s.acc for k, s in loaded.scores.items()} == {k: s.acc for k, s in peft_result.scores.items()}


def _break_answer(root: Path) -> None:
    """Store the first WMDP answer as a string ("2" instead of 2)."""
    path = root / "cais" / "wmdp" / "wmdp-bio" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["answer"] = str(rows[0]["answer"])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


BAD = {
    "missing model": (["--model", "/nonexistent/model"], "model path /nonexistent/model does not exist"),
    "missing adapter": (["--adapter", "/nonexistent/adapter"], "adapter /nonexistent/adapter/adapter_config"),
    "malformed data": (["--break-data"], "wmdp-bio/test.jsonl:1: field 'answer' is the string"),
    "unknown task": (["--tasks", "wmdp_chem"], "unknown lm-eval task(s) ['wmdp_chem']"),
    "negative limit": (["--limit", "-5"], "--limit must be > 0 (got -5)"),
    "zero batch size": (["--batch-size", "0"], "--batch-size must be >= 1 (got 0)"),
    "unwritable json": (["--json", "/proc/no-such-dir/out.json"], "--json /proc/no-such-dir/out.json: directory"),
    "json is a directory": (["--json", "/tmp"], "--json /tmp is a directory"),
}


def _must_not_load(*args: Any) -> None:
    raise AssertionError("bad input must be reported before the model loads")


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_exits_2_with_one_line(case: str, tiny_model_dir: Path, hub_root: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    extra, message = BAD[case]
    monkeypatch.setattr(cli, "load_model", _must_not_load)
    root = Path(shutil.copytree(hub_root, tmp_path / "root"))
    if extra == ["--break-data"]:
        _break_answer(root)
        extra = []
    assert main(["--model", str(tiny_model_dir), "--data-root", str(root), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not any(line.startswith("error: ") for line in err[:-1])


def test_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tuner.evaluate", "--model", str(tmp_path / "missing")],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: model path {tmp_path / 'missing'} does not exist; "
                                                "pass a directory written by save_pretrained() or a Hub id "
                                                "like org/name"]
