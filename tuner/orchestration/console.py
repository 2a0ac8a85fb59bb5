"""What a search prints while Tune runs: the status table, live trial lines, one line per finished trial.

    python -m tuner.run --space kl_boundary --preset miniworld-small --num-samples 2 steps=8

    == Status == ... (Tune's table, at most every TABLE_SECONDS, and once at the end)
      1c2d3e4f  step 4/8  loss 5.913  ETA 6s          (live, redrawn in place; on a terminal only)
    1c2d3e4f done  no_effect  forget 72.9±6.5% (+0.0)  retain 95.8±2.9% (+0.0)  retain=7.27 remove=5.91 beta_kl=0.603

The finished line reads the trial's row from the results table, which the trial driver writes before its
final ``tune.report``; its state is the outcome state of ``tuner.analysis.boundary.classify``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray.tune import CLIReporter
from ray.tune.experiment import Trial
from scipy.stats import norm

from tuner.analysis.boundary import classify
from tuner.analysis.report import DEFAULT_CONFIDENCE
from tuner.orchestration.context import SearchContext
from tuner.records.mlflow_layout import short_params
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID, TrialRow

TABLE_SECONDS = 60


class LiveLines:
    """Lines kept at the bottom of a terminal (stdout) and redrawn in place; nothing when not a terminal.
    Holds no stream, so that Tune can pickle the reporter into its experiment state."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.drawn = 0

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @property
    def enabled(self) -> bool:
        return self.stream.isatty()

    def show(self, lines: list[str]) -> None:
        if self.enabled and lines != self.lines:
            self.clear()
            self.lines = lines
            self.redraw()

    def clear(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write(f"\033[{self.drawn}F\033[J")
            self.drawn = 0

    def redraw(self) -> None:
        if self.enabled and self.lines:
            self.stream.write("".join(f"{line}\n" for line in self.lines))
            self.stream.flush()
            self.drawn = len(self.lines)


class SearchReporter(CLIReporter):
    """Tune's progress reporter for a search (``tune.RunConfig(progress_reporter=SearchReporter(ctx))``)."""

    def __init__(self, ctx: SearchContext, metric_columns: list[str]) -> None:
        super().__init__(metric_columns=metric_columns, max_report_frequency=TABLE_SECONDS, max_column_length=12)
        self.ctx, self.finished, self.live = ctx, set(), LiveLines()
        self.first_step: dict[str, tuple[float, int]] = {}

    def should_report(self, trials: list[Trial], done: bool = False) -> bool:
        """Called by Tune after every step of its loop: print finished trials, refresh the live lines."""
        for trial in trials:
            if trial.status in (Trial.TERMINATED, Trial.ERROR) and trial.trial_id not in self.finished:
                self.finished.add(trial.trial_id)
                self._print(finished_line(self.ctx, trial.trial_id, trial.status))
        self.live.show([self._running_line(t) for t in trials if t.status == Trial.RUNNING])
        return super().should_report(trials, done)

    def _print(self, msg: str) -> None:
        self.live.clear()
        print(msg, flush=True)
        self.live.redraw()

    def _running_line(self, trial: Trial) -> str:
        result: dict[str, Any] = trial.last_result or {}
        if result.get("evaluating"):
            return f"  {trial.trial_id}  evaluating"
        if "step" not in result:
            return f"  {trial.trial_id}  starting"
        step, total = int(result["step"]), int(result.get("total_steps") or 0)
        t0, s0 = self.first_step.setdefault(trial.trial_id, (time.time(), step))
        eta = f"  ETA {(time.time() - t0) / (step - s0) * (total - step):.0f}s" if total and step > s0 else ""
        return f"  {trial.trial_id}  step {step}/{total or '?'}  loss {result.get('loss', float('nan')):.4g}{eta}"


def finished_line(ctx: SearchContext, trial_id: str, tune_status: str) -> str:
    """``<id> <status>  <state>  forget a±se% (Δ)  retain a±se% (Δ)  <params>``, or the error of a failed trial."""
    table = ResultsTable(ctx.path)
    row, base = table.get(trial_id), table.get(BASELINE_ID)
    if row is None:
        return f"{trial_id} {tune_status.lower()}  (no row in the results table)"
    head = f"{trial_id} {row.status}"
    if row.status != "done" or not row.scored:
        return f"{head}  {(row.error.splitlines() or [''])[0][:160]}  {short_params(row.params)}".rstrip()
    state = classify(row, base, ctx.delta, float(norm.ppf(DEFAULT_CONFIDENCE))).value if base and base.scored else "—"
    return (f"{head}  {state}  forget {_score(row, base, 'forget')}  retain {_score(row, base, 'retain')}  "
            f"{short_params(row.params)}")


def _score(row: TrialRow, base: TrialRow | None, side: str) -> str:
    score, ref = getattr(row, side), getattr(base, side, None) if base else None
    delta = f" ({100 * (score.acc - ref.acc):+.1f})" if ref else ""
    return f"{100 * score.acc:.1f}±{100 * score.stderr:.1f}%{delta}"


class WorldBuildBar:
    """``miniworld(cfg, progress=WorldBuildBar(total))``: one bar through both pretraining stages, drawn only
    when the mini-world is built (not when it is cached)."""

    def __init__(self, total: int) -> None:
        self.total, self.bar, self.stage, self.done_before, self.stage_steps = total, None, "", 0, 0

    def __call__(self, stage: str, step: int, steps: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=self.total, desc="building the mini-world", unit="step", dynamic_ncols=True)
        if stage != self.stage:
            self.done_before += self.stage_steps
            self.stage, self.stage_steps = stage, steps
            self.bar.set_postfix_str(stage)
        self.bar.update(self.done_before + step - self.bar.n)
        if self.bar.n >= self.total:
            self.bar.close()
