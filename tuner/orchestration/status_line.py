"""The search's one progress line: trials finished / running / cap, elapsed and ETA, and what the search knows.

    progress 5/25 done, 2 running  3m12s  ETA <=12m  ambiguous 35%  slices pinned 1/3  recommended 1c2d forget 30%
    ... recommended 1c2d forget 30.0% (2 runs)                    (its runs' mean: the trial and its replicates)
    progress 5/25 done, 2 running  3m12s  ETA 12m  best 1c2d3e4f forget 30.0%                   (TPE, NSGA-II, GP)

The boundary sampler's part comes from the stopping rule's latest decision (``StopDecision``), which the searcher
leaves in ``run_dir/boundary_status.json`` (``write_decision``); before the rule has a model it shows the best
trial so far, as the other samplers do (the report's selection rule). On a terminal the
line is redrawn in place (``\\r``) at most every ``TTY_SECONDS``; otherwise it is printed at most once every
``LOG_SECONDS`` (a log file gets a line a minute, not a redraw per step).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from tuner.analysis.boundary import analyse
from tuner.boundary_search.stopping import StopDecision
from tuner.records.results import ResultsTable, atomic_write
from tuner.records.schema import BASELINE_ID

STATUS_FILE = "boundary_status.json"
TTY_SECONDS, LOG_SECONDS = 1.0, 60.0


def write_decision(run_dir: str | Path, decision: StopDecision) -> None:
    """The stopping rule's latest decision, for the progress line (replaced whole: a reader never sees half)."""
    atomic_write(Path(run_dir) / STATUS_FILE, json.dumps(dataclasses.asdict(decision)))


def read_decision(run_dir: str | Path) -> dict[str, Any]:
    """The latest decision's fields, or {} before the first one (and for samplers without a stopping rule)."""
    path = Path(run_dir) / STATUS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def duration(seconds: float) -> str:
    """``45s``, ``3m12s``, ``1h05m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(finished: int, running: int, cap: int, elapsed: float, finished_here: int,
                  decision: dict[str, Any], best: tuple[str, float] | None, may_stop_early: bool) -> str:
    """The line itself; ``best`` is (trial id, forget accuracy). ETA = elapsed / finished_here * (cap - finished),
    ``finished_here`` counting the trials finished since this process started (a resumed search restores the
    rest); an upper bound (``<=``) when the stopping rule may end the search first."""
    parts = [f"progress {finished}/{cap} done, {running} running", duration(elapsed)]
    if finished_here and cap > finished:
        parts.append(f"ETA {'<=' if may_stop_early else ''}{duration(elapsed / finished_here * (cap - finished))}")
    if decision.get("ambiguous_share") is not None:
        parts.append(f"ambiguous {decision['ambiguous_share']:.0%}")
    if decision.get("slices"):
        parts.append(f"slices pinned {decision['slices_pinned']}/{decision['slices']}")
    if best is not None:
        ours = best[0] == decision.get("recommended")  # the sampler's point: its runs' mean forget
        forget = decision["forget"] if ours and decision.get("forget") is not None else best[1]
        runs = f" ({decision['runs']} runs)" if ours and (decision.get("runs") or 0) > 1 else ""
        parts.append(f"{'recommended' if ours else 'best'} {best[0]} forget {forget:.1%}{runs}")
    elif decision.get("ambiguous_share") is not None:
        parts.append("no feasible trial yet")
    return "  ".join(parts)


def best_trial(run_dir: Path, delta: float, recommended: str | None) -> tuple[str, float] | None:
    """(id, forget) of the recommended trial, else the report's recommendation (``tuner.analysis.boundary.analyse``
    without a model); None before one exists."""
    rows = {r.trial_id: r for r in ResultsTable(run_dir).rows() if r.status == "done" and r.scored}
    if recommended in rows:
        return recommended, rows[recommended].forget.acc
    best = analyse(list(rows.values()), rows.get(BASELINE_ID), delta).recommended
    return (best, rows[best].forget.acc) if best else None


class StatusLine:
    """Shows a line that changes: redrawn in place on a terminal, else printed at most every ``every`` seconds.
    Lines printed through ``print_above`` go above it. Holds no stream (``sys.stdout`` when used), so that Tune
    can pickle the reporter that owns it; ``clock`` is injectable for tests."""

    def __init__(self, every: float = LOG_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.shown, self.started, self.last = "", None, None

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    def due(self) -> bool:
        """Whether ``show`` would draw now; the first call starts the clock (nothing is due before a period)."""
        now = self.clock()
        if self.started is None:
            self.started = self.last = now
        return now - self.last >= (TTY_SECONDS if self.stream.isatty() else self.every)

    def show(self, line: str) -> None:
        self.last = self.clock()
        if self.stream.isatty():  # cut to the terminal's width: a wrapped line would not be redrawn in place
            line = line[:shutil.get_terminal_size().columns - 1]
            self.stream.write(f"\r\033[K{line}")
            self.stream.flush()
        else:
            print(line, file=self.stream, flush=True)
        self.shown = line

    def print_above(self, msg: str) -> None:
        if self.stream.isatty() and self.shown:
            self.stream.write(f"\r\033[K{msg}\n{self.shown}")
            self.stream.flush()
        else:
            print(msg, file=self.stream, flush=True)

    def close(self) -> None:
        """Leave the last drawn line on a terminal and end it, so what follows starts on a new line."""
        if self.stream.isatty() and self.shown:
            self.stream.write("\n")
            self.stream.flush()
        self.shown = ""
