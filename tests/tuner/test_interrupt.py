"""tuner.orchestration.interrupt: where a SIGTERM or a Ctrl+C goes, and what a stopped search leaves (table,
MLflow, resume line)."""

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
    RESUME_FILE_ENV,
    STOP_SIGNALS,
    SearchInterrupted,
    StopSignalHandler,
    record_interrupt,
    resume_command,
    stopping,
)
from tuner.records.results import ResultsTable
from tuner.records.schema import TrialRow
from tuner.records.tracking import Tracker


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch):
    """Put the stop signals' and SIGUSR1's handlers (and Tune's SIGINT switch) back after the test."""
    monkeypatch.delenv("TUNE_DISABLE_SIGINT_HANDLER", raising=False)
    saved = {sig: signal.getsignal(sig) for sig in (*STOP_SIGNALS, signal.SIGUSR1)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_stop_signal_outside_tune_raises_and_marks_the_run_stopping(handlers, tmp_path: Path, signum: int):
    (tmp_path / "stopping").touch()  # left by an earlier interrupted search: --resume starts afresh
    handler = StopSignalHandler(tmp_path).install()
    assert not stopping(tmp_path)
    with pytest.raises(SearchInterrupted, match=signal.Signals(signum).name):
        os.kill(os.getpid(), signum)
    assert handler.received is not None and handler.signum == signum
    assert stopping(tmp_path)  # trials cut off now are not "failed"


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_stop_signal_inside_tune_asks_tune_to_stop(handlers, tmp_path: Path, signum: int):
    """SIGTERM and Ctrl+C alike: Tune's SIGUSR1 handler is asked, and Tune is told to leave SIGINT alone (it
    reads TUNE_DISABLE_SIGINT_HANDLER when fit starts), so Ctrl+C takes this path too."""
    asked = []

    def signal_interrupt_tune_run(signum, frame):  # the name of Ray Tune's own SIGUSR1 handler
        asked.append(signum)

    signal.signal(signal.SIGUSR1, signal_interrupt_tune_run)
    handler = StopSignalHandler(tmp_path).install()
    assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"
    with handler.tune():
        os.kill(os.getpid(), signum)  # no exception: Tune stops on its own
    assert asked == [signal.SIGUSR1] and handler.signum == signum


def test_the_handlers_are_taken_back_after_a_train_run_took_sigint(handlers, tmp_path: Path):
    """Ray Train's ``fit()`` in the main thread (the baseline) registers its own SIGINT handler and leaves it."""
    handler = StopSignalHandler(tmp_path).install()
    with handler.reclaimed():
        signal.signal(signal.SIGINT, lambda signum, frame: None)  # as DataParallelTrainer._register_sigint_handler
    assert all(signal.getsignal(s) == handler._handle for s in STOP_SIGNALS)
    with pytest.raises(SearchInterrupted):
        os.kill(os.getpid(), signal.SIGINT)


def test_a_second_ctrl_c_quits_at_once(handlers, tmp_path: Path):
    def signal_interrupt_tune_run(signum, frame):  # Tune's SIGUSR1 handler, which ignores a second request
        pass

    signal.signal(signal.SIGUSR1, signal_interrupt_tune_run)
    handler = StopSignalHandler(tmp_path).install()
    with handler.tune():
        os.kill(os.getpid(), signal.SIGINT)  # the first: Tune is asked to stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


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
    assert record_interrupt(ctx, tracker, signal.SIGINT) == 130  # what a shell reports (SIGTERM: 143)
    assert {r.trial_id: r.status for r in table.rows()} == {"t1": "done", "t2": "interrupted", "t3": "interrupted"}
    client = MlflowClient(default_uri(ctx.path))
    status = {run_id: client.get_run(run_id).info.status for run_id in (done, running, ctx.parent_run_id)}
    assert status == {done: "FINISHED", running: "KILLED", ctx.parent_run_id: "KILLED"}
    err = capsys.readouterr().err.strip()
    assert "stopped on SIGINT" in err and err.endswith(f"continue with: python -m tuner.run --resume {ctx.path}")
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
