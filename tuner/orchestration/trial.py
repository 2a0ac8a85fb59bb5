"""One Tune trial = one Ray Train run, evaluated in its workers, recorded in the table and MLflow.

The trial function is a Train *driver*: it reserves no CPU/GPU (``{"cpu": 0, "memory": 1 MiB}``,
docs/architecture.md#ray-idioms-the-code-relies-on) and runs no forward pass itself. Its TorchTrainer has the
stable name ``train-<trial_id>``, so a retried or resumed trial continues from its last checkpoint. Optuna sees
only the final report: ``eval_forget_acc`` (↓) and ``eval_retain_acc`` (↑). A failed (exception, out of memory,
a killed worker) or diverged trial reports no objectives, only ``{"failed": 1, "diverged": 0}`` or
``{"failed": 0, "diverged": 1}``: its row says ``failed`` / ``diverged`` with the reason in ``error``, its MLflow
run ends FAILED, and the searcher ends its Optuna trial FAIL (``tuner.boundary_search.searcher``), outside every
sampler's model.

Each row's ``phase_seconds`` is the trial's time, phase by phase, in the order they ran:

    gap            previous trial's driver returned -> this one's started (Tune: result, actor, scheduling;
                   with concurrent trials, since the latest one returned; none for a session's first trial)
    trial_setup    status rows, the MLflow child run opened
    worker_start   TorchTrainer.fit() called -> the loop started (controller, worker group, process group),
                   less the worker's own ``imports``
    imports ... evaluation   the worker's phases (``trainables.train_loop``); worker_other: its untimed rest
    teardown       the loop returned -> fit() returned (result, worker group shut down)
    results        metrics.jsonl, lm_eval.json, the table row;  mlflow: curves, scores, adapter, run finished
    fit            only a failed trial's: fit() until it raised, unsplit
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from search_spaces import get_space
from search_spaces.facts import OBJECTIVE_METRICS, SEED_FIELD, SEED_OFFSET, STDERR_METRICS, retain_drop
from trainables.evaluation.result import EvalResult
from trainables.launch import make_trainer
from trainables.phases import PhaseTimer
from trainables.train_loop import evaluate_base_per_worker
from tuner.orchestration.context import SearchContext
from tuner.orchestration.interrupt import stopping
from tuner.records.results import ResultsTable, atomic_write
from tuner.records.schema import BASELINE_ID, TrialRow
from tuner.records.tracking import Tracker
from tuner.records.trial_runs import log_failure, log_phases, log_trial_result, open_trial_run


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
    timer, last_end = PhaseTimer(), _last_end_file(ctx)
    if last_end.exists():
        timer.add("gap", time.time() - float(last_end.read_text()))
    with timer.phase("trial_setup"):
        trial_id = tune.get_context().get_trial_id()
        overrides = get_space(ctx.space).trial_overrides(ctx.preset, config)
        if config.get(SEED_OFFSET):  # the boundary sampler's training seed for this trial: seed + offset
            overrides[SEED_FIELD] = ctx.trial_config({}).seed + int(config[SEED_OFFSET])
        params = {k: v for k, v in overrides.items() if k not in ctx.fixed or ctx.fixed[k] != v}
        tracker = Tracker(ctx.mlflow_uri, *_ids(ctx))
        cfg = ctx.trial_config(params)
        _update(ctx, trial_id, status="queued", params=params, error="")
        run_id = open_trial_run(tracker, trial_id, params, cfg.to_dict())
        _update(ctx, trial_id, mlflow_run_id=run_id)
    start = time.time()
    try:
        trainer = make_trainer(cfg, name=f"train-{trial_id}", storage=ctx.path / "ray", workers=ctx.workers_per_trial,
                               use_gpu=ctx.gpus_per_worker > 0, callbacks=[TuneReportCallback()])
        result = trainer.fit()
        final = dict(result.return_value or {})
        adapter = Path(result.checkpoint.path) / "adapter" if result.checkpoint else None
    except Exception as err:  # a failed trial is recorded, never fatal for the search
        if stopping(ctx.path):  # cut off by the search's stop signal: an error for Tune, re-run on --resume
            raise
        timer.add("fit", time.time() - start)
        _update(ctx, trial_id, status="failed", error=f"{type(err).__name__}: {err}",
                train_seconds=time.time() - start, phase_seconds=timer.seconds)
        log_failure(tracker, run_id, "failed", traceback.format_exc())
        tune.report({"diverged": 0, "failed": 1})
        _mark_trial_end(last_end)
        return
    _fit_phases(timer, start, time.time(), final)
    row = _record(ctx, trial_id, final, adapter, time.time() - start, tracker, run_id, timer)
    tune.report(_objectives(row, ctx))
    _mark_trial_end(last_end)


def _last_end_file(ctx: SearchContext) -> Path:
    """When the last trial driver returned (``time.time()``); ``clear_trial_clock`` removes it."""
    return ctx.path / "trials" / ".last_trial_end"


def _mark_trial_end(path: Path) -> None:
    """Now, written whole: a trial starting beside it never reads a half-written file (a plain ``write_text`` let
    one read '' and fail, with two trials at once)."""
    atomic_write(path, str(time.time()))


def clear_trial_clock(ctx: SearchContext) -> None:
    """Before ``Tuner.fit()``: the first trial of this session has no gap (not the time since a past session)."""
    _last_end_file(ctx).parent.mkdir(parents=True, exist_ok=True)
    _last_end_file(ctx).unlink(missing_ok=True)


def _fit_phases(timer: PhaseTimer, fit_start: float, fit_end: float, final: dict[str, Any]) -> None:
    """Split ``fit()`` (driver clock) by the worker's ``wall_clock`` and ``phase_seconds`` (rank 0)."""
    worker = final.pop("phase_seconds", {})
    loop_start, loop_end = final.pop("wall_clock", (fit_start, fit_end))
    timer.add("worker_start", loop_start - fit_start - worker.get("imports", 0.0))
    for name, seconds in worker.items():
        timer.add(name, seconds)
    timer.add("worker_other", loop_end - loop_start - sum(s for k, s in worker.items() if k != "imports"))
    timer.add("teardown", fit_end - loop_end)


