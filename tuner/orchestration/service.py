"""One search from a validated ``SearchContext``: Ray, MLflow parent, baseline, Tune, report, summary.

    python -m tuner.run --space kl_boundary --preset miniworld-small --num-samples 2 steps=8   # -> run_search

Order matters and is the whole design (docs/architecture.md#from-the-cli-to-the-report): Ray and the cluster's GPU check
(nothing is created before it passes), the run directory with ``run_config.json`` (resumable from then on), assets once
(the mini-world is built here, before any worker asks for it), the parent run, the baseline row, then
``Tuner.fit()`` (or ``Tuner.restore`` on ``--resume``), then the boundary report and the summary. A failure
after the directory exists marks the MLflow parent run FAILED and prints the resume command; a SIGTERM or Ctrl+C
stops the search cleanly (``tuner.orchestration.interrupt``): runs KILLED, unfinished trials re-run by ``--resume``.
The analysis goes back into MLflow (``tuner.records.mlflow_analysis``), and the summary is printed after
``ray.shutdown()``, as the last lines; worker output is in ``<run_dir>/logs/`` (``tuner.orchestration.logs``).
The search's own phases (ray_start, world, mlflow_parent, baseline, tune_fit, finish) are written to
``<run_dir>/search_phases.json`` in seconds; each trial's are in its results row (``phase_seconds``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from trainables.config import MINIWORLD_MODELS, ConfigError, TrainConfig
from trainables.evaluation.result import TaskScore
from trainables.phases import PhaseTimer
from tuner.orchestration.console import WorldBuildBar
from tuner.orchestration.context import SearchContext, default_uri
from tuner.orchestration.interrupt import (
    LOST,
    SearchInterrupted,
    StopSignalHandler,
    mark_lost,
    record_interrupt,
    resume_command,
)
from tuner.orchestration.status_line import read_decision
from tuner.records.mlflow_analysis import sync_analysis
from tuner.records.mlflow_layout import parent_params
from tuner.records.results import ResultsTable
from tuner.records.schema import BASELINE_ID
from tuner.records.tracking import Tracker, relocate_store, runs_link, ui_command
from tuner.records.trial_runs import log_baseline


def run_search(ctx: SearchContext, resume: bool, verbose: bool = False) -> int:
    """The search of ``python -m tuner.run``; ``verbose`` also shows worker output, library INFO lines, Tune's
    status table and, at the end, the whole results table."""
    import ray

    from trainables.launch import worker_env
    from trainables.model import miniworld
    from trainables.offline import offline_env
    from trainables.preflight import check_gpus
    from tuner.orchestration.logs import quiet_libraries, route_driver_logs, route_worker_logs
    from tuner.orchestration.search import make_tuner, restore_tuner
    from tuner.orchestration.trial import clear_trial_clock, score_baseline

    cfg, timer = ctx.trial_config({}), PhaseTimer()
    env = worker_env(offline_env(cfg))
    for key, value in env.items():
        os.environ.setdefault(key, value)
    in_ray_job = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ  # `ray job submit` set the job's env already
    quiet_libraries(verbose)
    with timer.phase("ray_start"):
        ray.init(address=ctx.address, ignore_reinit_error=True, dashboard_host="127.0.0.1", log_to_driver=True,
                 runtime_env=None if in_ray_job else {"env_vars": env})
        resources = ray.cluster_resources()
    try:  # a cluster's GPUs are known only now; nothing is created yet
        check_gpus(ctx.gpus_per_worker, ctx.workers_per_trial, resources.get("GPU", 0), "the Ray cluster")
    except ConfigError as err:
        ray.shutdown()
        print(f"error: {err}", file=sys.stderr)
        return 2
    ctx.path.mkdir(parents=True, exist_ok=True)
    route_driver_logs(ctx.path)
    route_worker_logs(ctx.path, verbose)
    moved_from = ctx.extra.pop("moved_from", None)
    if moved_from and ctx.mlflow_uri == default_uri(ctx.path):
        relocate_store(ctx.path / "mlflow.db", Path(moved_from), ctx.path)
    if not ctx.max_concurrent:
        ctx.max_concurrent = _fit_concurrency(resources, ctx)
    ctx.save()  # from here on the directory is resumable
    tracker, stop_signal = None, StopSignalHandler(ctx.path).install()
    try:
        with timer.phase("world"):
            miniworld(cfg, progress=_world_bar(cfg))  # built once, here, before any worker asks for it
        with timer.phase("mlflow_parent"):
            tracker = _open_parent(ctx)
            ctx.save()
        with timer.phase("baseline"), stop_signal.reclaimed():  # Train's fit takes SIGINT in the main thread
            baseline = score_baseline(ctx)
            ctx.baseline_retain_acc = baseline.retain.acc if baseline.retain else None
            ctx.baseline_forget = (baseline.forget.acc, baseline.forget.stderr) if baseline.forget else None
            ctx.save()
            log_baseline(tracker, baseline, ctx.path / "trials" / BASELINE_ID)
        print(f"baseline: forget {_pct(baseline.forget)}  retain {_pct(baseline.retain)}", flush=True)
        with timer.phase("tune_fit"):
            clear_trial_clock(ctx)
            tuner = restore_tuner(ctx) if resume and (ctx.path / "ray" / "search").exists() else make_tuner(ctx)
            with stop_signal.tune():
                tuner.fit()
        if stop_signal.received:
            return record_interrupt(ctx, tracker, stop_signal.signum)
        with timer.phase("finish"):
            return _finish(ctx, tracker, verbose)
    except SearchInterrupted:
        return record_interrupt(ctx, tracker, stop_signal.signum)
    except Exception as err:
        return (record_interrupt(ctx, tracker, stop_signal.signum) if stop_signal.received
                else _failed(ctx, tracker, err))
    finally:
        (ctx.path / "search_phases.json").write_text(json.dumps(timer.seconds, indent=1))


def _failed(ctx: SearchContext, tracker: Tracker | None, err: Exception) -> int:
    """A search that stopped after its directory exists: traceback, parent run FAILED, resumable directory."""
    traceback.print_exc()
    if tracker is not None:
        try:
            tracker.finish(ctx.parent_run_id, failed=True)
        except Exception as mlflow_err:  # the store itself may be what failed
            print(f"warning: cannot mark the MLflow parent run FAILED: {mlflow_err}", file=sys.stderr)
    ctx.save()
    first = (str(err).strip().splitlines() or [""])[0]
    print(f"error: the search stopped ({type(err).__name__}: {first}); the run directory is kept, continue with: "
          f"{resume_command(ctx)}", file=sys.stderr)
    return 1


def _world_bar(cfg: TrainConfig) -> WorldBuildBar | None:
    """The mini-world's build bar (both pretraining stages), or None for other models."""
    from trainables.miniworld.build import world_config

    if cfg.model not in MINIWORLD_MODELS:
        return None
    world = world_config(cfg.model, cfg.world_seed)
    return WorldBuildBar(world.stage1_steps + world.stage2_steps)


