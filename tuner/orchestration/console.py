"""What a search prints while Tune runs: one progress line and one line per finished trial; Tune's status table
goes to ``logs/driver.log`` (and to the console with ``--verbose``).

    python -m tuner.run --space kl_boundary --preset miniworld-small --num-samples 2 steps=8

    1c2d3e4f done  no_effect  forget 72.9±6.5% (+0.0)  retain 95.8±2.9% (+0.0)  retain=7.27 remove=5.91 beta_kl=0.603
    progress 1/2 done, 1 running  1m04s  ETA <=1m04s  best 1c2d3e4f forget 72.9%

The progress line (``tuner.orchestration.status_line``) is redrawn in place on a terminal and printed at most once
a minute otherwise. The finished line reads the trial's row from the results table, which the trial driver writes
before its final ``tune.report``; its state is the outcome state of ``tuner.analysis.boundary.classify``.
"""

from __future__ import annotations

import logging

from ray.tune import CLIReporter
from ray.tune.experiment import Trial
from scipy.stats import norm

from search_spaces import get_space
from tuner.analysis.boundary import classify
from tuner.analysis.report import DEFAULT_CONFIDENCE
from tuner.orchestration.context import SearchContext
from tuner.orchestration.status_line import StatusLine, best_trial, progress_line, read_decision
from tuner.records.mlflow_layout import short_params
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID, TrialRow

TABLE_SECONDS = 60
TABLE_LOG = logging.getLogger("ray.tune.status_table")  # a "ray" logger: driver.log, and the console only with
# --verbose (tuner.orchestration.logs)


class SearchReporter(CLIReporter):
    """Tune's progress reporter for a search (``tune.RunConfig(progress_reporter=SearchReporter(ctx))``)."""

    def __init__(self, ctx: SearchContext, metric_columns: list[str], status: StatusLine | None = None) -> None:
        super().__init__(metric_columns=metric_columns, max_report_frequency=TABLE_SECONDS, max_column_length=12)
        self.ctx, self.finished, self.status = ctx, set(), status or StatusLine()
        self.finished_before: int | None = None  # finished when this process first looked (restored by --resume)
        self.may_stop_early = get_space(ctx.space).sampler == "boundary"

    def should_report(self, trials: list[Trial], done: bool = False) -> bool:
        """Called by Tune after every step of its loop: print finished trials, refresh the progress line; True
        when Tune's table is due (``report``)."""
        if self.finished_before is None:
            self.finished_before = sum(t.status in (Trial.TERMINATED, Trial.ERROR) for t in trials)
        for trial in trials:
            if trial.status in (Trial.TERMINATED, Trial.ERROR) and trial.trial_id not in self.finished:
                self.finished.add(trial.trial_id)
                self.status.print_above(finished_line(self.ctx, trial.trial_id, trial.status))
        if done:
            self.status.close()
        elif self.status.due():
            self.status.show(self._progress(trials))
        return super().should_report(trials, done)

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        TABLE_LOG.info("\n%s", self._progress_str(trials, done, *sys_info))

    def _progress(self, trials: list[Trial]) -> str:
        decision = read_decision(self.ctx.path)
        running = sum(t.status == Trial.RUNNING for t in trials)
        return progress_line(len(self.finished), running, self._total_samples or self.ctx.num_samples,
                             self.status.clock() - self.status.started, len(self.finished) - self.finished_before,
                             decision,
                             best_trial(self.ctx.path, self.ctx.delta, decision.get("recommended")),
                             self.may_stop_early)


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
