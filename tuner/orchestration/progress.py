"""Driver-side trial progress: status ``training`` / ``evaluating`` in the table, every report to MLflow.

    tune.RunConfig(callbacks=[TrialProgress(ctx)])

It runs in the Tune driver, which holds mlflow already, on the reports that the Train controller forwards
to Tune (``TuneReportCallback``). The controller then unpickles no callback of ours: it would import this
package, mlflow and, through ``tuner.orchestration.trial``, torch, transformers and peft, about 6 s per trial
on 2 cores (issue 14).
"""

from __future__ import annotations

from typing import Any

from ray import tune

from tuner.orchestration.context import SearchContext
from tuner.records.results import ResultsTable
from tuner.records.tracking import Tracker
from tuner.records.trial_runs import log_report


class TrialProgress(tune.Callback):
    """``on_trial_result``: a training report (``step``) or the start of evaluation (``evaluating``).

    The trial driver's own final report (the objectives) carries neither and is left to the trial.
    """

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        if "step" not in result and not result.get("evaluating"):
            return
        status = "evaluating" if result.get("evaluating") else "training"
        row = ResultsTable(self.ctx.path).advance(trial.trial_id, status, only_from=("queued", "training"))
        if row is not None and row.mlflow_run_id:
            tracker = Tracker(self.ctx.mlflow_uri, self.ctx.extra["experiment_id"], self.ctx.parent_run_id)
            log_report(tracker, row.mlflow_run_id, result)
