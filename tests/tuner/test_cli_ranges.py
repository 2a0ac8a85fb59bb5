"""``tuner.report`` and ``trainables.train`` reject bad values the way every CLI does (trainables.preflight): one
``error:`` line, exit 2, nothing written, before anything is computed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainables.evaluation.result import TaskScore
from trainables.train import main as train_main
from tuner.analysis.report import main as report_main
from tuner.records.schema import BASELINE_ID, TrialRow


@pytest.mark.parametrize(("flags", "message"), [
    (["--delta", "5"], "error: --delta must be in (0, 1) (got 5): an accuracy fraction, e.g. 0.02 for 2 points"),
    (["--confidence", "0"], "error: --confidence must be in (0, 1) (got 0): a probability, e.g. 0.95"),
])
def test_report_ranges(tmp_path: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    row = TrialRow(BASELINE_ID, "done", forget=TaskScore("f", 0.7, 0.03, 150), retain=TaskScore("r", 0.8, 0.03, 150))
    (tmp_path / "results.jsonl").write_text(json.dumps(row.to_dict()) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path), *flags])
    assert exit_info.value.code == 2 and capsys.readouterr().err.strip() == message
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["max_length=1"], "config field 'max_length': must be >= 2"),
    (["--gpus-per-worker", "-1"], "--gpus-per-worker must be >= 0 (got -1)"),
    (["--workers", "0"], "--workers must be >= 1 (got 0)"),
    (["--out", "/proc/no-such-dir/out"], "--out /proc/no-such-dir/out: cannot write in /proc"),
    (["--gpus-per-worker", "1"], "needs 1 GPU(s), but this machine has 0"),
])
def test_train_bad_input(tmp_path: Path, args: list[str], needle: str, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, also on a machine that has one
    out = ["--out", str(tmp_path / "out")] if "--out" not in args else []
    assert train_main(["--preset", "miniworld-small", *out, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert list(tmp_path.iterdir()) == []
