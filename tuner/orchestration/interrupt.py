"""SIGTERM and Ctrl+C (SIGINT) end a search cleanly and resumably: SLURM sends SIGTERM at ``--time`` (and at
``--signal``), scancel too; a user at the terminal presses Ctrl+C.

During ``Tuner.fit()`` either signal becomes SIGUSR1, which Ray Tune handles as its own stop request: it starts no
new trial, saves the experiment state and ends the running trials (Tune's SIGINT handler is switched off, so Ctrl+C
takes the same path as SIGTERM and is never mistaken for trials lost to a killed driver). Outside ``fit`` it raises
``SearchInterrupted``. ``record_interrupt`` then marks every unfinished trial ``interrupted`` in the results table,
sets its MLflow child run and the parent run KILLED (never left RUNNING), prints the resume command and returns
128 + the signal's number, as a shell reports it (143 for SIGTERM, 130 for SIGINT). ``--resume`` re-runs exactly
those trials, under the same trial ids and MLflow runs. A second Ctrl+C quits at once (KeyboardInterrupt; the run
directory stays resumable up to the last saved state). During the baseline's Ray Train run (seconds) a Ctrl+C goes
to Train's own handler, which aborts that run; the handlers are taken back after it (``reclaimed``). Under the
sbatch template (``cluster/slurm/ray_cluster.sbatch``) the command also goes to ``$RAY_CLUSTER_RESUME_FILE``, and
the job prints the exact ``sbatch`` line that resubmits it.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from tuner.orchestration.context import SearchContext
from tuner.records.results import ResultsTable
from tuner.records.tracking import Tracker

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
FINAL = ("done", "diverged", "failed")
RESUME_FILE_ENV = "RAY_CLUSTER_RESUME_FILE"  # set by the sbatch template for its driver
LOST = "lost: Ray Tune ended without finishing this trial (its driver or trial process was killed)"
STOPPING_FILE = "stopping"  # in the run directory from the first stop signal on; trials read it (``stopping``)


class SearchInterrupted(Exception):
    """A stop signal arrived while no Tune experiment was running."""


def stopping(run_dir: Path) -> bool:
    """Whether the search in ``run_dir`` is stopping on a stop signal: a trial whose training fails now was cut off
    (its row stays unfinished, so ``record_interrupt`` marks it ``interrupted``), it did not fail."""
    return (Path(run_dir) / STOPPING_FILE).is_file()


class StopSignalHandler:
    """Installed after ``ray.init`` (which sets its own SIGTERM handler in the driver) for SIGTERM and SIGINT;
    ``received`` is the monotonic time of the first stop signal, or None, ``signum`` that signal. The first one
    also creates ``run_dir/stopping`` (removed by ``install``, i.e. on ``--resume``)."""

    def __init__(self, run_dir: Path) -> None:
        self.received: float | None = None
        self.signum: int | None = None
        self._in_tune = False
        self._marker = Path(run_dir) / STOPPING_FILE

    def install(self) -> StopSignalHandler:
        self._marker.unlink(missing_ok=True)
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl+C stays ours during fit (read when fit starts)
        self._take_signals()
        return self

    def _take_signals(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    @contextmanager
    def reclaimed(self) -> Iterator[None]:
        """Around a Ray Train ``fit()`` in this (main) thread, i.e. the baseline: Train registers its own SIGINT
        handler there (a Ctrl+C then aborts that run) and never removes it; on leaving, the stop signals are ours
        again, or a Ctrl+C during the trials would go to a finished Train run and change nothing."""
        try:
            yield
        finally:
            self._take_signals()

    @contextmanager
    def tune(self) -> Iterator[None]:
        """While Tune runs, a stop signal asks Tune to stop (its SIGUSR1 handler) instead of raising."""
        self._in_tune = True
        try:
            yield
        finally:
            self._in_tune = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if not first and signum == signal.SIGINT:  # Ctrl+C again: quit now
            signal.default_int_handler(signum, frame)
        self.received, self.signum = self.received or time.monotonic(), self.signum or signum
        name = signal.Signals(signum).name
        if first:
            self._marker.touch()
            print(f"{name}: stopping the search (state saved, unfinished trials marked for re-run"
                  f"{'; Ctrl+C again quits at once' if signum == signal.SIGINT else ''})", file=sys.stderr, flush=True)
        if self._in_tune and getattr(signal.getsignal(signal.SIGUSR1), "__name__", "") == "signal_interrupt_tune_run":
            os.kill(os.getpid(), signal.SIGUSR1)
        elif first:
            raise SearchInterrupted(name)


def record_interrupt(ctx: SearchContext, tracker: Tracker | None, signum: int = signal.SIGTERM) -> int:
    """Unfinished trials -> ``interrupted`` rows and KILLED child runs; parent KILLED; the resume line; returns
    the exit status a shell reports for ``signum`` (128 + its number).

    Ray is shut down first: a trial actor still reporting would otherwise write its row over ``interrupted``.
    """
    import ray

    if ray.is_initialized():
        ray.shutdown()
    table = ResultsTable(ctx.path)
    for row in table.rows():
        if row.status not in FINAL:
            row.status = "interrupted"
            table.write(row)
    if tracker is not None:
        client = tracker.client
        running = client.search_runs([tracker.experiment_id], filter_string=(
            f"tags.mlflow.parentRunId = '{ctx.parent_run_id}' and attributes.status = 'RUNNING'"))
        for run in running:
            client.set_terminated(run.info.run_id, status="KILLED")
        client.set_terminated(ctx.parent_run_id, status="KILLED")
    ctx.save()
    line = resume_command(ctx)
    job = " (the sbatch job prints the line that resubmits it)" if os.environ.get(RESUME_FILE_ENV) else ""
    print(f"interrupted: the search stopped on {signal.Signals(signum).name}; continue with: {line}{job}",
          file=sys.stderr, flush=True)
    return 128 + signum


def mark_lost(ctx: SearchContext, tracker: Tracker) -> list[str]:
    """After ``Tuner.fit()`` returned: rows still unfinished belong to trials that Tune did not run to the end.

    Mostly a driver killed (SIGKILL, OOM, a lost node) after a trial started and before Tune saved its
    experiment state (at most every 10 s), so that ``--resume`` cannot know the trial. Its row becomes
    ``failed`` with ``LOST`` and its MLflow child run FAILED; the searcher fails its Optuna trial on restore
    (``ResumableOptunaSearch``). Returns the trial ids.
    """
    table, lost = ResultsTable(ctx.path), []
    for row in table.rows():
        if row.status not in FINAL and not row.is_baseline:
            row.status, row.error = "failed", LOST
            table.write(row)
            if row.mlflow_run_id:
                tracker.finish(row.mlflow_run_id, failed=True)
            lost.append(row.trial_id)
    return lost


def resume_command(ctx: SearchContext) -> str:
    """``python -m tuner.run --resume RUN_DIR``, also written to ``$RAY_CLUSTER_RESUME_FILE`` when set."""
    line = shlex.join(["python", "-m", "tuner.run", "--resume", str(ctx.path)])
    target = os.environ.get(RESUME_FILE_ENV)
    if target:
        Path(target).write_text(line + "\n")
    return line
