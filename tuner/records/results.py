"""The results table of one search: ``run_dir/results.{jsonl,csv,md}``, rewritten atomically on every change.

``results.jsonl`` holds one ``TrialRow`` per line, appended as a trial moves through
queued -> training -> evaluating -> done | diverged | failed; the last line per trial wins. Writers in
different processes (trial drivers, the Tune driver) serialise on ``run_dir/.results.lock``; every file
is replaced whole (tmp + ``os.replace``), so readers never see a half-written table.
The Markdown mirrors seed 002's two tables (training metrics at the final step; evaluations), baseline
first.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trainables.evaluation.result import TaskScore
from trainables.objective import step_metrics
from tuner.records.schema import BASELINE_ID, TrialRow

TRAIN_COLUMNS = step_metrics()


class ResultsTable:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.jsonl, self.csv, self.md = (self.run_dir / f"results.{ext}" for ext in ("jsonl", "csv", "md"))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.run_dir / ".results.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def write(self, row: TrialRow) -> None:
        """Append ``row`` and re-render the CSV and Markdown mirrors."""
        with self._locked():
            self._append(row)

    def advance(self, trial_id: str, status: str, only_from: tuple[str, ...]) -> TrialRow | None:
        """Set a trial's status if its latest row is in ``only_from``, read and written under the lock (a live
        ``evaluating`` that arrives late never overwrites ``done``). Returns the latest row."""
        with self._locked():
            row = self.get(trial_id)
            if row is not None and row.status in only_from and row.status != status:
                row.status = status
                self._append(row)
            return row

    def _append(self, row: TrialRow) -> None:
        text = self.jsonl.read_text() if self.jsonl.exists() else ""
        text += json.dumps(row.to_dict(), default=float) + "\n"
        atomic_write(self.jsonl, text)
        rows = _latest(text)
        atomic_write(self.csv, to_csv(rows))
        atomic_write(self.md, to_markdown(rows))

    def note_stop(self, stop: str) -> None:
        """Re-render results.md with a closing line saying why the search stopped."""
        with self._locked():
            atomic_write(self.md, to_markdown(self.rows(), stop))

    def rows(self) -> list[TrialRow]:
        """Latest row per trial: the baseline first, then trials in order of first appearance."""
        return _latest(self.jsonl.read_text()) if self.jsonl.exists() else []

    def get(self, trial_id: str) -> TrialRow | None:
        return next((r for r in self.rows() if r.trial_id == trial_id), None)


def _latest(text: str) -> list[TrialRow]:
    latest: dict[str, TrialRow] = {}
    for line in text.splitlines():
        if line.strip():
            row = TrialRow.from_dict(json.loads(line))
            latest[row.trial_id] = row
    baseline = [latest.pop(BASELINE_ID)] if BASELINE_ID in latest else []
    return baseline + list(latest.values())


def atomic_write(path: Path, text: str) -> None:
    """``path`` replaced whole (a per-process tmp + ``os.replace``): a reader never sees it half-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _param_names(rows: list[TrialRow]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [k for k in row.params if k not in names]
    return names


def _phase_names(rows: list[TrialRow]) -> list[str]:
    """Every phase once, in the order of the row with the most (a trial's, not the baseline's)."""
    names: list[str] = []
    for row in sorted(rows, key=lambda r: -len(r.phase_seconds)):
        names += [k for k in row.phase_seconds if k not in names]
    return names


def _delta(score: TaskScore | None, base: TaskScore | None) -> float | None:
    return None if score is None or base is None else score.acc - base.acc


def to_csv(rows: list[TrialRow]) -> str:
    params, phases = _param_names(rows), _phase_names(rows)
    base = rows[0] if rows and rows[0].trial_id == BASELINE_ID else None
    header = (["trial_id", "status"] + params + list(TRAIN_COLUMNS) + [
        "forget_acc", "forget_stderr", "forget_delta", "retain_acc", "retain_stderr", "retain_delta",
        "alt_format", "forget_alt_acc", "forget_alt_stderr", "retain_alt_acc", "retain_alt_stderr",
        "train_seconds", "eval_seconds", "mlflow_run_id", "adapter_path", "error"] + [f"time_{p}" for p in phases])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for r in rows:
        scores = []
        for score, base_score in ((r.forget, base and base.forget), (r.retain, base and base.retain)):
            delta = _delta(score, base_score)
            scores += [score.acc if score else "", score.stderr if score else "", "" if delta is None else delta]
        scores.append(r.alt_format)
        for score in (r.forget_alt, r.retain_alt):
            scores += [score.acc if score else "", score.stderr if score else ""]
        writer.writerow([r.trial_id, r.status] + [r.params.get(p, "") for p in params]
                        + [r.train_metrics.get(c, "") for c in TRAIN_COLUMNS] + scores
                        + [r.train_seconds, r.eval_seconds, r.mlflow_run_id, r.adapter_path, r.error]
                        + [r.phase_seconds.get(p, "") for p in phases])
    return out.getvalue()


def _pct(score: TaskScore | None) -> str:
    return "–" if score is None else f"{100 * score.acc:.2f}±{100 * score.stderr:.2f}"


def _signed(delta: float | None) -> str:
    return "–" if delta is None else f"{100 * delta:+.2f}"


def _num(value: object) -> str:
    return "–" if value in (None, "") else f"{value:.4g}" if isinstance(value, float) else str(value)


def to_markdown(rows: list[TrialRow], stop: str = "") -> str:
    """Two tables: training metrics at the final step, then evaluations with Δ vs the baseline row; then why the
    search stopped, once it has."""
    params = _param_names(rows)
    base = rows[0] if rows and rows[0].trial_id == BASELINE_ID else None
    forget_task = next((r.forget.task for r in rows if r.forget), "forget")
    retain_task = next((r.retain.task for r in rows if r.retain), "retain")
    lines = ["## Training metrics (final step)", "",
             "| trial | " + " | ".join(params + list(TRAIN_COLUMNS)) + " | status |",
             "|---" * (len(params) + len(TRAIN_COLUMNS) + 2) + "|"]
    for r in rows:
        if r.trial_id != BASELINE_ID:
            cells = [_num(r.params.get(p)) for p in params] + [_num(r.train_metrics.get(c)) for c in TRAIN_COLUMNS]
            lines.append(f"| {r.trial_id} | " + " | ".join(cells) + f" | {r.status} |")
    alt = next((r.alt_format for r in rows if r.alt_format), "")
    alt_header = f" forget ({alt}) | retain ({alt}) |" if alt else ""
    lines += ["", f"## Evaluation (accuracy % ± stderr; forget = {forget_task} ↓, retain = {retain_task} ↑)", "",
              "| trial | " + " | ".join(params) + " | forget | Δ forget | retain | Δ retain |" + alt_header
              + " status | error |",
              "|---" * (len(params) + 7 + (2 if alt else 0)) + "|"]
    for r in rows:
        cells = ["base" if r.trial_id == BASELINE_ID else _num(r.params.get(p)) for p in params]
        alt_cells = f" {_pct(r.forget_alt)} | {_pct(r.retain_alt)} |" if alt else ""
        lines.append(f"| {r.trial_id} | " + " | ".join(cells) + f" | {_pct(r.forget)} | "
                     f"{_signed(_delta(r.forget, base and base.forget)) if r.trial_id != BASELINE_ID else '–'} | "
                     f"{_pct(r.retain)} | "
                     f"{_signed(_delta(r.retain, base and base.retain)) if r.trial_id != BASELINE_ID else '–'} |"
                     + alt_cells + f" {r.status} | {r.error.splitlines()[0][:80] if r.error else ''} |")
    if stop:
        lines += ["", f"Search stopped: {stop}"]
    return "\n".join(lines) + "\n"
