"""tuner.orchestration.interrupt: where a SIGTERM goes, and what a stopped search leaves (table, MLflow,
resume line)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from tuner.orchestration.cli import build_parser, validate
from tuner.orchestration.context import SearchContext, default_uri
from tuner.orchestration.interrupt import (
    EXIT_CODE,
    RESUME_FILE_ENV,
    SearchInterrupted,
    SigtermHandler,
    record_interrupt,
    resume_command,
    stopping,
)
from tuner.records.results import ResultsTable
from tuner.records.schema import TrialRow
from tuner.records.tracking import Tracker


@pytest.fixture
def handlers():
    """Put SIGTERM's and SIGUSR1's handlers back after the test."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_sigterm_outside_tune_raises_and_marks_the_run_stopping(handlers, tmp_path: Path):
    (tmp_path / "stopping").touch()  # left by an earlier interrupted search: --resume starts afresh
    handler = SigtermHandler(tmp_path).install()
    assert not stopping(tmp_path)
    with pytest.raises(SearchInterrupted):
        os.kill(os.getpid(), signal.SIGTERM)
    assert handler.received is not None and stopping(tmp_path)  # trials cut off now are not "failed"


def test_sigterm_inside_tune_asks_tune_to_stop(handlers, tmp_path: Path):
    asked = []

    def signal_interrupt_tune_run(signum, frame):  # the name of Ray Tune's own SIGUSR1 handler
        asked.append(signum)

    signal.signal(signal.SIGUSR1, signal_interrupt_tune_run)
    handler = SigtermHandler(tmp_path).install()
    with handler.tune():
        os.kill(os.getpid(), signal.SIGTERM)  # no exception: Tune stops on its own
    assert asked == [signal.SIGUSR1] and handler.received is not None


def test_record_interrupt_leaves_nothing_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx: SearchContext = validate(build_parser().parse_args(["--preset", "miniworld-small", "--run-dir",
                                                             str(tmp_path / "run")]))
    ctx.path.mkdir()
    tracker = Tracker.open(ctx.mlflow_uri, ctx.experiment, "run", artifact_root=ctx.path / "mlartifacts")
    ctx.parent_run_id = tracker.parent_run_id
    (done, _), (running, _) = tracker.child_run("t1", "t1", {}), tracker.child_run("t2", "t2", {})
    tracker.finish(done)
    table = ResultsTable(ctx.path)
    table.write(TrialRow("t1", "done", mlflow_run_id=done))
    table.write(TrialRow("t2", "training", mlflow_run_id=running))
    table.write(TrialRow("t3", "queued"))
    assert record_interrupt(ctx, tracker) == EXIT_CODE == 143
    assert {r.trial_id: r.status for r in table.rows()} == {"t1": "done", "t2": "interrupted", "t3": "interrupted"}
    client = MlflowClient(default_uri(ctx.path))
    status = {run_id: client.get_run(run_id).info.status for run_id in (done, running, ctx.parent_run_id)}
    assert status == {done: "FINISHED", running: "KILLED", ctx.parent_run_id: "KILLED"}
    assert capsys.readouterr().err.strip().endswith(f"continue with: python -m tuner.run --resume {ctx.path}")
    assert (ctx.path / "run_config.json").is_file()


def test_resume_command_is_written_for_the_sbatch_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template names a file in RAY_CLUSTER_RESUME_FILE; the line there is a shell line (quoted)."""
    target = tmp_path / "resume_cmd"
    ctx = SimpleNamespace(path=tmp_path / "run dir")
    monkeypatch.delenv(RESUME_FILE_ENV, raising=False)
    assert resume_command(ctx) == f"python -m tuner.run --resume '{tmp_path}/run dir'" and not target.exists()
    monkeypatch.setenv(RESUME_FILE_ENV, str(target))
    line = resume_command(ctx)
    assert target.read_text() == line + "\n"
