"""One Tune trial = one Ray Train run, evaluated in its workers, recorded in the table and MLflow.

The trial function is a Train *driver*: it reserves no CPU/GPU (``{"cpu": 0, "memory": 1 MiB}``, ray-notes
P1) and runs no forward pass itself. Its TorchTrainer has the stable name ``train-<trial_id>``, so a
retried or resumed trial continues from its last checkpoint. Optuna sees only the final report:
``eval_forget_acc`` (↓) and ``eval_retain_acc`` (↑), finite even when the run diverged or failed.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

import ray.train
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from search_spaces import get_space
from trainables.evaluation.result import EvalResult
from trainables.launch import make_trainer
from trainables.train_loop import evaluate_base_per_worker
from tuner.orchestration.context import SearchContext
from tuner.orchestration.interrupt import stopping
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID, TrialRow
from tuner.records.tracking import Tracker
from tuner.records.trial_runs import log_failure, log_report, log_trial_result, open_trial_run

OBJECTIVES = ("eval_forget_acc", "eval_retain_acc")
WORST = {"eval_forget_acc": 1.0, "eval_retain_acc": 0.0}


class TrialProgress(ray.train.UserCallback):
    """Controller-side: status ``training`` / ``evaluating`` in the table, every report to MLflow."""

    def __init__(self, ctx: SearchContext, trial_id: str, run_id: str):
        self.ctx, self.trial_id, self.run_id, self.status = ctx, trial_id, run_id, ""

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        m = metrics[0]
        status = "evaluating" if m.get("evaluating") else "training"
        if status != self.status:
            self.status = status
            _update(self.ctx, self.trial_id, status=status)
        log_report(Tracker(self.ctx.mlflow_uri, *_ids(self.ctx)), self.run_id, m)


def _ids(ctx: SearchContext) -> tuple[str, str]:
    return ctx.extra["experiment_id"], ctx.parent_run_id


def _update(ctx: SearchContext, trial_id: str, **changes: Any) -> TrialRow:
    table = ResultsTable(ctx.path)
    row = table.get(trial_id) or TrialRow(trial_id)
    for key, value in changes.items():
        setattr(row, key, value)
    table.write(row)
    return row


def trial_driver(config: dict[str, Any], ctx: SearchContext) -> None:
    """Tune function trainable (``tune.with_parameters(trial_driver, ctx=ctx)``)."""
    trial_id = tune.get_context().get_trial_id()
    overrides = get_space(ctx.space).trial_overrides(ctx.preset, config)
    params = {k: v for k, v in overrides.items() if k not in ctx.fixed or ctx.fixed[k] != v}
    tracker = Tracker(ctx.mlflow_uri, *_ids(ctx))
    cfg = ctx.trial_config(params)
    row = _update(ctx, trial_id, status="queued", params=params, error="")
    run_id = open_trial_run(tracker, trial_id, params, cfg.to_dict())
    _update(ctx, trial_id, mlflow_run_id=run_id)
    start = time.time()
    try:
        trainer = make_trainer(cfg, name=f"train-{trial_id}", storage=ctx.path / "ray", workers=ctx.workers_per_trial,
                               use_gpu=ctx.gpus_per_worker > 0, callbacks=[
                                   TuneReportCallback(), TrialProgress(ctx, trial_id, run_id)])
        result = trainer.fit()
        final = dict(result.return_value or {})
        adapter = Path(result.checkpoint.path) / "adapter" if result.checkpoint else None
    except Exception as err:  # a failed trial is recorded, never fatal for the search
        if stopping(ctx.path):  # cut off by the search's SIGTERM: an error for Tune, re-run on --resume
            raise
        _update(ctx, trial_id, status="failed", error=f"{type(err).__name__}: {err}",
                train_seconds=time.time() - start)
        log_failure(tracker, run_id, traceback.format_exc())
        tune.report({**WORST, "diverged": 0, "failed": 1})
        return
    row = _record(ctx, trial_id, final, adapter, time.time() - start, tracker, run_id)
    tune.report(_objectives(row, ctx))


def _record(ctx: SearchContext, trial_id: str, final: dict[str, Any], adapter: Path | None, seconds: float,
            tracker: Tracker, run_id: str) -> TrialRow:
    """Write the trial's curves, lm-eval JSON and table row; finish its MLflow run."""
    out = ctx.path / "trials" / trial_id
    out.mkdir(parents=True, exist_ok=True)
    history = final.pop("history", [])
    (out / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    evaluation = EvalResult.from_dict(final.pop("eval")) if "eval" in final else None
    train_metrics = {k: float(v) for k, v in final.items() if isinstance(v, (int, float))}
    changes: dict[str, Any] = {"status": "diverged" if final.get("diverged") else "done",
                               "train_metrics": train_metrics, "train_seconds": seconds,
                               "adapter_path": str(adapter) if adapter else ""}
    if evaluation is not None:
        (out / "lm_eval.json").write_text(json.dumps(evaluation.raw, indent=1, default=str))
        changes.update(**_scores(evaluation), eval_seconds=evaluation.seconds,
                       train_seconds=seconds - evaluation.seconds)
    row = _update(ctx, trial_id, **changes)
    log_trial_result(tracker, run_id, row, history, out, adapter, ctx.trial_config({}).model)
    tracker.finish(run_id)
    return row


def _scores(evaluation: EvalResult) -> dict[str, Any]:
    """The ``TrialRow`` score fields of one evaluation: primary, second format, every other task."""
    named = (evaluation.forget_task, evaluation.retain_task, evaluation.alt_forget_task, evaluation.alt_retain_task)
    return {"forget": evaluation.forget, "retain": evaluation.retain, "forget_alt": evaluation.alt_forget,
            "retain_alt": evaluation.alt_retain, "alt_format": evaluation.alt_format,
            "extra_scores": {k: v for k, v in evaluation.scores.items() if k not in named}}


def _objectives(row: TrialRow, ctx: SearchContext) -> dict[str, float]:
    if row.status != "done" or not row.scored:
        return {**WORST, "diverged": int(row.status == "diverged"), "failed": 0}
    drop = (ctx.baseline_retain_acc - row.retain.acc) if ctx.baseline_retain_acc is not None else 0.0
    return {"eval_forget_acc": row.forget.acc, "eval_retain_acc": row.retain.acc, "retain_drop": drop,
            "eval_forget_stderr": row.forget.stderr, "eval_retain_stderr": row.retain.stderr,
            "diverged": 0, "failed": 0}


def score_baseline(ctx: SearchContext) -> TrialRow:
    """Score the unadapted model once, in a Train worker like the trials; the table's first row."""
    existing = ResultsTable(ctx.path).get(BASELINE_ID)
    if existing is not None and existing.scored:
        return existing
    cfg = ctx.trial_config({})
    start = time.time()
    trainer = make_trainer(cfg, name="baseline", storage=ctx.path / "ray", workers=1,
                           use_gpu=ctx.gpus_per_worker > 0, loop=evaluate_base_per_worker)
    evaluation = EvalResult.from_dict(trainer.fit().return_value["eval"])
    (ctx.path / "trials" / BASELINE_ID).mkdir(parents=True, exist_ok=True)
    (ctx.path / "trials" / BASELINE_ID / "lm_eval.json").write_text(json.dumps(evaluation.raw, default=str))
    row = TrialRow(BASELINE_ID, status="done", **_scores(evaluation), eval_seconds=evaluation.seconds,
                   train_seconds=time.time() - start - evaluation.seconds)
    ResultsTable(ctx.path).write(row)
    return row