def _pct(score: TaskScore | None) -> str:
    return f"{100 * score.acc:.1f}±{100 * score.stderr:.1f}%" if score else "—"


def _fit_concurrency(resources: dict[str, float], ctx: SearchContext) -> int:
    """Trials that fit at once: GPUs / (workers * gpus per worker), else CPUs / workers; at least 1."""
    if ctx.gpus_per_worker > 0:
        return max(1, int(resources.get("GPU", 0) // (ctx.workers_per_trial * ctx.gpus_per_worker)))
    return max(1, int(resources.get("CPU", 1) // ctx.workers_per_trial))


def _open_parent(ctx: SearchContext) -> Tracker:
    tracker = Tracker.open(ctx.mlflow_uri, ctx.experiment, run_name=ctx.path.name,
                           artifact_root=ctx.path / "mlartifacts",
                           parent_run_id=ctx.parent_run_id or None,
                           tags={"space": ctx.space, "preset": ctx.preset, "git_commit": ctx.git_commit})
    if not ctx.parent_run_id:  # a new search, or one that stopped before its parent run existed
        ctx.parent_run_id = tracker.parent_run_id
        tracker.log_params(ctx.parent_run_id, parent_params(ctx))
    ctx.extra["experiment_id"] = tracker.experiment_id
    return tracker


def _finish(ctx: SearchContext, tracker: Tracker, verbose: bool) -> int:
    import ray

    from tuner.analysis.report import render_report

    for trial_id in mark_lost(ctx, tracker):
        print(f"warning: trial {trial_id} marked failed, {LOST}", file=sys.stderr)
    table = ResultsTable(ctx.path)
    stop = _stop_reason(ctx, table)
    if stop:
        ctx.extra["stop_reason"] = stop  # run_config.json -> the report's run-config table
        ctx.save()
    report_dir = render_report(ctx.path, delta=ctx.delta)
    verdict = json.loads((report_dir / "boundary.json").read_text())["verdict"]
    if stop:  # the report's sentence: with what the trials still running at the stop changed (after_stop)
        stop = verdict["stopped"]
        tracker.set_tags(ctx.parent_run_id, {"stop_reason": stop[:5000]})
        table.note_stop(stop)
    for path, name in ((table.jsonl, "results"), (table.csv, "results"), (table.md, "results"),
                       (ctx.path / "run_config.json", "results"), (report_dir, "report")):
        tracker.log_artifacts(ctx.parent_run_id, Path(path), name)
    sync_analysis(tracker, ctx.path)
    tracker.finish(ctx.parent_run_id)
    ray.shutdown()  # before the summary: nothing of Ray's may print after it
    print("\n" + (table.md.read_text() if verbose else _verdict(verdict)))
    study = ctx.path / "optuna.db"  # sampled spaces only; grid spaces run their points without Optuna
    print(f"run directory : {ctx.path}\nresults       : {table.md}\n                {table.csv}\n"
          f"                {table.jsonl}\nreport        : {report_dir / 'report.html'}\n"
          f"                {report_dir / 'report.md'}\n"
          + (f"optuna study  : {study}\n" if study.exists() else "") + (f"stop          : {stop}\n" if stop else "")
          + f"logs          : {ctx.path / 'logs'}\n"
          + f"MLflow        : {ui_command(ctx.mlflow_uri)}\n"
          + f"                {runs_link(ctx.mlflow_uri, tracker.experiment_id)}", flush=True)
    return 0


def _verdict(verdict: dict[str, Any]) -> str:
    """The report's verdict in three lines (each trial already had its line; the table is in results.md)."""
    return "".join(f"{label:<14}: {verdict[key]}\n" for key, label in (
        ("outcome", "outcome"), ("recommended", "recommended"), ("next_step", "next step")))


def _stop_reason(ctx: SearchContext, table: ResultsTable) -> str:
    """Why a boundary search ended (its stopping rule, or the --num-samples cap and what the rule's last check
    missed); "" for other samplers."""
    from search_spaces import get_space
    from tuner.boundary_search.stopping import stop_reason

    if get_space(ctx.space).sampler != "boundary":
        return ""
    trials = sum(not row.is_baseline for row in table.rows())
    return stop_reason(ctx.path, ctx.num_samples, read_decision(ctx.path).get("reason"), trials)