def _record(ctx: SearchContext, trial_id: str, final: dict[str, Any], adapter: Path | None, seconds: float,
            tracker: Tracker, run_id: str, timer: PhaseTimer) -> TrialRow:
    """Write the trial's curves, lm-eval JSON and table row; finish its MLflow run; then its phases to both."""
    with timer.phase("results"):
        out = ctx.path / "trials" / trial_id
        out.mkdir(parents=True, exist_ok=True)
        history = final.pop("history", [])
        (out / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
        evaluation = EvalResult.from_dict(final.pop("eval")) if "eval" in final else None
        train_metrics = {k: float(v) for k, v in final.items() if isinstance(v, (int, float))}
        changes: dict[str, Any] = {"status": "diverged" if final.get("diverged") else "done",
                                   "train_metrics": train_metrics, "train_seconds": seconds,
                                   "adapter_path": str(adapter) if adapter else ""}
        if final.get("diverged"):
            changes["error"] = f"diverged at step {final.get('step')}: a non-finite loss or gradient"
        if evaluation is not None:
            (out / "lm_eval.json").write_text(json.dumps(evaluation.raw, indent=1, default=str))
            changes.update(**_scores(evaluation), eval_seconds=evaluation.seconds,
                           train_seconds=seconds - evaluation.seconds)
        row = _update(ctx, trial_id, **changes)
    with timer.phase("mlflow"):
        log_trial_result(tracker, run_id, row, history, out, adapter, ctx.trial_config({}).model)
        if row.status == "done":
            tracker.finish(run_id)
        else:
            log_failure(tracker, run_id, row.status, row.error)
    log_phases(tracker, run_id, timer.seconds)
    return _update(ctx, trial_id, phase_seconds=timer.seconds)


def _scores(evaluation: EvalResult) -> dict[str, Any]:
    """The ``TrialRow`` score fields of one evaluation: primary, second format, every other task."""
    named = (evaluation.forget_task, evaluation.retain_task, evaluation.alt_forget_task, evaluation.alt_retain_task)
    return {"forget": evaluation.forget, "retain": evaluation.retain, "forget_alt": evaluation.alt_forget,
            "retain_alt": evaluation.alt_retain, "alt_format": evaluation.alt_format,
            "extra_scores": {k: v for k, v in evaluation.scores.items() if k not in named}}


def _objectives(row: TrialRow, ctx: SearchContext) -> dict[str, float]:
    """The final report: objectives and stderrs of a scored trial; only the flags otherwise (Optuna: FAIL)."""
    if row.status != "done" or not row.scored:
        return {"diverged": int(row.status == "diverged"), "failed": 0}
    base = ctx.baseline_retain_acc
    scores = (row.forget, row.retain)
    return {**{m: s.acc for m, s in zip(OBJECTIVE_METRICS, scores, strict=True)},
            **{m: s.stderr for m, s in zip(STDERR_METRICS, scores, strict=True)},
            "retain_drop": retain_drop(base, row.retain.acc) if base is not None else 0.0, "diverged": 0, "failed": 0}


def score_baseline(ctx: SearchContext) -> TrialRow:
    """Score the unadapted model once, in a Train worker like the trials; the table's first row."""
    existing = ResultsTable(ctx.path).get(BASELINE_ID)
    if existing is not None and existing.scored:
        return existing
    cfg, timer = ctx.trial_config({}), PhaseTimer()
    start = time.time()
    trainer = make_trainer(cfg, name="baseline", storage=ctx.path / "ray", workers=1,
                           use_gpu=ctx.gpus_per_worker > 0, loop=evaluate_base_per_worker)
    final = trainer.fit().return_value
    _fit_phases(timer, start, time.time(), final)
    evaluation = EvalResult.from_dict(final["eval"])
    (ctx.path / "trials" / BASELINE_ID).mkdir(parents=True, exist_ok=True)
    (ctx.path / "trials" / BASELINE_ID / "lm_eval.json").write_text(json.dumps(evaluation.raw, default=str))
    row = TrialRow(BASELINE_ID, status="done", **_scores(evaluation), eval_seconds=evaluation.seconds,
                   train_seconds=time.time() - start - evaluation.seconds, phase_seconds=timer.seconds)
    ResultsTable(ctx.path).write(row)
    return row
